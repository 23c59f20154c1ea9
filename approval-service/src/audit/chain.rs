//! The hash chain: canonical JSON and SHA-256 links.
//!
//! A record's canonical JSON is its envelope ([`super::record::Envelope`]) serialised by
//! serde_json, compact (no whitespace), with the keys of every object sorted by their UTF-8
//! bytes, at every depth, and strings escaped as serde_json escapes them. The sorting is done
//! here rather than left to serde_json's map type, whose order depends on a cargo feature that
//! any crate in the build may switch on.
//!
//! A record's hash is the lower-case hex SHA-256 of `prev_hash`, one `\n`, and the canonical
//! JSON; the first record of a session links to [`GENESIS_HASH`]. The envelope carries the
//! session and the sequence number, so a record moved to another place breaks its own hash as
//! well as the links around it.

use std::fmt::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of a session's first record: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The canonical JSON text of a value (sorted keys, compact).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, item)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    // Serialising a string, number, bool or null to a String cannot fail; the fallback keeps
    // the function total rather than panicking.
    out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()));
}

/// The hash of a record: SHA-256 over the previous hash, `\n` and the canonical JSON, in hex.
pub fn link_hash(prev_hash: &str, canonical: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            // Writing to a String cannot fail.
            let _ = write!(text, "{byte:02x}");
            text
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_at_every_depth_and_nothing_else_changes() {
        let value = json!({"b": 1, "a": {"z": [3, {"y": null, "x": "\"q\""}], "c": true}});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":{"c":true,"z":[3,{"x":"\"q\"","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_is_sha256_of_the_link_and_the_text() {
        // printf '%s\n%s' "$GENESIS" '{}' | sha256sum
        assert_eq!(
            link_hash(GENESIS_HASH, "{}"),
            "5649d09ed68c17156095d175eef152856c5b1a81c117c409c1e00f096aa6838e"
        );
        assert_ne!(
            link_hash(GENESIS_HASH, "{}"),
            link_hash(GENESIS_HASH, "{ }")
        );
    }
}
