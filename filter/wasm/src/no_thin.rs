//! Thin packs off: the receive-pack advertisement of a gated repository gets the `no-thin`
//! capability on its way to the client, so that git sends complete packs whose deltas the scan
//! can rebuild. The work is in `gitgate_core::no_thin`; this module picks the stream in the
//! request-headers phase, drops `content-length` (the body grows by eight bytes) in the
//! response-headers phase, and moves each body chunk through the rewriter. A response it cannot
//! rewrite (compressed, not an advertisement) passes unchanged: the pack scan then refuses any
//! delta whose base is not in the pack, as a scan limit.

use gitgate_core::no_thin::{NoThin, Outcome};
use gitgate_core::request::{self, GitRequest, Service};
use log::{info, warn};
use proxy_wasm::types::{BufferType, MapType};

use crate::host;

/// The content type of a receive-pack advertisement (gitprotocol-http, "Smart Server
/// Response").
const ADVERTISEMENT: &str = "application/x-git-receive-pack-advertisement";

/// The rewrite of one advertisement response.
pub(crate) struct NoThinResponse {
    /// `None` once the response turned out not to be rewritable.
    rewriter: Option<NoThin>,
}

/// In the request-headers phase: `Some` for `GET .../info/refs?service=git-receive-pack` of a
/// repository `gated` accepts. Asks the upstream for identity encoding.
pub(crate) fn on_request_headers(
    method: &str,
    path: &str,
    prefix: &str,
    gated: impl FnOnce(&str) -> bool,
) -> Option<NoThinResponse> {
    let Ok(GitRequest::InfoRefs {
        repository,
        service: Some(Service::ReceivePack),
    }) = request::classify(method, path, prefix)
    else {
        return None;
    };
    if !gated(&repository) {
        return None;
    }
    if !host::remove_header(MapType::HttpRequestHeaders, "accept-encoding") {
        warn!("could not remove accept-encoding from a receive-pack advertisement request");
    }
    Some(NoThinResponse {
        rewriter: Some(NoThin::new()),
    })
}

impl NoThinResponse {
    /// In the response-headers phase: keeps the rewriter for an uncompressed advertisement,
    /// whose length it then drops.
    pub(crate) fn on_response_headers(&mut self) {
        let text = |name: &str| {
            host::get_header(MapType::HttpResponseHeaders, name)
                .map(|value| String::from_utf8_lossy(&value).trim().to_ascii_lowercase())
        };
        let advertisement = text("content-type").is_some_and(|t| t.starts_with(ADVERTISEMENT));
        let encoded = text("content-encoding").is_some_and(|e| !e.is_empty() && e != "identity");
        if !advertisement || encoded {
            if encoded {
                warn!("a compressed receive-pack advertisement passed without no-thin");
            }
            self.rewriter = None;
            return;
        }
        if !host::remove_header(MapType::HttpResponseHeaders, "content-length") {
            warn!("could not drop the advertisement's length; it passes without no-thin");
            self.rewriter = None;
        }
    }

    /// A body chunk of `body_size` bytes; returns the chunk's size after the rewrite.
    pub(crate) fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) -> usize {
        let Some(rewriter) = self.rewriter.as_mut() else {
            return body_size;
        };
        if rewriter.outcome() != Outcome::Pending && !end_of_stream {
            return body_size;
        }
        let chunk = if body_size == 0 {
            Some(Vec::new())
        } else {
            host::get_buffer(BufferType::HttpResponseBody, 0, body_size)
        };
        let Some(chunk) = chunk.filter(|c| c.len() == body_size) else {
            warn!("could not read the receive-pack advertisement; it passes as it is");
            self.rewriter = None;
            return body_size;
        };
        let mut out = Vec::with_capacity(chunk.len() + 16);
        rewriter.feed(&chunk, &mut out);
        if end_of_stream {
            rewriter.finish(&mut out);
            match rewriter.outcome() {
                Outcome::Added => info!("receive-pack advertisement: added no-thin"),
                Outcome::Present => {}
                Outcome::Pending | Outcome::Unrecognised => {
                    warn!("receive-pack advertisement not recognised; passed without no-thin")
                }
            }
        }
        if out == chunk {
            return body_size;
        }
        if !host::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out) {
            warn!("could not rewrite the receive-pack advertisement");
            return body_size;
        }
        out.len()
    }

    /// Trailers end the body: bytes still held cannot be added any more.
    pub(crate) fn on_response_trailers(&mut self) {
        if let Some(rewriter) = self.rewriter.take()
            && rewriter.held() > 0
        {
            warn!(
                "receive-pack advertisement ended by trailers; {} held bytes dropped",
                rewriter.held()
            );
        }
    }
}
