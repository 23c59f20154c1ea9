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

use gitgate_integration::{Stack, TokenOptions};
use gitgate_scan::fake;
use support::{
    Reviewer, WorkTree, agent_token, assert_contains, assert_lacks, assert_refused_push,
    hook_lines, new_repo, ticket_of, upstream_git, upstream_ref, write_random,
};

/// A fresh fake GitHub classic token for each call (the format is real, the token never
/// issued).
fn fake_github_token() -> String {
    fake::github_classic(&mut fake::FakeRng::fresh())
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
    // The gate advertises no-thin, so git sends the new version whole (not as a delta against
    // the one the server has) and the finding names the new blob and its line.
    let new_blob = work.rev_parse("HEAD:settings.txt").expect("the blob");
    assert_ne!(new_blob, old_blob);
    let line = text[..text.find("ghp_").expect("planted")]
        .matches('\n')
        .count()
        + 1;
    assert_contains(
        &out.stderr,
        &format!("secret github-pat-classic in blob {new_blob} line {line}"),
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/feature", Some(&clean), &hooks);
    assert_nowhere(stack, &secret, &out.stderr);
}

#[test]
fn a_secret_completed_in_a_second_push_of_a_thin_delta_is_refused() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-thin-split");
    let token = agent_token(stack, "agent-secret-thin");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let secret = fake_github_token();
    // Push 1: the first 30 characters of the token, no finding (and nothing secret).
    let first = work.commit_file(
        "settings.txt",
        settings_file(&format!("see {}\n", &secret[..30])).as_bytes(),
    );
    let landed = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    assert!(landed.ok(), "{}", landed.stderr);
    let hooks = hook_lines(stack, &repo);

    // Push 2: the same line completed with the six checksum characters. As a thin delta
    // against the server's copy its inserted bytes hold no whole token; with no-thin git sends
    // the blob whole and the gate sees the token.
    work.commit_file(
        "settings.txt",
        settings_file(&format!("see {secret}\n")).as_bytes(),
    );
    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        "gitgate:deny:secret-detected github-pat-classic in blob",
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/feature", Some(&first), &hooks);
    let blob = work.rev_parse("HEAD:settings.txt").expect("the blob");
    assert!(
        !upstream_git(stack, &repo, &["cat-file", "-e", &blob]).ok(),
        "the blob with the token must not be upstream"
    );
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

/// Every file and directory under the upstream repository's `objects/`, relative to it, sorted.
fn object_store(stack: &Stack, repo: &str) -> Vec<String> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path);
            out.push(relative.display().to_string());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let root = stack.upstream_repo(repo).join("objects");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// Pushes `work`'s HEAD, which carries a secret, to a new branch; asserts the refusal and that
/// the upstream was left exactly as it was: no quarantine (`tmp_objdir-incoming-*`,
/// `incoming-*`), no new loose object or pack, no moved ref.
fn assert_refused_secret_leaves_no_trace(stack: &Stack, repo: &str, work: &WorkTree, token: &str) {
    let objects_before = object_store(stack, repo);
    let refs_before = upstream_git(stack, repo, &["for-each-ref"]).stdout;
    let pushes_before = support::gateway_pushes(stack, repo).len();

    let out = work.push(token, &["origin", "HEAD:refs/heads/quarantine"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "gitgate:deny:secret-detected");

    // The upstream logs a broken-off push once its backend has ended (after git's cleanup).
    stack
        .wait_upstream_requests(std::time::Duration::from_secs(20), |all| {
            all.iter()
                .filter(|r| r.path == format!("/{repo}/git-receive-pack"))
                .filter(|r| r.header("x-request-id").is_some())
                .count()
                > pushes_before
        })
        .expect("the upstream logged the broken-off push");
    // Give a lingering receive-pack a moment to finish removing what it made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut objects_after = object_store(stack, repo);
    while objects_after != objects_before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        objects_after = object_store(stack, repo);
    }
    let quarantine: Vec<&String> = objects_after
        .iter()
        .filter(|p| p.contains("incoming"))
        .collect();
    assert!(quarantine.is_empty(), "left in quarantine: {quarantine:?}");
    assert_eq!(objects_after, objects_before, "the object store changed");
    assert_eq!(
        upstream_git(stack, repo, &["for-each-ref"]).stdout,
        refs_before,
        "a ref moved"
    );
}

#[test]
fn a_small_refused_push_leaves_no_quarantine_or_object_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-quarantine-small");
    let token = agent_token(stack, "agent-secret-quarantine");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    // A few objects: git sends the body with a Content-Length, and receive-pack hands the
    // pack to unpack-objects, which writes loose objects into the quarantine as it goes.
    let secret = fake_github_token();
    work.commit_file("deploy.env", format!("GITHUB_TOKEN={secret}\n").as_bytes());
    assert_refused_secret_leaves_no_trace(stack, &repo, &work, &token);
}

#[test]
fn a_large_refused_push_leaves_no_quarantine_or_object_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-quarantine-large");
    let token = agent_token(stack, "agent-secret-quarantine-large");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    // Over 100 objects and over git's 1 MiB post buffer: a chunked body, which receive-pack
    // reads itself, and index-pack writing a pack into the quarantine.
    for n in 0..120 {
        std::fs::write(work.path.join(format!("f{n}.txt")), format!("file {n}\n")).unwrap();
    }
    write_random(&work.path.join("data.bin"), 3_000_000);
    let secret = fake_github_token();
    std::fs::write(work.path.join("zz.env"), format!("GITHUB_TOKEN={secret}\n")).unwrap();
    work.git().args(["add", "."]).success().unwrap();
    work.git()
        .args([
            "commit",
            "--quiet",
            "-m",
            "Add files and the deploy settings",
        ])
        .success()
        .unwrap();
    assert_refused_secret_leaves_no_trace(stack, &repo, &work, &token);
}

#[test]
fn a_secret_in_a_ref_name_or_a_push_option_is_refused_before_the_service_sees_it() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-in-commands");
    let token = agent_token(stack, "agent-secret-commands");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.commit_file("README.md", b"# nothing secret here\n");

    let in_ref = fake_github_token();
    let refname = format!("refs/heads/deploy/{in_ref}");
    let out = work.push(&token, &["origin", &format!("HEAD:{refname}")]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        "gitgate:deny:secret-detected github-pat-classic in a ref name",
    );
    assert_upstream_untouched(stack, &repo, &refname, None, &[]);
    // git prints the ref name it was given; nothing else may hold it.
    assert_nowhere(stack, &in_ref, "");

    for option in [
        format!("ci.note={}", fake_github_token()),
        format!("gitgate.bypass=the key is {}", fake_github_token()),
    ] {
        let secret = option
            .rsplit(['=', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        let out = work.push(&token, &["-o", &option, "origin", "HEAD:refs/heads/opt"]);
        println!("{}", out.stderr);
        assert_refused_push(&out);
        assert_contains(
            &out.stderr,
            "gitgate:deny:secret-detected github-pat-classic in a push option",
        );
        assert_upstream_untouched(stack, &repo, "refs/heads/opt", None, &[]);
        assert_nowhere(stack, &secret, &out.stderr);
    }
}

#[test]
fn a_secret_in_a_file_name_is_refused_and_no_log_shows_the_path() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "secret-in-a-name");
    let token = agent_token(stack, "agent-secret-name");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let in_name = fake_github_token();
    let in_content = fake_github_token();
    work.commit_file(
        &format!("keys/{in_name}/app.env"),
        format!("TOKEN={in_content}\n").as_bytes(),
    );

    let out = work.push(&token, &["origin", "HEAD:refs/heads/names"]);
    println!("{}", out.stderr);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "(a file or directory name)");
    assert_contains(
        &out.stderr,
        "keys/ghp_****[gitgate:github-pat-classic]/app.env",
    );
    assert_upstream_untouched(stack, &repo, "refs/heads/names", None, &[]);
    assert_nowhere(stack, &in_name, &out.stderr);
    assert_nowhere(stack, &in_content, &out.stderr);
}
