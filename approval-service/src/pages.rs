//! The reviewer pages: the queue, the history, a ticket, and the approve and deny forms.
//!
//! Every page needs a reviewer session. The server enforces, on every decision: the session's
//! CSRF token, that the ticket is still pending, separation of duties (the reviewer is neither
//! the pusher nor the person the push was made for) and membership in the approver group.

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::clock::{self, duration_ms};
use crate::error::{AppError, unreadable_form};
use crate::policy::MAX_REASON_CHARS;
use crate::session::Session;
use crate::store::{DecideOutcome, Review, Ticket, TicketStatus, VerdictRecord};
use crate::templates;
use crate::verdicts::one_line;

/// How many tickets the queue and the history show.
const PAGE_LIMIT: i64 = 200;

/// The longest decision comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// The reviewer page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(queue))
        .route("/history", get(history))
        .route("/tickets/{id}", get(ticket))
        .route("/tickets/{id}/approve", post(approve))
        .route("/tickets/{id}/deny", post(deny))
}

/// A ticket as the templates show it.
#[derive(Debug, Serialize)]
struct TicketView {
    id: String,
    repository: String,
    refname: String,
    operation: &'static str,
    old_id: String,
    new_id: String,
    old_short: String,
    new_short: String,
    subject: String,
    agent: bool,
    acting_for: Option<String>,
    rule: String,
    code: String,
    reason: String,
    approvers: String,
    status: &'static str,
    created: String,
    age: String,
    decided_by: Option<String>,
    decided: Option<String>,
    decision_reason: Option<String>,
    decision_comment: Option<String>,
    expires: Option<String>,
    expired: bool,
    /// For a secret bypass: the redacted findings under review (never a value).
    findings: Vec<gitgate_core::api::SecretFinding>,
    /// For a secret bypass: the pusher's reason.
    bypass_reason: Option<String>,
}

impl TicketView {
    fn new(ticket: &Ticket, now: i64) -> Self {
        let review = ticket.review.as_ref();
        TicketView {
            id: ticket.id.clone(),
            repository: ticket.key.repository.clone(),
            refname: ticket.key.refname.clone(),
            operation: ticket.operation.as_str(),
            old_id: ticket.key.old_id.clone(),
            new_id: ticket.key.new_id.clone(),
            old_short: short_id(&ticket.key.old_id),
            new_short: short_id(&ticket.key.new_id),
            subject: ticket.pusher.subject.clone(),
            agent: ticket.pusher.agent,
            acting_for: ticket.pusher.acting_for.clone(),
            rule: ticket.rule.clone().unwrap_or_else(|| "default".to_owned()),
            code: ticket.code.clone(),
            reason: ticket.reason.clone(),
            approvers: ticket.approvers.clone(),
            status: ticket.status.as_str(),
            created: clock::rfc3339(ticket.created_at),
            age: clock::age(ticket.created_at, now),
            decided_by: review.map(|r| r.by.clone()),
            decided: review.map(|r| clock::rfc3339(r.at)),
            decision_reason: review.and_then(|r| r.reason.clone()),
            decision_comment: review.and_then(|r| r.comment.clone()),
            expires: review.and_then(|r| r.expires_at).map(clock::rfc3339),
            expired: ticket.status == TicketStatus::Approved
                && review.and_then(|r| r.expires_at).is_none_or(|t| t <= now),
            findings: ticket.findings.clone(),
            bypass_reason: ticket.bypass_reason.clone(),
        }
    }
}

/// A verdict row as the ticket page shows it.
#[derive(Debug, Serialize)]
struct VerdictView {
    at: String,
    request_id: String,
    subject: String,
    decision: &'static str,
    code: Option<String>,
}

impl VerdictView {
    fn new(record: &VerdictRecord) -> Self {
        VerdictView {
            at: clock::rfc3339(record.decided_at),
            request_id: record.request_id.clone(),
            subject: record.pusher.subject.clone(),
            decision: record.decision.as_str(),
            code: record.code.clone(),
        }
    }
}

/// The first seven hex digits, or `none` for the zero id of a create or delete.
fn short_id(id: &str) -> String {
    if id.bytes().all(|b| b == b'0') {
        "none".to_owned()
    } else {
        id.chars().take(7).collect()
    }
}

async fn queue(State(state): State<AppState>, session: Session) -> Result<Response, AppError> {
    let now = state.clock().now_ms();
    let tickets = state
        .store()
        .pending_tickets(PAGE_LIMIT)
        .await
        .map_err(AppError::PageStore)?;
    let tickets: Vec<_> = tickets.iter().map(|t| TicketView::new(t, now)).collect();
    let page = templates::render(
        "queue.html",
        minijinja::context! {
            title => "Pending approvals", reviewer => session.subject, csrf => session.csrf,
            tickets => tickets,
        },
    )?;
    Ok(templates::html(page).into_response())
}

async fn history(State(state): State<AppState>, session: Session) -> Result<Response, AppError> {
    let now = state.clock().now_ms();
    let tickets = state
        .store()
        .decided_tickets(PAGE_LIMIT)
        .await
        .map_err(AppError::PageStore)?;
    let tickets: Vec<_> = tickets.iter().map(|t| TicketView::new(t, now)).collect();
    let page = templates::render(
        "history.html",
        minijinja::context! {
            title => "Decided tickets", reviewer => session.subject, csrf => session.csrf,
            tickets => tickets,
        },
    )?;
    Ok(templates::html(page).into_response())
}

async fn ticket(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let ticket = load(&state, &id).await?;
    let verdicts = state
        .store()
        .verdicts_for_ticket(&ticket.id)
        .await
        .map_err(AppError::PageStore)?;
    let refusal = may_decide(&session, &ticket).err().map(|e| match e {
        AppError::SeparationOfDuties { message } => format!("{message}."),
        AppError::NotApprover { group } => {
            format!("Deciding this ticket needs membership in the group {group}.")
        }
        other => other.to_string(),
    });
    let now = state.clock().now_ms();
    let notice = match ticket.status {
        TicketStatus::Pending => None,
        TicketStatus::Approved => Some("This ticket is approved."),
        TicketStatus::Denied => Some("This ticket is denied."),
    };
    let view = TicketView::new(&ticket, now);
    let verdicts: Vec<_> = verdicts.iter().map(VerdictView::new).collect();
    let page = templates::render(
        "ticket.html",
        minijinja::context! {
            title => format!("Ticket {}", ticket.id), reviewer => session.subject,
            csrf => session.csrf, t => view, verdicts => verdicts, refusal => refusal,
            notice => notice, approval_ttl => clock::in_words(state.settings().approval_ttl),
            max_reason => MAX_REASON_CHARS, max_comment => MAX_COMMENT_CHARS,
        },
    )?;
    Ok(templates::html(page).into_response())
}

#[derive(Debug, Deserialize)]
struct ApproveForm {
    csrf: Option<String>,
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DenyForm {
    csrf: Option<String>,
    reason: Option<String>,
    comment: Option<String>,
}

async fn approve(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    form: Result<Form<ApproveForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(unreadable_form)?;
    session.check_csrf(form.csrf.as_deref())?;
    let comment = comment(form.comment.as_deref())?;
    let now = state.clock().now_ms();
    let review = Review {
        by: session.subject.clone(),
        at: now,
        reason: None,
        comment,
        expires_at: Some(now.saturating_add(duration_ms(state.settings().approval_ttl))),
    };
    decide(&state, &session, &id, TicketStatus::Approved, review).await
}

async fn deny(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    form: Result<Form<DenyForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(unreadable_form)?;
    session.check_csrf(form.csrf.as_deref())?;
    let raw_reason = form.reason.as_deref().unwrap_or_default();
    if raw_reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::BadForm {
            message: format!("the reason may have at most {MAX_REASON_CHARS} characters"),
        });
    }
    // The reason reaches the pusher in a one-line git status report.
    let reason = one_line(raw_reason);
    if reason.is_empty() {
        return Err(AppError::BadForm {
            message: "a reason is required to deny a ticket".into(),
        });
    }
    let comment = comment(form.comment.as_deref())?;
    let review = Review {
        by: session.subject.clone(),
        at: state.clock().now_ms(),
        reason: Some(reason),
        comment,
        expires_at: None,
    };
    decide(&state, &session, &id, TicketStatus::Denied, review).await
}

/// Checks the reviewer may decide `id`, then records the decision.
async fn decide(
    state: &AppState,
    session: &Session,
    id: &str,
    status: TicketStatus,
    review: Review,
) -> Result<Response, AppError> {
    let ticket = load(state, id).await?;
    if ticket.status != TicketStatus::Pending {
        return Err(AppError::TicketAlreadyDecided {
            id: ticket.id,
            status: ticket.status,
        });
    }
    may_decide(session, &ticket)?;
    let outcome = state
        .store()
        .decide(&ticket.id, status, &review)
        .await
        .map_err(AppError::PageStore)?;
    match outcome {
        DecideOutcome::Decided(ticket) => {
            tracing::info!(
                ticket = %ticket.id,
                reviewer = %session.subject,
                decision = ticket.status.as_str(),
                "ticket decided"
            );
            Ok(Redirect::to(&format!("/tickets/{}", ticket.id)).into_response())
        }
        DecideOutcome::NotFound => Err(AppError::TicketNotFound { id: id.to_owned() }),
        DecideOutcome::AlreadyDecided(ticket) => Err(AppError::TicketAlreadyDecided {
            id: ticket.id,
            status: ticket.status,
        }),
    }
}

/// True when two subjects name the same person: the one comparison separation of duties uses,
/// on the pages and when an approval is used (`verdicts`).
pub(crate) fn same_person(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// Separation of duties and the approver group, as one check for the page and the forms.
fn may_decide(session: &Session, ticket: &Ticket) -> Result<(), AppError> {
    let me = session.subject.as_str();
    if same_person(&ticket.pusher.subject, me) {
        return Err(AppError::SeparationOfDuties {
            message: format!(
                "You pushed this update as {}; another reviewer must decide it",
                ticket.pusher.subject
            ),
        });
    }
    if ticket
        .pusher
        .acting_for
        .as_deref()
        .is_some_and(|person| same_person(person, me))
    {
        return Err(AppError::SeparationOfDuties {
            message: format!(
                "{} pushed this update on your behalf; another reviewer must decide it",
                ticket.pusher.subject
            ),
        });
    }
    if !session
        .groups
        .iter()
        .any(|group| group == &ticket.approvers)
    {
        return Err(AppError::NotApprover {
            group: ticket.approvers.clone(),
        });
    }
    Ok(())
}

async fn load(state: &AppState, id: &str) -> Result<Ticket, AppError> {
    state
        .store()
        .ticket(id)
        .await
        .map_err(AppError::PageStore)?
        .ok_or_else(|| AppError::TicketNotFound { id: id.to_owned() })
}

fn comment(raw: Option<&str>) -> Result<Option<String>, AppError> {
    let text = raw.map(str::trim).unwrap_or_default();
    if text.chars().count() > MAX_COMMENT_CHARS {
        return Err(AppError::BadForm {
            message: format!("the comment may have at most {MAX_COMMENT_CHARS} characters"),
        });
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}
