//! The verdict endpoint, end to end through the router, on a real store.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use gitgate::store::VerdictKind;
use serde_json::json;
use support::*;

const POLICY_WITH_DENY: &str = r#"
rules:
  - name: no tag moves by agents
    code: release-tag
    match:
      refs: "refs/tags/v*"
      agent: true
    action: deny
    reason: agents may not move release tags
  - name: protect main
    code: protected-ref
    match:
      refs: refs/heads/main
    action: hold
    approvers: reviewers
    reason: main needs a reviewer
"#;

#[tokio::test]
async fn an_update_of_an_unprotected_ref_is_allowed() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let verdicts = service
            .verdicts(&push("r1", "alice", "refs/heads/feature", OLD, NEW))
            .await;
        assert_eq!(
            verdicts,
            vec![json!({ "decision": "allow" })],
            "[{}]",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_update_of_main_is_held_with_a_ticket_and_its_url() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let verdicts = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let ticket = ticket_of(&verdicts[0]);
        assert!(ticket.starts_with("T-"), "{ticket}");
        assert_eq!(verdicts[0]["code"], "gitgate:hold:protected-ref");
        assert_eq!(verdicts[0]["url"], format!("{PUBLIC_URL}/tickets/{ticket}"));
        assert!(
            verdicts[0]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("protected"))
        );

        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored.pusher.subject, "agent-7");
        assert_eq!(stored.approvers, "reviewers");
        assert_eq!(stored.rule.as_deref(), Some("protect main"));
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn creating_and_deleting_main_are_held_too() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let create = service
            .verdicts(&push("r1", "alice", "refs/heads/main", ZERO, NEW))
            .await;
        let delete = service
            .verdicts(&push("r2", "alice", "refs/heads/main", OLD, ZERO))
            .await;
        assert_eq!(create[0]["decision"], "hold", "[{}]", db.label);
        assert_eq!(delete[0]["decision"], "hold", "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_deny_rule_denies_with_its_code_and_reason() {
    for db in TestDatabase::all().await {
        let options = Options {
            policy: Some(POLICY_WITH_DENY),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let verdicts = service
            .verdicts(&agent_push("r1", "agent-7", "alice", "refs/tags/v1.0"))
            .await;
        assert_eq!(
            verdicts,
            vec![json!({
                "decision": "deny",
                "code": "gitgate:deny:release-tag",
                "reason": "agents may not move release tags",
            })],
            "[{}]",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn verdicts_come_back_one_per_update_in_order() {
    for db in TestDatabase::all().await {
        let options = Options {
            policy: Some(POLICY_WITH_DENY),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let identity = json!({ "subject": "agent-7", "agent": true, "acting_for": "alice" });
        let request = push_many(
            "r1",
            identity,
            &[
                ("refs/heads/feature", OLD, NEW),
                ("refs/heads/main", OLD, NEW),
                ("refs/tags/v2", ZERO, NEW),
            ],
        );
        let verdicts = service.verdicts(&request).await;
        let decisions: Vec<_> = verdicts.iter().map(|v| v["decision"].clone()).collect();
        assert_eq!(
            decisions,
            vec![json!("allow"), json!("hold"), json!("deny")],
            "[{}]",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_pending_identical_update_reuses_its_ticket() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let first = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let again = service
            .verdicts(&push("r2", "agent-8", "refs/heads/main", OLD, NEW))
            .await;
        assert_eq!(ticket_of(&first[0]), ticket_of(&again[0]), "[{}]", db.label);
        assert_eq!(
            service.store.pending_tickets(10).await.expect("list").len(),
            1
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_different_update_of_the_same_ref_gets_a_new_ticket() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let first = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let other = service
            .verdicts(&push("r2", "agent-7", "refs/heads/main", OLD, NEWER))
            .await;
        assert_ne!(ticket_of(&first[0]), ticket_of(&other[0]), "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_approval_by_another_person_lets_the_re_push_through() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let held = service
            .verdicts(&agent_push("r1", "agent-7", "alice", "refs/heads/main"))
            .await;
        let ticket = ticket_of(&held[0]);

        let mut bob = service.reviewer("bob").await;
        let approved = bob.approve(&ticket).await;
        assert_eq!(
            approved.status,
            StatusCode::SEE_OTHER,
            "[{}] {}",
            db.label,
            approved.body
        );

        let again = service
            .verdicts(&agent_push("r2", "agent-7", "alice", "refs/heads/main"))
            .await;
        assert_eq!(
            again,
            vec![json!({ "decision": "allow" })],
            "[{}]",
            db.label
        );
        let records = service
            .store
            .verdicts_for_request("r2")
            .await
            .expect("records");
        assert_eq!(records[0].ticket.as_deref(), Some(ticket.as_str()));
        assert_eq!(
            records[0].reason.as_deref(),
            Some(format!("approved by bob in {ticket}").as_str())
        );

        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("read")
            .expect("stored");
        let review = stored.review.expect("a review");
        assert_eq!(review.by, "bob");
        assert_eq!(review.comment.as_deref(), Some("fine"));
        assert_eq!(review.expires_at, Some(review.at + 24 * 3600 * 1000));
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_approval_cannot_be_used_by_the_reviewer_on_a_ticket_someone_else_opened() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        // carol opens the ticket; bob approves it; then bob's own agent makes the same push.
        let held = service
            .verdicts(&push("r1", "carol", "refs/heads/main", OLD, NEW))
            .await;
        let ticket = ticket_of(&held[0]);
        let approved = service.reviewer("bob").await.approve(&ticket).await;
        assert_eq!(approved.status, StatusCode::SEE_OTHER, "[{}]", db.label);

        let by_bobs_agent = service
            .verdicts(&agent_push("r2", "agent-b", "bob", "refs/heads/main"))
            .await;
        assert_eq!(by_bobs_agent[0]["decision"], "deny", "[{}]", db.label);
        assert_eq!(
            by_bobs_agent[0]["code"], "gitgate:deny:self-approved",
            "[{}]",
            db.label
        );
        let by_bob = service
            .verdicts(&push("r3", "Bob", "refs/heads/main", OLD, NEW))
            .await;
        assert_eq!(by_bob[0]["decision"], "deny", "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_approval_covers_only_the_exact_update_it_was_given_for() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let held = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        service
            .reviewer("bob")
            .await
            .approve(&ticket_of(&held[0]))
            .await;
        let other = service
            .verdicts(&push("r2", "agent-7", "refs/heads/main", OLD, NEWER))
            .await;
        assert_eq!(other[0]["decision"], "hold", "[{}]", db.label);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_denial_sticks_with_the_reviewers_reason() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let held = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let ticket = ticket_of(&held[0]);
        let denied = service
            .reviewer("bob")
            .await
            .deny(&ticket, "tests\nare failing")
            .await;
        assert_eq!(
            denied.status,
            StatusCode::SEE_OTHER,
            "[{}] {}",
            db.label,
            denied.body
        );

        for request_id in ["r2", "r3"] {
            let again = service
                .verdicts(&push(request_id, "agent-7", "refs/heads/main", OLD, NEW))
                .await;
            assert_eq!(again[0]["decision"], "deny", "[{}]", db.label);
            assert_eq!(again[0]["code"], "gitgate:deny:reviewer-denied");
            let reason = again[0]["reason"].as_str().expect("a reason");
            assert_eq!(reason, format!("bob denied {ticket}: tests are failing"));
        }
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn an_expired_approval_holds_the_update_again_with_a_new_ticket() {
    for db in TestDatabase::all().await {
        let options = Options {
            approval_ttl: Duration::from_secs(3600),
            ..Options::default()
        };
        let service = TestService::start_with(&db, options).await;
        let held = service
            .verdicts(&push("r1", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let ticket = ticket_of(&held[0]);
        service.reviewer("bob").await.approve(&ticket).await;

        service.clock.advance(Duration::from_secs(3599));
        let inside = service
            .verdicts(&push("r2", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        assert_eq!(inside[0]["decision"], "allow", "[{}]", db.label);

        service.clock.advance(Duration::from_secs(2));
        let after = service
            .verdicts(&push("r3", "agent-7", "refs/heads/main", OLD, NEW))
            .await;
        let renewed = ticket_of(&after[0]);
        assert_ne!(
            renewed, ticket,
            "[{}] an expired approval opens a new ticket",
            db.label
        );
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn every_verdict_is_on_record_when_the_answer_arrives() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let identity = json!({ "subject": "agent-7", "agent": true, "acting_for": "alice",
                               "token_id": "jti-42" });
        let request = push_many(
            "req-stored",
            identity,
            &[
                ("refs/heads/feature", OLD, NEW),
                ("refs/heads/main", OLD, NEW),
            ],
        );
        let verdicts = service.verdicts(&request).await;

        let records = service
            .store
            .verdicts_for_request("req-stored")
            .await
            .expect("records");
        assert_eq!(records.len(), 2, "[{}]", db.label);
        assert_eq!(records[0].position, 0);
        assert_eq!(records[0].decision, VerdictKind::Allow);
        assert_eq!(records[0].key.refname, "refs/heads/feature");
        assert_eq!(records[1].decision, VerdictKind::Hold);
        assert_eq!(
            records[1].code.as_deref(),
            Some("gitgate:hold:protected-ref")
        );
        assert_eq!(
            records[1].ticket.as_deref(),
            Some(ticket_of(&verdicts[1]).as_str())
        );
        assert_eq!(records[1].rule.as_deref(), Some("protect main"));
        for record in &records {
            assert_eq!(record.key.repository, "demo.git");
            assert_eq!(record.pusher.subject, "agent-7");
            assert!(record.pusher.agent);
            assert_eq!(record.pusher.acting_for.as_deref(), Some("alice"));
            assert_eq!(record.token_id.as_deref(), Some("jti-42"));
            assert_eq!(record.key.old_id, OLD);
            assert_eq!(record.key.new_id, NEW);
        }
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_store_failure_answers_503_and_no_verdict() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        service.store.close().await;
        let (status, json) = service
            .post_verdicts(&push("r1", "alice", "refs/heads/x", OLD, NEW))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "[{}]", db.label);
        assert_eq!(json["error"], "the verdict store is unavailable");
        assert!(json.get("verdicts").is_none());
        db.drop().await;
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_with_a_clear_error() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    for body in ["", "{", "[]", "{\"request_id\": 1}", "\u{0}\u{ff}"] {
        let response = service.post_verdicts_raw(body.to_owned()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body:?}");
        let json: serde_json::Value = serde_json::from_str(&response.body).expect("a JSON error");
        let message = json["error"].as_str().expect("an error message");
        assert!(
            message.starts_with("the body is not a verdict request"),
            "{message}"
        );
    }
    service.stop().await;
}

#[tokio::test]
async fn a_bad_object_id_is_a_400_naming_the_field() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut request = push("r1", "alice", "refs/heads/x", OLD, NEW);
    request["updates"][0]["new"] = json!("ABC");
    let (status, json) = service.post_verdicts(&request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json["error"],
        "updates[0].new is not a 40-digit lower-case hex object id"
    );
    service.stop().await;
}

#[tokio::test]
async fn an_operation_that_contradicts_the_ids_is_a_400() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut request = push("r1", "alice", "refs/heads/x", OLD, NEW);
    request["updates"][0]["operation"] = json!("delete");
    let (status, json) = service.post_verdicts(&request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json["error"],
        "updates[0].operation is \"delete\" but the ids say \"update\""
    );
    service.stop().await;
}

#[tokio::test]
async fn an_empty_subject_or_unknown_object_format_is_a_400() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut request = push("r1", " ", "refs/heads/x", OLD, NEW);
    let (status, json) = service.post_verdicts(&request).await;
    assert_eq!(
        (status, json["error"].clone()),
        (StatusCode::BAD_REQUEST, json!("identity.subject is empty"))
    );
    request["identity"]["subject"] = json!("alice");
    request["object_format"] = json!("md5");
    let (status, _) = service.post_verdicts(&request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    service.stop().await;
}

#[tokio::test]
async fn a_push_without_updates_gets_no_verdicts() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let request = push_many("r1", json!({ "subject": "alice" }), &[]);
    assert!(service.verdicts(&request).await.is_empty());
    service.stop().await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let response = service
        .send(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        (response.status, response.body.as_str()),
        (StatusCode::OK, "ok")
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_pushes_share_one_ticket() {
    for db in TestDatabase::all().await {
        let service = std::sync::Arc::new(TestService::start(&db).await);
        let mut pushes = tokio::task::JoinSet::new();
        for n in 0..8 {
            let service = service.clone();
            pushes.spawn(async move {
                let request = push(&format!("c{n}"), "agent-7", "refs/heads/main", OLD, NEW);
                service.verdicts(&request).await
            });
        }
        let mut tickets = std::collections::BTreeSet::new();
        while let Some(verdicts) = pushes.join_next().await {
            tickets.insert(ticket_of(&verdicts.expect("the push task")[0]));
        }
        assert_eq!(tickets.len(), 1, "[{}] {tickets:?}", db.label);
        for n in 0..8 {
            let records = service
                .store
                .verdicts_for_request(&format!("c{n}"))
                .await
                .expect("rows");
            assert_eq!(records.len(), 1, "[{}] c{n}", db.label);
        }
        service.store.close().await;
        db.drop().await;
    }
}
