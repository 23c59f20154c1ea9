//! The filter's shared secret with the approval service, through the real Envoy: the harness
//! gives Envoy and the service one random token per stack (in their environments only), the
//! filter reads it through `host_env_keys` and sends it on every callout, so pushes and the
//! audit record work as before; a request posted straight to the service without it is
//! refused; and the token shows up neither in Envoy's admin `/config_dump` nor in any log.

mod support;

use std::time::{Duration, Instant};

use gitgate_core::service_token::HEADER;
use gitgate_integration::{Stack, StackOptions};
use serde_json::{Value, json};
use support::{
    MAIN, WorkTree, agent_token, assert_contains, assert_refused_push, new_repo, ticket_of,
    upstream_ref,
};

/// How long the audit record's batches may take to reach the service.
const DELIVERY: Duration = Duration::from_secs(20);

/// A verdict request as the filter sends it, for one update to `refname`.
fn verdict_request(request_id: &str, refname: &str) -> Value {
    json!({
        "request_id": request_id,
        "repository": "forged.git",
        "identity": { "subject": "mallory" },
        "atomic": false,
        "object_format": "sha1",
        "push_options": [],
        "updates": [{
            "ref": refname,
            "old": "1111111111111111111111111111111111111111",
            "new": "2222222222222222222222222222222222222222",
            "operation": "update",
        }],
    })
}

/// POSTs JSON to the service directly, bypassing the gateway, with the given token header.
fn post_to_service(stack: &Stack, path: &str, token: Option<&str>, body: &Value) -> (u16, String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(token) = token {
        headers.push((HEADER, token));
    }
    let response = stack
        .http(
            "POST",
            &stack.service_url(path),
            &headers,
            body.to_string().into_bytes(),
        )
        .expect("the service answers");
    (response.status, response.text())
}

/// Where `needle` occurs in `text`, without showing either (a failure must not print the token).
fn assert_absent(what: &str, text: &str, needle: &str) {
    if let Some(offset) = text.find(needle) {
        panic!("the filter token is in {what} at byte {offset}");
    }
}

#[test]
fn pushes_are_gated_as_before_and_their_audit_events_are_stored() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "token-push");
    let token = agent_token(stack, "agent-token-push");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);

    // An allowed push: the verdict callout carried the token and was answered.
    work.git()
        .args(["checkout", "--quiet", "-b", "feature"])
        .success()
        .unwrap();
    let head = work.commit_file("feature.txt", b"with the filter token\n");
    let out = work.push(&token, &["origin", "feature"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/feature"), Some(head));

    // A held push gets its ticket from the service, not `approval-unavailable`.
    work.git()
        .args(["checkout", "--quiet", "main"])
        .success()
        .unwrap();
    let old_main = upstream_ref(stack, &repo, MAIN);
    work.commit_file("main.txt", b"held, with the filter token\n");
    let out = work.push(&token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "(gitgate:hold:protected-ref ");
    let ticket = ticket_of(&out.stderr);
    assert_contains(&out.stderr, &format!("/tickets/{ticket}"));
    assert_eq!(upstream_ref(stack, &repo, MAIN), old_main);

    // The audit record's batches (POST /v1/events) are accepted too: delivered, none failed.
    let started = Instant::now();
    loop {
        let stats = stack.envoy_stats().expect("admin /stats");
        let delivered = stats
            .get("wasmcustom.gitgate_audit_events_delivered")
            .copied()
            .unwrap_or(0);
        let failed = stats
            .get("wasmcustom.gitgate_audit_batches_failed")
            .copied()
            .unwrap_or(0);
        assert_eq!(failed, 0, "an audit batch was refused");
        if delivered >= 4 {
            break;
        }
        assert!(
            started.elapsed() < DELIVERY,
            "only {delivered} audit events delivered after {DELIVERY:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let approval_failures = stack
        .envoy_stat("wasmcustom.gitgate_approval_failures")
        .expect("admin /stats")
        .unwrap_or(0);
    assert_eq!(approval_failures, 0, "a verdict callout failed");

    // The filter read the token through WASI's environment in on_configure.
    assert_contains(
        &stack.envoy_log(),
        "approval service token read from GITGATE_FILTER_TOKEN",
    );
}

#[test]
fn a_verdict_request_posted_straight_to_the_service_needs_the_token() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let request = verdict_request("forged-1", "refs/heads/main");

    let (status, body) = post_to_service(stack, "/v1/verdicts", None, &request);
    assert_eq!(status, 401, "{body}");
    assert_contains(&body, "x-gitgate-filter-token header is missing");

    let wrong = "f".repeat(stack.filter_token().len());
    let (status, body) = post_to_service(stack, "/v1/verdicts", Some(&wrong), &request);
    assert_eq!(status, 401, "{body}");
    assert_contains(&body, "is wrong");

    // Forged audit events and hold waits are refused the same way.
    let batch = json!({ "events": [], "dropped_reads": 0 });
    let (status, body) = post_to_service(stack, "/v1/events", None, &batch);
    assert_eq!(status, 401, "{body}");
    let wait = json!({
        "request_id": "forged-1", "repository": "forged.git", "tickets": ["T-1"], "wait_ms": 1,
    });
    let (status, body) = post_to_service(stack, "/v1/holds/wait", None, &wait);
    assert_eq!(status, 401, "{body}");

    // The one who holds the token (the filter) is answered.
    let (status, body) = post_to_service(
        stack,
        "/v1/verdicts",
        Some(stack.filter_token()),
        &verdict_request("forged-2", "refs/heads/feature"),
    );
    assert_eq!(status, 200, "{body}");
    assert_contains(&body, "\"decision\":\"allow\"");

    // The reviewer pages do not ask for it.
    let login = stack
        .http("GET", &stack.service_url("/login"), &[], Vec::new())
        .expect("the sign-in page");
    assert_eq!(login.status, 200);
}

#[test]
fn the_token_is_in_neither_the_config_dump_nor_any_log() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let secret = stack.filter_token().to_owned();

    // Traffic first, so every log has lines about callouts and refusals: a push through the
    // gate (a verdict callout with the token) and a refused direct request.
    let repo = new_repo(stack, "token-logs");
    let token = agent_token(stack, "agent-token-logs");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.git()
        .args(["checkout", "--quiet", "-b", "logs"])
        .success()
        .unwrap();
    work.commit_file("logs.txt", b"what do the logs say\n");
    let out = work.push(&token, &["origin", "logs"]);
    assert!(out.ok(), "{}", out.stderr);
    let wrong = format!("{secret}x");
    let (status, _) = post_to_service(
        stack,
        "/v1/verdicts",
        Some(&wrong),
        &verdict_request("forged-3", "refs/heads/main"),
    );
    assert_eq!(status, 401);

    // The admin interface shows the variable's name, never its value.
    for path in ["/config_dump", "/config_dump?include_eds"] {
        let dump = stack
            .http("GET", &stack.admin_url(path), &[], Vec::new())
            .expect("admin /config_dump");
        assert_eq!(dump.status, 200);
        let text = dump.text();
        assert_contains(&text, "host_env_keys");
        assert_contains(&text, "GITGATE_FILTER_TOKEN");
        assert_absent(&format!("admin {path}"), &text, &secret);
    }

    assert_absent("Envoy's log", &stack.envoy_log(), &secret);
    assert_absent("the service's log", &stack.service_log(), &secret);
    assert_absent("the upstream's log", &stack.upstream_output(), &secret);
    // The service logged the refusal, saying only what was wrong.
    assert_contains(&stack.service_log(), "filter token wrong");
}

#[test]
fn a_gate_without_the_token_starts_under_missing_warn_but_gets_no_verdict() {
    // Envoy still has the variable, but the VM is not given it: the gate starts (warn), sends
    // no token, and the service refuses it, so the push fails closed instead of passing.
    let unlisted = "host_env_keys: [GITGATE_FILTER_TOKEN_NOT_LISTED]";
    let stack = Stack::start_with(StackOptions {
        envoy_edits: vec![
            (
                "host_env_keys: [GITGATE_FILTER_TOKEN]".to_owned(),
                unlisted.to_owned(),
            ),
            (
                "\n                      failure_mode: closed\n".to_owned(),
                "\n                      failure_mode: closed\n                      \
                 token: { missing: warn }\n"
                    .to_owned(),
            ),
        ],
        ..StackOptions::default()
    })
    .expect("the stack starts");
    let repo = new_repo(&stack, "token-missing");
    let token = agent_token(&stack, "agent-token-missing");
    let work = WorkTree::clone(&stack, &stack.gateway_url(&repo), &token);
    work.git()
        .args(["checkout", "--quiet", "-b", "feature"])
        .success()
        .unwrap();
    let old = upstream_ref(&stack, &repo, "refs/heads/feature");
    work.commit_file("feature.txt", b"no token, no verdict\n");

    let out = work.push(&token, &["origin", "feature"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "gitgate:error:approval-unavailable");
    assert_eq!(upstream_ref(&stack, &repo, "refs/heads/feature"), old);
    assert_contains(
        &stack.envoy_log(),
        "GITGATE_FILTER_TOKEN is not set: callouts to the approval service carry no token",
    );
    assert_contains(&stack.service_log(), "filter token missing");
}
