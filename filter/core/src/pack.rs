//! Pack framing: where each entry of a pushed pack ends, and so where the pack ends.
//!
//! Layout (gitformat-pack, "pack-*.pack files have the following format"):
//!
//! ```text
//! "PACK"  version (u32 BE, 2 or 3)  entry count (u32 BE)
//! entry*  = type+size varint  [ofs-delta offset varint | ref-delta base id]  zlib stream
//! trailer = hash of everything before it (20 bytes for SHA-1, 32 for SHA-256)
//! ```
//!
//! A pack is self-delimiting: git's receive-pack stops reading at the trailer and acts on the
//! refs without waiting for the end of the HTTP body. The gate withholds the last bytes of the
//! body until the verdict is known, which is only safe if the pack really ends at the end of the
//! body. [`PackFramer`] checks exactly that: it walks the entries (inflating each zlib stream to
//! find where it ends, as git does), and any byte after the trailer is an error.
//!
//! Inflated data is discarded; nothing is buffered beyond a fixed scratch area.

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use crate::receive_pack::ObjectFormat;

/// The first four bytes of a pack.
pub const PACK_SIGNATURE: &[u8; 4] = b"PACK";

/// Signature, version and entry count.
pub const PACK_HEADER_LEN: usize = 12;

/// Entry types (gitformat-pack, "Object types").
const OBJ_COMMIT: u8 = 1;
const OBJ_TREE: u8 = 2;
const OBJ_BLOB: u8 = 3;
const OBJ_TAG: u8 = 4;
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;

/// Size of the buffer inflated data is written to (and thrown away from).
const SCRATCH_LEN: usize = 32 * 1024;

/// A pack that git would refuse, or bytes after its end.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackError {
    /// The first four bytes are not `PACK`.
    #[error("no pack signature at byte {offset}")]
    BadSignature {
        /// Offset of the pack.
        offset: u64,
    },
    /// A version other than 2 or 3.
    #[error("unsupported pack version {version} at byte {offset}")]
    UnsupportedVersion {
        /// Offset of the version field.
        offset: u64,
        /// The version found.
        version: u32,
    },
    /// Type 0 or 5, which no object has.
    #[error("invalid object type {kind} at byte {offset}")]
    BadObjectType {
        /// Offset of the entry.
        offset: u64,
        /// The type found.
        kind: u8,
    },
    /// A size or delta offset varint longer than 64 bits.
    #[error("varint overflow at byte {offset}")]
    VarintOverflow {
        /// Offset of the entry.
        offset: u64,
    },
    /// An ofs-delta base that is zero or before the pack.
    #[error("delta base offset out of bounds at byte {offset}")]
    BadDeltaOffset {
        /// Offset of the entry.
        offset: u64,
    },
    /// The zlib stream of an entry is corrupt.
    #[error("corrupt zlib data in the entry at byte {offset}")]
    Inflate {
        /// Offset of the entry.
        offset: u64,
    },
    /// The entry inflates to another size than its header declares.
    #[error("entry at byte {offset} inflates to more than its declared {declared} bytes")]
    SizeMismatch {
        /// Offset of the entry.
        offset: u64,
        /// The size in the entry header.
        declared: u64,
    },
    /// Bytes after the pack trailer.
    #[error("data after the end of the pack at byte {offset}")]
    DataAfterPack {
        /// Offset of the first extra byte.
        offset: u64,
    },
}

/// Where the framer is in the pack grammar.
#[derive(Debug)]
enum State {
    /// Collecting the 12-byte header.
    Header,
    /// Reading an entry's type+size varint.
    EntryHeader {
        /// Bytes of the varint read so far.
        read: u32,
        /// The entry type (from the first byte).
        kind: u8,
        /// The size bits gathered so far.
        size: u64,
        /// Where the next size bits go.
        shift: u32,
    },
    /// Reading an ofs-delta's base offset varint.
    DeltaOffset {
        /// The inflated size declared by the entry header.
        size: u64,
        /// The offset gathered so far.
        value: u64,
        /// Bytes of the varint read so far.
        read: u32,
    },
    /// Skipping a ref-delta's base id.
    BaseId {
        /// The inflated size declared by the entry header.
        size: u64,
        /// Bytes of the id still to skip.
        remaining: usize,
    },
    /// Inflating an entry's zlib stream.
    Data {
        /// The inflated size declared by the entry header.
        size: u64,
    },
    /// Skipping the trailer hash.
    Trailer {
        /// Bytes still to skip.
        remaining: usize,
    },
    /// The pack is complete.
    End,
}

/// Entries a [`PackFramer`] has walked, by their stored type (a delta's kind is not known).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryCounts {
    /// The entry count of the pack header, once read.
    pub declared: Option<u32>,
    /// Stored commits.
    pub commits: u64,
    /// Stored trees.
    pub trees: u64,
    /// Stored blobs.
    pub blobs: u64,
    /// Stored tags.
    pub tags: u64,
    /// Ofs-deltas and ref-deltas.
    pub deltas: u64,
}

/// A streaming walker over a pack that knows where it ends.
pub struct PackFramer {
    format: ObjectFormat,
    state: State,
    /// Absolute body offset of the pack's first byte.
    pack_start: u64,
    /// Bytes of the pack seen so far.
    position: u64,
    /// Pack-relative offset of the entry being read.
    entry_start: u64,
    /// Entries not yet started.
    entries_left: u32,
    header: Vec<u8>,
    inflater: Decompress,
    scratch: Vec<u8>,
    counts: EntryCounts,
}

impl std::fmt::Debug for PackFramer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackFramer")
            .field("state", &self.state)
            .field("position", &self.position)
            .field("entries_left", &self.entries_left)
            .finish_non_exhaustive()
    }
}

impl PackFramer {
    /// A framer for a pack that starts at absolute body offset `pack_start`.
    pub fn new(format: ObjectFormat, pack_start: u64) -> PackFramer {
        PackFramer {
            format,
            state: State::Header,
            pack_start,
            position: 0,
            entry_start: 0,
            entries_left: 0,
            header: Vec::with_capacity(PACK_HEADER_LEN),
            inflater: Decompress::new(true),
            scratch: Vec::new(),
            counts: EntryCounts::default(),
        }
    }

    /// The entries walked so far, by stored type.
    pub fn counts(&self) -> EntryCounts {
        self.counts
    }

    /// True once the trailer has been read in full.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// Bytes of the pack seen so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Feeds the next bytes of the body. Any byte after the trailer is
    /// [`PackError::DataAfterPack`].
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), PackError> {
        while !input.is_empty() {
            let used = self.step(input)?;
            if used == 0 {
                // Only the inflater can make no progress on non-empty input.
                return Err(PackError::Inflate {
                    offset: self.absolute(self.entry_start),
                });
            }
            self.position = self.position.saturating_add(used as u64);
            input = input.get(used..).unwrap_or_default();
        }
        Ok(())
    }

    /// Absolute offset of the byte at pack-relative `position`.
    fn absolute(&self, position: u64) -> u64 {
        self.pack_start.saturating_add(position)
    }

    /// Consumes a prefix of `input` (at least one byte, unless an error is returned).
    fn step(&mut self, input: &[u8]) -> Result<usize, PackError> {
        let entry_offset = self.absolute(self.entry_start);
        match &mut self.state {
            State::Header => {
                let take = (PACK_HEADER_LEN - self.header.len()).min(input.len());
                self.header
                    .extend_from_slice(input.get(..take).unwrap_or_default());
                if self.header.len() == PACK_HEADER_LEN {
                    self.parse_header()?;
                }
                Ok(take)
            }
            State::EntryHeader {
                read,
                kind,
                size,
                shift,
            } => {
                let Some(&byte) = input.first() else {
                    return Ok(0);
                };
                if *read == 0 {
                    *kind = (byte >> 4) & 0x7;
                    *size = u64::from(byte & 0x0f);
                    *shift = 4;
                } else {
                    let bits = u64::from(byte & 0x7f);
                    let shifted = bits.checked_shl(*shift).filter(|v| v >> *shift == bits);
                    let Some(shifted) = shifted.filter(|_| *shift < 64) else {
                        return Err(PackError::VarintOverflow {
                            offset: entry_offset,
                        });
                    };
                    *size |= shifted;
                    *shift += 7;
                }
                *read += 1;
                if byte & 0x80 == 0 {
                    let (kind, size) = (*kind, *size);
                    let counter = match kind {
                        OBJ_COMMIT => Some(&mut self.counts.commits),
                        OBJ_TREE => Some(&mut self.counts.trees),
                        OBJ_BLOB => Some(&mut self.counts.blobs),
                        OBJ_TAG => Some(&mut self.counts.tags),
                        OBJ_OFS_DELTA | OBJ_REF_DELTA => Some(&mut self.counts.deltas),
                        _ => None,
                    };
                    if let Some(counter) = counter {
                        *counter = counter.saturating_add(1);
                    }
                    self.state = match kind {
                        OBJ_COMMIT | OBJ_TREE | OBJ_BLOB | OBJ_TAG => self.start_data(size),
                        OBJ_OFS_DELTA => State::DeltaOffset {
                            size,
                            value: 0,
                            read: 0,
                        },
                        OBJ_REF_DELTA => State::BaseId {
                            size,
                            remaining: self.format.raw_len(),
                        },
                        kind => {
                            return Err(PackError::BadObjectType {
                                offset: entry_offset,
                                kind,
                            });
                        }
                    };
                }
                Ok(1)
            }
            State::DeltaOffset { size, value, read } => {
                let Some(&byte) = input.first() else {
                    return Ok(0);
                };
                // Offset encoding from gitformat-pack, "offset encoding": each continuation
                // adds one before shifting, so that no value has two encodings.
                let next = if *read == 0 {
                    Some(u64::from(byte & 0x7f))
                } else {
                    value
                        .checked_add(1)
                        .and_then(|v| v.checked_mul(128))
                        .and_then(|v| v.checked_add(u64::from(byte & 0x7f)))
                };
                let Some(next) = next else {
                    return Err(PackError::VarintOverflow {
                        offset: entry_offset,
                    });
                };
                *value = next;
                *read += 1;
                if byte & 0x80 == 0 {
                    if *value == 0 || *value > self.entry_start {
                        return Err(PackError::BadDeltaOffset {
                            offset: entry_offset,
                        });
                    }
                    let size = *size;
                    self.state = self.start_data(size);
                }
                Ok(1)
            }
            State::BaseId { size, remaining } => {
                let take = (*remaining).min(input.len());
                *remaining -= take;
                if *remaining == 0 {
                    let size = *size;
                    self.state = self.start_data(size);
                }
                Ok(take)
            }
            State::Data { size } => {
                let size = *size;
                self.inflate(input, size, entry_offset)
            }
            State::Trailer { remaining } => {
                let take = (*remaining).min(input.len());
                *remaining -= take;
                if *remaining == 0 {
                    self.state = State::End;
                }
                Ok(take)
            }
            State::End => Err(PackError::DataAfterPack {
                offset: self.absolute(self.position),
            }),
        }
    }

    fn parse_header(&mut self) -> Result<(), PackError> {
        let offset = self.pack_start;
        let header: &[u8] = &self.header;
        let (Some(signature), Some(version), Some(count)) = (
            header.get(0..4),
            header.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()),
            header.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()),
        ) else {
            return Err(PackError::BadSignature { offset });
        };
        if signature != PACK_SIGNATURE {
            return Err(PackError::BadSignature { offset });
        }
        let version = u32::from_be_bytes(version);
        if version != 2 && version != 3 {
            return Err(PackError::UnsupportedVersion {
                offset: offset + 4,
                version,
            });
        }
        self.entries_left = u32::from_be_bytes(count);
        self.counts.declared = Some(self.entries_left);
        self.entry_start = PACK_HEADER_LEN as u64;
        self.state = self.next_entry();
        Ok(())
    }

    /// The state after an entry (or the header): another entry, or the trailer.
    fn next_entry(&mut self) -> State {
        match self.entries_left.checked_sub(1) {
            Some(left) => {
                self.entries_left = left;
                State::EntryHeader {
                    read: 0,
                    kind: 0,
                    size: 0,
                    shift: 0,
                }
            }
            None => State::Trailer {
                remaining: self.format.raw_len(),
            },
        }
    }

    fn start_data(&mut self, size: u64) -> State {
        self.inflater.reset(true);
        State::Data { size }
    }

    /// Inflates from `input` until the entry's zlib stream ends or the input runs out.
    fn inflate(&mut self, input: &[u8], size: u64, offset: u64) -> Result<usize, PackError> {
        if self.scratch.len() != SCRATCH_LEN {
            self.scratch.resize(SCRATCH_LEN, 0);
        }
        let mut used = 0usize;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let in_before = self.inflater.total_in();
            let out_before = self.inflater.total_out();
            let status = self
                .inflater
                .decompress(rest, &mut self.scratch, FlushDecompress::None)
                .map_err(|_| PackError::Inflate { offset })?;
            let consumed = self.inflater.total_in().saturating_sub(in_before);
            let produced = self.inflater.total_out().saturating_sub(out_before);
            used = used.saturating_add(usize::try_from(consumed).unwrap_or(usize::MAX));
            if self.inflater.total_out() > size {
                return Err(PackError::SizeMismatch {
                    offset,
                    declared: size,
                });
            }
            match status {
                Status::StreamEnd => {
                    if self.inflater.total_out() != size {
                        return Err(PackError::SizeMismatch {
                            offset,
                            declared: size,
                        });
                    }
                    let next = self.position.saturating_add(used as u64);
                    self.entry_start = next;
                    self.state = self.next_entry();
                    return Ok(used);
                }
                Status::Ok | Status::BufError => {
                    if consumed == 0 && produced == 0 {
                        return Ok(used);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }

    /// Entry header bytes for `kind` and `size`.
    fn entry_header(kind: u8, mut size: u64) -> Vec<u8> {
        let mut first = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        let mut out = Vec::new();
        while size > 0 {
            out.push(first | 0x80);
            first = (size & 0x7f) as u8;
            size >>= 7;
        }
        out.push(first);
        out
    }

    fn pack(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = b"PACK\0\0\0\x02".to_vec();
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        for (kind, data) in entries {
            out.extend(entry_header(*kind, data.len() as u64));
            out.extend(zlib(data));
        }
        out.extend_from_slice(&[0xab; 20]);
        out
    }

    fn frame(bytes: &[u8]) -> Result<PackFramer, PackError> {
        let mut framer = PackFramer::new(ObjectFormat::Sha1, 100);
        framer.feed(bytes)?;
        Ok(framer)
    }

    #[test]
    fn an_empty_pack_is_header_and_trailer() {
        let bytes = pack(&[]);
        assert_eq!(bytes.len(), 32);
        assert!(frame(&bytes).expect("valid").is_complete());
        assert!(!frame(&bytes[..31]).expect("prefix").is_complete());
    }

    #[test]
    fn entries_are_walked_to_the_trailer_at_every_split() {
        let big = vec![b'x'; 100_000];
        let bytes = pack(&[(OBJ_BLOB, b"hello\n"), (OBJ_COMMIT, &big), (OBJ_TREE, b"")]);
        for split in 0..bytes.len() {
            let mut framer = PackFramer::new(ObjectFormat::Sha1, 0);
            framer.feed(&bytes[..split]).expect("prefix");
            assert!(!framer.is_complete(), "complete early at {split}");
            framer.feed(&bytes[split..]).expect("rest");
            assert!(framer.is_complete(), "incomplete after split {split}");
        }
    }

    #[test]
    fn bytes_after_the_trailer_are_refused() {
        let mut bytes = pack(&[(OBJ_BLOB, b"hello\n")]);
        let end = bytes.len() as u64;
        bytes.push(0);
        assert_eq!(
            frame(&bytes).unwrap_err(),
            PackError::DataAfterPack { offset: 100 + end }
        );
    }

    #[test]
    fn a_wrong_signature_is_refused() {
        assert_eq!(
            frame(b"PACX\0\0\0\x02\0\0\0\0").unwrap_err(),
            PackError::BadSignature { offset: 100 }
        );
    }

    #[test]
    fn an_unknown_version_is_refused() {
        assert_eq!(
            frame(b"PACK\0\0\0\x04\0\0\0\0").unwrap_err(),
            PackError::UnsupportedVersion {
                offset: 104,
                version: 4
            }
        );
    }

    #[test]
    fn object_type_five_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.push(5 << 4);
        assert_eq!(
            frame(&bytes).unwrap_err(),
            PackError::BadObjectType {
                offset: 112,
                kind: 5
            }
        );
    }

    #[test]
    fn an_endless_size_varint_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.extend_from_slice(&[0xb0; 12]);
        assert_eq!(
            frame(&bytes).unwrap_err(),
            PackError::VarintOverflow { offset: 112 }
        );
    }

    #[test]
    fn an_entry_larger_than_declared_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.extend(entry_header(OBJ_BLOB, 3));
        bytes.extend(zlib(b"hello"));
        assert!(matches!(
            frame(&bytes),
            Err(PackError::SizeMismatch { declared: 3, .. })
        ));
    }

    #[test]
    fn an_entry_smaller_than_declared_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.extend(entry_header(OBJ_BLOB, 9));
        bytes.extend(zlib(b"hello"));
        assert!(matches!(
            frame(&bytes),
            Err(PackError::SizeMismatch { declared: 9, .. })
        ));
    }

    #[test]
    fn corrupt_zlib_data_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.extend(entry_header(OBJ_BLOB, 5));
        bytes.extend_from_slice(&[0xff; 16]);
        assert!(matches!(
            frame(&bytes),
            Err(PackError::Inflate { offset: 112 })
        ));
    }

    #[test]
    fn an_ofs_delta_pointing_before_the_pack_is_refused() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        bytes.extend(entry_header(OBJ_OFS_DELTA, 5));
        bytes.push(100);
        assert!(matches!(
            frame(&bytes),
            Err(PackError::BadDeltaOffset { .. })
        ));
    }

    #[test]
    fn ofs_and_ref_deltas_are_framed() {
        let mut bytes = b"PACK\0\0\0\x02\0\0\0\x03".to_vec();
        bytes.extend(entry_header(OBJ_BLOB, 5));
        bytes.extend(zlib(b"hello"));
        let second = bytes.len() as u8 - 12;
        bytes.extend(entry_header(OBJ_OFS_DELTA, 2));
        bytes.push(second);
        bytes.extend(zlib(b"ab"));
        bytes.extend(entry_header(OBJ_REF_DELTA, 2));
        bytes.extend_from_slice(&[7; 20]);
        bytes.extend(zlib(b"cd"));
        bytes.extend_from_slice(&[0; 20]);
        assert!(frame(&bytes).expect("valid").is_complete());
    }
}
