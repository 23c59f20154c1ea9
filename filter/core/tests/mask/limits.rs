//! Large bodies: output follows input with a bounded lag, whatever the size, and secrets far
//! into a body are still masked.

use gitgate_core::mask::{BodyKind, GitBody};

use crate::support::{Fake, assert_absent, band_pkt, github_base64, masking, parse_json, rules};

/// Feeds `body` in 64 KiB chunks and returns the output and the largest lag (bytes fed but not
/// yet written) seen after any chunk.
fn stream(kind: BodyKind, body: &[u8]) -> (Vec<u8>, usize) {
    let mut masker = masking().body_masker(kind);
    let mut out = Vec::new();
    let mut fed = 0usize;
    let mut lag = 0usize;
    for chunk in body.chunks(64 * 1024) {
        masker.feed(chunk, &mut out);
        fed += chunk.len();
        lag = lag.max(fed.saturating_sub(out.len()));
    }
    masker.finish(&mut out);
    (out, lag)
}

fn text_with_secrets(fake: &mut Fake, len: usize, every: usize) -> (String, Vec<String>) {
    let mut text = String::with_capacity(len + 64);
    let mut secrets = Vec::new();
    let mut line = 0;
    while text.len() < len {
        if text.len() / every > secrets.len() {
            let secret = fake.github_pat();
            text.push_str(&format!("token = {secret}\n"));
            secrets.push(secret);
        }
        text.push_str(&format!(
            "{line}: the quick brown fox jumps over the lazy dog\n"
        ));
        line += 1;
    }
    (text, secrets)
}

#[test]
fn a_large_text_body_streams_with_a_bounded_lag() {
    let mut fake = Fake::new(60);
    let (text, secrets) = text_with_secrets(&mut fake, 3 << 20, 97 * 1024);
    let (out, lag) = stream(BodyKind::Text, text.as_bytes());
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_absent(&out, &refs);
    assert!(lag <= rules().carry_len() + 1024, "lag {lag}");
    let masks = out.windows(8).filter(|w| w == b"ghp_****").count();
    assert_eq!(masks, secrets.len());
}

#[test]
fn a_large_json_string_streams_with_a_bounded_lag() {
    let mut fake = Fake::new(61);
    let (text, secrets) = text_with_secrets(&mut fake, 3 << 20, 131 * 1024);
    let body = serde_json::to_vec(&serde_json::json!({"body": text, "n": 1})).expect("json");
    let (out, lag) = stream(BodyKind::Json, &body);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_absent(&out, &refs);
    assert!(lag <= rules().carry_len() + 4096, "lag {lag}");
    parse_json(&out);
}

#[test]
fn a_large_base64_field_streams_with_a_bounded_lag() {
    let mut fake = Fake::new(62);
    let (text, secrets) = text_with_secrets(&mut fake, 2 << 20, 101 * 1024);
    let content = github_base64(text.as_bytes());
    let body = serde_json::to_vec(&serde_json::json!({"type": "file", "encoding": "base64",
        "content": content}))
    .expect("json");
    let (out, lag) = stream(BodyKind::Json, &body);
    assert!(lag <= 64 * 1024, "lag {lag}");
    let value = parse_json(&out);
    let decoded = crate::support::decode_base64(value["content"].as_str().expect("string"));
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_absent(&decoded, &refs);
    assert_eq!(
        decoded.windows(8).filter(|w| w == b"ghp_****").count(),
        secrets.len()
    );
}

#[test]
fn a_large_fetch_answer_streams_its_pack_at_once() {
    let mut fake = Fake::new(63);
    let mut body = b"0008NAK\n".to_vec();
    let mut secrets = Vec::new();
    for i in 0..64 {
        body.extend(band_pkt(1, &fake.bytes(65515)));
        if i % 8 == 0 {
            let secret = fake.github_pat();
            body.extend(band_pkt(2, format!("remote: {secret}\n").as_bytes()));
            secrets.push(secret);
        }
    }
    body.extend(b"0000");
    let (out, lag) = stream(BodyKind::Git(GitBody::UploadPackResult), &body);
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_absent(&out, &refs);
    // Only held band-2 text trails the input; pack data never waits.
    assert!(lag <= 16 * 1024, "lag {lag}");
}
