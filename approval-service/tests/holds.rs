//! `POST /v1/holds/wait`: the long poll that releases a held push the moment it is decided.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::*;

/// Posts a wait request and returns the status and the JSON answer.
async fn wait(service: &TestService, request: &Value) -> (StatusCode, Value) {
    let request = axum::http::Request::post("/v1/holds/wait")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(request.to_string()))
        .expect("a request");
    let response = service.send(request).await;
    let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, json)
}

fn wait_request(request_id: &str, tickets: &[&str], wait_ms: u64) -> Value {
    json!({
        "request_id": request_id,
        "repository": "demo.git",
        "tickets": tickets,
        "wait_ms": wait_ms,
        "pack": {
            "objects": 3, "bytes": 300, "commits_count": 1, "trees": 1, "blobs": 1,
            "commits": [{
                "id": NEW, "parents": [OLD], "author": "Carol <carol@example.com>",
                "author_time": 1_700_000_000, "subject": "Fix the build"
            }]
        }
    })
}

#[tokio::test]
async fn a_wait_answers_approved_as_soon_as_a_reviewer_approves() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let started = Instant::now();
        let request = wait_request("r1", &[&ticket], 20_000);
        let ((answer, answered), approved_at) = tokio::join!(
            async { (wait(&service, &request).await, Instant::now()) },
            async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let mut bob = service.reviewer("bob").await;
                let approved = bob.approve(&ticket).await;
                assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
                Instant::now()
            }
        );
        let elapsed = started.elapsed();
        println!(
            "[{}] released {:?} after the approval was stored",
            db.label,
            answered.saturating_duration_since(approved_at)
        );

        let (status, json) = answer;
        assert_eq!(status, StatusCode::OK, "[{}] {json}", db.label);
        assert_eq!(json["tickets"][0]["ticket"], ticket.as_str());
        assert_eq!(json["tickets"][0]["state"], "approved", "{json}");
        assert_eq!(json["tickets"][0]["decided_by"], json!(["bob"]));
        assert!(
            elapsed < Duration::from_secs(5),
            "[{}] answered after {elapsed:?}, not when approved",
            db.label
        );

        let stored = service.store.ticket(&ticket).await.expect("read");
        let pack = stored
            .and_then(|t| t.pack)
            .expect("the pack is kept on the ticket");
        assert_eq!(
            pack.commits.first().map(|c| c.subject.as_str()),
            Some("Fix the build")
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_wait_answers_denied_with_the_reviewers_reason() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let request = wait_request("r1", &[&ticket], 20_000);
        let (answer, ()) = tokio::join!(wait(&service, &request), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut bob = service.reviewer("bob").await;
            bob.deny(&ticket, "not\nduring the freeze").await;
        });
        let (status, json) = answer;
        assert_eq!(status, StatusCode::OK, "[{}] {json}", db.label);
        assert_eq!(json["tickets"][0]["state"], "denied", "{json}");
        assert_eq!(json["tickets"][0]["reason"], "not during the freeze");
        assert_eq!(json["tickets"][0]["decided_by"], json!(["bob"]));
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_undecided_wait_answers_pending_after_the_capped_wait() {
    for db in TestDatabase::all().await {
        let options = Options {
            hold_wait_max: Some(Duration::from_millis(600)),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let verdicts = service
            .verdicts(&push_many(
                "r1",
                json!({ "subject": "carol" }),
                &[
                    ("refs/heads/main", OLD, NEW),
                    ("refs/heads/main", NEW, NEWER),
                ],
            ))
            .await;
        let first = ticket_of(&verdicts[0]);
        let second = ticket_of(&verdicts[1]);
        let mut bob = service.reviewer("bob").await;
        bob.approve(&first).await;

        let started = Instant::now();
        let (status, json) = wait(&service, &wait_request("r1", &[&first, &second], 60_000)).await;
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK, "[{}] {json}", db.label);
        assert_eq!(json["tickets"][0]["state"], "approved", "{json}");
        assert_eq!(json["tickets"][1]["ticket"], second.as_str());
        assert_eq!(json["tickets"][1]["state"], "pending", "{json}");
        assert!(
            elapsed >= Duration::from_millis(550) && elapsed < Duration::from_secs(5),
            "[{}] the 60 s asked for is capped at 600 ms: {elapsed:?}",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_ticket_not_given_to_this_push_is_expired_at_once() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let mut bob = service.reviewer("bob").await;
        bob.approve(&ticket).await;

        // Another request id, and a made-up ticket: neither may ride on the approval.
        let (status, json) = wait(&service, &wait_request("r-other", &[&ticket], 10_000)).await;
        assert_eq!(status, StatusCode::OK, "[{}] {json}", db.label);
        assert_eq!(json["tickets"][0]["state"], "expired", "{json}");
        let (_, json) = wait(&service, &wait_request("r1", &["T-made-up"], 10_000)).await;
        assert_eq!(json["tickets"][0]["state"], "expired", "{json}");

        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("kept");
        assert!(stored.pack.is_none(), "a stranger's pack is not kept");
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_approval_by_the_pusher_of_a_shared_ticket_does_not_release_their_push() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        // carol opens the ticket; bob pushes the same update and is held on the same ticket.
        let ticket = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let shared = ticket_of(
            &service
                .verdicts(&push("r2", "bob", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        assert_eq!(ticket, shared);
        let mut bob = service.reviewer("bob").await;
        bob.approve(&ticket).await;

        let (_, json) = wait(&service, &wait_request("r2", &[&ticket], 10_000)).await;
        assert_eq!(
            json["tickets"][0]["state"], "denied",
            "[{}] {json}",
            db.label
        );
        let reason = json["tickets"][0]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains("may not approve their own push"),
            "{reason}"
        );
        let (_, json) = wait(&service, &wait_request("r1", &[&ticket], 10_000)).await;
        assert_eq!(json["tickets"][0]["state"], "approved", "{json}");
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_expired_approval_ends_the_wait_as_expired() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let ticket = ticket_of(
            &service
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let mut bob = service.reviewer("bob").await;
        bob.approve(&ticket).await;
        service.clock.advance(Duration::from_secs(48 * 3600));
        let (_, json) = wait(&service, &wait_request("r1", &[&ticket], 10_000)).await;
        assert_eq!(
            json["tickets"][0]["state"], "expired",
            "[{}] {json}",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn malformed_wait_requests_are_refused_with_400() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    for body in [
        json!({ "request_id": "r", "repository": "demo.git", "tickets": [], "wait_ms": 1 }),
        json!({ "request_id": "", "repository": "demo.git", "tickets": ["T-a"], "wait_ms": 1 }),
        json!({ "request_id": "r", "repository": "demo.git", "tickets": ["T-\u{7}"], "wait_ms": 1 }),
        json!({ "request_id": "r" }),
    ] {
        let (status, json) = wait(&service, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {json}");
        assert!(json["error"].is_string(), "{json}");
    }
    service.stop().await;
}

#[tokio::test]
async fn a_decision_on_another_instance_releases_the_wait() {
    for db in TestDatabase::all().await {
        // Two services on one database, as behind a load balancer.
        let waiting = TestService::start(&db).await;
        let deciding = TestService::start(&db).await;
        let ticket = ticket_of(
            &waiting
                .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
                .await[0],
        );
        let started = Instant::now();
        let request = wait_request("r1", &[&ticket], 20_000);
        let (answer, ()) = tokio::join!(wait(&waiting, &request), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut bob = deciding.reviewer("bob").await;
            bob.approve(&ticket).await;
        });
        let (_, json) = answer;
        assert_eq!(
            json["tickets"][0]["state"], "approved",
            "[{}] {json}",
            db.label
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        waiting.stop().await;
        deciding.stop().await;
        db.drop().await;
    }
}
