//! The streaming scanner: fed chunks of any size, it reports each secret once, with absolute
//! offsets, whatever the chunk boundaries.
//!
//! How a block of input is handled:
//!
//! 1. **Keywords.** The keyword automaton runs over the new bytes and the last
//!    `max_keyword_len - 1` bytes before them, so a keyword split by a boundary is found; hits
//!    that end in old bytes were reported before and are skipped.
//! 2. **Windows.** Each hit waits until its rule's window, `max_prefix` bytes before the keyword
//!    to `max_len` bytes after its start plus one byte of look-ahead, is in the buffer (or the
//!    stream ends). The rule's regex then runs on that window alone, with the byte on either side
//!    visible to `\b` and `(?m)^`. A window depends only on the hit's offset, never on where the
//!    chunks fell, which is what makes findings independent of chunking.
//! 3. **Candidates.** A match that overlaps its keyword, passes the rule's checks and is not
//!    allowlisted becomes a candidate, unless one with the same rule and secret span exists.
//! 4. **Decisions.** The *horizon* is the offset before which every candidate that will ever
//!    exist is known. A candidate ending at or before it is decided: a generic rule's candidate is
//!    dropped if a specific rule's candidate overlaps its secret, and of two overlapping
//!    candidates of one rule the earlier one stays. Decided candidates go to the sink in order of
//!    end offset.
//! 5. **Carry.** Bytes no pending window and no future window can reach are dropped, which keeps
//!    at most [`RuleSet::carry_len`] bytes plus one block.

use std::borrow::Borrow;
use std::ops::{ControlFlow, Range};
use std::sync::Arc;

use regex_automata::{Anchored, Input};

use crate::allow;
use crate::fingerprint::Fingerprint;
use crate::rule::Family;
use crate::ruleset::RuleSet;
use crate::validate;

/// The most bytes appended to the buffer at once. A larger chunk is scanned in blocks of this
/// size, so a scanner's memory stays at one block plus the carry whatever the caller feeds.
pub const BLOCK_LEN: usize = 64 * 1024;

/// One secret found in the stream.
///
/// The value itself is never kept: [`Finding::fingerprint`] names it, and
/// [`Finding::secret`] says where it is for callers that mask it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The id of the rule that matched.
    pub rule_id: Arc<str>,
    /// The rule's family.
    pub family: Family,
    /// Absolute offset of the first byte of the match.
    pub start: u64,
    /// Absolute offset one past the last byte of the match; `start < end`.
    pub end: u64,
    /// The absolute byte range of the secret value, within `start..end`.
    pub secret: Range<u64>,
    /// 1-based line of `start`, counting `\n` across all chunks.
    pub line: u64,
    /// 1-based column of `start`, in bytes from the line's first byte.
    pub column: u64,
    /// HMAC-SHA256 of the secret value under the rule set's key, truncated.
    pub fingerprint: Fingerprint,
}

/// Where findings go. Return [`ControlFlow::Break`] to stop the scan (a push is refused at the
/// first secret) or [`ControlFlow::Continue`] to go on (masking needs all of them).
pub trait Sink {
    /// Takes one finding.
    fn finding(&mut self, finding: Finding) -> ControlFlow<()>;
}

impl Sink for Vec<Finding> {
    fn finding(&mut self, finding: Finding) -> ControlFlow<()> {
        self.push(finding);
        ControlFlow::Continue(())
    }
}

/// A sink that keeps the first finding and stops the scan.
#[derive(Debug, Default)]
pub struct FirstFinding(pub Option<Finding>);

impl Sink for FirstFinding {
    fn finding(&mut self, finding: Finding) -> ControlFlow<()> {
        self.0 = Some(finding);
        ControlFlow::Break(())
    }
}

/// A sink made of a closure.
pub struct FnSink<F>(pub F);

impl<F: FnMut(Finding) -> ControlFlow<()>> Sink for FnSink<F> {
    fn finding(&mut self, finding: Finding) -> ControlFlow<()> {
        (self.0)(finding)
    }
}

/// Where the scanner is in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Taking chunks.
    Scanning,
    /// A sink returned `Break`; further input is ignored.
    Stopped,
    /// `finish` ran; further input is ignored.
    Finished,
}

/// A keyword occurrence waiting for its rule's window.
#[derive(Clone, Copy, Debug)]
struct Hit {
    rule: u32,
    /// Absolute offsets of the keyword.
    start: u64,
    end: u64,
}

/// A match that passed its rule's checks, waiting for the horizon.
#[derive(Clone, Debug)]
struct Candidate {
    rule: u32,
    start: u64,
    end: u64,
    secret: Range<u64>,
    line: u64,
    column: u64,
    fingerprint: Fingerprint,
}

/// What a decided candidate leaves behind for later overlap checks.
#[derive(Clone, Debug)]
struct Decided {
    rule: u32,
    generic: bool,
    start: u64,
    end: u64,
    secret: Range<u64>,
}

/// The streaming scanner. Cheap to create: all compiled state lives in the [`RuleSet`], which
/// it borrows through `R` (a reference, an `Rc` or an `Arc`).
///
/// ```
/// use std::ops::ControlFlow;
/// use gitgate_scan::{RuleSet, Scanner};
///
/// let rules = RuleSet::builtin().unwrap();
/// let mut scanner = Scanner::new(&rules);
/// let mut findings = Vec::new();
/// let token = concat!("xoxb-", "1234567890-1234567890-", "a1B2c3D4e5F6g7H8i9J0k1L2");
/// let (left, right) = token.split_at(12);
/// assert_eq!(scanner.feed(format!("SLACK={left}").as_bytes(), &mut findings), ControlFlow::Continue(()));
/// scanner.feed(format!("{right}\n").as_bytes(), &mut findings);
/// scanner.finish(&mut findings);
/// assert_eq!(&*findings[0].rule_id, "slack-bot-token");
/// assert_eq!(findings[0].secret, 6..6 + token.len() as u64);
/// ```
#[derive(Debug)]
pub struct Scanner<R: Borrow<RuleSet> = Arc<RuleSet>> {
    rules: R,
    /// Bytes from `buf_start` to `frontier`.
    buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    buf_start: u64,
    /// Absolute offset one past the last byte fed; `buf_start + buf.len()`.
    frontier: u64,
    /// 1-based line of `buf[0]`.
    buf_line: u64,
    /// Absolute offset of the first byte of that line.
    buf_line_start: u64,
    /// Hits whose window is not complete yet.
    pending: Vec<Hit>,
    /// Candidates not decided yet.
    held: Vec<Candidate>,
    /// Decided candidates that a held or future candidate may still overlap.
    decided: Vec<Decided>,
    /// Every candidate starting before this offset is known; never decreases.
    horizon: u64,
    phase: Phase,
}

impl<R: Borrow<RuleSet>> Scanner<R> {
    /// A scanner at offset 0 of a new stream.
    pub fn new(rules: R) -> Scanner<R> {
        Scanner {
            rules,
            buf: Vec::new(),
            buf_start: 0,
            frontier: 0,
            buf_line: 1,
            buf_line_start: 0,
            pending: Vec::new(),
            held: Vec::new(),
            decided: Vec::new(),
            horizon: 0,
            phase: Phase::Scanning,
        }
    }

    /// The rule set this scanner uses.
    pub fn rules(&self) -> &RuleSet {
        self.rules.borrow()
    }

    /// The number of bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.frontier
    }

    /// Every finding whose secret starts before this offset has been reported, and no later one
    /// will start before it: a masking caller may release the bytes before it once it has masked
    /// the secrets it was given. It never decreases.
    pub fn settled_offset(&self) -> u64 {
        let held = self
            .held
            .iter()
            .map(|c| c.secret.start)
            .min()
            .unwrap_or(u64::MAX);
        self.horizon.min(held)
    }

    /// The bytes held between chunks right now; at most one block plus
    /// [`RuleSet::carry_len`].
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Whether a sink stopped the scan.
    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// Scans the next chunk of the stream. Returns `Break` once a sink has stopped the scan;
    /// input after that, or after [`Scanner::finish`], is ignored.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl Sink) -> ControlFlow<()> {
        if self.phase != Phase::Scanning {
            return self.stopped_flow();
        }
        for block in chunk.chunks(BLOCK_LEN) {
            self.push_block(block);
            self.process_ready_hits(false);
            self.advance_horizon();
            if self.decide(sink).is_break() {
                self.phase = Phase::Stopped;
                return ControlFlow::Break(());
            }
            self.drain();
        }
        ControlFlow::Continue(())
    }

    /// Ends the stream: runs the windows still waiting for bytes, clipped at the end, and
    /// reports what is left.
    pub fn finish(&mut self, sink: &mut impl Sink) -> ControlFlow<()> {
        if self.phase != Phase::Scanning {
            return self.stopped_flow();
        }
        self.phase = Phase::Finished;
        self.process_ready_hits(true);
        self.horizon = u64::MAX;
        let flow = self.decide(sink);
        self.buf = Vec::new();
        self.decided.clear();
        self.held.clear();
        if flow.is_break() {
            self.phase = Phase::Stopped;
        }
        flow
    }

    fn stopped_flow(&self) -> ControlFlow<()> {
        match self.phase {
            Phase::Stopped => ControlFlow::Break(()),
            Phase::Scanning | Phase::Finished => ControlFlow::Continue(()),
        }
    }

    /// Appends `block` and records the keyword hits that end in it.
    fn push_block(&mut self, block: &[u8]) {
        let old_frontier = self.frontier;
        self.buf.extend_from_slice(block);
        self.frontier = self.frontier.saturating_add(block.len() as u64);

        let rules: &RuleSet = self.rules.borrow();
        let overlap = rules.max_keyword_len.saturating_sub(1) as u64;
        let search_from = old_frontier.saturating_sub(overlap).max(self.buf_start);
        let from = index(search_from, self.buf_start);
        let Some(haystack) = self.buf.get(from..) else {
            return;
        };
        for m in rules.keywords.find_overlapping_iter(haystack) {
            let start = search_from + m.start() as u64;
            let end = search_from + m.end() as u64;
            if end <= old_frontier {
                continue;
            }
            let Some(targets) = rules.keyword_targets.get(m.pattern().as_usize()) else {
                continue;
            };
            let found = &haystack[m.start()..m.end()];
            for target in targets {
                if target.exact.as_deref().is_some_and(|exact| exact != found) {
                    continue;
                }
                self.pending.push(Hit {
                    rule: target.rule,
                    start,
                    end,
                });
            }
        }
    }

    /// Runs the regex of every hit whose window is complete (or of all hits at the end).
    fn process_ready_hits(&mut self, at_end: bool) {
        let mut i = 0;
        while i < self.pending.len() {
            let hit = self.pending[i];
            let rules: &RuleSet = self.rules.borrow();
            let Some(rule) = rules.rules.get(hit.rule as usize) else {
                self.pending.swap_remove(i);
                continue;
            };
            // One byte past the window must be here for the look-ahead of `\b` and `$`.
            let ready = at_end || hit.start.saturating_add(rule.max_len as u64) < self.frontier;
            if ready {
                self.pending.swap_remove(i);
                self.run_window(hit);
            } else {
                i += 1;
            }
        }
    }

    /// Searches the window of `hit` and turns matches that overlap the keyword into candidates.
    fn run_window(&mut self, hit: Hit) {
        let rules: &RuleSet = self.rules.borrow();
        let Some(rule) = rules.rules.get(hit.rule as usize) else {
            return;
        };
        let window_start = hit
            .start
            .saturating_sub(rule.max_prefix as u64)
            .max(self.buf_start);
        let window_end = hit
            .start
            .saturating_add(rule.max_len as u64)
            .min(self.frontier);
        if window_end <= window_start {
            return;
        }
        let (ws, we) = (
            index(window_start, self.buf_start),
            index(window_end, self.buf_start),
        );
        if we > self.buf.len() || ws > we {
            return;
        }
        let anchored = rule.max_prefix == 0;
        let mut at = ws;
        let mut found = Vec::new();
        while at < we {
            let mut input = Input::new(&self.buf[..]).range(at..we);
            if anchored {
                input = input.anchored(Anchored::Yes);
            }
            let Some(m) = rule.regex.search(&input) else {
                break;
            };
            let (m_start, m_end) = (
                self.buf_start + m.start() as u64,
                self.buf_start + m.end() as u64,
            );
            if m_start >= hit.end {
                break;
            }
            if m_end > hit.start && m_end > m_start {
                found.push(m.range());
            }
            if anchored {
                break;
            }
            at = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + 1
            };
        }
        for range in found {
            self.consider(hit.rule, range);
        }
    }

    /// Checks one match (buffer indices) and keeps it as a candidate if it passes.
    fn consider(&mut self, rule_index: u32, range: Range<usize>) {
        let rules: &RuleSet = self.rules.borrow();
        let Some(rule) = rules.rules.get(rule_index as usize) else {
            return;
        };
        let secret = if rule.secret_group == 0 {
            range.clone()
        } else {
            let mut caps = rule.regex.create_captures();
            let input = Input::new(&self.buf[..])
                .range(range.clone())
                .anchored(Anchored::Yes);
            rule.regex.search_captures(&input, &mut caps);
            match caps.get_group(rule.secret_group) {
                Some(span) => span.range(),
                None => return,
            }
        };
        let (Some(value), Some(whole)) =
            (self.buf.get(secret.clone()), self.buf.get(range.clone()))
        else {
            return;
        };
        if value.is_empty() {
            return;
        }
        if let Some(validation) = rule.validation {
            // The retained bytes reach `max_prefix + lookbehind` before any hit, so this
            // look-back sees the same bytes however the stream was cut.
            let from = range.start.saturating_sub(rule.lookbehind);
            let before = &self.buf[from..range.start];
            let at_stream_start = from == 0 && self.buf_start == 0;
            if !validate::check(validation, value, whole, before, at_stream_start) {
                return;
            }
        }
        if let Some(floor) = rule.entropy
            && validate::shannon_entropy(value) < floor
        {
            return;
        }
        if allow::is_allowed(rule.allow, value) {
            return;
        }
        if rules
            .allow_regexes
            .iter()
            .any(|re| re.is_match(Input::new(value)))
        {
            return;
        }
        let fingerprint = rules.fingerprinter.fingerprint(value);
        if rules.allow_fingerprints.contains(&fingerprint) {
            return;
        }

        let base = self.buf_start;
        let secret_abs = base + secret.start as u64..base + secret.end as u64;
        let start = base + range.start as u64;
        let end = base + range.end as u64;
        if self
            .decided
            .iter()
            .any(|d| d.rule == rule_index && d.secret == secret_abs)
        {
            return;
        }
        // Two keywords of one rule can lead to the same secret from different match starts
        // (`secret_token = "..."`). Keep the earliest start: which hit ran first depends on the
        // chunking, the earliest start does not.
        if let Some(i) = self
            .held
            .iter()
            .position(|c| c.rule == rule_index && c.secret == secret_abs)
        {
            if (start, end) < (self.held[i].start, self.held[i].end) {
                let (line, column) = self.line_and_column(range.start);
                let held = &mut self.held[i];
                (held.start, held.end, held.line, held.column) = (start, end, line, column);
            }
            return;
        }
        let (line, column) = self.line_and_column(range.start);
        self.held.push(Candidate {
            rule: rule_index,
            start,
            end,
            secret: secret_abs,
            line,
            column,
            fingerprint,
        });
    }

    /// Line and column of buffer index `at`.
    fn line_and_column(&self, at: usize) -> (u64, u64) {
        let before = &self.buf[..at.min(self.buf.len())];
        let newlines = count_newlines(before);
        let line_start = match memchr::memrchr(b'\n', before) {
            Some(i) => self.buf_start + i as u64 + 1,
            None => self.buf_line_start,
        };
        let abs = self.buf_start + at as u64;
        (self.buf_line + newlines, abs - line_start + 1)
    }

    /// Moves the horizon to the earliest start any unknown candidate could have.
    fn advance_horizon(&mut self) {
        let rules: &RuleSet = self.rules.borrow();
        // A future hit ends past the frontier, so it starts at most a keyword before it, and its
        // match at most the longest prefix before that.
        let reach = (rules.max_keyword_len + rules.max_prefix) as u64;
        let mut horizon = self.frontier.saturating_sub(reach);
        for hit in &self.pending {
            let prefix = rules
                .rules
                .get(hit.rule as usize)
                .map_or(0, |r| r.max_prefix) as u64;
            horizon = horizon.min(hit.start.saturating_sub(prefix));
        }
        self.horizon = self.horizon.max(horizon);
    }

    /// Decides every held candidate that ends at or before the horizon and reports the kept ones
    /// in order of end offset.
    fn decide(&mut self, sink: &mut impl Sink) -> ControlFlow<()> {
        let horizon = self.horizon;
        if !self.held.iter().any(|c| c.end <= horizon) {
            return ControlFlow::Continue(());
        }
        let (mut ready, rest): (Vec<Candidate>, Vec<Candidate>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|c| c.end <= horizon);
        self.held = rest;
        ready.sort_by_key(|c| (c.end, c.start, c.rule));

        let rules: &RuleSet = self.rules.borrow();
        let generic = |rule: u32| rules.rules.get(rule as usize).is_some_and(|r| r.generic);
        let keeps: Vec<bool> = ready
            .iter()
            .map(|c| {
                let is_generic = generic(c.rule);
                let others = ready
                    .iter()
                    .chain(self.held.iter())
                    .map(|o| (o.rule, generic(o.rule), o.start, o.end, &o.secret))
                    .chain(
                        self.decided
                            .iter()
                            .map(|d| (d.rule, d.generic, d.start, d.end, &d.secret)),
                    );
                !others
                    .into_iter()
                    .any(|(rule, other_generic, start, end, secret)| {
                        let overlaps = secret.start < c.secret.end && c.secret.start < secret.end;
                        if !overlaps || (rule == c.rule && *secret == c.secret) {
                            return false;
                        }
                        if is_generic && !other_generic {
                            return true;
                        }
                        // Of two overlapping matches of one rule, the earlier (then longer) stays.
                        rule == c.rule
                            && (start, std::cmp::Reverse(end)) < (c.start, std::cmp::Reverse(c.end))
                    })
            })
            .collect();

        for c in &ready {
            self.decided.push(Decided {
                rule: c.rule,
                generic: generic(c.rule),
                start: c.start,
                end: c.end,
                secret: c.secret.clone(),
            });
        }
        for (c, keep) in ready.into_iter().zip(keeps) {
            if !keep {
                continue;
            }
            let Some(rule) = rules.rules.get(c.rule as usize) else {
                continue;
            };
            let finding = Finding {
                rule_id: rule.id.clone(),
                family: rule.family,
                start: c.start,
                end: c.end,
                secret: c.secret,
                line: c.line,
                column: c.column,
                fingerprint: c.fingerprint,
            };
            sink.finding(finding)?;
        }

        // A decided candidate matters while a held or future one could still overlap it.
        let floor = self
            .held
            .iter()
            .map(|c| c.start)
            .min()
            .unwrap_or(u64::MAX)
            .min(horizon);
        self.decided.retain(|d| d.end > floor);
        ControlFlow::Continue(())
    }

    /// Drops the bytes no pending or future window can reach, keeping line bookkeeping.
    fn drain(&mut self) {
        let rules: &RuleSet = self.rules.borrow();
        // One byte before a window stays for look-behind (`\b`, `(?m)^`), and validations
        // that read before the match keep their `lookbehind`.
        let reach = (rules.max_keyword_len + rules.max_reach_back + 1) as u64;
        let mut keep_from = self.frontier.saturating_sub(reach);
        for hit in &self.pending {
            let back = rules
                .rules
                .get(hit.rule as usize)
                .map_or(0, |r| r.max_prefix + r.lookbehind);
            keep_from = keep_from.min(hit.start.saturating_sub(back as u64 + 1));
        }
        if keep_from <= self.buf_start {
            return;
        }
        let cut = index(keep_from, self.buf_start).min(self.buf.len());
        let dropped = &self.buf[..cut];
        let newlines = count_newlines(dropped);
        if let Some(last) = memchr::memrchr(b'\n', dropped) {
            self.buf_line_start = self.buf_start + last as u64 + 1;
        }
        self.buf_line += newlines;
        self.buf.drain(..cut);
        self.buf_start += cut as u64;
    }
}

/// The number of `\n` bytes in `bytes`, eight at a time.
///
/// Every byte of the stream passes through here once, so it must not cost much: a per-match
/// iterator is several times slower on source text (a newline every 40 bytes or so), and under
/// wasm32 without `simd128` memchr has no vector path.
fn count_newlines(bytes: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const NEWLINES: u64 = 0x0a0a_0a0a_0a0a_0a0a;
    let mut chunks = bytes.chunks_exact(8);
    let mut count = 0u64;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word) ^ NEWLINES;
        // The high bit of each byte of `zero` is set exactly when that byte of `v` is zero.
        let zero = !(((v & LOW7) + LOW7) | v | LOW7);
        count += u64::from(zero.count_ones());
    }
    count + chunks.remainder().iter().filter(|&&b| b == b'\n').count() as u64
}

/// The buffer index of absolute offset `abs`, given the buffer's start.
fn index(abs: u64, buf_start: u64) -> usize {
    usize::try_from(abs.saturating_sub(buf_start)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::count_newlines;

    #[test]
    fn newlines_are_counted_exactly_at_every_alignment_and_next_to_every_byte() {
        for len in 0..40 {
            for b in [0u8, 0x09, 0x0a, 0x0b, 0x8a, 0xff] {
                let mut bytes: Vec<u8> = (0..len)
                    .map(|i| if i % 3 == 0 { b'\n' } else { b })
                    .collect();
                bytes.push(b'\n');
                let slow = bytes.iter().filter(|&&x| x == b'\n').count() as u64;
                assert_eq!(count_newlines(&bytes), slow, "len {len} byte {b:#x}");
            }
        }
    }
}
