//! Which masker a response body gets, from its `Content-Type` and `Content-Encoding`.
//!
//! git's own answers are recognised by their exact media types (git-smart-http.md §2); other
//! bodies by the configured patterns. A body that still carries a content coding cannot be
//! masked (the filter sees encoded bytes and does not inflate them, envoy-wasm.md §3), so it is
//! withheld or passed by policy.

/// `application/x-git-upload-pack-advertisement` and the receive-pack one.
const ADVERTISEMENT_SUFFIX: &str = "-advertisement";

/// The media type of a fetch answer.
pub const UPLOAD_PACK_RESULT: &str = "application/x-git-upload-pack-result";

/// The media type of a push answer.
pub const RECEIVE_PACK_RESULT: &str = "application/x-git-receive-pack-result";

/// The prefix of the smart-HTTP media types.
const GIT_PREFIX: &str = "application/x-git-";

/// Which of git's answers a pkt-line body is; it decides what side-band 1 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitBody {
    /// `info/refs?service=...`: ref lines and capabilities.
    Advertisement,
    /// A fetch answer: negotiation lines, then the pack in band 1 (or raw, without side-band).
    UploadPackResult,
    /// A push answer: the report-status pkt-lines, in band 1 when side-band was agreed.
    ReceivePackResult,
}

/// How a body is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// git's pkt-line framing: text packets and side-band 2 and 3 are masked and re-framed,
    /// pack data is copied.
    Git(GitBody),
    /// A JSON document: string values (and base64 file contents) are masked, the structure and
    /// every other byte are kept.
    Json,
    /// Text: masked anywhere.
    Text,
}

impl BodyKind {
    /// A short name for log lines.
    pub fn label(self) -> &'static str {
        match self {
            BodyKind::Git(GitBody::Advertisement) => "git advertisement",
            BodyKind::Git(GitBody::UploadPackResult) => "git upload-pack result",
            BodyKind::Git(GitBody::ReceivePackResult) => "git receive-pack result",
            BodyKind::Json => "json",
            BodyKind::Text => "text",
        }
    }
}

/// The media type of a `Content-Type` value: before any `;`, trimmed, lower case.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The git answer a media type names, if any.
pub fn git_body(essence: &str) -> Option<GitBody> {
    let rest = essence.strip_prefix(GIT_PREFIX)?;
    if essence == UPLOAD_PACK_RESULT {
        Some(GitBody::UploadPackResult)
    } else if essence == RECEIVE_PACK_RESULT {
        Some(GitBody::ReceivePackResult)
    } else if rest.ends_with(ADVERTISEMENT_SUFFIX) {
        Some(GitBody::Advertisement)
    } else {
        // Dumb-protocol objects and packs (`x-git-loose-object`, `x-git-packed-objects`) are
        // compressed object data: nothing to mask.
        None
    }
}

/// The content codings of a `Content-Encoding` value that are not `identity`, joined by `,`;
/// `None` when the body is not encoded.
pub fn non_identity_encoding(value: Option<&str>) -> Option<String> {
    let codings: Vec<String> = value?
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    (!codings.is_empty()).then(|| codings.join(","))
}

/// A configured media type pattern: `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypePattern {
    pattern: Vec<u8>,
}

impl TypePattern {
    /// Compiles a pattern; the message says what is wrong with it.
    pub(crate) fn new(pattern: &str) -> Result<TypePattern, String> {
        let pattern = pattern.trim().to_ascii_lowercase();
        if !pattern.contains('/') {
            return Err("must be a media type such as text/plain or text/*".into());
        }
        if let Some(bad) = pattern
            .chars()
            .find(|&c| !c.is_ascii_graphic() || c == ';' || c == ',')
        {
            return Err(format!("must not contain {bad:?}"));
        }
        Ok(TypePattern {
            pattern: pattern.into_bytes(),
        })
    }

    /// Whether `essence` (lower case, no parameters) matches.
    pub(crate) fn matches(&self, essence: &str) -> bool {
        wildcard_match(&self.pattern, essence.as_bytes())
    }
}

/// Matches `text` against `pattern` where `*` matches any run of bytes. Greedy with one
/// backtrack point, so it runs in time proportional to the product of the lengths at worst.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// The body that replaces a compressed response that cannot be masked, in the format the client
/// reads, so that it fails with a message instead of a corrupt body.
pub fn withheld_notice(kind: BodyKind, encoding: &str) -> Vec<u8> {
    // The coding comes from the upstream: keep only harmless characters.
    let coding: String = encoding
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, ',' | '-' | '.' | '_'))
        .take(64)
        .collect();
    let message = format!(
        "gitgate: response withheld: its content-encoding {coding} cannot be checked for secrets"
    );
    let mut out = Vec::new();
    match kind {
        BodyKind::Git(GitBody::Advertisement | GitBody::UploadPackResult) => {
            // An ERR packet where git expects the first line: git prints "remote error: ..."
            // (gitprotocol-pack, ERR packets; fetch-pack dies on it in v0 and v2 alike).
            let mut payload = crate::pktline::ERR_PREFIX.to_vec();
            payload.extend_from_slice(message.as_bytes());
            payload.push(b'\n');
            // The message is far below the pkt-line limit.
            let _ = crate::pktline::encode_data(&payload, &mut out);
        }
        BodyKind::Git(GitBody::ReceivePackResult) => {
            // A bare ERR in a push answer reads as "bad band #69"; band 3 is shown as
            // `remote: ...` (git-smart-http.md §2, status table).
            let mut text = message.into_bytes();
            text.push(b'\n');
            crate::sideband::encode(
                crate::sideband::Band::Error,
                &text,
                crate::sideband::SideBand::Small,
                &mut out,
            );
            crate::pktline::encode_flush(&mut out);
        }
        BodyKind::Json => {
            let document = serde_json::json!({ "message": message });
            out = document.to_string().into_bytes();
            out.push(b'\n');
        }
        BodyKind::Text => {
            out = message.into_bytes();
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_media_types_are_recognised() {
        assert_eq!(
            git_body("application/x-git-upload-pack-advertisement"),
            Some(GitBody::Advertisement)
        );
        assert_eq!(
            git_body("application/x-git-receive-pack-advertisement"),
            Some(GitBody::Advertisement)
        );
        assert_eq!(
            git_body(UPLOAD_PACK_RESULT),
            Some(GitBody::UploadPackResult)
        );
        assert_eq!(
            git_body(RECEIVE_PACK_RESULT),
            Some(GitBody::ReceivePackResult)
        );
        assert_eq!(git_body("application/x-git-loose-object"), None);
        assert_eq!(git_body("text/plain"), None);
    }

    #[test]
    fn the_essence_drops_parameters_and_case() {
        assert_eq!(
            essence("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert_eq!(essence("  text/plain  "), "text/plain");
    }

    #[test]
    fn identity_is_no_encoding() {
        assert_eq!(non_identity_encoding(None), None);
        assert_eq!(non_identity_encoding(Some("identity")), None);
        assert_eq!(non_identity_encoding(Some(" ")), None);
        assert_eq!(non_identity_encoding(Some("GZIP")), Some("gzip".into()));
        assert_eq!(
            non_identity_encoding(Some("identity, br")),
            Some("br".into())
        );
    }

    #[test]
    fn wildcards_match_any_run() {
        let pattern = TypePattern::new("application/vnd.github*.diff").expect("valid");
        assert!(pattern.matches("application/vnd.github.v3.diff"));
        assert!(pattern.matches("application/vnd.github.diff"));
        assert!(!pattern.matches("application/vnd.github.v3.patch"));
        let pattern = TypePattern::new("text/*").expect("valid");
        assert!(pattern.matches("text/plain"));
        assert!(pattern.matches("text/"));
        assert!(!pattern.matches("application/text"));
        assert!(TypePattern::new("*/*").expect("valid").matches("image/png"));
        assert!(TypePattern::new("plain").is_err());
        assert!(TypePattern::new("text/plain; x").is_err());
    }

    #[test]
    fn notices_are_valid_in_their_format() {
        let json = withheld_notice(BodyKind::Json, "gzip\"}");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("valid JSON");
        let message = value["message"].as_str().expect("a message");
        assert!(
            message.contains("content-encoding gzip cannot"),
            "{message}"
        );
        let pkt = withheld_notice(BodyKind::Git(GitBody::UploadPackResult), "br");
        assert!(pkt[4..].starts_with(b"ERR gitgate: "));
        let report = withheld_notice(BodyKind::Git(GitBody::ReceivePackResult), "br");
        assert_eq!(report[4], 3);
        assert!(report.ends_with(b"0000"));
    }
}
