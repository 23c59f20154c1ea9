//! When the approval service is down, silent or talking nonsense, the gate fails closed: every
//! push is refused with a `gitgate:error:approval-*` status git prints, while clones and
//! fetches (which need no verdict) keep working. With `failure_mode: open` a push passes.
//!
//! Each test needs its own stack: the service is stopped, or the gate's approval cluster points
//! at a stand-in server.

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gitgate_integration::{GitOutput, PortChoice, Ports, Stack, StackOptions};
use support::{
    MAIN, WorkTree, agent_token, assert_contains, assert_refused_push, hook_lines, new_repo,
    upstream_ref,
};

/// The gate's callout timeout in the shipped configuration (`approval.timeout_ms`).
const CALLOUT_TIMEOUT: Duration = Duration::from_millis(5000);

/// A stand-in for the approval service: a local HTTP port that either answers every request
/// with a fixed body or never answers at all.
struct StandIn {
    port: u16,
    /// Requests (connections with a request head) received so far.
    requests: Arc<AtomicUsize>,
}

impl StandIn {
    /// Reads each request and never answers it; the connection stays open until the client
    /// gives up.
    fn silent() -> StandIn {
        StandIn::serve(None)
    }

    /// Answers every request with `200 OK` and `body` as JSON.
    fn answering(body: &'static str) -> StandIn {
        StandIn::serve(Some(body))
    }

    fn serve(body: Option<&'static str>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        // The threads end with the test binary; they hold nothing but sockets.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || handle(stream, body, &counter));
            }
        });
        StandIn { port, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn handle(mut stream: TcpStream, body: Option<&str>, requests: &AtomicUsize) {
    loop {
        if read_request(&mut stream).is_none() {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        let Some(body) = body else {
            // Silent: wait for the client to hang up.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            return;
        };
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one request (head and a `content-length` body); `None` at end of stream.
fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => bytes.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&bytes).into_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()
}

/// A stack whose gate calls `stand_in` instead of the approval service.
fn stack_calling(stand_in: &StandIn) -> Stack {
    let ports = Ports::free().unwrap();
    Stack::start_with(StackOptions {
        ports: PortChoice::Fixed(ports),
        envoy_edits: vec![(
            format!("port_value: {} }}", ports.service),
            format!("port_value: {} }}", stand_in.port),
        )],
        ..StackOptions::default()
    })
    .unwrap()
}

/// Clones a fresh repository and commits one change; returns the repository, the token, the
/// work tree and the upstream `main` before the change.
fn repo_with_a_change<'a>(
    stack: &'a Stack,
    prefix: &str,
) -> (String, String, WorkTree<'a>, String) {
    let repo = new_repo(stack, prefix);
    let token = agent_token(stack, &format!("agent-{prefix}"));
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.commit_file(&format!("{prefix}.txt"), b"a change\n");
    (repo, token, work, old)
}

/// Asserts that clone, fetch and ls-remote of `repo` still work with `token`: the fetch gets a
/// branch pushed straight to the upstream meanwhile.
fn assert_reads_still_work(stack: &Stack, repo: &str, token: &str, work: &WorkTree) {
    let writer = WorkTree::clone_direct(stack, &stack.upstream_url(repo));
    let fresh = writer.commit_file("fresh.txt", b"pushed around the gate\n");
    writer
        .git()
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/fresh"])
        .success()
        .unwrap();

    let url = stack.gateway_url(repo);
    let listed = stack
        .git()
        .args(["ls-remote", &url])
        .bearer(token)
        .success()
        .unwrap();
    let main = upstream_ref(stack, repo, MAIN).unwrap();
    assert_contains(&listed.stdout, &format!("{main}\trefs/heads/main"));
    let clone = WorkTree::clone(stack, &url, token);
    assert_eq!(clone.head(), main);
    let fetched = work
        .git()
        .args(["fetch", "origin"])
        .bearer(token)
        .success()
        .unwrap();
    assert_contains(
        &fetched.stderr,
        "* [new branch]      fresh      -> origin/fresh",
    );
    assert_eq!(work.rev_parse("refs/remotes/origin/fresh"), Some(fresh));
}

/// Asserts that every ref of a refused push shows `code`, and that nothing moved upstream.
fn assert_refused_with(stack: &Stack, repo: &str, old: &str, out: &GitOutput, code: &str) {
    assert_refused_push(out);
    assert_contains(
        &out.stderr,
        &format!(" ! [remote rejected] feature -> feature ({code}"),
    );
    assert_contains(
        &out.stderr,
        &format!(" ! [remote rejected] main -> main ({code}"),
    );
    assert_contains(
        &out.stderr,
        &format!("remote: gitgate: push refused: {code}"),
    );
    assert_eq!(upstream_ref(stack, repo, "refs/heads/feature"), None);
    assert_eq!(upstream_ref(stack, repo, MAIN).as_deref(), Some(old));
    assert!(hook_lines(stack, repo).is_empty());
}

#[test]
fn with_the_approval_service_down_pushes_are_refused_and_reads_still_work() {
    let stack = Stack::start().unwrap();
    let (repo, token, work, old) = repo_with_a_change(&stack, "service-down");
    work.git().args(["branch", "feature"]).success().unwrap();
    stack.stop_service();

    let out = work.push(&token, &["origin", "feature", "main"]);
    assert_refused_with(
        &stack,
        &repo,
        &old,
        &out,
        "gitgate:error:approval-unavailable",
    );
    let feature_only = work.push(&token, &["origin", "feature"]);
    assert_refused_push(&feature_only);
    assert_contains(
        &feature_only.stderr,
        " ! [remote rejected] feature -> feature (gitgate:error:approval-unavailable",
    );
    assert_eq!(upstream_ref(&stack, &repo, "refs/heads/feature"), None);
    assert!(
        stack
            .envoy_stat("wasmcustom.gitgate_approval_failures")
            .unwrap()
            >= Some(2)
    );
    assert_reads_still_work(&stack, &repo, &token, &work);

    // Back up, the same push of the feature branch goes through.
    stack.start_service().unwrap();
    let again = work.push(&token, &["origin", "feature"]);
    assert!(again.ok(), "{}", again.stderr);
    assert_eq!(
        upstream_ref(&stack, &repo, "refs/heads/feature"),
        Some(work.head())
    );
}

#[test]
fn with_an_approval_service_that_never_answers_a_push_is_refused_when_the_callout_times_out() {
    let stand_in = StandIn::silent();
    let stack = stack_calling(&stand_in);
    let (repo, token, work, old) = repo_with_a_change(&stack, "silent-service");
    work.git().args(["branch", "feature"]).success().unwrap();

    let started = Instant::now();
    let out = work.push(&token, &["origin", "feature", "main"]);
    let took = started.elapsed();
    assert_refused_with(
        &stack,
        &repo,
        &old,
        &out,
        "gitgate:error:approval-unavailable",
    );
    assert!(
        stand_in.requests() >= 1,
        "the gate never called the stand-in"
    );
    assert!(
        took >= CALLOUT_TIMEOUT,
        "refused before the callout timed out: {took:?}"
    );
    assert_reads_still_work(&stack, &repo, &token, &work);
}

#[test]
fn with_an_approval_service_that_answers_nonsense_a_push_is_refused_as_malformed() {
    let stand_in = StandIn::answering(r#"{"oops":1}"#);
    let stack = stack_calling(&stand_in);
    let (repo, token, work, old) = repo_with_a_change(&stack, "nonsense-service");
    work.git().args(["branch", "feature"]).success().unwrap();

    let out = work.push(&token, &["origin", "feature", "main"]);
    assert_refused_with(
        &stack,
        &repo,
        &old,
        &out,
        "gitgate:error:approval-malformed",
    );
    assert!(
        stand_in.requests() >= 1,
        "the gate never called the stand-in"
    );
    assert_reads_still_work(&stack, &repo, &token, &work);
}

#[test]
fn with_failure_mode_open_a_push_passes_while_the_service_is_down() {
    let stack = Stack::start_with(StackOptions {
        envoy_edits: vec![("failure_mode: closed".into(), "failure_mode: open".into())],
        ..StackOptions::default()
    })
    .unwrap();
    let (repo, token, work, old) = repo_with_a_change(&stack, "fail-open");
    stack.stop_service();

    // Even the protected branch: with no service there is no one to hold it.
    let out = work.push(&token, &["origin", "main"]);
    assert!(out.ok(), "{}", out.stderr);
    let new = work.head();
    assert_contains(
        &out.stderr,
        &format!("{}..{}  main -> main", &old[..7], &new[..7]),
    );
    assert_eq!(upstream_ref(&stack, &repo, MAIN), Some(new.clone()));
    assert_eq!(
        hook_lines(&stack, &repo),
        [format!("{old} {new} refs/heads/main")]
    );
    assert!(
        stack
            .envoy_stat("wasmcustom.gitgate_approval_failures")
            .unwrap()
            >= Some(1)
    );
}
