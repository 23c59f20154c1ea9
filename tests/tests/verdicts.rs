//! Per-ref verdicts as the pusher sees them: an allowed push lands, a held one is refused with
//! the ticket git prints, a mixed push is refused as a whole (atomic or not), a policy denial
//! prints its code, and a refused ref is never reported `ok` (git's remote-tracking ref stays).

mod support;

use gitgate_integration::{Outcome, RepoOptions, Stack, StackOptions};
use support::{
    MAIN, WorkTree, agent_token, assert_contains, assert_lacks, assert_no_push_completed,
    assert_refused_push, gateway_pushes, hook_lines, new_repo, new_repo_with, ticket_of,
    upstream_ref,
};

#[test]
fn an_allowed_push_to_a_feature_branch_lands_and_runs_the_upstream_hook() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "allowed");
    let token = agent_token(stack, "agent-allowed");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.git()
        .args(["checkout", "--quiet", "-b", "feature"])
        .success()
        .unwrap();
    let head = work.commit_file("feature.txt", b"a feature\n");

    let out = work.push(&token, &["origin", "feature"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      feature -> feature");
    assert_lacks(&out.stderr, "gitgate:");
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/feature"),
        Some(head.clone())
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old));
    let zero = "0".repeat(40);
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{zero} {head} refs/heads/feature")]
    );
    assert_eq!(work.rev_parse("refs/remotes/origin/feature"), Some(head));
    let pushes = gateway_pushes(stack, &repo);
    assert_eq!(pushes.len(), 1, "{pushes:#?}");
    assert_eq!(pushes[0].outcome, Outcome::Complete);
}

#[test]
fn a_push_to_main_is_held_with_a_ticket_and_never_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "held");
    let token = agent_token(stack, "agent-held");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.commit_file("main.txt", b"straight to main\n");

    let out = work.push(&token, &["origin", "main"]);
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
    assert!(
        hook_lines(stack, &repo).is_empty(),
        "{:?}",
        hook_lines(stack, &repo)
    );
    assert_no_push_completed(stack, &repo);
    // git was not told `ok`, so its remote-tracking ref did not move.
    assert_eq!(work.rev_parse("refs/remotes/origin/main"), Some(old));
}

#[test]
fn a_pending_update_pushed_again_is_held_on_the_same_ticket() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "pending");
    let token = agent_token(stack, "agent-pending");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.commit_file("again.txt", b"and again\n");

    let first = work.push(&token, &["origin", "main"]);
    assert_refused_push(&first);
    let second = work.push(&token, &["origin", "main"]);
    assert_refused_push(&second);
    assert_eq!(ticket_of(&first.stderr), ticket_of(&second.stderr));

    // A different update of the same ref is a different question, with a ticket of its own.
    work.commit_file("again.txt", b"and once more\n");
    let third = work.push(&token, &["origin", "main"]);
    assert_refused_push(&third);
    assert_ne!(ticket_of(&first.stderr), ticket_of(&third.stderr));
    assert!(hook_lines(stack, &repo).is_empty());
}

#[test]
fn an_atomic_push_with_a_held_ref_refuses_every_ref_and_moves_none() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "atomic");
    let token = agent_token(stack, "agent-atomic");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    let head = work.commit_file("both.txt", b"feature and main\n");
    work.git().args(["branch", "feature"]).success().unwrap();

    let out = work.push(&token, &["--atomic", "origin", "feature", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    assert_contains(
        &out.stderr,
        " ! [remote rejected] feature -> feature (gitgate:refused:other-ref-refused",
    );
    assert_lacks(&out.stderr, "[new branch]");
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/feature"), None);
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old.clone()));
    assert!(hook_lines(stack, &repo).is_empty());
    assert_no_push_completed(stack, &repo);
    assert_eq!(work.rev_parse("refs/remotes/origin/feature"), None);
    assert_eq!(work.rev_parse("refs/remotes/origin/main"), Some(old));
    assert_eq!(work.head(), head);
}

#[test]
fn a_non_atomic_push_with_a_held_ref_refuses_every_ref_and_moves_none() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "mixed");
    let token = agent_token(stack, "agent-mixed");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.commit_file("both.txt", b"feature and main, not atomic\n");
    work.git().args(["branch", "feature"]).success().unwrap();

    let out = work.push(&token, &["origin", "feature", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    assert_contains(
        &out.stderr,
        " ! [remote rejected] feature -> feature (gitgate:refused:other-ref-refused",
    );
    assert_lacks(&out.stderr, "[new branch]");
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/feature"), None);
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old.clone()));
    assert!(hook_lines(stack, &repo).is_empty());
    assert_no_push_completed(stack, &repo);
    assert_eq!(work.rev_parse("refs/remotes/origin/feature"), None);
    assert_eq!(work.rev_parse("refs/remotes/origin/main"), Some(old));
}

#[test]
fn deleting_main_is_held_like_any_other_update_of_it() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "delete-main");
    let token = agent_token(stack, "agent-delete-main");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.git()
        .args(["checkout", "--quiet", "--detach"])
        .success()
        .unwrap();

    let out = work.push(&token, &["origin", "--delete", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main (gitgate:hold:protected-ref ",
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old.clone()));
    assert!(hook_lines(stack, &repo).is_empty());
    assert_eq!(work.rev_parse("refs/remotes/origin/main"), Some(old));
}

#[test]
fn a_push_to_main_of_a_sha256_repository_is_held_too() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo_with(stack, "sha256-held", RepoOptions::sha256());
    let token = agent_token(stack, "agent-sha256-held");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    work.commit_file("wide.txt", b"held with 64 hex digits\n");

    let out = work.push(&token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old));
    assert!(hook_lines(stack, &repo).is_empty());
}

/// A policy that keeps tags: deleting one is denied.
const KEEP_TAGS_POLICY: &str = "\
rules:
  - name: tags are kept
    code: tag-delete
    match:
      refs: \"refs/tags/**\"
      operations: delete
    action: deny
    reason: tags are never deleted here
default:
  action: allow
";

#[test]
fn a_denial_of_a_custom_policy_is_printed_with_its_code_and_reason() {
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("policy.yaml");
    std::fs::write(&policy, KEEP_TAGS_POLICY).unwrap();
    let stack = Stack::start_with(StackOptions {
        policy: Some(policy),
        ..StackOptions::default()
    })
    .unwrap();
    let repo = new_repo(&stack, "keep-tags");
    let token = agent_token(&stack, "agent-keep-tags");
    let work = WorkTree::clone(&stack, &stack.gateway_url(&repo), &token);
    let head = work.head();
    work.git().args(["tag", "v1"]).success().unwrap();
    let created = work.push(&token, &["origin", "v1"]);
    assert!(created.ok(), "{}", created.stderr);
    assert_eq!(
        upstream_ref(&stack, &repo, "refs/tags/v1"),
        Some(head.clone())
    );
    let hooks_before = hook_lines(&stack, &repo);

    let out = work.push(&token, &["origin", "--delete", "v1"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] v1 (gitgate:deny:tag-delete tags are never deleted here)",
    );
    assert_contains(
        &out.stderr,
        "remote: gitgate: refs/tags/v1 is denied: tags are never deleted here",
    );
    assert_eq!(upstream_ref(&stack, &repo, "refs/tags/v1"), Some(head));
    assert_eq!(hook_lines(&stack, &repo), hooks_before);

    // This policy leaves main open: the built-in protection is gone with it.
    work.commit_file("main.txt", b"main is open under this policy\n");
    let open = work.push(&token, &["origin", "main"]);
    assert!(open.ok(), "{}", open.stderr);
    assert_eq!(upstream_ref(&stack, &repo, MAIN), Some(work.head()));
}
