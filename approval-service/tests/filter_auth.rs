//! The filter API behind the filter's token: `/v1/verdicts`, `/v1/holds/wait` and `/v1/events`
//! refuse a missing or wrong token with 401 and answer the right one; the rest of the service
//! does not ask for it; and without a token configured the API stays open.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum_extra::extract::cookie::Key;
use gitgate::clock::Clock;
use gitgate::filter_auth::{FilterToken, HEADER};
use gitgate::issuer::{DevIssuer, TokenVerifier};
use gitgate::policy::Policy;
use gitgate::store::Store;
use gitgate::{AppState, Settings, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::*;
use tempfile::TempDir;
use tower::ServiceExt;

const TOKEN: &str = "4f1d7c0e9b2a48d6a3e5f7091b2c3d4e5f60718293a4b5c6";

/// A service on a fresh SQLite store, with or without a filter token.
struct Service {
    router: Router,
    store: Store,
    _db: TestDatabase,
    _issuer: TempDir,
}

impl Service {
    async fn start(token: Option<&str>) -> Service {
        let db = TestDatabase::sqlite();
        let store = Store::connect(&db.url).await.expect("the store connects");
        let issuer = tempfile::tempdir().expect("a temporary directory");
        DevIssuer::ensure(issuer.path()).expect("a dev issuer");
        let verifier = TokenVerifier::from_issuer_dir(issuer.path()).expect("a verifier");
        let mut state = AppState::new(
            Settings::new(PUBLIC_URL),
            store.clone(),
            Policy::embedded_default().expect("the default policy"),
            verifier,
            Key::generate(),
            Clock::system(),
        );
        if let Some(token) = token {
            state = state.with_filter_token(FilterToken::new(token).expect("a valid token"));
        }
        Service {
            router: app(state),
            store,
            _db: db,
            _issuer: issuer,
        }
    }

    /// POSTs `body` to `path` with the given filter token header (none when `None`).
    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, String) {
        let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(HEADER, token);
        }
        let request = request
            .body(Body::from(body.to_string()))
            .expect("a request");
        self.send(request).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn hold_wait(ticket: &str) -> Value {
    json!({
        "request_id": "r-auth", "repository": "demo.git", "tickets": [ticket], "wait_ms": 1,
    })
}

fn events() -> Value {
    json!({ "events": [], "dropped_reads": 0 })
}

/// A push the default policy holds (it protects `refs/heads/main`), so an answered one leaves
/// a ticket behind.
fn held_push() -> Value {
    push("r-auth", "alice", "refs/heads/main", OLD, NEW)
}

#[tokio::test]
async fn every_filter_endpoint_refuses_a_missing_or_wrong_token_with_401() {
    let service = Service::start(Some(TOKEN)).await;
    let wrong = TOKEN.replace('4', "5");
    let calls = [
        ("/v1/verdicts", held_push()),
        ("/v1/holds/wait", hold_wait("T-1")),
        ("/v1/events", events()),
    ];
    for (path, body) in calls {
        for (label, token) in [("missing", None), ("wrong", Some(wrong.as_str()))] {
            let (status, answer) = service.post(path, token, &body).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {label}: {answer}");
            assert!(answer.contains(label), "{path}: {answer}");
            assert!(!answer.contains(TOKEN), "{path}: {answer}");
        }
    }
    // Nothing was decided or stored for the refused requests.
    let tickets = service.store.pending_tickets(10).await.expect("read");
    assert!(tickets.is_empty(), "{tickets:?}");
    service.store.close().await;
}

#[tokio::test]
async fn every_filter_endpoint_answers_the_right_token() {
    let service = Service::start(Some(TOKEN)).await;
    answers_every_filter_endpoint(&service, Some(TOKEN)).await;
}

/// Posts a held push, waits on its ticket and sends an event batch, each answered 2xx.
async fn answers_every_filter_endpoint(service: &Service, token: Option<&str>) {
    let (status, answer) = service.post("/v1/verdicts", token, &held_push()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let json: Value = serde_json::from_str(&answer).expect("a JSON answer");
    let ticket = ticket_of(&json["verdicts"][0]);
    let (status, answer) = service
        .post("/v1/holds/wait", token, &hold_wait(&ticket))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.contains("pending"), "{answer}");
    let (status, answer) = service.post("/v1/events", token, &events()).await;
    assert!(status.is_success(), "{status} {answer}");
    service.store.close().await;
}

#[tokio::test]
async fn the_token_is_not_asked_for_outside_the_filter_api() {
    let service = Service::start(Some(TOKEN)).await;
    for path in ["/healthz", "/login"] {
        let request = Request::get(path).body(Body::empty()).expect("a request");
        let (status, body) = service.send(request).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // The audit query API keeps its own sign-in: a reviewer is asked for, not the filter.
    let request = Request::get("/v1/audit/sessions")
        .header(HEADER, TOKEN)
        .body(Body::empty())
        .expect("a request");
    let (status, body) = service.send(request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("reviewer"), "{body}");
    service.store.close().await;
}

#[tokio::test]
async fn without_a_configured_token_the_filter_api_stays_open() {
    let service = Service::start(None).await;
    answers_every_filter_endpoint(&service, None).await;
}
