//! Delta instructions: how a deltified pack entry rebuilds its object from a base.
//!
//! Layout (gitformat-pack, "Deltified representation"), once the entry's zlib stream is
//! inflated:
//!
//! ```text
//! delta       = source-size target-size instruction*
//! size        = little-endian base-128 varint: 7 bits a byte, high bit set on all but the last
//! instruction = 1xxxxxxx [offset bytes] [size bytes]   copy from the base: bits 0-3 say which of
//!                                                      the 4 offset bytes follow, bits 4-6 which
//!                                                      of the 3 size bytes; size 0 means 0x10000
//!             | 0nnnnnnn <n bytes>                     insert n (1 to 127) literal bytes
//!             | 00000000                               reserved: an error
//! ```
//!
//! [`DeltaDecoder`] reads the instructions as the delta data streams by, in slices of any size,
//! and checks every one against the declared sizes (a copy must lie inside the source, no
//! instruction may write past the target, and the target must be complete at the end), as git's
//! `patch_delta` does. It never allocates: inserts are handed out as slices of the input.

use thiserror::Error;

/// The size of a copy instruction whose size bytes are all absent or zero.
pub const COPY_ZERO_SIZE: u64 = 0x10000;

/// Delta data that git would refuse to apply.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeltaError {
    /// A size varint longer than 64 bits.
    #[error("delta size varint overflow at delta byte {at}")]
    VarintOverflow {
        /// Offset in the delta data of the varint.
        at: u64,
    },
    /// A declared source size over the limit.
    #[error("delta source size {declared} is over the limit of {max} at delta byte {at}")]
    SourceTooLarge {
        /// Offset in the delta data of the size.
        at: u64,
        /// The declared size.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// A declared target size over the limit.
    #[error("delta target size {declared} is over the limit of {max} at delta byte {at}")]
    TargetTooLarge {
        /// Offset in the delta data of the size.
        at: u64,
        /// The declared size.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// The declared source size is not the size of the base.
    #[error("delta source size {declared} does not match the {actual}-byte base")]
    SourceSizeMismatch {
        /// The size the delta declares.
        declared: u64,
        /// The size of the base.
        actual: u64,
    },
    /// Instruction byte 0, which git reserves.
    #[error("reserved delta instruction at delta byte {at}")]
    ReservedInstruction {
        /// Offset in the delta data of the instruction.
        at: u64,
    },
    /// A copy reaching outside the source.
    #[error(
        "delta copy of {len} bytes from {offset} is outside the {source_size}-byte source \
         at delta byte {at}"
    )]
    CopyOutOfBounds {
        /// Offset in the delta data of the instruction.
        at: u64,
        /// The source offset of the copy.
        offset: u64,
        /// The length of the copy.
        len: u64,
        /// The declared source size.
        source_size: u64,
    },
    /// An instruction that writes past the declared target size.
    #[error("delta instruction at delta byte {at} writes past the {target_size}-byte target")]
    TargetOverflow {
        /// Offset in the delta data of the instruction.
        at: u64,
        /// The declared target size.
        target_size: u64,
    },
    /// The delta data ended before the target was complete.
    #[error("delta data ends at delta byte {at} with {written} of {target_size} target bytes")]
    Truncated {
        /// Bytes of delta data read.
        at: u64,
        /// Target bytes the instructions produced.
        written: u64,
        /// The declared target size (0 if the sizes were not read).
        target_size: u64,
    },
}

/// One step of a delta, as [`DeltaDecoder::next`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOp<'a> {
    /// The two sizes at the start of the delta; always the first step.
    Sizes {
        /// The size the base must have.
        source_size: u64,
        /// The size of the object the delta rebuilds.
        target_size: u64,
    },
    /// Copy `len` bytes of the base from `source_offset` to `target_offset`.
    Copy {
        /// Where in the base; `source_offset + len <= source_size`.
        source_offset: u64,
        /// How many bytes (1 to 0xffffff).
        len: u64,
        /// Where in the target.
        target_offset: u64,
    },
    /// Literal bytes of the target (a whole insert instruction, or the part of it in this
    /// input slice).
    Insert {
        /// The bytes.
        bytes: &'a [u8],
        /// Where in the target.
        target_offset: u64,
    },
}

/// Where the decoder is in the delta grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the source size varint.
    SourceSize {
        /// The bits gathered so far.
        value: u64,
        /// Where the next bits go.
        shift: u32,
    },
    /// Reading the target size varint.
    TargetSize {
        /// The bits gathered so far.
        value: u64,
        /// Where the next bits go.
        shift: u32,
    },
    /// Between instructions.
    Instruction,
    /// Reading the offset and size bytes of a copy.
    CopyArgs {
        /// The instruction byte.
        op: u8,
        /// The next argument bit of `op` to look at (0 to 7).
        bit: u8,
        /// The offset bytes gathered so far.
        offset: u64,
        /// The size bytes gathered so far.
        size: u64,
    },
    /// Handing out the bytes of an insert.
    Insert {
        /// Bytes of the insert still to come (1 to 127).
        remaining: u8,
    },
}

/// A streaming reader of delta instructions.
#[derive(Debug, Clone)]
pub struct DeltaDecoder {
    state: State,
    /// Largest source or target size accepted.
    max_size: u64,
    source_size: u64,
    target_size: u64,
    /// Target bytes the instructions so far produce; never more than `target_size`.
    written: u64,
    /// Bytes of delta data read.
    position: u64,
    /// Offset in the delta data of the instruction being read.
    op_start: u64,
}

impl DeltaDecoder {
    /// A decoder that refuses source and target sizes over `max_size`.
    pub fn new(max_size: u64) -> DeltaDecoder {
        DeltaDecoder {
            state: State::SourceSize { value: 0, shift: 0 },
            max_size,
            source_size: 0,
            target_size: 0,
            written: 0,
            position: 0,
            op_start: 0,
        }
    }

    /// Bytes of delta data read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Target bytes produced by the instructions so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// True when the sizes were read and the instructions so far fill the target exactly.
    pub fn is_complete(&self) -> bool {
        self.state == State::Instruction && self.written == self.target_size
    }

    /// Checks that the delta data may end here.
    pub fn finish(&self) -> Result<(), DeltaError> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(DeltaError::Truncated {
                at: self.position,
                written: self.written,
                target_size: self.target_size,
            })
        }
    }

    /// Reads the next step from the front of `input`, advancing it; `Ok(None)` when `input` is
    /// used up in the middle of a step (feed the next slice to go on).
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Result<Option<DeltaOp<'a>>, DeltaError> {
        loop {
            match self.state {
                State::SourceSize { value, shift } | State::TargetSize { value, shift } => {
                    let Some(byte) = self.take_byte(input) else {
                        return Ok(None);
                    };
                    let at = self.op_start;
                    let bits = u64::from(byte & 0x7f);
                    let value = bits
                        .checked_shl(shift)
                        .filter(|shifted| shifted >> shift == bits)
                        .map(|shifted| value | shifted)
                        .ok_or(DeltaError::VarintOverflow { at })?;
                    let more = byte & 0x80 != 0;
                    let shift = shift.saturating_add(7);
                    let source = matches!(self.state, State::SourceSize { .. });
                    if more {
                        self.state = if source {
                            State::SourceSize { value, shift }
                        } else {
                            State::TargetSize { value, shift }
                        };
                        continue;
                    }
                    let max = self.max_size;
                    self.op_start = self.position;
                    if source {
                        if value > max {
                            let declared = value;
                            return Err(DeltaError::SourceTooLarge { at, declared, max });
                        }
                        self.source_size = value;
                        self.state = State::TargetSize { value: 0, shift: 0 };
                    } else {
                        if value > max {
                            let declared = value;
                            return Err(DeltaError::TargetTooLarge { at, declared, max });
                        }
                        self.target_size = value;
                        self.state = State::Instruction;
                        return Ok(Some(DeltaOp::Sizes {
                            source_size: self.source_size,
                            target_size: value,
                        }));
                    }
                }
                State::Instruction => {
                    self.op_start = self.position;
                    let Some(op) = self.take_byte(input) else {
                        return Ok(None);
                    };
                    if op & 0x80 != 0 {
                        self.state = State::CopyArgs {
                            op,
                            bit: 0,
                            offset: 0,
                            size: 0,
                        };
                    } else if op == 0 {
                        return Err(DeltaError::ReservedInstruction { at: self.op_start });
                    } else {
                        self.reserve(u64::from(op))?;
                        self.state = State::Insert { remaining: op };
                    }
                }
                State::CopyArgs {
                    op,
                    mut bit,
                    mut offset,
                    mut size,
                } => {
                    while bit < 7 && op & (1 << bit) == 0 {
                        bit += 1;
                    }
                    if bit == 7 {
                        return self.copy(offset, size).map(Some);
                    }
                    let Some(byte) = self.take_byte(input) else {
                        self.state = State::CopyArgs {
                            op,
                            bit,
                            offset,
                            size,
                        };
                        return Ok(None);
                    };
                    // Bits 0-3 are offset bytes 0-3, bits 4-6 size bytes 0-2, low byte first.
                    if bit < 4 {
                        offset |= u64::from(byte) << (8 * u32::from(bit));
                    } else {
                        size |= u64::from(byte) << (8 * u32::from(bit - 4));
                    }
                    self.state = State::CopyArgs {
                        op,
                        bit: bit + 1,
                        offset,
                        size,
                    };
                }
                State::Insert { remaining } => {
                    let take = usize::from(remaining).min(input.len());
                    if take == 0 {
                        return Ok(None);
                    }
                    let (bytes, rest) = input.split_at(take);
                    *input = rest;
                    self.position = self.position.saturating_add(take as u64);
                    let target_offset = self.written.saturating_sub(u64::from(remaining));
                    // `take <= remaining <= 127`, so this fits.
                    let left = remaining.saturating_sub(u8::try_from(take).unwrap_or(remaining));
                    self.state = if left == 0 {
                        State::Instruction
                    } else {
                        State::Insert { remaining: left }
                    };
                    return Ok(Some(DeltaOp::Insert {
                        bytes,
                        target_offset,
                    }));
                }
            }
        }
    }

    fn take_byte(&mut self, input: &mut &[u8]) -> Option<u8> {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        self.position = self.position.saturating_add(1);
        Some(byte)
    }

    /// Counts `len` more target bytes, refusing to go past the target size.
    ///
    /// For an insert, `written` then runs ahead of the bytes handed out by the bytes still to
    /// come; [`DeltaOp::Insert`] offsets account for that.
    fn reserve(&mut self, len: u64) -> Result<u64, DeltaError> {
        let start = self.written;
        match start.checked_add(len) {
            Some(end) if end <= self.target_size => {
                self.written = end;
                Ok(start)
            }
            _ => Err(DeltaError::TargetOverflow {
                at: self.op_start,
                target_size: self.target_size,
            }),
        }
    }

    fn copy(&mut self, offset: u64, size: u64) -> Result<DeltaOp<'static>, DeltaError> {
        let len = if size == 0 { COPY_ZERO_SIZE } else { size };
        let inside = offset
            .checked_add(len)
            .is_some_and(|end| end <= self.source_size);
        if !inside {
            return Err(DeltaError::CopyOutOfBounds {
                at: self.op_start,
                offset,
                len,
                source_size: self.source_size,
            });
        }
        let target_offset = self.reserve(len)?;
        self.state = State::Instruction;
        Ok(DeltaOp::Copy {
            source_offset: offset,
            len,
            target_offset,
        })
    }
}

/// Applies a whole delta to a whole base; refuses sizes over `max_size`.
pub fn apply_delta(base: &[u8], delta: &[u8], max_size: u64) -> Result<Vec<u8>, DeltaError> {
    let mut decoder = DeltaDecoder::new(max_size);
    let mut input = delta;
    let mut target = Vec::new();
    while let Some(op) = decoder.next(&mut input)? {
        match op {
            DeltaOp::Sizes { source_size, .. } => {
                let actual = base.len() as u64;
                if source_size != actual {
                    return Err(DeltaError::SourceSizeMismatch {
                        declared: source_size,
                        actual,
                    });
                }
            }
            DeltaOp::Copy {
                source_offset, len, ..
            } => {
                // In bounds: the decoder checked the copy against the source size, which is
                // the base's length.
                let range = usize::try_from(source_offset)
                    .ok()
                    .zip(usize::try_from(len).ok())
                    .and_then(|(start, len)| base.get(start..start.checked_add(len)?));
                let Some(bytes) = range else {
                    return Err(DeltaError::CopyOutOfBounds {
                        at: decoder.position(),
                        offset: source_offset,
                        len,
                        source_size: base.len() as u64,
                    });
                };
                target.extend_from_slice(bytes);
            }
            DeltaOp::Insert { bytes, .. } => target.extend_from_slice(bytes),
        }
    }
    decoder.finish()?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delta turning `hello world` into `hello brave new world`.
    fn sample() -> Vec<u8> {
        let mut delta = vec![11, 21];
        delta.extend_from_slice(&[0x80 | 0x10, 6]); // copy 6 bytes from offset 0
        delta.push(10);
        delta.extend_from_slice(b"brave new ");
        delta.extend_from_slice(&[0x80 | 0x01 | 0x10, 6, 5]); // copy 5 from 6
        delta
    }

    fn steps(delta: &[u8], pieces: &[usize]) -> Result<Vec<(u64, Vec<u8>)>, DeltaError> {
        let base = b"hello world";
        let mut decoder = DeltaDecoder::new(1 << 20);
        let mut out = Vec::new();
        let mut rest = delta;
        for &len in pieces.iter().chain(std::iter::once(&usize::MAX)) {
            let (piece, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            let mut input = piece;
            while let Some(op) = decoder.next(&mut input)? {
                match op {
                    DeltaOp::Sizes { .. } => {}
                    DeltaOp::Copy {
                        source_offset,
                        len,
                        target_offset,
                    } => {
                        let start = source_offset as usize;
                        out.push((target_offset, base[start..start + len as usize].to_vec()));
                    }
                    DeltaOp::Insert {
                        bytes,
                        target_offset,
                    } => out.push((target_offset, bytes.to_vec())),
                }
            }
            assert!(input.is_empty());
        }
        decoder.finish()?;
        Ok(out)
    }

    fn join(steps: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut target = Vec::new();
        for (offset, bytes) in steps {
            assert_eq!(*offset, target.len() as u64, "steps are in target order");
            target.extend_from_slice(bytes);
        }
        target
    }

    #[test]
    fn a_delta_is_applied_whole_and_at_every_split() {
        let delta = sample();
        assert_eq!(
            apply_delta(b"hello world", &delta, 100).expect("valid"),
            b"hello brave new world"
        );
        for at in 0..=delta.len() {
            let out = steps(&delta, &[at]).expect("valid");
            assert_eq!(join(&out), b"hello brave new world", "split {at}");
        }
        let bytewise = vec![1; delta.len()];
        assert_eq!(
            join(&steps(&delta, &bytewise).expect("valid")),
            b"hello brave new world"
        );
    }

    #[test]
    fn a_copy_with_no_size_bytes_copies_0x10000_bytes() {
        let base = vec![7u8; 0x10000];
        let delta = [0x80, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80];
        assert_eq!(apply_delta(&base, &delta, 1 << 20).expect("valid"), base);
    }

    #[test]
    fn a_copy_outside_the_source_is_refused() {
        let delta = [11, 5, 0x80 | 0x01 | 0x10, 8, 5];
        assert_eq!(
            apply_delta(b"hello world", &delta, 100),
            Err(DeltaError::CopyOutOfBounds {
                at: 2,
                offset: 8,
                len: 5,
                source_size: 11
            })
        );
    }

    #[test]
    fn an_instruction_past_the_target_is_refused() {
        let delta = [11, 3, 4, b'a', b'b', b'c', b'd'];
        assert_eq!(
            apply_delta(b"hello world", &delta, 100),
            Err(DeltaError::TargetOverflow {
                at: 2,
                target_size: 3
            })
        );
    }

    #[test]
    fn the_reserved_instruction_is_refused() {
        assert_eq!(
            apply_delta(b"hello world", &[11, 3, 0], 100),
            Err(DeltaError::ReservedInstruction { at: 2 })
        );
    }

    #[test]
    fn a_delta_that_stops_early_is_truncated() {
        assert_eq!(
            apply_delta(b"hello world", &[11, 3, 1, b'a'], 100),
            Err(DeltaError::Truncated {
                at: 4,
                written: 1,
                target_size: 3
            })
        );
        assert!(matches!(
            apply_delta(b"", &[0x80], 100),
            Err(DeltaError::Truncated { .. })
        ));
        // An insert cut short.
        assert!(matches!(
            apply_delta(b"hello world", &[11, 3, 3, b'a'], 100),
            Err(DeltaError::Truncated { .. })
        ));
    }

    #[test]
    fn sizes_over_the_limit_are_refused_before_any_instruction() {
        assert_eq!(
            apply_delta(b"hello world", &[11, 0x80, 0x08], 1000),
            Err(DeltaError::TargetTooLarge {
                at: 1,
                declared: 1024,
                max: 1000
            })
        );
        assert_eq!(
            apply_delta(b"", &[0xff, 0xff, 0x7f], 1000),
            Err(DeltaError::SourceTooLarge {
                at: 0,
                declared: 0x1f_ffff,
                max: 1000
            })
        );
    }

    #[test]
    fn an_endless_size_varint_is_an_overflow() {
        let delta = [0xff; 11];
        assert_eq!(
            apply_delta(b"", &delta, u64::MAX),
            Err(DeltaError::VarintOverflow { at: 0 })
        );
        // 64 bits exactly still fit.
        let mut max = vec![0xff; 9];
        max.push(0x01);
        max.extend_from_slice(&[0]);
        assert!(matches!(
            apply_delta(b"", &max, u64::MAX),
            Err(DeltaError::SourceSizeMismatch {
                declared: u64::MAX,
                actual: 0
            })
        ));
    }

    #[test]
    fn a_source_size_other_than_the_base_s_is_refused() {
        assert_eq!(
            apply_delta(b"hello", &[11, 0], 100),
            Err(DeltaError::SourceSizeMismatch {
                declared: 11,
                actual: 5
            })
        );
    }
}
