//! Pkt-line framing read for the record only: each packet's payload is handed to a sink piece by
//! piece, and the sink may stop reading a packet at any point, after which the rest of it is
//! skipped without being looked at (or, in the filter, without even being copied into the VM).
//!
//! Unlike [`crate::pktline::decode`], which wants a whole packet in one slice, this carries only
//! the four bytes of a split length prefix across chunks: a 64 KiB band-1 packet of a clone is
//! never buffered, whatever the chunking. The framing rules are the same (gitprotocol-common,
//! "pkt-line Format"); a stream that breaks them is not read any further, and the first error is
//! kept for the record's notes.

use thiserror::Error;

use crate::pktline::{LENGTH_PREFIX_LEN, MAX_PKT_LEN};

/// Length value 3, which no packet has (gitprotocol-common, "pkt-line Format").
const RESERVED_LENGTH: usize = 3;

/// The four bytes that start a pack (gitformat-pack, "pack-*.pack files"), seen where a length
/// prefix was expected: a protocol v0 fetch without side-band sends the pack raw after its
/// `NAK`/`ACK` lines.
const PACK_SIGNATURE: &[u8; 4] = b"PACK";

/// What a sink wants after a piece of payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Hand over the next piece too.
    More,
    /// Skip the rest of this packet (or of the raw pack) unread.
    Skip,
}

/// A packet without payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    /// `0000`.
    Flush,
    /// `0001` (protocol v2).
    Delim,
    /// `0002` (protocol v2).
    ResponseEnd,
}

/// Receives the packets of a stream as they are framed.
pub(crate) trait PktSink {
    /// A data packet with `len` payload bytes starts.
    fn start(&mut self, len: usize);
    /// The next piece of the current packet's payload.
    fn payload(&mut self, bytes: &[u8]) -> Flow;
    /// The current data packet ended (also when its payload was skipped).
    fn end(&mut self);
    /// A packet without payload.
    fn special(&mut self, special: Special);
    /// Bytes of a raw pack (only when [`Skimmer::allow_raw_pack`] was set); by default none
    /// are wanted.
    fn raw(&mut self, _bytes: &[u8]) -> Flow {
        Flow::Skip
    }
}

/// Why a stream stopped being read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SkimError {
    /// The four length bytes are not hex digits.
    #[error("bad pkt-line length {prefix:?} at byte {offset}")]
    BadLength {
        /// Absolute offset of the prefix.
        offset: u64,
        /// The bytes found, escaped.
        prefix: String,
    },
    /// Length `0003`.
    #[error("invalid pkt-line length 3 at byte {offset}")]
    ReservedLength {
        /// Absolute offset of the prefix.
        offset: u64,
    },
    /// A length above the protocol's maximum.
    #[error("pkt-line at byte {offset} declares {length} bytes, more than {MAX_PKT_LEN}")]
    TooLong {
        /// Absolute offset of the prefix.
        offset: u64,
        /// The declared length.
        length: usize,
    },
}

/// Where the skimmer is in the framing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a length prefix; `have` of its four bytes are in `prefix`.
    Length {
        prefix: [u8; LENGTH_PREFIX_LEN],
        have: usize,
    },
    /// Inside a data packet with `remaining` payload bytes to come.
    Payload { remaining: usize, skipping: bool },
    /// Inside a raw pack, to the end of the stream.
    Raw { skipping: bool },
    /// The framing broke; nothing more is read.
    Broken,
}

/// A push-based pkt-line framer that keeps at most a length prefix between chunks.
#[derive(Debug, Clone)]
pub(crate) struct Skimmer {
    state: State,
    /// Absolute offset of the next byte.
    offset: u64,
    raw_pack: bool,
    error: Option<SkimError>,
}

impl Default for Skimmer {
    fn default() -> Self {
        Skimmer {
            state: State::Length {
                prefix: [0; LENGTH_PREFIX_LEN],
                have: 0,
            },
            offset: 0,
            raw_pack: false,
            error: None,
        }
    }
}

impl Skimmer {
    /// Lets a raw pack (`PACK` where a length was expected) end the framing instead of breaking
    /// it: the rest of the stream goes to [`PktSink::raw`].
    pub(crate) fn allow_raw_pack(mut self) -> Skimmer {
        self.raw_pack = true;
        self
    }

    /// Bytes read so far (including skipped ones).
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The framing error that stopped the reading, if any.
    pub(crate) fn error(&self) -> Option<&SkimError> {
        self.error.as_ref()
    }

    /// True between packets, where a length prefix comes next.
    pub(crate) fn at_length(&self) -> bool {
        matches!(self.state, State::Length { .. })
    }

    /// True when a raw pack follows the packets.
    pub(crate) fn in_raw_pack(&self) -> bool {
        matches!(self.state, State::Raw { .. })
    }

    /// How many of the next bytes the sink does not want to see: the rest of a skipped packet,
    /// or everything after a skipped raw pack or a broken frame.
    pub(crate) fn skippable(&self) -> u64 {
        match self.state {
            State::Payload {
                remaining,
                skipping: true,
            } => remaining as u64,
            State::Raw { skipping: true } | State::Broken => u64::MAX,
            _ => 0,
        }
    }

    /// How many bytes are worth reading next: what completes the length prefix and the start
    /// of the payload after it, or the rest of a packet being read; `None` when the state
    /// does not bound it.
    pub(crate) fn wanted(&self) -> Option<usize> {
        match self.state {
            State::Length { have, .. } => Some(LENGTH_PREFIX_LEN - have),
            State::Payload {
                remaining,
                skipping: false,
            } => Some(remaining),
            _ => None,
        }
    }

    /// Passes over `len` bytes the caller did not read; at most [`Skimmer::skippable`] of them
    /// count as skipped, the others are ignored.
    pub(crate) fn skip(&mut self, len: u64, sink: &mut dyn PktSink) {
        let len = len.min(self.skippable());
        self.offset = self.offset.saturating_add(len);
        if let State::Payload { remaining, .. } = &mut self.state {
            // len <= remaining here, which is a usize.
            *remaining = remaining.saturating_sub(usize::try_from(len).unwrap_or(usize::MAX));
            if *remaining == 0 {
                self.state = State::Length {
                    prefix: [0; LENGTH_PREFIX_LEN],
                    have: 0,
                };
                sink.end();
            }
        }
    }

    /// Frames `bytes`, handing every packet to `sink`.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], sink: &mut dyn PktSink) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Length { prefix, have } => {
                    let start = *have;
                    let take = (LENGTH_PREFIX_LEN - start).min(bytes.len());
                    let (head, rest) = bytes.split_at(take);
                    if let Some(slot) = prefix.get_mut(start..start + take) {
                        slot.copy_from_slice(head);
                    }
                    *have += take;
                    bytes = rest;
                    if *have < LENGTH_PREFIX_LEN {
                        self.offset += take as u64;
                        return;
                    }
                    let prefix = *prefix;
                    let at = self.offset.saturating_sub(start as u64);
                    self.offset += take as u64;
                    self.on_prefix(prefix, at, sink);
                }
                State::Payload {
                    remaining,
                    skipping,
                } => {
                    let take = (*remaining).min(bytes.len());
                    let (piece, rest) = bytes.split_at(take);
                    if !*skipping && sink.payload(piece) == Flow::Skip {
                        *skipping = true;
                    }
                    *remaining -= take;
                    self.offset += take as u64;
                    bytes = rest;
                    if *remaining == 0 {
                        self.state = State::Length {
                            prefix: [0; LENGTH_PREFIX_LEN],
                            have: 0,
                        };
                        sink.end();
                    }
                }
                State::Raw { skipping } => {
                    if !*skipping && sink.raw(bytes) == Flow::Skip {
                        *skipping = true;
                    }
                    self.offset += bytes.len() as u64;
                    return;
                }
                State::Broken => {
                    self.offset += bytes.len() as u64;
                    return;
                }
            }
        }
    }

    /// A complete length prefix that started at absolute offset `at`.
    fn on_prefix(&mut self, prefix: [u8; LENGTH_PREFIX_LEN], at: u64, sink: &mut dyn PktSink) {
        let mut length = 0usize;
        for byte in prefix {
            let Some(digit) = char::from(byte).to_digit(16) else {
                if self.raw_pack && &prefix == PACK_SIGNATURE {
                    let skipping = sink.raw(&prefix) == Flow::Skip;
                    self.state = State::Raw { skipping };
                } else {
                    self.fail(SkimError::BadLength {
                        offset: at,
                        prefix: prefix.escape_ascii().to_string(),
                    });
                }
                return;
            };
            // Four hex digits fit in 16 bits: no overflow.
            length = (length << 4) | digit as usize;
        }
        self.state = State::Length {
            prefix: [0; LENGTH_PREFIX_LEN],
            have: 0,
        };
        match length {
            0 => sink.special(Special::Flush),
            1 => sink.special(Special::Delim),
            2 => sink.special(Special::ResponseEnd),
            RESERVED_LENGTH => self.fail(SkimError::ReservedLength { offset: at }),
            length if length > MAX_PKT_LEN => self.fail(SkimError::TooLong { offset: at, length }),
            length => {
                // `0004`, an empty data packet, is against the rules but harmless to a reader.
                let len = length - LENGTH_PREFIX_LEN;
                sink.start(len);
                if len == 0 {
                    sink.end();
                } else {
                    self.state = State::Payload {
                        remaining: len,
                        skipping: false,
                    };
                }
            }
        }
    }

    fn fail(&mut self, error: SkimError) {
        self.state = State::Broken;
        self.error.get_or_insert(error);
    }
}

/// The first bytes of one packet's payload, at most `cap` of them.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineHead {
    bytes: Vec<u8>,
    cap: usize,
    /// True when the packet held more than `cap` bytes.
    pub(crate) cut: bool,
}

impl LineHead {
    /// An empty head that keeps at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> LineHead {
        LineHead {
            bytes: Vec::new(),
            cap,
            cut: false,
        }
    }

    /// Starts a new packet.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.cut = false;
    }

    /// Keeps what fits of `piece`; [`Flow::Skip`] once the head is full.
    pub(crate) fn push(&mut self, piece: &[u8]) -> Flow {
        let room = self.cap.saturating_sub(self.bytes.len());
        let take = room.min(piece.len());
        self.bytes
            .extend_from_slice(piece.get(..take).unwrap_or_default());
        if take < piece.len() {
            self.cut = true;
            return Flow::Skip;
        }
        Flow::More
    }

    /// The kept bytes with one trailing LF removed, as git's `PACKET_READ_CHOMP_NEWLINE`.
    pub(crate) fn text(&self) -> &[u8] {
        self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes down everything it is handed, as text.
    #[derive(Default)]
    struct Log {
        events: Vec<String>,
        line: Vec<u8>,
        skip_after: Option<usize>,
        raw: Vec<u8>,
    }

    impl PktSink for Log {
        fn start(&mut self, len: usize) {
            self.line.clear();
            self.events.push(format!("start {len}"));
        }
        fn payload(&mut self, bytes: &[u8]) -> Flow {
            self.line.extend_from_slice(bytes);
            match self.skip_after {
                Some(n) if self.line.len() >= n => Flow::Skip,
                _ => Flow::More,
            }
        }
        fn end(&mut self) {
            let text = String::from_utf8_lossy(&self.line).into_owned();
            self.events.push(format!("end {text:?}"));
        }
        fn special(&mut self, special: Special) {
            self.events.push(format!("{special:?}"));
        }
        fn raw(&mut self, bytes: &[u8]) -> Flow {
            self.raw.extend_from_slice(bytes);
            Flow::More
        }
    }

    fn run(input: &[u8], pieces: &[&[u8]], skip_after: Option<usize>) -> (Vec<String>, u64) {
        let _ = input;
        let mut skim = Skimmer::default();
        let mut log = Log {
            skip_after,
            ..Log::default()
        };
        for piece in pieces {
            skim.feed(piece, &mut log);
        }
        (log.events, skim.offset())
    }

    const STREAM: &[u8] = b"000ahello\n00000001000cworld!!\n0002";

    #[test]
    fn packets_come_out_the_same_whatever_the_split() {
        let (whole, len) = run(STREAM, &[STREAM], None);
        assert_eq!(
            whole,
            [
                "start 6",
                "end \"hello\\n\"",
                "Flush",
                "Delim",
                "start 8",
                "end \"world!!\\n\"",
                "ResponseEnd"
            ]
        );
        assert_eq!(len, STREAM.len() as u64);
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(run(STREAM, &bytes, None).0, whole);
        for at in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(at);
            assert_eq!(run(STREAM, &[a, b], None).0, whole, "split at {at}");
        }
    }

    #[test]
    fn a_sink_that_skips_sees_only_the_head_and_the_caller_may_skip_unread() {
        let mut skim = Skimmer::default();
        let mut log = Log {
            skip_after: Some(2),
            ..Log::default()
        };
        skim.feed(b"000ahe", &mut log);
        assert_eq!(skim.skippable(), 4);
        skim.skip(100, &mut log);
        assert_eq!(skim.skippable(), 0);
        assert_eq!(skim.offset(), 10);
        skim.feed(b"0000", &mut log);
        assert_eq!(log.events, ["start 6", "end \"he\"", "Flush"]);
    }

    #[test]
    fn a_bad_length_stops_the_reading_with_its_offset() {
        let mut skim = Skimmer::default();
        let mut log = Log::default();
        skim.feed(b"0000zz", &mut log);
        skim.feed(b"zzmore", &mut log);
        assert_eq!(
            skim.error(),
            Some(&SkimError::BadLength {
                offset: 4,
                prefix: "zzzz".into()
            })
        );
        assert_eq!(skim.skippable(), u64::MAX);
        assert_eq!(skim.offset(), 12);
    }

    #[test]
    fn reserved_and_oversized_lengths_are_errors() {
        for (input, error) in [
            (&b"0003"[..], SkimError::ReservedLength { offset: 0 }),
            (
                &b"fff1"[..],
                SkimError::TooLong {
                    offset: 0,
                    length: 65521,
                },
            ),
        ] {
            let mut skim = Skimmer::default();
            skim.feed(input, &mut Log::default());
            assert_eq!(skim.error(), Some(&error));
        }
    }

    #[test]
    fn a_raw_pack_after_the_lines_goes_to_the_raw_sink_when_allowed() {
        let mut skim = Skimmer::default().allow_raw_pack();
        let mut log = Log::default();
        for byte in b"0008NAK\nPACK\x00\x00\x00\x02rest" {
            skim.feed(std::slice::from_ref(byte), &mut log);
        }
        assert!(skim.in_raw_pack());
        assert_eq!(log.raw, b"PACK\x00\x00\x00\x02rest");
        let mut strict = Skimmer::default();
        strict.feed(b"PACK", &mut Log::default());
        assert!(strict.error().is_some());
    }

    #[test]
    fn a_line_head_keeps_its_cap_and_says_it_was_cut() {
        let mut head = LineHead::new(4);
        assert_eq!(head.push(b"ab"), Flow::More);
        assert_eq!(head.push(b"cdef"), Flow::Skip);
        assert!(head.cut);
        assert_eq!(head.text(), b"abcd");
        head.clear();
        head.push(b"x\n");
        assert_eq!(head.text(), b"x");
    }
}
