//! Secret push protection on the bodies of real pushes.
//!
//! Each test builds a repository with the real git client (dates, identities and configuration
//! pinned, the user's configuration ignored), plants a fake credential generated at test time
//! (a GitHub classic token with a valid CRC32 checksum, never an issued one), and captures the
//! receive-pack request body of `git push` through a wrapper that copies its standard input to
//! a file, as `fixtures/make-fixtures.sh` does. The body is then fed to the scan and to the
//! gate: whole, one byte at a time, and split in two at every offset.
//!
//! These tests run git, so they are left out of the wasm32-wasip1 run.

#![cfg(not(target_os = "wasi"))]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use gitgate_core::api::{Identity, RefVerdict, VerdictRequest, VerdictResponse};
use gitgate_core::config::FailureMode;
use gitgate_core::decision::CalloutResult;
use gitgate_core::gate::{BodyAction, BodyEncoding, Outcome, PushGate, PushMeta, ResumeAction};
use gitgate_core::object::ObjectKind;
use gitgate_core::push_scan::{
    LimitHit, OnLimit, PushScan, ScanLimits, ScanReport, SecretScanning,
};
use gitgate_core::receive_pack::{CommandSection, Parser, Progress};
use gitgate_scan::RuleSet;

// ---- fake secrets ---------------------------------------------------------------------------

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A GitHub classic token (`ghp_` + 30 random base62 characters + their CRC32 in base62), made
/// from `seed`: the format is real, the token was never issued.
fn fake_github_token(seed: u64) -> String {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let body: String = (0..30)
        .map(|_| char::from(BASE62[(next() % 62) as usize]))
        .collect();
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
    let mut checksum = [b'0'; 6];
    for slot in checksum.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    format!("ghp_{body}{}", String::from_utf8_lossy(&checksum))
}

// ---- repositories and captured pushes -------------------------------------------------------

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> Scratch {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("gitgate-push-scan-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    Scratch(dir)
}

/// A work tree, a bare repository to push to, and the wrapper that captures what git sends.
struct Repo {
    scratch: Scratch,
    work: PathBuf,
    bare: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let scratch = scratch();
        let root = scratch.0.clone();
        std::fs::create_dir_all(root.join("home")).expect("home");
        let wrapper = root.join("capture-receive-pack");
        std::fs::write(
            &wrapper,
            "#!/bin/sh\ntee \"$CAPTURE\" | git-receive-pack \"$@\"\n",
        )
        .expect("write the wrapper");
        let chmod = Command::new("chmod")
            .arg("+x")
            .arg(&wrapper)
            .status()
            .expect("chmod");
        assert!(chmod.success());
        let repo = Repo {
            work: root.join("work"),
            bare: root.join("bare.git"),
            scratch,
        };
        repo.git(&root, &["init", "--quiet", "--bare", "bare.git"]);
        repo.git(
            &repo.bare,
            &["config", "receive.advertisePushOptions", "true"],
        );
        repo.git(&root, &["init", "--quiet", "work"]);
        repo
    }

    fn git(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "init.defaultBranch=main", "-c", "protocol.version=0"])
            .args(args)
            .current_dir(dir)
            .env("HOME", self.scratch.0.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "A U Thor")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "C O Mitter")
            .env("GIT_COMMITTER_EMAIL", "committer@example.com")
            .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn work_git(&self, args: &[&str]) -> String {
        self.git(&self.work, args)
    }

    /// Writes `path` and commits it with `message`; returns the commit id.
    fn commit(&self, path: &str, contents: &str, message: &str) -> String {
        let file = self.work.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create directories");
        }
        std::fs::write(&file, contents).expect("write a file");
        self.work_git(&["add", "--", path]);
        self.work_git(&["commit", "--quiet", "-m", message]);
        self.work_git(&["rev-parse", "HEAD"])
    }

    /// Writes `path` with `bytes` and commits it; returns the commit id.
    fn commit_bytes(&self, path: &str, bytes: &[u8], message: &str) -> String {
        std::fs::write(self.work.join(path), bytes).expect("write a file");
        self.work_git(&["add", "--", path]);
        self.work_git(&["commit", "--quiet", "-m", message]);
        self.work_git(&["rev-parse", "HEAD"])
    }

    /// Pushes with `args` and returns the body git sent to receive-pack.
    fn push(&self, args: &[&str]) -> Vec<u8> {
        let capture = self.scratch.0.join("capture.bin");
        let wrapper = self.scratch.0.join("capture-receive-pack");
        let out = Command::new("git")
            .args(["-c", "protocol.version=0", "push", "--quiet"])
            .arg(format!("--receive-pack={}", wrapper.display()))
            .arg(&self.bare)
            .args(args)
            .current_dir(&self.work)
            .env("CAPTURE", &capture)
            .env("HOME", self.scratch.0.join("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .expect("run git push");
        assert!(
            out.status.success(),
            "git push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(&capture).expect("read the captured body")
    }
}

/// A text file large enough for git to store a changed version as a delta.
fn big_text(tag: &str) -> String {
    (0..300)
        .map(|i| format!("line {i} of a configuration file that changes a little ({tag})\n"))
        .collect()
}

fn section_of(body: &[u8]) -> CommandSection {
    let mut parser = Parser::default();
    let Ok(Progress::Complete { .. }) = parser.feed(body) else {
        panic!("a complete command section");
    };
    parser.section().expect("complete")
}

// ---- scanning ---------------------------------------------------------------------------------

fn rules() -> Arc<RuleSet> {
    static RULES: OnceLock<Arc<RuleSet>> = OnceLock::new();
    Arc::clone(RULES.get_or_init(|| Arc::new(RuleSet::builtin().expect("built-in rules"))))
}

fn settings() -> Rc<SecretScanning> {
    Rc::new(SecretScanning::with_defaults(rules()))
}

/// Scans the pack of `body`, fed in `pieces` (offsets into the whole body).
fn scan_pieces(settings: Rc<SecretScanning>, body: &[u8], cuts: &[usize]) -> ScanReport {
    let section = section_of(body);
    let start = section.end_offset as usize;
    let mut scan = PushScan::new(settings, section.object_format, section.end_offset);
    let mut at = start;
    for &cut in cuts.iter().filter(|&&c| c > start).chain([&body.len()]) {
        scan.feed(&body[at..cut]).expect("a valid pack");
        at = cut;
    }
    scan.finish().expect("a complete pack")
}

fn scan(body: &[u8]) -> ScanReport {
    scan_pieces(settings(), body, &[])
}

/// Scans `body` split at every offset (at a stride in the middle of packs over 4 KB), and one
/// byte at a time, and checks every run agrees.
fn scan_every_split(body: &[u8]) -> ScanReport {
    let whole = scan(body);
    let start = section_of(body).end_offset as usize;
    let stride = if body.len() - start > 4096 { 7 } else { 1 };
    let cuts = (start..=body.len()).filter(|&at| {
        at < start + 300 || at + 100 > body.len() || (at - start).is_multiple_of(stride)
    });
    for cut in cuts {
        assert_eq!(
            scan_pieces(settings(), body, &[cut]),
            whole,
            "split at {cut}"
        );
    }
    let bytewise: Vec<usize> = (start..body.len()).collect();
    assert_eq!(
        scan_pieces(settings(), body, &bytewise),
        whole,
        "byte by byte"
    );
    whole
}

#[test]
fn a_secret_in_a_new_file_is_found_with_its_blob_line_path_and_commit() {
    let repo = Repo::new();
    let token = fake_github_token(1);
    repo.commit("README.md", "# demo\n", "Initial commit");
    let text = format!("# settings\nuser = deploy\nGITHUB_TOKEN={token}\n");
    let head = repo.commit("config/app.env", &text, "Add the app settings");
    let blob = repo.work_git(&["rev-parse", "HEAD:config/app.env"]);
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let finding = &report.findings[0];
    assert_eq!(&*finding.rule, "github-pat-classic");
    assert_eq!(finding.kind, Some(ObjectKind::Blob));
    assert_eq!(finding.id.map(|id| id.to_string()), Some(blob));
    assert_eq!(finding.line, Some(3));
    assert_eq!(finding.column, Some(14));
    assert_eq!(finding.path.as_deref(), Some("config/app.env"));
    assert_eq!(finding.commit.map(|id| id.to_string()), Some(head));
    assert!(report.limits.is_empty());
    assert!(
        !format!("{report:?}").contains(&token),
        "the report holds no value"
    );
}

#[test]
fn a_secret_in_a_commit_message_is_found_with_its_message_line() {
    let repo = Repo::new();
    let token = fake_github_token(2);
    repo.commit("a.txt", "a\n", "Initial commit");
    let message = format!("Fix the deployment\n\nIt needed the token {token} to run.\n");
    let head = repo.commit("b.txt", "b\n", &message);
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let finding = &report.findings[0];
    assert_eq!(finding.kind, Some(ObjectKind::Commit));
    assert_eq!(finding.id.map(|id| id.to_string()), Some(head.clone()));
    assert_eq!(finding.commit.map(|id| id.to_string()), Some(head.clone()));
    assert_eq!(finding.message_line, Some(3));
    // tree, parent, author, committer, the empty line, then the message.
    assert_eq!(finding.line, Some(4 + 1 + 3));
    let shown = repo.work_git(&["cat-file", "-p", &head]);
    let line = shown.lines().nth(7).expect("line 8");
    assert!(line.contains("ghp_"), "{line}");
}

#[test]
fn a_secret_added_to_a_modified_file_is_found_in_the_thin_delta() {
    let repo = Repo::new();
    let token = fake_github_token(3);
    repo.commit("settings.txt", &big_text("one"), "Add the settings");
    repo.push(&["main"]);
    let old_blob = repo.work_git(&["rev-parse", "HEAD:settings.txt"]);
    let mut text = big_text("one");
    text.insert_str(4000, &format!("api_token = {token}\n"));
    repo.commit("settings.txt", &text, "Change the settings");
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let finding = &report.findings[0];
    assert_eq!(&*finding.rule, "github-pat-classic");
    // The server has the old version, so git sent only a delta against it: its inserted bytes
    // are scanned, the new id is not known.
    assert_eq!(finding.kind, None);
    assert_eq!(finding.delta_base.map(|id| id.to_string()), Some(old_blob));
    let at = text.find("ghp_").expect("planted") as u64;
    assert_eq!(finding.offset, at);
}

#[test]
fn a_secret_in_a_file_changed_twice_in_one_push_is_found_in_the_rebuilt_object() {
    let repo = Repo::new();
    let token = fake_github_token(4);
    repo.commit("README.md", "# demo\n", "Initial commit");
    repo.push(&["main"]);
    repo.commit("settings.txt", &big_text("one"), "Add the settings");
    let mut text = big_text("one");
    text.insert_str(4000, &format!("api_token = {token}\n"));
    let head = repo.commit("settings.txt", &text, "Change the settings");
    let blob = repo.work_git(&["rev-parse", "HEAD:settings.txt"]);
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    let blob_findings: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.id.map(|id| id.to_string()).as_deref() == Some(blob.as_str()))
        .collect();
    assert_eq!(blob_findings.len(), 1, "{report:#?}");
    let finding = blob_findings[0];
    let line = text[..text.find("ghp_").expect("planted")]
        .matches('\n')
        .count() as u64
        + 1;
    assert_eq!(finding.line, Some(line));
    assert_eq!(finding.path.as_deref(), Some("settings.txt"));
    assert_eq!(finding.commit.map(|id| id.to_string()), Some(head));
}

#[test]
fn a_secret_stored_as_text_in_a_binary_file_is_found_with_its_offset() {
    let repo = Repo::new();
    let token = fake_github_token(11);
    let mut bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    bytes[10] = 0;
    let at = 12_345;
    let planted = format!("\0key={token};\0");
    bytes[at..at + planted.len()].copy_from_slice(planted.as_bytes());
    let head = repo.commit_bytes("app.bin", &bytes, "Add a binary");
    let blob = repo.work_git(&["rev-parse", "HEAD:app.bin"]);
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    let finding = &report.findings[0];
    assert_eq!(finding.kind, Some(ObjectKind::Blob));
    assert_eq!(finding.id.map(|id| id.to_string()), Some(blob));
    assert_eq!(finding.line, None, "a binary has no lines");
    assert_eq!(finding.offset, (at + 5) as u64);
    assert_eq!(finding.path.as_deref(), Some("app.bin"));
    assert_eq!(finding.commit.map(|id| id.to_string()), Some(head));
}

#[test]
fn a_clean_push_has_no_findings() {
    let repo = Repo::new();
    repo.commit("README.md", "# demo\n", "Initial commit");
    repo.commit("settings.txt", &big_text("clean"), "Add the settings");
    let report = scan_every_split(&repo.push(&["main"]));
    assert_eq!(report.findings, []);
    assert!(report.objects >= 4, "{report:#?}");
}

#[test]
fn limits_are_typed_and_stop_the_scan_where_they_say() {
    let repo = Repo::new();
    let token = fake_github_token(5);
    let mut text = big_text("large");
    text.push_str(&format!("GITHUB_TOKEN={token}\n"));
    repo.commit("settings.txt", &text, "Add the settings");
    let body = repo.push(&["main"]);

    let small_objects = ScanLimits {
        max_object_bytes: 1000,
        ..ScanLimits::default()
    };
    let settings =
        Rc::new(SecretScanning::with_defaults(rules()).limited(small_objects, OnLimit::Block));
    let report = scan_pieces(settings, &body, &[]);
    assert!(report.findings.is_empty(), "the secret is past the limit");
    let blob = repo.work_git(&["rev-parse", "HEAD:settings.txt"]);
    assert!(
        report.limits.iter().any(|hit| matches!(hit,
            LimitHit::ObjectTooLarge { id: Some(id), max: 1000, .. } if id.to_string() == blob)),
        "{:?}",
        report.limits
    );

    let small_push = ScanLimits {
        max_push_bytes: 100,
        ..ScanLimits::default()
    };
    let settings =
        Rc::new(SecretScanning::with_defaults(rules()).limited(small_push, OnLimit::Block));
    let report = scan_pieces(settings, &body, &[]);
    assert!(
        report
            .limits
            .iter()
            .any(|hit| matches!(hit, LimitHit::PushTooLarge { max: 100, .. })),
        "{:?}",
        report.limits
    );
    assert!(report.scanned_bytes <= 100);
}

#[test]
fn findings_stop_at_their_cap() {
    let repo = Repo::new();
    let text: String = (0..20)
        .map(|i| format!("token_{i} = {}\n", fake_github_token(100 + i)))
        .collect();
    repo.commit("many.env", &text, "Add many tokens");
    let body = repo.push(&["main"]);
    let limits = ScanLimits {
        max_findings: 5,
        ..ScanLimits::default()
    };
    let settings = Rc::new(SecretScanning::with_defaults(rules()).limited(limits, OnLimit::Block));
    let report = scan_pieces(settings, &body, &[]);
    assert_eq!(report.findings.len(), 5);
    assert!(report.findings_capped);
}

// ---- the gate -------------------------------------------------------------------------------

fn meta() -> PushMeta {
    PushMeta {
        request_id: "req-secrets".into(),
        repository: "demo.git".into(),
        identity: Some(Identity {
            subject: "agent-7".into(),
            agent: true,
            ..Identity::default()
        }),
    }
}

fn gate(settings: Rc<SecretScanning>, mode: FailureMode) -> PushGate {
    PushGate::new(meta(), BodyEncoding::Identity, mode).scanning(settings)
}

/// Feeds `body` in `size`-byte chunks, answering the callout with `answer` as soon as it is
/// made, then ends the body as Envoy does on HTTP/1.1. Returns the forwarded bytes, the final
/// action and the callouts.
fn run(
    gate: &mut PushGate,
    body: &[u8],
    size: usize,
    answer: Option<&[u8]>,
) -> (Vec<u8>, BodyAction, Vec<VerdictRequest>) {
    let mut requests = Vec::new();
    let mut forwarded = Vec::new();
    for chunk in body.chunks(size.max(1)) {
        let before = requests.len();
        let action = gate.on_body(chunk, false, &mut |r: &VerdictRequest| {
            requests.push(r.clone());
            true
        });
        match action {
            BodyAction::Forward(bytes) => forwarded.extend(bytes),
            other => panic!("unexpected {other:?} mid-body"),
        }
        if requests.len() > before
            && let Some(answer) = answer
        {
            let result = CalloutResult::Response {
                status: Some(200),
                body: answer,
            };
            assert_eq!(gate.on_callout(result), ResumeAction::Nothing);
        }
    }
    let last = gate.on_body(b"", true, &mut |r: &VerdictRequest| {
        requests.push(r.clone());
        true
    });
    (forwarded, last, requests)
}

fn allow(reviewed: bool) -> Vec<u8> {
    serde_json::to_vec(&VerdictResponse {
        verdicts: vec![RefVerdict::Allow],
        findings_reviewed: reviewed,
    })
    .expect("json")
}

fn text_of(action: &BodyAction) -> String {
    match action {
        BodyAction::Respond(body) => String::from_utf8_lossy(body).into_owned(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn push_with_secret_in_a_new_file() -> (Repo, String, Vec<u8>) {
    let repo = Repo::new();
    let token = fake_github_token(6);
    repo.commit("README.md", "# demo\n", "Initial commit");
    repo.commit(
        "config/app.env",
        &format!("GITHUB_TOKEN={token}\n"),
        "Add it",
    );
    let body = repo.push(&["main"]);
    (repo, token, body)
}

#[test]
fn a_push_with_a_secret_is_refused_for_every_ref_even_after_an_early_allow() {
    let (repo, token, body) = push_with_secret_in_a_new_file();
    let blob = repo.work_git(&["rev-parse", "HEAD:config/app.env"]);
    for size in [1, 100, 4096, body.len()] {
        let mut gate = gate(settings(), FailureMode::Open);
        let (forwarded, last, requests) = run(&mut gate, &body, size, Some(&allow(false)));
        assert_eq!(requests.len(), 1, "the early callout is kept");
        assert!(requests[0].findings.is_empty());
        assert!(
            forwarded.len() <= body.len() - 64,
            "the pack's tail must stay withheld"
        );
        let text = text_of(&last);
        assert!(
            text.contains("ng refs/heads/main gitgate:deny:secret-detected github-pat-classic"),
            "{text}"
        );
        assert!(text.contains(&format!("blob {blob} line 1")), "{text}");
        assert!(text.contains("config/app.env in commit"), "{text}");
        assert!(text.contains("git rebase -i"), "{text}");
        assert!(text.contains("-o gitgate.bypass="), "{text}");
        assert!(
            !text.contains(&token),
            "the value never reaches git's output"
        );
        assert_eq!(
            gate.outcome(),
            &Outcome::Refused {
                code: "gitgate:deny:secret-detected".into()
            }
        );
        assert!(!gate.is_forwarding());
        assert!(gate.scan_log_lines().iter().all(|l| !l.contains(&token)));
    }
}

#[test]
fn a_clean_push_waits_for_the_scan_before_its_tail_leaves() {
    let repo = Repo::new();
    repo.commit("README.md", "# clean\n", "Initial commit");
    let body = repo.push(&["main"]);
    let mut gate = gate(settings(), FailureMode::Closed);
    let (mut forwarded, last, requests) = run(&mut gate, &body, 50, Some(&allow(false)));
    assert_eq!(requests.len(), 1);
    let BodyAction::Forward(rest) = last else {
        panic!("the clean push is let through at the end, got {last:?}");
    };
    assert!(forwarded.len() <= body.len() - 64);
    forwarded.extend(rest);
    assert_eq!(forwarded, body);
    assert_eq!(gate.outcome(), &Outcome::Forwarded);
}

#[test]
fn a_bypass_holds_the_callout_until_the_pack_is_scanned_and_carries_the_findings() {
    let repo = Repo::new();
    let token = fake_github_token(7);
    repo.commit("README.md", "# demo\n", "Initial commit");
    repo.commit("fixtures/token.txt", &format!("{token}\n"), "Add a fixture");
    let body = repo.push(&["-o", "gitgate.bypass=a test fixture, never issued", "main"]);

    let mut gate = gate(settings(), FailureMode::Closed);
    let (forwarded, last, requests) = run(&mut gate, &body, 333, None);
    assert_eq!(last, BodyAction::Wait);
    assert!(forwarded.len() <= body.len() - 64);
    assert_eq!(requests.len(), 1, "one callout, at the end");
    let request = &requests[0];
    assert_eq!(
        request.bypass_reason.as_deref(),
        Some("a test fixture, never issued")
    );
    assert_eq!(request.findings.len(), 1);
    let finding = &request.findings[0];
    assert_eq!(finding.rule, "github-pat-classic");
    assert_eq!(finding.kind.as_deref(), Some("blob"));
    assert_eq!(finding.path.as_deref(), Some("fixtures/token.txt"));
    assert_eq!(finding.line, Some(1));
    assert_eq!(finding.fingerprint.len(), 32);
    assert!(!serde_json::to_string(request).unwrap().contains(&token));

    // A hold from the service is shown with the findings.
    let hold = serde_json::to_vec(&VerdictResponse {
        verdicts: vec![RefVerdict::Hold {
            code: "gitgate:hold:secret-bypass".into(),
            ticket: "T-abc".into(),
            url: "http://approve/tickets/T-abc".into(),
            reason: "a security reviewer must approve the secrets".into(),
        }],
        findings_reviewed: true,
    })
    .unwrap();
    let result = CalloutResult::Response {
        status: Some(200),
        body: &hold,
    };
    let ResumeAction::Respond(answer) = gate.on_callout(result) else {
        panic!("a held push is answered");
    };
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("ng refs/heads/main gitgate:hold:secret-bypass"),
        "{text}"
    );
    assert!(text.contains("secret github-pat-classic in blob"), "{text}");
    assert!(
        text.contains("approve at http://approve/tickets/T-abc"),
        "{text}"
    );
}

#[test]
fn an_approved_bypass_passes_only_when_the_service_reviewed_the_findings() {
    let repo = Repo::new();
    repo.commit("README.md", "# demo\n", "Initial commit");
    let token = fake_github_token(8);
    repo.commit("token.txt", &format!("{token}\n"), "Add it");
    let body = repo.push(&["-o", "gitgate.bypass=approved fixture", "main"]);

    for (reviewed, passes) in [(true, true), (false, false)] {
        let mut gate = gate(settings(), FailureMode::Open);
        let (mut forwarded, last, _) = run(&mut gate, &body, 1000, None);
        assert_eq!(last, BodyAction::Wait);
        let answer = allow(reviewed);
        let result = CalloutResult::Response {
            status: Some(200),
            body: &answer,
        };
        match gate.on_callout(result) {
            ResumeAction::Resume(tail) if passes => {
                forwarded.extend(tail);
                assert_eq!(forwarded, body);
            }
            ResumeAction::Respond(answer) if !passes => {
                let text = String::from_utf8_lossy(&answer);
                assert!(text.contains("did not review the findings"), "{text}");
                assert!(text.contains("gitgate:deny:secret-detected"), "{text}");
            }
            other => panic!("reviewed {reviewed}: unexpected {other:?}"),
        }
    }
}

#[test]
fn a_service_failure_never_lets_findings_through_even_when_failing_open() {
    let repo = Repo::new();
    repo.commit(
        "token.txt",
        &format!("{}\n", fake_github_token(9)),
        "Add it",
    );
    let body = repo.push(&["-o", "gitgate.bypass=please", "main"]);
    let mut gate = gate(settings(), FailureMode::Open);
    let (_, last, _) = run(&mut gate, &body, 1000, None);
    assert_eq!(last, BodyAction::Wait);
    let ResumeAction::Respond(answer) = gate.on_callout(CalloutResult::Failed) else {
        panic!("refused");
    };
    assert!(String::from_utf8_lossy(&answer).contains("gitgate:deny:secret-detected"));
}

#[test]
fn a_bypass_without_a_reason_is_ignored_and_said_so() {
    let repo = Repo::new();
    repo.commit(
        "token.txt",
        &format!("{}\n", fake_github_token(10)),
        "Add it",
    );
    let body = repo.push(&["-o", "gitgate.bypass", "main"]);
    let mut gate = gate(settings(), FailureMode::Closed);
    let (_, last, requests) = run(&mut gate, &body, 1000, Some(&allow(false)));
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].findings.is_empty(),
        "the early callout had none"
    );
    let text = text_of(&last);
    assert!(text.contains("the bypass option was ignored"), "{text}");
}

#[test]
fn scan_limits_block_or_pass_with_an_audit_record() {
    let repo = Repo::new();
    repo.commit("settings.txt", &big_text("limits"), "Add the settings");
    let body = repo.push(&["main"]);
    let limits = ScanLimits {
        max_object_bytes: 1000,
        ..ScanLimits::default()
    };

    let blocking = Rc::new(SecretScanning::with_defaults(rules()).limited(limits, OnLimit::Block));
    let mut refusing = gate(blocking, FailureMode::Closed);
    let (_, last, _) = run(&mut refusing, &body, 700, Some(&allow(false)));
    let text = text_of(&last);
    assert!(
        text.contains("ng refs/heads/main gitgate:deny:secret-scan-limit"),
        "{text}"
    );
    assert!(text.contains("only its first 1000 were scanned"), "{text}");

    let auditing =
        Rc::new(SecretScanning::with_defaults(rules()).limited(limits, OnLimit::PassWithAudit));
    let mut passing = gate(auditing, FailureMode::Closed);
    let (mut forwarded, last, _) = run(&mut passing, &body, 700, Some(&allow(false)));
    let BodyAction::Forward(rest) = last else {
        panic!("passed by policy, got {last:?}");
    };
    forwarded.extend(rest);
    assert_eq!(forwarded, body);
    assert!(passing.passed_scan_limit());
    assert_eq!(passing.decision_label(), "forwarded:secret-scan-limit");
    let log = passing.scan_log_lines().join("\n");
    assert!(log.contains("passed by on_limit: pass-with-audit"), "{log}");
}

#[test]
fn a_refusal_by_the_service_still_scans_and_reports_the_secrets() {
    let (_repo, _token, body) = push_with_secret_in_a_new_file();
    let deny = serde_json::to_vec(&VerdictResponse {
        verdicts: vec![RefVerdict::Deny {
            code: "gitgate:deny:frozen".into(),
            reason: "the repository is frozen".into(),
        }],
        findings_reviewed: false,
    })
    .unwrap();
    let mut gate = gate(settings(), FailureMode::Closed);
    let (forwarded, last, _) = run(&mut gate, &body, 64, Some(&deny));
    let text = text_of(&last);
    assert!(text.contains("gitgate:deny:secret-detected"), "{text}");
    assert!(forwarded.len() < body.len() - 64);
}
