//! Secrets in fetched packs, on real upload-pack answers.
//!
//! Each test builds a repository with the real git client (dates, identities and configuration
//! pinned, the user's configuration ignored), plants a fake credential generated at test time
//! (a GitHub classic token with a valid CRC32 checksum, never an issued one), and has the real
//! `git upload-pack --stateless-rpc` answer a clone's request, as git-http-backend would: v0
//! with `side-band-64k`, v0 without side-band, and v2. The answer is then fed to the scan
//! whole, one byte at a time, and split in two at every offset.
//!
//! These tests run git, so they are left out of the wasm32-wasip1 run.

#![cfg(not(target_os = "wasi"))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use gitgate_core::fetch_scan::config::{FetchPolicy, FetchSection};
use gitgate_core::fetch_scan::{Ended, FetchScan, SECRET_IN_FETCH};
use gitgate_core::push_scan::SecretScanning;
use gitgate_scan::{RuleSet, fake};

/// A fake GitHub classic token made from `seed` (the format is real, the token never issued).
fn fake_github_token(seed: u64) -> String {
    fake::github_classic(&mut fake::FakeRng::new(seed))
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A repository with a work tree whose objects upload-pack serves.
struct Repo {
    scratch: Scratch,
}

impl Repo {
    fn new() -> Repo {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("gitgate-fetch-scan-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("home")).expect("scratch directory");
        let repo = Repo {
            scratch: Scratch(dir),
        };
        repo.git(&["init", "--quiet", "work"], None);
        repo
    }

    fn work(&self) -> PathBuf {
        self.scratch.0.join("work")
    }

    fn command(&self, dir: &Path) -> Command {
        let mut command = Command::new("git");
        command
            .args(["-c", "init.defaultBranch=main"])
            .current_dir(dir)
            .env("HOME", self.scratch.0.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "A U Thor")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "C O Mitter")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
        command
    }

    fn git(&self, args: &[&str], input: Option<(&[u8], &str)>) -> Vec<u8> {
        let dir = if args.first() == Some(&"init") {
            self.scratch.0.clone()
        } else {
            self.work()
        };
        let mut command = self.command(&dir);
        command.args(args);
        if let Some((_, protocol)) = input {
            command.env("GIT_PROTOCOL", protocol);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run git");
        let mut stdin = child.stdin.take().expect("stdin");
        if let Some((bytes, _)) = input {
            stdin.write_all(bytes).expect("write the request");
        }
        drop(stdin);
        let out = child.wait_with_output().expect("git ends");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn commit(&self, path: &str, contents: &[u8]) -> String {
        std::fs::write(self.work().join(path), contents).expect("write a file");
        self.git(&["add", "--", path], None);
        self.git(&["commit", "--quiet", "-m", &format!("Add {path}")], None);
        self.head()
    }

    fn head(&self) -> String {
        String::from_utf8_lossy(&self.git(&["rev-parse", "HEAD"], None))
            .trim()
            .to_owned()
    }

    /// upload-pack's answer to a clone of `HEAD` in protocol v0, with `caps` on the want.
    fn answer_v0(&self, caps: &str) -> Vec<u8> {
        let mut request = Vec::new();
        pkt(&mut request, &format!("want {} {caps}\n", self.head()));
        request.extend_from_slice(b"0000");
        pkt(&mut request, "done\n");
        let work = self.work();
        let dir = work.to_str().expect("utf-8 path");
        self.git(
            &["upload-pack", "--stateless-rpc", dir],
            Some((&request, "")),
        )
    }

    /// upload-pack's answer to a v2 `fetch` of `HEAD`.
    fn answer_v2(&self) -> Vec<u8> {
        let mut request = Vec::new();
        pkt(&mut request, "command=fetch\n");
        pkt(&mut request, "object-format=sha1\n");
        request.extend_from_slice(b"0001");
        pkt(&mut request, "ofs-delta\n");
        pkt(&mut request, &format!("want {}\n", self.head()));
        pkt(&mut request, "done\n");
        request.extend_from_slice(b"0000");
        let work = self.work();
        let dir = work.to_str().expect("utf-8 path");
        self.git(
            &["upload-pack", "--stateless-rpc", dir],
            Some((&request, "version=2")),
        )
    }
}

fn pkt(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(format!("{:04x}{text}", text.len() + 4).as_bytes());
}

fn rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    Arc::clone(RULES.get_or_init(|| Arc::new(RuleSet::builtin().expect("builtin rules"))))
}

fn settings() -> Rc<SecretScanning> {
    let policy = FetchPolicy::from_section(&FetchSection::default())
        .expect("valid")
        .expect("on");
    Rc::new(policy.scanning(rules()))
}

/// Feeds `answer` in the pieces `splits` cut it into; returns what the client gets and the end.
fn run(answer: &[u8], splits: &[usize], withhold: bool, refuse: bool) -> (Vec<u8>, Ended) {
    let mut scan = FetchScan::new(settings(), withhold);
    let mut client = Vec::new();
    let mut from = 0;
    for &to in splits.iter().chain(std::iter::once(&answer.len())) {
        let piece = &answer[from..to];
        let mut out = Vec::new();
        if scan.feed(piece, &mut out) {
            client.extend_from_slice(&out);
        } else {
            assert!(out.is_empty());
            client.extend_from_slice(piece);
        }
        from = to;
    }
    let ended = scan.finish(refuse, &mut client);
    (client, ended)
}

/// The band payloads of a side-band answer: (band 1 bytes, band 2 text, band 3 text).
fn demux(answer: &[u8]) -> (Vec<u8>, String, String) {
    let (mut one, mut two, mut three) = (Vec::new(), String::new(), String::new());
    let mut at = 0;
    while at + 4 <= answer.len() {
        let len = usize::from_str_radix(std::str::from_utf8(&answer[at..at + 4]).unwrap(), 16)
            .expect("a length prefix");
        if len < 4 {
            at += 4;
            continue;
        }
        let payload = &answer[at + 4..at + len];
        match payload.first() {
            Some(1) => one.extend_from_slice(&payload[1..]),
            Some(2) => two.push_str(&String::from_utf8_lossy(&payload[1..])),
            Some(3) => three.push_str(&String::from_utf8_lossy(&payload[1..])),
            _ => {}
        }
        at += len;
    }
    assert_eq!(at, answer.len(), "the answer ends on a packet boundary");
    (one, two, three)
}

/// Text lines, band 1 and band 2 of an answer, each as one stream.
fn streams(answer: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (mut lines, mut one, mut two) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    while at + 4 <= answer.len() {
        let len = usize::from_str_radix(std::str::from_utf8(&answer[at..at + 4]).unwrap(), 16)
            .expect("a length prefix");
        if len < 4 {
            lines.extend_from_slice(&answer[at..at + 4]);
            at += 4;
            continue;
        }
        let payload = &answer[at + 4..at + len];
        match payload.first() {
            Some(1) => one.extend_from_slice(&payload[1..]),
            Some(2 | 3) => two.extend_from_slice(&payload[1..]),
            _ => lines.extend_from_slice(payload),
        }
        at += len;
    }
    assert_eq!(at, answer.len(), "the answer ends on a packet boundary");
    (lines, one, two)
}

fn secret_repo(seed: u64) -> (Repo, String) {
    let repo = Repo::new();
    repo.commit("README.md", b"# demo\n");
    let secret = fake_github_token(seed);
    repo.commit(
        "deploy.env",
        format!("user = ci\nTOKEN={secret}\n").as_bytes(),
    );
    (repo, secret)
}

#[test]
fn a_secret_in_a_fetched_blob_is_found_with_its_rule_path_and_line() {
    let (repo, secret) = secret_repo(1);
    let answer = repo.answer_v0("side-band-64k ofs-delta");
    let (client, ended) = run(&answer, &[], false, false);
    assert_eq!(client, answer, "the answer passes unchanged");
    assert!(!ended.refused);
    let report = &ended.report;
    assert_eq!(report.findings.len(), 1, "{report:?}");
    let finding = &report.findings[0];
    assert_eq!(finding.rule, "github-pat-classic");
    assert_eq!(finding.kind.as_deref(), Some("blob"));
    assert_eq!(finding.line, Some(2));
    assert_eq!(finding.path.as_deref(), Some("deploy.env"));
    assert_eq!(finding.commit.as_deref(), Some(repo.head().as_str()));
    assert_eq!(report.pack.objects, 6, "2 commits, 2 trees, 2 blobs");
    assert_eq!(report.pack.bytes, demux(&answer).0.len() as u64);
    assert!(report.error.is_none(), "{report:?}");
    let logged = format!("{:?} {}", ended.log_lines, report.summary());
    assert!(!logged.contains(&secret), "{logged}");
    assert!(logged.contains("deploy.env"), "{logged}");
}

#[test]
fn the_v2_packfile_section_and_a_pack_without_side_band_are_scanned_too() {
    let (repo, _secret) = secret_repo(2);
    for answer in [repo.answer_v2(), repo.answer_v0("ofs-delta")] {
        let (client, ended) = run(&answer, &[], false, false);
        assert_eq!(client, answer);
        assert_eq!(ended.report.findings.len(), 1, "{:?}", ended.report);
        assert!(ended.report.error.is_none(), "{:?}", ended.report);
    }
}

#[test]
fn a_withheld_clean_answer_reaches_the_client_byte_for_byte_at_every_split() {
    let repo = Repo::new();
    repo.commit("README.md", b"# nothing to see\n");
    for answer in [repo.answer_v0("side-band-64k ofs-delta"), repo.answer_v2()] {
        let (client, ended) = run(&answer, &[], true, true);
        assert_eq!(client, answer);
        assert!(!ended.refused && ended.report.findings.is_empty());
        let bytes: Vec<usize> = (1..answer.len()).collect();
        let (client, _) = run(&answer, &bytes, true, true);
        assert_eq!(client, answer, "one byte at a time");
        for split in 1..answer.len() {
            let (client, ended) = run(&answer, &[split], true, true);
            assert_eq!(client, answer, "split at {split}");
            assert!(!ended.refused, "split at {split}");
        }
    }
}

#[test]
fn a_refused_fetch_never_completes_the_pack_and_ends_in_a_band_3_message() {
    let (repo, secret) = secret_repo(3);
    for answer in [repo.answer_v0("side-band-64k ofs-delta"), repo.answer_v2()] {
        let (pack, _, _) = demux(&answer);
        for split in (1..answer.len()).step_by(7) {
            let (client, ended) = run(&answer, &[split], true, true);
            assert!(ended.refused, "split at {split}");
            let (sent, progress, error) = demux(&client);
            assert!(
                pack.starts_with(&sent) && pack.len() - sent.len() >= 64,
                "split at {split}: {} of {} pack bytes sent",
                sent.len(),
                pack.len()
            );
            assert!(error.starts_with(SECRET_IN_FETCH), "{error}");
            assert!(
                progress.contains("gitgate: fetch refused: 1 secret"),
                "{progress}"
            );
            assert!(progress.contains("deploy.env"), "{progress}");
            assert!(!format!("{progress}{error}").contains(&secret));
            assert!(!client.ends_with(b"0000"), "no flush after the refusal");
        }
    }
}

#[test]
fn the_same_secret_passes_for_an_identity_the_policy_does_not_refuse() {
    let (repo, _secret) = secret_repo(4);
    let answer = repo.answer_v0("side-band-64k ofs-delta");
    let (client, ended) = run(&answer, &[100], true, false);
    assert_eq!(client, answer);
    assert!(!ended.refused);
    assert_eq!(ended.report.findings.len(), 1);
}

#[test]
fn a_refused_fetch_without_side_band_is_cut_before_the_pack_ends() {
    let (repo, _secret) = secret_repo(5);
    let answer = repo.answer_v0("ofs-delta");
    let (client, ended) = run(&answer, &[50], true, true);
    assert!(ended.refused);
    assert!(answer.starts_with(&client));
    assert!(answer.len() - client.len() >= 64);
}

#[test]
fn withholding_holds_at_most_the_last_packets_of_a_large_pack() {
    let repo = Repo::new();
    // Incompressible bytes: the pack is as large as the file.
    let mut noise = Vec::with_capacity(1 << 20);
    let mut state = 0x1234_5678_u64;
    while noise.len() < 1 << 20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        noise.extend_from_slice(&state.to_le_bytes());
    }
    repo.commit("noise.bin", &noise);
    let answer = repo.answer_v0("side-band-64k ofs-delta");
    let mut scan = FetchScan::new(settings(), true);
    let mut most = 0;
    let mut client = Vec::new();
    for piece in answer.chunks(16 * 1024) {
        let mut out = Vec::new();
        assert!(scan.feed(piece, &mut out));
        client.extend_from_slice(&out);
        most = most.max(scan.held_len());
    }
    assert!(most <= 2 * 65520 + 64, "held {most} bytes");
    let ended = scan.finish(true, &mut client);
    assert!(!ended.refused);
    assert_eq!(client, answer);
}

#[test]
fn bytes_that_are_not_pkt_lines_pass_and_are_reported_without_a_panic() {
    for garbage in [
        &b"zzzz not a packet"[..],
        b"0003",
        b"fff1\x01",
        b"0009\x01PACK",
        b"000a\x01PACK\0\0\0\x09",
        b"0011\x01PACK\0\0\0\x02\xff\xff\xff\xff",
    ] {
        let (client, ended) = run(garbage, &[1], true, true);
        if ended.refused {
            // A pack that cannot be read is not let through to a refused identity.
            assert!(ended.report.error.is_some(), "{garbage:?}");
        } else {
            assert_eq!(client, garbage, "{garbage:?}");
        }
    }
}

#[test]
fn masking_and_scanning_a_large_answer_leave_it_byte_for_byte_at_any_chunking() {
    use gitgate_core::mask::{Chunk, Masking, MaskingSection, ResponseMasker};
    let repo = Repo::new();
    let mut noise = Vec::with_capacity(3 << 20);
    let mut state = 0x9876_5432_u64;
    while noise.len() < 3 << 20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        noise.extend_from_slice(&state.to_le_bytes());
    }
    repo.commit("noise.bin", &noise);
    let masking = Masking::with_rules(&MaskingSection::default(), rules()).expect("masking");
    for answer in [repo.answer_v2(), repo.answer_v0("side-band-64k ofs-delta")] {
        let mut sizes = 0x5eed_u64;
        for round in 0..4 {
            let plan = masking.plan(Some("application/x-git-upload-pack-result"), None);
            let mut masker = ResponseMasker::new(&masking, plan);
            let mut scan = FetchScan::new(settings(), round % 2 == 1);
            let mut client = Vec::new();
            let mut at = 0;
            while at < answer.len() {
                sizes = sizes.wrapping_mul(6364136223846793005).wrapping_add(1);
                let len = 1 + (sizes >> 33) as usize % (70_000 >> (round * 3));
                let piece = &answer[at..(at + len).min(answer.len())];
                at += piece.len();
                let mut out = Vec::new();
                let masked = match masker.feed(piece, &mut out) {
                    Chunk::Unchanged => piece.to_vec(),
                    Chunk::Replaced => out,
                };
                let mut guarded = Vec::new();
                if scan.feed(&masked, &mut guarded) {
                    client.extend_from_slice(&guarded);
                } else {
                    client.extend_from_slice(&masked);
                }
            }
            let mut tail = Vec::new();
            masker.finish(&mut tail);
            let mut guarded = Vec::new();
            if scan.feed(&tail, &mut guarded) {
                client.extend_from_slice(&guarded);
            } else {
                client.extend_from_slice(&tail);
            }
            let ended = scan.finish(true, &mut client);
            assert!(!ended.refused);
            // The masker lets band 1 pass while it holds band-2 text (git reads each band as
            // a stream of its own), so the order of the bands may change, never their bytes.
            assert!(client.starts_with(b"000dpackfile\n") == answer.starts_with(b"000dpackfile\n"));
            assert_eq!(streams(&client), streams(&answer), "round {round}");
        }
    }
}
