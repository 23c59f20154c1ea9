//! Hold and forward, end to end: a push the service holds stays open, its pack's end withheld,
//! while the filter waits on `POST /v1/holds/wait`. A reviewer's approval in that window lets
//! the very same push through (git exits 0, the upstream ref moves, and git prints who approved
//! it); a denial in the window refuses it with the reviewer's reason; when the window passes,
//! the push is refused with the hold message and the ticket's URL, as without a window.
//!
//! The stack of this binary runs with `approval.hold_window_ms` set to [`WINDOW_MS`]; every
//! other test binary runs with it off.

mod support;

use std::time::{Duration, Instant};

use gitgate_integration::{GitOutput, Stack, StackOptions};
use support::{
    MAIN, Reviewer, WorkTree, agent_token, assert_contains, assert_refused_push, hook_lines,
    new_repo, queued_ticket, upstream_ref,
};

/// The hold window of this binary's stack: long enough for a reviewer to act within it on a
/// busy machine, short enough that the test of a window that passes stays quick.
const WINDOW_MS: u64 = 10_000;

fn stack() -> &'static Stack {
    Stack::shared_with(|| StackOptions {
        hold_window_ms: Some(WINDOW_MS),
        ..StackOptions::default()
    })
}

/// A push to `main` (held by the built-in policy), running in a thread.
struct OpenPush<'a> {
    /// `main` before the push.
    old: String,
    /// The pushed commit.
    new: String,
    /// git's output and how long the push took.
    push: std::thread::ScopedJoinHandle<'a, (GitOutput, Duration)>,
}

/// Commits a change in `work` and starts pushing it to `main` in a thread of `scope`.
fn start_push<'scope, 'env: 'scope>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    work: &'env WorkTree<'env>,
    token: &'env str,
) -> OpenPush<'scope> {
    let old = work.head();
    let new = work.commit_file("held.txt", b"a change that needs a review\n");
    let push = scope.spawn(move || {
        let started = Instant::now();
        let out = work.push(token, &["origin", "main"]);
        (out, started.elapsed())
    });
    OpenPush { old, new, push }
}

/// Waits until the push's ticket is on the reviewer's queue (the push is then held and open).
fn wait_for_ticket(reviewer: &Reviewer, repo: &str) -> String {
    let deadline = Instant::now() + Duration::from_millis(WINDOW_MS / 2);
    loop {
        if let Some(ticket) = queued_ticket(reviewer, repo) {
            return ticket;
        }
        assert!(
            Instant::now() < deadline,
            "no ticket for {repo} on the queue in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_approval_while_the_push_is_open_lets_the_same_push_through() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "hold-approved");
    let token = agent_token(stack, "agent-hold-approved");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let bob = Reviewer::sign_in(stack, "bob");

    std::thread::scope(|scope| {
        let open = start_push(scope, &work, &token);
        let ticket = wait_for_ticket(&bob, &repo);
        assert!(!open.push.is_finished(), "the push is still open");
        assert_eq!(upstream_ref(stack, &repo, MAIN), Some(open.old.clone()));
        let approved = bob.approve(&ticket);
        assert_eq!(approved.status, 303, "{}", approved.text());

        let (out, took) = open.push.join().expect("the push thread");
        println!("released after {took:.1?}\n{}", out.stderr);
        assert!(out.ok(), "the held push goes through\n{}", out.stderr);
        assert!(
            took < Duration::from_millis(WINDOW_MS),
            "released before the window ended: {took:?}"
        );
        assert_contains(
            &out.stderr,
            &format!("remote: gitgate: {ticket} approved by bob"),
        );
        assert_contains(
            &out.stderr,
            &format!("{}..{}  main -> main", &open.old[..7], &open.new[..7]),
        );
        // The approval notice comes before anything else the upstream said.
        let first_remote = out
            .stderr
            .lines()
            .find(|line| line.starts_with("remote:"))
            .unwrap_or_default();
        assert_contains(first_remote, "approved by bob");
        assert_eq!(upstream_ref(stack, &repo, MAIN), Some(open.new.clone()));
        assert_eq!(
            hook_lines(stack, &repo),
            [format!("{} {} refs/heads/main", open.old, open.new)]
        );
        assert_eq!(bob.ticket_status(&ticket), "approved");
    });
    let log = stack.envoy_log();
    assert_contains(&log, "waiting up to 10000 ms for a reviewer");
    assert_contains(&log, "forwarded:approved-while-held");
}

#[test]
fn a_denial_while_the_push_is_open_refuses_it_with_the_reviewers_reason() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "hold-denied");
    let token = agent_token(stack, "agent-hold-denied");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let bob = Reviewer::sign_in(stack, "bob");

    std::thread::scope(|scope| {
        let open = start_push(scope, &work, &token);
        let ticket = wait_for_ticket(&bob, &repo);
        let denied = bob.deny(&ticket, "split it into two changes");
        assert_eq!(denied.status, 303, "{}", denied.text());

        let (out, took) = open.push.join().expect("the push thread");
        println!("refused after {took:.1?}\n{}", out.stderr);
        assert_refused_push(&out);
        assert!(took < Duration::from_millis(WINDOW_MS), "{took:?}");
        let reason = format!("bob denied {ticket}: split it into two changes");
        assert_contains(
            &out.stderr,
            &format!(" ! [remote rejected] main -> main (gitgate:deny:reviewer-denied {reason})"),
        );
        assert_contains(
            &out.stderr,
            &format!("remote: gitgate: refs/heads/main is denied: {reason}"),
        );
        assert_eq!(upstream_ref(stack, &repo, MAIN), Some(open.old.clone()));
        assert!(hook_lines(stack, &repo).is_empty(), "the hook ran");
    });
}

#[test]
fn when_the_window_passes_the_push_is_refused_with_the_ticket_url() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "hold-expired");
    let token = agent_token(stack, "agent-hold-expired");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.commit_file("held.txt", b"nobody reviews this in time\n");

    let started = Instant::now();
    let out = work.push(&token, &["origin", "main"]);
    let took = started.elapsed();
    println!("refused after {took:.1?}\n{}", out.stderr);
    assert_refused_push(&out);
    assert!(
        took >= Duration::from_millis(WINDOW_MS),
        "the push waited the window: {took:?}"
    );
    assert_contains(&out.stderr, "(gitgate:hold:protected-ref ");
    assert_contains(
        &out.stderr,
        "remote: gitgate: refs/heads/main is held for review, approve at http",
    );
    assert_contains(
        &out.stderr,
        "remote: gitgate: the push waited 10 s for a review",
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old));
    assert!(hook_lines(stack, &repo).is_empty());

    // The re-push flow still applies: approved afterwards, the same push then lands at once.
    let ticket = support::ticket_of(&out.stderr);
    let bob = Reviewer::sign_in(stack, "bob");
    assert_eq!(bob.approve(&ticket).status, 303);
    let again = work.push(&token, &["origin", "main"]);
    assert!(again.ok(), "{}", again.stderr);
}

#[test]
fn an_allowed_push_does_not_wait() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "hold-allowed");
    let token = agent_token(stack, "agent-hold-allowed");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("free.txt", b"an agent branch needs no review\n");
    let started = Instant::now();
    let out = work.push(&token, &["origin", "HEAD:refs/heads/agent/free"]);
    assert!(out.ok(), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_millis(WINDOW_MS / 2));
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/agent/free"),
        Some(head)
    );
}
