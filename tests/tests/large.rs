//! Large pushes with Envoy's buffer limits at their defaults: 200 MB of new objects stream
//! through the gate to a feature branch, and the same size pushed to `main` is held without
//! reaching the upstream and without Envoy answering "request too large". Envoy's peak memory
//! (VmHWM) is printed around each push; run with `--nocapture` to see it.

mod support;

use std::sync::Mutex;
use std::time::Instant;

use gitgate_integration::{Outcome, Stack};
use support::{
    MAIN, WorkTree, agent_token, assert_contains, assert_no_push_completed, assert_refused_push,
    gateway_pushes, hook_lines, new_repo, proc_status_kib, ticket_of, upstream_ref, write_random,
};

/// Bytes of new objects in each push.
const PUSH_BYTES: u64 = 200 * 1000 * 1000;

/// Files the bytes are spread over.
const FILES: u64 = 4;

/// Envoy's counter of requests it refused for exceeding a buffer limit (HCM stat).
const TOO_LARGE: &str = "http.gitgate.downstream_rq_too_large";

/// The two pushes run one after the other, so each peak-memory reading belongs to one push.
static ONE_PUSH_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Commits [`PUSH_BYTES`] of random data in [`FILES`] files on the current branch.
///
/// Random data does not compress, so the clone stores it at compression level 0 and as whole
/// objects (`core.bigFileThreshold`): the deflate streams on the wire are then the stored blocks
/// git's default level would end up writing for such data too, without the minutes spent trying
/// to compress and delta it.
fn commit_random_data(work: &WorkTree) -> String {
    work.git()
        .args(["config", "core.compression", "0"])
        .success()
        .unwrap();
    work.git()
        .args(["config", "core.bigFileThreshold", "1m"])
        .success()
        .unwrap();
    for n in 0..FILES {
        write_random(&work.path.join(format!("blob-{n}.bin")), PUSH_BYTES / FILES);
    }
    work.git().args(["add", "."]).success().unwrap();
    work.git()
        .args(["commit", "--quiet", "-m", "Add 200 MB of data"])
        .success()
        .unwrap();
    work.head()
}

/// Envoy's peak resident memory so far, in MiB, from `/proc/<pid>/status`.
fn envoy_peak_mib(stack: &Stack) -> f64 {
    let pid = stack.envoy_pid().expect("envoy runs");
    let kib = proc_status_kib(pid, "VmHWM").expect("VmHWM in /proc/<pid>/status");
    kib as f64 / 1024.0
}

fn too_large(stack: &Stack) -> u64 {
    stack
        .envoy_stat(TOO_LARGE)
        .unwrap()
        .unwrap_or_else(|| panic!("Envoy has no {TOO_LARGE} stat"))
}

#[test]
fn a_200_mb_push_to_a_feature_branch_streams_through_the_gate_and_lands() {
    let _one = ONE_PUSH_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "large-allowed");
    let token = agent_token(stack, "agent-large-allowed");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = commit_random_data(&work);

    let before = envoy_peak_mib(stack);
    let started = Instant::now();
    let out = work.push(&token, &["origin", "HEAD:refs/heads/large"]);
    let took = started.elapsed();
    let after = envoy_peak_mib(stack);
    println!(
        "allowed 200 MB push: {took:.1?}; Envoy VmHWM {before:.1} MiB before, {after:.1} MiB after"
    );

    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      HEAD -> large");
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/large"),
        Some(head.clone())
    );
    let zero = "0".repeat(40);
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{zero} {head} refs/heads/large")]
    );
    let pushes = gateway_pushes(stack, &repo);
    let push = pushes.last().expect("the push reached the upstream");
    assert_eq!(push.outcome, Outcome::Complete, "{push:#?}");
    assert!(push.request_bytes > PUSH_BYTES, "{push:#?}");
    assert_eq!(too_large(stack), 0);
}

#[test]
fn a_200_mb_push_to_main_is_held_without_reaching_the_upstream_or_a_buffer_limit() {
    let _one = ONE_PUSH_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "large-held");
    let token = agent_token(stack, "agent-large-held");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    commit_random_data(&work);

    let before = envoy_peak_mib(stack);
    let started = Instant::now();
    let out = work.push(&token, &["origin", "main"]);
    let took = started.elapsed();
    let after = envoy_peak_mib(stack);
    println!(
        "held 200 MB push: {took:.1?}; Envoy VmHWM {before:.1} MiB before, {after:.1} MiB after"
    );

    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    let ticket = ticket_of(&out.stderr);
    assert_contains(
        &out.stderr,
        &format!(
            "remote: gitgate: refs/heads/main is held for review, approve at {}",
            stack.service_url(&format!("/tickets/{ticket}"))
        ),
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old.clone()));
    assert!(hook_lines(stack, &repo).is_empty());
    assert_eq!(work.rev_parse("refs/remotes/origin/main"), Some(old));
    assert_eq!(too_large(stack), 0);
    assert_no_push_completed(stack, &repo);
}
