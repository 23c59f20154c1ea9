//! Fingerprints: a keyed hash that names a secret without revealing it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The number of HMAC-SHA256 output bytes kept in a fingerprint: 128 bits is far beyond any
/// collision a policy file could meet, and 32 hex characters stay readable in a log line.
pub const FINGERPRINT_LEN: usize = 16;

/// The key used when configuration names none. It is public, so fingerprints made with it can
/// be checked against guesses; deployments set their own `fingerprint_key`.
pub const DEFAULT_FINGERPRINT_KEY: &str = "gitgate-scan default fingerprint key";

/// The shortest `fingerprint_key` accepted from configuration.
pub const MIN_FINGERPRINT_KEY_LEN: usize = 16;

/// HMAC-SHA256 of a secret value under the configured key, truncated to
/// [`FINGERPRINT_LEN`] bytes. Displays as lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; FINGERPRINT_LEN]);

impl Fingerprint {
    /// Parses the 32 hex digits a configuration file lists; `None` if the text is not that.
    pub fn from_hex(text: &str) -> Option<Fingerprint> {
        let bytes = text.as_bytes();
        if bytes.len() != FINGERPRINT_LEN * 2 {
            return None;
        }
        let mut out = [0u8; FINGERPRINT_LEN];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *slot = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Fingerprint(out))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A keyed hasher, set up once per rule set.
#[derive(Clone)]
pub struct Fingerprinter {
    mac: Hmac<Sha256>,
}

impl Fingerprinter {
    /// A hasher for `key`.
    pub fn new(key: &[u8]) -> Fingerprinter {
        // HMAC accepts keys of any length (RFC 2104 section 2), so this cannot fail.
        let mac = match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Fingerprinter { mac }
    }

    /// The fingerprint of `value`.
    pub fn fingerprint(&self, value: &[u8]) -> Fingerprint {
        let mut mac = self.mac.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let mut out = [0u8; FINGERPRINT_LEN];
        out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
        Fingerprint(out)
    }
}

impl fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprinter { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_the_key_and_round_trip_through_hex() {
        let a = Fingerprinter::new(b"key one, sixteen+").fingerprint(b"value");
        let b = Fingerprinter::new(b"key two, sixteen+").fingerprint(b"value");
        assert_ne!(a, b);
        assert_eq!(Fingerprint::from_hex(&a.to_string()), Some(a));
        assert_eq!(Fingerprint::from_hex("not hex"), None);
    }

    #[test]
    fn the_fingerprint_matches_rfc_4231_test_case_2_truncated() {
        // RFC 4231 section 4.3: key "Jefe", data "what do ya want for nothing?".
        let f = Fingerprinter::new(b"Jefe").fingerprint(b"what do ya want for nothing?");
        assert_eq!(f.to_string(), "5bdcc146bf60754e6a042426089575c7");
    }
}
