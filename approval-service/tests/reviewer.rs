//! The reviewer pages: sign-in, CSRF, separation of duties, and the decision forms.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use gitgate::issuer::TokenSpec;
use gitgate::store::TicketStatus;
use support::*;

/// Holds a main update and returns its ticket.
async fn held_ticket(service: &TestService, request: &serde_json::Value) -> String {
    ticket_of(&service.verdicts(request).await[0])
}

#[tokio::test]
async fn the_pusher_cannot_approve_their_own_update() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = held_ticket(&service, &push("r1", "carol", "refs/heads/main", OLD, NEW)).await;
        let mut carol = service.reviewer("carol").await;

        let page = carol.get(&format!("/tickets/{ticket}")).await;
        assert!(
            page.body.contains("another reviewer must decide it"),
            "{}",
            page.body
        );
        assert!(
            !page.body.contains("/approve\""),
            "no approve form for the pusher"
        );

        let csrf = page.csrf().expect("the sign-out form's token");
        let refused = carol
            .post(&format!("/tickets/{ticket}/approve"), &[("csrf", &csrf)])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "[{}]", db.label);
        assert!(
            refused.body.contains("Separation of duties"),
            "{}",
            refused.body
        );
        assert!(
            refused.body.contains("You pushed this update as carol"),
            "{}",
            refused.body
        );
        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.status, TicketStatus::Pending);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn the_person_an_agent_acts_for_cannot_approve_its_update() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = held_ticket(
            &service,
            &agent_push("r1", "agent-7", "alice", "refs/heads/main"),
        )
        .await;
        let mut alice = service.reviewer("alice").await;
        let csrf = alice.csrf_for(&ticket).await;

        for action in ["approve", "deny"] {
            let refused = alice
                .post(
                    &format!("/tickets/{ticket}/{action}"),
                    &[("csrf", &csrf), ("reason", "x")],
                )
                .await;
            assert_eq!(
                refused.status,
                StatusCode::FORBIDDEN,
                "[{}] {action}",
                db.label
            );
            assert!(
                refused
                    .body
                    .contains("agent-7 pushed this update on your behalf"),
                "{}",
                refused.body
            );
        }
        let again = service
            .verdicts(&agent_push("r2", "agent-7", "alice", "refs/heads/main"))
            .await;
        assert_eq!(again[0]["decision"], "hold", "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn separation_of_duties_ignores_the_case_of_names() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = held_ticket(&service, &push("r1", "Carol", "refs/heads/main", OLD, NEW)).await;
    let refused = service.reviewer("carol").await.approve(&ticket).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    service.stop().await;
}

#[tokio::test]
async fn a_form_without_the_csrf_token_is_refused() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = held_ticket(
            &service,
            &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
        )
        .await;
        let mut bob = service.reviewer("bob").await;

        let missing = bob
            .post(&format!("/tickets/{ticket}/approve"), &[("comment", "ok")])
            .await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "[{}]", db.label);
        assert!(missing.body.contains("CSRF"), "{}", missing.body);

        let wrong = bob
            .post(
                &format!("/tickets/{ticket}/deny"),
                &[("csrf", "forged"), ("reason", "no")],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "[{}]", db.label);

        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.status, TicketStatus::Pending, "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn another_sessions_csrf_token_is_refused() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = held_ticket(
        &service,
        &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
    )
    .await;
    let mut dave = service.reviewer("dave").await;
    let daves_csrf = dave.csrf_for(&ticket).await;
    let mut bob = service.reviewer("bob").await;
    let refused = bob
        .post(
            &format!("/tickets/{ticket}/approve"),
            &[("csrf", &daves_csrf)],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    service.stop().await;
}

#[tokio::test]
async fn a_non_reviewer_token_cannot_sign_in() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let token = service.token(TokenSpec {
        subject: "agent-7".into(),
        agent: true,
        groups: vec!["reviewers".into()],
        ttl: Duration::from_secs(900),
        ..TokenSpec::default()
    });
    let mut browser = Browser::new(&service);
    let refused = browser.sign_in(&token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("does not carry the role reviewer"),
        "{}",
        refused.body
    );
    assert!(
        refused
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("gitgate_session="))
    );
    assert_eq!(
        browser.get("/").await.status,
        StatusCode::SEE_OTHER,
        "still signed out"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_invalid_or_foreign_token_cannot_sign_in() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut browser = Browser::new(&service);
    let garbage = browser.sign_in("not-a-token").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert!(
        garbage.body.contains("not a well-formed JWT"),
        "{}",
        garbage.body
    );

    let other_dir = tempfile::tempdir().expect("a temporary directory");
    let other = gitgate::issuer::DevIssuer::ensure(other_dir.path()).expect("another issuer");
    let spec = TokenSpec {
        subject: "mallory".into(),
        reviewer: true,
        ttl: Duration::from_secs(900),
        ..TokenSpec::default()
    };
    let foreign = other
        .mint(&spec, time::OffsetDateTime::now_utc().unix_timestamp())
        .expect("token");
    assert_eq!(
        browser.sign_in(&foreign).await.status,
        StatusCode::UNAUTHORIZED
    );
    service.stop().await;
}

#[tokio::test]
async fn the_sign_in_form_needs_its_csrf_cookie() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let token = service.reviewer_token("bob");
    let mut browser = Browser::new(&service);
    let refused = browser
        .post("/login", &[("token", &token), ("csrf", "guess")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .set_cookies()
            .iter()
            .all(|c| !c.starts_with("gitgate_session="))
    );
    service.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_signed_http_only_and_same_site_strict() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut browser = Browser::new(&service);
    let signed_in = browser.sign_in(&service.reviewer_token("bob")).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_in.location(), Some("/"));
    let cookie = signed_in
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gitgate_session="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");

    // A tampered cookie is no session.
    let request = axum::http::Request::get("/")
        .header("cookie", "gitgate_session=%7B%22subject%22%3A%22bob%22%7D")
        .body(axum::body::Body::empty())
        .expect("a request");
    assert_eq!(service.send(request).await.status, StatusCode::SEE_OTHER);
    service.stop().await;
}

#[tokio::test]
async fn pages_without_a_session_send_the_browser_to_sign_in() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut browser = Browser::new(&service);
    for (path, next) in [
        ("/", "%2F"),
        ("/history", "%2Fhistory"),
        ("/tickets/T-x", "%2Ftickets%2FT-x"),
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            page.location(),
            Some(format!("/login?next={next}").as_str())
        );
    }
    let post = browser.post("/tickets/T-x/approve", &[("csrf", "x")]).await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    service.stop().await;
}

#[tokio::test]
async fn a_one_click_link_signs_in_and_links_onward() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = held_ticket(
        &service,
        &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
    )
    .await;
    let token = service.reviewer_token("bob");
    let mut browser = Browser::new(&service);
    let page = browser
        .get(&format!("/login?token={token}&next=/tickets/{ticket}"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(&format!("href=\"/tickets/{ticket}\"")),
        "{}",
        page.body
    );
    assert_eq!(
        browser.get(&format!("/tickets/{ticket}")).await.status,
        StatusCode::OK
    );
    service.stop().await;
}

#[tokio::test]
async fn a_deny_without_a_reason_is_refused() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = held_ticket(
        &service,
        &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
    )
    .await;
    let mut bob = service.reviewer("bob").await;
    let refused = bob.deny(&ticket, "  \n ").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.contains("a reason is required"),
        "{}",
        refused.body
    );
    let stored = service
        .store
        .ticket(&ticket)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, TicketStatus::Pending);
    service.stop().await;
}

const RELEASE_POLICY: &str = r#"
rules:
  - name: protect main
    code: protected-ref
    match: { refs: refs/heads/main }
    action: hold
    approvers: release-managers
"#;

#[tokio::test]
async fn a_reviewer_outside_the_approver_group_cannot_decide() {
    let db = TestDatabase::sqlite();
    let options = Options {
        policy: Some(RELEASE_POLICY),
        ..Options::default()
    };
    let service = TestService::start_with(&db, options).await;
    let ticket = held_ticket(
        &service,
        &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
    )
    .await;

    let refused = service.reviewer("erin").await.approve(&ticket).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("membership in the group release-managers"),
        "{}",
        refused.body
    );

    let token = service.token(TokenSpec {
        subject: "frank".into(),
        reviewer: true,
        groups: vec!["release-managers".into()],
        ttl: Duration::from_secs(900),
        ..TokenSpec::default()
    });
    let mut frank = Browser::new(&service);
    assert_eq!(frank.sign_in(&token).await.status, StatusCode::SEE_OTHER);
    assert_eq!(frank.approve(&ticket).await.status, StatusCode::SEE_OTHER);
    service.stop().await;
}

#[tokio::test]
async fn a_decided_ticket_cannot_be_decided_again() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = held_ticket(
            &service,
            &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
        )
        .await;
        let mut bob = service.reviewer("bob").await;
        let csrf = bob.csrf_for(&ticket).await;
        let first = bob
            .post(&format!("/tickets/{ticket}/approve"), &[("csrf", &csrf)])
            .await;
        assert_eq!(first.status, StatusCode::SEE_OTHER, "[{}]", db.label);
        let second = bob
            .post(
                &format!("/tickets/{ticket}/deny"),
                &[("csrf", &csrf), ("reason", "no")],
            )
            .await;
        assert_eq!(second.status, StatusCode::CONFLICT, "[{}]", db.label);
        assert!(second.body.contains("already approved"), "{}", second.body);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn the_queue_lists_pending_tickets_newest_first_and_the_history_decided_ones() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let older = held_ticket(
            &service,
            &agent_push("r1", "agent-7", "alice", "refs/heads/main"),
        )
        .await;
        service.clock.advance(Duration::from_secs(120));
        let newer = held_ticket(
            &service,
            &push("r2", "agent-8", "refs/heads/main", OLD, NEWER),
        )
        .await;
        let mut bob = service.reviewer("bob").await;

        let queue = bob.get("/").await;
        assert_eq!(queue.status, StatusCode::OK);
        let (at_newer, at_older) = (queue.body.find(&newer), queue.body.find(&older));
        assert!(
            at_newer.is_some() && at_newer < at_older,
            "newest first:\n{}",
            queue.body
        );
        for expected in [
            "<h1>Pending approvals</h1>",
            "demo.git",
            "refs/heads/main",
            "1111111",
            "2222222",
            "agent-7",
            "alice",
            "protect main",
            "2m",
            "<th scope=\"col\">",
        ] {
            assert!(
                queue.body.contains(expected),
                "{expected} missing:\n{}",
                queue.body
            );
        }

        bob.deny(&older, "not now").await;
        let history = bob.get("/history").await;
        assert!(
            history.body.contains(&older) && history.body.contains("not now"),
            "{}",
            history.body
        );
        assert!(
            !history.body.contains(&newer),
            "a pending ticket is not history"
        );
        let queue = bob.get("/").await;
        assert!(
            !queue.body.contains(&older),
            "a decided ticket leaves the queue"
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn the_ticket_page_is_accessible_without_javascript() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let ticket = held_ticket(
        &service,
        &push("r1", "agent-7", "refs/heads/main", OLD, NEW),
    )
    .await;
    let page = service
        .reviewer("bob")
        .await
        .get(&format!("/tickets/{ticket}"))
        .await;
    for expected in [
        "<html lang=\"en\">",
        &format!("<h1>Ticket {ticket}</h1>"),
        "<label for=\"approve-comment\">",
        "<label for=\"deny-reason\">",
        "id=\"deny-reason\" name=\"reason\" rows=\"2\" required",
        "<form method=\"post\"",
        "type=\"hidden\" name=\"csrf\"",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected} missing:\n{}",
            page.body
        );
    }
    assert!(!page.body.contains("<script"), "no JavaScript");
    service.stop().await;
}

#[tokio::test]
async fn an_unknown_ticket_is_a_404_page() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let page = service
        .reviewer("bob")
        .await
        .get("/tickets/T-nothing")
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.body.contains("There is no ticket T-nothing"),
        "{}",
        page.body
    );
    service.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut bob = service.reviewer("bob").await;
    let csrf = bob.get("/").await.csrf().expect("the sign-out form");
    let out = bob.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (out.status, out.location()),
        (StatusCode::SEE_OTHER, Some("/login"))
    );
    assert_eq!(bob.get("/").await.status, StatusCode::SEE_OTHER);
    service.stop().await;
}
