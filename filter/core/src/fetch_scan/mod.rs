//! Secrets in fetched packs: the objects of an upload-pack answer scanned as they stream to the
//! client, and, where the policy says so, the pack kept from completing.
//!
//! Pack data cannot be masked: changing one byte changes object ids and the pack checksum, and
//! the clone breaks. So a fetch whose pack carries a secret is handled by policy
//! ([`config::FetchPolicy`]): it passes with an audit record (the default), or, for chosen
//! identities, it is refused. A response cannot be paused (Envoy would buffer it whole), so a
//! refusal works like the push path's tail withholder ([`crate::withhold`]): the last band-1
//! packets, which hold the pack's trailer, are kept back until the pack has been read to its
//! end. Then either they go out, or they are dropped and the answer ends with a side-band 3
//! message that git prints (`remote: gitgate: ...`); git never sees a complete pack and
//! discards what it received.
//!
//! [`FetchScan`] is fed what goes to the client (after masking, which never changes band 1):
//!
//! - v0/v1 with side-band: negotiation lines, then the pack in band 1 with progress in band 2;
//! - v2: `acknowledgments`, `shallow-info`, ... sections of text lines, then `packfile` and
//!   band packets (git-smart-http.md §6);
//! - without side-band: the pack follows the negotiation lines raw, where a length prefix was
//!   expected; it runs to the end of the body.
//!
//! The band-1 bytes go to [`PushScan`] (the push path's object reader and scanner), which
//! inflates every object, rebuilds deltas within its budget and scans blobs, commits and tags.
//!
//! ```
//! use std::rc::Rc;
//! use std::sync::Arc;
//! use gitgate_core::fetch_scan::{FetchScan, config::{FetchPolicy, FetchSection}};
//! use gitgate_scan::RuleSet;
//!
//! let policy = FetchPolicy::from_section(&FetchSection::default()).unwrap().unwrap();
//! let settings = Rc::new(policy.scanning(Arc::new(RuleSet::builtin().unwrap())));
//! let mut scan = FetchScan::new(settings, false);
//! // NAK, then the empty pack (header and SHA-1 trailer) in band 1, then the flush.
//! let mut body = b"0008NAK\n0025\x01PACK\0\0\0\x02\0\0\0\0".to_vec();
//! body.extend_from_slice(b"\x02\x9d\x08\x82\x3b\xd8\xa8\xea\xb5\x10\xad\x6a\xc7\x5c\x82\x3c\xfd\x3e\xd3\x1e");
//! body.extend_from_slice(b"0000");
//! let mut out = Vec::new();
//! scan.feed(&body, &mut out);
//! let ended = scan.finish(false, &mut out);
//! assert!(!ended.refused && ended.report.findings.is_empty());
//! assert_eq!(ended.report.pack.bytes, 32);
//! ```

pub mod config;

use std::collections::VecDeque;
use std::rc::Rc;

use crate::api::{PackSummary, SecretFinding};
use crate::pack_objects::PackObjectError;
use crate::pktline::{LENGTH_PREFIX_LEN, MAX_PKT_LEN};
use crate::push_scan::{PushScan, ScanReport, SecretScanning, report as push_report};
use crate::receive_pack::ObjectFormat;
use crate::sideband::{self, Band, SideBand};

/// Code of a fetch refused because its pack carries secrets.
pub const SECRET_IN_FETCH: &str = "gitgate:deny:secret-in-fetch";

/// Band-1 payload bytes kept back while a refusal is possible: more than a SHA-256 pack
/// trailer (32 bytes), like [`crate::withhold::TAIL_LEN`].
pub const TAIL_LEN: u64 = crate::withhold::TAIL_LEN as u64;

/// The most bytes held back at once. Normally that is one or two band-1 packets (at most
/// 65520 bytes each) and the final flush; text packets after the pack could add more, and past
/// this the rest goes out unheld (see [`Ended::withheld_abandoned`]).
pub const MAX_HELD: usize = 1 << 20;

/// The four bytes that start a pack (gitformat-pack, "pack-*.pack files").
const PACK_SIGNATURE: &[u8; 4] = b"PACK";

/// A pack's header: signature, version, object count (gitformat-pack).
const PACK_HEADER_LEN: usize = 12;

/// A length prefix plus the band byte.
const BAND_HEADER_LEN: usize = LENGTH_PREFIX_LEN + 1;

/// The longest packet of the old `side-band` (gitprotocol-capabilities); a longer one shows
/// that `side-band-64k` is in use.
const SMALL_PKT_LEN: usize = 1000;

/// Where the demultiplexer is in the framing of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a length prefix and the first payload byte into `header`.
    Header,
    /// Inside a packet's payload; `band` is 1, 2 or 3 for a band packet, `None` for a line.
    Payload { band: Option<u8>, remaining: usize },
    /// A pack sent without side-band: every byte to the end is pack data.
    RawPack,
    /// The bytes are not pkt-lines: nothing more is read (they still go to the client).
    Broken,
}

/// Where the current packet's bytes go while a refusal is possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Straight to the client: anything before the first band-1 byte, and band 2 and 3
    /// packets that would make the held bytes outgrow [`MAX_HELD`] (they may overtake held
    /// band-1 packets: git reads each band as its own stream).
    Out,
    /// Into the held bytes, in order.
    Held,
}

/// How the fetch's pack was read, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Secrets in the fetched objects (rule, place, fingerprint; never the value).
    pub findings: Vec<SecretFinding>,
    /// True when scanning stopped at the findings limit: there may be more.
    pub findings_capped: bool,
    /// The pack: objects (from its header) and bytes. The per-kind counts and commits are not
    /// filled in (the object reader does not hand them out yet).
    pub pack: PackSummary,
    /// Objects scanned (blobs, commits, tags, delta inserts) and the bytes handed to scanners.
    pub objects_scanned: u64,
    pub scanned_bytes: u64,
    /// Scanning limits the fetch went past, one line each.
    pub limits: Vec<String>,
    /// Why the pack could not be read to its end, when it could not.
    pub error: Option<String>,
    /// Secret values masked in the rest of the response (band 2 and 3, text lines); filled in
    /// by the caller, which owns the masker.
    pub masked: u64,
    /// True when the fetch was refused (the pack never completed).
    pub refused: bool,
}

impl FetchReport {
    /// One line for logs and the audit record: what was read and what was decided.
    pub fn summary(&self) -> String {
        let secrets = match self.findings.len() {
            0 => "no secrets".to_owned(),
            1 => "1 secret".to_owned(),
            n => format!("{n} secrets"),
        };
        let mut line = format!(
            "fetch {} a pack of {} objects, {} bytes: {secrets} in {} objects scanned",
            if self.refused {
                "refused for"
            } else {
                "passed"
            },
            self.pack.objects,
            self.pack.bytes,
            self.objects_scanned
        );
        if self.masked > 0 {
            line.push_str(&format!(", {} masked in the text", self.masked));
        }
        if !self.limits.is_empty() {
            line.push_str(", a scanning limit was reached");
        }
        if let Some(error) = &self.error {
            line.push_str(&format!(", pack not read to its end: {error}"));
        }
        line
    }
}

/// How a fetch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// What was read.
    pub report: FetchReport,
    /// True when the pack was kept from completing and the answer ends in the refusal.
    pub refused: bool,
    /// True when more than [`MAX_HELD`] bytes would have had to be held, so the pack may have
    /// reached the client whole before the decision.
    pub withheld_abandoned: bool,
    /// Log lines about the findings and limits (never a value).
    pub log_lines: Vec<String>,
}

/// The scan of one upload-pack answer, and the withholding of its pack's end.
pub struct FetchScan {
    settings: Rc<SecretScanning>,
    /// Whether the end of the pack is held back (the policy may refuse this fetch).
    withhold: bool,
    state: State,
    header: [u8; BAND_HEADER_LEN],
    header_len: usize,
    /// Where the current packet's bytes go.
    route: Route,
    /// The object scan; created at the first pack byte.
    scan: Option<PushScan>,
    /// Why the pack could not be read (the scan stops at the first error).
    error: Option<String>,
    /// Band-1 (or raw pack) bytes seen.
    pack_bytes: u64,
    /// The pack's first bytes, for its object count.
    pack_header: Vec<u8>,
    /// A packet over 1000 bytes was seen: `side-band-64k` is in use.
    large: bool,
    /// True once band packets were seen; without them the pack came raw.
    sideband: bool,
    /// The bytes held back, starting at a packet boundary.
    held: Vec<u8>,
    /// Packet boundaries in `held` (positions after a complete packet) with the band-1 bytes
    /// held before each.
    boundaries: VecDeque<(usize, u64)>,
    /// Band-1 payload bytes in `held`.
    held_band_one: u64,
    abandoned: bool,
}

impl std::fmt::Debug for FetchScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchScan")
            .field("withhold", &self.withhold)
            .field("state", &self.state)
            .field("pack_bytes", &self.pack_bytes)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl FetchScan {
    /// A scan with `settings`; `withhold` when the policy would refuse this fetch if its pack
    /// carries a secret.
    pub fn new(settings: Rc<SecretScanning>, withhold: bool) -> FetchScan {
        FetchScan {
            settings,
            withhold,
            state: State::Header,
            header: [0; BAND_HEADER_LEN],
            header_len: 0,
            route: Route::Out,
            scan: None,
            error: None,
            pack_bytes: 0,
            pack_header: Vec::with_capacity(PACK_HEADER_LEN),
            large: false,
            sideband: false,
            held: Vec::new(),
            boundaries: VecDeque::new(),
            held_band_one: 0,
            abandoned: false,
        }
    }

    /// Whether the end of the pack is being held back.
    pub fn withholds(&self) -> bool {
        self.withhold && !self.abandoned
    }

    /// Reads the next bytes on their way to the client. When nothing is withheld they are
    /// only read, `out` stays empty, and the caller passes them on as they are; else `out`
    /// gets what may go now, in order. Returns whether `out` replaces the bytes.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> bool {
        let mut input = bytes;
        while !input.is_empty() {
            let used = self.step(input, out).clamp(1, input.len());
            input = input.get(used..).unwrap_or_default();
        }
        if self.withhold && !self.abandoned && self.held.len() > MAX_HELD {
            // Past the budget the guarantee cannot be kept; say so rather than grow.
            self.abandoned = true;
            self.route = Route::Out;
            out.append(&mut self.held);
            self.boundaries.clear();
            self.held_band_one = 0;
        }
        self.withhold
    }

    /// Handles the start of `input`; returns how many bytes it used.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        match self.state {
            State::Broken => {
                self.emit(input, out);
                input.len()
            }
            State::RawPack => {
                self.pack_data(input);
                self.emit_raw(input, out);
                input.len()
            }
            State::Payload { band, remaining } => {
                let n = remaining.min(input.len());
                let payload = input.get(..n).unwrap_or_default();
                if band == Some(1) {
                    self.pack_data(payload);
                    if self.route == Route::Held {
                        self.held_band_one = self.held_band_one.saturating_add(n as u64);
                    }
                }
                self.emit(payload, out);
                let remaining = remaining - n;
                self.state = State::Payload { band, remaining };
                if remaining == 0 {
                    self.end_packet(out);
                }
                n
            }
            State::Header => self.header_step(input, out),
        }
    }

    /// Reads a length prefix and the band byte.
    fn header_step(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let mut used = 0;
        while self.header_len < LENGTH_PREFIX_LEN {
            let (Some(&byte), Some(slot)) = (input.get(used), self.header.get_mut(self.header_len))
            else {
                return used;
            };
            *slot = byte;
            self.header_len += 1;
            used += 1;
        }
        let prefix = [
            self.header[0],
            self.header[1],
            self.header[2],
            self.header[3],
        ];
        let length = parse_length(&prefix);
        if length.is_none() && &prefix == PACK_SIGNATURE && !self.sideband {
            // The pack without side-band: it runs to the end of the body.
            self.header_len = 0;
            self.state = State::RawPack;
            self.pack_data(&prefix);
            self.emit_raw(&prefix, out);
            return used;
        }
        let length = match length {
            Some(length) if length != 3 && length <= MAX_PKT_LEN => length,
            _ => {
                self.break_framing(&prefix, out);
                return used;
            }
        };
        if length <= LENGTH_PREFIX_LEN {
            // flush, delim, response-end and the empty packet: no payload.
            self.header_len = 0;
            self.route = self.route_for(None, length);
            self.emit(&prefix, out);
            self.end_packet(out);
            return used;
        }
        if self.header_len < BAND_HEADER_LEN {
            let Some(&first) = input.get(used) else {
                return used;
            };
            self.header[LENGTH_PREFIX_LEN] = first;
            self.header_len += 1;
            used += 1;
        }
        self.header_len = 0;
        if length > SMALL_PKT_LEN {
            self.large = true;
        }
        let first = self.header[LENGTH_PREFIX_LEN];
        let band = (1..=3).contains(&first).then_some(first);
        if band.is_some() {
            self.sideband = true;
        }
        self.route = self.route_for(band, length);
        let header = self.header;
        self.emit(&header, out);
        let remaining = length - BAND_HEADER_LEN;
        self.state = State::Payload { band, remaining };
        if remaining == 0 {
            self.end_packet(out);
        }
        used
    }

    /// Where a packet of `band` and `length` bytes goes while withholding: order is kept
    /// unless that would hold more than [`MAX_HELD`] bytes.
    fn route_for(&self, band: Option<u8>, length: usize) -> Route {
        match band {
            _ if !self.withholds() => Route::Out,
            Some(1) => Route::Held,
            _ if self.held.is_empty() => Route::Out,
            Some(_) if self.held.len().saturating_add(length) > MAX_HELD => Route::Out,
            _ => Route::Held,
        }
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if !self.withhold {
            return;
        }
        match self.route {
            Route::Out => out.extend_from_slice(bytes),
            Route::Held => self.held.extend_from_slice(bytes),
        }
    }

    /// Raw pack bytes: all but the last [`TAIL_LEN`] may go.
    fn emit_raw(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if !self.withhold {
            return;
        }
        if self.abandoned {
            out.extend_from_slice(bytes);
            return;
        }
        self.held.extend_from_slice(bytes);
        let keep = usize::try_from(TAIL_LEN).unwrap_or(usize::MAX);
        if let Some(release) = self.held.len().checked_sub(keep).filter(|&n| n > 0) {
            out.extend(self.held.drain(..release));
        }
    }

    /// A packet ended: note the boundary and release what no longer needs holding.
    fn end_packet(&mut self, out: &mut Vec<u8>) {
        self.state = State::Header;
        if !self.withholds() || self.route == Route::Out {
            return;
        }
        self.boundaries
            .push_back((self.held.len(), self.held_band_one));
        // The latest boundary after which at least TAIL_LEN band-1 bytes are still held.
        let mut release = None;
        while let Some(&(at, before)) = self.boundaries.front() {
            if self.held_band_one.saturating_sub(before) < TAIL_LEN {
                break;
            }
            release = Some((at, before));
            self.boundaries.pop_front();
        }
        if let Some((at, before)) = release {
            out.extend(self.held.drain(..at));
            self.held_band_one -= before;
            for boundary in &mut self.boundaries {
                boundary.0 -= at;
                boundary.1 -= before;
            }
        }
    }

    /// The framing cannot be followed: the rest goes to the client unread.
    fn break_framing(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        self.header_len = 0;
        self.state = State::Broken;
        if self.error.is_none() {
            self.error = Some(format!(
                "the answer is not pkt-line framed at byte {} of band 1",
                self.pack_bytes
            ));
        }
        self.route = if self.held.is_empty() {
            Route::Out
        } else {
            Route::Held
        };
        self.emit(prefix, out);
    }

    /// Hands pack bytes to the object scan.
    fn pack_data(&mut self, bytes: &[u8]) {
        if self.pack_header.len() < PACK_HEADER_LEN {
            let room = PACK_HEADER_LEN - self.pack_header.len();
            self.pack_header
                .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        }
        self.pack_bytes = self.pack_bytes.saturating_add(bytes.len() as u64);
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        // TODO(object format): the answer does not say which hash the repository uses (the
        // client's request does); SHA-1 is assumed, and a SHA-256 pack fails to read.
        let scan = self
            .scan
            .get_or_insert_with(|| PushScan::new(Rc::clone(&self.settings), ObjectFormat::Sha1, 0));
        if let Err(err) = scan.feed(bytes) {
            self.fail(&err);
        }
    }

    fn fail(&mut self, err: &PackObjectError) {
        self.error = Some(err.to_string());
        self.scan = None;
    }

    /// Ends the answer. With `refuse_on_secret` (the policy refuses this identity) and a secret
    /// found (or a pack that could not be read), the held bytes are dropped and the refusal is
    /// appended to `out`; otherwise the held bytes are.
    pub fn finish(mut self, refuse_on_secret: bool, out: &mut Vec<u8>) -> Ended {
        let scanned = match self.scan.take() {
            Some(scan) => match scan.finish() {
                Ok(report) => Some(report),
                Err(err) => {
                    self.fail(&err);
                    None
                }
            },
            None => None,
        };
        let report = scanned.unwrap_or_default();
        let has_pack = self.pack_bytes > 0;
        let unreadable = has_pack && self.error.is_some();
        let refuse = refuse_on_secret
            && self.withhold
            && !self.abandoned
            && has_pack
            && (report.has_findings() || unreadable);
        let mut log_lines = push_report::finding_lines(&report);
        log_lines.extend(
            report
                .limits
                .iter()
                .map(|l| format!("gitgate: {}", l.describe())),
        );
        if refuse {
            self.held.clear();
            out.extend_from_slice(&self.refusal(&report));
        } else if self.withhold {
            out.append(&mut self.held);
        }
        let objects = match self.pack_header.get(8..PACK_HEADER_LEN) {
            Some(&[a, b, c, d]) if self.pack_header.starts_with(PACK_SIGNATURE) => {
                u64::from(u32::from_be_bytes([a, b, c, d]))
            }
            _ => 0,
        };
        let fetch_report = FetchReport {
            findings: report.findings.iter().map(|f| f.to_wire()).collect(),
            findings_capped: report.findings_capped,
            pack: PackSummary {
                objects,
                bytes: self.pack_bytes,
                ..PackSummary::default()
            },
            objects_scanned: report.objects,
            scanned_bytes: report.scanned_bytes,
            limits: report.limits.iter().map(|l| l.describe()).collect(),
            error: self.error.clone().filter(|_| has_pack),
            masked: 0,
            refused: refuse,
        };
        Ended {
            report: fetch_report,
            refused: refuse,
            withheld_abandoned: self.abandoned,
            log_lines,
        }
    }

    /// The end of a refused answer: the findings in band 2, the refusal in band 3 (git prints
    /// both as `remote: ...` and stops). Without side-band nothing can be said after pack
    /// bytes (they would be read as pack data): the answer just ends early.
    fn refusal(&self, report: &ScanReport) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.sideband {
            return out;
        }
        let headline = match report.findings.len() {
            0 => "gitgate: fetch refused: the fetched pack could not be scanned for secrets"
                .to_owned(),
            1 => "gitgate: fetch refused: 1 secret in the fetched objects (values are not shown)"
                .to_owned(),
            n => format!(
                "gitgate: fetch refused: {n} secrets in the fetched objects (values are not shown)"
            ),
        };
        let mut lines = vec![headline];
        lines.extend(push_report::finding_lines(report));
        lines.push(
            "gitgate: this identity may not fetch objects that carry secrets; the repository's \
             owners have to remove them from its history (and rotate them)"
                .to_owned(),
        );
        let flavour = SideBand::Small;
        for line in &lines {
            sideband::encode(
                Band::Progress,
                format!("{line}\n").as_bytes(),
                flavour,
                &mut out,
            );
        }
        let error = format!(
            "{SECRET_IN_FETCH} {} in the fetched objects\n",
            match report.findings.len() {
                0 => "a pack that could not be scanned".to_owned(),
                1 => "1 secret".to_owned(),
                n => format!("{n} secrets"),
            }
        );
        sideband::encode(Band::Error, error.as_bytes(), flavour, &mut out);
        out
    }

    /// Pack bytes seen so far.
    pub fn pack_bytes(&self) -> u64 {
        self.pack_bytes
    }

    /// Bytes held back now.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Whether a packet over 1000 bytes showed that `side-band-64k` is in use.
    pub fn side_band_64k(&self) -> bool {
        self.large
    }
}

/// Reads four hex digits (either case, as git does); `None` if they are not hex.
fn parse_length(prefix: &[u8; LENGTH_PREFIX_LEN]) -> Option<usize> {
    prefix.iter().try_fold(0usize, |length, &byte| {
        let digit = char::from(byte).to_digit(16)?;
        Some((length << 4) | digit as usize)
    })
}
