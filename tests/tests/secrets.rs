//! Secret push protection, end to end: real commits pushed by the real git client through
//! Envoy and the filter to the upstream Git server.
//!
//! A push carrying a credential (in a new file, in a modified file sent as a delta, in a commit
//! message, deep in a large push) is refused for every ref with a report git prints: the rule,
//! the object id and the line, and how to remove it. The upstream's refs do not move, its
//! `pre-receive` hook never runs, and no log (Envoy's, the service's, the upstream's) holds the
//! value. With `-o gitgate.bypass=<why>` the push is held instead, a reviewer in the `security`
//! group approves it on the pages, and the same push then lands.
//!
//! Every credential is made at test time in a real format (a GitHub classic token with a valid
//! CRC32 checksum) and was never issued.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};

use gitgate_integration::{Stack, TokenOptions};
use support::{
    Reviewer, WorkTree, agent_token, assert_contains, assert_lacks, assert_refused_push,
    hook_lines, new_repo, ticket_of, upstream_git, upstream_ref, write_random,
};

/// A fresh fake GitHub classic token for each call: `ghp_`, 30 random base62 characters and
/// their CRC32 in base62 (the format GitHub documents); never an issued token.
fn fake_github_token() -> String {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut state = nanos ^ SEED.fetch_add(0x9E37_79B9, Ordering::Relaxed);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
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

/// A text file long enough for git to send a changed version as a delta.
fn settings_file(extra: &str) -> String {
    let mut text: String = (0..300)
        .map(|i| format!("setting_{i} = value {i} of the service configuration\n"))
        .collect();
    text.insert_str(text.len() / 2, extra);
    text
}

/// Asserts that no log of the stack and no line git printed holds `secret`.
#[track_caller]
fn assert_nowhere(stack: &Stack, secret: &str, git_output: &str) {
    assert_lacks(git_output, secret);
    assert_lacks(&stack.envoy_log(), secret);
    assert_lacks(&stack.service_log(), secret);
    assert_lacks(&stack.upstream_output(), secret);
    let requests = format!("{:?}", stack.upstream_requests().expect("the upstream log"));
    assert_lacks(&requests, secret);
}

/// Asserts that the push left the upstream as it was: `refname` at `before`, and the
/// `pre-receive` hook run only for the `hooks_before` updates of earlier pushes.
#[track_caller]
fn assert_upstream_untouched(
    stack: &Stack,
    repo: &str,
    refname: &str,
    before: Option<&str>,
    hooks_before: &[String],
) {
    assert_eq!(
        upstream_ref(stack, repo, refname).as_deref(),
        before,
        "{refname} moved upstream"
    );
    assert_eq!(hook_lines(stack, repo), hooks_before, "the hook ran");
}

#[test]
fn a_secret_in_a_new_file_is_refused_with_its_rule_object_and_line() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-new-file");
    let token = agent_token(stack, "agent-secret-new");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let secret = fake_github_token();
    let head = work.commit_file(
        "config/app.env",
        format!("user = deploy\nGITHUB_TOKEN={secret}\n").as_bytes(),
    );
    let blob = work.rev_parse("HEAD:config/app.env").expect("the blob");

    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        "(gitgate:deny:secret-detected github-pat-classic in blob",
    );
    assert_contains(
        &out.stderr,
        &format!("remote: gitgate: secret github-pat-classic in blob {blob} line 2"),
    );
    assert_contains(&out.stderr, &format!("(config/app.env in commit {head})"));
    assert_contains(&out.stderr, "git rebase -i");
    assert_contains(&out.stderr, "git commit --amend");
    assert_contains(&out.stderr, "rotate each credential");
    assert_contains(&out.stderr, "-o gitgate.bypass=");
    assert_upstream_untouched(stack, &repo, "refs/heads/feature", None, &[]);
    let stored = upstream_git(stack, &repo, &["cat-file", "-e", &blob]);
    assert!(
        !stored.ok(),
        "the blob must not be in the upstream's object store"
    );
    assert_nowhere(stack, &secret, &out.stderr);
}

#[test]
fn a_secret_added_to_a_modified_file_is_found_in_the_delta() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-delta");
    let token = agent_token(stack, "agent-secret-delta");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let clean = work.commit_file("settings.txt", settings_file("").as_bytes());
    let landed = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    assert!(landed.ok(), "{}", landed.stderr);
    let old_blob = work.rev_parse("HEAD:settings.txt").expect("the blob");
    let hooks = hook_lines(stack, &repo);
    assert_eq!(hooks.len(), 1, "the clean push ran the hook once");

    let secret = fake_github_token();
    let text = settings_file(&format!("api_token = {secret}\n"));
    work.commit_file("settings.txt", text.as_bytes());
    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        "gitgate:deny:secret-detected github-pat-classic",
    );
    // git sends the new version as a delta against the one the server has.
    let offset = text.find("ghp_").expect("planted");
    assert_contains(
        &out.stderr,
        &format!(
            "secret github-pat-classic in byte {offset} of a new version of object {old_blob}"
        ),
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/feature", Some(&clean), &hooks);
    assert_nowhere(stack, &secret, &out.stderr);
}

#[test]
fn a_secret_in_a_commit_message_is_refused_with_the_commit_and_line() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-message");
    let token = agent_token(stack, "agent-secret-message");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let secret = fake_github_token();
    std::fs::write(work.path.join("notes.txt"), "nothing secret here\n").unwrap();
    work.git().args(["add", "notes.txt"]).success().unwrap();
    let message = format!("Fix the deploy job\n\nIt runs with {secret} now.\n");
    work.git()
        .args(["commit", "--quiet", "-m", &message])
        .success()
        .unwrap();
    let head = work.head();

    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    // tree, parent, author, committer, the empty line, the subject, an empty line, then it.
    assert_contains(
        &out.stderr,
        &format!("secret github-pat-classic in commit {head} line 8 (message line 3)"),
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/feature", None, &[]);
    assert_nowhere(stack, &secret, &out.stderr);
}

#[test]
fn a_secret_deep_in_a_large_push_is_found_and_nothing_lands() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-large");
    let token = agent_token(stack, "agent-secret-large");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    // Stored uncompressed, as large.rs does, so the push is quick to make; the secret's bytes
    // then travel as they are in the pack.
    for (key, value) in [("core.compression", "0"), ("core.bigFileThreshold", "1m")] {
        work.git().args(["config", key, value]).success().unwrap();
    }
    for n in 0..4 {
        write_random(&work.path.join(format!("data-{n}.bin")), 16_000_000);
    }
    let secret = fake_github_token();
    std::fs::write(
        work.path.join("zz-deploy.env"),
        format!("REGION=eu\nGITHUB_TOKEN={secret}\n"),
    )
    .unwrap();
    work.git().args(["add", "."]).success().unwrap();
    work.git()
        .args([
            "commit",
            "--quiet",
            "-m",
            "Add 64 MB of data and the deploy settings",
        ])
        .success()
        .unwrap();
    let blob = work.rev_parse("HEAD:zz-deploy.env").expect("the blob");

    let started = std::time::Instant::now();
    let out = work.push(&token, &["origin", "HEAD:refs/heads/large"]);
    println!(
        "64 MB push refused in {:.1?}\n{}",
        started.elapsed(),
        out.stderr
    );
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        &format!("secret github-pat-classic in blob {blob} line 2 (zz-deploy.env in commit"),
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/large", None, &[]);
    assert_nowhere(stack, &secret, &out.stderr);
}

#[test]
fn a_bypass_is_held_for_security_and_the_approved_push_lands() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-bypass");
    let token = agent_token(stack, "agent-secret-bypass");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let secret = fake_github_token();
    let head = work.commit_file("tests/fixtures/token.txt", format!("{secret}\n").as_bytes());
    let blob = work
        .rev_parse("HEAD:tests/fixtures/token.txt")
        .expect("the blob");
    let push = [
        "-o",
        "gitgate.bypass=a revoked token kept as a test fixture",
        "origin",
        "HEAD:refs/heads/fixtures",
    ];

    let held = work.push(&token, &push);
    println!("{}", held.stderr);
    assert_refused_push(&held);
    assert_contains(&held.stderr, "(gitgate:hold:secret-bypass");
    assert_contains(
        &held.stderr,
        &format!("secret github-pat-classic in blob {blob} line 1"),
    );
    assert_contains(&held.stderr, "is held for review, approve at");
    assert_upstream_untouched(stack, &repo, "refs/heads/fixtures", None, &[]);
    let ticket = ticket_of(&held.stderr);

    // A reviewer outside `security` cannot decide it; one inside can, and sees the findings.
    let outsider = Reviewer::sign_in(stack, "rita-secrets");
    let page = outsider.ticket_page(&ticket).text();
    assert_contains(&page, "needs membership in the group security");
    let security = Reviewer::sign_in_as(
        stack,
        "sam-secrets",
        &TokenOptions::reviewer().group("security"),
    );
    let page = security.ticket_page(&ticket).text();
    for shown in [
        "Secrets in this push",
        "a revoked token kept as a test fixture",
        "github-pat-classic",
        blob.as_str(),
        "tests/fixtures/token.txt",
    ] {
        assert_contains(&page, shown);
    }
    assert_lacks(&page, &secret);
    let approved = security.approve(&ticket);
    assert_eq!(approved.status, 303, "{}", approved.text());
    assert_eq!(security.ticket_status(&ticket), "approved");

    let landed = work.push(&token, &push);
    println!("{}", landed.stderr);
    assert!(landed.ok(), "{}", landed.stderr);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/fixtures"),
        Some(head.clone())
    );
    let zero = "0".repeat(40);
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{zero} {head} refs/heads/fixtures")]
    );
    assert_nowhere(stack, &secret, &format!("{}{}", held.stderr, landed.stderr));
}

#[test]
fn a_push_without_secrets_still_lands() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-clean");
    let token = agent_token(stack, "agent-secret-clean");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("settings.txt", settings_file("").as_bytes());
    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/feature"), Some(head));
}
