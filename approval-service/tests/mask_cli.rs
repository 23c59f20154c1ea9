//! `gitgate mask` as a process: standard input masked to standard output, the summary on
//! standard error, never the value.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `gitgate mask` with `args` on `input`; returns standard output and standard error.
fn run(args: &[&str], input: &[u8]) -> (Vec<u8>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitgate"))
        .arg("mask")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("gitgate starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("input written");
    let output = child.wait_with_output().expect("gitgate ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A GitHub-format token made up for this test (valid checksum, never issued).
fn token() -> String {
    let body = "0123456789abcdefghijABCDEFGHIJ";
    let checksum = github_checksum(body.as_bytes());
    format!("ghp_{body}{checksum}")
}

/// GitHub's token checksum: CRC32 of the body in six base62 digits.
fn github_checksum(body: &[u8]) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut crc = 0xffff_ffffu32;
    for &byte in body {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    let mut value = !crc;
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_json_body_is_masked_on_standard_output() {
    let token = token();
    let body = format!(r#"{{"body": "my token: {token}", "number": 1}}"#);
    let (out, err) = run(
        &["--content-type", "application/json", "--chunk-size", "5"],
        body.as_bytes(),
    );
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        r#"{"body": "my token: ghp_****[gitgate:github-pat-classic]", "number": 1}"#
    );
    assert!(err.contains("masked 1 secret(s) in a json body"), "{err}");
    assert!(err.contains("github-pat-classic (fingerprint "), "{err}");
    assert!(!err.contains(&token));
}

#[test]
fn a_push_answer_is_masked_in_its_side_band() {
    let token = token();
    let text = format!("\x02remote: {token}\n");
    let body = format!("{:04x}{text}0000", text.len() + 4);
    let (out, _) = run(
        &["--content-type", "application/x-git-receive-pack-result"],
        body.as_bytes(),
    );
    let masked = "\x02remote: ghp_****[gitgate:github-pat-classic]\n";
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        format!("{:04x}{masked}0000", masked.len() + 4)
    );
}

#[test]
fn a_compressed_body_gives_the_notice_and_an_unlisted_type_passes() {
    let (out, err) = run(
        &["--content-type", "text/plain", "--content-encoding", "gzip"],
        b"\x1f\x8b\x08\x00",
    );
    assert!(out.starts_with(b"gitgate: response withheld"));
    assert!(err.contains("replaced by a notice"), "{err}");
    let (out, _) = run(&["--content-type", "image/png", "--quiet"], b"\x89PNG");
    assert_eq!(out, b"\x89PNG");
}
