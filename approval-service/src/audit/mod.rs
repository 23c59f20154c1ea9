//! The audit record: every request through the gate, every verdict and every reviewer
//! decision, grouped into sessions, kept in order and chained by hash.
//!
//! - [`ingest`]: `POST /v1/events`, the filter's events (writes stored before the answer,
//!   reads through a bounded queue whose drops are counted);
//! - [`record_verdict`] and [`record_decision`]: the service's own facts, appended in the
//!   transaction that records them, before anyone is answered;
//! - [`chain`]: canonical JSON and the SHA-256 links; [`verify`] walks the chains;
//! - [`store`]: the SQL (tables from migration `0003_audit.sql`);
//! - [`view`], [`api`], [`pages`]: the record as JSON, as pages, and a session's timeline.
//!
//! A session is the token's session claim, else its token id, else `anonymous`. Within a
//! session records are numbered from 1 in the order they were stored; the timeline orders them
//! by when they happened, because reads are queued and may be stored after a later write.

pub mod api;
pub mod chain;
pub mod ingest;
pub mod pages;
pub mod record;
pub mod store;
pub mod verify;
pub mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use gitgate_core::api::{EVENTS_PATH, RefVerdict, VerdictRequest};
use sqlx::AnyConnection;

pub use ingest::{DEFAULT_READ_QUEUE, ReadQueue};
pub use record::{Decision, Draft, RecordKind, VerdictData, VerdictUpdate};

use crate::app::AppState;
use crate::store::{Store, StoreError, VerdictRecord};

/// The filter's route of the audit record: event ingestion. Kept apart from [`router`] so that
/// it alone goes behind the filter's token (`crate::filter_auth`).
pub fn events_router() -> Router<AppState> {
    Router::new().route(
        EVENTS_PATH,
        post(ingest::post_events).layer(DefaultBodyLimit::max(ingest::MAX_BATCH_BYTES)),
    )
}

/// The routes of the audit record for people: the query API and the pages.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/records", get(api::get_records))
        .route("/v1/audit/sessions", get(api::get_sessions))
        .route("/v1/audit/sessions/{session}", get(api::get_session))
        .route("/v1/audit/sessions/{session}/export", get(api::get_export))
        .route("/v1/audit/commits/{commit}", get(api::get_commit))
        .route("/v1/audit/verify", get(api::get_verify))
        .route("/v1/audit/drops", get(api::get_drops))
        .route("/audit", get(pages::sessions_page))
        .route("/audit/sessions/{session}", get(pages::session_page))
        .route(
            "/audit/sessions/{session}/export.jsonl",
            get(pages::export_page),
        )
}

/// Appends the `verdict` record of one push to its session's chain, in the verdict handler's
/// transaction: it commits with the verdict rows, before the filter is answered.
///
/// `verdicts` and `records` hold one entry per update of `request`, in order (the records give
/// the rule and the ticket of each verdict).
pub async fn record_verdict(
    conn: &mut AnyConnection,
    request: &VerdictRequest,
    verdicts: &[RefVerdict],
    records: &[VerdictRecord],
    now: i64,
) -> Result<(), StoreError> {
    let data = VerdictData {
        request_id: request.request_id.clone(),
        repository: request.repository.clone(),
        identity: request.identity.clone(),
        atomic: request.atomic,
        push_options: request.push_options.clone(),
        updates: request
            .updates
            .iter()
            .zip(verdicts)
            .zip(records)
            .map(|((update, verdict), record)| VerdictUpdate {
                update: update.clone(),
                verdict: verdict.clone(),
                rule: record.rule.clone(),
                ticket: record.ticket.clone(),
            })
            .collect(),
        findings: request.findings.clone(),
        bypass_reason: request.bypass_reason.clone(),
        pack: request.pack.clone(),
    };
    store::append(conn, vec![Draft::of_verdicts(&data, now)]).await?;
    Ok(())
}

/// Appends a reviewer's `decision` record to the chain of every session whose verdicts named
/// the ticket (else the session of the request that opened it, else `anonymous`), in the
/// caller's transaction. Call it in the transaction that stores the decision.
pub async fn record_decision_in(
    conn: &mut AnyConnection,
    decision: &Decision,
) -> Result<(), StoreError> {
    let mut sessions = store::sessions_of_ticket(conn, &decision.ticket_id).await?;
    if sessions.is_empty() {
        let session = store::session_of_request(conn, &decision.request_id)
            .await?
            .unwrap_or_else(|| record::ANONYMOUS_SESSION.to_owned());
        sessions.push(session);
    }
    let drafts = sessions
        .iter()
        .map(|session| Draft::of_decision(decision, session))
        .collect();
    store::append(conn, drafts).await?;
    Ok(())
}

/// [`record_decision_in`] in a transaction of its own, for a decision already stored.
pub async fn record_decision(store: &Store, decision: &Decision) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    record_decision_in(tx.connection(), decision).await?;
    tx.commit().await
}
