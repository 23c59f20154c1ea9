//! `POST /v1/verdicts`: one verdict per ref update of a push, recorded before the answer.
//!
//! For each update, in order: a ticket for exactly (repository, ref, old, new) decides first
//! (an unexpired approval allows, a denial denies, a pending ticket holds again with the same
//! ticket); otherwise the policy decides, and a hold opens a ticket. All tickets and verdict
//! rows of one request are written in one transaction, committed before the response is sent,
//! so an answer the filter acts on is always on record. A store failure answers 503.
//!
//! A push that carries findings (the filter found secrets and the pusher asked for a bypass)
//! meets the secret review first: without a bypass reason it is denied; otherwise its security
//! ticket decides (pending: hold again, with the latest findings; denied: deny; approved: on to
//! the policy, as for any push), and without one a ticket for the policy's `secrets` approvers
//! is opened, holding the redacted findings. Policy tickets and security tickets of one update
//! are separate, so a security approval never stands in for a protected branch's review.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use gitgate_core::api::{
    Operation, RefUpdate, RefVerdict, SecretFinding, VERDICTS_PATH, VerdictRequest, VerdictResponse,
};
use rand::Rng;

use crate::app::AppState;
use crate::error::AppError;
use crate::policy::{self, Action, Input};
use crate::store::{
    NewTicket, Pusher, StoreError, Ticket, TicketStatus, UpdateKey, VerdictKind, VerdictRecord,
    VerdictTx,
};

/// The code of an update whose ticket a reviewer denied.
pub const REVIEWER_DENIED_CODE: &str = "gitgate:deny:reviewer-denied";

/// The code of an update whose approval was given by the pusher or the person it acts for.
pub const SELF_APPROVED_CODE: &str = "gitgate:deny:self-approved";

/// True when `reviewer` is the pusher or the person the pusher acts for, compared as the pages
/// compare them.
fn is_party(reviewer: &str, identity: &gitgate_core::api::Identity) -> bool {
    std::iter::once(identity.subject.as_str())
        .chain(identity.acting_for.as_deref())
        .any(|name| crate::pages::same_person(name, reviewer))
}

/// The first approver of `ticket` who is a party to the push of `identity` (the pusher, the
/// person it acts for, or an agent of either), if any. Falls back to the ticket's last
/// decider for tickets decided before approvals were kept one by one.
async fn party_approver(
    tx: &mut VerdictTx,
    ticket: &Ticket,
    identity: &gitgate_core::api::Identity,
) -> Result<Option<String>, StoreError> {
    let pusher = [
        Some(identity.subject.as_str()),
        identity.acting_for.as_deref(),
    ];
    let approvals = tx.approvals(&ticket.id).await?;
    if approvals.is_empty() {
        let by = ticket.review.as_ref().map_or("", |r| r.by.as_str());
        return Ok(is_party(by, identity).then(|| by.to_owned()));
    }
    Ok(approvals
        .iter()
        .find(|a| {
            let approver = [Some(a.reviewer.as_str()), a.reviewer_acting_for.as_deref()];
            crate::holds::parties_overlap(&approver, &pusher)
        })
        .map(|a| a.reviewer.clone()))
}

/// The most updates one request may carry; a push with more is refused as malformed.
pub const MAX_UPDATES: usize = 10_000;

/// The code of a push with findings but no bypass reason.
pub const SECRET_DETECTED_CODE: &str = "gitgate:deny:secret-detected";

/// The name recorded as the rule of verdicts on secret bypasses.
pub const SECRET_RULE: &str = "secret bypass";

/// The most findings one request may carry.
pub const MAX_FINDINGS: usize = 1000;

/// The longest bypass reason accepted, in characters.
pub const MAX_BYPASS_REASON_CHARS: usize = 500;

/// The longest request id, repository path, ref name or identity string accepted.
const MAX_FIELD_CHARS: usize = 1024;

/// The characters a ticket id's random part is drawn from: lower case without look-alikes.
const TICKET_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

/// The length of a ticket id's random part (31^10, about 8e14 ids).
const TICKET_RANDOM_LEN: usize = 10;

/// The routes of the verdict API.
pub fn router() -> Router<AppState> {
    Router::new().route(VERDICTS_PATH, post(post_verdicts))
}

async fn post_verdicts(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<VerdictResponse>, AppError> {
    let request = parse_request(&body)?;
    let now = state.clock().now_ms();

    let mut tx = state
        .store()
        .begin()
        .await
        .map_err(AppError::VerdictStore)?;
    let mut verdicts = Vec::new();
    let mut records = Vec::new();
    for (position, update) in request.updates.iter().enumerate() {
        let outcome = decide(&state, &mut tx, &request, update, now)
            .await
            .map_err(AppError::VerdictStore)?;
        let record = outcome.record(&request, update, position, now);
        tx.record_verdict(&record)
            .await
            .map_err(AppError::VerdictStore)?;
        tracing::info!(
            request_id = %request.request_id,
            repository = %request.repository,
            refname = %update.refname,
            subject = %request.identity.subject,
            decision = record.decision.as_str(),
            code = record.code.as_deref().unwrap_or("-"),
            ticket = record.ticket.as_deref().unwrap_or("-"),
            "verdict"
        );
        verdicts.push(outcome.verdict);
        records.push(record);
    }
    // The push's audit record joins its session's chain in the same transaction.
    crate::audit::record_verdict(tx.connection(), &request, &verdicts, &records, now)
        .await
        .map_err(AppError::VerdictStore)?;
    // The answer leaves only after the commit: the filter never acts on an unrecorded verdict.
    tx.commit().await.map_err(AppError::VerdictStore)?;
    Ok(Json(VerdictResponse {
        verdicts,
        findings_reviewed: !request.findings.is_empty(),
    }))
}

/// A verdict with the facts the store records beside it.
struct Outcome {
    verdict: RefVerdict,
    rule: Option<String>,
    ticket: Option<String>,
    /// The reason recorded for an allow, which the wire format does not carry.
    allow_reason: Option<String>,
}

impl Outcome {
    fn record(
        &self,
        request: &VerdictRequest,
        update: &RefUpdate,
        position: usize,
        now: i64,
    ) -> VerdictRecord {
        let (decision, code, reason) = match &self.verdict {
            RefVerdict::Allow => (VerdictKind::Allow, None, self.allow_reason.clone()),
            RefVerdict::Deny { code, reason } => {
                (VerdictKind::Deny, Some(code.clone()), Some(reason.clone()))
            }
            RefVerdict::Hold { code, reason, .. } => {
                (VerdictKind::Hold, Some(code.clone()), Some(reason.clone()))
            }
        };
        VerdictRecord {
            id: uuid::Uuid::new_v4().to_string(),
            request_id: request.request_id.clone(),
            position: i64::try_from(position).unwrap_or(i64::MAX),
            key: key_of(request, update),
            operation: update.operation,
            pusher: pusher_of(request),
            token_id: request.identity.token_id.clone(),
            decision,
            code,
            reason,
            rule: self.rule.clone(),
            ticket: self.ticket.clone(),
            decided_at: now,
        }
    }
}

async fn decide(
    state: &AppState,
    tx: &mut VerdictTx,
    request: &VerdictRequest,
    update: &RefUpdate,
    now: i64,
) -> Result<Outcome, StoreError> {
    let key = key_of(request, update);
    let secret_code = state.policy().secrets().code.clone();

    // Secrets first: the policy only decides an update whose secrets a reviewer let through.
    if !request.findings.is_empty()
        && let Some(outcome) = decide_secrets(state, tx, request, update, now).await?
    {
        return Ok(outcome);
    }

    // A reviewer's decision on exactly this update comes before the policy.
    if let Some(ticket) = tx.latest_ticket_by_code(&key, &secret_code, false).await? {
        let review = ticket.review.as_ref();
        match ticket.status {
            TicketStatus::Approved
                if review.and_then(|r| r.expires_at).is_some_and(|t| t > now) =>
            {
                // The ticket may have been opened by someone else: no approver (of all N in
                // an N-of-group approval) may be the one who now uses it, nor the person it
                // acts for.
                let party = party_approver(tx, &ticket, &request.identity).await?;
                if let Some(by) = party {
                    return Ok(Outcome {
                        verdict: RefVerdict::Deny {
                            code: SELF_APPROVED_CODE.to_owned(),
                            reason: one_line(&format!(
                                "{} was approved by {by}, who may not approve their own push",
                                ticket.id
                            )),
                        },
                        rule: ticket.rule.clone(),
                        allow_reason: None,
                        ticket: Some(ticket.id),
                    });
                }
                return Ok(Outcome {
                    verdict: RefVerdict::Allow,
                    rule: ticket.rule.clone(),
                    allow_reason: Some(format!(
                        "approved by {} in {}",
                        review.map_or("a reviewer", |r| r.by.as_str()),
                        ticket.id
                    )),
                    ticket: Some(ticket.id),
                });
            }
            TicketStatus::Denied => {
                let by = review.map_or("a reviewer", |r| r.by.as_str());
                let why = review
                    .and_then(|r| r.reason.as_deref())
                    .unwrap_or("no reason given");
                return Ok(Outcome {
                    verdict: RefVerdict::Deny {
                        code: REVIEWER_DENIED_CODE.to_owned(),
                        reason: one_line(&format!("{by} denied {}: {why}", ticket.id)),
                    },
                    rule: ticket.rule.clone(),
                    allow_reason: None,
                    ticket: Some(ticket.id),
                });
            }
            TicketStatus::Pending => return Ok(hold(state, ticket)),
            // An expired approval: the policy decides again, as for a new update.
            TicketStatus::Approved => {}
        }
    }

    let input = Input {
        repository: &request.repository,
        refname: &update.refname,
        operation: update.operation,
        identity: &request.identity,
    };
    let decision = state.policy().evaluate(&input);
    let rule = decision.rule.map(str::to_owned);
    match decision.action {
        Action::Allow => Ok(Outcome {
            verdict: RefVerdict::Allow,
            rule,
            ticket: None,
            allow_reason: None,
        }),
        Action::Deny { code, reason } => Ok(Outcome {
            verdict: RefVerdict::Deny {
                code: code.clone(),
                reason: reason.clone(),
            },
            rule,
            ticket: None,
            allow_reason: None,
        }),
        Action::Hold {
            code,
            approvers,
            reason,
        } => {
            let new = NewTicket {
                id: new_ticket_id(),
                key,
                operation: update.operation,
                pusher: pusher_of(request),
                request_id: request.request_id.clone(),
                rule,
                code: code.clone(),
                reason: reason.clone(),
                approvers: approvers.clone(),
                created_at: now,
            };
            let ticket = tx.open_ticket(&new).await?;
            Ok(hold(state, ticket))
        }
    }
}

/// The secret review of one update of a push with findings: `None` once a security reviewer
/// approved it (the policy then decides), else the verdict.
async fn decide_secrets(
    state: &AppState,
    tx: &mut VerdictTx,
    request: &VerdictRequest,
    update: &RefUpdate,
    now: i64,
) -> Result<Option<Outcome>, StoreError> {
    let secrets = state.policy().secrets();
    let count = request.findings.len();
    let Some(bypass_reason) = &request.bypass_reason else {
        return Ok(Some(Outcome {
            verdict: RefVerdict::Deny {
                code: SECRET_DETECTED_CODE.to_owned(),
                reason: one_line(&format!(
                    "{count} secret(s) in the pushed objects; remove them, or push with a \
                     bypass reason for group {}",
                    secrets.approvers
                )),
            },
            rule: Some(SECRET_RULE.to_owned()),
            ticket: None,
            allow_reason: None,
        }));
    };
    let key = key_of(request, update);
    if let Some(ticket) = tx.latest_ticket_by_code(&key, &secrets.code, true).await? {
        let review = ticket.review.as_ref();
        match ticket.status {
            TicketStatus::Approved
                if review.and_then(|r| r.expires_at).is_some_and(|t| t > now) =>
            {
                // As for policy tickets: the approver may not use their own approval.
                if let Some(by) = party_approver(tx, &ticket, &request.identity).await? {
                    return Ok(Some(Outcome {
                        verdict: RefVerdict::Deny {
                            code: SELF_APPROVED_CODE.to_owned(),
                            reason: one_line(&format!(
                                "{} was approved by {by}, who may not approve their own push",
                                ticket.id
                            )),
                        },
                        rule: Some(SECRET_RULE.to_owned()),
                        allow_reason: None,
                        ticket: Some(ticket.id),
                    }));
                }
                return Ok(None);
            }
            TicketStatus::Denied => {
                let by = review.map_or("a reviewer", |r| r.by.as_str());
                let why = review
                    .and_then(|r| r.reason.as_deref())
                    .unwrap_or("no reason given");
                return Ok(Some(Outcome {
                    verdict: RefVerdict::Deny {
                        code: REVIEWER_DENIED_CODE.to_owned(),
                        reason: one_line(&format!("{by} denied {}: {why}", ticket.id)),
                    },
                    rule: Some(SECRET_RULE.to_owned()),
                    allow_reason: None,
                    ticket: Some(ticket.id),
                }));
            }
            TicketStatus::Pending => {
                tx.record_findings(&ticket.id, &request.findings, bypass_reason)
                    .await?;
                return Ok(Some(hold(state, ticket)));
            }
            // An expired approval: ask again, as for a new bypass.
            TicketStatus::Approved => {}
        }
    }
    let new = NewTicket {
        id: new_ticket_id(),
        key,
        operation: update.operation,
        pusher: pusher_of(request),
        request_id: request.request_id.clone(),
        rule: Some(SECRET_RULE.to_owned()),
        code: secrets.code.clone(),
        reason: secrets.reason.clone(),
        approvers: secrets.approvers.clone(),
        created_at: now,
    };
    let ticket = tx.open_ticket(&new).await?;
    tx.record_findings(&ticket.id, &request.findings, bypass_reason)
        .await?;
    tracing::info!(
        request_id = %request.request_id,
        ticket = %ticket.id,
        findings = count,
        "secret bypass asked"
    );
    Ok(Some(hold(state, ticket)))
}

fn hold(state: &AppState, ticket: Ticket) -> Outcome {
    let url = format!("{}/tickets/{}", state.settings().public_url, ticket.id);
    Outcome {
        verdict: RefVerdict::Hold {
            code: ticket.code.clone(),
            ticket: ticket.id.clone(),
            url,
            reason: ticket.reason.clone(),
        },
        rule: ticket.rule,
        ticket: Some(ticket.id),
        allow_reason: None,
    }
}

fn key_of(request: &VerdictRequest, update: &RefUpdate) -> UpdateKey {
    UpdateKey {
        repository: request.repository.clone(),
        refname: update.refname.clone(),
        old_id: update.old.clone(),
        new_id: update.new.clone(),
    }
}

fn pusher_of(request: &VerdictRequest) -> Pusher {
    Pusher {
        subject: request.identity.subject.clone(),
        agent: request.identity.agent,
        acting_for: request.identity.acting_for.clone(),
    }
}

/// `T-` and a short random part, for example `T-k3m9xq2hra`.
fn new_ticket_id() -> String {
    let mut rng = rand::thread_rng();
    let random: String = (0..TICKET_RANDOM_LEN)
        .map(|_| char::from(TICKET_ALPHABET[rng.gen_range(0..TICKET_ALPHABET.len())]))
        .collect();
    format!("T-{random}")
}

/// Collapses whitespace and control characters to single spaces and caps the length, so the
/// text fits the one-line reason of a git status report.
pub fn one_line(text: &str) -> String {
    let collapsed: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let joined = collapsed.join(" ");
    match joined.char_indices().nth(policy::MAX_REASON_CHARS) {
        Some((cut, _)) => joined[..cut].to_owned(),
        None => joined,
    }
}

/// Parses and checks a verdict request; every problem is a 400 naming the field.
pub fn parse_request(body: &[u8]) -> Result<VerdictRequest, AppError> {
    let request: VerdictRequest = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a verdict request: {e}")))?;
    check_text("request_id", &request.request_id)?;
    check_text("repository", &request.repository)?;
    check_text("identity.subject", &request.identity.subject)?;
    if let Some(person) = &request.identity.acting_for {
        check_text("identity.acting_for", person)?;
    }
    let id_len = match request.object_format.as_str() {
        "sha1" => 40,
        "sha256" => 64,
        other => {
            return Err(bad(format!(
                "object_format {other:?} is neither \"sha1\" nor \"sha256\""
            )));
        }
    };
    check_findings(&request.findings, id_len)?;
    if let Some(reason) = &request.bypass_reason {
        check_text("bypass_reason", reason)?;
        if reason.chars().count() > MAX_BYPASS_REASON_CHARS {
            return Err(bad(format!(
                "bypass_reason is longer than {MAX_BYPASS_REASON_CHARS} characters"
            )));
        }
    }
    if request.updates.len() > MAX_UPDATES {
        return Err(bad(format!(
            "{} updates in one push; at most {MAX_UPDATES} are accepted",
            request.updates.len()
        )));
    }
    for (index, update) in request.updates.iter().enumerate() {
        let place = |field: &str| format!("updates[{index}].{field}");
        check_text(&place("ref"), &update.refname)?;
        for (field, id) in [("old", &update.old), ("new", &update.new)] {
            let hex = id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if id.len() != id_len || !hex {
                return Err(bad(format!(
                    "{} is not a {id_len}-digit lower-case hex object id",
                    place(field)
                )));
            }
        }
        let zero = |id: &str| id.bytes().all(|b| b == b'0');
        let implied = match (zero(&update.old), zero(&update.new)) {
            (true, true) => {
                return Err(bad(format!(
                    "{}: old and new are both the zero id",
                    place("ref")
                )));
            }
            (true, false) => Operation::Create,
            (false, true) => Operation::Delete,
            (false, false) => Operation::Update,
        };
        if implied != update.operation {
            return Err(bad(format!(
                "{} is {:?} but the ids say {:?}",
                place("operation"),
                update.operation.as_str(),
                implied.as_str()
            )));
        }
    }
    Ok(request)
}

/// Checks the redacted findings: bounded, with ids of the push's format and no free text but
/// a path.
fn check_findings(findings: &[SecretFinding], id_len: usize) -> Result<(), AppError> {
    if findings.len() > MAX_FINDINGS {
        return Err(bad(format!(
            "{} findings in one push; at most {MAX_FINDINGS} are accepted",
            findings.len()
        )));
    }
    let is_hex = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    for (index, finding) in findings.iter().enumerate() {
        let place = |field: &str| format!("findings[{index}].{field}");
        if !policy::is_slug(&finding.rule) {
            return Err(bad(format!("{} is not a rule id", place("rule"))));
        }
        if let Some(kind) = &finding.kind
            && !matches!(kind.as_str(), "blob" | "commit" | "tag" | "tree")
        {
            return Err(bad(format!("{} is not an object kind", place("kind"))));
        }
        for (field, id) in [("object", &finding.object), ("commit", &finding.commit)] {
            if let Some(id) = id
                && (id.len() != id_len || !is_hex(id))
            {
                return Err(bad(format!(
                    "{} is not a {id_len}-digit lower-case hex object id",
                    place(field)
                )));
            }
        }
        if let Some(path) = &finding.path {
            check_text(&place("path"), path)?;
        }
        if finding.fingerprint.len() != 32 || !is_hex(&finding.fingerprint) {
            return Err(bad(format!(
                "{} is not 32 lower-case hex digits",
                place("fingerprint")
            )));
        }
    }
    Ok(())
}

/// What is wrong with a text field of a request from the filter (empty, too long, or holding
/// a control character that would break a log line or a page), if anything. Shared by the
/// verdict, hold-wait and event endpoints, which check their fields alike.
pub fn field_problem(field: &str, value: &str) -> Option<String> {
    if value.trim().is_empty() {
        Some(format!("{field} is empty"))
    } else if value.chars().count() > MAX_FIELD_CHARS {
        Some(format!(
            "{field} is longer than {MAX_FIELD_CHARS} characters"
        ))
    } else if value.chars().any(char::is_control) {
        Some(format!("{field} contains a control character"))
    } else {
        None
    }
}

fn check_text(field: &str, value: &str) -> Result<(), AppError> {
    field_problem(field, value).map_or(Ok(()), |message| Err(bad(message)))
}

fn bad(message: String) -> AppError {
    AppError::BadVerdictRequest { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_are_short_and_prefixed() {
        let id = new_ticket_id();
        assert!(id.starts_with("T-"), "{id}");
        assert_eq!(id.len(), 2 + TICKET_RANDOM_LEN);
        assert_ne!(new_ticket_id(), new_ticket_id());
    }

    #[test]
    fn one_line_collapses_breaks_and_caps_the_length() {
        assert_eq!(one_line("tests\n  fail\r\n\tbadly"), "tests fail badly");
        assert_eq!(
            one_line(&"x".repeat(500)).chars().count(),
            policy::MAX_REASON_CHARS
        );
    }
}
