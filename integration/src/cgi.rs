//! The CGI side of `gitgate-upstream`: the response head that `git http-backend` writes before its
//! body (RFC 3875, section 6) and the decoding of `PATH_INFO` (RFC 3875, section 4.1.5).

/// Upper bound on a CGI response head. git-http-backend writes a handful of short headers; a head
/// that grows past this is a broken backend, and buffering it without a bound would be a hazard.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The parsed head of a CGI response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    /// The HTTP status: the `Status:` header, 302 for a bare `Location:`, else 200 (RFC 3875 6.3.3).
    pub status: u16,
    /// The other headers in the order the script wrote them; `Status` is not among them.
    pub headers: Vec<(String, String)>,
    /// Length of the head including the blank line that ends it; the body starts at this offset.
    pub head_len: usize,
}

/// Why a CGI response head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgiError {
    /// No blank line within the first [`MAX_HEAD_BYTES`] bytes.
    #[error("cgi head is longer than {limit} bytes")]
    HeadTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A header line without a colon.
    #[error("cgi header line {line} has no colon")]
    MissingColon {
        /// 1-based line number in the head.
        line: usize,
    },
    /// A header line that is not UTF-8 text.
    #[error("cgi header line {line} is not utf-8")]
    NotUtf8 {
        /// 1-based line number in the head.
        line: usize,
    },
    /// A `Status:` header that does not start with a three-digit code in 100..=999.
    #[error("cgi status {value:?} is not a three-digit code")]
    BadStatus {
        /// The header value as written.
        value: String,
    },
}

/// Parses a CGI response head from the start of `buf`.
///
/// Returns `Ok(None)` while the blank line that ends the head has not arrived yet. Lines end with
/// LF; a CR before it is dropped, since CGI scripts may write either (RFC 3875 6.3).
pub fn parse_head(buf: &[u8]) -> Result<Option<CgiHead>, CgiError> {
    let mut headers = Vec::new();
    let mut status = None;
    let mut start = 0;
    let mut line_no = 0;
    while let Some(newline) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + newline;
        let mut line = &buf[start..end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        start = end + 1;
        line_no += 1;
        if line.is_empty() {
            let has_location = headers
                .iter()
                .any(|(name, _): &(String, String)| name.eq_ignore_ascii_case("location"));
            let status = status.unwrap_or(if has_location { 302 } else { 200 });
            return Ok(Some(CgiHead {
                status,
                headers,
                head_len: start,
            }));
        }
        let text = std::str::from_utf8(line).map_err(|_| CgiError::NotUtf8 { line: line_no })?;
        let (name, value) = text
            .split_once(':')
            .ok_or(CgiError::MissingColon { line: line_no })?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(value)?);
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    if buf.len() > MAX_HEAD_BYTES {
        return Err(CgiError::HeadTooLong {
            limit: MAX_HEAD_BYTES,
        });
    }
    Ok(None)
}

/// Reads the code of a `Status: 404 Not Found` value.
fn parse_status(value: &str) -> Result<u16, CgiError> {
    let bad = || CgiError::BadStatus {
        value: value.to_owned(),
    };
    let code = value.split_whitespace().next().ok_or_else(bad)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let code: u16 = code.parse().map_err(|_| bad())?;
    if code < 100 {
        return Err(bad());
    }
    Ok(code)
}

/// Decodes `%XX` escapes of a request path for `PATH_INFO`, which CGI wants decoded
/// (RFC 3875 4.1.5). A `%` not followed by two hex digits is kept as it is.
pub fn decode_path(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_with_crlf_lines_gives_its_headers_and_the_body_offset() {
        let raw = b"Expires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\
                    Content-Type: application/x-git-upload-pack-advertisement\r\n\r\n001e# service";
        let head = parse_head(raw).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.headers.len(), 2);
        assert_eq!(
            head.headers[1].1,
            "application/x-git-upload-pack-advertisement"
        );
        assert_eq!(&raw[head.head_len..], b"001e# service");
    }

    #[test]
    fn a_status_header_sets_the_code_and_is_not_forwarded() {
        let head = parse_head(b"Status: 404 Not Found\nContent-Type: text/plain\n\n").unwrap();
        let head = head.unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(
            head.headers,
            vec![("Content-Type".into(), "text/plain".into())]
        );
    }

    #[test]
    fn a_bare_location_means_a_redirect() {
        let head = parse_head(b"Location: /elsewhere\n\n").unwrap().unwrap();
        assert_eq!(head.status, 302);
    }

    #[test]
    fn a_head_cut_anywhere_asks_for_more_bytes() {
        let raw = b"Status: 200 OK\r\nContent-Type: x\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse_head(&raw[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_head(raw).unwrap().is_some());
    }

    #[test]
    fn malformed_heads_are_errors_not_panics() {
        assert_eq!(
            parse_head(b"no colon here\n\n"),
            Err(CgiError::MissingColon { line: 1 })
        );
        assert_eq!(
            parse_head(b"A: b\n\xff: c\n\n"),
            Err(CgiError::NotUtf8 { line: 2 })
        );
        for status in ["", "abc", "20", "2000 OK", "099 low"] {
            let raw = format!("Status: {status}\n\n");
            assert!(
                matches!(parse_head(raw.as_bytes()), Err(CgiError::BadStatus { .. })),
                "{status:?}"
            );
        }
    }

    #[test]
    fn an_endless_head_is_refused_at_the_limit() {
        let raw = vec![b'a'; MAX_HEAD_BYTES + 1];
        assert_eq!(
            parse_head(&raw),
            Err(CgiError::HeadTooLong {
                limit: MAX_HEAD_BYTES
            })
        );
    }

    #[test]
    fn path_escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(
            decode_path("/my%20repo.git/info/refs"),
            b"/my repo.git/info/refs"
        );
        assert_eq!(decode_path("/a%zz/b%4"), b"/a%zz/b%4");
        assert_eq!(decode_path("/%e2%9c%93"), "/\u{2713}".as_bytes());
    }
}
