//! git's answers: pkt-line framing, side-band multiplexing, and the report-status inside band 1.
//!
//! What is masked (git-smart-http.md §1, §4, §5):
//!
//! - text packets outside any band: ref advertisement lines, negotiation lines, `ERR` lines;
//! - side-band 2 (progress, hook output: `remote: ...`) and 3 (fatal error text);
//! - in a push answer, the report-status lines that band 1 carries, themselves pkt-lines.
//!
//! What is never changed: band 1 of a fetch answer and a pack sent without side-band, which are
//! pack data (masking them would change object ids and break the checksum). Those bytes are
//! copied as they come, and a caller may skip them unread ([`PktMasker::passthrough_len`]).
//!
//! Each masked packet is held until the scanner has settled all of its bytes, then written again
//! with its length recomputed. A secret split across packets (or chunks) is found because each
//! stream (text lines, band 2, band 3, the report) is scanned as one byte stream; its mask goes
//! into the packet where it starts. A band packet that grows past the side-band limit (995 bytes
//! unless a packet over 1000 bytes showed that `side-band-64k` is in use, then 65515) is cut into
//! several; a text line cannot be cut, so one that would outgrow 65516 bytes is masked with `*`
//! of the secret's own length instead.
//!
//! Order: band 1 passes at once while band 2 and 3 text is held, which git tolerates (it reads
//! each band as its own stream). Text lines and band packets never overtake each other: a band
//! packet first releases the held text lines, a text line the held band text, a flush or delim
//! everything, and band 3 (after which git stops reading) first releases band 2.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Shared;
use super::report::{Fallback, MaskReport, Place};
use super::stream::{MaskStream, Render};
use super::text::TextMasker;
use crate::pktline::{self, LENGTH_PREFIX_LEN, MAX_PAYLOAD_LEN, MAX_PKT_LEN};
use crate::sideband::{self, Band, SideBand};

/// A length prefix plus the band byte.
const BAND_HEADER_LEN: usize = LENGTH_PREFIX_LEN + 1;

/// The longest packet of the old `side-band` (gitprotocol-capabilities, "side-band,
/// side-band-64k"); a longer one means `side-band-64k` was agreed.
const SMALL_PKT_LEN: usize = 1000;

/// The four bytes that start a pack (gitformat-pack, "pack-*.pack files"); where a length
/// prefix was expected they mean the pack follows without side-band.
const PACK_SIGNATURE: &[u8; 4] = b"PACK";

/// What band 1 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BandOne {
    /// Pack data (a fetch answer): copied.
    Pack,
    /// Report-status pkt-lines (a push answer): masked like text lines and framed again.
    Report,
}

/// Which held stream a payload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Lines,
    Progress,
    Errors,
}

/// Where the masker is in the framing.
#[derive(Debug)]
enum State {
    /// Reading a length prefix (and, with side-band, the band byte) into `header`.
    Header,
    /// Inside a band-1 pack payload: copied unread.
    Verbatim { remaining: usize },
    /// Inside the payload of a masked packet.
    Payload { which: Which, remaining: usize },
    /// Inside a band-1 payload that carries report-status lines.
    Report { remaining: usize },
    /// A pack without side-band: everything to the end is copied.
    RawPack,
    /// The framing broke: the rest is masked as text.
    Broken(Box<TextMasker>),
}

/// A packet held in a stream until its bytes are settled.
#[derive(Debug)]
struct HeldPacket {
    /// Stream offsets of its payload.
    start: u64,
    end: u64,
    /// Body offset of its payload's first byte.
    body_at: u64,
    /// Whether all of its payload was pushed.
    complete: bool,
}

/// One scanned stream of packet payloads: text lines, band 2, band 3.
#[derive(Debug)]
struct PacketStream {
    shared: Arc<Shared>,
    mask: MaskStream,
    packets: VecDeque<HeldPacket>,
    /// The band its packets are written back in; `None` for plain text lines.
    band: Option<Band>,
    place: Place,
}

impl PacketStream {
    fn new(shared: &Arc<Shared>, band: Option<Band>, place: Place) -> PacketStream {
        PacketStream {
            shared: Arc::clone(shared),
            mask: MaskStream::new(shared, false),
            packets: VecDeque::new(),
            band,
            place,
        }
    }

    fn is_empty(&self) -> bool {
        self.packets.is_empty() && self.mask.is_empty()
    }

    /// Starts a packet of `len` payload bytes whose first byte is at body offset `body_at`.
    fn begin(&mut self, len: usize, body_at: u64) {
        let start = self.mask.offset();
        self.packets.push_back(HeldPacket {
            start,
            end: start.saturating_add(len as u64),
            body_at,
            complete: len == 0,
        });
    }

    fn push(&mut self, bytes: &[u8]) {
        self.mask.push(bytes);
    }

    fn complete(&mut self) {
        if let Some(packet) = self.packets.back_mut() {
            packet.complete = true;
        }
    }

    fn record(&mut self, report: &mut MaskReport) {
        for found in self.mask.take_found() {
            let offset = self
                .packets
                .iter()
                .find(|p| p.start <= found.start && found.start < p.end)
                .map_or(0, |p| p.body_at.saturating_add(found.start - p.start));
            report.record(&found, offset, self.place);
        }
    }

    /// Writes the complete packets whose bytes are all settled.
    fn release(&mut self, out: &mut Vec<u8>, flavour: SideBand, report: &mut MaskReport) {
        // Findings are mapped to body offsets while their packets are still held.
        self.record(report);
        while let Some(packet) = self.packets.front() {
            if !packet.complete || self.mask.settled() < packet.end {
                break;
            }
            let end = packet.end;
            self.packets.pop_front();
            let mut render = PacketRender::default();
            self.mask.release(end, &mut render);
            frame(self.band, render, flavour, out);
        }
    }

    /// Ends the stream: writes every complete packet and starts afresh. An incomplete packet
    /// (only at the end of a truncated body) is dropped.
    fn finish(&mut self, out: &mut Vec<u8>, flavour: SideBand, report: &mut MaskReport) {
        if self.is_empty() {
            return;
        }
        self.mask.finish();
        self.release(out, flavour, report);
        self.packets.clear();
        self.mask = MaskStream::new(&self.shared, false);
    }
}

/// Renders one packet's payload twice: with masks, and with every masked byte turned into `*`
/// (same length, for a text line that would otherwise outgrow the pkt-line limit).
#[derive(Default)]
struct PacketRender {
    masked: Vec<u8>,
    same_length: Vec<u8>,
}

impl Render for PacketRender {
    fn plain(&mut self, _at: u64, bytes: &[u8]) {
        self.masked.extend_from_slice(bytes);
        self.same_length.extend_from_slice(bytes);
    }

    fn masked(&mut self, _at: u64, bytes: &[u8], mask: &[u8], first: bool, _last: bool) {
        if first {
            self.masked.extend_from_slice(mask);
        }
        self.same_length
            .resize(self.same_length.len() + bytes.len(), b'*');
    }
}

/// Writes a rendered payload as one text packet, or as band packets cut to the limit. An empty
/// payload (the whole packet was the tail of a secret masked in the packet before) is dropped:
/// `0004` is not a valid packet, and an empty band packet would be a keepalive.
fn frame(band: Option<Band>, render: PacketRender, flavour: SideBand, out: &mut Vec<u8>) {
    match band {
        Some(band) => sideband::encode(band, &render.masked, flavour, out),
        None => {
            let payload = if render.masked.len() <= MAX_PAYLOAD_LEN {
                render.masked
            } else {
                render.same_length
            };
            if !payload.is_empty() {
                // The same-length payload is as long as the original one, which fit.
                let _ = pktline::encode_data(&payload, out);
            }
        }
    }
}

/// Masks a pkt-line body.
#[derive(Debug)]
pub(crate) struct PktMasker {
    shared: Arc<Shared>,
    band_one: BandOne,
    /// Whether data packets carry a band byte; false for the lines inside a report.
    sideband: bool,
    state: State,
    /// Body offset of the next byte fed.
    offset: u64,
    header: [u8; BAND_HEADER_LEN],
    header_len: usize,
    /// Body offset of the current packet's first byte.
    packet_at: u64,
    lines: PacketStream,
    progress: PacketStream,
    errors: PacketStream,
    /// The report-status lines of band 1, created at the first report packet.
    report: Option<Box<PktMasker>>,
    /// Report bytes released but not yet framed in band 1.
    report_out: Vec<u8>,
    /// A packet over 1000 bytes was seen: `side-band-64k` limits apply.
    large: bool,
}

impl PktMasker {
    /// A masker for a whole answer.
    pub(crate) fn new(shared: &Arc<Shared>, band_one: BandOne) -> PktMasker {
        PktMasker::with(shared, band_one, true, Place::PktLine)
    }

    /// A masker for the report-status lines carried in band 1.
    fn report_lines(shared: &Arc<Shared>) -> PktMasker {
        PktMasker::with(shared, BandOne::Pack, false, Place::Report)
    }

    fn with(shared: &Arc<Shared>, band_one: BandOne, sideband: bool, place: Place) -> PktMasker {
        PktMasker {
            shared: Arc::clone(shared),
            band_one,
            sideband,
            state: State::Header,
            offset: 0,
            header: [0; BAND_HEADER_LEN],
            header_len: 0,
            packet_at: 0,
            lines: PacketStream::new(shared, None, place),
            progress: PacketStream::new(shared, Some(Band::Progress), Place::Band(2)),
            errors: PacketStream::new(shared, Some(Band::Error), Place::Band(3)),
            report: None,
            report_out: Vec::new(),
            large: false,
        }
    }

    /// How many of the next bytes are pack data that may be skipped unread.
    pub(crate) fn passthrough_len(&self) -> u64 {
        match self.state {
            State::Verbatim { remaining } => remaining as u64,
            State::RawPack => u64::MAX,
            _ => 0,
        }
    }

    /// Accounts for `len` bytes the caller let through unread (at most
    /// [`passthrough_len`](Self::passthrough_len)).
    pub(crate) fn skip(&mut self, len: u64) {
        match &mut self.state {
            State::Verbatim { remaining } => {
                let used = usize::try_from(len).unwrap_or(usize::MAX).min(*remaining);
                *remaining -= used;
                self.offset = self.offset.saturating_add(used as u64);
                if *remaining == 0 {
                    self.state = State::Header;
                }
            }
            State::RawPack => self.offset = self.offset.saturating_add(len),
            _ => {}
        }
    }

    fn flavour(&self) -> SideBand {
        if self.large {
            SideBand::Large
        } else {
            SideBand::Small
        }
    }

    /// Masks the next chunk, appending what can be released to `out`.
    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) {
        let mut input = chunk;
        while !input.is_empty() {
            let used = self.step(input, out, report).min(input.len());
            if used == 0 && !matches!(self.state, State::Broken(_)) {
                // Every state uses at least one byte; should one not, stop following the
                // framing rather than loop (the rest is then masked as text).
                self.break_framing(out, report);
            }
            self.offset = self.offset.saturating_add(used as u64);
            input = input.get(used..).unwrap_or_default();
        }
    }

    /// Ends the body: writes everything held. The bytes of a packet cut off by the end of the
    /// body are dropped, a partial length prefix is copied.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        if let State::Broken(text) = &mut self.state {
            text.finish(out, report);
            return;
        }
        self.finish_all(out, report);
        if matches!(self.state, State::Header) && self.header_len > 0 {
            out.extend_from_slice(self.header.get(..self.header_len).unwrap_or_default());
            self.header_len = 0;
        }
    }

    /// Handles the start of `input`; returns how many bytes it used (at least one).
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) -> usize {
        match &mut self.state {
            State::Broken(text) => {
                text.feed(input, out, report);
                input.len()
            }
            State::RawPack => {
                out.extend_from_slice(input);
                input.len()
            }
            State::Verbatim { remaining } => {
                let n = (*remaining).min(input.len());
                out.extend_from_slice(&input[..n]);
                *remaining -= n;
                if *remaining == 0 {
                    self.state = State::Header;
                }
                n
            }
            State::Payload { which, remaining } => {
                let which = *which;
                let n = (*remaining).min(input.len());
                *remaining -= n;
                let done = *remaining == 0;
                if done {
                    self.state = State::Header;
                }
                let flavour = self.flavour();
                let stream = self.stream(which);
                stream.push(&input[..n]);
                if done {
                    stream.complete();
                }
                stream.release(out, flavour, report);
                n
            }
            State::Report { remaining } => {
                let n = (*remaining).min(input.len());
                *remaining -= n;
                let done = *remaining == 0;
                if done {
                    self.state = State::Header;
                }
                let shared = Arc::clone(&self.shared);
                let inner = self
                    .report
                    .get_or_insert_with(|| Box::new(PktMasker::report_lines(&shared)));
                inner.feed(&input[..n], &mut self.report_out, report);
                if done {
                    self.frame_report(out);
                }
                n
            }
            State::Header => self.header_step(input, out, report),
        }
    }

    fn stream(&mut self, which: Which) -> &mut PacketStream {
        match which {
            Which::Lines => &mut self.lines,
            Which::Progress => &mut self.progress,
            Which::Errors => &mut self.errors,
        }
    }

    /// Reads the length prefix (and the band byte) and decides what the packet is.
    fn header_step(&mut self, input: &[u8], out: &mut Vec<u8>, report: &mut MaskReport) -> usize {
        if self.header_len == 0 {
            self.packet_at = self.offset;
        }
        let mut used = 0;
        if self.header_len < LENGTH_PREFIX_LEN {
            used = self.take_header(input, LENGTH_PREFIX_LEN);
            if self.header_len < LENGTH_PREFIX_LEN {
                return used;
            }
            // The prefix just completed: special packets and errors need no band byte.
            let prefix = [
                self.header[0],
                self.header[1],
                self.header[2],
                self.header[3],
            ];
            match parse_length(&prefix) {
                None if &prefix == PACK_SIGNATURE
                    && self.sideband
                    && self.band_one == BandOne::Pack =>
                {
                    self.finish_all(out, report);
                    out.extend_from_slice(&prefix);
                    self.header_len = 0;
                    self.state = State::RawPack;
                    return used;
                }
                None | Some(3) => {
                    self.break_framing(out, report);
                    return used;
                }
                Some(0..=2) => {
                    // flush-pkt, delim-pkt, response-end-pkt: the end of a section, so every
                    // held stream goes out before it.
                    self.finish_all(out, report);
                    out.extend_from_slice(&prefix);
                    self.header_len = 0;
                    return used;
                }
                Some(4) => {
                    // An empty data packet (git never sends one): nothing to mask.
                    out.extend_from_slice(&prefix);
                    self.header_len = 0;
                    return used;
                }
                Some(length) if length > MAX_PKT_LEN => {
                    self.break_framing(out, report);
                    return used;
                }
                Some(_) => {}
            }
        }
        let prefix = [
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ];
        let Some(length) = parse_length(&prefix) else {
            // Not reached: a prefix stays held only once it parsed.
            self.break_framing(out, report);
            return used;
        };
        if length > SMALL_PKT_LEN {
            self.large = true;
        }
        if !self.sideband {
            self.header_len = 0;
            self.start_line(length - LENGTH_PREFIX_LEN, None, out, report);
            return used;
        }
        if self.header_len < BAND_HEADER_LEN {
            used += self.take_header(input.get(used..).unwrap_or_default(), BAND_HEADER_LEN);
            if self.header_len < BAND_HEADER_LEN {
                return used;
            }
        }
        self.header_len = 0;
        let first = self.header[LENGTH_PREFIX_LEN];
        let payload_len = length - BAND_HEADER_LEN;
        match first {
            1..=3 if payload_len == 0 => {
                // A keepalive (gitprotocol-pack, "0005\x01"): passes at once, but after the
                // held text lines. upload-pack sends keepalives while pack-objects is slow to
                // start, and one that overtook a held v2 `packfile` section header would make
                // git die with "expected 'packfile'".
                self.release_lines(out, report);
                out.extend_from_slice(&self.header);
            }
            1 => {
                self.release_lines(out, report);
                match self.band_one {
                    BandOne::Pack => {
                        out.extend_from_slice(&self.header);
                        self.state = State::Verbatim {
                            remaining: payload_len,
                        };
                    }
                    BandOne::Report => {
                        self.state = State::Report {
                            remaining: payload_len,
                        };
                    }
                }
            }
            2 | 3 => {
                self.release_lines(out, report);
                let which = if first == 2 {
                    Which::Progress
                } else {
                    // git stops reading at band 3: what band 2 holds goes first.
                    let flavour = self.flavour();
                    self.progress.finish(out, flavour, report);
                    Which::Errors
                };
                let body_at = self.packet_at + BAND_HEADER_LEN as u64;
                self.stream(which).begin(payload_len, body_at);
                self.state = State::Payload {
                    which,
                    remaining: payload_len,
                };
            }
            _ => {
                let flavour = self.flavour();
                self.progress.finish(out, flavour, report);
                self.errors.finish(out, flavour, report);
                self.start_line(length - LENGTH_PREFIX_LEN, Some(first), out, report);
            }
        }
        used
    }

    /// Starts a text line of `len` payload bytes; `first` is its first byte when it was read
    /// with the header.
    fn start_line(
        &mut self,
        len: usize,
        first: Option<u8>,
        out: &mut Vec<u8>,
        report: &mut MaskReport,
    ) {
        let body_at = self.packet_at + LENGTH_PREFIX_LEN as u64;
        self.lines.begin(len, body_at);
        let mut remaining = len;
        if let Some(byte) = first {
            self.lines.push(&[byte]);
            remaining = remaining.saturating_sub(1);
        }
        if remaining == 0 {
            self.lines.complete();
            let flavour = self.flavour();
            self.lines.release(out, flavour, report);
        } else {
            self.state = State::Payload {
                which: Which::Lines,
                remaining,
            };
        }
    }

    /// Copies header bytes from `input` until `want` are held; returns how many it took.
    fn take_header(&mut self, input: &[u8], want: usize) -> usize {
        let mut used = 0;
        while self.header_len < want {
            let (Some(&byte), Some(slot)) = (input.get(used), self.header.get_mut(self.header_len))
            else {
                break;
            };
            *slot = byte;
            self.header_len += 1;
            used += 1;
        }
        used
    }

    /// Before a band packet: the text lines held go out first.
    fn release_lines(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        let flavour = self.flavour();
        self.lines.finish(out, flavour, report);
    }

    /// Writes every held stream (at a flush, a delim, a pack, or the end).
    fn finish_all(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        let flavour = self.flavour();
        self.lines.finish(out, flavour, report);
        self.progress.finish(out, flavour, report);
        self.errors.finish(out, flavour, report);
        if let Some(mut inner) = self.report.take() {
            inner.finish(&mut self.report_out, report);
        }
        self.frame_report(out);
    }

    /// Frames the released report bytes in band 1.
    fn frame_report(&mut self, out: &mut Vec<u8>) {
        if !self.report_out.is_empty() {
            sideband::encode(Band::Data, &self.report_out, self.flavour(), out);
            self.report_out.clear();
        }
    }

    /// The framing cannot be followed: write what is held and mask the rest as text.
    fn break_framing(&mut self, out: &mut Vec<u8>, report: &mut MaskReport) {
        self.finish_all(out, report);
        report.fall_back(Fallback::PktFraming {
            offset: self.packet_at,
        });
        let mut text = TextMasker::new(&self.shared, self.packet_at, Place::Fallback);
        text.feed(
            self.header.get(..self.header_len).unwrap_or_default(),
            out,
            report,
        );
        self.header_len = 0;
        self.state = State::Broken(Box::new(text));
    }
}

/// Reads four hex digits (either case, as git does); `None` if they are not hex.
fn parse_length(prefix: &[u8; LENGTH_PREFIX_LEN]) -> Option<usize> {
    prefix.iter().try_fold(0usize, |length, &byte| {
        let digit = char::from(byte).to_digit(16)?;
        Some((length << 4) | digit as usize)
    })
}
