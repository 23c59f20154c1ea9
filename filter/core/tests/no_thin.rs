//! `no-thin` added to real receive-pack advertisements, as `git http-backend` writes them, fed
//! whole, one byte at a time and split in two at every offset.
//!
//! These tests run git, so they are left out of the wasm32-wasip1 run.

#![cfg(not(target_os = "wasi"))]

use std::path::Path;
use std::process::Command;

use gitgate_core::no_thin::{NoThin, Outcome};

/// Runs `git` with the user's configuration ignored and identities pinned.
fn git(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "A U Thor")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A directory removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("gitgate-no-thin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

/// The body `git http-backend` answers `GET /<repo>/info/refs?service=git-receive-pack` with
/// (its CGI headers cut off).
fn advertisement(root: &Path, repo: &str) -> Vec<u8> {
    let out = Command::new("git")
        .args(["-c", "http.receivepack=true", "http-backend"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/{repo}/info/refs"))
        .env("QUERY_STRING", "service=git-receive-pack")
        .env("REQUEST_METHOD", "GET")
        .output()
        .expect("run git http-backend");
    let end = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("CGI headers");
    let body = out.stdout[end + 4..].to_vec();
    assert!(
        body.starts_with(b"001f# service=git-receive-pack\n0000"),
        "{body:?}"
    );
    body
}

fn rewrite(body: &[u8], cuts: &[usize]) -> (Vec<u8>, Outcome) {
    let mut rewriter = NoThin::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &cut in cuts.iter().chain([&body.len()]) {
        rewriter.feed(&body[at..cut], &mut out);
        at = cut;
    }
    rewriter.finish(&mut out);
    (out, rewriter.outcome())
}

/// Checks the rewrite at every split, and that the result is the advertisement with
/// ` no-thin` at the end of the first ref line's capabilities, its length eight more.
fn check(body: &[u8]) -> Vec<u8> {
    let (whole, outcome) = rewrite(body, &[]);
    assert_eq!(outcome, Outcome::Added);
    assert_eq!(whole.len(), body.len() + b" no-thin".len());
    for cut in 0..=body.len() {
        assert_eq!(
            rewrite(body, &[cut]),
            (whole.clone(), Outcome::Added),
            "split at {cut}"
        );
    }
    let bytewise: Vec<usize> = (1..body.len()).collect();
    assert_eq!(rewrite(body, &bytewise), (whole.clone(), Outcome::Added));
    // Fed again, the rewritten advertisement is left as it is.
    assert_eq!(rewrite(&whole, &[]), (whole.clone(), Outcome::Present));
    whole
}

/// The first ref line's payload and the rest of the body after it.
fn first_ref_line(body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let rest = &body[b"001f# service=git-receive-pack\n0000".len()..];
    let len = usize::from_str_radix(std::str::from_utf8(&rest[..4]).unwrap(), 16).unwrap();
    (rest[4..len].to_vec(), rest[len..].to_vec())
}

#[test]
fn the_advertisement_of_a_repository_with_refs_gets_no_thin() {
    let dir = scratch("refs");
    git(&dir.0, &["init", "--quiet", "--bare", "full.git"]);
    git(&dir.0, &["init", "--quiet", "work"]);
    let work = dir.0.join("work");
    git(
        &work,
        &["commit", "--quiet", "--allow-empty", "-m", "first"],
    );
    git(
        &work,
        &[
            "push",
            "--quiet",
            "../full.git",
            "HEAD:refs/heads/main",
            "HEAD:refs/heads/dev",
        ],
    );
    let body = advertisement(&dir.0, "full.git");
    let out = check(&body);

    let (before, before_rest) = first_ref_line(&body);
    let (after, after_rest) = first_ref_line(&out);
    assert_eq!(after_rest, before_rest, "only the first ref line changes");
    let before = String::from_utf8(before).unwrap();
    let after = String::from_utf8(after).unwrap();
    assert_eq!(after, before.replace('\n', " no-thin\n"));
    assert!(
        after.contains("report-status") && after.ends_with(" no-thin\n"),
        "{after}"
    );
}

#[test]
fn the_advertisement_of_an_empty_repository_gets_no_thin_on_its_capabilities_line() {
    let dir = scratch("empty");
    git(&dir.0, &["init", "--quiet", "--bare", "empty.git"]);
    let body = advertisement(&dir.0, "empty.git");
    let out = check(&body);
    let (after, rest) = first_ref_line(&out);
    let after = String::from_utf8(after).unwrap();
    assert!(
        after.starts_with(&format!("{} capabilities^{{}}\0", "0".repeat(40))),
        "{after}"
    );
    assert!(after.ends_with(" no-thin\n"), "{after}");
    assert_eq!(rest, b"0000");
}
