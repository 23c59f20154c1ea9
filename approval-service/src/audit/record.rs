//! What an audit record holds: the envelope the hash covers, and the payload of each kind.

use gitgate_core::api::{
    GateEvent, Identity, Operation, PackSummary, RefUpdate, RefVerdict, SecretFinding,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The session of records without a session claim or a token id.
pub const ANONYMOUS_SESSION: &str = "anonymous";

/// The version of the envelope written by this service.
pub const ENVELOPE_VERSION: u32 = 1;

/// Which kind of fact a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// A request through the gate, as the filter reported it ([`GateEvent`]).
    Event,
    /// The verdicts the service gave one push ([`VerdictData`]).
    Verdict,
    /// A reviewer's decision on a ticket ([`DecisionData`]).
    Decision,
}

impl RecordKind {
    /// The stored value of `audit_records.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Event => "event",
            RecordKind::Verdict => "verdict",
            RecordKind::Decision => "decision",
        }
    }

    /// The kind a stored value names.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "event" => Some(RecordKind::Event),
            "verdict" => Some(RecordKind::Verdict),
            "decision" => Some(RecordKind::Decision),
            _ => None,
        }
    }
}

/// The hashed form of a record. Its canonical JSON is stored in `audit_records.record`; the
/// table's other columns repeat these fields for queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`ENVELOPE_VERSION`].
    pub v: u32,
    /// The session the record belongs to.
    pub session: String,
    /// Its place in the session, from 1, without gaps.
    pub seq: i64,
    /// Event, verdict or decision.
    pub kind: RecordKind,
    /// When it happened, unix milliseconds: the request's start for an event (Envoy's clock),
    /// the service's time for a verdict or decision.
    pub at: i64,
    /// The request it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who acted: the token's subject, or the reviewer for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The person an agent acted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// True when `subject` is an autonomous agent.
    #[serde(default)]
    pub agent: bool,
    /// The token id (`jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The kind's payload: a [`GateEvent`], [`VerdictData`] or [`DecisionData`] as JSON.
    pub data: Value,
}

/// The payload of a `verdict` record: one push's question and the service's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictData {
    /// The push's request id.
    pub request_id: String,
    /// The repository.
    pub repository: String,
    /// Who pushed.
    pub identity: Identity,
    /// True for an atomic push.
    #[serde(default)]
    pub atomic: bool,
    /// The push options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_options: Vec<String>,
    /// One entry per update, in the push's order.
    pub updates: Vec<VerdictUpdate>,
    /// The redacted findings the push carried (never a value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<SecretFinding>,
    /// The pusher's reason for a secret bypass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_reason: Option<String>,
    /// What the pack carried, when the filter read it before asking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackSummary>,
}

/// One update of a push and the verdict it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictUpdate {
    /// The update as the client sent it.
    pub update: RefUpdate,
    /// The verdict as the filter received it.
    pub verdict: RefVerdict,
    /// The policy rule or review that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The ticket involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// The payload of a `decision` record: one reviewer's decision on a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionData {
    /// The ticket.
    pub ticket: String,
    /// `approve` or `deny`.
    pub decision: String,
    /// Who decided.
    pub reviewer: String,
    /// Why (required for a denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A remark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Until when an approval lets the update through, unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// The ticket's status after this decision (`pending` while more approvals are needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_status: Option<String>,
    /// The repository of the held update.
    pub repository: String,
    /// The held update.
    pub update: RefUpdate,
    /// The request that opened the ticket.
    pub request_id: String,
}

/// A reviewer's decision, as the decision handler hands it to [`super::record_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The ticket decided.
    pub ticket_id: String,
    /// True for an approval, false for a denial.
    pub approve: bool,
    /// The reviewer's subject.
    pub reviewer: String,
    /// Why.
    pub reason: Option<String>,
    /// A remark.
    pub comment: Option<String>,
    /// Until when an approval holds, unix milliseconds.
    pub valid_until: Option<i64>,
    /// The ticket's status after the decision.
    pub ticket_status: Option<String>,
    /// The ticket's repository.
    pub repository: String,
    /// The ticket's ref.
    pub refname: String,
    /// The ticket's old id.
    pub old_id: String,
    /// The ticket's new id.
    pub new_id: String,
    /// The ticket's operation.
    pub operation: Operation,
    /// The request that opened the ticket; its session's chain receives the record when no
    /// verdict record names the ticket.
    pub request_id: String,
    /// When, unix milliseconds.
    pub at: i64,
}

/// A ref a record names, for the ref and ticket indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRef {
    /// The full ref name.
    pub refname: String,
    /// The old id, for an update.
    pub old_id: Option<String>,
    /// The new id, for an update.
    pub new_id: Option<String>,
    /// The ticket, when one was involved.
    pub ticket: Option<String>,
}

/// A commit a record names, for the commit index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedCommit {
    /// The commit id in hex.
    pub id: String,
    /// `tip` (a ref's new id) or `pack` (a commit the pushed pack carried).
    pub source: &'static str,
    /// The ref, for a tip.
    pub refname: Option<String>,
}

/// A record before it has a place in its chain.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The session whose chain receives it.
    pub session: String,
    /// Event, verdict or decision.
    pub kind: RecordKind,
    /// When, unix milliseconds.
    pub at: i64,
    /// The request.
    pub request_id: Option<String>,
    /// Who acted.
    pub subject: Option<String>,
    /// For whom.
    pub acting_for: Option<String>,
    /// An agent?
    pub agent: bool,
    /// The token id.
    pub token_id: Option<String>,
    /// The repository.
    pub repository: Option<String>,
    /// The payload.
    pub data: Value,
    /// Refs to index.
    pub refs: Vec<IndexedRef>,
    /// Commits to index.
    pub commits: Vec<IndexedCommit>,
}

impl Draft {
    /// The envelope of this draft at `seq`.
    pub fn envelope(&self, seq: i64) -> Envelope {
        Envelope {
            v: ENVELOPE_VERSION,
            session: self.session.clone(),
            seq,
            kind: self.kind,
            at: self.at,
            request_id: self.request_id.clone(),
            subject: self.subject.clone(),
            acting_for: self.acting_for.clone(),
            agent: self.agent,
            token_id: self.token_id.clone(),
            repository: self.repository.clone(),
            data: self.data.clone(),
        }
    }

    /// The record of a filter event.
    pub fn of_event(event: &GateEvent) -> Draft {
        let identity = event.identity.as_ref();
        let mut refs: Vec<IndexedRef> = event
            .updates
            .iter()
            .enumerate()
            .map(|(index, update)| IndexedRef {
                refname: update.refname.clone(),
                old_id: Some(update.old.clone()),
                new_id: Some(update.new.clone()),
                ticket: event.verdicts.get(index).and_then(ticket_of),
            })
            .collect();
        refs.extend(event.refs.iter().map(|refname| IndexedRef {
            refname: refname.clone(),
            old_id: None,
            new_id: None,
            ticket: None,
        }));
        let mut commits = tips(&event.updates);
        if let Some(pack) = &event.pack {
            commits.extend(pack.commits.iter().map(|commit| IndexedCommit {
                id: commit.id.clone(),
                source: "pack",
                refname: None,
            }));
        }
        Draft {
            session: session_of(identity),
            kind: RecordKind::Event,
            at: i64::try_from(event.started_ms).unwrap_or(i64::MAX),
            request_id: Some(event.request_id.clone()),
            subject: identity.map(|i| i.subject.clone()),
            acting_for: identity.and_then(|i| i.acting_for.clone()),
            agent: identity.is_some_and(|i| i.agent),
            token_id: identity.and_then(|i| i.token_id.clone()),
            repository: event.repository.clone(),
            // A GateEvent is plain data; serialising it cannot fail.
            data: serde_json::to_value(event).unwrap_or(Value::Null),
            refs,
            commits,
        }
    }

    /// The record of the verdicts given to one push.
    pub fn of_verdicts(data: &VerdictData, at: i64) -> Draft {
        let updates: Vec<RefUpdate> = data.updates.iter().map(|u| u.update.clone()).collect();
        let refs = data
            .updates
            .iter()
            .map(|u| IndexedRef {
                refname: u.update.refname.clone(),
                old_id: Some(u.update.old.clone()),
                new_id: Some(u.update.new.clone()),
                ticket: u.ticket.clone(),
            })
            .collect();
        let mut commits = tips(&updates);
        if let Some(pack) = &data.pack {
            commits.extend(pack.commits.iter().map(|commit| IndexedCommit {
                id: commit.id.clone(),
                source: "pack",
                refname: None,
            }));
        }
        Draft {
            session: session_of(Some(&data.identity)),
            kind: RecordKind::Verdict,
            at,
            request_id: Some(data.request_id.clone()),
            subject: Some(data.identity.subject.clone()),
            acting_for: data.identity.acting_for.clone(),
            agent: data.identity.agent,
            token_id: data.identity.token_id.clone(),
            repository: Some(data.repository.clone()),
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            refs,
            commits,
        }
    }

    /// The record of a reviewer's decision, for the chain of `session`.
    pub fn of_decision(decision: &Decision, session: &str) -> Draft {
        let update = RefUpdate {
            refname: decision.refname.clone(),
            old: decision.old_id.clone(),
            new: decision.new_id.clone(),
            operation: decision.operation,
        };
        let data = DecisionData {
            ticket: decision.ticket_id.clone(),
            decision: if decision.approve { "approve" } else { "deny" }.to_owned(),
            reviewer: decision.reviewer.clone(),
            reason: decision.reason.clone(),
            comment: decision.comment.clone(),
            valid_until: decision.valid_until,
            ticket_status: decision.ticket_status.clone(),
            repository: decision.repository.clone(),
            update,
            request_id: decision.request_id.clone(),
        };
        Draft {
            session: session.to_owned(),
            kind: RecordKind::Decision,
            at: decision.at,
            request_id: Some(decision.request_id.clone()),
            subject: Some(decision.reviewer.clone()),
            acting_for: None,
            agent: false,
            token_id: None,
            repository: Some(decision.repository.clone()),
            data: serde_json::to_value(&data).unwrap_or(Value::Null),
            refs: vec![IndexedRef {
                refname: decision.refname.clone(),
                old_id: Some(decision.old_id.clone()),
                new_id: Some(decision.new_id.clone()),
                ticket: Some(decision.ticket_id.clone()),
            }],
            commits: Vec::new(),
        }
    }
}

/// The session of an identity: its session claim, else its token id, else
/// [`ANONYMOUS_SESSION`].
pub fn session_of(identity: Option<&Identity>) -> String {
    identity
        .and_then(|i| i.session.clone().or_else(|| i.token_id.clone()))
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| ANONYMOUS_SESSION.to_owned())
}

/// The ticket of a hold verdict.
fn ticket_of(verdict: &RefVerdict) -> Option<String> {
    match verdict {
        RefVerdict::Hold { ticket, .. } => Some(ticket.clone()),
        RefVerdict::Allow | RefVerdict::Deny { .. } => None,
    }
}

/// The new tips of the updates that are not deletes.
fn tips(updates: &[RefUpdate]) -> Vec<IndexedCommit> {
    updates
        .iter()
        .filter(|u| u.operation != Operation::Delete)
        .map(|u| IndexedCommit {
            id: u.new.clone(),
            source: "tip",
            refname: Some(u.refname.clone()),
        })
        .collect()
}
