//! Structural checks on candidate secrets: checksums, JWT and PEM framing, Basic credentials,
//! and the entropy measure.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::rule::Validation;

/// The base62 alphabet of GitHub-style token checksums: digits, then upper, then lower case.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the random part of a GitHub-style token, between the `xxx_` prefix and checksum.
pub const GITHUB_TOKEN_BODY_LEN: usize = 30;

/// Length of the base62 CRC32 checksum that ends a GitHub-style token.
pub const GITHUB_TOKEN_CHECKSUM_LEN: usize = 6;

/// The CRC32 of GitHub-style tokens: the IEEE polynomial, as zlib computes it.
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Runs `validation` on a match: `secret` is the secret group, `whole` the whole match, and
/// `before` the bytes that precede the match, [`Validation::lookbehind`] of them, or fewer at
/// the start of the stream (`at_stream_start` then says so).
pub fn check(
    validation: Validation,
    secret: &[u8],
    whole: &[u8],
    before: &[u8],
    at_stream_start: bool,
) -> bool {
    match validation {
        Validation::GithubChecksum => github_checksum_ok(secret),
        Validation::Jwt => jwt_ok(secret),
        Validation::Pem => pem_ok(whole),
        Validation::BasicAuth => basic_auth_ok(secret),
        Validation::KeyAtLineStart => key_at_line_start(before, at_stream_start),
    }
}

/// The most name bytes [`key_at_line_start`] walks back over.
const KEY_NAME_MAX: usize = 48;

/// The most indentation bytes [`key_at_line_start`] walks back over.
const KEY_INDENT_MAX: usize = 32;

/// The bytes [`key_at_line_start`] may read: a name, indentation twice (around `export`),
/// `export` itself and the newline.
pub const KEY_LOOKBEHIND: usize = KEY_NAME_MAX + 2 * KEY_INDENT_MAX + b"export".len() + 1;

/// Whether `before` ends with `[ \t]*(export[ \t]+)?[A-Za-z0-9_.-]*` that starts a line: a
/// `\n` before it, or the start of the stream.
pub fn key_at_line_start(before: &[u8], at_stream_start: bool) -> bool {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    let is_blank = |b: u8| b == b' ' || b == b'\t';
    let mut i = before.len();
    let mut walked = 0;
    while i > 0 && is_name(before[i - 1]) && walked < KEY_NAME_MAX {
        i -= 1;
        walked += 1;
    }
    let mut blanks = 0;
    while i > 0 && is_blank(before[i - 1]) && blanks < KEY_INDENT_MAX {
        i -= 1;
        blanks += 1;
    }
    if blanks > 0 && before[..i].ends_with(b"export") {
        i -= b"export".len();
        blanks = 0;
        while i > 0 && is_blank(before[i - 1]) && blanks < KEY_INDENT_MAX {
            i -= 1;
            blanks += 1;
        }
    }
    match i {
        0 => at_stream_start,
        _ => before[i - 1] == b'\n',
    }
}

/// Shannon entropy of `bytes`, in bits per byte (0 for an empty slice).
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// The six-character base62 checksum of a GitHub-style token body.
pub fn github_checksum(body: &[u8]) -> [u8; GITHUB_TOKEN_CHECKSUM_LEN] {
    let mut value = CRC32.checksum(body);
    let mut out = [b'0'; GITHUB_TOKEN_CHECKSUM_LEN];
    // 62^6 > 2^32, so six digits always hold the value; unused leading digits stay '0'.
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Whether a `xxx_` token ends in the checksum of its thirty-character body.
///
/// See "Behind GitHub's new authentication token formats" (GitHub blog, 2021); npm access tokens
/// use the same scheme.
pub fn github_checksum_ok(token: &[u8]) -> bool {
    let Some(underscore) = token.iter().position(|&b| b == b'_') else {
        return false;
    };
    let rest = &token[underscore + 1..];
    if rest.len() != GITHUB_TOKEN_BODY_LEN + GITHUB_TOKEN_CHECKSUM_LEN {
        return false;
    }
    let (body, checksum) = rest.split_at(GITHUB_TOKEN_BODY_LEN);
    github_checksum(body) == checksum
}

/// Whether a token's first two segments base64url-decode to JSON objects and the header has an
/// `alg` member (RFC 7519 section 7.2, RFC 7515 section 4.1.1).
pub fn jwt_ok(token: &[u8]) -> bool {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Some(header) = decode_json_object(header) else {
        return false;
    };
    header.get("alg").is_some_and(|alg| alg.is_string()) && decode_json_object(payload).is_some()
}

fn decode_json_object(segment: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    // Some encoders keep the `=` padding; RFC 7515 says to drop it.
    let end = segment
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |i| i + 1);
    let bytes = URL_SAFE_NO_PAD.decode(&segment[..end]).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The smallest decoded body accepted as a private key. The shortest real one here, an
/// Ed25519 OpenSSH key or a P-256 SEC 1 key, is over 100 bytes.
const PEM_MIN_BODY: usize = 64;

/// Whether a PEM block's labels agree and its body decodes to something shaped like the key its
/// label names (RFC 7468 framing; DER SEQUENCE, `openssh-key-v1`, or an OpenPGP packet).
///
/// The block may be JSON-escaped (`\n` for line breaks), as in Google service account files.
pub fn pem_ok(block: &[u8]) -> bool {
    let Some(label) = pem_label(block, b"-----BEGIN ") else {
        return false;
    };
    let Some(end_at) = find(block, b"-----END ") else {
        return false;
    };
    let Some(end_label) = pem_label(&block[end_at..], b"-----END ") else {
        return false;
    };
    if label != end_label {
        return false;
    }
    let body_start = b"-----BEGIN ".len() + label.len() + b"-----".len();
    let Some(body) = block.get(body_start..end_at) else {
        return false;
    };
    let text = unescape_json_newlines(body);
    let mut has_headers = false;
    let mut b64 = Vec::with_capacity(text.len());
    for line in text.split(|&b| b == b'\n') {
        let line = trim_ascii(line);
        if line.is_empty() {
            continue;
        }
        if line.contains(&b':') {
            // Proc-Type / DEK-Info (RFC 1421) or PGP armour headers (RFC 4880 section 6.2).
            has_headers = true;
            continue;
        }
        if line.first() == Some(&b'=') && line.len() == 5 {
            // PGP armour checksum line.
            continue;
        }
        b64.extend(line.iter().copied().filter(|b| !b.is_ascii_whitespace()));
    }
    let Ok(der) = STANDARD.decode(&b64) else {
        return false;
    };
    if der.len() < PEM_MIN_BODY {
        return false;
    }
    match label {
        b"OPENSSH PRIVATE KEY" => der.starts_with(b"openssh-key-v1\0"),
        b"PGP PRIVATE KEY BLOCK" => der[0] & 0x80 != 0,
        // An encrypted PKCS#1 body is ciphertext; only unencrypted ones must be DER.
        _ => has_headers || der[0] == 0x30,
    }
}

fn pem_label<'a>(text: &'a [u8], marker: &[u8]) -> Option<&'a [u8]> {
    let rest = text.strip_prefix(marker)?;
    let close = find(rest, b"-----")?;
    Some(&rest[..close])
}

fn unescape_json_newlines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && matches!(body.get(i + 1), Some(b'n' | b'r')) {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// Whether a Basic credential decodes to printable `user:password` with a non-empty password
/// (RFC 7617 section 2).
pub fn basic_auth_ok(credential: &[u8]) -> bool {
    let Ok(decoded) = STANDARD.decode(credential) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    colon + 1 < decoded.len() && decoded.iter().all(|&b| (0x20..0x7f).contains(&b))
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim_ascii(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_a_single_repeated_byte_is_zero() {
        assert_eq!(shannon_entropy(b"aaaaaaaa"), 0.0);
    }

    #[test]
    fn entropy_of_sixteen_distinct_bytes_is_four_bits() {
        assert!((shannon_entropy(b"0123456789abcdef") - 4.0).abs() < 1e-9);
    }

    #[test]
    fn a_computed_checksum_validates_and_a_changed_body_does_not() {
        let body = b"abcdefghijklmnopqrstuvwxyz0123";
        let mut token = b"ghp_".to_vec();
        token.extend_from_slice(body);
        token.extend_from_slice(&github_checksum(body));
        assert!(github_checksum_ok(&token));
        token[6] = b'Z';
        assert!(!github_checksum_ok(&token));
    }

    #[test]
    fn basic_credentials_need_a_colon_and_a_password() {
        assert!(basic_auth_ok(b"dXNlcjpodW50ZXIy")); // user:hunter2
        assert!(!basic_auth_ok(b"dXNlcg==")); // user
        assert!(!basic_auth_ok(b"dXNlcjo=")); // user:
    }

    #[test]
    fn a_key_at_line_start_may_be_indented_exported_or_dotted() {
        assert!(key_at_line_start(b"x\n  DB_", false));
        assert!(key_at_line_start(b"x\nexport SESSION_", false));
        assert!(key_at_line_start(b"spring.datasource.", true));
        assert!(!key_at_line_start(b"spring.datasource.", false));
        assert!(!key_at_line_start(b"x\nlet ", false));
    }

    #[test]
    fn a_jwt_header_without_alg_is_rejected() {
        // {"typ":"JWT"} . {"sub":"1"}
        assert!(!jwt_ok(b"eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.c2ln"));
        // {"alg":"HS256"} . {"sub":"1"}
        assert!(jwt_ok(b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"));
    }
}
