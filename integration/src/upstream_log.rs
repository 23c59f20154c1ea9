//! The request log of `gitgate-upstream`: one JSON object per line, one line per request.
//!
//! Tests read it to prove what reached the Git server: which requests, how many body bytes, and
//! that no credential did. The `Authorization` header is never written as it was; the log keeps
//! only whether it was there and a SHA-256 of each value, so a test can check for a known token
//! without the log holding tokens.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{HarnessError, Result};

/// One request as the upstream saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRequest {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The request path without the query, as sent (not percent-decoded).
    pub path: String,
    /// The query string without `?`; empty when there was none.
    pub query: String,
    /// Every request header as (lower-case name, value), in arrival order, repeated names kept;
    /// `authorization` is never among them.
    pub headers: Vec<(String, String)>,
    /// What is known of the `Authorization` header.
    pub authorization: AuthorizationSeen,
    /// Request body bytes received from the client (after HTTP framing is removed).
    pub request_bytes: u64,
    /// The status sent back.
    pub status: u16,
    /// Response body bytes sent back.
    pub response_bytes: u64,
    /// How the exchange ended.
    pub outcome: Outcome,
}

/// The `Authorization` header of a request, reduced to what can be logged safely.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationSeen {
    /// Whether the request carried the header at all.
    pub present: bool,
    /// Lower-case hex SHA-256 of each value of the header, in arrival order.
    pub sha256: Vec<String>,
}

/// How one upstream exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The backend answered and the whole answer went out.
    Complete,
    /// The client went away (request body broken off, or the answer could not be sent).
    ClientAborted,
    /// git http-backend could not be started or wrote no valid CGI head.
    BackendFailed,
}

impl AuthorizationSeen {
    /// Reduces the values of the `Authorization` header to presence and hashes.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let sha256: Vec<String> = values.into_iter().map(sha256_hex).collect();
        AuthorizationSeen {
            present: !sha256.is_empty(),
            sha256,
        }
    }

    /// Whether one of the values was exactly `value`, e.g. `Bearer <jwt>`.
    pub fn had_value(&self, value: &str) -> bool {
        let wanted = sha256_hex(value.as_bytes());
        self.sha256.contains(&wanted)
    }
}

impl UpstreamRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this was a push (`POST .../git-receive-pack`).
    pub fn is_receive_pack(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/git-receive-pack")
    }

    /// Whether `needle` occurs anywhere in the logged request line or header values, used to
    /// show that a token did not travel upstream under another header name.
    pub fn mentions(&self, needle: &str) -> bool {
        self.path.contains(needle)
            || self.query.contains(needle)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads every request from an upstream log file; a missing file means no request yet.
pub fn read_log(path: &Path) -> Result<Vec<UpstreamRequest>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(HarnessError::io("read", path, err)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|source| HarnessError::LogLine {
                path: path.to_owned(),
                line: index + 1,
                source,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_is_kept_only_as_presence_and_hash() {
        let seen = AuthorizationSeen::from_values([b"Bearer abc".as_slice()]);
        assert!(seen.present);
        assert!(seen.had_value("Bearer abc"));
        assert!(!seen.had_value("Bearer abd"));
        let json = serde_json::to_string(&seen).unwrap();
        assert!(!json.contains("abc"), "{json}");
    }

    #[test]
    fn no_header_means_absent() {
        let seen = AuthorizationSeen::from_values(std::iter::empty());
        assert_eq!(seen, AuthorizationSeen::default());
    }

    #[test]
    fn a_log_line_round_trips() {
        let request = UpstreamRequest {
            method: "POST".into(),
            path: "/demo.git/git-receive-pack".into(),
            query: String::new(),
            headers: vec![(
                "content-type".into(),
                "application/x-git-receive-pack-request".into(),
            )],
            authorization: AuthorizationSeen::default(),
            request_bytes: 10,
            status: 200,
            response_bytes: 20,
            outcome: Outcome::Complete,
        };
        let line = serde_json::to_string(&request).unwrap();
        assert!(line.contains("\"outcome\":\"complete\""), "{line}");
        let back: UpstreamRequest = serde_json::from_str(&line).unwrap();
        assert_eq!(back, request);
        assert!(back.is_receive_pack());
        assert_eq!(
            back.header("Content-Type"),
            Some("application/x-git-receive-pack-request")
        );
    }
}
