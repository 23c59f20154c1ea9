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
    DeltaBase, LimitHit, NotRebuilt, OnLimit, PushScan, ScanLimits, ScanReport, SecretScanning,
};
use gitgate_core::receive_pack::{CommandSection, ObjectFormat, Parser, Progress};
use gitgate_scan::{RuleSet, fake};

// ---- fake secrets ---------------------------------------------------------------------------

/// A fake GitHub classic token made from `seed` (the format is real, the token never issued).
fn fake_github_token(seed: u64) -> String {
    fake::github_classic(&mut fake::FakeRng::new(seed))
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
    // And the delta that could not be rebuilt is a limit, never a silent pass.
    assert!(
        report.limits.iter().any(|hit| matches!(
            hit,
            LimitHit::DeltaNotRebuilt {
                base: DeltaBase::Id(_),
                reason: NotRebuilt::BaseNotInPack { .. },
                ..
            }
        )),
        "{report:#?}"
    );
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

// ---- the pack summary -------------------------------------------------------------------------

#[test]
fn the_scan_summarises_the_pushed_commits_with_parents_author_and_subject() {
    let repo = Repo::new();
    let first = repo.commit("README.md", "# demo\n", "Initial commit");
    let second = repo.commit(
        "src/lib.rs",
        "pub fn f() {}\n",
        "Add the library\n\nWith a body.",
    );
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    let pack = &report.pack;
    assert_eq!(
        pack.objects, 7,
        "two commits, two root trees, one subtree, two blobs"
    );
    assert_eq!(pack.commits_count, 2);
    assert_eq!(pack.blobs, 2);
    assert_eq!(pack.trees, 3);
    assert_eq!(pack.tags + pack.unresolved_deltas, 0);
    let section = section_of(&body);
    assert_eq!(pack.bytes, (body.len() as u64) - section.end_offset);
    assert!(!pack.commits_truncated);
    let ids: Vec<&str> = pack.commits.iter().map(|c| c.id.as_str()).collect();
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&second.as_str()),
        "{ids:?}"
    );
    let newest = pack
        .commits
        .iter()
        .find(|c| c.id == second)
        .expect("the newest commit");
    assert_eq!(newest.parents, vec![first.clone()]);
    assert_eq!(newest.author, "A U Thor <author@example.com>");
    assert_eq!(
        newest.author_time,
        Some(1_704_067_200),
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(newest.subject, "Add the library");
    let root = pack
        .commits
        .iter()
        .find(|c| c.id == first)
        .expect("the root commit");
    assert!(root.parents.is_empty());
}

#[test]
fn the_summary_keeps_at_most_the_configured_commits_and_says_so() {
    let repo = Repo::new();
    for n in 0..4 {
        repo.commit(
            &format!("f{n}.txt"),
            &format!("{n}\n"),
            &format!("Commit {n}"),
        );
    }
    let body = repo.push(&["main"]);
    let section = section_of(&body);
    let mut scan =
        PushScan::new(settings(), section.object_format, section.end_offset).summary_commits(2);
    scan.feed(&body[section.end_offset as usize..])
        .expect("a valid pack");
    let pack = scan.finish().expect("complete").pack;
    assert_eq!(pack.commits_count, 4);
    assert_eq!(pack.commits.len(), 2);
    assert!(pack.commits_truncated);
}

#[test]
fn a_deltified_update_counts_its_rebuilt_or_unresolved_entries() {
    let repo = Repo::new();
    repo.commit("settings.txt", &big_text("one"), "Add the settings");
    repo.push(&["main"]);
    let mut text = big_text("one");
    text.insert_str(4000, "one more line\n");
    repo.commit("settings.txt", &text, "Change the settings");
    let body = repo.push(&["main"]);
    let pack = scan(&body).pack;
    assert_eq!(pack.objects, 3);
    assert_eq!(pack.commits_count, 1);
    assert_eq!(pack.trees, 1);
    // The changed file is a delta against the server's copy (a thin pack): its kind is unknown.
    assert_eq!(pack.blobs + pack.unresolved_deltas, 1);
    assert_eq!(pack.commits.len(), 1);
}

#[test]
fn the_gate_exposes_the_push_and_its_summary_for_the_audit_record() {
    let repo = Repo::new();
    let head = repo.commit("README.md", "# clean\n", "Initial commit");
    let body = repo.push(&["-o", "ci.skip", "main"]);
    let mut gate = gate(settings(), FailureMode::Closed);
    assert!(gate.pack_summary().is_none() && gate.updates().is_empty());
    let (_, last, _) = run(&mut gate, &body, 50, Some(&allow(false)));
    assert!(matches!(last, BodyAction::Forward(_)));
    assert_eq!(gate.updates()[0].refname, "refs/heads/main");
    assert_eq!(gate.updates()[0].new, head);
    assert_eq!(gate.push_options(), ["ci.skip".to_owned()]);
    assert_eq!(gate.verdicts(), vec![RefVerdict::Allow]);
    assert!(gate.findings().is_empty());
    let summary = gate.pack_summary().expect("the pack was walked");
    assert_eq!(summary.commits[0].id, head);
}

#[test]
fn the_gate_gives_its_own_verdicts_and_the_redacted_findings_when_it_refuses_locally() {
    let (_repo, token, body) = push_with_secret_in_a_new_file();
    let mut gate = gate(settings(), FailureMode::Closed);
    run(&mut gate, &body, 4096, Some(&allow(false)));
    // The service allowed, and that is what it said.
    assert_eq!(gate.verdicts(), vec![RefVerdict::Allow]);
    let findings = gate.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].path.as_deref(), Some("config/app.env"));
    assert!(!format!("{findings:?}").contains(&token));

    // Without a service answer, the verdicts are the filter's own refusal.
    let mut gate =
        PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).scanning(settings());
    let (_, _, _) = run(&mut gate, &body, 4096, Some(b"not json"));
    let verdicts = gate.verdicts();
    assert_eq!(verdicts.len(), 1);
    assert!(
        matches!(&verdicts[0], RefVerdict::Deny { code, .. } if code.starts_with("gitgate:")),
        "{verdicts:?}"
    );
}

#[test]
fn a_bypass_callout_carries_the_pack_summary() {
    let repo = Repo::new();
    let token = fake_github_token(8);
    let head = repo.commit("fixtures/token.txt", &format!("{token}\n"), "Add a fixture");
    let body = repo.push(&["-o", "gitgate.bypass=a test fixture", "main"]);
    let mut gate = gate(settings(), FailureMode::Closed);
    let (_, _, requests) = run(&mut gate, &body, 333, None);
    let pack = requests[0]
        .pack
        .as_ref()
        .expect("the summary goes with a deferred callout");
    assert_eq!(pack.commits[0].id, head);
    assert_eq!(pack.commits[0].subject, "Add a fixture");
    assert_eq!(gate.pack_summary().as_ref(), Some(pack));
}

#[test]
fn without_scanning_the_summary_has_the_entry_counts_but_no_commits() {
    let repo = Repo::new();
    repo.commit("README.md", "# demo\n", "Initial commit");
    let body = repo.push(&["main"]);
    let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
    let (_, last, _) = run(&mut gate, &body, 10_000, None);
    assert_eq!(last, BodyAction::Wait);
    let summary = gate.pack_summary().expect("framed");
    assert_eq!((summary.objects, summary.commits_count), (3, 1));
    assert_eq!((summary.trees, summary.blobs), (1, 1));
    assert!(summary.commits.is_empty());
}

// ---- the time cap -----------------------------------------------------------------------------

/// A fake clock that advances `step` ms each time it is read.
fn ticking(step: u64) -> gitgate_core::push_scan::Clock {
    let now = Rc::new(std::cell::Cell::new(0u64));
    gitgate_core::push_scan::Clock::new(move || {
        now.set(now.get() + step);
        now.get()
    })
}

fn timed(max_scan_ms: u64, on_limit: OnLimit) -> Rc<SecretScanning> {
    let limits = ScanLimits {
        max_scan_ms,
        ..ScanLimits::default()
    };
    Rc::new(SecretScanning::with_defaults(rules()).limited(limits, on_limit))
}

#[test]
fn a_scan_past_its_time_cap_stops_with_a_typed_limit() {
    let (_repo, _token, body) = push_with_secret_in_a_new_file();
    let section = section_of(&body);
    let start = section.end_offset as usize;

    // A clock that moves 10 ms per look against a cap of 15 ms: the second look is past it.
    let mut scan =
        PushScan::new(timed(15, OnLimit::Block), section.object_format, 0).clocked(ticking(10));
    scan.feed(&body[start..]).expect("a valid pack");
    let report = scan.finish().expect("the pack is still walked to its end");
    assert!(
        report
            .limits
            .iter()
            .any(|hit| matches!(hit, LimitHit::TooSlow { max_ms: 15, .. })),
        "{:?}",
        report.limits
    );
    assert_eq!(report.pack.objects, 7, "the summary is still complete");
    assert_eq!(report.pack.commits.len(), 2);

    // A clock that does not move never hits the cap; nor does a cap of 0.
    let still = gitgate_core::push_scan::Clock::new(|| 42);
    let mut scan =
        PushScan::new(timed(15, OnLimit::Block), section.object_format, 0).clocked(still);
    scan.feed(&body[start..]).expect("valid");
    let report = scan.finish().expect("complete");
    assert!(report.limits.is_empty() && report.findings.len() == 1);
    let mut scan =
        PushScan::new(timed(0, OnLimit::Block), section.object_format, 0).clocked(ticking(1000));
    scan.feed(&body[start..]).expect("valid");
    assert!(scan.finish().expect("complete").limits.is_empty());
}

#[test]
fn the_time_cap_blocks_or_passes_with_an_audit_record_never_silently() {
    let repo = Repo::new();
    for n in 0..5 {
        repo.commit(
            &format!("f{n}.txt"),
            &format!("clean {n}\n"),
            &format!("Commit {n}"),
        );
    }
    let body = repo.push(&["main"]);

    let mut blocking = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed)
        .scanning(timed(25, OnLimit::Block))
        .clock(ticking(10));
    let (_, last, _) = run(&mut blocking, &body, 700, Some(&allow(false)));
    let text = text_of(&last);
    assert!(
        text.contains("ng refs/heads/main gitgate:deny:secret-scan-limit"),
        "{text}"
    );
    assert!(
        text.contains("scanning the push took more than 25 ms"),
        "{text}"
    );

    let mut passing = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed)
        .scanning(timed(25, OnLimit::PassWithAudit))
        .clock(ticking(10));
    let (_, last, _) = run(&mut passing, &body, 700, Some(&allow(false)));
    assert!(matches!(last, BodyAction::Forward(_)), "{last:?}");
    assert!(passing.passed_scan_limit());
    assert!(passing.decision_label().ends_with(":secret-scan-limit"));
    assert!(
        passing
            .scan_log_lines()
            .iter()
            .any(|l| l.contains("took more than 25 ms")),
        "{:?}",
        passing.scan_log_lines()
    );
}

#[test]
fn a_sha256_push_is_summarised_with_64_digit_ids() {
    // Captured from git by fixtures/make-fixtures.sh: two commits on a SHA-256 repository.
    let body: &[u8] = include_bytes!("fixtures/sha256-create.bin");
    let section = section_of(body);
    assert_eq!(section.object_format.name(), "sha256");
    let mut scan = PushScan::new(settings(), section.object_format, section.end_offset);
    scan.feed(&body[section.end_offset as usize..])
        .expect("a valid pack");
    let pack = scan.finish().expect("complete").pack;
    assert_eq!(pack.commits_count, 2);
    assert_eq!(pack.commits.len(), 2);
    assert!(pack.commits.iter().all(|c| c.id.len() == 64), "{pack:?}");
    let subjects: Vec<&str> = pack.commits.iter().map(|c| c.subject.as_str()).collect();
    assert!(subjects.contains(&"change a.txt") && subjects.contains(&"change b.txt"));
    let second = pack
        .commits
        .iter()
        .find(|c| c.subject == "change b.txt")
        .expect("the second commit");
    let first = pack
        .commits
        .iter()
        .find(|c| c.subject == "change a.txt")
        .expect("the first commit");
    assert_eq!(second.parents, vec![first.id.clone()]);
    assert_eq!(second.author, "A U Thor <author@example.com>");
    assert_eq!(
        pack.commits_count + pack.trees + pack.blobs + pack.tags + pack.unresolved_deltas,
        pack.objects
    );
}

// ---- secrets outside blobs and messages ------------------------------------------------------

/// Runs `body` through a scanning gate whose callout is counted; returns the gate, the answer
/// and the callouts.
fn gate_run(body: &[u8]) -> (PushGate, BodyAction, Vec<VerdictRequest>) {
    let mut gate = gate(settings(), FailureMode::Open);
    let (_, last, requests) = run(&mut gate, body, 512, Some(&allow(true)));
    (gate, last, requests)
}

const MASKED_PAT: &str = "ghp_****[gitgate:github-pat-classic]";

#[test]
fn a_secret_in_a_ref_name_refuses_the_push_before_the_service_is_asked() {
    let repo = Repo::new();
    let token = fake_github_token(21);
    repo.commit("README.md", "# clean\n", "Initial commit");
    let body = repo.push(&[&format!("main:refs/heads/deploy/{token}")]);
    let (gate, last, requests) = gate_run(&body);
    assert!(requests.is_empty(), "the value must not reach the service");
    let text = text_of(&last);
    assert!(
        text.contains("gitgate:deny:secret-detected github-pat-classic in a ref name"),
        "{text}"
    );
    assert!(!gate.is_forwarding());
    // The record gets the ref name masked.
    assert_eq!(
        gate.updates()[0].refname,
        format!("refs/heads/deploy/{MASKED_PAT}")
    );
    assert!(!format!("{:?}", gate.verdicts()).contains(&token));
}

#[test]
fn a_secret_in_a_push_option_or_the_bypass_reason_refuses_the_push_before_the_callout() {
    let token = fake_github_token(22);
    for option in [
        format!("ci.note={token}"),
        format!("gitgate.bypass=my key is {token}"),
    ] {
        let repo = Repo::new();
        repo.commit("README.md", "# clean\n", "Initial commit");
        let body = repo.push(&["-o", &option, "main"]);
        let (gate, last, requests) = gate_run(&body);
        assert!(requests.is_empty(), "{option}: no callout");
        let text = text_of(&last);
        assert!(
            text.contains("gitgate:deny:secret-detected github-pat-classic in a push option"),
            "{text}"
        );
        assert!(!text.contains(&token), "{text}");
        let options = gate.push_options().join("\n");
        assert!(options.contains(MASKED_PAT), "{options}");
        assert!(!options.contains(&token), "{options}");
    }
}

/// A signed push of one delete, its certificate holding `extra` among its header lines.
fn signed_delete(extra: &str) -> Vec<u8> {
    fn pkt(payload: &[u8]) -> Vec<u8> {
        let mut out = format!("{:04x}", payload.len() + 4).into_bytes();
        out.extend_from_slice(payload);
        out
    }
    let old = "1".repeat(40);
    let zero = "0".repeat(40);
    let mut body = pkt(b"push-cert\0report-status side-band-64k");
    for line in [
        "certificate version 0.1\n".to_owned(),
        "pusher A U Thor <author@example.com> 1700000000 +0000\n".to_owned(),
        format!("nonce {extra}\n"),
        "\n".to_owned(),
        format!("{old} {zero} refs/heads/old\n"),
        "-----BEGIN PGP SIGNATURE-----\n".to_owned(),
        "iQEzBAABCAAdFiEE\n".to_owned(),
        "-----END PGP SIGNATURE-----\n".to_owned(),
        "push-cert-end\n".to_owned(),
    ] {
        body.extend(pkt(line.as_bytes()));
    }
    body.extend_from_slice(b"0000");
    body
}

#[test]
fn a_secret_in_the_push_certificate_refuses_the_push_before_the_callout() {
    let (_, last, requests) = gate_run(&signed_delete("1700000000-abcdef"));
    assert_eq!(requests.len(), 1, "a clean certificate is asked about");
    assert!(matches!(last, BodyAction::Forward(_)), "{last:?}");

    let token = fake_github_token(23);
    let (_, last, requests) = gate_run(&signed_delete(&token));
    assert!(requests.is_empty());
    let text = text_of(&last);
    assert!(
        text.contains("github-pat-classic in the push certificate"),
        "{text}"
    );
    assert!(!text.contains(&token));
}

#[test]
fn a_secret_in_a_file_or_directory_name_is_found_and_no_path_shows_it() {
    let repo = Repo::new();
    let (in_file, in_dir) = (fake_github_token(24), fake_github_token(25));
    repo.commit("README.md", "# clean\n", "Initial commit");
    repo.commit(
        &format!("keys/{in_file}.txt"),
        "nothing here\n",
        "Add a name",
    );
    let other = fake_github_token(26);
    repo.commit(
        &format!("{in_dir}/app.env"),
        &format!("TOKEN={other}\n"),
        "Add a directory",
    );
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    let trees: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.kind == Some(ObjectKind::Tree))
        .collect();
    assert!(trees.len() >= 2, "{report:#?}");
    let blob = report
        .findings
        .iter()
        .find(|f| f.kind == Some(ObjectKind::Blob))
        .expect("the file's content");
    assert_eq!(blob.path, Some(format!("{MASKED_PAT}/app.env")));

    let (gate, last, _) = gate_run(&body);
    let text = text_of(&last);
    assert!(text.contains("in a file or directory name"), "{text}");
    let everything = format!(
        "{text}\n{:?}\n{:?}\n{:?}",
        gate.scan_log_lines(),
        gate.findings(),
        gate.pack_summary()
    );
    for token in [&in_file, &in_dir, &other] {
        assert!(!everything.contains(token.as_str()), "{everything}");
    }
}

#[test]
fn subjects_and_authors_in_the_summary_are_masked_even_past_the_findings_cap() {
    let repo = Repo::new();
    let (in_author, in_subject) = (fake_github_token(27), fake_github_token(28));
    repo.commit("README.md", "# clean\n", "Initial commit");
    std::fs::write(repo.work.join("b.txt"), "b\n").expect("write");
    repo.work_git(&["add", "b.txt"]);
    repo.work_git(&[
        "commit",
        "--quiet",
        "-m",
        &format!("use {in_subject}"),
        &format!("--author={in_author} <author@example.com>"),
    ]);
    let body = repo.push(&["main"]);
    let limits = ScanLimits {
        max_findings: 1,
        ..ScanLimits::default()
    };
    let capped = Rc::new(SecretScanning::with_defaults(rules()).limited(limits, OnLimit::Block));
    let report = scan_pieces(capped, &body, &[]);
    assert_eq!(report.findings.len(), 1);
    let json = serde_json::to_string(&report.pack).expect("json");
    assert!(
        !json.contains(&in_author) && !json.contains(&in_subject),
        "{json}"
    );
    let commit = report
        .pack
        .commits
        .iter()
        .find(|c| c.subject.starts_with("use "))
        .expect("the commit");
    assert_eq!(commit.subject, format!("use {MASKED_PAT}"));
    assert_eq!(commit.author, format!("{MASKED_PAT} <author@example.com>"));
}

// ---- deltas that cannot be rebuilt --------------------------------------------------------------

/// A repository whose server has `settings.txt`, and a local commit that changes it so that git
/// sends a delta against the server's copy.
fn changed_file_repo(token: &str) -> Repo {
    let repo = Repo::new();
    repo.commit("settings.txt", &big_text("split"), "Add the settings");
    repo.push(&["main"]);
    let mut text = big_text("split");
    // The first 30 characters are already in the base; the push adds only the rest.
    text.insert_str(4000, &format!("see {}\n", &token[..30]));
    repo.commit("settings.txt", &text, "Start a note");
    repo.push(&["main"]);
    let text = text.replacen(
        &format!("see {}\n", &token[..30]),
        &format!("see {token}\n"),
        1,
    );
    repo.commit("settings.txt", &text, "Finish the note");
    repo
}

#[test]
fn a_thin_delta_splitting_a_secret_is_refused_by_default_and_named() {
    let token = fake_github_token(21);
    let repo = changed_file_repo(&token);
    let body = repo.push(&["main"]);

    let report = scan_every_split(&body);
    // The inserted bytes alone hold no whole token: without the limit this push would pass.
    assert!(report.findings.is_empty(), "{report:#?}");
    let Some(LimitHit::DeltaNotRebuilt { entry, .. }) = report
        .limits
        .iter()
        .find(|hit| matches!(hit, LimitHit::DeltaNotRebuilt { .. }))
    else {
        panic!("a delta-not-rebuilt limit: {report:#?}");
    };
    assert!(*entry > 0);

    let mut refusing = gate(settings(), FailureMode::Closed);
    let (_, last, _) = run(&mut refusing, &body, 700, Some(&allow(false)));
    let text = text_of(&last);
    assert!(
        text.contains("ng refs/heads/main gitgate:deny:secret-scan-limit"),
        "{text}"
    );
    assert!(
        text.contains(&format!("the delta at byte {entry} could not be rebuilt")),
        "{text}"
    );
    assert!(text.contains("git push --no-thin"), "{text}");
    assert!(!text.contains(&token[..30]), "{text}");
}

#[test]
fn a_thin_delta_passes_with_an_audit_record_under_pass_with_audit() {
    let token = fake_github_token(22);
    let repo = changed_file_repo(&token);
    let body = repo.push(&["main"]);
    let auditing = Rc::new(
        SecretScanning::with_defaults(rules())
            .limited(ScanLimits::default(), OnLimit::PassWithAudit),
    );
    let mut passing = gate(auditing, FailureMode::Closed);
    let (mut forwarded, last, _) = run(&mut passing, &body, 700, Some(&allow(false)));
    let BodyAction::Forward(rest) = last else {
        panic!("passed by policy, got {last:?}");
    };
    forwarded.extend(rest);
    assert_eq!(forwarded, body);
    assert!(passing.passed_scan_limit());
    let log = passing.scan_log_lines().join("\n");
    assert!(log.contains("could not be rebuilt"), "{log}");
}

#[test]
fn a_complete_pack_rebuilds_the_delta_and_finds_the_split_secret() {
    let token = fake_github_token(23);
    let repo = changed_file_repo(&token);
    let body = repo.push(&["--no-thin", "main"]);
    let report = scan(&body);
    assert!(report.limits.is_empty(), "{report:#?}");
    assert_eq!(report.findings.len(), 1, "{report:#?}");
    assert_eq!(report.findings[0].kind, Some(ObjectKind::Blob));
}

#[test]
fn a_delta_whose_base_is_over_the_budget_is_a_limit_naming_the_budget() {
    let repo = Repo::new();
    repo.commit("README.md", "# demo\n", "Initial commit");
    repo.push(&["main"]);
    repo.commit("settings.txt", &big_text("one"), "Add the settings");
    let mut text = big_text("one");
    text.insert_str(4000, "one more line\n");
    repo.commit("settings.txt", &text, "Change the settings");
    let body = repo.push(&["main"]);
    assert!(
        scan(&body).limits.is_empty(),
        "rebuilt within the default budget"
    );

    let limits = ScanLimits {
        delta_base_bytes: 1000,
        ..ScanLimits::default()
    };
    let small = Rc::new(SecretScanning::with_defaults(rules()).limited(limits, OnLimit::Block));
    let report = scan_pieces(small.clone(), &body, &[]);
    assert!(
        report.limits.iter().any(|hit| matches!(
            hit,
            LimitHit::DeltaNotRebuilt {
                base: DeltaBase::Entry(_),
                reason: NotRebuilt::BaseNotKept { budget: 1000 },
                ..
            }
        )),
        "{report:#?}"
    );
    let mut refusing = gate(small, FailureMode::Closed);
    let (_, last, _) = run(&mut refusing, &body, 700, Some(&allow(false)));
    let text = text_of(&last);
    assert!(text.contains("secrets.limits.delta_base_bytes"), "{text}");
}

/// A hand-built pack: a `REF_DELTA` whose base is the blob after it (git's `index-pack`
/// accepts this order), as the tester's `laterbase.py` builds it.
fn ref_delta_before_its_base(base: &[u8], inserted: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::ZlibEncoder;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("in memory");
        encoder.finish().expect("in memory")
    }
    fn header(kind: u8, mut size: u64) -> Vec<u8> {
        let mut byte = (kind << 4) | (size & 0x0f) as u8;
        size >>= 4;
        let mut out = Vec::new();
        while size > 0 {
            out.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        out.push(byte);
        out
    }
    fn varint(mut value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }
    let base_id = gitgate_core::object::object_id(ObjectFormat::Sha1, ObjectKind::Blob, base);
    // Copy the whole base, then insert the rest.
    let mut delta = varint(base.len() as u64);
    delta.extend(varint((base.len() + inserted.len()) as u64));
    delta.extend([0x80 | 0x01 | 0x10, 0, base.len() as u8]);
    delta.push(inserted.len() as u8);
    delta.extend_from_slice(inserted);

    let mut pack = b"PACK\0\0\0\x02\0\0\0\x02".to_vec();
    pack.extend(header(7, delta.len() as u64));
    pack.extend_from_slice(base_id.as_bytes());
    pack.extend(zlib(&delta));
    pack.extend(header(3, base.len() as u64));
    pack.extend(zlib(base));
    pack.extend([0u8; 20]);
    pack
}

#[test]
fn a_ref_delta_before_its_base_is_a_limit_not_a_silent_pass() {
    let token = fake_github_token(24);
    let base = format!("see {}", &token[..30]);
    let pack = ref_delta_before_its_base(base.as_bytes(), &token.as_bytes()[30..]);
    let mut scan = PushScan::new(settings(), ObjectFormat::Sha1, 0);
    scan.feed(&pack).expect("a valid pack");
    let report = scan.finish().expect("complete");
    assert!(report.findings.is_empty(), "{report:#?}");
    assert!(
        matches!(
            report.limits.as_slice(),
            [LimitHit::DeltaNotRebuilt {
                entry: 12,
                reason: NotRebuilt::BaseNotInPack { .. },
                more: 0,
                ..
            }]
        ),
        "{report:#?}"
    );
}
