//! `POST /v1/holds/wait`: the filter's long poll on a held push that is still open.
//!
//! The filter keeps the end of a held pack back and asks "tell me when these tickets are
//! decided". The service first keeps the push's pack summary on its tickets (the reviewer's
//! page lists the commits), then reads the tickets from the store every
//! [`Settings::hold_poll`](crate::app::Settings) until every ticket is approved or any is
//! denied or expired, or until the wait (capped at `hold_wait_max`) is over; then it answers
//! each ticket's state in request order. Reading the store, not an in-process signal, is what
//! lets a decision made on another instance (PostgreSQL) release the push.
//!
//! An approval releases the push exactly as it would let a re-push through: the ticket must
//! have been given to this very push (a verdict row of this request id names it, for the same
//! repository), the approval must not have expired, and no approver may be the pusher, the
//! person the push acts for, or an agent acting for either (see [`parties_overlap`]).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use gitgate_core::api::{
    HOLD_WAIT_PATH, HoldWaitRequest, HoldWaitResponse, PackSummary, TicketState,
    TicketStatus as WireStatus,
};

use crate::app::AppState;
use crate::error::AppError;
use crate::store::{DecisionKind, StoreError, Ticket, TicketStatus, VerdictRecord};
use crate::verdicts::{MAX_UPDATES, one_line};

/// The most commits of a pack summary kept on a ticket; the rest is marked truncated.
pub const MAX_PACK_COMMITS: usize = 1000;

/// The longest commit subject or author kept, in characters.
const MAX_COMMIT_TEXT_CHARS: usize = 200;

/// The routes of the hold API.
pub fn router() -> Router<AppState> {
    Router::new().route(HOLD_WAIT_PATH, post(post_wait))
}

async fn post_wait(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<HoldWaitResponse>, AppError> {
    let request = parse_request(&body)?;
    let settings = state.settings();
    let wait = Duration::from_millis(request.wait_ms).min(settings.hold_wait_max);
    let deadline = tokio::time::Instant::now() + wait;

    // The verdicts of this push: which tickets it was given, and who pushed.
    let verdicts = state
        .store()
        .verdicts_for_request(&request.request_id)
        .await
        .map_err(AppError::VerdictStore)?;
    if let Some(pack) = &request.pack {
        let pack = bounded_pack(pack);
        for ticket in &request.tickets {
            if held_in(&verdicts, &request.repository, ticket).is_some() {
                state
                    .store()
                    .record_pack(ticket, &request.repository, &pack)
                    .await
                    .map_err(AppError::VerdictStore)?;
            }
        }
    }

    loop {
        let statuses = statuses(&state, &request, &verdicts)
            .await
            .map_err(AppError::VerdictStore)?;
        let settled = statuses.iter().all(|s| s.state == TicketState::Approved)
            || statuses
                .iter()
                .any(|s| matches!(s.state, TicketState::Denied | TicketState::Expired));
        let now = tokio::time::Instant::now();
        if settled || now >= deadline {
            tracing::info!(
                request_id = %request.request_id,
                repository = %request.repository,
                tickets = request.tickets.len(),
                settled,
                states = %statuses
                    .iter()
                    .map(|s| state_name(s.state))
                    .collect::<Vec<_>>()
                    .join(","),
                "hold wait answered"
            );
            return Ok(Json(HoldWaitResponse { tickets: statuses }));
        }
        tokio::time::sleep_until(deadline.min(now + settings.hold_poll)).await;
    }
}

/// Each requested ticket's state, in request order.
async fn statuses(
    state: &AppState,
    request: &HoldWaitRequest,
    verdicts: &[VerdictRecord],
) -> Result<Vec<WireStatus>, StoreError> {
    let now = state.clock().now_ms();
    let mut out = Vec::with_capacity(request.tickets.len());
    for id in &request.tickets {
        let status = match held_in(verdicts, &request.repository, id) {
            None => expired(id, "the ticket was not given to this push"),
            Some(verdict) => match state.store().ticket(id).await? {
                None => expired(id, "no such ticket"),
                Some(ticket) if ticket.key != verdict.key => {
                    expired(id, "the ticket is for another update")
                }
                Some(ticket) => status_of(state, &ticket, verdict, now).await?,
            },
        };
        out.push(status);
    }
    Ok(out)
}

/// One ticket's state for the push that `verdict` records.
async fn status_of(
    state: &AppState,
    ticket: &Ticket,
    verdict: &VerdictRecord,
    now: i64,
) -> Result<WireStatus, StoreError> {
    let decisions = state.store().decisions(&ticket.id).await?;
    let approvers: Vec<_> = decisions
        .iter()
        .filter(|d| d.kind == DecisionKind::Approve)
        .collect();
    let mut decided_by: Vec<String> = approvers.iter().map(|d| d.reviewer.clone()).collect();
    let review = ticket.review.as_ref();
    // A ticket decided before decisions were recorded one by one names its reviewer only.
    if decided_by.is_empty()
        && ticket.status == TicketStatus::Approved
        && let Some(review) = review
    {
        decided_by.push(review.by.clone());
    }
    let wire = |state: TicketState, decided_by: Vec<String>, reason: Option<String>| WireStatus {
        ticket: ticket.id.clone(),
        state,
        decided_by,
        reason,
    };
    Ok(match ticket.status {
        TicketStatus::Pending => wire(TicketState::Pending, decided_by, None),
        TicketStatus::Denied => {
            let by = review.map(|r| r.by.clone()).into_iter().collect();
            let reason = review
                .and_then(|r| r.reason.clone())
                .unwrap_or_else(|| "no reason given".to_owned());
            wire(TicketState::Denied, by, Some(one_line(&reason)))
        }
        TicketStatus::Approved => {
            if review.and_then(|r| r.expires_at).is_none_or(|t| t <= now) {
                return Ok(wire(
                    TicketState::Expired,
                    decided_by,
                    Some("the approval has expired".to_owned()),
                ));
            }
            let pusher = [
                Some(verdict.pusher.subject.as_str()),
                verdict.pusher.acting_for.as_deref(),
            ];
            let own = approvers
                .iter()
                .map(|d| [Some(d.reviewer.as_str()), d.reviewer_acting_for.as_deref()])
                .chain(decided_by.iter().map(|by| [Some(by.as_str()), None]))
                .find(|approver| parties_overlap(approver, &pusher));
            match own {
                Some(approver) => {
                    let who = approver[0].unwrap_or_default();
                    wire(
                        TicketState::Denied,
                        decided_by.clone(),
                        Some(one_line(&format!(
                            "{} was approved by {who}, who may not approve their own push",
                            ticket.id
                        ))),
                    )
                }
                None => wire(TicketState::Approved, decided_by, None),
            }
        }
    })
}

/// True when the two parties share a person: a subject or the person an agent acts for.
/// Both are `[subject, acting_for]`; this covers the pusher approving, the person acted for
/// approving, and an agent of either approving.
pub fn parties_overlap(a: &[Option<&str>; 2], b: &[Option<&str>; 2]) -> bool {
    a.iter()
        .flatten()
        .any(|x| b.iter().flatten().any(|y| crate::pages::same_person(x, y)))
}

/// The verdict row of this push that gave it `ticket`, for `repository`.
fn held_in<'v>(
    verdicts: &'v [VerdictRecord],
    repository: &str,
    ticket: &str,
) -> Option<&'v VerdictRecord> {
    verdicts
        .iter()
        .find(|v| v.ticket.as_deref() == Some(ticket) && v.key.repository == repository)
}

fn expired(id: &str, why: &str) -> WireStatus {
    WireStatus {
        ticket: id.to_owned(),
        state: TicketState::Expired,
        decided_by: Vec::new(),
        reason: Some(why.to_owned()),
    }
}

fn state_name(state: TicketState) -> &'static str {
    match state {
        TicketState::Pending => "pending",
        TicketState::Approved => "approved",
        TicketState::Denied => "denied",
        TicketState::Expired => "expired",
    }
}

/// The summary as kept: at most [`MAX_PACK_COMMITS`] commits, texts one line and capped, ids
/// that are not hex dropped (the page links them).
fn bounded_pack(pack: &PackSummary) -> PackSummary {
    let hex = |id: &str| {
        matches!(id.len(), 40 | 64)
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let cap = |text: &str| -> String {
        let line = one_line(text);
        line.chars().take(MAX_COMMIT_TEXT_CHARS).collect()
    };
    let mut kept = pack.clone();
    kept.commits_truncated |= pack.commits.len() > MAX_PACK_COMMITS;
    kept.commits = pack
        .commits
        .iter()
        .filter(|c| hex(&c.id))
        .take(MAX_PACK_COMMITS)
        .map(|c| {
            let mut c = c.clone();
            c.parents.retain(|p| hex(p));
            c.author = cap(&c.author);
            c.subject = cap(&c.subject);
            c
        })
        .collect();
    kept
}

/// Parses and checks a wait request; every problem is a 400 naming the field.
pub fn parse_request(body: &[u8]) -> Result<HoldWaitRequest, AppError> {
    let request: HoldWaitRequest = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a hold wait request: {e}")))?;
    check_text("request_id", &request.request_id)?;
    check_text("repository", &request.repository)?;
    if request.tickets.is_empty() {
        return Err(bad("tickets is empty".to_owned()));
    }
    if request.tickets.len() > MAX_UPDATES {
        return Err(bad(format!(
            "{} tickets in one request; at most {MAX_UPDATES} are accepted",
            request.tickets.len()
        )));
    }
    for (index, ticket) in request.tickets.iter().enumerate() {
        check_text(&format!("tickets[{index}]"), ticket)?;
    }
    Ok(request)
}

fn check_text(field: &str, value: &str) -> Result<(), AppError> {
    crate::verdicts::field_problem(field, value).map_or(Ok(()), |message| Err(bad(message)))
}

fn bad(message: String) -> AppError {
    AppError::BadVerdictRequest { message }
}

#[cfg(test)]
mod tests {
    use gitgate_core::api::CommitSummary;

    use super::*;

    #[test]
    fn an_agent_of_the_person_acted_for_counts_as_a_party() {
        let push = [Some("agent-7"), Some("alice")];
        assert!(parties_overlap(&[Some("Alice"), None], &push));
        assert!(parties_overlap(&[Some("agent-9"), Some("alice")], &push));
        assert!(parties_overlap(&[Some("agent-7"), None], &push));
        assert!(!parties_overlap(&[Some("bob"), None], &push));
    }

    #[test]
    fn kept_pack_summaries_are_bounded_and_drop_ids_that_are_not_hex() {
        let commit = |id: &str| CommitSummary {
            id: id.to_owned(),
            parents: vec!["not-hex".into()],
            author: "A <a@x>\nInjected: header".into(),
            author_time: None,
            subject: "s".repeat(500),
        };
        let mut pack = PackSummary {
            commits: vec![commit("zz")],
            ..PackSummary::default()
        };
        pack.commits
            .extend((0..MAX_PACK_COMMITS + 5).map(|_| commit(&"a".repeat(40))));
        let kept = bounded_pack(&pack);
        assert_eq!(kept.commits.len(), MAX_PACK_COMMITS);
        assert!(kept.commits_truncated);
        let first = kept.commits.first().expect("a commit");
        assert!(first.parents.is_empty());
        assert_eq!(first.author, "A <a@x> Injected: header");
        assert_eq!(first.subject.chars().count(), MAX_COMMIT_TEXT_CHARS);
    }

    #[test]
    fn wait_requests_without_tickets_are_refused() {
        let body = br#"{"request_id":"r","repository":"demo.git","tickets":[],"wait_ms":10}"#;
        assert!(parse_request(body).is_err());
    }
}
