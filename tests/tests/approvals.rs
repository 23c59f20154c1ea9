//! A held push and its ticket on the reviewer pages: another reviewer's approval lets the same
//! push through, a denial sticks and tells the pusher why, and the person an agent acts for
//! cannot approve the agent's push.

mod support;

use gitgate_integration::Stack;
use support::{
    MAIN, PERSON, Reviewer, WorkTree, agent_token, assert_contains, assert_refused_push,
    hook_lines, new_repo, sign_token, ticket_of, upstream_ref,
};

/// A held push to `main` of a fresh repository: the work tree, the held commit and the ticket.
struct HeldPush<'a> {
    repo: String,
    token: String,
    work: WorkTree<'a>,
    old: String,
    new: String,
    ticket: String,
}

fn held_push<'a>(stack: &'a Stack, prefix: &str) -> HeldPush<'a> {
    let repo = new_repo(stack, prefix);
    let token = agent_token(stack, &format!("agent-{prefix}"));
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    let new = work.commit_file(&format!("{prefix}.txt"), b"needs a review\n");
    let out = work.push(&token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "(gitgate:hold:protected-ref ");
    let ticket = ticket_of(&out.stderr);
    HeldPush {
        repo,
        token,
        work,
        old,
        new,
        ticket,
    }
}

#[test]
fn a_held_push_goes_through_once_another_reviewer_approves_it() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let held = held_push(stack, "approved");
    let bob = Reviewer::sign_in(stack, "bob");

    let page = bob.ticket_page(&held.ticket).text();
    assert_contains(&page, "refs/heads/main");
    assert_contains(&page, &held.new);
    assert_contains(&page, "agent-approved");
    assert_eq!(bob.ticket_status(&held.ticket), "pending");

    let approved = bob.approve(&held.ticket);
    assert_eq!(approved.status, 303, "{}", approved.text());
    assert_eq!(
        approved.header("location"),
        Some(format!("/tickets/{}", held.ticket).as_str())
    );
    assert_eq!(bob.ticket_status(&held.ticket), "approved");
    assert_eq!(
        upstream_ref(stack, &held.repo, MAIN),
        Some(held.old.clone())
    );

    let out = held.work.push(&held.token, &["origin", "main"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(
        &out.stderr,
        &format!("{}..{}  main -> main", &held.old[..7], &held.new[..7]),
    );
    assert_eq!(
        upstream_ref(stack, &held.repo, MAIN),
        Some(held.new.clone())
    );
    assert_eq!(
        hook_lines(stack, &held.repo),
        [format!("{} {} refs/heads/main", held.old, held.new)]
    );
    assert_eq!(
        held.work.rev_parse("refs/remotes/origin/main"),
        Some(held.new)
    );
}

#[test]
fn an_approval_covers_only_the_update_it_was_given_for() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let held = held_push(stack, "approved-once");
    let bob = Reviewer::sign_in(stack, "bob");
    assert_eq!(bob.approve(&held.ticket).status, 303);

    // Another commit on top is another update of main: held again, on a new ticket.
    held.work
        .commit_file("more.txt", b"not what was approved\n");
    let out = held.work.push(&held.token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    assert_ne!(ticket_of(&out.stderr), held.ticket);
    assert_eq!(upstream_ref(stack, &held.repo, MAIN), Some(held.old));
    assert!(hook_lines(stack, &held.repo).is_empty());
}

#[test]
fn a_denial_sticks_and_the_re_push_shows_the_reviewers_reason() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let held = held_push(stack, "denied");
    let bob = Reviewer::sign_in(stack, "bob");

    let denied = bob.deny(&held.ticket, "use a PR");
    assert_eq!(denied.status, 303, "{}", denied.text());
    assert_eq!(bob.ticket_status(&held.ticket), "denied");
    assert_contains(&bob.ticket_page(&held.ticket).text(), "use a PR");

    for _ in 0..2 {
        let out = held.work.push(&held.token, &["origin", "main"]);
        assert_refused_push(&out);
        // The service names who denied which ticket before the reviewer's reason.
        let reason = format!("bob denied {}: use a PR", held.ticket);
        assert_contains(
            &out.stderr,
            &format!(" ! [remote rejected] main -> main (gitgate:deny:reviewer-denied {reason})"),
        );
        assert_contains(
            &out.stderr,
            &format!("remote: gitgate: refs/heads/main is denied: {reason}"),
        );
    }
    assert_eq!(
        upstream_ref(stack, &held.repo, MAIN),
        Some(held.old.clone())
    );
    assert!(hook_lines(stack, &held.repo).is_empty());
    assert_eq!(
        held.work.rev_parse("refs/remotes/origin/main"),
        Some(held.old)
    );

    // A decided ticket takes no second decision.
    assert_eq!(bob.approve(&held.ticket).status, 409);
}

#[test]
fn the_person_an_agent_acts_for_cannot_approve_its_push() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let held = held_push(stack, "self-approval");
    let alice = Reviewer::sign_in(stack, PERSON);

    let page = alice.ticket_page(&held.ticket).text();
    assert_contains(&page, "pushed this update on your behalf");
    assert!(
        !page.contains("/approve\""),
        "alice is offered the approve form:\n{page}"
    );

    // The session's CSRF token is on every page (the sign-out form): a hand-made POST with it
    // is what a reviewer without the button could still send.
    let refused = alice.approve(&held.ticket);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_contains(&refused.text(), "Separation of duties");
    assert_eq!(alice.ticket_status(&held.ticket), "pending");

    let out = held.work.push(&held.token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    assert_eq!(ticket_of(&out.stderr), held.ticket);
    assert_eq!(upstream_ref(stack, &held.repo, MAIN), Some(held.old));
    assert!(hook_lines(stack, &held.repo).is_empty());
}

#[test]
fn the_agent_itself_cannot_approve_its_push_either() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let held = held_push(stack, "agent-approval");
    let agent = Reviewer::sign_in(stack, "agent-agent-approval");

    let refused = agent.approve(&held.ticket);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_contains(&refused.text(), "Separation of duties");
    assert_eq!(agent.ticket_status(&held.ticket), "pending");
}

#[test]
fn an_rfc_8693_actor_pushes_for_the_person_its_token_was_issued_to() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "actor-claim");
    // A token exchanged by carol for her agent (RFC 8693 section 4.1): `sub` is carol, the
    // actor is the agent. The filter reads `act.sub` by its own path into jwt_authn's payload.
    let token = sign_token(
        stack,
        serde_json::json!({"sub": "carol", "act": {"sub": "agent-actor-claim"}}),
    );
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.commit_file("actor.txt", b"pushed by an agent for carol\n");
    let out = work.push(&token, &["origin", "main"]);
    assert_refused_push(&out);
    let ticket = ticket_of(&out.stderr);

    let bob = Reviewer::sign_in(stack, "bob");
    let queue = bob.get("/").text();
    let row = queue
        .split("<tr>")
        .find(|row| row.contains(&ticket))
        .unwrap_or_else(|| panic!("no row for {ticket}:\n{queue}"));
    assert_contains(
        row,
        "<td>agent-actor-claim <span class=\"tag\">agent</span></td>",
    );
    assert_contains(row, "<td>carol</td>");

    // carol is the person the agent acted for: separation of duties keeps her from approving.
    let carol = Reviewer::sign_in(stack, "carol");
    assert_contains(
        &carol.ticket_page(&ticket).text(),
        "pushed this update on your behalf",
    );
    assert_eq!(carol.approve(&ticket).status, 403);

    // Without an actor, the flat claims still apply: the dev token's agent and act_for.
    let flat = agent_token(stack, "agent-flat-claims");
    let flat_work = WorkTree::clone(stack, &stack.gateway_url(&repo), &flat);
    flat_work.commit_file("flat.txt", b"pushed by an agent for alice\n");
    let out = flat_work.push(&flat, &["origin", "main"]);
    assert_refused_push(&out);
    let flat_ticket = ticket_of(&out.stderr);
    let queue = bob.get("/").text();
    let row = queue
        .split("<tr>")
        .find(|row| row.contains(&flat_ticket))
        .unwrap_or_else(|| panic!("no row for {flat_ticket}:\n{queue}"));
    assert_contains(
        row,
        "<td>agent-flat-claims <span class=\"tag\">agent</span></td>",
    );
    assert_contains(row, &format!("<td>{PERSON}</td>"));
}
