//! What the client was sent, read from the bytes after masking: the refs advertised, the
//! upstream's report-status, the text shown, and for a fetch the pack's header and size.
//!
//! Layers (git-smart-http.md §2; gitprotocol-pack; gitprotocol-v2; gitprotocol-capabilities,
//! "side-band, side-band-64k" and "report-status"):
//!
//! - `info/refs`: `# service=...`, a flush, then `<oid> <ref>[\0<caps>]` lines (v0) or the v2
//!   capability advertisement (no refs).
//! - upload-pack: ls-refs output (`<oid> <ref> [attrs]`), or a fetch answer: `ACK`/`NAK` and
//!   section lines (`wanted-refs` names refs), then side-band packets. Band 1 is the pack: only
//!   its 12-byte header is read, the rest is skipped ([`ResponseObserver::skippable`]) so the
//!   filter need not even copy it. Without side-band (v0, rare) the pack follows raw.
//! - receive-pack: report-status lines (`unpack`, `ok <ref>`, `ng <ref> <reason>`), either
//!   bare or framed again inside band 1.
//!
//! Band 2 (progress) and band 3 (fatal error) text and `ERR` lines are what the client shows
//! as `remote:` lines: kept in `shown`, up to a byte budget. A packet is recognised as side-band
//! by its first payload byte (1, 2 or 3), which no ref, `ACK` or report-status line starts with.

use crate::api::RefOutcome;

use super::Capped;
use super::skim::{Flow, LineHead, PktSink, Skimmer, Special};

/// Bytes of a text line kept: more than any ref line or report-status line needs.
pub const MAX_LINE_HEAD: usize = 4096;

/// Bytes of one shown line kept (progress text is short; a longer line is cut).
pub const MAX_SHOWN_LINE: usize = 1024;

/// The pack header: `PACK`, version, entry count (gitformat-pack, "pack-*.pack files").
const PACK_HEADER_LEN: usize = 12;

/// Bytes read past a length prefix to learn a packet's band (and a pack header).
const PEEK_LEN: usize = 1 + PACK_HEADER_LEN;

/// Which response this is, from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// `GET .../info/refs?service=...`.
    Advertisement,
    /// `POST .../git-upload-pack`.
    UploadPack,
    /// `POST .../git-receive-pack`.
    ReceivePack,
    /// A `text/*` body (an error page, a local reply): its lines are shown text.
    Text,
    /// Anything else, or a body that is not pkt-lines: only counted.
    Opaque,
}

/// What the pack sent back carries, from its header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedPack {
    /// Entries in the pack header; `None` when the header was not seen whole.
    pub objects: Option<u64>,
    /// Bytes of pack data.
    pub bytes: u64,
}

/// Text the client was shown, up to a byte budget.
#[derive(Debug, Clone, Default)]
pub struct Shown {
    /// Lines kept, in order.
    pub lines: Vec<String>,
    bytes: usize,
    cap: usize,
    /// Bytes of lines left out once the budget was spent.
    pub left_out: u64,
    /// The line being assembled from side-band text.
    current: Vec<u8>,
}

impl Shown {
    fn new(cap: usize) -> Shown {
        Shown {
            cap,
            ..Shown::default()
        }
    }

    /// Adds one whole line.
    fn line(&mut self, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        if self.bytes.saturating_add(text.len()) > self.cap {
            self.left_out = self.left_out.saturating_add(text.len() as u64);
            return;
        }
        self.bytes += text.len();
        self.lines.push(text.to_owned());
    }

    /// Side-band text: lines end at LF; a CR starts the line over, as the terminal shows it
    /// (progress meters rewrite their line).
    fn text(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match byte {
                b'\n' => {
                    let line = std::mem::take(&mut self.current);
                    self.line(&line);
                }
                b'\r' => self.current.clear(),
                byte if self.current.len() < MAX_SHOWN_LINE => self.current.push(byte),
                _ => {}
            }
        }
    }

    /// True once the budget is spent.
    fn is_full(&self) -> bool {
        self.left_out > 0 || self.bytes >= self.cap
    }

    /// Ends a message: text without a final LF is a line too.
    fn end_message(&mut self) {
        let line = std::mem::take(&mut self.current);
        self.line(&line);
    }
}

/// What was read from the response.
#[derive(Debug, Clone, Default)]
pub struct ResponseRecord {
    /// Refs advertised (info/refs, ls-refs, wanted-refs).
    pub refs: Capped<String>,
    /// Per-ref outcomes from a report-status.
    pub outcomes: Vec<RefOutcome>,
    /// `unpack <status>` when it was not `ok`.
    pub unpack_error: Option<String>,
    /// Text shown to the client.
    pub shown: Shown,
    /// A fetch's pack.
    pub pack: Option<FetchedPack>,
}

/// Collects report-status lines (bare or inside band 1) and other text lines.
#[derive(Debug)]
struct Lines {
    kind: ResponseKind,
    record: ResponseRecord,
    /// Header bytes of the fetched pack gathered so far.
    pack_header: Vec<u8>,
    max_outcomes: usize,
    outcomes_left_out: u64,
}

impl Lines {
    /// One text line (payload without its LF).
    fn line(&mut self, text: &[u8]) {
        if let Some(message) = text.strip_prefix(b"ERR ") {
            self.record.shown.line(&[b"ERR ", message].concat());
            return;
        }
        if self.kind == ResponseKind::ReceivePack && self.report_status(text) {
            return;
        }
        if let Some(name) = ref_line(text) {
            self.record.refs.push(name);
        }
    }

    /// A report-status line; false when `text` is not one.
    fn report_status(&mut self, text: &[u8]) -> bool {
        let text = String::from_utf8_lossy(text);
        if let Some(status) = text.strip_prefix("unpack ") {
            if status != "ok" {
                self.record.unpack_error = Some(status.to_owned());
                self.record
                    .shown
                    .line(format!("unpack {status}").as_bytes());
            }
            return true;
        }
        let (ok, rest) = if let Some(rest) = text.strip_prefix("ok ") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("ng ") {
            (false, rest)
        } else {
            // `option ...` lines of report-status-v2 say nothing the record needs.
            return text.starts_with("option ");
        };
        let (refname, reason) = match rest.split_once(' ') {
            Some((refname, reason)) if !ok => (refname, Some(reason.to_owned())),
            _ => (rest, None),
        };
        if !ok {
            self.record
                .shown
                .line(format!("ng {refname} {}", reason.as_deref().unwrap_or_default()).as_bytes());
        }
        if self.record.outcomes.len() >= self.max_outcomes {
            self.outcomes_left_out += 1;
        } else {
            self.record.outcomes.push(RefOutcome {
                refname: refname.to_owned(),
                ok,
                reason,
            });
        }
        true
    }

    /// Band-1 bytes of a fetch: the first ones are the pack header.
    fn pack_data(&mut self, bytes: &[u8]) -> Flow {
        let pack = self.record.pack.get_or_insert_with(FetchedPack::default);
        pack.bytes = pack.bytes.saturating_add(bytes.len() as u64);
        let room = PACK_HEADER_LEN.saturating_sub(self.pack_header.len());
        self.pack_header
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        if let Some(header) = self.pack_header.first_chunk::<PACK_HEADER_LEN>()
            && pack.objects.is_none()
            && header.starts_with(b"PACK")
        {
            let count = [header[8], header[9], header[10], header[11]];
            pack.objects = Some(u64::from(u32::from_be_bytes(count)));
        }
        if self.pack_header.len() >= PACK_HEADER_LEN {
            Flow::Skip
        } else {
            Flow::More
        }
    }
}

/// The name in a ref line `<hex oid> <name>[\0caps| attrs]`; `None` for other lines and for
/// peeled (`^{}`) and placeholder (`capabilities^{}`) entries.
fn ref_line(text: &[u8]) -> Option<String> {
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let space = text.iter().position(|&b| b == b' ')?;
    let (oid, rest) = text.split_at(space);
    // SHA-1 or SHA-256 ids (gitformat-pack / hash-function-transition).
    if !matches!(oid.len(), 40 | 64) || !oid.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let rest = rest.get(1..).unwrap_or_default();
    let name = rest.split(|&b| b == b' ').next().unwrap_or_default();
    if name.is_empty() || name.ends_with(b"^{}") {
        return None;
    }
    Some(String::from_utf8_lossy(name).into_owned())
}

/// The outer packets: text lines, or side-band packets.
#[derive(Debug)]
struct Outer<'a> {
    lines: &'a mut Lines,
    inner: &'a mut Skimmer,
    head: &'a mut LineHead,
    /// The line head of the report-status inside band 1, which may span band-1 packets.
    inner_head: &'a mut LineHead,
    band: &'a mut Option<u8>,
    /// True until the first payload byte of the current packet was seen.
    first: &'a mut bool,
    /// Text lines cut at the head cap.
    cut: &'a mut u64,
}

/// The report-status framed inside band 1.
#[derive(Debug)]
struct Inner<'a> {
    lines: &'a mut Lines,
    head: &'a mut LineHead,
}

impl PktSink for Inner<'_> {
    fn start(&mut self, _len: usize) {
        self.head.clear();
    }

    fn payload(&mut self, bytes: &[u8]) -> Flow {
        self.head.push(bytes)
    }

    fn end(&mut self) {
        self.lines.line(self.head.text());
    }

    fn special(&mut self, _special: Special) {}
}

impl PktSink for Outer<'_> {
    fn start(&mut self, _len: usize) {
        self.head.clear();
        *self.band = None;
        *self.first = true;
    }

    fn payload(&mut self, mut bytes: &[u8]) -> Flow {
        if std::mem::take(self.first)
            && self.lines.kind != ResponseKind::Advertisement
            && let Some((&band @ 1..=3, rest)) = bytes.split_first()
        {
            *self.band = Some(band);
            bytes = rest;
        }
        match (*self.band, self.lines.kind) {
            (Some(1), ResponseKind::ReceivePack) => {
                let mut inner = Inner {
                    lines: self.lines,
                    head: self.inner_head,
                };
                self.inner.feed(bytes, &mut inner);
                Flow::More
            }
            (Some(1), _) => self.lines.pack_data(bytes),
            (Some(_), _) => {
                self.lines.record.shown.text(bytes);
                Flow::More
            }
            (None, _) => self.head.push(bytes),
        }
    }

    fn end(&mut self) {
        match *self.band {
            Some(1) => {}
            Some(_) => self.lines.record.shown.end_message(),
            None => {
                *self.cut += u64::from(self.head.cut);
                self.lines.line(self.head.text());
            }
        }
    }

    fn special(&mut self, _special: Special) {}

    fn raw(&mut self, bytes: &[u8]) -> Flow {
        self.lines.pack_data(bytes)
    }
}

/// One response body, read as it streams.
#[derive(Debug)]
pub struct ResponseObserver {
    outer: Skimmer,
    /// The report-status inside band 1 of a receive-pack answer.
    inner: Skimmer,
    head: LineHead,
    inner_head: LineHead,
    band: Option<u8>,
    first: bool,
    cut: u64,
    lines: Lines,
    /// Bytes of body seen (read or skipped).
    seen: u64,
}

impl ResponseObserver {
    /// An observer for a response of `kind`, keeping at most `max_refs` refs, `max_refs`
    /// outcomes and `max_shown` bytes of shown text.
    pub fn new(kind: ResponseKind, max_refs: usize, max_shown: usize) -> ResponseObserver {
        let outer = match kind {
            ResponseKind::UploadPack => Skimmer::default().allow_raw_pack(),
            _ => Skimmer::default(),
        };
        ResponseObserver {
            outer,
            inner: Skimmer::default(),
            head: LineHead::new(MAX_LINE_HEAD),
            inner_head: LineHead::new(MAX_LINE_HEAD),
            band: None,
            first: false,
            cut: 0,
            lines: Lines {
                kind,
                record: ResponseRecord {
                    refs: Capped::new(max_refs),
                    shown: Shown::new(max_shown),
                    ..ResponseRecord::default()
                },
                pack_header: Vec::new(),
                max_outcomes: max_refs.max(1),
                outcomes_left_out: 0,
            },
            seen: 0,
        }
    }

    /// The kind this observer reads.
    pub fn kind(&self) -> ResponseKind {
        self.lines.kind
    }

    /// Bytes of the body seen so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// How many of the next bytes need not be read at all (pack data, or the rest of an
    /// opaque or broken body); pass them over with [`ResponseObserver::skip`].
    pub fn skippable(&self) -> u64 {
        match self.lines.kind {
            ResponseKind::Opaque => u64::MAX,
            ResponseKind::Text if self.lines.record.shown.is_full() => u64::MAX,
            ResponseKind::Text => 0,
            _ => self.outer.skippable(),
        }
    }

    /// How many bytes to read next for the observer to get further, when it can tell (a
    /// reader may read more; extra bytes are just fed).
    pub fn wanted(&self) -> Option<usize> {
        match self.lines.kind {
            // Only the upload-pack answer has large parts worth not reading.
            // A length prefix, then the band byte and a pack header's worth, is enough to
            // tell whether the packet is pack data to skip.
            ResponseKind::UploadPack => match self.outer.wanted() {
                Some(n) if self.outer.at_length() => Some(n + PEEK_LEN),
                Some(n) if self.first || self.band == Some(1) => Some(n.min(PEEK_LEN)),
                other => other,
            },
            _ => None,
        }
    }

    /// Passes over `len` bytes that were not read (at most [`ResponseObserver::skippable`]).
    pub fn skip(&mut self, len: u64) {
        self.seen = self.seen.saturating_add(len);
        if matches!(self.lines.kind, ResponseKind::Opaque | ResponseKind::Text) {
            return;
        }
        let skippable = self.outer.skippable();
        if self.outer.in_raw_pack() {
            // A raw pack's bytes are pack bytes, read or not.
            let pack = self
                .lines
                .record
                .pack
                .get_or_insert_with(FetchedPack::default);
            pack.bytes = pack.bytes.saturating_add(len.min(skippable));
        } else if self.band == Some(1) {
            let pack = self
                .lines
                .record
                .pack
                .get_or_insert_with(FetchedPack::default);
            pack.bytes = pack.bytes.saturating_add(len.min(skippable));
        }
        let mut outer = Outer {
            lines: &mut self.lines,
            inner: &mut self.inner,
            head: &mut self.head,
            inner_head: &mut self.inner_head,
            band: &mut self.band,
            first: &mut self.first,
            cut: &mut self.cut,
        };
        self.outer.skip(len, &mut outer);
    }

    /// Reads the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.seen = self.seen.saturating_add(bytes.len() as u64);
        match self.lines.kind {
            ResponseKind::Opaque => return,
            ResponseKind::Text => return self.lines.record.shown.text(bytes),
            _ => {}
        }
        let mut outer = Outer {
            lines: &mut self.lines,
            inner: &mut self.inner,
            head: &mut self.head,
            inner_head: &mut self.inner_head,
            band: &mut self.band,
            first: &mut self.first,
            cut: &mut self.cut,
        };
        self.outer.feed(bytes, &mut outer);
    }

    /// What was read, with notes on anything left out.
    pub fn finish(mut self) -> (ResponseRecord, Vec<String>) {
        self.lines.record.shown.end_message();
        let mut notes = Vec::new();
        if let Some(err) = self.outer.error() {
            notes.push(format!("response: {err}; the rest was not read"));
        }
        if let Some(err) = self.inner.error() {
            notes.push(format!("response: report-status in band 1: {err}"));
        }
        if self.cut > 0 {
            notes.push(format!(
                "response: {} lines longer than {MAX_LINE_HEAD} bytes were cut",
                self.cut
            ));
        }
        if self.lines.outcomes_left_out > 0 {
            notes.push(format!(
                "response: {} more ref outcomes not kept",
                self.lines.outcomes_left_out
            ));
        }
        if self.lines.record.shown.left_out > 0 {
            notes.push(format!(
                "shown: {} more bytes of text not kept",
                self.lines.record.shown.left_out
            ));
        }
        (self.lines.record, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pktline::{encode_data, encode_flush};

    fn pkt(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_data(payload, &mut out).expect("small");
        out
    }

    fn band(band: u8, payload: &[u8]) -> Vec<u8> {
        pkt(&[&[band], payload].concat())
    }

    /// Every split of `body`: whole, byte by byte, and in two at every offset.
    fn each_split(body: &[u8], kind: ResponseKind, check: impl Fn(&ResponseRecord, &[String])) {
        let mut splits: Vec<Vec<&[u8]>> = vec![vec![body], body.chunks(1).collect()];
        for at in 0..=body.len() {
            let (a, b) = body.split_at(at);
            splits.push(vec![a, b]);
        }
        for pieces in splits {
            let mut observer = ResponseObserver::new(kind, 10, 200);
            for piece in &pieces {
                observer.feed(piece);
            }
            let (record, notes) = observer.finish();
            check(&record, &notes);
        }
    }

    #[test]
    fn a_side_band_report_status_gives_outcomes_and_shown_text() {
        let mut report = pkt(b"unpack ok\n");
        report.extend(pkt(b"ok refs/heads/feature\n"));
        report.extend(pkt(b"ng refs/heads/main pre-receive hook declined\n"));
        encode_flush(&mut report);
        let mut body = band(2, b"hook says\rhook says hi\n");
        body.extend(band(1, &report));
        encode_flush(&mut body);
        each_split(&body, ResponseKind::ReceivePack, |record, notes| {
            assert_eq!(
                record.outcomes,
                [
                    RefOutcome {
                        refname: "refs/heads/feature".into(),
                        ok: true,
                        reason: None
                    },
                    RefOutcome {
                        refname: "refs/heads/main".into(),
                        ok: false,
                        reason: Some("pre-receive hook declined".into())
                    }
                ]
            );
            assert_eq!(
                record.shown.lines,
                [
                    "hook says hi",
                    "ng refs/heads/main pre-receive hook declined"
                ]
            );
            assert!(notes.is_empty(), "{notes:?}");
        });
    }

    #[test]
    fn shown_text_stops_at_its_budget_with_a_note() {
        let mut observer = ResponseObserver::new(ResponseKind::UploadPack, 10, 10);
        observer.feed(&band(2, b"0123456789\nmore text\n"));
        let (record, notes) = observer.finish();
        assert_eq!(record.shown.lines, ["0123456789"]);
        assert_eq!(notes, ["shown: 9 more bytes of text not kept"]);
    }

    #[test]
    fn a_fetch_reads_only_the_pack_header_and_skips_the_rest_unread() {
        let mut pack = b"PACK\x00\x00\x00\x02\x00\x00\x00\x07".to_vec();
        pack.extend(std::iter::repeat_n(0xab, 3000));
        let mut body = pkt(b"packfile\n");
        body.extend(band(1, &pack));
        body.extend(band(2, b"Total 7\n"));
        encode_flush(&mut body);

        let mut observer = ResponseObserver::new(ResponseKind::UploadPack, 10, 200);
        let mut at = 0;
        let mut read = 0;
        while at < body.len() {
            let skip = observer.skippable().min((body.len() - at) as u64) as usize;
            if skip > 0 {
                observer.skip(skip as u64);
                at += skip;
                continue;
            }
            let want = observer.wanted().unwrap_or(usize::MAX).max(1);
            let end = body.len().min(at.saturating_add(want));
            observer.feed(&body[at..end]);
            read += end - at;
            at = end;
        }
        assert!(read < 100, "read {read} bytes of {}", body.len());
        assert_eq!(observer.seen(), body.len() as u64);
        let (record, _) = observer.finish();
        assert_eq!(
            record.pack,
            Some(FetchedPack {
                objects: Some(7),
                bytes: pack.len() as u64
            })
        );
        assert_eq!(record.shown.lines, ["Total 7"]);
    }

    #[test]
    fn advertised_refs_leave_out_peeled_and_placeholder_entries() {
        let oid = "1".repeat(40);
        let mut body = pkt(b"# service=git-upload-pack\n");
        encode_flush(&mut body);
        body.extend(pkt(
            format!("{oid} HEAD\0multi_ack side-band-64k\n").as_bytes()
        ));
        body.extend(pkt(format!("{oid} refs/heads/main\n").as_bytes()));
        body.extend(pkt(format!("{oid} refs/tags/v1^{{}}\n").as_bytes()));
        encode_flush(&mut body);
        each_split(&body, ResponseKind::Advertisement, |record, _| {
            assert_eq!(record.refs.items, ["HEAD", "refs/heads/main"]);
        });
        let mut empty =
            pkt(format!("{} capabilities^{{}}\0report-status\n", "0".repeat(40)).as_bytes());
        encode_flush(&mut empty);
        each_split(&empty, ResponseKind::Advertisement, |record, _| {
            assert!(record.refs.items.is_empty());
        });
    }

    #[test]
    fn err_lines_are_shown_and_a_broken_frame_is_a_note() {
        let mut body = pkt(b"ERR upload-pack: not our ref\n");
        body.extend_from_slice(b"zzzz");
        let mut observer = ResponseObserver::new(ResponseKind::UploadPack, 10, 200);
        observer.feed(&body);
        assert_eq!(observer.skippable(), u64::MAX);
        let (record, notes) = observer.finish();
        assert_eq!(record.shown.lines, ["ERR upload-pack: not our ref"]);
        assert_eq!(
            notes,
            ["response: bad pkt-line length \"zzzz\" at byte 33; the rest was not read"]
        );
    }
}
