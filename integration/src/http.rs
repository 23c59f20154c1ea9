//! A small blocking HTTP/1.1 client for the harness and tests (readiness probes, Envoy admin,
//! the approval service's API), built on hyper so the framing is a library's, not ours.
//!
//! Each call runs on its own thread with its own current-thread runtime, so it can be used from
//! plain `#[test]` functions and from inside async code alike.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

use crate::error::{HarnessError, Result};

/// Time one exchange may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers as (lower-case name, value) in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<HttpResponse> {
    request("GET", url, &[], Vec::new())
}

/// Sends one request to an `http://host:port/...` URL and reads the whole answer.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<HttpResponse> {
    request_with_timeout(method, url, headers, body, DEFAULT_TIMEOUT)
}

/// Like [`request`], with a time limit of one's own.
pub fn request_with_timeout(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    limit: Duration,
) -> Result<HttpResponse> {
    let fail = |reason: String| HarnessError::Http {
        method: method.to_owned(),
        url: url.to_owned(),
        reason,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("bad url: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(fail("only http:// urls are supported".into()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| fail("url has no host".into()))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let target = format!("{}:{port}", authority.host());
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());

    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, authority.as_str());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| fail(e.to_string()))?;

    let exchange = async move {
        let stream = tokio::net::TcpStream::connect(&target)
            .await
            .map_err(|e| format!("connect {target}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(HttpResponse {
            status,
            headers,
            body: body.to_bytes().to_vec(),
        })
    };

    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))?;
                runtime.block_on(async {
                    match tokio::time::timeout(limit, exchange).await {
                        Ok(result) => result,
                        Err(_) => Err(format!("no answer within {limit:?}")),
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err("client thread panicked".into()))
    });
    outcome.map_err(fail)
}
