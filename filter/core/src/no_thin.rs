//! Thin packs off: `no-thin` added to the capabilities of a receive-pack advertisement.
//!
//! A thin pack holds deltas against objects the server already has (gitprotocol-pack,
//! "thin-pack"); the gate cannot rebuild those objects, so a secret split between the bytes
//! such a delta copies and the bytes it inserts would not be seen whole. git's `send-pack`
//! stops sending thin packs when the receive-pack advertisement carries `no-thin`
//! (gitprotocol-capabilities, "no-thin"; send-pack.c: `if (server_supports("no-thin"))
//! args->use_thin_pack = 0;`). [`NoThin`] adds it on the way to the client.
//!
//! The advertisement of `GET .../info/refs?service=git-receive-pack` (gitprotocol-http,
//! "Smart Server Response"):
//!
//! ```text
//! pkt-line("# service=git-receive-pack\n") flush-pkt
//! [pkt-line("version 1\n")]
//! pkt-line(<id> SP <refname> NUL <capabilities> LF)      (an empty repository:
//! ...                                                     <zero id> SP "capabilities^{}")
//! flush-pkt
//! ```
//!
//! Only the first ref line carries capabilities. The rewriter is fed the body in slices of any
//! size; it holds back at most one pkt-line ([`MAX_PKT_LEN`] bytes) until that line is whole,
//! and passes everything after it untouched. Anything it does not recognise passes unchanged:
//! the pack scan still refuses a delta it cannot rebuild.

use crate::pktline::{LENGTH_PREFIX_LEN, MAX_PKT_LEN};

/// The capability that turns thin packs off.
pub const NO_THIN: &[u8] = b"no-thin";

/// The first line of a smart HTTP advertisement (gitprotocol-http, "Smart Server Response").
const SERVICE_LINE: &[u8] = b"# service=";

/// The protocol version line of a version 1 advertisement (gitprotocol-pack, "Reference
/// Discovery").
const VERSION_LINE: &[u8] = b"version ";

/// What became of the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The first ref line is not read yet.
    Pending,
    /// `no-thin` was added.
    Added,
    /// The advertisement already had it.
    Present,
    /// The body was not an advertisement this rewriter understands; it passed unchanged.
    Unrecognised,
}

/// Adds `no-thin` to the capabilities of a receive-pack advertisement as it streams by.
#[derive(Debug)]
pub struct NoThin {
    /// Bytes of an incomplete pkt-line before the first ref line; never more than
    /// [`MAX_PKT_LEN`] once a feed returns.
    carry: Vec<u8>,
    outcome: Outcome,
}

impl Default for NoThin {
    fn default() -> NoThin {
        NoThin::new()
    }
}

impl NoThin {
    /// A rewriter at the start of the body.
    pub fn new() -> NoThin {
        NoThin {
            carry: Vec::new(),
            outcome: Outcome::Pending,
        }
    }

    /// What became of the capabilities so far.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Bytes held back, waiting for the rest of their pkt-line.
    pub fn held(&self) -> usize {
        self.carry.len()
    }

    /// Feeds the next body bytes; what may go to the client is appended to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.outcome != Outcome::Pending {
            out.extend_from_slice(input);
            return;
        }
        self.carry.extend_from_slice(input);
        let mut at = 0;
        while self.outcome == Outcome::Pending {
            match next_line(self.carry.get(at..).unwrap_or_default()) {
                Line::Incomplete => break,
                Line::Invalid => self.outcome = Outcome::Unrecognised,
                Line::Control(len) => {
                    out.extend_from_slice(self.carry.get(at..at + len).unwrap_or_default());
                    at += len;
                }
                Line::Data(len) => {
                    let line = self.carry.get(at..at + len).unwrap_or_default();
                    let payload = line.get(LENGTH_PREFIX_LEN..).unwrap_or_default();
                    if payload.starts_with(SERVICE_LINE) || payload.starts_with(VERSION_LINE) {
                        out.extend_from_slice(line);
                    } else {
                        self.outcome = match with_no_thin(payload) {
                            Rewrite::Added(new) => {
                                out.extend_from_slice(&new);
                                Outcome::Added
                            }
                            Rewrite::Present => {
                                out.extend_from_slice(line);
                                Outcome::Present
                            }
                            Rewrite::Unrecognised => {
                                out.extend_from_slice(line);
                                Outcome::Unrecognised
                            }
                        };
                    }
                    at += len;
                }
            }
        }
        if self.outcome == Outcome::Pending {
            self.carry.drain(..at);
        } else {
            out.extend_from_slice(self.carry.get(at..).unwrap_or_default());
            self.carry = Vec::new();
        }
    }

    /// The body ended: anything held back goes out as it came.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.carry);
        if self.outcome == Outcome::Pending {
            self.outcome = Outcome::Unrecognised;
        }
    }
}

/// The next pkt-line at the start of `bytes`.
enum Line {
    /// Not all of it is here yet.
    Incomplete,
    /// A length that is not four hex digits, or out of range.
    Invalid,
    /// A flush, delim or response-end packet of this many bytes (gitprotocol-v2, "Packet-Line
    /// Framing": `0000`, `0001`, `0002`).
    Control(usize),
    /// A data packet of this many bytes, prefix included.
    Data(usize),
}

fn next_line(bytes: &[u8]) -> Line {
    let Some(prefix) = bytes.get(..LENGTH_PREFIX_LEN) else {
        return Line::Incomplete;
    };
    let Some(len) = std::str::from_utf8(prefix)
        .ok()
        .filter(|text| text.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|text| usize::from_str_radix(text, 16).ok())
    else {
        return Line::Invalid;
    };
    match len {
        0..=2 => Line::Control(LENGTH_PREFIX_LEN),
        3 | 4 => Line::Invalid,
        len if len > MAX_PKT_LEN => Line::Invalid,
        len if bytes.len() < len => Line::Incomplete,
        len => Line::Data(len),
    }
}

enum Rewrite {
    /// The new pkt-line, prefix included.
    Added(Vec<u8>),
    Present,
    Unrecognised,
}

/// The ref line `payload` with `no-thin` appended to its capabilities.
fn with_no_thin(payload: &[u8]) -> Rewrite {
    let Some(nul) = payload.iter().position(|&b| b == 0) else {
        return Rewrite::Unrecognised;
    };
    let (head, rest) = payload.split_at(nul + 1);
    let (caps, newline) = match rest.strip_suffix(b"\n") {
        Some(caps) => (caps, &b"\n"[..]),
        None => (rest, &b""[..]),
    };
    if caps.split(|&b| b == b' ').any(|cap| cap == NO_THIN) {
        return Rewrite::Present;
    }
    let separator: &[u8] = if caps.is_empty() { b"" } else { b" " };
    let parts = [head, caps, separator, NO_THIN, newline];
    let len = LENGTH_PREFIX_LEN + parts.iter().map(|part| part.len()).sum::<usize>();
    if len > MAX_PKT_LEN {
        return Rewrite::Unrecognised;
    }
    let mut line = format!("{len:04x}").into_bytes();
    for part in parts {
        line.extend_from_slice(part);
    }
    Rewrite::Added(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(payload: &[u8]) -> Vec<u8> {
        let mut line = format!("{:04x}", payload.len() + 4).into_bytes();
        line.extend_from_slice(payload);
        line
    }

    fn advertisement(first: &[u8]) -> Vec<u8> {
        let mut body = pkt(b"# service=git-receive-pack\n");
        body.extend_from_slice(b"0000");
        body.extend(pkt(first));
        body.extend(pkt(
            b"1111111111111111111111111111111111111111 refs/heads/dev\n",
        ));
        body.extend_from_slice(b"0000");
        body
    }

    fn rewrite_split(body: &[u8], cuts: &[usize]) -> (Vec<u8>, Outcome) {
        let mut rewriter = NoThin::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain([&body.len()]) {
            rewriter.feed(&body[at..cut], &mut out);
            assert!(rewriter.held() <= MAX_PKT_LEN);
            at = cut;
        }
        rewriter.finish(&mut out);
        (out, rewriter.outcome())
    }

    #[test]
    fn no_thin_is_appended_to_the_first_ref_line_at_every_split() {
        let first = b"2222222222222222222222222222222222222222 refs/heads/main\0report-status \
                      delete-refs ofs-delta\n";
        let body = advertisement(first);
        let want = advertisement(
            b"2222222222222222222222222222222222222222 refs/heads/main\0report-status \
              delete-refs ofs-delta no-thin\n",
        );
        for cut in 0..=body.len() {
            assert_eq!(rewrite_split(&body, &[cut]), (want.clone(), Outcome::Added));
        }
        let bytewise: Vec<usize> = (1..body.len()).collect();
        assert_eq!(rewrite_split(&body, &bytewise), (want, Outcome::Added));
    }

    #[test]
    fn an_advertisement_that_already_has_no_thin_is_unchanged() {
        let body = advertisement(b"2222222222222222222222222222222222222222 HEAD\0no-thin ofs\n");
        assert_eq!(rewrite_split(&body, &[7]), (body, Outcome::Present));
    }

    #[test]
    fn a_body_that_is_not_an_advertisement_passes_unchanged() {
        for body in [
            &b"not a pkt-line at all"[..],
            b"0003",
            b"ffff",
            b"0009hello",
        ] {
            let (out, outcome) = rewrite_split(body, &[2]);
            assert_eq!(out, body);
            assert_eq!(outcome, Outcome::Unrecognised);
        }
    }
}
