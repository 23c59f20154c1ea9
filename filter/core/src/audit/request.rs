//! What an upload-pack request asks for: the protocol v2 command, the object ids wanted, and
//! the refs asked for by `ref-prefix` (ls-refs) or `want-ref` (fetch).
//!
//! gitprotocol-v2, "ls-refs" and "fetch"; gitprotocol-pack, "Packfile Negotiation" (v0: the
//! first `want` line carries the capabilities after a space). Only the head of each line is
//! kept ([`MAX_LINE_HEAD`]), so `have` lines and long capability lists cost nothing to hold.
//!
//! git compresses an upload-pack request larger than about a kilobyte (`Content-Encoding:
//! gzip`, git-smart-http.md §2). Such a body is inflated here for reading only (the bytes the
//! upstream gets are untouched), up to a configured number of inflated bytes.

use std::io::{self, Write};

use flate2::write::GzDecoder;

use super::Capped;
use super::skim::{Flow, LineHead, PktSink, Skimmer, Special};

/// Bytes of a request line kept: enough for `want-ref <ref>` with a long ref name, more than
/// any `want <oid>` or `command=` line needs.
pub const MAX_LINE_HEAD: usize = 1024;

/// How the body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestEncoding {
    /// As sent.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
    /// Something else: not read.
    Other,
}

impl RequestEncoding {
    /// Reads the `Content-Encoding` header (values of a repeated header joined by `,`).
    pub fn from_header(value: Option<&str>) -> RequestEncoding {
        match value.map(str::trim) {
            None | Some("") => RequestEncoding::Identity,
            Some(v) if v.eq_ignore_ascii_case("identity") => RequestEncoding::Identity,
            Some(v) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => {
                RequestEncoding::Gzip
            }
            Some(_) => RequestEncoding::Other,
        }
    }
}

/// What the request's lines said.
#[derive(Debug, Clone, Default)]
pub struct RequestLines {
    /// The v2 command (`ls-refs`, `fetch`), if any.
    pub command: Option<String>,
    /// Object ids after `want`.
    pub wants: Capped<String>,
    /// `want-ref` arguments (fetch).
    pub refs: Capped<String>,
    /// `ref-prefix` arguments (ls-refs): a filter on what is advertised, not refs.
    pub prefixes: Capped<String>,
    /// Lines cut at [`MAX_LINE_HEAD`] that were of interest.
    pub cut_lines: u64,
}

/// Receives the request's packets.
#[derive(Debug)]
struct LineSink {
    head: LineHead,
    lines: RequestLines,
}

impl PktSink for LineSink {
    fn start(&mut self, _len: usize) {
        self.head.clear();
    }

    fn payload(&mut self, bytes: &[u8]) -> Flow {
        self.head.push(bytes)
    }

    fn end(&mut self) {
        let text = String::from_utf8_lossy(self.head.text());
        let lines = &mut self.lines;
        if let Some(command) = text.strip_prefix("command=") {
            lines.command.get_or_insert_with(|| command.to_owned());
        } else if let Some(rest) = text.strip_prefix("want-ref ") {
            lines.refs.push(rest.to_owned());
            lines.cut_lines += u64::from(self.head.cut);
        } else if let Some(rest) = text.strip_prefix("ref-prefix ") {
            lines.prefixes.push(rest.to_owned());
            lines.cut_lines += u64::from(self.head.cut);
        } else if let Some(rest) = text.strip_prefix("want ") {
            // v0: `want <oid> <capabilities>` on the first line.
            let oid = rest.split(' ').next().unwrap_or_default();
            lines.wants.push(oid.to_owned());
        }
    }

    fn special(&mut self, _special: Special) {}
}

/// Feeds inflated bytes to the skimmer, up to a budget.
struct Inflated<'a> {
    skim: &'a mut Skimmer,
    sink: &'a mut LineSink,
    budget: &'a mut u64,
}

impl Write for Inflated<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = usize::try_from(*self.budget)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if take == 0 && !buf.is_empty() {
            return Err(io::Error::other("inflated request over budget"));
        }
        self.skim
            .feed(buf.get(..take).unwrap_or_default(), self.sink);
        *self.budget -= take as u64;
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An upload-pack request body, read as it streams.
pub struct RequestObserver {
    encoding: RequestEncoding,
    skim: Skimmer,
    sink: LineSink,
    /// Inflater state for a gzip body; it writes into a scratch buffer handed to the skimmer.
    inflater: Option<GzDecoder<Vec<u8>>>,
    /// Bytes of (inflated) body still to read.
    budget: u64,
    /// Why reading stopped early, for the notes.
    stopped: Option<String>,
}

impl std::fmt::Debug for RequestObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestObserver")
            .field("encoding", &self.encoding)
            .field("offset", &self.skim.offset())
            .finish_non_exhaustive()
    }
}

impl RequestObserver {
    /// An observer keeping at most `max_refs` refs and `max_wants` wants, reading at most
    /// `max_bytes` (inflated) bytes.
    pub fn new(
        encoding: RequestEncoding,
        max_refs: usize,
        max_wants: usize,
        max_bytes: u64,
    ) -> Self {
        let stopped = (encoding == RequestEncoding::Other)
            .then(|| "request: body in an unknown content encoding, not read".to_owned());
        RequestObserver {
            encoding,
            skim: Skimmer::default(),
            sink: LineSink {
                head: LineHead::new(MAX_LINE_HEAD),
                lines: RequestLines {
                    wants: Capped::new(max_wants),
                    refs: Capped::new(max_refs),
                    prefixes: Capped::new(max_refs),
                    ..RequestLines::default()
                },
            },
            inflater: (encoding == RequestEncoding::Gzip).then(|| GzDecoder::new(Vec::new())),
            budget: max_bytes,
            stopped,
        }
    }

    /// True while more body bytes are worth reading.
    pub fn wants_more(&self) -> bool {
        self.stopped.is_none() && self.skim.error().is_none()
    }

    /// Reads the next chunk of the body as sent.
    pub fn feed(&mut self, chunk: &[u8]) {
        if !self.wants_more() {
            return;
        }
        match &mut self.inflater {
            None => {
                let take = usize::try_from(self.budget)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                self.skim
                    .feed(chunk.get(..take).unwrap_or_default(), &mut self.sink);
                self.budget -= take as u64;
                if take < chunk.len() {
                    self.stopped = Some(format!(
                        "request: only the first {} bytes of the body were read",
                        self.skim.offset()
                    ));
                }
            }
            Some(inflater) => {
                let result = inflater.write_all(chunk).and_then(|()| inflater.flush());
                // The inflater writes into its own Vec; move that into the skimmer at once so
                // that it never holds more than one chunk's worth.
                let out = std::mem::take(inflater.get_mut());
                let mut writer = Inflated {
                    skim: &mut self.skim,
                    sink: &mut self.sink,
                    budget: &mut self.budget,
                };
                let fed = writer.write_all(&out);
                if fed.is_err() {
                    self.stopped = Some(format!(
                        "request: only the first {} inflated bytes of the body were read",
                        self.skim.offset()
                    ));
                } else if result.is_err() {
                    self.stopped = Some("request: corrupt gzip body, not read further".into());
                }
            }
        }
    }

    /// What was read, with notes on anything left out.
    pub fn finish(self) -> (RequestLines, Vec<String>) {
        let mut notes: Vec<String> = self.stopped.into_iter().collect();
        if let Some(err) = self.skim.error() {
            notes.push(format!("request: {err}; the rest was not read"));
        }
        if self.sink.lines.cut_lines > 0 {
            notes.push(format!(
                "request: {} ref names longer than {MAX_LINE_HEAD} bytes were cut",
                self.sink.lines.cut_lines
            ));
        }
        (self.sink.lines, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(encoding: RequestEncoding, pieces: &[&[u8]]) -> (RequestLines, Vec<String>) {
        let mut observer = RequestObserver::new(encoding, 10, 10, 1 << 20);
        for piece in pieces {
            observer.feed(piece);
        }
        observer.finish()
    }

    const V2_LS_REFS: &[u8] =
        b"0014command=ls-refs\n00010009peel\n001bref-prefix refs/heads/\n0000";

    #[test]
    fn a_v2_ls_refs_request_names_its_command_and_prefixes() {
        let (lines, notes) = read(RequestEncoding::Identity, &[V2_LS_REFS]);
        assert_eq!(lines.command.as_deref(), Some("ls-refs"));
        assert_eq!(lines.prefixes.items, ["refs/heads/"]);
        assert!(notes.is_empty());
    }

    #[test]
    fn a_gzip_body_is_inflated_for_reading_whatever_the_split() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(V2_LS_REFS).expect("in memory");
        let gz = encoder.finish().expect("in memory");
        for at in 0..=gz.len() {
            let (a, b) = gz.split_at(at);
            let (lines, notes) = read(RequestEncoding::Gzip, &[a, b]);
            assert_eq!(lines.prefixes.items, ["refs/heads/"], "split at {at}");
            assert!(notes.is_empty(), "{notes:?}");
        }
        let (lines, notes) = read(RequestEncoding::Gzip, &[b"not gzip at all"]);
        assert!(lines.command.is_none());
        assert_eq!(notes, ["request: corrupt gzip body, not read further"]);
    }

    #[test]
    fn reading_stops_at_the_byte_budget_with_a_note() {
        let mut observer = RequestObserver::new(RequestEncoding::Identity, 10, 10, 20);
        observer.feed(V2_LS_REFS);
        let (lines, notes) = observer.finish();
        assert_eq!(lines.command.as_deref(), Some("ls-refs"));
        assert!(lines.prefixes.items.is_empty());
        assert_eq!(
            notes,
            ["request: only the first 20 bytes of the body were read"]
        );
    }

    #[test]
    fn an_unknown_encoding_is_not_read() {
        let (lines, notes) = read(RequestEncoding::Other, &[V2_LS_REFS]);
        assert!(lines.command.is_none());
        assert_eq!(notes.len(), 1);
    }
}
