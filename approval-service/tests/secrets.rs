//! Secret bypasses: a push whose objects carry secrets and whose pusher gave a reason is held
//! for the security reviewers, on a ticket that keeps the redacted findings and shows them.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use gitgate::issuer::TokenSpec;
use gitgate::policy::Policy;
use serde_json::{Value, json};
use support::*;

const BLOB: &str = "4444444444444444444444444444444444444444";
const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";
const MAIN_REF: &str = "refs/heads/main";

fn findings() -> Value {
    json!([
        {
            "rule": "github-pat-classic",
            "kind": "blob",
            "object": BLOB,
            "line": 3,
            "offset": 41,
            "path": "config/app.env",
            "commit": NEW,
            "fingerprint": FINGERPRINT,
        },
        {
            "rule": "aws-access-key-id",
            "offset": 7,
            "fingerprint": "fedcba9876543210fedcba9876543210",
        }
    ])
}

/// A push of `refname` carrying the findings, with `reason` as the bypass reason.
fn secret_push(request_id: &str, refname: &str, reason: Option<&str>) -> Value {
    let mut request = agent_push(request_id, "agent-7", "alice", refname);
    request["findings"] = findings();
    if let Some(reason) = reason {
        request["bypass_reason"] = json!(reason);
    }
    request
}

/// A browser signed in as a reviewer in the `security` group.
async fn security_reviewer<'a>(service: &'a TestService, subject: &str) -> Browser<'a> {
    let token = service.token(TokenSpec {
        subject: subject.into(),
        reviewer: true,
        groups: vec!["security".into()],
        ttl: Duration::from_secs(900),
        ..TokenSpec::default()
    });
    let mut browser = Browser::new(service);
    let page = browser.sign_in(&token).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    browser
}

#[tokio::test]
async fn a_push_with_findings_and_a_reason_is_held_for_security_with_the_findings_stored() {
    for db in TestDatabase::all().await {
        let service = TestService::start(&db).await;
        let (status, answer) = service
            .post_verdicts(&secret_push(
                "r1",
                "refs/heads/feature",
                Some("test fixture"),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "[{}] {answer}", db.label);
        assert_eq!(answer["findings_reviewed"], true, "[{}]", db.label);
        let verdict = &answer["verdicts"][0];
        assert_eq!(verdict["code"], "gitgate:hold:secret-bypass");
        let ticket = ticket_of(verdict);

        let stored = service
            .store
            .ticket(&ticket)
            .await
            .expect("reads")
            .expect("the ticket exists");
        assert_eq!(stored.approvers, "security");
        assert_eq!(stored.bypass_reason.as_deref(), Some("test fixture"));
        assert_eq!(
            serde_json::to_value(&stored.findings).unwrap(),
            findings(),
            "[{}]",
            db.label
        );

        // The same push again reuses the pending ticket.
        let again = service
            .verdicts(&secret_push(
                "r2",
                "refs/heads/feature",
                Some("test fixture"),
            ))
            .await;
        assert_eq!(ticket_of(&again[0]), ticket);
        service.stop().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn every_ref_of_a_push_with_findings_is_held() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let mut request = push_many(
        "r1",
        json!({ "subject": "agent-7", "agent": true }),
        &[
            ("refs/heads/feature", OLD, NEW),
            ("refs/heads/other", ZERO, NEW),
        ],
    );
    request["findings"] = findings();
    request["bypass_reason"] = json!("fixtures");
    let verdicts = service.verdicts(&request).await;
    assert_eq!(verdicts.len(), 2);
    let tickets: Vec<String> = verdicts.iter().map(ticket_of).collect();
    assert_ne!(tickets[0], tickets[1], "one ticket per update");
    for verdict in &verdicts {
        assert_eq!(verdict["code"], "gitgate:hold:secret-bypass");
    }
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn the_ticket_page_shows_the_redacted_findings_and_only_security_may_decide() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let verdicts = service
        .verdicts(&secret_push(
            "r1",
            "refs/heads/feature",
            Some("a test fixture"),
        ))
        .await;
    let ticket = ticket_of(&verdicts[0]);

    let mut outsider = service.reviewer("rita").await;
    let page = outsider.get(&format!("/tickets/{ticket}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Deciding this ticket needs membership in the group security"),
        "{}",
        page.body
    );
    // The page's own CSRF token (from its sign-out form) does not make an outsider an approver.
    let refused = outsider.approve(&ticket).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let mut reviewer = security_reviewer(&service, "sam").await;
    let page = reviewer.get(&format!("/tickets/{ticket}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "Secrets in this push",
        "a test fixture",
        "github-pat-classic",
        BLOB,
        "config/app.env",
        FINGERPRINT,
        "aws-access-key-id",
        "byte 7",
    ] {
        assert!(page.body.contains(shown), "{shown} in {}", page.body);
    }
    let approved = reviewer.approve(&ticket).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);

    // The re-push passes: the secrets are approved and the policy allows the branch.
    let again = service
        .verdicts(&secret_push(
            "r2",
            "refs/heads/feature",
            Some("a test fixture"),
        ))
        .await;
    assert_eq!(again, vec![json!({ "decision": "allow" })]);
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_security_approval_does_not_stand_in_for_a_protected_branch_review() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let held = service
        .verdicts(&secret_push("r1", MAIN_REF, Some("fixture")))
        .await;
    assert_eq!(held[0]["code"], "gitgate:hold:secret-bypass");
    let secret_ticket = ticket_of(&held[0]);
    let mut reviewer = security_reviewer(&service, "sam").await;
    reviewer.approve(&secret_ticket).await;

    let next = service
        .verdicts(&secret_push("r2", MAIN_REF, Some("fixture")))
        .await;
    assert_eq!(next[0]["code"], "gitgate:hold:protected-ref");
    let branch_ticket = ticket_of(&next[0]);
    assert_ne!(branch_ticket, secret_ticket);
    let mut branch_reviewer = service.reviewer("rita").await;
    branch_reviewer.approve(&branch_ticket).await;

    let last = service
        .verdicts(&secret_push("r3", MAIN_REF, Some("fixture")))
        .await;
    assert_eq!(last, vec![json!({ "decision": "allow" })]);
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_security_reviewer_cannot_use_their_own_approval() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let held = service
        .verdicts(&secret_push("r1", "refs/heads/feature", Some("fixture")))
        .await;
    let ticket = ticket_of(&held[0]);
    let mut reviewer = security_reviewer(&service, "sam").await;
    reviewer.approve(&ticket).await;

    let mut own = push_many(
        "r2",
        json!({ "subject": "sam" }),
        &[("refs/heads/feature", OLD, NEW)],
    );
    own["findings"] = findings();
    own["bypass_reason"] = json!("fixture");
    let verdicts = service.verdicts(&own).await;
    assert_eq!(verdicts[0]["code"], "gitgate:deny:self-approved");
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_security_denial_sticks() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let held = service
        .verdicts(&secret_push("r1", "refs/heads/feature", Some("please")))
        .await;
    let ticket = ticket_of(&held[0]);
    let mut reviewer = security_reviewer(&service, "sam").await;
    let denied = reviewer.deny(&ticket, "a live key; rotate it").await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER, "{}", denied.body);
    let again = service
        .verdicts(&secret_push("r2", "refs/heads/feature", Some("please")))
        .await;
    assert_eq!(again[0]["decision"], "deny");
    assert_eq!(again[0]["code"], "gitgate:deny:reviewer-denied");
    assert!(
        again[0]["reason"]
            .as_str()
            .unwrap()
            .contains("a live key; rotate it")
    );
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn findings_without_a_bypass_reason_are_denied_and_recorded() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let verdicts = service
        .verdicts(&secret_push("r1", "refs/heads/feature", None))
        .await;
    assert_eq!(verdicts[0]["decision"], "deny");
    assert_eq!(verdicts[0]["code"], "gitgate:deny:secret-detected");
    let records = service
        .store
        .verdicts_for_request("r1")
        .await
        .expect("reads");
    assert_eq!(
        records[0].code.as_deref(),
        Some("gitgate:deny:secret-detected")
    );
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn a_request_without_findings_is_answered_as_before() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let (status, answer) = service
        .post_verdicts(&push("r1", "alice", "refs/heads/feature", OLD, NEW))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, json!({ "verdicts": [{ "decision": "allow" }] }));
    service.stop().await;
    db.drop().await;
}

#[tokio::test]
async fn malformed_findings_are_refused_naming_the_field() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    for (field, value, named) in [
        ("rule", json!("Not A Rule"), "findings[0].rule"),
        ("object", json!("xyz"), "findings[0].object"),
        ("fingerprint", json!("short"), "findings[0].fingerprint"),
        ("path", json!("a\nb"), "findings[0].path"),
        ("kind", json!("banana"), "findings[0].kind"),
    ] {
        let mut request = secret_push("r1", "refs/heads/feature", Some("x"));
        request["findings"][0][field] = value;
        let response = service.post_verdicts_raw(request.to_string()).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{field}");
        assert!(response.body.contains(named), "{field}: {}", response.body);
    }
    service.stop().await;
    db.drop().await;
}

#[test]
fn the_policy_names_who_decides_secret_bypasses() {
    let policy = Policy::from_yaml(
        "secrets:\n  approvers: appsec\n  code: leaked-credential\n  reason: appsec must look\n",
    )
    .expect("compiles");
    assert_eq!(policy.secrets().approvers, "appsec");
    assert_eq!(policy.secrets().code, "gitgate:hold:leaked-credential");
    assert_eq!(policy.secrets().reason, "appsec must look");

    let defaults = Policy::embedded_default().expect("compiles");
    assert_eq!(defaults.secrets().approvers, "security");
    assert_eq!(defaults.secrets().code, "gitgate:hold:secret-bypass");

    let error = Policy::from_yaml("secrets:\n  code: Not Slug\n").expect_err("refused");
    assert!(error.to_string().contains("secrets"), "{error}");
    let error = Policy::from_yaml("secrets:\n  approver: x\n").expect_err("refused");
    assert!(error.to_string().contains("approver"), "{error}");
}
