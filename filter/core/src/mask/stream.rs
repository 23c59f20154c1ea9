//! The masking layer over the scanner: bytes go in, and come out with every secret replaced, as
//! soon as the scanner has settled them.
//!
//! A [`MaskStream`] holds the bytes from the last release to the scanner's frontier. The
//! scanner's [`settled_offset`](gitgate_scan::Scanner::settled_offset) says before which offset no
//! further secret will start; the bytes before it may go, with the secrets reported so far
//! masked. A secret that straddles a release point is replaced where it starts and its remaining
//! bytes are dropped on the next release. How the released bytes are written (copied, escaped
//! into a JSON string, framed as pkt-lines) is the caller's [`Render`].
//!
//! Memory: the held bytes trail the scanner's frontier by at most its carry
//! ([`RuleSet::carry_len`](gitgate_scan::RuleSet::carry_len)) plus the bytes fed in one call.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use gitgate_scan::{Finding, Fingerprint, Scanner};

use super::Shared;

/// Writes released bytes.
pub(crate) trait Render {
    /// Bytes with no secret in them, the first at stream offset `at`.
    fn plain(&mut self, at: u64, bytes: &[u8]);

    /// Bytes of a masked range, the first at `at`. `mask` replaces the whole range: it is
    /// written with the range's first piece (`first`), and the bytes of later pieces are
    /// dropped. `last` marks the range's last piece.
    fn masked(&mut self, at: u64, bytes: &[u8], mask: &[u8], first: bool, last: bool);
}

/// A secret found in the stream, for the audit record: never its value.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) rule_id: Arc<str>,
    pub(crate) fingerprint: Fingerprint,
    /// Stream offset of the secret's first byte.
    pub(crate) start: u64,
}

/// A range to mask, in stream offsets.
#[derive(Debug)]
struct MaskRange {
    start: u64,
    end: u64,
    mask: Box<[u8]>,
    /// True once the first piece (with the mask) was written.
    begun: bool,
}

/// A scanner with the bytes it has not settled yet.
pub(crate) struct MaskStream {
    shared: Arc<Shared>,
    scanner: Scanner<Arc<gitgate_scan::RuleSet>>,
    /// The bytes from `released` to the frontier.
    held: Vec<u8>,
    /// How many bytes of `held` the scanner has seen. Pushes only append: the scanner runs
    /// when the owner next asks what is settled, so many small pushes (one per JSON escape,
    /// one per base64 line) cost one scan.
    scanned: usize,
    /// Stream offset of `held[0]`: everything before it was released.
    released: u64,
    /// Ranges to mask, sorted by start and disjoint; only the first may start before
    /// `released` (then it is `begun`).
    ranges: VecDeque<MaskRange>,
    /// Findings not yet taken by the owner.
    found: Vec<Found>,
    /// Whether releases stop at UTF-8 character boundaries (text, JSON strings, file contents)
    /// or exactly where asked (pkt-line payloads).
    utf8_cuts: bool,
    finished: bool,
}

impl std::fmt::Debug for MaskStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskStream")
            .field("released", &self.released)
            .field("held", &self.held.len())
            .field("ranges", &self.ranges.len())
            .finish_non_exhaustive()
    }
}

/// Whether `byte` continues a UTF-8 sequence.
fn is_continuation(byte: u8) -> bool {
    byte & 0xc0 == 0x80
}

/// The longest UTF-8 sequence minus its lead byte.
const MAX_CONTINUATION: usize = 3;

impl MaskStream {
    /// An empty stream at offset 0.
    pub(crate) fn new(shared: &Arc<Shared>, utf8_cuts: bool) -> MaskStream {
        MaskStream {
            shared: Arc::clone(shared),
            scanner: Scanner::new(Arc::clone(&shared.rules)),
            held: Vec::new(),
            scanned: 0,
            released: 0,
            ranges: VecDeque::new(),
            found: Vec::new(),
            utf8_cuts,
            finished: false,
        }
    }

    /// Stream offset one past the last byte pushed.
    pub(crate) fn offset(&self) -> u64 {
        self.released + self.held.len() as u64
    }

    /// Stream offset of the first byte not yet released.
    pub(crate) fn released(&self) -> u64 {
        self.released
    }

    /// True when nothing is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The offset before which bytes may be released.
    pub(crate) fn settled(&mut self) -> u64 {
        self.scan();
        if self.finished {
            self.offset()
        } else {
            self.scanner.settled_offset().min(self.offset())
        }
    }

    /// Appends bytes; they are scanned before anything is released.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.finished {
            return;
        }
        self.held.extend_from_slice(bytes);
    }

    /// Scans the bytes pushed since the last scan.
    fn scan(&mut self) {
        let Some(unscanned) = self.held.get(self.scanned..).filter(|b| !b.is_empty()) else {
            return;
        };
        let mut findings = Vec::new();
        // A Vec sink never stops the scan.
        let _ = self.scanner.feed(unscanned, &mut findings);
        self.scanned = self.held.len();
        for finding in findings {
            self.register(finding);
        }
    }

    /// Ends the stream: every held byte is settled afterwards.
    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.scan();
        let mut findings = Vec::new();
        let _ = self.scanner.finish(&mut findings);
        for finding in findings {
            self.register(finding);
        }
        self.finished = true;
    }

    /// The findings registered since the last call.
    pub(crate) fn take_found(&mut self) -> Vec<Found> {
        self.scan();
        std::mem::take(&mut self.found)
    }

    /// Releases the bytes before `upto` (clipped to the frontier, and moved back to a character
    /// boundary when the stream cuts on UTF-8 boundaries) through `render`.
    pub(crate) fn release(&mut self, upto: u64, render: &mut impl Render) {
        self.scan();
        let frontier = self.offset();
        let mut upto = upto.min(frontier);
        if self.utf8_cuts && upto < frontier {
            let mut back = 0;
            while back < MAX_CONTINUATION
                && upto > self.released
                && self.byte_at(upto).is_some_and(is_continuation)
            {
                upto -= 1;
                back += 1;
            }
        }
        if upto <= self.released {
            return;
        }
        let mut at = self.released;
        while at < upto {
            let next = match self.ranges.front_mut() {
                Some(range) if range.end <= at => {
                    // Not reached (a range ends past `released` until its last piece pops it);
                    // dropping it keeps the loop moving.
                    self.ranges.pop_front();
                    continue;
                }
                Some(range) if range.start <= at => {
                    let end = range.end.min(upto);
                    let first = !range.begun;
                    let last = end == range.end;
                    range.begun = true;
                    let bytes = slice(&self.held, self.released, at, end);
                    render.masked(at, bytes, &range.mask, first, last);
                    if last {
                        self.ranges.pop_front();
                    }
                    end
                }
                Some(range) => {
                    let end = range.start.min(upto);
                    render.plain(at, slice(&self.held, self.released, at, end));
                    end
                }
                None => {
                    render.plain(at, slice(&self.held, self.released, at, upto));
                    upto
                }
            };
            at = next;
        }
        let drained = usize::try_from(upto - self.released)
            .unwrap_or(usize::MAX)
            .min(self.held.len());
        self.held.drain(..drained);
        self.scanned = self.scanned.saturating_sub(drained);
        self.released = upto;
    }

    /// Releases every settled byte.
    pub(crate) fn release_settled(&mut self, render: &mut impl Render) {
        let settled = self.settled();
        self.release(settled, render);
    }

    /// The held byte at stream offset `at`.
    fn byte_at(&self, at: u64) -> Option<u8> {
        let index = usize::try_from(at.checked_sub(self.released)?).ok()?;
        self.held.get(index).copied()
    }

    /// Turns a finding into a range to mask, merged with any it overlaps.
    fn register(&mut self, finding: Finding) {
        let frontier = self.offset();
        let Range { start, end } = finding.secret;
        // The scanner reports a secret only after it settled nothing past the secret's start,
        // so a secret never begins in released bytes; clip anyway rather than trust it.
        let mut start = start.max(self.released);
        let mut end = end.min(frontier);
        if start >= end {
            return;
        }
        // Never cut a character in two: a mask that left half a UTF-8 sequence behind would
        // make a JSON document or a text body invalid.
        for _ in 0..MAX_CONTINUATION {
            if start > self.released && self.byte_at(start).is_some_and(is_continuation) {
                start -= 1;
            }
            if end < frontier && self.byte_at(end).is_some_and(is_continuation) {
                end += 1;
            }
        }
        let secret = slice(&self.held, self.released, start, end);
        let prefix_len = self.shared.style.prefix_len(&finding.rule_id, secret);
        let prefix = secret.get(..prefix_len).unwrap_or_default();
        let mask = self.shared.style.render(&finding.rule_id, prefix);
        self.found.push(Found {
            rule_id: Arc::clone(&finding.rule_id),
            fingerprint: finding.fingerprint,
            start,
        });
        self.insert(MaskRange {
            start,
            end,
            mask,
            begun: false,
        });
    }

    /// Inserts a range, merging it with the ranges it overlaps; the earliest keeps its mask.
    fn insert(&mut self, mut range: MaskRange) {
        let index = self.ranges.partition_point(|r| r.end <= range.start);
        while let Some(other) = self.ranges.get(index) {
            if other.start >= range.end {
                break;
            }
            // Overlap: take the union, and the mask of whichever starts first (a begun range
            // always starts first, since new ranges never start in released bytes).
            let Some(other) = self.ranges.remove(index) else {
                break;
            };
            if other.start <= range.start {
                range.mask = other.mask;
                range.begun = other.begun;
            }
            range.start = range.start.min(other.start);
            range.end = range.end.max(other.end);
        }
        self.ranges.insert(index, range);
    }
}

/// The held bytes between stream offsets `from` and `to`, given the offset of `held[0]`.
fn slice(held: &[u8], base: u64, from: u64, to: u64) -> &[u8] {
    let index = |at: u64| usize::try_from(at.saturating_sub(base)).unwrap_or(usize::MAX);
    let (from, to) = (index(from).min(held.len()), index(to).min(held.len()));
    held.get(from..to.max(from)).unwrap_or_default()
}

/// A [`Render`] that copies bytes and writes each mask once: text bodies and file contents.
pub(crate) struct CopyRender<'a> {
    pub(crate) out: &'a mut Vec<u8>,
}

impl Render for CopyRender<'_> {
    fn plain(&mut self, _at: u64, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn masked(&mut self, _at: u64, _bytes: &[u8], mask: &[u8], first: bool, _last: bool) {
        if first {
            self.out.extend_from_slice(mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gitgate_scan::{Family, Finding, Fingerprint, RuleSet};

    use super::*;
    use crate::mask::{Masking, MaskingSection};

    fn stream(utf8_cuts: bool) -> MaskStream {
        let rules = Arc::new(RuleSet::builtin().expect("built-in rules"));
        let masking = Masking::with_rules(&MaskingSection::default(), rules).expect("valid");
        MaskStream::new(&masking.shared, utf8_cuts)
    }

    fn finding(rule: &str, secret: Range<u64>) -> Finding {
        Finding {
            rule_id: rule.into(),
            family: Family::Custom,
            start: secret.start,
            end: secret.end,
            secret,
            line: 1,
            column: 1,
            fingerprint: Fingerprint([0; 16]),
        }
    }

    fn released(stream: &mut MaskStream, upto: u64) -> Vec<u8> {
        let mut out = Vec::new();
        stream.release(upto, &mut CopyRender { out: &mut out });
        out
    }

    #[test]
    fn overlapping_ranges_merge_and_the_earliest_keeps_its_mask() {
        let mut stream = stream(true);
        stream.push(b"0123456789abcdef");
        stream.register(finding("b", 6..12));
        stream.register(finding("a", 2..8));
        stream.register(finding("c", 14..15));
        stream.finish();
        assert_eq!(
            released(&mut stream, u64::MAX),
            b"01****[gitgate:a]cd****[gitgate:c]f"
        );
    }

    #[test]
    fn a_range_released_in_pieces_writes_its_mask_once() {
        let mut stream = stream(false);
        stream.push(b"abcdefghij");
        stream.register(finding("r", 3..8));
        let mut out = released(&mut stream, 5);
        out.extend(released(&mut stream, 6));
        out.extend(released(&mut stream, 10));
        assert_eq!(out, b"abc****[gitgate:r]ij");
    }

    #[test]
    fn releases_stop_at_character_boundaries_and_masks_cover_whole_characters() {
        let mut stream = stream(true);
        stream.push("xé€y".as_bytes());
        // Cutting after the first byte of `é` would split it.
        assert_eq!(released(&mut stream, 2), b"x");
        // A finding that starts inside `€` masks all of it.
        stream.register(finding("r", 4..5));
        assert_eq!(
            String::from_utf8(released(&mut stream, u64::MAX)).expect("utf-8"),
            "é****[gitgate:r]y"
        );
    }
}
