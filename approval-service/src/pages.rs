//! The reviewer pages: the queue, the history, a ticket, and the approve and deny forms.
//!
//! Every page needs a reviewer session and works without JavaScript; a small script only
//! refreshes the queue in place. The server enforces, on every decision: the session's CSRF
//! token, that the ticket is still pending, separation of duties (the reviewer is neither the
//! pusher, nor the person the push was made for, nor an agent of either), membership in the
//! approver group, and for N-of-group rules that each approval comes from another reviewer.

use std::collections::HashMap;
use std::time::Duration;

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gitgate_core::api::{Operation, PackSummary};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::clock::{self, duration_ms};
use crate::error::{AppError, unreadable_form};
use crate::holds::parties_overlap;
use crate::policy::MAX_REASON_CHARS;
use crate::session::Session;
use crate::store::{
    ChoiceColumn, Decision, DecisionKind, DecisionOutcome, Delivery, NewDecision, Ticket,
    TicketFilter, TicketStatus, VerdictRecord,
};
use crate::templates;
use crate::verdicts::one_line;

/// How many tickets a page of the queue or the history shows.
pub const PAGE_SIZE: i64 = 25;

/// The longest decision comment accepted, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// The longest search or filter value accepted, in characters.
const MAX_FILTER_CHARS: usize = 200;

/// The shorter approval periods a reviewer may choose, besides the configured one.
const APPROVAL_PERIODS: &[Duration] = &[
    Duration::from_secs(15 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(4 * 3600),
];

/// The "waiting at least" choices of the queue filter, in minutes.
const AGE_CHOICES: &[u64] = &[5, 15, 60, 240, 1440];

/// The queue script: refreshes the results in place; the page works without it.
const QUEUE_SCRIPT: &str = include_str!("../templates/queue.js");

/// The reviewer page routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(queue))
        .route("/history", get(history))
        .route("/static/queue.js", get(queue_script))
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

/// One reviewer's decision as the ticket page shows it.
#[derive(Debug, Serialize)]
struct DecisionView {
    at: String,
    reviewer: String,
    decision: &'static str,
    reason: Option<String>,
    comment: Option<String>,
    valid_until: Option<String>,
}

impl DecisionView {
    fn new(decision: &Decision) -> Self {
        DecisionView {
            at: clock::rfc3339(decision.decided_at),
            reviewer: decision.reviewer.clone(),
            decision: match decision.kind {
                DecisionKind::Approve => "approved",
                DecisionKind::Deny => "denied",
            },
            reason: decision.reason.clone(),
            comment: decision.comment.clone(),
            valid_until: decision.valid_until.map(clock::rfc3339),
        }
    }
}

/// A webhook delivery as the ticket page shows it.
#[derive(Debug, Serialize)]
struct DeliveryView {
    event: String,
    target: String,
    status: &'static str,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    updated: String,
}

impl DeliveryView {
    fn new(delivery: &Delivery) -> Self {
        DeliveryView {
            event: match delivery.event.split_once(':') {
                Some(("hold", _)) => "new hold".to_owned(),
                Some(("decision", _)) => "decision".to_owned(),
                _ => delivery.event.clone(),
            },
            target: delivery.target.clone(),
            status: delivery.status.as_str(),
            attempts: delivery.attempts,
            last_status: delivery.last_status,
            last_error: delivery.last_error.clone(),
            updated: clock::rfc3339(delivery.updated_at),
        }
    }
}

/// A commit of the pushed pack as the ticket page shows it.
#[derive(Debug, Serialize)]
struct CommitView {
    id: String,
    short: String,
    subject: String,
    author: String,
    when: Option<String>,
    parents: Vec<String>,
}

/// What the pack tells about the update's history.
#[derive(Debug, Serialize)]
struct PackView {
    commits: Vec<CommitView>,
    truncated: bool,
    objects: u64,
    bytes: u64,
    /// `yes`, `no-evidence` or `unknown`, for an update; `None` for a create or delete.
    fast_forward: Option<&'static str>,
}

impl PackView {
    fn new(pack: &PackSummary, ticket: &Ticket) -> Self {
        let commits = pack
            .commits
            .iter()
            .map(|c| CommitView {
                id: c.id.clone(),
                short: short_id(&c.id),
                subject: c.subject.clone(),
                author: c.author.clone(),
                when: c
                    .author_time
                    .map(|s| clock::rfc3339(s.saturating_mul(1000))),
                parents: c.parents.iter().map(|p| short_id(p)).collect(),
            })
            .collect();
        let fast_forward = (ticket.operation == Operation::Update).then(|| {
            match reaches(pack, &ticket.key.new_id, &ticket.key.old_id) {
                Some(true) => "yes",
                Some(false) if !pack.commits_truncated => "no-evidence",
                _ => "unknown",
            }
        });
        PackView {
            commits,
            truncated: pack.commits_truncated,
            objects: pack.objects,
            bytes: pack.bytes,
            fast_forward,
        }
    }
}

/// Whether `new`'s ancestry, as far as the pack's commits carry it, reaches `old`: `None` when
/// `new` is not among them (nothing can be told).
fn reaches(pack: &PackSummary, new: &str, old: &str) -> Option<bool> {
    let parents: HashMap<&str, &[String]> = pack
        .commits
        .iter()
        .map(|c| (c.id.as_str(), c.parents.as_slice()))
        .collect();
    parents.get(new)?;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![new];
    while let Some(id) = stack.pop() {
        if id == old {
            return Some(true);
        }
        if !seen.insert(id) {
            continue;
        }
        if let Some(list) = parents.get(id) {
            stack.extend(list.iter().map(String::as_str));
        }
    }
    Some(false)
}

/// The first seven hex digits, or `none` for the zero id of a create or delete.
fn short_id(id: &str) -> String {
    if id.bytes().all(|b| b == b'0') {
        "none".to_owned()
    } else {
        id.chars().take(7).collect()
    }
}

/// The queue's and the history's query string.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct ListQuery {
    repository: Option<String>,
    requester: Option<String>,
    acting_for: Option<String>,
    rule: Option<String>,
    /// Waiting at least this many minutes.
    min_age: Option<String>,
    /// Free text (history).
    q: Option<String>,
    page: Option<String>,
}

impl ListQuery {
    fn filter(&self, now: i64) -> Result<TicketFilter, AppError> {
        let field = |name: &str, value: &Option<String>| -> Result<Option<String>, AppError> {
            let value = value.as_deref().map(str::trim).unwrap_or_default();
            if value.chars().count() > MAX_FILTER_CHARS || value.chars().any(char::is_control) {
                return Err(AppError::BadForm {
                    message: format!("the {name} filter is too long or not one line"),
                });
            }
            Ok((!value.is_empty()).then(|| value.to_owned()))
        };
        let minutes = match field("age", &self.min_age)? {
            Some(text) => Some(text.parse::<u64>().map_err(|_| AppError::BadForm {
                message: "the age filter is a number of minutes".into(),
            })?),
            None => None,
        };
        Ok(TicketFilter {
            repository: field("repository", &self.repository)?,
            requester: field("requester", &self.requester)?,
            acting_for: field("acting for", &self.acting_for)?,
            rule: field("rule", &self.rule)?,
            opened_before: minutes.map(|m| {
                now.saturating_sub(duration_ms(Duration::from_secs(m.saturating_mul(60))))
            }),
            text: field("search", &self.q)?,
        })
    }

    /// The page number, from 1.
    fn page(&self) -> i64 {
        self.page
            .as_deref()
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| (1..=100_000).contains(p))
            .unwrap_or(1)
    }

    /// The query string of another page of the same list.
    fn with_page(&self, page: i64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("repository", &self.repository),
            ("requester", &self.requester),
            ("acting_for", &self.acting_for),
            ("rule", &self.rule),
            ("min_age", &self.min_age),
            ("q", &self.q),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                query.append_pair(name, value);
            }
        }
        query.append_pair("page", &page.to_string());
        format!("?{}", query.finish())
    }
}

async fn queue(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let now = state.clock().now_ms();
    let filter = query.filter(now)?;
    let page = query.page();
    let store = state.store();
    let found = store
        .pending_page(&filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        .await
        .map_err(AppError::PageStore)?;
    let mut choices = HashMap::new();
    for (name, column) in [
        ("repository", ChoiceColumn::Repository),
        ("requester", ChoiceColumn::Requester),
        ("acting_for", ChoiceColumn::ActingFor),
        ("rule", ChoiceColumn::Rule),
    ] {
        let values = store
            .pending_choices(column)
            .await
            .map_err(AppError::PageStore)?;
        choices.insert(name, values);
    }
    let tickets: Vec<_> = found
        .tickets
        .iter()
        .map(|t| TicketView::new(t, now))
        .collect();
    let filtered = filter != TicketFilter::default();
    let html = templates::render(
        "queue.html",
        minijinja::context! {
            title => "Pending approvals", reviewer => session.subject, csrf => session.csrf,
            tickets => tickets, q => query, choices => choices, ages => AGE_CHOICES,
            filtered => filtered, page => page,
            previous => (page > 1).then(|| query.with_page(page - 1)),
            next => found.more.then(|| query.with_page(page + 1)),
            script => true,
        },
    )?;
    let mut response = templates::html(html).into_response();
    // This page alone runs a script, its own file, which reads the same page again.
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; \
             style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; \
             base-uri 'none'",
        ),
    );
    Ok(response)
}

async fn queue_script() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        QUEUE_SCRIPT,
    )
        .into_response()
}

async fn history(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let now = state.clock().now_ms();
    let filter = query.filter(now)?;
    let page = query.page();
    let found = state
        .store()
        .decided_page(&filter, PAGE_SIZE, (page - 1) * PAGE_SIZE)
        .await
        .map_err(AppError::PageStore)?;
    let tickets: Vec<_> = found
        .tickets
        .iter()
        .map(|t| TicketView::new(t, now))
        .collect();
    let html = templates::render(
        "history.html",
        minijinja::context! {
            title => "Decided tickets", reviewer => session.subject, csrf => session.csrf,
            tickets => tickets, q => query, page => page,
            filtered => filter != TicketFilter::default(),
            previous => (page > 1).then(|| query.with_page(page - 1)),
            next => found.more.then(|| query.with_page(page + 1)),
        },
    )?;
    Ok(templates::html(html).into_response())
}

async fn ticket(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let ticket = load(&state, &id).await?;
    let store = state.store();
    let verdicts = store
        .verdicts_for_ticket(&ticket.id)
        .await
        .map_err(AppError::PageStore)?;
    let decisions = store
        .decisions(&ticket.id)
        .await
        .map_err(AppError::PageStore)?;
    let deliveries = store
        .deliveries(&ticket.id)
        .await
        .map_err(AppError::PageStore)?;
    // The timeline links are a help, not the page's purpose: a failed lookup leaves them out.
    let sessions = store
        .sessions_of_ticket(&ticket.id)
        .await
        .unwrap_or_default();
    let refusal = may_decide(&session, &ticket, &decisions)
        .err()
        .map(|e| match e {
            AppError::SeparationOfDuties { message } => format!("{message}."),
            AppError::NotApprover { group } => {
                format!("Deciding this ticket needs membership in the group {group}.")
            }
            other => other.to_string(),
        });
    let now = state.clock().now_ms();
    let need = state.policy().approvals_needed(ticket.rule.as_deref());
    let have = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Approve)
        .count();
    let notice = match ticket.status {
        TicketStatus::Pending if have > 0 => Some(format!(
            "{have} of {need} approvals so far; another reviewer must approve."
        )),
        TicketStatus::Pending => None,
        TicketStatus::Approved => Some("This ticket is approved.".to_owned()),
        TicketStatus::Denied => Some("This ticket is denied.".to_owned()),
    };
    let view = TicketView::new(&ticket, now);
    let pack = match &ticket.pack {
        Some(pack) => Some(pack.clone()),
        // No push waited on the ticket: the audit record of its pushes may have the pack.
        None => {
            let mut requests: Vec<String> = verdicts
                .iter()
                .rev()
                .map(|v| v.request_id.clone())
                .collect();
            requests.dedup();
            store.pack_from_audit(&requests).await.unwrap_or_default()
        }
    };
    let pack = pack.as_ref().map(|p| PackView::new(p, &ticket));
    let ttl = state.settings().approval_ttl;
    let periods: Vec<_> = APPROVAL_PERIODS
        .iter()
        .filter(|p| **p < ttl)
        .chain(std::iter::once(&ttl))
        .map(|p| minijinja::context! { seconds => p.as_secs(), words => clock::in_words(*p) })
        .collect();
    let html = templates::render(
        "ticket.html",
        minijinja::context! {
            title => format!("Ticket {}", ticket.id), reviewer => session.subject,
            csrf => session.csrf, t => view, verdicts => verdicts.iter().map(VerdictView::new)
                .collect::<Vec<_>>(),
            decisions => decisions.iter().map(DecisionView::new).collect::<Vec<_>>(),
            deliveries => deliveries.iter().map(DeliveryView::new).collect::<Vec<_>>(),
            sessions => sessions, pack => pack, refusal => refusal, notice => notice,
            approvals_needed => need, approvals_have => have,
            approval_ttl => clock::in_words(ttl), periods => periods,
            max_reason => MAX_REASON_CHARS, max_comment => MAX_COMMENT_CHARS,
        },
    )?;
    Ok(templates::html(html).into_response())
}

#[derive(Debug, Deserialize)]
struct ApproveForm {
    csrf: Option<String>,
    comment: Option<String>,
    /// How long the approval lasts, in seconds; at most the configured approval lifetime.
    valid_for: Option<String>,
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
    let ttl = state.settings().approval_ttl;
    let valid_for = match form.valid_for.as_deref().map(str::trim) {
        None | Some("") => ttl,
        Some(text) => {
            let seconds = text.parse::<u64>().map_err(|_| AppError::BadForm {
                message: "the approval period is not a number of seconds".into(),
            })?;
            let period = Duration::from_secs(seconds);
            if period.is_zero() || period > ttl {
                return Err(AppError::BadForm {
                    message: format!("an approval lasts at most {}", clock::in_words(ttl)),
                });
            }
            period
        }
    };
    let now = state.clock().now_ms();
    let decision = NewDecision {
        reviewer: session.subject.clone(),
        reviewer_acting_for: session.acting_for.clone(),
        kind: DecisionKind::Approve,
        reason: None,
        comment,
        valid_until: Some(now.saturating_add(duration_ms(valid_for))),
        at: now,
    };
    decide(&state, &session, &id, decision).await
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
    let decision = NewDecision {
        reviewer: session.subject.clone(),
        reviewer_acting_for: session.acting_for.clone(),
        kind: DecisionKind::Deny,
        reason: Some(reason),
        comment,
        valid_until: None,
        at: state.clock().now_ms(),
    };
    decide(&state, &session, &id, decision).await
}

/// Checks the reviewer may decide `id`, then records the decision.
async fn decide(
    state: &AppState,
    session: &Session,
    id: &str,
    decision: NewDecision,
) -> Result<Response, AppError> {
    let ticket = load(state, id).await?;
    if ticket.status != TicketStatus::Pending {
        return Err(AppError::TicketAlreadyDecided {
            id: ticket.id,
            status: ticket.status,
        });
    }
    let decisions = state
        .store()
        .decisions(&ticket.id)
        .await
        .map_err(AppError::PageStore)?;
    may_decide(session, &ticket, &decisions)?;
    let need = state.policy().approvals_needed(ticket.rule.as_deref());
    let outcome = state
        .store()
        .record_decision(&ticket.id, &decision, need)
        .await
        .map_err(AppError::PageStore)?;
    match outcome {
        DecisionOutcome::Decided(ticket) | DecisionOutcome::Counted { ticket, .. } => {
            tracing::info!(
                ticket = %ticket.id,
                reviewer = %session.subject,
                decision = decision.kind.as_str(),
                status = ticket.status.as_str(),
                "ticket decided"
            );
            Ok(Redirect::to(&format!("/tickets/{}", ticket.id)).into_response())
        }
        DecisionOutcome::AlreadyByReviewer(_) => Err(already_by_you()),
        DecisionOutcome::NotFound => Err(AppError::TicketNotFound { id: id.to_owned() }),
        DecisionOutcome::AlreadyDecided(ticket) => Err(AppError::TicketAlreadyDecided {
            id: ticket.id,
            status: ticket.status,
        }),
    }
}

fn already_by_you() -> AppError {
    AppError::SeparationOfDuties {
        message: "You approved this ticket already; the other approvals must come from other \
                  reviewers"
            .into(),
    }
}

/// True when two subjects name the same person: the one comparison separation of duties uses,
/// on the pages and when an approval is used (`verdicts`, `holds`).
///
/// Names are compared without case, around white space, and by their Unicode skeleton (UTS 39
/// confusable detection), so that `alice `, `Alice` and `аlice` (Cyrillic а) are all alice:
/// a name that reads the same to a person is the same person here.
pub(crate) fn same_person(a: &str, b: &str) -> bool {
    fn key(name: &str) -> String {
        let folded = name.trim().to_lowercase();
        unicode_security::confusable_detection::skeleton(&folded)
            .collect::<String>()
            .to_lowercase()
    }
    key(a) == key(b)
}

#[cfg(test)]
mod same_person_tests {
    use super::same_person;

    #[test]
    fn names_that_read_alike_are_the_same_person() {
        assert!(same_person("alice", "Alice"));
        assert!(same_person("alice ", "alice"));
        assert!(same_person("\u{430}lice", "alice"), "a Cyrillic a");
        assert!(!same_person("bob", "alice"));
        assert!(!same_person("alice2", "alice"));
    }
}

/// Separation of duties, the approver group and distinct approvers, as one check for the
/// page and the forms.
fn may_decide(session: &Session, ticket: &Ticket, decisions: &[Decision]) -> Result<(), AppError> {
    let me = session.subject.as_str();
    if same_person(&ticket.pusher.subject, me) {
        return Err(AppError::SeparationOfDuties {
            message: format!(
                "You pushed this update as {}; another reviewer must decide it",
                ticket.pusher.subject
            ),
        });
    }
    let pusher = [
        Some(ticket.pusher.subject.as_str()),
        ticket.pusher.acting_for.as_deref(),
    ];
    let reviewer = [Some(me), session.acting_for.as_deref()];
    if parties_overlap(&reviewer, &pusher) {
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
    if decisions.iter().any(|d| same_person(&d.reviewer, me)) {
        return Err(already_by_you());
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

#[cfg(test)]
mod tests {
    use gitgate_core::api::CommitSummary;

    use super::*;

    fn commit(id: char, parents: &[char]) -> CommitSummary {
        CommitSummary {
            id: id.to_string().repeat(40),
            parents: parents.iter().map(|p| p.to_string().repeat(40)).collect(),
            ..CommitSummary::default()
        }
    }

    #[test]
    fn a_fast_forward_is_seen_through_the_packs_commits() {
        let pack = PackSummary {
            commits: vec![commit('c', &['b']), commit('b', &['a'])],
            ..PackSummary::default()
        };
        let id = |c: char| c.to_string().repeat(40);
        assert_eq!(reaches(&pack, &id('c'), &id('a')), Some(true));
        assert_eq!(reaches(&pack, &id('c'), &id('d')), Some(false));
        assert_eq!(reaches(&pack, &id('e'), &id('a')), None);
    }

    #[test]
    fn the_ticket_page_renders_a_pending_ticket_with_its_pack() {
        use crate::store::{Pusher, UpdateKey};
        let ticket = Ticket {
            id: "T-a".into(),
            key: UpdateKey {
                repository: "demo.git".into(),
                refname: "refs/heads/main".into(),
                old_id: "a".repeat(40),
                new_id: "c".repeat(40),
            },
            operation: Operation::Update,
            pusher: Pusher {
                subject: "agent-7".into(),
                agent: true,
                acting_for: Some("alice".into()),
            },
            request_id: "r1".into(),
            rule: Some("protect main".into()),
            code: "gitgate:hold:protected-ref".into(),
            reason: "needs review".into(),
            approvers: "reviewers".into(),
            status: TicketStatus::Pending,
            created_at: 0,
            review: None,
            findings: Vec::new(),
            bypass_reason: None,
            pack: Some(PackSummary {
                commits: vec![commit('c', &['b']), commit('b', &['a'])],
                ..PackSummary::default()
            }),
        };
        let view = TicketView::new(&ticket, 1000);
        let pack = ticket.pack.as_ref().map(|p| PackView::new(p, &ticket));
        let html = templates::render(
            "ticket.html",
            minijinja::context! {
                title => "Ticket T-a", reviewer => "bob", csrf => "x", t => view,
                verdicts => Vec::<String>::new(), decisions => Vec::<String>::new(),
                deliveries => Vec::<String>::new(), sessions => vec!["s 1"], pack => pack,
                refusal => None::<String>, notice => None::<String>, approvals_needed => 2,
                approvals_have => 0, approval_ttl => "24 hours",
                periods => vec![minijinja::context! { seconds => 60, words => "1 minute" }],
                max_reason => 200, max_comment => 2000,
            },
        );
        let html = match html {
            Ok(html) => html,
            Err(error) => panic!("{error:#}"),
        };
        assert!(html.contains("<strong class=\"ok\">yes</strong>"), "{html}");
        assert!(html.contains("/audit/sessions/s%201"), "{html}");
    }

    #[test]
    fn another_page_keeps_the_filters() {
        let query = ListQuery {
            repository: Some("demo.git".into()),
            rule: Some(" ".into()),
            ..ListQuery::default()
        };
        assert_eq!(query.with_page(2), "?repository=demo.git&page=2");
    }
}
