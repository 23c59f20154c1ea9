//! `GET /v1/audit/...`: the record as JSON, for reviewers and tools.
//!
//! Every route needs a reviewer: a session cookie from the pages, or
//! `Authorization: Bearer <reviewer token>`. The record names who pushed what, which is for
//! reviewers and auditors, not for whoever can reach the port.

use axum::Json;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::record::RecordKind;
use super::store::{self, Drops, RecordQuery};
use super::verify;
use super::view::{self, ExportLine, RecordView, SessionView};
use crate::app::AppState;
use crate::error::AppError;
use crate::session::Session;

/// A reviewer allowed to read the record.
pub struct Auditor {
    /// The reviewer's subject.
    pub subject: String,
}

impl FromRequestParts<AppState> for Auditor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            return match state.verifier().verify_reviewer(token.trim()) {
                Ok(reviewer) => Ok(Auditor {
                    subject: reviewer.subject,
                }),
                Err(_) => Err(AppError::AuditUnauthorized),
            };
        }
        match Session::from_request_parts(parts, state).await {
            Ok(session) => Ok(Auditor {
                subject: session.subject,
            }),
            Err(_) => Err(AppError::AuditUnauthorized),
        }
    }
}

/// The query string of the record and session lists. Times are RFC 3339 or unix milliseconds.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    pub session: Option<String>,
    pub subject: Option<String>,
    pub acting_for: Option<String>,
    pub agent: Option<String>,
    pub person: Option<String>,
    pub repository: Option<String>,
    #[serde(rename = "ref")]
    pub refname: Option<String>,
    pub kind: Option<String>,
    pub commit: Option<String>,
    pub request_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<i64>,
}

impl Filters {
    /// The store query these filters ask for; a 400 when a value is malformed.
    pub fn query(&self) -> Result<RecordQuery, AppError> {
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(kind) => Some(
                RecordKind::parse(kind).ok_or_else(|| AppError::BadAuditQuery {
                    message: format!("kind {kind:?} is not event, verdict or decision"),
                })?,
            ),
            None => None,
        };
        let time = |name: &str, value: &Option<String>| match value.as_deref() {
            Some(text) if !text.is_empty() => {
                parse_time(text)
                    .map(Some)
                    .ok_or_else(|| AppError::BadAuditQuery {
                        message: format!("{name} is neither RFC 3339 nor unix milliseconds"),
                    })
            }
            _ => Ok(None),
        };
        if let Some(commit) = &self.commit
            && !is_commit_prefix(commit)
        {
            return Err(AppError::BadAuditQuery {
                message: "commit is not 4 to 64 lower-case hex digits".to_owned(),
            });
        }
        let text = |value: &Option<String>| value.clone().filter(|v| !v.is_empty());
        Ok(RecordQuery {
            session: text(&self.session),
            subject: text(&self.subject),
            acting_for: text(&self.acting_for),
            agent: text(&self.agent),
            person: text(&self.person),
            repository: text(&self.repository),
            refname: text(&self.refname),
            kind,
            commit: text(&self.commit),
            request_id: text(&self.request_id),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit,
        })
    }
}

/// RFC 3339 or unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// 4 to 64 lower-case hex digits: a commit id or a prefix of one.
pub fn is_commit_prefix(text: &str) -> bool {
    (4..=64).contains(&text.len()) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(super) async fn get_records(
    State(state): State<AppState>,
    _auditor: Auditor,
    Query(filters): Query<Filters>,
) -> Result<Json<Vec<RecordView>>, AppError> {
    let query = filters.query()?;
    let records = store::records(state.store().pool(), &query)
        .await
        .map_err(AppError::AuditStore)?;
    Ok(Json(records.iter().map(RecordView::new).collect()))
}

pub(super) async fn get_sessions(
    State(state): State<AppState>,
    _auditor: Auditor,
    Query(filters): Query<Filters>,
) -> Result<Json<Vec<SessionView>>, AppError> {
    let query = filters.query()?;
    let heads = store::sessions(state.store().pool(), &query)
        .await
        .map_err(AppError::AuditStore)?;
    Ok(Json(heads.iter().map(SessionView::new).collect()))
}

pub(super) async fn get_session(
    State(state): State<AppState>,
    _auditor: Auditor,
    Path(session): Path<String>,
) -> Result<Json<view::SessionTimeline>, AppError> {
    view::session_timeline(state.store().pool(), &session)
        .await
        .map_err(AppError::AuditStore)?
        .map(Json)
        .ok_or(AppError::AuditNotFound {
            what: format!("no audit session {session:?}"),
        })
}

pub(super) async fn get_export(
    State(state): State<AppState>,
    _auditor: Auditor,
    Path(session): Path<String>,
) -> Result<Response, AppError> {
    export(&state, &session).await
}

/// The JSON Lines export of one session, in chain order.
pub(super) async fn export(state: &AppState, session: &str) -> Result<Response, AppError> {
    let records = store::session_records(state.store().pool(), session)
        .await
        .map_err(AppError::AuditStore)?;
    let mut body = String::new();
    for record in &records {
        // An ExportLine is plain data; serialising it cannot fail.
        body.push_str(&serde_json::to_string(&ExportLine::new(record)).unwrap_or_default());
        body.push('\n');
    }
    let file = format!(
        "attachment; filename=\"session-{}.jsonl\"",
        session
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            })
            .collect::<String>()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

pub(super) async fn get_commit(
    State(state): State<AppState>,
    _auditor: Auditor,
    Path(commit): Path<String>,
) -> Result<Json<view::CommitReport>, AppError> {
    if !is_commit_prefix(&commit) {
        return Err(AppError::BadAuditQuery {
            message: "a commit is 4 to 64 lower-case hex digits".to_owned(),
        });
    }
    let report = view::commit_report(state.store(), &commit)
        .await
        .map_err(AppError::AuditStore)?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize)]
pub(super) struct VerifyQuery {
    session: Option<String>,
}

pub(super) async fn get_verify(
    State(state): State<AppState>,
    _auditor: Auditor,
    Query(query): Query<VerifyQuery>,
) -> Result<Json<verify::Report>, AppError> {
    let session = query.session.filter(|s| !s.is_empty());
    let report = verify::verify(state.store().pool(), session.as_deref())
        .await
        .map_err(AppError::AuditStore)?;
    Ok(Json(report))
}

/// The drop counters: stored, and counted by this process but not stored yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropsView {
    /// Dropped by the filter's workers.
    pub filter: u64,
    /// Dropped by the service's read queue, including those not stored yet.
    pub service: u64,
    /// Of `service`, those this process counted but has not stored yet.
    pub service_unstored: u64,
    /// The read queue's capacity.
    pub queue_capacity: usize,
}

/// The drop counters as the API and the pages show them.
pub async fn drops_view(state: &AppState) -> Result<DropsView, AppError> {
    let Drops { filter, service } = store::drops(state.store().pool())
        .await
        .map_err(AppError::AuditStore)?;
    let unstored = state.audit().unstored_drops();
    Ok(DropsView {
        filter,
        service: service.saturating_add(unstored),
        service_unstored: unstored,
        queue_capacity: state.settings().audit_read_queue,
    })
}

pub(super) async fn get_drops(
    State(state): State<AppState>,
    _auditor: Auditor,
) -> Result<Json<DropsView>, AppError> {
    Ok(Json(drops_view(&state).await?))
}
