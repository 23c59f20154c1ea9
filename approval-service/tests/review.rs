//! Issue 6, the service side: OpenID Connect sign-in with PKCE against the development issuer,
//! login CSRF, N-of-group approvals, approvals for a chosen period, the queue's filters and
//! paging, history search, the ticket's commits, and webhook notifications with retries.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn a_reviewer_signs_in_through_the_development_issuer_with_pkce() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut bob = Browser::new(&service);

    let login = bob.get("/login").await;
    assert!(
        login.body.contains("Sign in with the development issuer"),
        "{}",
        login.body
    );
    let start = bob.get("/login/oidc?next=/history").await;
    let to_provider = start.location().expect("a redirect").to_owned();
    assert!(
        to_provider.starts_with("http://gitgate.test/dev/oidc/authorize?"),
        "{to_provider}"
    );
    for part in [
        "code_challenge=",
        "code_challenge_method=S256",
        "state=",
        "nonce=",
    ] {
        assert!(to_provider.contains(part), "{to_provider} lacks {part}");
    }
    let flow_cookie = start
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gitgate_oidc="))
        .expect("the flow cookie");
    assert!(flow_cookie.contains("HttpOnly") && flow_cookie.contains("SameSite=Lax"));

    let signed_in = bob.sign_in_oidc("bob", &["reviewers"], true).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert!(
        signed_in
            .body
            .contains("You are signed in as <strong>bob</strong>")
    );
    let queue = bob.get("/").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert!(queue.body.contains("Signed in as <strong>bob</strong>"));

    // The session carries the groups chosen at the issuer: bob may approve a main update.
    let ticket = ticket_of(
        &service
            .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
            .await[0],
    );
    assert_eq!(bob.approve(&ticket).await.status, StatusCode::SEE_OTHER);
    service.stop().await;
}

#[tokio::test]
async fn a_sign_in_answer_from_another_browser_is_refused() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;

    // The attacker gets a code for their own account...
    let mut mallory = Browser::new(&service);
    let start = mallory.get("/login/oidc?next=/").await;
    let form = mallory
        .get(&local_path(start.location().expect("a redirect")))
        .await;
    let mut fields = hidden_fields(&form.body);
    fields.push(("user".into(), "mallory".into()));
    fields.push(("group".into(), "reviewers".into()));
    fields.push(("role".into(), "reviewer".into()));
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let granted = mallory.post("/dev/oidc/authorize", &pairs).await;
    let callback = local_path(granted.location().expect("a redirect to the callback"));

    // ...and sends the callback link to bob, whose browser did not start that sign-in.
    let mut bob = Browser::new(&service);
    let planted = bob.get(&callback).await;
    assert_eq!(planted.status, StatusCode::UNAUTHORIZED, "{}", planted.body);
    assert!(
        planted
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("gitgate_session="))
    );

    // Bob's own flow with mallory's state is refused too.
    bob.get("/login/oidc?next=/").await;
    let swapped = bob.get(&callback).await;
    assert_eq!(swapped.status, StatusCode::UNAUTHORIZED, "{}", swapped.body);
    assert!(
        swapped.body.contains("does not belong to this browser"),
        "{}",
        swapped.body
    );
    service.stop().await;
}

#[tokio::test]
async fn a_user_without_the_reviewer_role_cannot_sign_in() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut dave = Browser::new(&service);
    let refused = dave.sign_in_oidc("dave", &["reviewers"], false).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("Not a reviewer"), "{}", refused.body);
    service.stop().await;
}

#[tokio::test]
async fn a_code_exchange_without_the_pkce_verifier_is_refused() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut bob = Browser::new(&service);
    let start = bob.get("/login/oidc?next=/").await;
    let form = bob
        .get(&local_path(start.location().expect("a redirect")))
        .await;
    let mut fields = hidden_fields(&form.body);
    fields.push(("user".into(), "bob".into()));
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let granted = bob.post("/dev/oidc/authorize", &pairs).await;
    let callback = granted.location().expect("a redirect").to_owned();
    let code = callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("a code");

    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "gitgate-pages"),
            ("redirect_uri", "http://gitgate.test/login/oidc/callback"),
        ])
        .finish();
    let request = axum::http::Request::post("/dev/oidc/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body))
        .expect("a request");
    let answer = service.send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    let json: Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(json["error"], "invalid_grant");
    service.stop().await;
}

#[tokio::test]
async fn with_a_configured_provider_sign_in_links_and_pasted_tokens_are_refused() {
    let db = TestDatabase::sqlite();
    let options = Options {
        oidc: gitgate::oidc::OidcConfig {
            issuer: Some("http://127.0.0.1:9/idp".into()),
            client_id: Some("gitgate".into()),
            ..Default::default()
        },
        ..Options::default()
    };
    let service = TestService::start_with(&db, options).await;
    let token = service.reviewer_token("mallory");
    let mut bob = Browser::new(&service);

    let link = bob.get(&format!("/login?token={token}&next=/")).await;
    assert_eq!(link.status, StatusCode::BAD_REQUEST, "{}", link.body);
    assert!(
        link.set_cookies()
            .iter()
            .all(|c| !c.starts_with("gitgate_session="))
    );
    let form = bob.get("/login").await;
    assert!(
        form.body.contains("Sign in with single sign-on"),
        "{}",
        form.body
    );
    assert!(!form.body.contains("Reviewer token"), "{}", form.body);
    let pasted = bob
        .post(
            "/login",
            &[("csrf", "guess"), ("token", &token), ("next", "/")],
        )
        .await;
    assert_eq!(pasted.status, StatusCode::FORBIDDEN, "{}", pasted.body);
    assert!(
        pasted
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("gitgate_session="))
    );

    // The provider is down: the start of a sign-in says so instead of failing blindly.
    let start = bob.get("/login/oidc").await;
    assert_eq!(start.status, StatusCode::BAD_GATEWAY, "{}", start.body);
    assert!(start.body.contains("Sign-in unavailable"), "{}", start.body);
    service.stop().await;
}

const TWO_OF_GROUP: &str = r#"
rules:
  - name: protect main
    code: protected-ref
    match: { refs: refs/heads/main }
    action: hold
    approvers: reviewers
    approvals: 2
"#;

#[tokio::test]
async fn a_two_of_group_rule_needs_two_different_reviewers() {
    for db in TestDatabase::all().await {
        let options = Options {
            policy: Some(TWO_OF_GROUP),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let request = push("r1", "carol", "refs/heads/main", OLD, NEW);
        let ticket = ticket_of(&service.verdicts(&request).await[0]);

        let mut bob = service.reviewer("bob").await;
        assert_eq!(bob.approve(&ticket).await.status, StatusCode::SEE_OTHER);
        let page = bob.get(&format!("/tickets/{ticket}")).await;
        assert!(
            page.body.contains("Status: <strong>pending</strong>"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("1 of 2 approvals so far"),
            "{}",
            page.body
        );
        assert!(
            page.body.contains("You approved this ticket already"),
            "{}",
            page.body
        );
        let csrf = page.csrf().expect("a csrf field");
        let again = bob
            .post(&format!("/tickets/{ticket}/approve"), &[("csrf", &csrf)])
            .await;
        assert_eq!(
            again.status,
            StatusCode::FORBIDDEN,
            "[{}] {}",
            db.label,
            again.body
        );
        // One approval does not let the update through.
        assert_eq!(service.verdicts(&request).await[0]["decision"], "hold");

        let mut dave = service.reviewer("dave").await;
        assert_eq!(dave.approve(&ticket).await.status, StatusCode::SEE_OTHER);
        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(
            stored.status,
            gitgate::store::TicketStatus::Approved,
            "[{}]",
            db.label
        );
        let decisions = service.store.decisions(&ticket).await.expect("decisions");
        let who: Vec<_> = decisions.iter().map(|d| d.reviewer.as_str()).collect();
        assert_eq!(who, ["bob", "dave"]);
        assert_eq!(
            service
                .verdicts(&push("r2", "carol", "refs/heads/main", OLD, NEW))
                .await[0]["decision"],
            "allow"
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn no_approver_of_a_two_of_group_ticket_may_use_it_for_their_own_push() {
    for db in TestDatabase::all().await {
        let options = Options {
            policy: Some(TWO_OF_GROUP),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let request = push("r1", "carol", "refs/heads/main", OLD, NEW);
        let ticket = ticket_of(&service.verdicts(&request).await[0]);
        let mut bob = service.reviewer("bob").await;
        assert_eq!(bob.approve(&ticket).await.status, StatusCode::SEE_OTHER);
        let mut dave = service.reviewer("dave").await;
        assert_eq!(dave.approve(&ticket).await.status, StatusCode::SEE_OTHER);

        // bob gave the first of the two approvals; the last decider is dave.
        let by_bob = service
            .verdicts(&push("r2", "bob", "refs/heads/main", OLD, NEW))
            .await;
        assert_eq!(by_bob[0]["decision"], "deny", "[{}] {by_bob:?}", db.label);
        assert_eq!(by_bob[0]["code"], "gitgate:deny:self-approved");
        assert_eq!(
            service
                .verdicts(&push("r3", "carol", "refs/heads/main", OLD, NEW))
                .await[0]["decision"],
            "allow",
            "[{}]",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_approval_lasts_the_period_the_reviewer_chose() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let request = push("r1", "carol", "refs/heads/main", OLD, NEW);
    let ticket = ticket_of(&service.verdicts(&request).await[0]);
    let mut bob = service.reviewer("bob").await;
    let page = bob.get(&format!("/tickets/{ticket}")).await;
    assert!(
        page.body
            .contains("<option value=\"900\">15 minutes</option>"),
        "{}",
        page.body
    );
    let csrf = page.csrf().expect("a csrf field");

    let too_long = bob
        .post(
            &format!("/tickets/{ticket}/approve"),
            &[("csrf", &csrf), ("valid_for", "172800")],
        )
        .await;
    assert_eq!(
        too_long.status,
        StatusCode::BAD_REQUEST,
        "{}",
        too_long.body
    );
    let approved = bob
        .post(
            &format!("/tickets/{ticket}/approve"),
            &[("csrf", &csrf), ("valid_for", "900")],
        )
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert_eq!(service.verdicts(&request).await[0]["decision"], "allow");
    service.clock.advance(Duration::from_secs(901));
    assert_eq!(
        service
            .verdicts(&push("r3", "carol", "refs/heads/main", OLD, NEW))
            .await[0]["decision"],
        "hold",
        "after 15 minutes the approval no longer lets the update through"
    );
    service.stop().await;
}

const HOLD_ALL: &str = r#"
rules:
  - name: hold branches
    code: branch-review
    match: { refs: "refs/heads/**" }
    action: hold
    approvers: reviewers
"#;

#[tokio::test]
async fn the_queue_filters_by_requester_and_rule_and_pages_newest_first() {
    for db in TestDatabase::all().await {
        let options = Options {
            policy: Some(HOLD_ALL),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        for n in 0..30 {
            let who = if n % 3 == 0 { "agent-x" } else { "carol" };
            let refname = format!("refs/heads/b{n:02}");
            service
                .verdicts(&push(&format!("r{n}"), who, &refname, OLD, NEW))
                .await;
            // Distinct creation times, so newest first is well defined.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut bob = service.reviewer("bob").await;
        let first = bob.get("/").await;
        assert!(
            first.body.contains("refs/heads/b29"),
            "[{}] newest first",
            db.label
        );
        assert!(!first.body.contains("refs/heads/b04<"), "only one page");
        assert!(first.body.contains("rel=\"next\""), "{}", first.body);
        let second = bob.get("/?page=2").await;
        assert!(second.body.contains("refs/heads/b00"), "{}", second.body);
        assert!(second.body.contains("rel=\"prev\""));

        let agents = bob.get("/?requester=agent-x&rule=hold+branches").await;
        assert_eq!(
            agents.body.matches("<tr>").count() - 1,
            10,
            "{}",
            agents.body
        );
        assert!(agents.body.contains("matching the filter"));
        assert!(!agents.body.contains("carol</td>"), "{}", agents.body);
        let none = bob.get("/?min_age=60").await;
        assert!(
            none.body.contains("No held update matches the filter"),
            "{}",
            none.body
        );
        let bad = bob.get("/?min_age=soon").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn the_history_finds_a_decision_by_its_reason_and_reviewer() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let one = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let two = ticket_of(
            &service
                .verdicts(&push("r2", "carol", "refs/heads/main", NEW, NEWER))
                .await[0],
        );
        let mut bob = service.reviewer("bob").await;
        bob.deny(&one, "Breaks the 100% build").await;
        let mut dave = service.reviewer("dave").await;
        dave.approve(&two).await;

        let found = bob.get("/history?q=100%25+build").await;
        assert!(
            found.body.contains(&one) && !found.body.contains(&two),
            "[{}] {}",
            db.label,
            found.body
        );
        let by_dave = bob.get("/history?q=DAVE").await;
        assert!(
            by_dave.body.contains(&two) && !by_dave.body.contains(&one),
            "{}",
            by_dave.body
        );
        let wildcard = bob.get("/history?q=%25").await;
        assert!(
            wildcard.body.contains(&one),
            "a literal % matches the reason's %"
        );
        assert!(
            !wildcard.body.contains(&two),
            "and nothing else: {}",
            wildcard.body
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn the_ticket_shows_the_commits_of_the_waiting_push_and_its_fast_forward() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = ticket_of(
        &service
            .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
            .await[0],
    );
    let mid = "4444444444444444444444444444444444444444";
    let wait = json!({
        "request_id": "r1", "repository": "demo.git", "tickets": [ticket], "wait_ms": 0,
        "pack": { "objects": 6, "bytes": 600, "commits": [
            { "id": NEW, "parents": [mid], "author": "Carol <carol@example.com>",
              "author_time": 1_700_000_000, "subject": "Ship <it> & tell" },
            { "id": mid, "parents": [OLD], "author": "Carol <carol@example.com>", "subject": "Prepare" }
        ] }
    });
    let request = axum::http::Request::post("/v1/holds/wait")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(wait.to_string()))
        .expect("a request");
    assert_eq!(service.send(request).await.status, StatusCode::OK);

    let mut bob = service.reviewer("bob").await;
    let page = bob.get(&format!("/tickets/{ticket}")).await;
    assert!(
        page.body.contains("Ship &lt;it&gt; &amp; tell"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("2 commits in pack order"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<strong class=\"ok\">yes</strong>"),
        "{}",
        page.body
    );
    service.stop().await;
}

/// A webhook receiver that fails the first `failures` requests with 503.
async fn receiver(
    failures: usize,
) -> (String, Arc<std::sync::Mutex<Vec<Value>>>, Arc<AtomicUsize>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen2, calls2) = (seen.clone(), calls.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::Json<Value>| {
            let (seen, calls) = (seen2.clone(), calls2.clone());
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) < failures {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                seen.lock().expect("the list").push(body.0);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/hook", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen, calls)
}

#[tokio::test]
async fn a_webhook_is_told_of_each_hold_and_decision_and_retried_until_it_answers() {
    for db in TestDatabase::all().await {
        let (url, seen, calls) = receiver(2).await;
        let options = Options {
            webhooks: vec![gitgate::webhooks::WebhookConfig {
                name: "reviewers-chat".into(),
                url: Some(url),
                url_env: None,
                events: None,
                max_attempts: Some(5),
                first_backoff: Some("20ms".into()),
                timeout: Some("2s".into()),
            }],
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let ticket = ticket_of(
            &service
                .verdicts(&agent_push("r1", "agent-7", "alice", "refs/heads/main"))
                .await[0],
        );
        let mut bob = service.reviewer("bob").await;
        bob.deny(&ticket, "not now").await;

        let deadline = Instant::now() + Duration::from_secs(15);
        while seen.lock().expect("the list").len() < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let messages = seen.lock().expect("the list").clone();
        assert_eq!(messages.len(), 2, "[{}] {messages:?}", db.label);
        let hold = messages
            .iter()
            .find(|m| m["gitgate"]["event"] == "hold")
            .expect("a hold message");
        let text = hold["text"].as_str().unwrap_or_default();
        for part in [
            "demo.git",
            "refs/heads/main",
            "agent-7",
            "alice",
            "protect main",
            &ticket,
        ] {
            assert!(text.contains(part), "{text} lacks {part}");
        }
        assert!(
            text.contains(&format!("http://gitgate.test/tickets/{ticket}")),
            "{text}"
        );
        assert_eq!(
            hold["blocks"][1]["fields"].as_array().map(Vec::len),
            Some(4)
        );
        let decision = messages
            .iter()
            .find(|m| m["gitgate"]["event"] == "decision")
            .expect("a decision message");
        assert_eq!(decision["gitgate"]["decision"], "deny");
        assert_eq!(decision["gitgate"]["reason"], "not now");
        assert!(
            calls.load(Ordering::SeqCst) >= 4,
            "two failures, then two deliveries"
        );

        // The receiver has both; the record of the last attempt follows its answer.
        let deliveries = loop {
            let deliveries = service.store.deliveries(&ticket).await.expect("deliveries");
            let delivered = deliveries
                .iter()
                .all(|d| d.status == gitgate::store::DeliveryStatus::Delivered);
            if delivered || Instant::now() > deadline {
                break deliveries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(deliveries.len(), 2, "{deliveries:?}");
        assert!(
            deliveries
                .iter()
                .all(|d| d.status == gitgate::store::DeliveryStatus::Delivered),
            "{deliveries:?}"
        );
        assert!(
            deliveries.iter().map(|d| d.attempts).sum::<i64>() >= 4,
            "{deliveries:?}"
        );
        let page = bob.get(&format!("/tickets/{ticket}")).await;
        assert!(page.body.contains("reviewers-chat"), "{}", page.body);
        assert!(page.body.contains("delivered"), "{}", page.body);
        assert!(!page.body.contains("127.0.0.1"), "the URL is not shown");
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_webhook_that_never_answers_is_recorded_as_failed() {
    let db = TestDatabase::sqlite();
    let (url, _, _) = receiver(usize::MAX).await;
    let options = Options {
        webhooks: vec![gitgate::webhooks::WebhookConfig {
            name: "broken".into(),
            url: Some(url),
            url_env: None,
            events: Some(vec!["hold".into()]),
            max_attempts: Some(3),
            first_backoff: Some("10ms".into()),
            timeout: None,
        }],
        ..Options::default()
    };
    let service = TestService::start_with(&db, options).await;
    let ticket = ticket_of(
        &service
            .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
            .await[0],
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let deliveries = service.store.deliveries(&ticket).await.expect("deliveries");
        if let Some(d) = deliveries.first()
            && d.status == gitgate::store::DeliveryStatus::Failed
        {
            assert_eq!(d.attempts, 3);
            assert_eq!(d.last_status, Some(503));
            break;
        }
        assert!(Instant::now() < deadline, "{deliveries:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    service.stop().await;
}

#[tokio::test]
async fn an_agent_cannot_sign_in_to_review_even_with_the_reviewer_role() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = ticket_of(
        &service
            .verdicts(&agent_push("r1", "agent-7", "alice", "refs/heads/main"))
            .await[0],
    );
    // Another agent of alice's, whose token carries the reviewer role.
    let token = service.token(gitgate::issuer::TokenSpec {
        subject: "agent-9".into(),
        agent: true,
        acting_for: Some("alice".into()),
        reviewer: true,
        ttl: Duration::from_secs(900),
        ..Default::default()
    });
    let mut agent = Browser::new(&service);
    let refused = agent.sign_in(&token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("Not a person"), "{}", refused.body);
    // Nor does the ticket move: it waits for a person.
    let stored = service
        .store
        .ticket(&ticket)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(stored.status, gitgate::store::TicketStatus::Pending);
    service.stop().await;
}

#[tokio::test]
async fn only_the_queue_runs_a_script_and_it_is_served_from_the_service() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut bob = service.reviewer("bob").await;
    let queue = bob.get("/").await;
    let csp = queue
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        queue
            .body
            .contains("<script src=\"/static/queue.js\" defer></script>")
    );
    let script = bob.get("/static/queue.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.body.contains("queue-results"));
    let history = bob.get("/history").await;
    let csp = history
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(!csp.contains("script-src"), "{csp}");
    assert!(
        !history.body.contains("<script"),
        "the other pages need no script"
    );
    service.stop().await;
}

#[tokio::test]
async fn the_development_issuer_refuses_other_clients_redirects_and_requests_without_pkce() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut browser = Browser::new(&service);
    let start = browser.get("/login/oidc?next=/").await;
    let good = local_path(start.location().expect("a redirect"));
    assert_eq!(browser.get(&good).await.status, StatusCode::OK);

    let redirect = "redirect_uri=http%3A%2F%2Fgitgate.test%2Flogin%2Foidc%2Fcallback";
    let evil = "redirect_uri=https%3A%2F%2Fevil.example%2Fcallback";
    for (bad, why) in [
        (good.replace(redirect, evil), "redirect_uri must be"),
        (
            good.replace("client_id=gitgate-pages", "client_id=other"),
            "unknown client",
        ),
        (
            good.replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "PKCE",
        ),
    ] {
        assert_ne!(bad, good, "the URL has the parameter to change");
        let refused = browser.get(&bad).await;
        assert_eq!(
            refused.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            refused.body
        );
        assert!(refused.body.contains(why), "{bad}: {}", refused.body);
        assert!(
            refused.location().is_none(),
            "never redirected to an unchecked URI"
        );
    }

    // The form's own CSRF token is required too.
    let refused = browser
        .post("/dev/oidc/authorize", &[("user", "bob"), ("csrf", "guess")])
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("CSRF"), "{}", refused.body);
    service.stop().await;
}
