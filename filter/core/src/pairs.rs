//! proxy-wasm's "pairs" serialization, and the leaf encodings of `get_property`.
//!
//! envoy-wasm.md §4: a map (and a header map) is `u32 count`, then `count` pairs of
//! `(u32 key_len, u32 value_len)`, then every key and every value each followed by a NUL, all
//! little-endian. A list is the same with the elements as keys and empty values. Leaf values are
//! raw bytes for strings, 8-byte little-endian for numbers (Struct numbers are doubles) and one
//! byte for a bool.

use thiserror::Error;

/// A byte string that is not a valid pairs encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairsError {
    /// The input ends before a declared field.
    #[error("pairs data ends at byte {offset}, {needed} more bytes declared")]
    Truncated {
        /// Where the input ended.
        offset: usize,
        /// How many bytes were still declared.
        needed: usize,
    },
    /// A key or value is not followed by its NUL.
    #[error("missing NUL terminator at byte {offset}")]
    MissingTerminator {
        /// Where the NUL should be.
        offset: usize,
    },
    /// Bytes after the last pair.
    #[error("{extra} bytes after the last pair")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
}

/// One key and its value, borrowed from the encoded bytes.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// Decodes pairs, borrowing keys and values from `bytes`. Strict: every length is checked before
/// use, every terminator must be there, and nothing may follow the last pair.
pub fn decode(bytes: &[u8]) -> Result<Vec<Pair<'_>>, PairsError> {
    let mut reader = Reader { bytes, offset: 0 };
    let count = reader.u32()? as usize;
    // Each pair takes at least 10 bytes (two lengths, two NULs): a count that cannot fit is
    // refused before any allocation sized by it.
    let max_pairs = bytes.len().saturating_sub(4) / 10;
    if count > max_pairs {
        return Err(PairsError::Truncated {
            offset: bytes.len(),
            needed: count.saturating_mul(10).saturating_sub(bytes.len()),
        });
    }
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let key = reader.u32()? as usize;
        let value = reader.u32()? as usize;
        sizes.push((key, value));
    }
    let mut pairs = Vec::with_capacity(count);
    for (key_len, value_len) in sizes {
        let key = reader.terminated(key_len)?;
        let value = reader.terminated(value_len)?;
        pairs.push((key, value));
    }
    let extra = bytes.len().saturating_sub(reader.offset);
    if extra > 0 {
        return Err(PairsError::TrailingBytes { extra });
    }
    Ok(pairs)
}

/// Encodes pairs (the inverse of [`decode`]).
pub fn encode(pairs: &[Pair<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (key, value) in pairs {
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (key, value) in pairs {
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PairsError> {
        let end = self
            .offset
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        let Some(slice) = end.and_then(|end| self.bytes.get(self.offset..end)) else {
            return Err(PairsError::Truncated {
                offset: self.bytes.len(),
                needed: self
                    .offset
                    .saturating_add(len)
                    .saturating_sub(self.bytes.len()),
            });
        };
        self.offset += len;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, PairsError> {
        let bytes = self.take(4)?;
        let array = <[u8; 4]>::try_from(bytes).map_err(|_| PairsError::Truncated {
            offset: self.offset,
            needed: 4,
        })?;
        Ok(u32::from_le_bytes(array))
    }

    fn terminated(&mut self, len: usize) -> Result<&'a [u8], PairsError> {
        let data = self.take(len)?;
        let at = self.offset;
        match self.take(1)? {
            [0] => Ok(data),
            _ => Err(PairsError::MissingTerminator { offset: at }),
        }
    }
}

/// The elements of a list value as UTF-8 strings, or `None` if `bytes` is not a pairs-encoded
/// list of strings.
pub fn string_list(bytes: &[u8]) -> Option<Vec<String>> {
    decode(bytes)
        .ok()?
        .into_iter()
        .map(|(key, value)| {
            if !value.is_empty() {
                return None;
            }
            String::from_utf8(key.to_vec()).ok()
        })
        .collect()
}

/// Reads a claim that should be a list of strings: a pairs-encoded list, or a single string
/// (a claim may hold one group as a plain string). Anything else yields no groups.
pub fn string_list_claim(bytes: &[u8]) -> Vec<String> {
    if let Some(list) = string_list(bytes) {
        return list;
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.is_empty() && !text.contains('\0') => vec![text.to_owned()],
        _ => Vec::new(),
    }
}

/// Reads an 8-byte little-endian double (how a Struct number arrives).
pub fn f64_value(bytes: &[u8]) -> Option<f64> {
    Some(f64::from_le_bytes(<[u8; 8]>::try_from(bytes).ok()?))
}

/// Reads a bool: one byte 0 or 1 (a CEL bool), or the text `true` / `false`.
pub fn bool_value(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [0] | b"false" => Some(false),
        [1] | b"true" => Some(true),
        _ => None,
    }
}

/// Reads a string leaf: UTF-8 bytes, trimmed of nothing; `None` when empty or not text.
pub fn string_value(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"sub", b"alice"), (b"", b""), (b"k", b"v\0x")];
        let bytes = encode(&pairs);
        assert_eq!(decode(&bytes), Ok(pairs));
    }

    #[test]
    fn the_layout_matches_the_host_encoding() {
        let bytes = encode(&[(b"ab", b"c")]);
        assert_eq!(bytes, b"\x01\0\0\0\x02\0\0\0\x01\0\0\0ab\0c\0");
    }

    #[test]
    fn a_list_decodes_its_keys() {
        let bytes = encode(&[(b"dev", b""), (b"ops", b"")]);
        assert_eq!(
            string_list(&bytes),
            Some(vec!["dev".to_owned(), "ops".to_owned()])
        );
        assert_eq!(string_list_claim(&bytes), ["dev", "ops"]);
        assert_eq!(string_list(&encode(&[])), Some(vec![]));
    }

    #[test]
    fn a_plain_string_claim_is_one_group() {
        assert_eq!(string_list_claim(b"dev"), ["dev"]);
        assert!(string_list_claim(b"").is_empty());
    }

    #[test]
    fn a_map_is_not_a_list() {
        assert_eq!(string_list(&encode(&[(b"k", b"v")])), None);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = encode(&[(b"key", b"value")]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "accepted a cut at {cut}");
        }
    }

    #[test]
    fn a_huge_count_is_refused_without_allocating() {
        assert!(matches!(
            decode(b"\xff\xff\xff\xff"),
            Err(PairsError::Truncated { .. })
        ));
    }

    #[test]
    fn a_missing_terminator_is_an_error() {
        let mut bytes = encode(&[(b"k", b"v")]);
        let at = bytes.len() - 3;
        bytes[at] = b'x';
        assert_eq!(
            decode(&bytes),
            Err(PairsError::MissingTerminator { offset: at })
        );
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode(&[(b"k", b"v")]);
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(PairsError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn leaf_values_decode() {
        assert_eq!(f64_value(&3.0f64.to_le_bytes()), Some(3.0));
        assert_eq!(f64_value(b"short"), None);
        assert_eq!(bool_value(&[1]), Some(true));
        assert_eq!(bool_value(b"false"), Some(false));
        assert_eq!(bool_value(b"yes"), None);
        assert_eq!(string_value(b"alice"), Some("alice".into()));
        assert_eq!(string_value(b""), None);
    }
}
