//! From the service's verdicts (or its failure) to one decision about the whole push.
//!
//! The rule (contract, "Decision rule for mixed verdicts"): every update allowed means the push
//! is forwarded; any update denied or held means the whole push is refused, atomic or not,
//! because the pack carries the objects of every ref. Refused refs get `<code> <reason>` (a hold
//! adds its ticket), the others `gitgate:refused:other-ref-refused`, and band-2 lines point to
//! the tickets. A service failure refuses with `gitgate:error:*` under `failure_mode: closed`
//! and forwards under `open`. A response that breaks the protocol counts as a failure.

use thiserror::Error;

use crate::api::{
    HoldWaitResponse, RefUpdate, RefVerdict, TicketState, TicketStatus, VerdictResponse,
};
use crate::config::FailureMode;
use crate::reason::{self, Reason};
use crate::report::RefRefusal;

/// Code prefix of a denial.
pub const DENY_PREFIX: &str = "gitgate:deny:";

/// Code prefix of a hold.
pub const HOLD_PREFIX: &str = "gitgate:hold:";

/// Code for refs refused because another ref of the push was refused.
pub const OTHER_REF_REFUSED: &str = "gitgate:refused:other-ref-refused";

/// Code for a push refused because the approval service did not answer usefully.
pub const APPROVAL_UNAVAILABLE: &str = "gitgate:error:approval-unavailable";

/// Code for a push refused because the approval service's answer broke the protocol.
pub const APPROVAL_MALFORMED: &str = "gitgate:error:approval-malformed";

/// Code for a request the gate could not parse.
pub const BAD_REQUEST: &str = "gitgate:error:bad-request";

/// Code for a gated push without an identity.
pub const NO_IDENTITY: &str = "gitgate:error:no-identity";

/// Code for a push body in a content encoding the gate does not inspect.
pub const UNSUPPORTED_ENCODING: &str = "gitgate:error:unsupported-content-encoding";

/// Code for a push the gate could not finish (for example, a host call failed).
pub const INTERNAL: &str = "gitgate:error:internal";

/// Most bytes of a service-provided reason, ticket or URL kept in an answer.
const MAX_SERVICE_TEXT: usize = 200;

/// What to do with a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let the push through to the upstream unchanged.
    Forward,
    /// Answer the client locally, refusing every ref.
    Refuse(Refusal),
}

/// A refusal: the per-ref statuses and the lines shown before them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The code that caused the refusal (the first refused ref's, or the error's), for logs.
    pub code: String,
    /// One entry per command, in the order sent.
    pub refs: Vec<RefRefusal>,
    /// Band-2 lines shown as `remote: <line>` before the statuses.
    pub info: Vec<String>,
}

impl Refusal {
    /// Refuses every ref of the push for the same reason, with one explanatory line.
    pub fn all(refnames: &[String], code: &str, detail: &str) -> Refusal {
        let reason = Reason::new(code, detail);
        Refusal {
            code: code.to_owned(),
            refs: refnames
                .iter()
                .map(|refname| RefRefusal {
                    refname: refname.clone(),
                    reason: reason.clone(),
                })
                .collect(),
            info: vec![format!("gitgate: push refused: {}", reason)],
        }
    }

    /// The one-line message for clients that cannot get per-ref statuses.
    pub fn summary(&self) -> String {
        match self.info.first() {
            Some(line) => line.clone(),
            None => format!("gitgate: push refused ({})", self.code),
        }
    }
}

/// Why the service's answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceFailure {
    /// No answer: connection failure, reset, timeout, or the callout could not be sent.
    #[error("the approval service did not answer")]
    Unavailable,
    /// An answer with another status than 200.
    #[error("the approval service answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// A 200 answer that breaks the verdict protocol.
    #[error("the approval service sent a malformed answer: {detail}")]
    Malformed {
        /// What is wrong with it.
        detail: String,
    },
}

impl ServiceFailure {
    /// The `gitgate:error:*` code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceFailure::Unavailable | ServiceFailure::Status { .. } => APPROVAL_UNAVAILABLE,
            ServiceFailure::Malformed { .. } => APPROVAL_MALFORMED,
        }
    }
}

/// What came back from the callout, as the adapter saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutResult<'a> {
    /// No response at all (`num_headers == 0`, reset, or the dispatch itself failed).
    Failed,
    /// A response with its status and body.
    Response {
        /// The `:status` value, if it parsed.
        status: Option<u16>,
        /// The response body.
        body: &'a [u8],
    },
}

/// Turns a callout result into a decision, or the failure that prevents one.
pub fn from_callout(
    updates: &[RefUpdate],
    result: CalloutResult<'_>,
) -> Result<Decision, ServiceFailure> {
    let body = match result {
        CalloutResult::Failed => return Err(ServiceFailure::Unavailable),
        CalloutResult::Response {
            status: Some(200),
            body,
        } => body,
        CalloutResult::Response {
            status: Some(status),
            ..
        } => {
            return Err(ServiceFailure::Status { status });
        }
        CalloutResult::Response { status: None, .. } => {
            return Err(ServiceFailure::Malformed {
                detail: "no :status".into(),
            });
        }
    };
    let response: VerdictResponse =
        serde_json::from_slice(body).map_err(|err| ServiceFailure::Malformed {
            detail: err.to_string(),
        })?;
    from_verdicts(updates, &response.verdicts)
}

/// The verdicts of a `200` answer that parses, as the service gave them (for the record; the
/// decision comes from [`from_callout`]).
pub fn verdicts_of(result: CalloutResult<'_>) -> Option<Vec<RefVerdict>> {
    match result {
        CalloutResult::Response {
            status: Some(200),
            body,
        } => serde_json::from_slice::<VerdictResponse>(body)
            .ok()
            .map(|r| r.verdicts),
        _ => None,
    }
}

/// Combines one verdict per update into the push's decision, checking the response first.
pub fn from_verdicts(
    updates: &[RefUpdate],
    verdicts: &[RefVerdict],
) -> Result<Decision, ServiceFailure> {
    if verdicts.len() != updates.len() {
        return Err(ServiceFailure::Malformed {
            detail: format!("{} verdicts for {} updates", verdicts.len(), updates.len()),
        });
    }
    for verdict in verdicts {
        check_verdict(verdict)?;
    }
    if verdicts.iter().all(|v| matches!(v, RefVerdict::Allow)) {
        return Ok(Decision::Forward);
    }

    let mut refs = Vec::with_capacity(updates.len());
    let mut info = Vec::new();
    let mut first_code = None;
    for (update, verdict) in updates.iter().zip(verdicts) {
        let reason = match verdict {
            RefVerdict::Allow => Reason::new(OTHER_REF_REFUSED, "(the push is refused as a whole)"),
            RefVerdict::Deny { code, reason: text } => {
                let text = reason::one_line(text, MAX_SERVICE_TEXT);
                first_code.get_or_insert_with(|| code.clone());
                info.push(if text.is_empty() {
                    format!("gitgate: {} is denied", update.refname)
                } else {
                    format!("gitgate: {} is denied: {text}", update.refname)
                });
                Reason::new(code, &text)
            }
            RefVerdict::Hold {
                code,
                ticket,
                url,
                reason: text,
            } => {
                let text = reason::one_line(text, MAX_SERVICE_TEXT);
                let ticket = reason::one_line(ticket, MAX_SERVICE_TEXT);
                let url = reason::one_line(url, MAX_SERVICE_TEXT);
                first_code.get_or_insert_with(|| code.clone());
                info.push(if url.is_empty() {
                    format!(
                        "gitgate: {} is held for review, ticket {ticket}",
                        update.refname
                    )
                } else {
                    format!(
                        "gitgate: {} is held for review, approve at {url}",
                        update.refname
                    )
                });
                let detail = if text.is_empty() {
                    format!("(ticket {ticket})")
                } else {
                    format!("{text} (ticket {ticket})")
                };
                Reason::new(code, &detail)
            }
        };
        refs.push(RefRefusal {
            refname: update.refname.clone(),
            reason,
        });
    }
    Ok(Decision::Refuse(Refusal {
        code: first_code.unwrap_or_else(|| OTHER_REF_REFUSED.to_owned()),
        refs,
        info,
    }))
}

/// Code for a held push a reviewer denied while it was still open.
pub const REVIEWER_DENIED: &str = "gitgate:deny:reviewer-denied";

/// A push the service held (nothing denied) that waits, still open, for its reviewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The tickets to wait on, in update order, without repeats.
    pub tickets: Vec<String>,
    /// The ticket of each update (`None` for an allowed one), in update order.
    pub per_update: Vec<Option<String>>,
    /// The answer when no decision comes in time: the hold refusal, as without a window.
    pub refusal: Refusal,
}

impl Hold {
    /// The hold of a push whose verdicts are `verdicts` and whose decision is `refusal`:
    /// `None` unless at least one update is held and none is denied.
    pub fn of(verdicts: &[RefVerdict], refusal: &Refusal) -> Option<Hold> {
        if verdicts
            .iter()
            .any(|v| matches!(v, RefVerdict::Deny { .. }))
        {
            return None;
        }
        let per_update: Vec<Option<String>> = verdicts
            .iter()
            .map(|v| match v {
                RefVerdict::Hold { ticket, .. } => Some(reason::one_line(ticket, MAX_SERVICE_TEXT)),
                RefVerdict::Allow | RefVerdict::Deny { .. } => None,
            })
            .collect();
        let mut tickets: Vec<String> = Vec::new();
        for ticket in per_update.iter().flatten() {
            if !tickets.contains(ticket) {
                tickets.push(ticket.clone());
            }
        }
        (!tickets.is_empty()).then(|| Hold {
            tickets,
            per_update,
            refusal: refusal.clone(),
        })
    }
}

/// How the wait for the reviewers of an open held push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// Every ticket was approved: forward the push, showing these lines first.
    Approved {
        /// `gitgate: <ticket> approved by <who>`, one per ticket.
        notice: Vec<String>,
    },
    /// A reviewer denied a ticket: refuse with their reason.
    Denied(Refusal),
    /// No decision in time (pending or expired), or the wait failed: the hold refusal, with a
    /// line saying why it was not released.
    Undecided(Refusal),
}

/// Turns the answer to `POST /v1/holds/wait` into how the wait ended. Anything but a `200`
/// answer with one status per ticket, in order, counts as no decision: a hold is released
/// only on an answer that names every ticket approved.
pub fn from_hold_wait(
    hold: &Hold,
    updates: &[RefUpdate],
    waited_ms: u64,
    result: CalloutResult<'_>,
) -> WaitOutcome {
    let undecided = |why: String| {
        let mut refusal = hold.refusal.clone();
        refusal.info.push(why);
        WaitOutcome::Undecided(refusal)
    };
    let statuses = match result {
        CalloutResult::Response {
            status: Some(200),
            body,
        } => serde_json::from_slice::<HoldWaitResponse>(body)
            .ok()
            .map(|r| r.tickets)
            .filter(|statuses| {
                statuses.len() == hold.tickets.len()
                    && statuses
                        .iter()
                        .zip(&hold.tickets)
                        .all(|(s, t)| reason::one_line(&s.ticket, MAX_SERVICE_TEXT) == *t)
            }),
        _ => None,
    };
    let Some(statuses) = statuses else {
        return undecided(
            "gitgate: the approval service could not say whether it was decided in time; \
             push again once it is approved"
                .into(),
        );
    };
    let who = |status: &TicketStatus| {
        let names: Vec<String> = status
            .decided_by
            .iter()
            .map(|n| reason::one_line(n, MAX_SERVICE_TEXT))
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            "a reviewer".to_owned()
        } else {
            names.join(", ")
        }
    };

    if let Some(denied) = statuses.iter().find(|s| s.state == TicketState::Denied) {
        let ticket = reason::one_line(&denied.ticket, MAX_SERVICE_TEXT);
        let text = denied
            .reason
            .as_deref()
            .map(|r| reason::one_line(r, MAX_SERVICE_TEXT))
            .unwrap_or_default();
        let detail = if text.is_empty() {
            format!("{} denied {ticket}", who(denied))
        } else {
            format!("{} denied {ticket}: {text}", who(denied))
        };
        let mut refs = Vec::with_capacity(updates.len());
        let mut info = Vec::new();
        for (update, held) in updates.iter().zip(&hold.per_update) {
            let reason = if held.as_ref() == Some(&ticket) {
                info.push(format!("gitgate: {} is denied: {detail}", update.refname));
                Reason::new(REVIEWER_DENIED, &detail)
            } else {
                Reason::new(OTHER_REF_REFUSED, "(the push is refused as a whole)")
            };
            refs.push(RefRefusal {
                refname: update.refname.clone(),
                reason,
            });
        }
        return WaitOutcome::Denied(Refusal {
            code: REVIEWER_DENIED.to_owned(),
            refs,
            info,
        });
    }
    if statuses.iter().all(|s| s.state == TicketState::Approved) {
        let notice = statuses
            .iter()
            .map(|s| {
                let ticket = reason::one_line(&s.ticket, MAX_SERVICE_TEXT);
                format!("gitgate: {ticket} approved by {}", who(s))
            })
            .collect();
        return WaitOutcome::Approved { notice };
    }
    if let Some(expired) = statuses.iter().find(|s| s.state == TicketState::Expired) {
        let ticket = reason::one_line(&expired.ticket, MAX_SERVICE_TEXT);
        return undecided(format!(
            "gitgate: ticket {ticket} expired while the push waited; push again for a new one"
        ));
    }
    let seconds = waited_ms.saturating_add(500) / 1000;
    undecided(format!(
        "gitgate: the push waited {seconds} s for a review while open; push again once it is \
         approved"
    ))
}

/// The decision when the service failed: refuse every ref, or forward under `open`.
pub fn on_failure(updates: &[RefUpdate], failure: &ServiceFailure, mode: FailureMode) -> Decision {
    match mode {
        FailureMode::Open => Decision::Forward,
        FailureMode::Closed => {
            let refnames: Vec<String> = updates.iter().map(|u| u.refname.clone()).collect();
            Decision::Refuse(Refusal::all(
                &refnames,
                failure.code(),
                &failure.to_string(),
            ))
        }
    }
}

fn check_verdict(verdict: &RefVerdict) -> Result<(), ServiceFailure> {
    match verdict {
        RefVerdict::Allow => Ok(()),
        RefVerdict::Deny { code, .. } => check_code(code, DENY_PREFIX),
        RefVerdict::Hold { code, ticket, .. } => {
            check_code(code, HOLD_PREFIX)?;
            if reason::one_line(ticket, MAX_SERVICE_TEXT).is_empty() {
                return Err(ServiceFailure::Malformed {
                    detail: "hold without a ticket".into(),
                });
            }
            Ok(())
        }
    }
}

/// A code is `<prefix><slug>` with a non-empty slug of `[a-z0-9-]`.
fn check_code(code: &str, prefix: &str) -> Result<(), ServiceFailure> {
    let valid = code.strip_prefix(prefix).is_some_and(|slug| {
        !slug.is_empty()
            && slug.len() <= 64
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    });
    if valid {
        Ok(())
    } else {
        Err(ServiceFailure::Malformed {
            detail: format!("code {:?} does not start with {prefix} and a slug", code),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Operation;

    fn update(name: &str) -> RefUpdate {
        RefUpdate {
            refname: name.into(),
            old: "1".repeat(40),
            new: "2".repeat(40),
            operation: Operation::Update,
        }
    }

    fn two() -> Vec<RefUpdate> {
        vec![update("refs/heads/main"), update("refs/heads/agent/fix")]
    }

    fn hold() -> RefVerdict {
        RefVerdict::Hold {
            code: "gitgate:hold:protected-branch".into(),
            ticket: "t-42".into(),
            url: "http://127.0.0.1:8090/tickets/t-42".into(),
            reason: "main needs a reviewer".into(),
        }
    }

    fn refusal(decision: Result<Decision, ServiceFailure>) -> Refusal {
        match decision {
            Ok(Decision::Refuse(refusal)) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn all_allowed_means_forward() {
        let verdicts = [RefVerdict::Allow, RefVerdict::Allow];
        assert_eq!(from_verdicts(&two(), &verdicts), Ok(Decision::Forward));
    }

    #[test]
    fn one_hold_refuses_every_ref_and_points_to_the_ticket() {
        let refusal = refusal(from_verdicts(&two(), &[hold(), RefVerdict::Allow]));
        assert_eq!(refusal.code, "gitgate:hold:protected-branch");
        assert_eq!(
            refusal.refs[0].reason.as_str(),
            "gitgate:hold:protected-branch main needs a reviewer (ticket t-42)"
        );
        assert!(
            refusal.refs[1]
                .reason
                .as_str()
                .starts_with(OTHER_REF_REFUSED)
        );
        assert_eq!(
            refusal.info,
            ["gitgate: refs/heads/main is held for review, approve at \
              http://127.0.0.1:8090/tickets/t-42"]
        );
    }

    #[test]
    fn a_denial_carries_its_code_and_reason() {
        let deny = RefVerdict::Deny {
            code: "gitgate:deny:reviewer-denied".into(),
            reason: "not like this\nplease".into(),
        };
        let refusal = refusal(from_verdicts(&two(), &[RefVerdict::Allow, deny]));
        assert_eq!(
            refusal.refs[1].reason.as_str(),
            "gitgate:deny:reviewer-denied not like this please"
        );
        assert_eq!(refusal.code, "gitgate:deny:reviewer-denied");
    }

    #[test]
    fn a_verdict_count_that_does_not_match_is_malformed() {
        assert!(matches!(
            from_verdicts(&two(), &[RefVerdict::Allow]),
            Err(ServiceFailure::Malformed { .. })
        ));
    }

    #[test]
    fn a_code_with_the_wrong_prefix_is_malformed() {
        let bad = RefVerdict::Deny {
            code: "gitgate:hold:x".into(),
            reason: String::new(),
        };
        assert!(matches!(
            from_verdicts(&[update("refs/heads/a")], &[bad]),
            Err(ServiceFailure::Malformed { .. })
        ));
        let bad = RefVerdict::Deny {
            code: "gitgate:deny:Up To Date".into(),
            reason: "".into(),
        };
        assert!(from_verdicts(&[update("refs/heads/a")], &[bad]).is_err());
    }

    #[test]
    fn a_hold_without_ticket_is_malformed() {
        let bad = RefVerdict::Hold {
            code: "gitgate:hold:x".into(),
            ticket: " ".into(),
            url: String::new(),
            reason: String::new(),
        };
        assert!(from_verdicts(&[update("refs/heads/a")], &[bad]).is_err());
    }

    #[test]
    fn a_callout_without_response_is_unavailable() {
        assert_eq!(
            from_callout(&two(), CalloutResult::Failed),
            Err(ServiceFailure::Unavailable)
        );
    }

    #[test]
    fn a_non_200_response_is_unavailable() {
        let result = CalloutResult::Response {
            status: Some(503),
            body: b"",
        };
        let failure = from_callout(&two(), result).expect_err("failure");
        assert_eq!(failure, ServiceFailure::Status { status: 503 });
        assert_eq!(failure.code(), APPROVAL_UNAVAILABLE);
    }

    #[test]
    fn a_body_that_is_not_json_is_malformed() {
        let result = CalloutResult::Response {
            status: Some(200),
            body: b"<html>",
        };
        let failure = from_callout(&two(), result).expect_err("failure");
        assert_eq!(failure.code(), APPROVAL_MALFORMED);
    }

    #[test]
    fn a_json_answer_is_decoded() {
        let body = br#"{"verdicts":[{"decision":"allow"},{"decision":"allow"}]}"#;
        let result = CalloutResult::Response {
            status: Some(200),
            body,
        };
        assert_eq!(from_callout(&two(), result), Ok(Decision::Forward));
    }

    #[test]
    fn failure_mode_closed_refuses_and_open_forwards() {
        let failure = ServiceFailure::Unavailable;
        assert_eq!(
            on_failure(&two(), &failure, FailureMode::Open),
            Decision::Forward
        );
        let Decision::Refuse(refusal) = on_failure(&two(), &failure, FailureMode::Closed) else {
            panic!("closed must refuse");
        };
        assert_eq!(refusal.code, APPROVAL_UNAVAILABLE);
        assert_eq!(refusal.refs.len(), 2);
        assert!(
            refusal
                .refs
                .iter()
                .all(|r| r.reason.as_str().starts_with(APPROVAL_UNAVAILABLE))
        );
    }
}
