//! Credentials in real formats that were never issued, for the tests and benchmarks of code
//! that scans: prefix, alphabet, length and checksum are the vendor's, the value is random.
//!
//! Compiled only with the `fake` feature, so that no production build carries it. The GitHub
//! checksum is computed here bit by bit, apart from the engine's own check, so that a test
//! built on these values also catches a wrong checksum in the engine.

use std::sync::atomic::{AtomicU64, Ordering};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A small deterministic generator (SplitMix64): the same seed gives the same fakes.
#[derive(Debug, Clone)]
pub struct FakeRng(u64);

impl FakeRng {
    /// A generator that repeats for `seed`.
    pub fn new(seed: u64) -> FakeRng {
        FakeRng(seed)
    }

    /// A generator seeded from the clock and a process-wide counter, for tests that need a
    /// value no earlier run (or parallel test) used.
    pub fn fresh() -> FakeRng {
        static CALLS: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        let call = CALLS.fetch_add(0x9E37_79B9, Ordering::Relaxed);
        FakeRng(nanos ^ call.rotate_left(32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `len` characters drawn from `alphabet` (which must not be empty).
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| {
                let at = (self.next_u64() % alphabet.len().max(1) as u64) as usize;
                char::from(alphabet.get(at).copied().unwrap_or(b'x'))
            })
            .collect()
    }
}

/// The six base62 digits of the CRC32 (IEEE) of a GitHub-style token body.
pub fn github_checksum(body: &str) -> String {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in body.as_bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = !crc;
    let mut digits = [b'0'; 6];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|&b| char::from(b)).collect()
}

/// A GitHub classic personal access token: `ghp_`, 30 base62 characters and their checksum.
pub fn github_classic(rng: &mut FakeRng) -> String {
    let body = rng.string(BASE62, 30);
    let checksum = github_checksum(&body);
    format!("ghp_{body}{checksum}")
}

/// A Slack bot token: `xoxb-`, runs of 10 and 12 digits, and 24 alphanumerics.
pub fn slack_bot(rng: &mut FakeRng) -> String {
    let digits = b"0123456789";
    format!(
        "xoxb-{}-{}-{}",
        rng.string(digits, 10),
        rng.string(digits, 12),
        rng.string(BASE62, 24)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_token_and_the_engine_accepts_its_checksum() {
        let token = github_classic(&mut FakeRng::new(1));
        assert_eq!(token, github_classic(&mut FakeRng::new(1)));
        assert_ne!(token, github_classic(&mut FakeRng::new(2)));
        let rules = crate::RuleSet::builtin().expect("rules");
        let mut scanner = crate::Scanner::new(&rules);
        let mut findings = Vec::new();
        let _ = scanner.feed(token.as_bytes(), &mut findings);
        let _ = scanner.finish(&mut findings);
        assert!(
            findings.iter().any(|f| &*f.rule_id == "github-pat-classic"),
            "{findings:?}"
        );
    }

    #[test]
    fn fresh_generators_do_not_repeat() {
        let a = github_classic(&mut FakeRng::fresh());
        let b = github_classic(&mut FakeRng::fresh());
        assert_ne!(a, b);
        assert!(slack_bot(&mut FakeRng::fresh()).starts_with("xoxb-"));
    }
}
