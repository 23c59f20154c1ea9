//! The audit record end to end, through the real Envoy with the real git client: every request
//! through the gate becomes an event in the approval service's store, grouped by session and
//! chained, and the record tells the story of an agent's push as it happened.
//!
//! The record is read back with the `gitgate audit` command on the stack's own store, as an
//! auditor would. The tests of this file share one stack, and run one at a time because one of
//! them stops and restarts the approval service.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use gitgate_integration::{Binaries, Stack};
use serde_json::Value;
use support::{
    MAIN, PERSON, Reviewer, WorkTree, agent_token, assert_contains, assert_refused_push, new_repo,
    ticket_of, upstream_ref,
};

/// How long the filter may take to deliver an event: a tick, a batch, and after a failure the
/// backoff (`audit.max_backoff_ms`, 10 s by default).
const DELIVERY: Duration = Duration::from_secs(40);

/// One test at a time: the restart test takes the service away from everyone.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The session of a dev token: it carries no session claim, so the token id (`jti`).
fn session_of(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    let claims: Value = serde_json::from_slice(&bytes).expect("JSON claims");
    claims["jti"].as_str().expect("a token id").to_owned()
}

/// The stack's store, as `gitgate audit --database` takes it. The stack keeps its database
/// next to the dev issuer's directory (`<state>/dev` and `<state>/gitgate.db`).
fn database(stack: &Stack) -> String {
    let state: PathBuf = stack
        .dev_issuer_dir()
        .parent()
        .expect("the dev directory is inside the state directory")
        .to_owned();
    format!("sqlite://{}", state.join("gitgate.db").display())
}

/// Runs `gitgate audit --json <args>` on the stack's store: exit code and parsed output.
fn audit(stack: &Stack, args: &[&str]) -> (i32, Value) {
    let out = Command::new(Binaries::locate().gitgate)
        .arg("audit")
        .args(["--database", &database(stack), "--json"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run gitgate audit");
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert!(
        code != 2,
        "gitgate audit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, value)
}

/// The filter's events of `repository`, oldest first, once `done` holds for them.
fn events_until(stack: &Stack, repository: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let (_, records) = audit(
            stack,
            &["events", "--kind", "event", "--repository", repository],
        );
        let mut events: Vec<Value> = records.as_array().cloned().unwrap_or_default();
        events.reverse();
        if done(&events) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "the record of {repository} did not reach the expected state within {DELIVERY:?}:\n\
             {events:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `GateEvent` of a record.
fn event(record: &Value) -> &Value {
    &record["data"]
}

fn service(record: &Value) -> &str {
    event(record)["service"].as_str().unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every event carries the request id Envoy wrote in its access log line. Envoy writes that
/// line when the stream ends and flushes its log now and then, so the last lines may come a
/// moment after the events.
fn assert_in_access_log(stack: &Stack, events: &[Value]) {
    let ids: Vec<String> = events
        .iter()
        .map(|record| {
            let id = event(record)["request_id"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{record:#}");
            format!(" id={id} ")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let log = stack.envoy_log();
        let missing: Vec<&String> = ids.iter().filter(|id| !log.contains(id.as_str())).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "request ids not in Envoy's access log: {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_clone_and_a_fetch_are_read_events_of_the_agents_session() {
    let _serial = serial();
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "audit-read");
    let token = agent_token(stack, "agent-reader");
    let session = session_of(&token);

    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    // Something new upstream, pushed there directly, for the fetch to bring.
    let other = WorkTree::clone_direct(stack, &stack.upstream_url(&repo));
    let new = other.commit_file("upstream.txt", b"from upstream\n");
    other
        .git()
        .args(["push", "--quiet", "origin", "HEAD:refs/heads/other"])
        .success()
        .expect("push to the upstream directly");
    work.git()
        .args(["fetch", "--quiet", "origin", "other"])
        .bearer(&token)
        .success()
        .expect("fetch through the gateway");

    // A request without a token is answered by jwt_authn before the gate: still an event.
    let url = format!(
        "{}/info/refs?service=git-upload-pack",
        stack.gateway_url(&repo)
    );
    let refused = stack.http("GET", &url, &[], Vec::new()).expect("GET");
    assert_eq!(refused.status, 401);

    // clone: info/refs, ls-refs, fetch; fetch: info/refs, ls-refs, fetch.
    let all = events_until(stack, &repo, |events| {
        events
            .iter()
            .filter(|r| service(r) == "upload-pack")
            .count()
            >= 4
            && events.iter().any(|r| event(r)["status"] == 401)
    });
    let (events, unauthenticated): (Vec<Value>, Vec<Value>) =
        all.into_iter().partition(|r| event(r)["status"] != 401);
    let anonymous = event(&unauthenticated[0]);
    assert_eq!(unauthenticated[0]["session"], "anonymous");
    assert!(anonymous["identity"].is_null(), "{anonymous:#}");
    assert_eq!(anonymous["service"], "info-refs");
    assert_eq!(
        strings(&anonymous["notes"]),
        ["the request was answered before it reached the gate"]
    );
    for record in &events {
        let e = event(record);
        assert_eq!(e["kind"], "read", "{e:#}");
        assert_eq!(record["session"], session.as_str());
        assert_eq!(e["identity"]["subject"], "agent-reader");
        assert_eq!(e["identity"]["agent"], true);
        assert_eq!(e["identity"]["acting_for"], PERSON);
        assert_eq!(e["identity"]["token_id"], session.as_str());
        assert_eq!(e["status"], 200, "{e:#}");
        assert_eq!(e["protocol_version"], 2);
    }
    let info_refs: Vec<&Value> = events
        .iter()
        .filter(|r| service(r) == "info-refs")
        .collect();
    assert!(info_refs.len() >= 2, "{events:#?}");
    assert_eq!(event(info_refs[0])["advertised_service"], "git-upload-pack");

    let ls_refs = events
        .iter()
        .find(|r| strings(&event(r)["notes"]).contains(&"command: ls-refs".to_owned()))
        .expect("an ls-refs event");
    assert!(
        strings(&event(ls_refs)["refs"]).contains(&MAIN.to_owned()),
        "{ls_refs:#}"
    );

    // The fetch asked for the new commit and got a pack with it.
    let fetch = events
        .iter()
        .rev()
        .find(|r| strings(&event(r)["wants"]).contains(&new))
        .unwrap_or_else(|| panic!("no event wants {new}: {events:#?}"));
    let pack = &event(fetch)["pack"];
    assert!(pack["objects"].as_u64().unwrap_or(0) >= 3, "{fetch:#}");
    assert!(
        event(fetch)["bytes_out"].as_u64() > pack["bytes"].as_u64(),
        "{fetch:#}"
    );
    assert!(
        event(fetch)["bytes_in"].as_u64().unwrap_or(0) > 0,
        "{fetch:#}"
    );

    assert_in_access_log(stack, &events);
    let stats = stack.envoy_stats().expect("admin /stats");
    assert!(
        stats
            .get("wasmcustom.gitgate_audit_events_delivered")
            .copied()
            .unwrap_or(0)
            >= 6
    );
    assert_eq!(
        stats.get("wasmcustom.gitgate_audit_reads_dropped").copied(),
        Some(0)
    );
}

#[test]
fn the_record_tells_the_story_of_an_agents_push_and_its_approval() {
    let _serial = serial();
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "audit-story");
    let token = agent_token(stack, "agent-story");
    let session = session_of(&token);
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    let commit = work.commit_file("story.txt", b"the agent's change\n");

    // 1. The feature branch is allowed; 2. main is held.
    let out = work.push(
        &token,
        &[
            "-o",
            "reason=story",
            "origin",
            "HEAD:refs/heads/agent/story",
        ],
    );
    assert!(out.ok(), "{}", out.stderr);
    let out = work.push(&token, &["origin", "HEAD:main"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "(gitgate:hold:protected-ref ");
    let ticket = ticket_of(&out.stderr);

    // 3. The person the agent acts for may not approve it; 4. a reviewer does.
    let alice = Reviewer::sign_in(stack, PERSON);
    let refused = alice.approve(&ticket);
    assert_eq!(refused.status, 403, "{}", refused.text());
    let bob = Reviewer::sign_in(stack, "bob");
    assert_eq!(bob.approve(&ticket).status, 303);

    // 5. The same push now goes through.
    let out = work.push(&token, &["origin", "HEAD:main"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(commit.clone()));

    let pushes = |events: &[Value]| -> Vec<Value> {
        events
            .iter()
            .filter(|r| service(r) == "receive-pack" && event(r)["updates"].is_array())
            .cloned()
            .collect()
    };
    let events = events_until(stack, &repo, |events| pushes(events).len() >= 3);
    let pushes = pushes(&events);
    for push in &pushes {
        assert_eq!(event(push)["kind"], "write");
        assert_eq!(push["session"], session.as_str());
    }

    // The allowed push: its update, option, verdict, the upstream's ok, the commit it brought.
    let feature = event(&pushes[0]);
    assert_eq!(feature["updates"][0]["ref"], "refs/heads/agent/story");
    assert_eq!(feature["updates"][0]["old"], "0".repeat(40));
    assert_eq!(feature["updates"][0]["new"], commit.as_str());
    assert_eq!(strings(&feature["push_options"]), ["reason=story"]);
    assert_eq!(feature["verdicts"][0]["decision"], "allow");
    assert_eq!(feature["decision"], "forwarded");
    assert_eq!(feature["upstream"][0]["ref"], "refs/heads/agent/story");
    assert_eq!(feature["upstream"][0]["ok"], true);
    let commits = &feature["pack"]["commits"];
    assert_eq!(commits[0]["id"], commit.as_str(), "{feature:#}");
    assert_eq!(commits[0]["subject"], "Change story.txt");
    assert_contains(commits[0]["author"].as_str().unwrap_or_default(), "<");

    // The held push: the hold, what the pusher was shown, and nothing from the upstream.
    let held = event(&pushes[1]);
    assert_eq!(held["updates"][0]["ref"], MAIN);
    assert_eq!(held["verdicts"][0]["decision"], "hold");
    assert_eq!(held["verdicts"][0]["ticket"], ticket.as_str());
    assert_contains(
        held["decision"].as_str().unwrap_or_default(),
        "refused:gitgate:hold:",
    );
    assert!(held["upstream"].is_null(), "{held:#}");
    assert!(
        strings(&held["shown"]).iter().any(|l| l.contains(&ticket)),
        "{held:#}"
    );

    // The re-push: allowed, and the upstream took it.
    let approved = event(&pushes[2]);
    assert_eq!(approved["decision"], "forwarded");
    assert_eq!(approved["upstream"][0]["ref"], MAIN);
    assert_eq!(approved["upstream"][0]["ok"], true);
    assert_eq!(approved["updates"][0]["old"], old.as_str());

    // `gitgate audit commit`: the session that brought it, both pushes to main, bob's approval.
    let (code, report) = audit(stack, &["commit", &commit]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["sessions"][0]["session"], session.as_str());
    assert_eq!(report["sessions"][0]["subject"], "agent-story");
    assert_eq!(report["sessions"][0]["acting_for"], PERSON);
    let approvals = report["approvals"].as_array().cloned().unwrap_or_default();
    assert_eq!(approvals.len(), 1, "{report:#}");
    assert_eq!(approvals[0]["by"], "bob");
    assert_eq!(approvals[0]["decision"], "approve");
    assert_eq!(approvals[0]["ticket"], ticket.as_str());
    let decisions: Vec<String> = report["pushes"]
        .as_array()
        .map(|p| p.iter().map(|p| p["decision"].to_string()).collect())
        .unwrap_or_default();
    assert!(decisions.len() >= 3, "{report:#}");

    // The session timeline, in the order it happened: each push, then its verdict, and bob's
    // approval between the held push and the one that went through; no approval by alice.
    let (code, timeline) = audit(stack, &["session", &session]);
    assert_eq!(code, 0);
    let steps = timeline["timeline"].as_array().cloned().unwrap_or_default();
    let titles: Vec<String> = steps
        .iter()
        .filter(|s| {
            s["kind"] != "event"
                || s["request"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("POST ") && r.ends_with("/git-receive-pack"))
        })
        .map(|s| s["title"].as_str().unwrap_or_default().to_owned())
        .collect();
    let expected = [
        format!("push {repo}: forwarded"),
        format!("verdict on {repo}: allow"),
        format!("push {repo}: refused:gitgate:hold:protected-ref"),
        format!("verdict on {repo}: hold"),
        format!("bob approved {ticket} (refs/heads/main)"),
        format!("push {repo}: forwarded"),
        format!("verdict on {repo}: allow"),
    ];
    assert_eq!(titles, expected, "{timeline:#}");
    assert!(!timeline.to_string().contains("alice approved"));

    // Every chain checks out.
    let (code, verified) = audit(stack, &["verify"]);
    assert_eq!(code, 0, "{verified:#}");
    assert_in_access_log(stack, &events);

    // `gitgate replay`: the pushed commit fetched by its id from the Git server, shown as the
    // diff it made; the held push shows its hold, the re-push the same change on main.
    let scratch = stack.temp_dir().expect("a scratch directory");
    let into = scratch.path().join("replay.git");
    let out = Command::new(Binaries::locate().gitgate)
        .args(["replay", &session, "--database", &database(stack), "--json"])
        .args(["--upstream", &stack.upstream_url(&repo)])
        .arg("--into")
        .arg(&into)
        .env("NO_COLOR", "1")
        .output()
        .expect("run gitgate replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "gitgate replay failed: {stderr}");
    let replay: Value = serde_json::from_slice(&out.stdout).expect("replay JSON");
    let updates: Vec<&Value> = (replay["pushes"].as_array().into_iter().flatten())
        .flat_map(|p| p["updates"].as_array().into_iter().flatten())
        .collect();
    let shown = |refname: &str| -> Vec<&Value> {
        (updates.iter().copied())
            .filter(|u| u["ref"] == refname)
            .collect()
    };
    let feature = shown("refs/heads/agent/story");
    let diff = feature
        .first()
        .and_then(|u| u["diff"].as_str())
        .unwrap_or_default();
    assert_contains(diff, "+the agent's change");
    let on_main = shown(MAIN);
    assert!(
        on_main.iter().any(|u| u["diff"]
            .as_str()
            .is_some_and(|d| d.contains("+the agent's change"))),
        "{replay:#}"
    );
    assert!(
        !replay.to_string().contains(&token),
        "the replay shows no token"
    );
}

#[test]
fn a_write_event_is_kept_and_delivered_after_the_service_comes_back() {
    let _serial = serial();
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "audit-restart");
    let token = agent_token(stack, "agent-restart");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.commit_file("down.txt", b"pushed while the service is down\n");

    stack.stop_service();
    let out = work.push(&token, &["origin", "HEAD:refs/heads/agent/down"]);
    // Fail closed: no verdict, no push.
    assert_refused_push(&out);
    assert_contains(&out.stderr, "gitgate:error:approval-unavailable");
    // Give the filter time to fail a batch or two while the service is away.
    std::thread::sleep(Duration::from_secs(2));
    stack.start_service().expect("the service starts again");

    let events = events_until(stack, &repo, |events| {
        events
            .iter()
            .any(|r| service(r) == "receive-pack" && event(r)["updates"].is_array())
    });
    let push = events
        .iter()
        .find(|r| service(r) == "receive-pack" && event(r)["updates"].is_array())
        .expect("the push's event");
    assert_eq!(event(push)["kind"], "write");
    assert_eq!(event(push)["updates"][0]["ref"], "refs/heads/agent/down");
    assert_contains(
        event(push)["decision"].as_str().unwrap_or_default(),
        "gitgate:error:approval-unavailable",
    );
    let failed = stack
        .envoy_stat("wasmcustom.gitgate_audit_batches_failed")
        .expect("admin /stats")
        .unwrap_or(0);
    assert!(failed >= 1, "no batch failed while the service was down");
    // The read events of the clone made before the stop are there too, in order.
    assert_eq!(service(&events[0]), "info-refs");
    let (code, verified) = audit(stack, &["verify"]);
    assert_eq!(code, 0, "{verified:#}");
}
