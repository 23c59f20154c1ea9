//! Git objects: their kinds, their ids, and the headers of commits and tags.
//!
//! An object's id is the hash of `<type> SP <size> NUL <content>` (gitformat-object,
//! "Object format"; `hash-object`), with SHA-1 or SHA-256 as the repository's object format
//! says. [`ObjectHasher`] computes it as the content streams by, so no object has to be held in
//! memory to be named.
//!
//! ```
//! use gitgate_core::object::{ObjectKind, object_id};
//! use gitgate_core::receive_pack::ObjectFormat;
//!
//! // `printf 'hello\n' | git hash-object --stdin`
//! let id = object_id(ObjectFormat::Sha1, ObjectKind::Blob, b"hello\n");
//! assert_eq!(id.to_string(), "ce013625030ba8dba906f756967f9e9ca394464a");
//! ```

use std::fmt;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use crate::receive_pack::ObjectFormat;

mod info;

pub(crate) use info::InfoReader;
pub use info::{
    CommitInfo, MAX_LINE, MAX_MESSAGE, MAX_PARENTS, MAX_SUBJECT, ObjectInfo, Signature,
    SignatureTime, TagInfo,
};

/// The four kinds of object (gitformat-pack, "Object types").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// A commit (pack type 1).
    Commit,
    /// A tree (pack type 2).
    Tree,
    /// A blob: the content of a file (pack type 3).
    Blob,
    /// An annotated tag (pack type 4).
    Tag,
}

impl ObjectKind {
    /// The name used in object headers and by `git cat-file -t`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }

    /// The 3-bit type of a pack entry header.
    pub fn type_code(self) -> u8 {
        match self {
            ObjectKind::Commit => 1,
            ObjectKind::Tree => 2,
            ObjectKind::Blob => 3,
            ObjectKind::Tag => 4,
        }
    }

    /// The kind a pack entry's type stands for; `None` for deltas (6, 7) and invalid types.
    pub fn from_type_code(code: u8) -> Option<ObjectKind> {
        match code {
            1 => Some(ObjectKind::Commit),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Blob),
            4 => Some(ObjectKind::Tag),
            _ => None,
        }
    }

    /// The kind named `name` in object headers (a tag's `type` line).
    pub fn from_name(name: &[u8]) -> Option<ObjectKind> {
        match name {
            b"commit" => Some(ObjectKind::Commit),
            b"tree" => Some(ObjectKind::Tree),
            b"blob" => Some(ObjectKind::Blob),
            b"tag" => Some(ObjectKind::Tag),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The id of an object: a SHA-1 or SHA-256 hash.
///
/// Displays as lower-case hex (40 or 64 digits), as git prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectId {
    /// A SHA-1 id.
    Sha1([u8; 20]),
    /// A SHA-256 id.
    Sha256([u8; 32]),
}

impl ObjectId {
    /// The id in `raw`, whose length must be the format's (20 or 32 bytes).
    pub fn from_raw(format: ObjectFormat, raw: &[u8]) -> Option<ObjectId> {
        match format {
            ObjectFormat::Sha1 => raw.try_into().ok().map(ObjectId::Sha1),
            ObjectFormat::Sha256 => raw.try_into().ok().map(ObjectId::Sha256),
        }
    }

    /// The id spelt by `hex` (40 or 64 digits of either case; the length decides the format).
    pub fn from_hex(hex: &[u8]) -> Option<ObjectId> {
        fn fill<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
            let mut raw = [0u8; N];
            if hex.len() != N.checked_mul(2)? {
                return None;
            }
            for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
                let [high, low] = pair else { return None };
                *byte = (hex_digit(*high)? << 4) | hex_digit(*low)?;
            }
            Some(raw)
        }
        match hex.len() {
            40 => fill(hex).map(ObjectId::Sha1),
            64 => fill(hex).map(ObjectId::Sha256),
            _ => None,
        }
    }

    /// The object format the id belongs to.
    pub fn format(&self) -> ObjectFormat {
        match self {
            ObjectId::Sha1(_) => ObjectFormat::Sha1,
            ObjectId::Sha256(_) => ObjectFormat::Sha256,
        }
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            ObjectId::Sha1(raw) => raw,
            ObjectId::Sha256(raw) => raw,
        }
    }
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_bytes()
            .iter()
            .try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// A SHA-1 or SHA-256 hash in progress: an object id or a pack checksum.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub(crate) fn new(format: ObjectFormat) -> Hasher {
        match format {
            ObjectFormat::Sha1 => Hasher::Sha1(Sha1::new()),
            ObjectFormat::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha1(hasher) => hasher.update(bytes),
            Hasher::Sha256(hasher) => hasher.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> ObjectId {
        match self {
            Hasher::Sha1(hasher) => ObjectId::Sha1(hasher.finalize().into()),
            Hasher::Sha256(hasher) => ObjectId::Sha256(hasher.finalize().into()),
        }
    }
}

/// Computes an object's id while its content streams by.
///
/// The header `<type> SP <size> NUL` is hashed first, so the size must be known up front (a
/// pack entry declares it); the id is only right if exactly `size` bytes follow.
#[derive(Clone)]
pub struct ObjectHasher(Hasher);

impl fmt::Debug for ObjectHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectHasher")
    }
}

impl ObjectHasher {
    /// Starts the id of an object of `kind` and `size` bytes.
    pub fn new(format: ObjectFormat, kind: ObjectKind, size: u64) -> ObjectHasher {
        let mut hasher = Hasher::new(format);
        hasher.update(kind.name().as_bytes());
        hasher.update(b" ");
        hasher.update(size.to_string().as_bytes());
        hasher.update(b"\0");
        ObjectHasher(hasher)
    }

    /// Hashes the next content bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The id.
    pub fn finish(self) -> ObjectId {
        self.0.finish()
    }
}

/// The id of an object whose content is `data`, as `git hash-object -t <kind>` computes it.
pub fn object_id(format: ObjectFormat, kind: ObjectKind, data: &[u8]) -> ObjectId {
    let mut hasher = ObjectHasher::new(format, kind, data.len() as u64);
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_blob_and_tree_have_git_s_well_known_ids() {
        let blob = object_id(ObjectFormat::Sha1, ObjectKind::Blob, b"");
        assert_eq!(blob.to_string(), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        let tree = object_id(ObjectFormat::Sha1, ObjectKind::Tree, b"");
        assert_eq!(tree.to_string(), "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
        let tree = object_id(ObjectFormat::Sha256, ObjectKind::Tree, b"");
        assert_eq!(
            tree.to_string(),
            "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
        );
    }

    #[test]
    fn ids_round_trip_through_hex_of_either_case() {
        let id = object_id(ObjectFormat::Sha256, ObjectKind::Blob, b"x");
        let hex = id.to_string();
        assert_eq!(ObjectId::from_hex(hex.as_bytes()), Some(id));
        assert_eq!(ObjectId::from_hex(hex.to_uppercase().as_bytes()), Some(id));
        assert_eq!(id.format(), ObjectFormat::Sha256);
        assert_eq!(
            ObjectId::from_raw(ObjectFormat::Sha256, id.as_bytes()),
            Some(id)
        );
    }

    #[test]
    fn malformed_hex_is_no_id() {
        assert_eq!(ObjectId::from_hex(b""), None);
        assert_eq!(ObjectId::from_hex(&[b'0'; 41]), None);
        assert_eq!(ObjectId::from_hex(&[b'g'; 40]), None);
        assert_eq!(ObjectId::from_raw(ObjectFormat::Sha1, &[0; 32]), None);
    }

    #[test]
    fn type_codes_name_the_four_kinds_and_nothing_else() {
        for kind in [
            ObjectKind::Commit,
            ObjectKind::Tree,
            ObjectKind::Blob,
            ObjectKind::Tag,
        ] {
            assert_eq!(ObjectKind::from_type_code(kind.type_code()), Some(kind));
            assert_eq!(ObjectKind::from_name(kind.name().as_bytes()), Some(kind));
        }
        for code in [0, 5, 6, 7] {
            assert_eq!(ObjectKind::from_type_code(code), None);
        }
    }
}
