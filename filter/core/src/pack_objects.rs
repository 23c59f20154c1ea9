//! Pack objects: every object of a pushed pack, handed to a sink as it inflates.
//!
//! Layout (gitformat-pack, "pack-*.pack files have the following format"):
//!
//! ```text
//! header  = "PACK" version (u32 BE, 2 or 3) entry-count (u32 BE)
//! entry   = type+size varint [ofs-delta distance varint | ref-delta base id] zlib stream
//! trailer = hash of everything before it (20 bytes for SHA-1, 32 for SHA-256)
//! ```
//!
//! [`PackReader`] is fed the pack in slices of any size, as the body streams by. For each entry
//! it tells an [`ObjectSink`] where the object starts ([`ObjectStart`]), hands it the object's
//! content in chunks as the zlib stream inflates ([`ObjectChunk`], with the offset of each
//! chunk in the object, so that a scanner can count lines), and names the object when it ends
//! ([`ObjectEnd`]: its id, and for commits and tags their header).
//!
//! # Deltas
//!
//! A deltified entry (`OFS_DELTA` with a base earlier in the pack, `REF_DELTA` with a base id)
//! holds instructions that rebuild the object from its base ([`crate::delta`]). Recent objects
//! are kept as bases, within a memory budget ([`PackLimits::base_cache`]). When a delta's base
//! is kept, the object is rebuilt as the delta inflates and handed out whole, like any stored
//! object, with its id: a secret in a slightly modified file is seen whole, not in the pieces
//! the delta inserts. When the base is not at hand (a thin pack's base is on the server, or the
//! base did not fit the budget, or was itself not rebuilt) only the bytes the delta inserts are
//! handed out, at their offsets in the target object, and the object's kind and id stay
//! unknown. Every instruction is checked either way.
//!
//! # Memory
//!
//! Nothing grows with the pack. The reader holds at most [`PackLimits::base_cache`] bytes of
//! kept bases (the object being rebuilt or gathered included, each kept object charged
//! [`BASE_OVERHEAD`] bytes more for its bookkeeping), plus a fixed amount: the inflate
//! state (about 43 KiB), a 32 KiB inflate buffer, and one commit or tag header reader (under
//! 17 KiB, see [`crate::object::ObjectInfo`]). In all, about `base_cache + 100 KiB`, whatever the
//! size of the pack; with `base_cache` 0 nothing is kept and no delta is rebuilt.
//!
//! # Limits
//!
//! Every size read from the wire is checked before it is used: the entry count
//! ([`PackLimits::max_objects`]), each entry's declared size
//! ([`PackLimits::max_object_size`]), each delta's source and target sizes
//! ([`PackLimits::max_delta_result`]), and the sum of all object sizes handed out
//! ([`PackLimits::max_output`]), which bounds the work a small, highly compressed pack can cause.
//! Each is a typed [`PackObjectError`] carrying the absolute offset of the entry.
//!
//! Not checked: that an ofs-delta's base offset is the start of an entry when that entry is
//! not kept (git's `index-pack` checks it with an index of every entry, which would grow with
//! the pack), and ref-deltas whose base comes later in the pack are not rebuilt.
//!
//! ```
//! use std::ops::ControlFlow;
//! use gitgate_core::pack_objects::{ObjectEnd, PackReader};
//! use gitgate_core::receive_pack::ObjectFormat;
//!
//! // The empty pack: header and SHA-1 trailer.
//! let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
//! pack.extend_from_slice(b"\x02\x9d\x08\x82\x3b\xd8\xa8\xea\xb5\x10");
//! pack.extend_from_slice(b"\xad\x6a\xc7\x5c\x82\x3c\xfd\x3e\xd3\x1e");
//!
//! let mut reader = PackReader::new(ObjectFormat::Sha1, 0);
//! let mut objects: Vec<ObjectEnd> = Vec::new(); // keeps the end of every object
//! assert_eq!(reader.feed(&pack, &mut objects), Ok(ControlFlow::Continue(())));
//! assert_eq!(reader.finish(), Ok(()));
//! assert!(objects.is_empty());
//! ```

use std::ops::ControlFlow;

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use crate::delta::{DeltaDecoder, DeltaError, DeltaOp};
use crate::object::{Hasher, InfoReader, ObjectHasher, ObjectId, ObjectInfo, ObjectKind};
use crate::pack::{PACK_HEADER_LEN, PACK_SIGNATURE};
use crate::receive_pack::ObjectFormat;

mod cache;

use cache::{BaseCache, Reservation};

/// Bytes charged to [`PackLimits::base_cache`] for each kept object on top of its content: an
/// estimate of the bookkeeping that finds it by offset, by id and by age.
pub const BASE_OVERHEAD: usize = 256;

/// Default bound on the number of entries a pack may declare.
pub const DEFAULT_MAX_OBJECTS: u32 = 10_000_000;

/// Default bound on the size an entry header may declare.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 512 << 20;

/// Default bound on the size of an object a delta rebuilds.
pub const DEFAULT_MAX_DELTA_RESULT: u64 = 512 << 20;

/// Default bound on the content bytes handed out for one pack.
pub const DEFAULT_MAX_OUTPUT: u64 = 4 << 30;

/// Default memory for delta bases.
pub const DEFAULT_BASE_CACHE: usize = 16 << 20;

/// Entry types that are not objects (gitformat-pack, "Object types").
const OBJ_OFS_DELTA: u8 = 6;
const OBJ_REF_DELTA: u8 = 7;

/// Size of the buffer the zlib streams inflate into.
const SCRATCH_LEN: usize = 32 * 1024;

/// The longest id (SHA-256), for the fixed buffers of ref-delta bases and trailers.
const MAX_ID_LEN: usize = 32;

/// Bounds on what a pack may make the reader do. Exceeding one is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackLimits {
    /// Most entries the pack header may declare.
    pub max_objects: u32,
    /// Largest size an entry header may declare: the object's size, or for a delta the size
    /// of its instructions.
    pub max_object_size: u64,
    /// Largest source or target size a delta may declare.
    pub max_delta_result: u64,
    /// Most content bytes handed to the sink for the whole pack: the sizes of all stored and
    /// rebuilt objects and of all deltas' targets added up.
    pub max_output: u64,
    /// Bytes of objects kept as delta bases, the object being gathered included. 0 keeps
    /// nothing (every delta then yields its inserts only).
    pub base_cache: usize,
}

impl Default for PackLimits {
    fn default() -> PackLimits {
        PackLimits {
            max_objects: DEFAULT_MAX_OBJECTS,
            max_object_size: DEFAULT_MAX_OBJECT_SIZE,
            max_delta_result: DEFAULT_MAX_DELTA_RESULT,
            max_output: DEFAULT_MAX_OUTPUT,
            base_cache: DEFAULT_BASE_CACHE,
        }
    }
}

/// A pack that git would refuse, one over a limit, or bytes after its end.
///
/// `offset` is always absolute (a byte of the body the pack is part of): the pack's start for
/// header errors, the entry's first byte for entry errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackObjectError {
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
    /// More entries than [`PackLimits::max_objects`].
    #[error("pack at byte {offset} declares {count} objects, over the limit of {max}")]
    TooManyObjects {
        /// Offset of the pack.
        offset: u64,
        /// The declared count.
        count: u32,
        /// The limit.
        max: u32,
    },
    /// Type 0 or 5, which no entry has.
    #[error("invalid object type {kind} at byte {offset}")]
    BadObjectType {
        /// Offset of the entry.
        offset: u64,
        /// The type found.
        kind: u8,
    },
    /// A size or ofs-delta distance varint longer than 64 bits.
    #[error("varint overflow in the entry at byte {offset}")]
    VarintOverflow {
        /// Offset of the entry.
        offset: u64,
    },
    /// A declared entry size over [`PackLimits::max_object_size`].
    #[error("entry at byte {offset} declares {declared} bytes, over the limit of {max}")]
    ObjectTooLarge {
        /// Offset of the entry.
        offset: u64,
        /// The declared size.
        declared: u64,
        /// The limit.
        max: u64,
    },
    /// An ofs-delta whose base would be at or before the start of the pack, or not before it.
    #[error("ofs-delta at byte {offset} points {distance} bytes back, outside the pack")]
    BadDeltaOffset {
        /// Offset of the entry.
        offset: u64,
        /// The distance the entry declares.
        distance: u64,
    },
    /// The zlib stream of an entry is corrupt.
    #[error("corrupt zlib data in the entry at byte {offset}")]
    Inflate {
        /// Offset of the entry.
        offset: u64,
    },
    /// The entry inflates to more bytes than its header declares (found as soon as the
    /// excess inflates, so nothing past the declared size reaches the sink).
    #[error("entry at byte {offset} inflates to more than its declared {declared} bytes")]
    LongerThanDeclared {
        /// Offset of the entry.
        offset: u64,
        /// The size in the entry header.
        declared: u64,
    },
    /// The entry's zlib stream ends before its declared size.
    #[error(
        "entry at byte {offset} inflates to {inflated} bytes, short of its declared {declared}"
    )]
    ShorterThanDeclared {
        /// Offset of the entry.
        offset: u64,
        /// The size in the entry header.
        declared: u64,
        /// The size it inflates to.
        inflated: u64,
    },
    /// Delta instructions git would refuse to apply.
    #[error("bad delta in the entry at byte {offset}: {source}")]
    Delta {
        /// Offset of the entry.
        offset: u64,
        /// What is wrong, at which byte of the inflated delta data.
        source: DeltaError,
    },
    /// The objects so far add up to more than [`PackLimits::max_output`].
    #[error("objects up to the entry at byte {offset} add up to over {max} bytes")]
    OutputTooLarge {
        /// Offset of the entry that went over.
        offset: u64,
        /// The limit.
        max: u64,
    },
    /// The trailer is not the hash of the pack.
    #[error("pack checksum mismatch at byte {offset}")]
    ChecksumMismatch {
        /// Offset of the trailer.
        offset: u64,
    },
    /// Bytes after the pack trailer.
    #[error("data after the end of the pack at byte {offset}")]
    DataAfterPack {
        /// Offset of the first extra byte.
        offset: u64,
    },
    /// The input ended before the pack did.
    #[error("pack truncated at byte {offset}")]
    Truncated {
        /// Offset where the input ended.
        offset: u64,
    },
}

/// How an entry is stored in the pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// The object itself, zlib-compressed.
    Object(ObjectKind),
    /// A delta against the entry that starts at `base_offset`.
    OfsDelta {
        /// Absolute offset of the base's entry.
        base_offset: u64,
    },
    /// A delta against the object with id `base` (in the pack, or for a thin pack perhaps only
    /// on the server).
    RefDelta {
        /// The base's id.
        base: ObjectId,
    },
}

/// What the chunks of an object will be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Every byte of the object, in order: a stored object, or a delta rebuilt from its base.
    Whole(ObjectKind),
    /// Only the bytes a delta inserts, at their offsets in the target object; the kind is not
    /// known (the base is not at hand).
    Inserts,
}

/// An object begins: where, how it is stored, and what its chunks will be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStart {
    /// Position of the entry in the pack, from 0.
    pub index: u32,
    /// Absolute offset of the entry's first byte.
    pub offset: u64,
    /// How the entry is stored.
    pub entry: EntryKind,
    /// The size in the entry header: the object's size, or for a delta the size of its
    /// instructions.
    pub stored_size: u64,
    /// What the chunks will be.
    pub content: Content,
    /// The object's size (for a delta, its declared target size).
    pub size: u64,
}

impl ObjectStart {
    /// The object's kind, when known.
    pub fn kind(&self) -> Option<ObjectKind> {
        match self.content {
            Content::Whole(kind) => Some(kind),
            Content::Inserts => None,
        }
    }
}

/// Where the bytes of a chunk come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The inflated data of a stored object.
    Stored,
    /// Bytes a delta copies from its base, while the object is rebuilt.
    Copied,
    /// Bytes a delta inserts: new in this version of the object.
    Inserted,
}

/// Content bytes of the current object.
///
/// For [`Content::Whole`] the chunks follow each other without gaps from offset 0 to the
/// object's size. For [`Content::Inserts`] each chunk is part of one insert instruction, and
/// `offset` jumps over the bytes the delta copies: a consumer should not join chunks across a
/// gap. Bytes inside the compressed pack have no absolute offset of their own; `entry` and
/// `offset` together locate a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectChunk<'a> {
    /// Absolute offset of the object's entry ([`ObjectStart::offset`]).
    pub entry: u64,
    /// Offset of `bytes[0]` in the object.
    pub offset: u64,
    /// Where the bytes come from.
    pub origin: Origin,
    /// The bytes; never empty.
    pub bytes: &'a [u8],
}

impl ObjectChunk<'_> {
    /// True for bytes a delta inserts.
    pub fn is_delta_insert(&self) -> bool {
        self.origin == Origin::Inserted
    }
}

/// An object ended: its id, and the header of a commit or tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEnd {
    /// What [`ObjectSink::object_start`] was told.
    pub object: ObjectStart,
    /// Absolute offset of the byte after the entry.
    pub end: u64,
    /// The object's id; `None` when only inserts were handed out.
    pub id: Option<ObjectId>,
    /// The header of a commit or tag whose content was whole.
    pub info: Option<ObjectInfo>,
}

/// Receives the objects of a pack as they stream by; each call can stop the reader.
///
/// For every entry: one `object_start`, `object_data` for each chunk, one `object_end`. A
/// delta's start comes once its sizes are inflated, so an entry that fails before that has
/// no start.
pub trait ObjectSink {
    /// An object begins.
    fn object_start(&mut self, object: &ObjectStart) -> ControlFlow<()> {
        let _ = object;
        ControlFlow::Continue(())
    }

    /// The next bytes of the current object.
    fn object_data(&mut self, chunk: &ObjectChunk<'_>) -> ControlFlow<()> {
        let _ = chunk;
        ControlFlow::Continue(())
    }

    /// The current object ended.
    fn object_end(&mut self, object: ObjectEnd) -> ControlFlow<()> {
        let _ = object;
        ControlFlow::Continue(())
    }
}

/// Keeps the end of every object (ids, kinds, commit and tag headers), not the content.
impl ObjectSink for Vec<ObjectEnd> {
    fn object_end(&mut self, object: ObjectEnd) -> ControlFlow<()> {
        self.push(object);
        ControlFlow::Continue(())
    }
}

/// Where the reader is in the pack grammar.
#[derive(Debug)]
enum State {
    /// Collecting the 12-byte header.
    Header {
        /// The header bytes so far.
        bytes: [u8; PACK_HEADER_LEN],
        /// How many of them are there.
        got: usize,
    },
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
    /// Reading an ofs-delta's distance varint.
    OfsDistance {
        /// The size declared by the entry header.
        size: u64,
        /// The distance gathered so far.
        distance: u64,
        /// Bytes of the varint read so far.
        read: u32,
    },
    /// Reading a ref-delta's base id.
    RefBase {
        /// The size declared by the entry header.
        size: u64,
        /// The id bytes so far.
        bytes: [u8; MAX_ID_LEN],
        /// How many of them are there.
        got: usize,
    },
    /// Inflating an entry's zlib stream.
    Data(Box<Entry>),
    /// Reading the trailer hash.
    Trailer {
        /// The hash bytes so far.
        bytes: [u8; MAX_ID_LEN],
        /// How many of them are there.
        got: usize,
    },
    /// The pack is complete and its checksum matched.
    End,
    /// The sink asked to stop.
    Stopped,
    /// An error; it is returned again for any further input.
    Failed(PackObjectError),
}

/// A streaming reader of the objects of a pack.
///
/// See the [module documentation](self) for what it hands out, its memory bound and its limits.
pub struct PackReader {
    format: ObjectFormat,
    limits: PackLimits,
    state: State,
    /// Absolute offset of the pack's first byte.
    pack_start: u64,
    /// Bytes of the pack read so far.
    position: u64,
    /// Pack-relative offset of the entry being read.
    entry_start: u64,
    /// The entry count from the header, once read.
    count: Option<u32>,
    /// Index of the next entry.
    next_index: u32,
    /// Hash of every byte before the trailer.
    checksum: Option<Hasher>,
    inflater: Inflater,
    objects: Objects,
}

impl std::fmt::Debug for PackReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackReader")
            .field("state", &self.state)
            .field("position", &self.position)
            .field("count", &self.count)
            .field("next_index", &self.next_index)
            .field("cache_used", &self.objects.cache.used())
            .finish_non_exhaustive()
    }
}

impl PackReader {
    /// A reader with the default limits for a pack that starts at absolute offset
    /// `pack_start` of the body.
    pub fn new(format: ObjectFormat, pack_start: u64) -> PackReader {
        PackReader::with_limits(format, pack_start, PackLimits::default())
    }

    /// A reader with `limits`.
    pub fn with_limits(format: ObjectFormat, pack_start: u64, limits: PackLimits) -> PackReader {
        PackReader {
            format,
            limits,
            state: State::Header {
                bytes: [0; PACK_HEADER_LEN],
                got: 0,
            },
            pack_start,
            position: 0,
            entry_start: 0,
            count: None,
            next_index: 0,
            checksum: Some(Hasher::new(format)),
            inflater: Inflater {
                stream: Decompress::new(true),
                scratch: Vec::new(),
            },
            objects: Objects {
                format,
                limits,
                cache: BaseCache::new(limits.base_cache),
                output: 0,
            },
        }
    }

    /// The same reader without the check of the trailer: it still finds where the pack ends,
    /// but does not hash the pack. For a caller whose consumer checks the trailer anyway (the
    /// gate: git's `index-pack` on the server does), this saves one hash of every byte.
    pub fn without_checksum(mut self) -> PackReader {
        self.checksum = None;
        self
    }

    /// The entry count from the pack header, once read.
    pub fn object_count(&self) -> Option<u32> {
        self.count
    }

    /// Bytes of the pack read so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// True once the trailer has been read and matched.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// Bytes held for delta bases, bookkeeping included; never over
    /// [`PackLimits::base_cache`].
    pub fn cache_used(&self) -> usize {
        self.objects.cache.used()
    }

    /// Feeds the next bytes of the pack, handing what they complete to `sink`.
    ///
    /// Returns `Break` once the sink asked to stop (further input is then ignored). An error is
    /// final: it is returned again for any further input. Any byte after the trailer is
    /// [`PackObjectError::DataAfterPack`].
    pub fn feed<S: ObjectSink + ?Sized>(
        &mut self,
        mut input: &[u8],
        sink: &mut S,
    ) -> Result<ControlFlow<()>, PackObjectError> {
        match &self.state {
            State::Failed(error) => return Err(error.clone()),
            State::Stopped => return Ok(ControlFlow::Break(())),
            _ => {}
        }
        while !input.is_empty() {
            let before_trailer = !matches!(self.state, State::Trailer { .. } | State::End);
            let (used, flow) = match self.step(input, sink) {
                Ok(step) => step,
                Err(error) => {
                    self.state = State::Failed(error.clone());
                    return Err(error);
                }
            };
            let (taken, rest) = input.split_at(used.min(input.len()));
            if before_trailer && let Some(checksum) = &mut self.checksum {
                checksum.update(taken);
            }
            self.position = self.position.saturating_add(used as u64);
            input = rest;
            if flow.is_break() {
                self.state = State::Stopped;
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Checks that the pack is complete: [`PackObjectError::Truncated`] if the input ended
    /// early, or the error that stopped the reader.
    pub fn finish(&self) -> Result<(), PackObjectError> {
        match &self.state {
            State::End => Ok(()),
            State::Failed(error) => Err(error.clone()),
            _ => Err(PackObjectError::Truncated {
                offset: self.absolute(self.position),
            }),
        }
    }

    /// Absolute offset of the byte at pack-relative `position`.
    fn absolute(&self, position: u64) -> u64 {
        self.pack_start.saturating_add(position)
    }

    /// Consumes a prefix of `input`. A step that uses no byte changes the state.
    fn step<S: ObjectSink + ?Sized>(
        &mut self,
        input: &[u8],
        sink: &mut S,
    ) -> Result<(usize, ControlFlow<()>), PackObjectError> {
        const GO_ON: ControlFlow<()> = ControlFlow::Continue(());
        let offset = self.absolute(self.entry_start);
        match &mut self.state {
            State::Header { bytes, got } => {
                let take = fill(bytes, got, input);
                if *got == PACK_HEADER_LEN {
                    let header = *bytes;
                    self.parse_header(&header)?;
                }
                Ok((take, GO_ON))
            }
            State::EntryHeader {
                read,
                kind,
                size,
                shift,
            } => {
                let Some(&byte) = input.first() else {
                    return Ok((0, GO_ON));
                };
                // Entry header (gitformat-pack, "Size encoding"): type in bits 4-6 of the
                // first byte, size in its low 4 bits, then 7 bits a byte, low bits first.
                if *read == 0 {
                    *kind = (byte >> 4) & 0x7;
                    if ObjectKind::from_type_code(*kind).is_none()
                        && *kind != OBJ_OFS_DELTA
                        && *kind != OBJ_REF_DELTA
                    {
                        let kind = *kind;
                        return Err(PackObjectError::BadObjectType { offset, kind });
                    }
                    *size = u64::from(byte & 0x0f);
                    *shift = 4;
                } else {
                    let bits = u64::from(byte & 0x7f);
                    let shifted = bits.checked_shl(*shift).filter(|v| v >> *shift == bits);
                    let Some(shifted) = shifted else {
                        return Err(PackObjectError::VarintOverflow { offset });
                    };
                    *size |= shifted;
                    *shift = shift.saturating_add(7);
                }
                *read = read.saturating_add(1);
                if byte & 0x80 != 0 {
                    return Ok((1, GO_ON));
                }
                let (kind, size) = (*kind, *size);
                let max = self.limits.max_object_size;
                if size > max {
                    let declared = size;
                    return Err(PackObjectError::ObjectTooLarge {
                        offset,
                        declared,
                        max,
                    });
                }
                if let Some(object) = ObjectKind::from_type_code(kind) {
                    let flow = self.start_stored(object, size, sink)?;
                    return Ok((1, flow));
                }
                self.state = if kind == OBJ_OFS_DELTA {
                    State::OfsDistance {
                        size,
                        distance: 0,
                        read: 0,
                    }
                } else {
                    State::RefBase {
                        size,
                        bytes: [0; MAX_ID_LEN],
                        got: 0,
                    }
                };
                Ok((1, GO_ON))
            }
            State::OfsDistance {
                size,
                distance,
                read,
            } => {
                let Some(&byte) = input.first() else {
                    return Ok((0, GO_ON));
                };
                // Offset encoding (gitformat-pack, "offset encoding"): each continuation adds
                // one before shifting, so that no distance has two encodings.
                let next = if *read == 0 {
                    Some(u64::from(byte & 0x7f))
                } else {
                    distance
                        .checked_add(1)
                        .and_then(|v| v.checked_mul(128))
                        .and_then(|v| v.checked_add(u64::from(byte & 0x7f)))
                };
                let Some(next) = next else {
                    return Err(PackObjectError::VarintOverflow { offset });
                };
                *distance = next;
                *read = read.saturating_add(1);
                if byte & 0x80 != 0 {
                    return Ok((1, GO_ON));
                }
                let (size, distance) = (*size, *distance);
                // The base is a whole entry before this one, after the pack header.
                let room = self.entry_start.saturating_sub(PACK_HEADER_LEN as u64);
                if distance == 0 || distance > room {
                    return Err(PackObjectError::BadDeltaOffset { offset, distance });
                }
                let base_offset = offset.saturating_sub(distance);
                self.start_delta(EntryKind::OfsDelta { base_offset }, size);
                Ok((1, GO_ON))
            }
            State::RefBase { size, bytes, got } => {
                let len = self.format.raw_len();
                let id_bytes = bytes.get_mut(..len).unwrap_or_default();
                let take = fill(id_bytes, got, input);
                if *got == len {
                    let size = *size;
                    let raw = bytes.get(..len).unwrap_or_default();
                    // Cannot fail: `raw` has the format's length.
                    let Some(base) = ObjectId::from_raw(self.format, raw) else {
                        return Err(PackObjectError::BadObjectType {
                            offset,
                            kind: OBJ_REF_DELTA,
                        });
                    };
                    self.start_delta(EntryKind::RefDelta { base }, size);
                }
                Ok((take, GO_ON))
            }
            State::Data(entry) => {
                let inflated = entry.inflate(&mut self.inflater, &mut self.objects, input, sink)?;
                if !inflated.ended || inflated.flow.is_break() {
                    return Ok((inflated.used, inflated.flow));
                }
                let end_position = self.position.saturating_add(inflated.used as u64);
                let end = self.absolute(end_position);
                let State::Data(entry) = std::mem::replace(&mut self.state, State::End) else {
                    return Ok((inflated.used, GO_ON));
                };
                let flow = entry.finish(&mut self.objects, end, sink)?;
                self.entry_start = end_position;
                self.state = self.next_entry();
                Ok((inflated.used, flow))
            }
            State::Trailer { bytes, got } => {
                let len = self.format.raw_len();
                let trailer = bytes.get_mut(..len).unwrap_or_default();
                let take = fill(trailer, got, input);
                if *got == len {
                    // No hasher: the caller chose not to check the trailer.
                    let expected = self.checksum.take().map(Hasher::finish);
                    let found = bytes.get(..len).unwrap_or_default();
                    if expected.is_some_and(|expected| expected.as_bytes() != found) {
                        return Err(PackObjectError::ChecksumMismatch {
                            offset: self.absolute(self.entry_start),
                        });
                    }
                    self.state = State::End;
                }
                Ok((take, GO_ON))
            }
            State::End => Err(PackObjectError::DataAfterPack {
                offset: self.absolute(self.position),
            }),
            State::Stopped => Ok((input.len(), ControlFlow::Break(()))),
            State::Failed(error) => Err(error.clone()),
        }
    }

    fn parse_header(&mut self, header: &[u8; PACK_HEADER_LEN]) -> Result<(), PackObjectError> {
        let offset = self.pack_start;
        let [s0, s1, s2, s3, v0, v1, v2, v3, c0, c1, c2, c3] = *header;
        if [s0, s1, s2, s3] != *PACK_SIGNATURE {
            return Err(PackObjectError::BadSignature { offset });
        }
        let version = u32::from_be_bytes([v0, v1, v2, v3]);
        if version != 2 && version != 3 {
            return Err(PackObjectError::UnsupportedVersion {
                offset: offset.saturating_add(4),
                version,
            });
        }
        let count = u32::from_be_bytes([c0, c1, c2, c3]);
        let max = self.limits.max_objects;
        if count > max {
            return Err(PackObjectError::TooManyObjects { offset, count, max });
        }
        self.count = Some(count);
        self.entry_start = PACK_HEADER_LEN as u64;
        self.state = self.next_entry();
        Ok(())
    }

    /// The state after the header or an entry: another entry, or the trailer.
    fn next_entry(&mut self) -> State {
        if self.next_index < self.count.unwrap_or_default() {
            State::EntryHeader {
                read: 0,
                kind: 0,
                size: 0,
                shift: 0,
            }
        } else {
            State::Trailer {
                bytes: [0; MAX_ID_LEN],
                got: 0,
            }
        }
    }

    /// Takes the index of the entry being started.
    fn take_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index = index.saturating_add(1);
        index
    }

    /// Starts a stored object of `kind` and `size` bytes, and tells the sink.
    fn start_stored<S: ObjectSink + ?Sized>(
        &mut self,
        kind: ObjectKind,
        size: u64,
        sink: &mut S,
    ) -> Result<ControlFlow<()>, PackObjectError> {
        let offset = self.absolute(self.entry_start);
        self.objects.count_output(offset, size)?;
        let start = ObjectStart {
            index: self.take_index(),
            offset,
            entry: EntryKind::Object(kind),
            stored_size: size,
            content: Content::Whole(kind),
            size,
        };
        let keep = self.objects.cache.reserve(size, None);
        let flow = sink.object_start(&start);
        let build = Build::new(self.format, kind, start, keep);
        self.inflater.stream.reset(true);
        self.state = State::Data(Box::new(Entry {
            index: build.start.index,
            offset,
            entry: EntryKind::Object(kind),
            stored_size: size,
            delta: None,
            output: Output::Whole { build, base: None },
        }));
        Ok(flow)
    }

    /// Starts a delta entry; the sink hears of it once its sizes are inflated.
    fn start_delta(&mut self, entry: EntryKind, stored_size: u64) {
        let offset = self.absolute(self.entry_start);
        self.inflater.stream.reset(true);
        self.state = State::Data(Box::new(Entry {
            index: self.take_index(),
            offset,
            entry,
            stored_size,
            delta: Some(DeltaDecoder::new(self.limits.max_delta_result)),
            output: Output::Pending,
        }));
    }
}

/// Copies from `input` into the free part of `buffer`; returns how many bytes were taken.
fn fill(buffer: &mut [u8], got: &mut usize, input: &[u8]) -> usize {
    let free = buffer.get_mut(*got..).unwrap_or_default();
    let take = free.len().min(input.len());
    if let (Some(to), Some(from)) = (free.get_mut(..take), input.get(..take)) {
        to.copy_from_slice(from);
    }
    *got = got.saturating_add(take);
    take
}

/// The zlib inflater and the buffer it writes to.
struct Inflater {
    stream: Decompress,
    /// Allocated at the first entry, [`SCRATCH_LEN`] bytes.
    scratch: Vec<u8>,
}

/// What every entry shares: the settings, the kept bases, and the output so far.
struct Objects {
    format: ObjectFormat,
    limits: PackLimits,
    cache: BaseCache,
    /// Sizes of the objects started so far, added up.
    output: u64,
}

impl Objects {
    /// Counts an object of `size` bytes against [`PackLimits::max_output`].
    fn count_output(&mut self, offset: u64, size: u64) -> Result<(), PackObjectError> {
        let max = self.limits.max_output;
        match self.output.checked_add(size) {
            Some(total) if total <= max => {
                self.output = total;
                Ok(())
            }
            _ => Err(PackObjectError::OutputTooLarge { offset, max }),
        }
    }
}

/// What the chunks of the current entry are.
#[allow(
    clippy::large_enum_variant,
    reason = "the one value lives in the boxed entry being read; boxing `Build` too would cost \
              an allocation per object"
)]
enum Output {
    /// A delta whose sizes are not inflated yet.
    Pending,
    /// The whole object: stored, or rebuilt from the base kept at `base`.
    Whole {
        build: Build,
        /// Absolute offset of the base's entry, for a rebuilt delta.
        base: Option<u64>,
    },
    /// A delta's inserts only.
    Inserts { start: ObjectStart },
}

/// An object whose every byte goes by: hashed, its header read, maybe kept as a base.
struct Build {
    kind: ObjectKind,
    start: ObjectStart,
    hasher: ObjectHasher,
    info: Option<InfoReader>,
    /// The content so far, when the object is to be kept as a base.
    keep: Option<(Reservation, Vec<u8>)>,
    /// Bytes handed out so far.
    written: u64,
}

impl Build {
    fn new(
        format: ObjectFormat,
        kind: ObjectKind,
        start: ObjectStart,
        reservation: Option<Reservation>,
    ) -> Build {
        // The capacity comes from a declared size, but only after the cache budget admitted
        // it, so a lie costs at most the budget.
        let keep = reservation.map(|r| {
            let data = Vec::with_capacity(r.len());
            (r, data)
        });
        Build {
            kind,
            hasher: ObjectHasher::new(format, kind, start.size),
            info: InfoReader::new(format, kind),
            keep,
            written: 0,
            start,
        }
    }

    fn write<S: ObjectSink + ?Sized>(
        &mut self,
        bytes: &[u8],
        origin: Origin,
        sink: &mut S,
    ) -> ControlFlow<()> {
        if bytes.is_empty() {
            return ControlFlow::Continue(());
        }
        self.hasher.update(bytes);
        if let Some(info) = &mut self.info {
            info.update(bytes);
        }
        if let Some((_, data)) = &mut self.keep {
            data.extend_from_slice(bytes);
        }
        let chunk = ObjectChunk {
            entry: self.start.offset,
            offset: self.written,
            origin,
            bytes,
        };
        self.written = self.written.saturating_add(bytes.len() as u64);
        sink.object_data(&chunk)
    }
}

/// How one call to [`Entry::inflate`] went.
struct Inflated {
    /// Input bytes used.
    used: usize,
    flow: ControlFlow<()>,
    /// The zlib stream ended (and inflated to the declared size).
    ended: bool,
}

/// The entry being inflated.
struct Entry {
    index: u32,
    /// Absolute offset of the entry.
    offset: u64,
    entry: EntryKind,
    stored_size: u64,
    /// The instruction reader, for a delta.
    delta: Option<DeltaDecoder>,
    output: Output,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("entry", &self.entry)
            .field("stored_size", &self.stored_size)
            .finish_non_exhaustive()
    }
}

impl Entry {
    /// Inflates from `input` until the entry's zlib stream ends, the input runs out, or the
    /// sink asks to stop.
    fn inflate<S: ObjectSink + ?Sized>(
        &mut self,
        inflater: &mut Inflater,
        objects: &mut Objects,
        input: &[u8],
        sink: &mut S,
    ) -> Result<Inflated, PackObjectError> {
        let offset = self.offset;
        let declared = self.stored_size;
        if inflater.scratch.len() != SCRATCH_LEN {
            inflater.scratch.resize(SCRATCH_LEN, 0);
        }
        let stream = &mut inflater.stream;
        let mut used = 0usize;
        loop {
            let rest = input.get(used..).unwrap_or_default();
            let (in_before, out_before) = (stream.total_in(), stream.total_out());
            let status = stream
                .decompress(rest, &mut inflater.scratch, FlushDecompress::None)
                .map_err(|_| PackObjectError::Inflate { offset })?;
            let consumed = stream.total_in().saturating_sub(in_before);
            let produced = stream.total_out().saturating_sub(out_before);
            used = used.saturating_add(usize::try_from(consumed).unwrap_or(usize::MAX));
            let inflated = stream.total_out();
            // Checked before the bytes are handed out, so a sink never sees more than declared.
            if inflated > declared {
                return Err(PackObjectError::LongerThanDeclared { offset, declared });
            }
            let produced = usize::try_from(produced).unwrap_or(usize::MAX);
            let data = inflater.scratch.get(..produced).unwrap_or_default();
            if !data.is_empty() && self.consume(data, objects, sink)?.is_break() {
                let flow = ControlFlow::Break(());
                return Ok(Inflated {
                    used,
                    flow,
                    ended: false,
                });
            }
            let flow = ControlFlow::Continue(());
            match status {
                Status::StreamEnd => {
                    if inflated != declared {
                        return Err(PackObjectError::ShorterThanDeclared {
                            offset,
                            declared,
                            inflated,
                        });
                    }
                    return Ok(Inflated {
                        used,
                        flow,
                        ended: true,
                    });
                }
                Status::Ok | Status::BufError if consumed == 0 && produced == 0 => {
                    if used == 0 && !input.is_empty() {
                        // No progress on fresh input: the stream cannot go on.
                        return Err(PackObjectError::Inflate { offset });
                    }
                    return Ok(Inflated {
                        used,
                        flow,
                        ended: false,
                    });
                }
                Status::Ok | Status::BufError => {}
            }
        }
    }

    /// Takes inflated bytes of the entry.
    fn consume<S: ObjectSink + ?Sized>(
        &mut self,
        mut data: &[u8],
        objects: &mut Objects,
        sink: &mut S,
    ) -> Result<ControlFlow<()>, PackObjectError> {
        let offset = self.offset;
        let Some(decoder) = &mut self.delta else {
            return Ok(match &mut self.output {
                Output::Whole { build, .. } => build.write(data, Origin::Stored, sink),
                Output::Pending | Output::Inserts { .. } => ControlFlow::Continue(()),
            });
        };
        let delta_error = |source| PackObjectError::Delta { offset, source };
        while let Some(op) = decoder.next(&mut data).map_err(delta_error)? {
            let flow = match op {
                DeltaOp::Sizes {
                    source_size,
                    target_size,
                } => {
                    let start = ObjectStart {
                        index: self.index,
                        offset,
                        entry: self.entry,
                        stored_size: self.stored_size,
                        content: Content::Inserts,
                        size: target_size,
                    };
                    self.output = objects.plan(start, source_size)?;
                    match &self.output {
                        Output::Whole { build, .. } => sink.object_start(&build.start),
                        Output::Inserts { start } => sink.object_start(start),
                        Output::Pending => ControlFlow::Continue(()),
                    }
                }
                DeltaOp::Copy {
                    source_offset, len, ..
                } => match &mut self.output {
                    Output::Whole {
                        build,
                        base: Some(base),
                    } => {
                        // The decoder checked the copy against the declared source size, and
                        // `plan` that this is the kept base's size.
                        let Some(bytes) = objects.cache.slice(*base, source_offset, len) else {
                            return Err(delta_error(DeltaError::CopyOutOfBounds {
                                at: decoder.position(),
                                offset: source_offset,
                                len,
                                source_size: 0,
                            }));
                        };
                        build.write(bytes, Origin::Copied, sink)
                    }
                    _ => ControlFlow::Continue(()),
                },
                DeltaOp::Insert {
                    bytes,
                    target_offset,
                } => match &mut self.output {
                    Output::Whole { build, .. } => build.write(bytes, Origin::Inserted, sink),
                    Output::Inserts { start } => sink.object_data(&ObjectChunk {
                        entry: start.offset,
                        offset: target_offset,
                        origin: Origin::Inserted,
                        bytes,
                    }),
                    Output::Pending => ControlFlow::Continue(()),
                },
            };
            if flow.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Ends the entry at absolute offset `end`: names the object, keeps it as a base if it
    /// was gathered, and tells the sink.
    fn finish<S: ObjectSink + ?Sized>(
        self,
        objects: &mut Objects,
        end: u64,
        sink: &mut S,
    ) -> Result<ControlFlow<()>, PackObjectError> {
        let offset = self.offset;
        if let Some(decoder) = &self.delta {
            decoder
                .finish()
                .map_err(|source| PackObjectError::Delta { offset, source })?;
        }
        let object_end = match self.output {
            Output::Whole { build, .. } => {
                let id = build.hasher.finish();
                let info = build.info.map(InfoReader::finish);
                if let Some((reservation, data)) = build.keep {
                    objects
                        .cache
                        .insert(reservation, offset, build.kind, id, data);
                }
                ObjectEnd {
                    object: build.start,
                    end,
                    id: Some(id),
                    info,
                }
            }
            Output::Inserts { start } => ObjectEnd {
                object: start,
                end,
                id: None,
                info: None,
            },
            Output::Pending => {
                // A complete delta has read its sizes; this is only for safety.
                return Err(PackObjectError::Delta {
                    offset,
                    source: DeltaError::Truncated {
                        at: 0,
                        written: 0,
                        target_size: 0,
                    },
                });
            }
        };
        Ok(sink.object_end(object_end))
    }
}

impl Objects {
    /// Decides how a delta whose sizes were just read is handed out: rebuilt if its base is
    /// kept, inserts only otherwise.
    fn plan(&mut self, start: ObjectStart, source_size: u64) -> Result<Output, PackObjectError> {
        let offset = start.offset;
        self.count_output(offset, start.size)?;
        let base = match start.entry {
            EntryKind::OfsDelta { base_offset } => self.cache.find_offset(base_offset),
            EntryKind::RefDelta { base } => self.cache.find_id(&base),
            EntryKind::Object(_) => None,
        };
        let Some(base) = base else {
            return Ok(Output::Inserts { start });
        };
        if base.len != source_size {
            return Err(PackObjectError::Delta {
                offset,
                source: DeltaError::SourceSizeMismatch {
                    declared: source_size,
                    actual: base.len,
                },
            });
        }
        let start = ObjectStart {
            content: Content::Whole(base.kind),
            ..start
        };
        let keep = self.cache.reserve(start.size, Some(base.offset));
        Ok(Output::Whole {
            build: Build::new(self.format, base.kind, start, keep),
            base: Some(base.offset),
        })
    }
}
