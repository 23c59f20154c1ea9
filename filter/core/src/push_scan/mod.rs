//! Secret push protection: the blobs, commit messages and tag messages of a push scanned for
//! credentials as the pack streams through the gate.
//!
//! [`PushScan`] is fed the body bytes from the end of the command section on. Its
//! [`PackReader`] inflates every entry and hands the objects to a sink that runs one
//! [`Scanner`] per object:
//!
//! - a stored object, or a delta the reader rebuilt from a kept base, is scanned whole: a
//!   finding has the object's id and its line in the object (as `git cat-file -p` shows it);
//! - a binary blob (git's rule: a NUL byte in its first 8000 bytes) is scanned in its runs of
//!   text (printable ASCII, tab, CR, LF; at least [`MIN_TEXT_RUN`] bytes), each on its own, as
//!   `strings` would show them: a credential stored as text in a binary is found, with its
//!   byte offset instead of a line, and the bytes between runs cost only a table lookup;
//! - a delta whose base is not at hand (a thin pack's base is on the server, or it did not fit
//!   the budget) yields only the bytes it inserts; each run of inserted bytes gets a scanner of
//!   its own, and a finding has the byte offset in the object but no id or line. Such a delta
//!   is also a [`LimitHit::DeltaNotRebuilt`]: a secret split between the bytes it copies and
//!   the bytes it inserts would not be seen, so `on_limit` decides (the gate also advertises
//!   `no-thin`, [`crate::no_thin`], so that git sends no deltas against the server's objects);
//! - trees are not scanned, but read for the paths of blobs ([`paths`]); commits and tags
//!   name their root trees and give the message line of a finding.
//!
//! The pack's trailer is not checked here (git's `index-pack` checks it on the server); the
//! reader still finds where the pack ends, which is what the gate needs.
//!
//! Findings never hold the value: rule, object, line, path, commit, fingerprint. They are only
//! complete at the end of the pack, so the verdict of a push with findings is decided there
//! ([`crate::gate`]).
//!
//! # Limits
//!
//! What is scanned is bounded ([`ScanLimits`]): bytes per object, bytes per push, findings per
//! push. Going past a byte limit is a typed [`LimitHit`], which the configuration turns into a
//! refusal or an audited pass ([`OnLimit`]); it never passes silently. Memory per push: the
//! reader's delta bases ([`ScanLimits::delta_base_bytes`]) and fixed state (about 100 KiB), one
//! scanner (one 64 KiB block plus its carry), the path map ([`ScanLimits::path_map_bytes`]),
//! and at most [`ScanLimits::max_findings`] findings.
//!
//! ```
//! use std::rc::Rc;
//! use std::sync::Arc;
//! use gitgate_core::push_scan::{PushScan, SecretScanning};
//! use gitgate_core::receive_pack::ObjectFormat;
//! use gitgate_scan::RuleSet;
//!
//! let settings = Rc::new(SecretScanning::with_defaults(Arc::new(RuleSet::builtin().unwrap())));
//! // The empty pack: header and SHA-1 trailer.
//! let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
//! pack.extend_from_slice(b"\x02\x9d\x08\x82\x3b\xd8\xa8\xea\xb5\x10");
//! pack.extend_from_slice(b"\xad\x6a\xc7\x5c\x82\x3c\xfd\x3e\xd3\x1e");
//!
//! let mut scan = PushScan::new(settings, ObjectFormat::Sha1, 0);
//! scan.feed(&pack).unwrap();
//! let report = scan.finish().unwrap();
//! assert!(report.findings.is_empty() && report.limits.is_empty());
//! ```

pub mod config;
pub mod paths;
pub mod redact;
pub mod report;
pub mod summary;

use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::Arc;

use gitgate_scan::{Finding, Fingerprint, RuleSet, Scanner, Sink};

pub use config::{Bypass, OnLimit, ScanLimits, SecretScanning, SecretsSection};
pub use redact::Redactor;
pub use summary::SummaryBuilder;

use crate::api::{PackSummary, SecretFinding};
use crate::object::{ObjectId, ObjectInfo, ObjectKind};
use crate::pack_objects::{
    Content, EntryKind, ObjectChunk, ObjectEnd, ObjectSink, ObjectStart, PackObjectError,
    PackReader,
};
use crate::receive_pack::ObjectFormat;
use paths::{PathMap, TreeReader};

/// A clock in milliseconds (any epoch), injected so that the core does no I/O: the adapter
/// passes the host's clock, tests a fake one.
#[derive(Clone)]
pub struct Clock(Rc<dyn Fn() -> u64>);

impl Clock {
    /// A clock that reads `now`.
    pub fn new(now: impl Fn() -> u64 + 'static) -> Clock {
        Clock(Rc::new(now))
    }

    /// The time now, in milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Bytes handed to scanners between two looks at the clock: one look per object, and one per
/// this many bytes within a large object, so that a slow object cannot outrun the time cap by
/// much while the clock (a host call in the filter) is not read for every chunk.
const CLOCK_EVERY_BYTES: u64 = 1 << 20;

/// One secret found in a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFinding {
    /// The rule that matched.
    pub rule: Arc<str>,
    /// The object's kind; `None` for delta inserts (the base is not at hand).
    pub kind: Option<ObjectKind>,
    /// The object's id; `None` for delta inserts.
    pub id: Option<ObjectId>,
    /// For delta inserts of a ref-delta: the id of the base the delta applies to (the previous
    /// version of the file, already on the server).
    pub delta_base: Option<ObjectId>,
    /// 1-based line of the match in the object; `None` for delta inserts.
    pub line: Option<u64>,
    /// 1-based column of the match, in bytes; `None` for delta inserts.
    pub column: Option<u64>,
    /// For a commit or tag: the 1-based line in its message.
    pub message_line: Option<u64>,
    /// Offset of the match in the object.
    pub offset: u64,
    /// Absolute offset (in the request body) of the object's pack entry.
    pub entry: u64,
    /// The blob's path in [`PushFinding::commit`], when the pushed trees give it.
    pub path: Option<String>,
    /// For a blob: the commit whose tree holds it at `path`; for a commit: itself.
    pub commit: Option<ObjectId>,
    /// The keyed fingerprint of the value.
    pub fingerprint: Fingerprint,
}

impl PushFinding {
    /// The finding in the verdict protocol's form.
    pub fn to_wire(&self) -> SecretFinding {
        SecretFinding {
            rule: self.rule.to_string(),
            kind: self.kind.map(|k| k.name().to_owned()),
            object: self.id.map(|id| id.to_string()),
            line: self.line,
            offset: self.offset,
            path: self.path.clone(),
            commit: self.commit.map(|id| id.to_string()),
            fingerprint: self.fingerprint.to_string(),
        }
    }
}

/// A scanning limit a push went past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    /// An object larger than [`ScanLimits::max_object_bytes`]: only its first bytes were
    /// scanned.
    ObjectTooLarge {
        /// Absolute offset of its pack entry.
        entry: u64,
        /// Its id, when known.
        id: Option<ObjectId>,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The push's objects add up to more than [`ScanLimits::max_push_bytes`]: scanning
    /// stopped in the object at `entry`.
    PushTooLarge {
        /// Absolute offset of the pack entry where scanning stopped.
        entry: u64,
        /// The limit.
        max: u64,
    },
    /// Scanning took longer than [`ScanLimits::max_scan_ms`]: it stopped in the object at
    /// `entry`, and the rest of the pack was only walked, not scanned.
    TooSlow {
        /// Absolute offset of the pack entry where scanning stopped.
        entry: u64,
        /// The limit, in milliseconds.
        max_ms: u64,
    },
    /// A delta whose base was not at hand, so the object could not be rebuilt and only the
    /// bytes the delta inserts were scanned: a secret split between copied and inserted bytes
    /// would not be seen whole. Recorded once, for the first such entry.
    DeltaNotRebuilt {
        /// Absolute offset of the delta's pack entry.
        entry: u64,
        /// The base the delta applies to.
        base: DeltaBase,
        /// Why the base was not at hand.
        reason: NotRebuilt,
        /// Further deltas in the push that were not rebuilt either.
        more: u64,
    },
}

/// The base a delta names (gitformat-pack, "Deltified representation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaBase {
    /// A `REF_DELTA`'s base id.
    Id(ObjectId),
    /// An `OFS_DELTA`'s base: the absolute offset of its entry, earlier in the pack.
    Entry(u64),
}

/// Why a delta's base was not at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRebuilt {
    /// A `REF_DELTA` whose base is not among the objects kept from the pack so far: it is only
    /// on the server (a thin pack), it comes later in the pack, or it was over the budget.
    BaseNotInPack {
        /// [`ScanLimits::delta_base_bytes`].
        budget: u64,
    },
    /// An `OFS_DELTA` whose base was not kept: it (with the object rebuilt from it) is over
    /// the budget, or it was itself a delta that could not be rebuilt.
    BaseNotKept {
        /// [`ScanLimits::delta_base_bytes`].
        budget: u64,
    },
}

/// `bytes` in MiB, rounded down, for messages.
fn mib(bytes: u64) -> u64 {
    bytes >> 20
}

impl LimitHit {
    /// What the pusher can do about this limit, one line for git's answer.
    pub fn advice(&self) -> &'static str {
        match self {
            LimitHit::DeltaNotRebuilt {
                reason: NotRebuilt::BaseNotInPack { .. },
                ..
            } => {
                "push a complete pack (git push --no-thin), or ask an administrator to raise \
                 secrets.limits.delta_base_bytes"
            }
            LimitHit::DeltaNotRebuilt {
                reason: NotRebuilt::BaseNotKept { .. },
                ..
            } => {
                "ask an administrator to raise secrets.limits.delta_base_bytes, or push the \
                 large file in a push of its own"
            }
            _ => "split it into smaller pushes, or ask an administrator about the scan limits",
        }
    }

    /// One line for logs and for git's answer.
    pub fn describe(&self) -> String {
        match self {
            LimitHit::ObjectTooLarge { id, size, max, .. } => {
                let id = id.map_or_else(|| "an object".to_owned(), |id| format!("object {id}"));
                format!("{id} has {size} bytes; only its first {max} were scanned for secrets")
            }
            LimitHit::PushTooLarge { max, entry } => format!(
                "the push has more than {max} bytes of objects; objects from byte {entry} on \
                 were not scanned for secrets"
            ),
            LimitHit::TooSlow { max_ms, entry } => format!(
                "scanning the push took more than {max_ms} ms; objects from byte {entry} on \
                 were not scanned for secrets"
            ),
            LimitHit::DeltaNotRebuilt {
                entry,
                base,
                reason,
                more,
            } => {
                let base = match base {
                    DeltaBase::Id(id) => format!("base {id}"),
                    DeltaBase::Entry(at) => format!("base at byte {at}"),
                };
                let why = match reason {
                    NotRebuilt::BaseNotInPack { budget } => format!(
                        "its {base} is not in the pack before it (a thin pack, a base later \
                         in the pack, or a base over the {} MiB delta budget)",
                        mib(*budget)
                    ),
                    NotRebuilt::BaseNotKept { budget } => format!(
                        "its {base} was not kept (the file is over the {} MiB delta budget, \
                         or its base could not be rebuilt either)",
                        mib(*budget)
                    ),
                };
                let more = if *more > 0 {
                    format!("; {more} more deltas like it")
                } else {
                    String::new()
                };
                format!(
                    "the delta at byte {entry} could not be rebuilt: {why}; only the bytes it \
                     inserts were scanned for secrets{more}"
                )
            }
        }
    }
}

/// What the scan of a whole push found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// The findings, in pack order; at most [`ScanLimits::max_findings`].
    pub findings: Vec<PushFinding>,
    /// True when scanning stopped at [`ScanLimits::max_findings`]: more may be unreported.
    pub findings_capped: bool,
    /// The byte limits the push went past (at most one of each kind).
    pub limits: Vec<LimitHit>,
    /// Objects scanned (blobs, commits, tags, delta inserts).
    pub objects: u64,
    /// Bytes handed to scanners.
    pub scanned_bytes: u64,
    /// What the pack carries (entry counts, commits), read by the same walk.
    pub pack: PackSummary,
}

impl ScanReport {
    /// True when a secret was found.
    pub fn has_findings(&self) -> bool {
        !self.findings.is_empty()
    }
}

/// The secret scan of one push.
pub struct PushScan {
    reader: PackReader,
    sink: Collector,
}

impl std::fmt::Debug for PushScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushScan")
            .field("reader", &self.reader)
            .field("findings", &self.sink.findings.len())
            .field("scanned", &self.sink.scanned)
            .finish_non_exhaustive()
    }
}

impl PushScan {
    /// A scan of the pack that starts at absolute offset `pack_start` of the body.
    pub fn new(settings: Rc<SecretScanning>, format: ObjectFormat, pack_start: u64) -> PushScan {
        let limits = *settings.limits();
        PushScan {
            // git's index-pack checks the trailer on the server; hashing the pack here too would
            // cost a second pass over every byte for nothing the gate decides on.
            reader: PackReader::with_limits(format, pack_start, limits.pack_limits())
                .without_checksum(),
            sink: Collector {
                format,
                rules: Arc::clone(settings.rules()),
                redactor: Arc::clone(settings.redactor()),
                limits,
                current: Current::Skip,
                findings: Vec::new(),
                findings_capped: false,
                limits_hit: Vec::new(),
                push_capped: false,
                scanned: 0,
                objects: 0,
                paths: PathMap::new(limits.path_map_bytes),
                summary: SummaryBuilder::new(summary::DEFAULT_MAX_SUMMARY_COMMITS)
                    .masking(Arc::clone(settings.redactor())),
                clock: None,
                next_clock_look: 0,
            },
        }
    }

    /// Keeps at most `max` commits in the pack summary (default
    /// [`summary::DEFAULT_MAX_SUMMARY_COMMITS`]).
    pub fn summary_commits(mut self, max: u32) -> PushScan {
        self.sink.summary = SummaryBuilder::new(max).masking(Arc::clone(&self.sink.redactor));
        self
    }

    /// Bounds the scan's time by [`ScanLimits::max_scan_ms`] on `clock`, counted from now.
    /// Without a clock (or with `max_scan_ms` 0) the scan has no time limit.
    pub fn clocked(mut self, clock: Clock) -> PushScan {
        let max = self.sink.limits.max_scan_ms;
        if max > 0 {
            let started = clock.now_ms();
            self.sink.clock = Some((clock, started.saturating_add(max)));
        }
        self
    }

    /// Feeds the next body bytes (any bytes after the pack's trailer are an error).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), PackObjectError> {
        self.reader.feed(bytes, &mut self.sink).map(|_| ())
    }

    /// True once the pack's trailer has been read and matched.
    pub fn is_complete(&self) -> bool {
        self.reader.is_complete()
    }

    /// Findings so far.
    pub fn findings(&self) -> usize {
        self.sink.findings.len()
    }

    /// Ends the scan: an error if the pack is incomplete, else the report, with the paths of
    /// blobs resolved.
    pub fn finish(self) -> Result<ScanReport, PackObjectError> {
        self.reader.finish()?;
        let pack_bytes = self.reader.position();
        let Collector {
            mut findings,
            findings_capped,
            limits_hit,
            paths,
            scanned,
            objects,
            mut summary,
            redactor,
            ..
        } = self.sink;
        if let Some(count) = self.reader.object_count() {
            summary.header(count);
        }
        for finding in &mut findings {
            if finding.kind == Some(ObjectKind::Blob)
                && let Some(id) = &finding.id
                && let Some((path, commit)) = paths.locate(id)
            {
                // A file or directory name may hold a secret too (it is scanned as a tree
                // entry): the path goes into logs and records only masked.
                finding.path = Some(redactor.masked(&path));
                finding.commit = Some(commit);
            }
        }
        Ok(ScanReport {
            findings,
            findings_capped,
            limits: limits_hit,
            objects,
            scanned_bytes: scanned,
            pack: summary.finish(pack_bytes),
        })
    }
}

/// Counts the header lines of a commit or tag, up to the empty line before the message.
#[derive(Debug, Default)]
struct HeaderLines {
    /// Complete lines so far.
    lines: u64,
    /// The previous byte was a line feed (or nothing was read yet).
    at_line_start: bool,
    /// The empty line was seen: `lines` is the header's line count.
    done: bool,
}

impl HeaderLines {
    fn new() -> HeaderLines {
        HeaderLines {
            lines: 0,
            at_line_start: true,
            done: false,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.done {
                return;
            }
            if byte == b'\n' {
                if self.at_line_start {
                    self.done = true;
                } else {
                    self.lines += 1;
                    self.at_line_start = true;
                }
            } else {
                self.at_line_start = false;
            }
        }
    }

    /// The message line of object line `line`, if it is in the message.
    fn message_line(&self, line: u64) -> Option<u64> {
        let first = self.lines.checked_add(2)?;
        (self.done && line >= first).then(|| line - first + 1)
    }
}

/// git's test for binary content (`buffer_is_binary` in xdiff-interface.c): a NUL byte in the
/// first 8000 bytes.
pub const BINARY_SNIFF_LEN: usize = 8000;

/// The shortest run of text bytes scanned in a binary blob: shorter than any token format.
pub const MIN_TEXT_RUN: usize = 12;

/// Bytes that may be part of a secret in a binary blob: printable ASCII, tab, CR and LF (so
/// that a PEM block stays one run).
const fn text_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0x20;
    while byte < 0x7f {
        table[byte] = true;
        byte += 1;
    }
    table[b'\t' as usize] = true;
    table[b'\n' as usize] = true;
    table[b'\r' as usize] = true;
    table
}

static TEXT_BYTES: [bool; 256] = text_table();

fn is_text(byte: u8) -> bool {
    TEXT_BYTES[usize::from(byte)]
}

/// A finding of the current object, with the offset in the object of the stream its scanner
/// read: `None` for a scanner that read the object from its start (its line is the object's),
/// `Some(base)` for one that read a run starting at `base` (a delta insert, or the text in a
/// binary blob: no line).
type Placed = (Option<u64>, Finding);

/// Findings of the current object, up to what the push may still keep.
struct Found {
    findings: Vec<Placed>,
    /// Where the stream being scanned starts; see [`Placed`].
    base: Option<u64>,
    room: usize,
    capped: bool,
}

impl Found {
    fn new(room: usize) -> Found {
        Found {
            findings: Vec::new(),
            base: None,
            room,
            capped: false,
        }
    }
}

impl Sink for Found {
    fn finding(&mut self, finding: Finding) -> ControlFlow<()> {
        if self.findings.len() >= self.room {
            self.capped = true;
            return ControlFlow::Break(());
        }
        self.findings.push((self.base, finding));
        ControlFlow::Continue(())
    }
}

/// Runs of text in a binary blob (what `strings` shows), each scanned on its own.
struct TextRuns {
    /// Length of the stretch of text bytes the last chunk ended in (0: it ended in binary).
    run: usize,
    /// Offset in the blob where that stretch starts.
    start: u64,
    /// Its bytes while it is shorter than [`MIN_TEXT_RUN`].
    short: Vec<u8>,
    /// Its scanner once it is long enough.
    scanner: Option<Scanner<Arc<RuleSet>>>,
}

impl TextRuns {
    fn new() -> TextRuns {
        TextRuns {
            run: 0,
            start: 0,
            short: Vec::with_capacity(MIN_TEXT_RUN),
            scanner: None,
        }
    }

    /// Reads `bytes`, which start at offset `at` of the blob.
    ///
    /// The loop over bytes in binary is the cost of a binary blob, so it only counts the length
    /// of the current stretch of text; stretches shorter than [`MIN_TEXT_RUN`] (random bytes
    /// are full of them) are never looked at again.
    fn update(&mut self, rules: &Arc<RuleSet>, bytes: &[u8], at: u64, found: &mut Found) {
        let mut from = 0;
        if self.run > 0 {
            // The stretch the last chunk ended in goes on here, up to the first binary byte.
            let len = bytes
                .iter()
                .position(|&b| !is_text(b))
                .unwrap_or(bytes.len());
            self.extend(rules, bytes.get(..len).unwrap_or_default(), found);
            if len == bytes.len() {
                return;
            }
            self.end(found);
            from = len;
        }
        let mut run = 0usize;
        for (i, &byte) in bytes.iter().enumerate().skip(from) {
            let before = run;
            run = if is_text(byte) { run + 1 } else { 0 };
            if run == 0 && before >= MIN_TEXT_RUN {
                let begin = i - before;
                self.start = at.saturating_add(begin as u64);
                self.extend(rules, bytes.get(begin..i).unwrap_or_default(), found);
                self.end(found);
            }
        }
        if run > 0 {
            // A stretch runs to the end of the chunk and may go on in the next.
            let begin = bytes.len() - run;
            self.start = at.saturating_add(begin as u64);
            self.extend(rules, bytes.get(begin..).unwrap_or_default(), found);
        }
    }

    /// Adds bytes to the current stretch.
    fn extend(&mut self, rules: &Arc<RuleSet>, stretch: &[u8], found: &mut Found) {
        self.run = self.run.saturating_add(stretch.len());
        if found.capped || stretch.is_empty() {
            return;
        }
        found.base = Some(self.start);
        if let Some(scanner) = &mut self.scanner {
            let _ = scanner.feed(stretch, found);
            return;
        }
        if self.run < MIN_TEXT_RUN {
            self.short.extend_from_slice(stretch);
            return;
        }
        let mut scanner = Scanner::new(Arc::clone(rules));
        if !self.short.is_empty() {
            let _ = scanner.feed(&self.short, found);
            self.short.clear();
        }
        let _ = scanner.feed(stretch, found);
        self.scanner = Some(scanner);
    }

    /// Ends the current stretch.
    fn end(&mut self, found: &mut Found) {
        if let Some(mut scanner) = self.scanner.take()
            && !found.capped
        {
            found.base = Some(self.start);
            let _ = scanner.finish(found);
        }
        self.short.clear();
        self.run = 0;
    }
}

/// How a whole blob's bytes are read.
enum Reading {
    /// The first [`BINARY_SNIFF_LEN`] bytes are gathered to tell text from binary, so that the
    /// answer does not depend on where chunks fall.
    Sniffing(Vec<u8>),
    /// Text: one scanner over the whole object, with lines.
    Text,
    /// Binary: its runs of text.
    Binary(Box<TextRuns>),
}

/// A whole object being scanned.
struct Whole {
    kind: ObjectKind,
    entry: u64,
    scanner: Scanner<Arc<RuleSet>>,
    reading: Reading,
    found: Found,
    /// Bytes of the object taken for scanning.
    fed: u64,
    header: Option<HeaderLines>,
}

impl Whole {
    /// Scans `bytes`, which start at offset `at` of the object.
    fn scan(&mut self, rules: &Arc<RuleSet>, bytes: &[u8], at: u64) {
        match &mut self.reading {
            Reading::Text => {
                if !self.found.capped {
                    let _ = self.scanner.feed(bytes, &mut self.found);
                }
            }
            Reading::Binary(runs) => runs.update(rules, bytes, at, &mut self.found),
            Reading::Sniffing(gathered) => {
                let room = BINARY_SNIFF_LEN.saturating_sub(gathered.len());
                let (now, later) = bytes.split_at(room.min(bytes.len()));
                gathered.extend_from_slice(now);
                if gathered.len() >= BINARY_SNIFF_LEN {
                    self.decide(rules);
                    self.scan(rules, later, at.saturating_add(now.len() as u64));
                }
            }
        }
    }

    /// Tells text from binary on the gathered bytes and scans them.
    fn decide(&mut self, rules: &Arc<RuleSet>) {
        let Reading::Sniffing(gathered) = std::mem::replace(&mut self.reading, Reading::Text)
        else {
            return;
        };
        if memchr::memchr(0, &gathered).is_some() {
            self.reading = Reading::Binary(Box::new(TextRuns::new()));
        }
        self.scan(rules, &gathered, 0);
    }

    /// Ends the object's scan.
    fn finish(&mut self, rules: &Arc<RuleSet>) {
        if matches!(self.reading, Reading::Sniffing(_)) {
            self.decide(rules);
        }
        match &mut self.reading {
            Reading::Binary(runs) => runs.end(&mut self.found),
            Reading::Text | Reading::Sniffing(_) => {
                if !self.found.capped {
                    self.found.base = None;
                    let _ = self.scanner.finish(&mut self.found);
                }
            }
        }
    }
}

/// The runs of bytes a delta inserts, each scanned on its own.
struct Inserts {
    entry: u64,
    delta_base: Option<ObjectId>,
    /// The scanner of the current run.
    run: Option<Scanner<Arc<RuleSet>>>,
    /// Offset in the object where the current run would continue.
    next: u64,
    /// Bytes of the object taken for scanning.
    fed: u64,
    found: Found,
}

impl Inserts {
    /// Ends the current run of inserted bytes.
    fn end_run(&mut self) {
        if let Some(mut scanner) = self.run.take()
            && !self.found.capped
        {
            let _ = scanner.finish(&mut self.found);
        }
    }
}

/// What the sink does with the current object.
enum Current {
    /// Nothing: not scanned (or scanning stopped).
    Skip,
    Whole(Box<Whole>),
    Inserts(Box<Inserts>),
    Tree(Box<TreeReader>),
}

/// The sink the pack reader hands objects to.
struct Collector {
    format: ObjectFormat,
    rules: Arc<RuleSet>,
    redactor: Arc<Redactor>,
    limits: ScanLimits,
    current: Current,
    findings: Vec<PushFinding>,
    findings_capped: bool,
    limits_hit: Vec<LimitHit>,
    /// True once [`ScanLimits::max_push_bytes`] was reached: nothing more is scanned.
    push_capped: bool,
    scanned: u64,
    objects: u64,
    paths: PathMap,
    summary: SummaryBuilder,
    /// The clock and the time scanning must end by, when the scan has a time limit.
    clock: Option<(Clock, u64)>,
    /// [`Collector::scanned`] at which the clock is read next within an object.
    next_clock_look: u64,
}

impl Collector {
    fn scanning(&self) -> bool {
        !self.push_capped && !self.findings_capped
    }

    /// Reads the clock; past the deadline, records the limit and stops all further scanning
    /// (the reader still walks the pack to its end, which the gate needs).
    fn check_clock(&mut self, entry: u64) {
        let Some((clock, deadline)) = &self.clock else {
            return;
        };
        self.next_clock_look = self.scanned.saturating_add(CLOCK_EVERY_BYTES);
        if self.push_capped || clock.now_ms() < *deadline {
            return;
        }
        self.push_capped = true;
        let max_ms = self.limits.max_scan_ms;
        // The current object keeps what it found so far; `allowance` hands it no more bytes.
        self.limits_hit.push(LimitHit::TooSlow { entry, max_ms });
    }

    fn room(&self) -> usize {
        self.limits.max_findings.saturating_sub(self.findings.len())
    }

    /// How many of `len` bytes of an object that already had `fed` bytes scanned may still be
    /// scanned; records the limit hit when it cuts.
    fn allowance(&mut self, entry: u64, fed: u64, len: usize) -> usize {
        if self.push_capped {
            return 0;
        }
        let len64 = len as u64;
        let by_object = self.limits.max_object_bytes.saturating_sub(fed);
        let by_push = self.limits.max_push_bytes.saturating_sub(self.scanned);
        let take = len64.min(by_object).min(by_push);
        if take < len64 && by_push <= by_object && !self.push_capped {
            self.push_capped = true;
            let max = self.limits.max_push_bytes;
            self.limits_hit.push(LimitHit::PushTooLarge { entry, max });
        }
        self.scanned = self.scanned.saturating_add(take);
        usize::try_from(take).unwrap_or(len)
    }

    fn note_large(&mut self, start: &ObjectStart) {
        let max = self.limits.max_object_bytes;
        let known = self
            .limits_hit
            .iter()
            .any(|hit| matches!(hit, LimitHit::ObjectTooLarge { .. }));
        if start.size > max && !known {
            self.limits_hit.push(LimitHit::ObjectTooLarge {
                entry: start.offset,
                id: None,
                size: start.size,
                max,
            });
        }
    }

    /// Records a delta handed out as inserts only: the first one as a limit hit, later ones
    /// counted in it, so that the gate never passes such a push without `on_limit` deciding.
    fn note_not_rebuilt(&mut self, start: &ObjectStart) {
        let budget = self.limits.delta_base_bytes as u64;
        let (base, reason) = match start.entry {
            EntryKind::RefDelta { base } => {
                (DeltaBase::Id(base), NotRebuilt::BaseNotInPack { budget })
            }
            EntryKind::OfsDelta { base_offset } => (
                DeltaBase::Entry(base_offset),
                NotRebuilt::BaseNotKept { budget },
            ),
            EntryKind::Object(_) => return,
        };
        for hit in &mut self.limits_hit {
            if let LimitHit::DeltaNotRebuilt { more, .. } = hit {
                *more = more.saturating_add(1);
                return;
            }
        }
        self.limits_hit.push(LimitHit::DeltaNotRebuilt {
            entry: start.offset,
            base,
            reason,
            more: 0,
        });
    }

    fn new_scanner(&self) -> Scanner<Arc<RuleSet>> {
        Scanner::new(Arc::clone(&self.rules))
    }

    /// Turns the findings of one object into the push's.
    fn keep(&mut self, found: Found, place: &Place) {
        for (base, finding) in found.findings {
            if self.findings.len() >= self.limits.max_findings {
                self.findings_capped = true;
                break;
            }
            let (line, column, offset) = match base {
                None => (Some(finding.line), Some(finding.column), finding.start),
                Some(base) => (None, None, base.saturating_add(finding.start)),
            };
            let message_line = match (&place.header, line) {
                (Some(header), Some(line)) => header.message_line(line),
                _ => None,
            };
            self.findings.push(PushFinding {
                rule: finding.rule_id,
                kind: place.kind,
                id: place.id,
                delta_base: place.delta_base,
                line,
                column,
                message_line,
                offset,
                entry: place.entry,
                path: None,
                commit: place.commit,
                fingerprint: finding.fingerprint,
            });
        }
        if found.capped {
            self.findings_capped = true;
        }
    }
}

/// What is known about the object findings are in.
struct Place {
    kind: Option<ObjectKind>,
    id: Option<ObjectId>,
    delta_base: Option<ObjectId>,
    entry: u64,
    commit: Option<ObjectId>,
    header: Option<HeaderLines>,
}

impl ObjectSink for Collector {
    fn object_start(&mut self, object: &ObjectStart) -> ControlFlow<()> {
        self.current = Current::Skip;
        self.check_clock(object.offset);
        if object.content == Content::Inserts {
            self.note_not_rebuilt(object);
        }
        match object.content {
            Content::Whole(ObjectKind::Tree) => {
                // Entry names are scanned even once the path map is full (room 0 keeps none).
                if self.scanning() {
                    let room = match self.paths.has_room() {
                        true => self.limits.path_map_bytes.saturating_sub(self.paths.used()),
                        false => 0,
                    };
                    let reader = TreeReader::new(self.format, room)
                        .scanning_names(Arc::clone(&self.rules), self.room());
                    self.current = Current::Tree(Box::new(reader));
                }
            }
            Content::Whole(kind) if self.scanning() => {
                self.note_large(object);
                self.objects += 1;
                let text = matches!(kind, ObjectKind::Commit | ObjectKind::Tag);
                self.current = Current::Whole(Box::new(Whole {
                    kind,
                    entry: object.offset,
                    scanner: self.new_scanner(),
                    // Commits and tags are text; blobs may be anything.
                    reading: if text {
                        Reading::Text
                    } else {
                        Reading::Sniffing(Vec::new())
                    },
                    found: Found::new(self.room()),
                    fed: 0,
                    header: text.then(HeaderLines::new),
                }));
            }
            Content::Inserts if self.scanning() => {
                self.note_large(object);
                self.objects += 1;
                let delta_base = match object.entry {
                    EntryKind::RefDelta { base } => Some(base),
                    _ => None,
                };
                self.current = Current::Inserts(Box::new(Inserts {
                    entry: object.offset,
                    delta_base,
                    run: None,
                    next: 0,
                    fed: 0,
                    found: Found::new(self.room()),
                }));
            }
            Content::Whole(_) | Content::Inserts => {}
        }
        ControlFlow::Continue(())
    }

    fn object_data(&mut self, chunk: &ObjectChunk<'_>) -> ControlFlow<()> {
        if self.scanned >= self.next_clock_look {
            self.check_clock(chunk.entry);
        }
        match std::mem::replace(&mut self.current, Current::Skip) {
            Current::Skip => {}
            Current::Tree(mut reader) => {
                reader.update(chunk.bytes);
                self.current = Current::Tree(reader);
            }
            Current::Whole(mut whole) => {
                if let Some(header) = &mut whole.header {
                    header.update(chunk.bytes);
                }
                let take = self.allowance(whole.entry, whole.fed, chunk.bytes.len());
                let bytes = chunk.bytes.get(..take).unwrap_or_default();
                if !bytes.is_empty() {
                    let at = whole.fed;
                    whole.fed += bytes.len() as u64;
                    whole.scan(&self.rules, bytes, at);
                }
                self.current = Current::Whole(whole);
            }
            Current::Inserts(mut inserts) => {
                if chunk.offset != inserts.next {
                    inserts.end_run();
                }
                let take = self.allowance(inserts.entry, inserts.fed, chunk.bytes.len());
                let bytes = chunk.bytes.get(..take).unwrap_or_default();
                if !bytes.is_empty() && !inserts.found.capped {
                    inserts.fed += bytes.len() as u64;
                    if inserts.run.is_none() {
                        inserts.found.base = Some(chunk.offset);
                        inserts.run = Some(self.new_scanner());
                    }
                    if let Some(scanner) = &mut inserts.run {
                        let _ = scanner.feed(bytes, &mut inserts.found);
                    }
                }
                inserts.next = chunk.offset.saturating_add(chunk.bytes.len() as u64);
                self.current = Current::Inserts(inserts);
            }
        }
        ControlFlow::Continue(())
    }

    fn object_end(&mut self, object: ObjectEnd) -> ControlFlow<()> {
        self.summary.entry(object.object.kind());
        if let (Some(ObjectInfo::Commit(commit)), Some(id)) = (&object.info, object.id) {
            self.summary.commit(&id, commit);
            if let Some(tree) = commit.tree {
                self.paths.add_root(tree, id);
            }
        }
        for hit in &mut self.limits_hit {
            if let LimitHit::ObjectTooLarge { entry, id, .. } = hit
                && *entry == object.object.offset
            {
                *id = object.id;
            }
        }
        match std::mem::replace(&mut self.current, Current::Skip) {
            Current::Skip => {}
            Current::Tree(mut reader) => {
                let mut found = Found::new(self.room());
                found.findings = reader
                    .take_name_findings()
                    .into_iter()
                    .map(|(at, finding)| (Some(at), finding))
                    .collect();
                let place = Place {
                    kind: Some(ObjectKind::Tree),
                    id: object.id,
                    delta_base: None,
                    entry: object.object.offset,
                    commit: None,
                    header: None,
                };
                self.keep(found, &place);
                if let (Some(id), Some(entries)) = (object.id, reader.finish()) {
                    self.paths.add_tree(id, entries);
                }
            }
            Current::Whole(mut whole) => {
                whole.finish(&self.rules);
                let Whole {
                    kind,
                    entry,
                    found,
                    header,
                    ..
                } = *whole;
                let place = Place {
                    kind: Some(kind),
                    id: object.id,
                    delta_base: None,
                    entry,
                    commit: (kind == ObjectKind::Commit).then_some(object.id).flatten(),
                    header,
                };
                self.keep(found, &place);
            }
            Current::Inserts(mut inserts) => {
                inserts.end_run();
                let place = Place {
                    kind: None,
                    id: None,
                    delta_base: inserts.delta_base,
                    entry: inserts.entry,
                    commit: None,
                    header: None,
                };
                self.keep(inserts.found, &place);
            }
        }
        ControlFlow::Continue(())
    }
}
