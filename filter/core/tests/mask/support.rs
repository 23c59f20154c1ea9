//! Helpers of the masking tests: fake credentials, chunked runs, format checks.

use std::sync::{Arc, OnceLock};

use gitgate_core::mask::{BodyKind, MaskReport, Masking, MaskingSection, ResponseMasker};
use gitgate_core::pktline::{self, Decoded, Pkt};
use gitgate_scan::RuleSet;

/// The built-in rules, compiled once per test binary.
pub fn rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    Arc::clone(RULES.get_or_init(|| Arc::new(RuleSet::builtin().expect("built-in rules"))))
}

/// The default masking configuration.
pub fn masking() -> &'static Masking {
    static MASKING: OnceLock<Masking> = OnceLock::new();
    MASKING.get_or_init(|| with(MaskingSection::default()))
}

/// A masking configuration from a section.
pub fn with(section: MaskingSection) -> Masking {
    Masking::with_rules(&section, rules()).expect("valid section")
}

/// Fake credentials in the vendors' formats, from a fixed seed. None was ever issued.
pub struct Fake(u64);

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const DIGITS: &[u8] = b"0123456789";

impl Fake {
    pub fn new(seed: u64) -> Fake {
        Fake(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }

    /// `ghp_` + 30 base62 + the CRC32 checksum (GitHub's token format).
    pub fn github_pat(&mut self) -> String {
        let body = self.pick(BASE62, 30);
        let checksum = gitgate_scan::validate::github_checksum(body.as_bytes());
        format!("ghp_{body}{}", String::from_utf8_lossy(&checksum))
    }

    /// `AKIA` + 16 base32 characters.
    pub fn aws_key_id(&mut self) -> String {
        format!("AKIA{}", self.pick(BASE32, 16))
    }

    /// `xoxb-` + two numbers + 24 alphanumerics.
    pub fn slack_bot(&mut self) -> String {
        format!(
            "xoxb-{}-{}-{}",
            self.pick(DIGITS, 12),
            self.pick(DIGITS, 12),
            self.pick(BASE62, 24)
        )
    }

    /// `sk_live_` + 24 alphanumerics.
    pub fn stripe(&mut self) -> String {
        format!("sk_live_{}", self.pick(BASE62, 24))
    }

    /// A password for the generic rules.
    pub fn password(&mut self) -> String {
        self.pick(BASE62, 20)
    }

    /// Random bytes, for pack data.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() >> 24) as u8).collect()
    }
}

/// Masks `body` fed in chunks of the given lengths (the rest in one), through the same
/// [`ResponseMasker`] the filter uses.
pub fn mask_in(masking: &Masking, kind: BodyKind, body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut masker = ResponseMasker::new(masking, gitgate_core::mask::ResponsePlan::Mask(kind));
    let mut out = Vec::new();
    let mut rest = body;
    for &cut in cuts {
        let (chunk, tail) = rest.split_at(cut.min(rest.len()));
        feed(&mut masker, chunk, &mut out);
        rest = tail;
    }
    feed(&mut masker, rest, &mut out);
    masker.finish(&mut out);
    out
}

fn feed(masker: &mut ResponseMasker, chunk: &[u8], out: &mut Vec<u8>) {
    let mut replacement = Vec::new();
    match masker.feed(chunk, &mut replacement) {
        gitgate_core::mask::Chunk::Unchanged => out.extend_from_slice(chunk),
        gitgate_core::mask::Chunk::Replaced => out.extend_from_slice(&replacement),
    }
}

/// Masks `body` in one chunk, with the report.
pub fn mask_whole(masking: &Masking, kind: BodyKind, body: &[u8]) -> (Vec<u8>, MaskReport) {
    let mut masker = masking.body_masker(kind);
    let mut out = Vec::new();
    masker.feed(body, &mut out);
    masker.finish(&mut out);
    (out, masker.report().clone())
}

/// Masks `body` split in two at every offset, and fed one byte at a time; every run must give
/// `expected`.
pub fn assert_every_split(masking: &Masking, kind: BodyKind, body: &[u8], expected: &[u8]) {
    assert_splits(masking, kind, body, expected, 0..=body.len());
}

/// Like [`assert_every_split`], at the given split offsets only.
pub fn assert_splits(
    masking: &Masking,
    kind: BodyKind,
    body: &[u8],
    expected: &[u8],
    splits: impl IntoIterator<Item = usize>,
) {
    for split in splits {
        let out = mask_in(masking, kind, body, &[split]);
        if out != expected {
            panic!(
                "split at {split} differs:\n{}\nexpected:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected)
            );
        }
    }
    let bytewise = mask_in(masking, kind, body, &vec![1; body.len()]);
    assert!(bytewise == expected, "one byte at a time differs");
}

/// Every offset within `radius` of an occurrence of a needle, and every `stride`-th elsewhere.
pub fn splits_near(body: &[u8], needles: &[&str], radius: usize, stride: usize) -> Vec<usize> {
    let mut splits: Vec<usize> = (0..=body.len()).step_by(stride.max(1)).collect();
    for needle in needles {
        let mut from = 0;
        while let Some(at) = find(&body[from..], needle.as_bytes()) {
            let at = from + at;
            let lo = at.saturating_sub(radius);
            let hi = (at + needle.len() + radius).min(body.len());
            splits.extend(lo..=hi);
            from = at + 1;
        }
    }
    splits.sort_unstable();
    splits.dedup();
    splits
}

/// The offset of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Asserts no secret appears in `out`.
pub fn assert_absent(out: &[u8], secrets: &[&str]) {
    for secret in secrets {
        assert!(
            find(out, secret.as_bytes()).is_none(),
            "a secret survived masking: {}",
            String::from_utf8_lossy(out)
        );
    }
}

/// A decoded packet of a pkt-line stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Data(Vec<u8>),
    Flush,
    Delim,
}

/// Decodes a whole pkt-line stream, failing the test on any framing error or leftover byte;
/// also checks every packet against `max_len` (1000 for old side-band).
pub fn packets(mut bytes: &[u8], max_len: usize) -> Vec<Packet> {
    let mut found = Vec::new();
    let mut offset = 0u64;
    while !bytes.is_empty() {
        match pktline::decode(bytes, offset) {
            Ok(Decoded::Complete { pkt, consumed }) => {
                assert!(
                    consumed <= max_len,
                    "packet of {consumed} bytes at {offset}"
                );
                found.push(match pkt {
                    Pkt::Data(payload) => Packet::Data(payload.to_vec()),
                    Pkt::Flush => Packet::Flush,
                    Pkt::Delim => Packet::Delim,
                    Pkt::ResponseEnd => panic!("response-end packet in an HTTP body"),
                });
                bytes = &bytes[consumed..];
                offset += consumed as u64;
            }
            other => panic!("bad pkt-line stream at {offset}: {other:?}"),
        }
    }
    found
}

/// The concatenated payloads of side-band `band`.
pub fn band(packets: &[Packet], band: u8) -> Vec<u8> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Data(payload) if payload.first() == Some(&band) => Some(&payload[1..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

/// A data packet.
pub fn pkt(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pktline::encode_data(payload, &mut out).expect("small payload");
    out
}

/// A side-band packet.
pub fn band_pkt(band: u8, payload: &[u8]) -> Vec<u8> {
    let mut framed = vec![band];
    framed.extend_from_slice(payload);
    pkt(&framed)
}

/// The value with every string replaced by "" (keys kept): what must not change.
pub fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(_) => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        other => other.clone(),
    }
}

/// Parses JSON, failing the test with the text when it is not.
pub fn parse_json(bytes: &[u8]) -> serde_json::Value {
    match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => panic!("not JSON ({err}):\n{}", String::from_utf8_lossy(bytes)),
    }
}

/// GitHub's layout of a base64 `content` field: lines of 60 characters, each ending in "\n".
pub fn github_base64(data: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::new();
    for line in encoded.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out
}

/// Decodes a base64 field that may hold line breaks.
pub fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine;
    let joined: String = text.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    base64::engine::general_purpose::STANDARD
        .decode(joined)
        .expect("a masked field still decodes")
}
