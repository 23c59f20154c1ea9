//! Records as the API, the pages and the command line show them: the stored row decoded, a
//! session's timeline step by step, and the story of one commit.

use std::collections::{BTreeMap, BTreeSet};

use gitgate_core::api::{GateEvent, RefOutcome, RefUpdate, RefVerdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyPool;

use super::record::{DecisionData, Envelope, RecordKind, VerdictData};
use super::store::{self, SessionHead, StoredRecord};
use crate::clock;
use crate::store::{Store, StoreError, TicketStatus};

/// A record as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    /// The session.
    pub session: String,
    /// Its place in the session.
    pub seq: i64,
    /// `event`, `verdict` or `decision`.
    pub kind: String,
    /// When, unix milliseconds.
    pub at: i64,
    /// When, RFC 3339 in UTC.
    pub time: String,
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// An agent?
    pub agent: bool,
    /// The repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The payload: a GateEvent, verdict data or decision data; `null` if it does not parse.
    pub data: Value,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

impl RecordView {
    /// Decodes a stored row.
    pub fn new(record: &StoredRecord) -> Self {
        let data = serde_json::from_str::<Envelope>(&record.record)
            .map(|envelope| envelope.data)
            .unwrap_or(Value::Null);
        RecordView {
            session: record.session.clone(),
            seq: record.seq,
            kind: record.kind.clone(),
            at: record.occurred_at,
            time: clock::rfc3339(record.occurred_at),
            request_id: record.request_id.clone(),
            subject: record.subject.clone(),
            acting_for: record.acting_for.clone(),
            agent: record.agent != 0,
            repository: record.repository.clone(),
            data,
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
        }
    }

    fn event(&self) -> Option<GateEvent> {
        (self.kind == RecordKind::Event.as_str())
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }

    fn verdict(&self) -> Option<VerdictData> {
        (self.kind == RecordKind::Verdict.as_str())
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }

    fn decision(&self) -> Option<DecisionData> {
        (self.kind == RecordKind::Decision.as_str())
            .then(|| serde_json::from_value(self.data.clone()).ok())
            .flatten()
    }
}

/// One line of the JSON Lines export: the stored row with its envelope as JSON, so that the
/// chain can be checked again from the export alone (the canonical text is the envelope's
/// canonical JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportLine {
    /// The session.
    pub session: String,
    /// The place.
    pub seq: i64,
    /// The previous hash.
    pub prev_hash: String,
    /// The hash over `prev_hash` and the canonical JSON of `record`.
    pub hash: String,
    /// The envelope.
    pub record: Value,
}

impl ExportLine {
    /// The export line of a stored row.
    pub fn new(record: &StoredRecord) -> Self {
        ExportLine {
            session: record.session.clone(),
            seq: record.seq,
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
            record: serde_json::from_str(&record.record).unwrap_or(Value::Null),
        }
    }
}

/// A session as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    /// The session.
    pub session: String,
    /// How many records it has.
    pub records: i64,
    /// Its first record's time, RFC 3339.
    pub first: String,
    /// Its last record's time, RFC 3339.
    pub last: String,
    /// Its last record's time, unix milliseconds.
    pub last_at: i64,
    /// The subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// An agent?
    pub agent: bool,
    /// The hash of its last record.
    pub last_hash: String,
}

impl SessionView {
    /// The view of a head row.
    pub fn new(head: &SessionHead) -> Self {
        SessionView {
            session: head.session.clone(),
            records: head.last_seq,
            first: clock::rfc3339(head.first_at),
            last: clock::rfc3339(head.last_at),
            last_at: head.last_at,
            subject: head.subject.clone(),
            acting_for: head.acting_for.clone(),
            agent: head.agent != 0,
            last_hash: head.last_hash.clone(),
        }
    }
}

/// One ref of a step: the update, its verdict and what the upstream said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRef {
    /// The ref.
    #[serde(rename = "ref")]
    pub refname: String,
    /// The old id.
    pub old: String,
    /// The new id.
    pub new: String,
    /// Create, update or delete.
    pub operation: String,
    /// `allow`, `deny` or `hold`, when a verdict was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The verdict's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The verdict's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// `ok`, or `ng <reason>`, from the upstream's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// One step of a session's timeline, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The record's place.
    pub seq: i64,
    /// `event`, `verdict` or `decision`.
    pub kind: String,
    /// When, unix milliseconds.
    pub at: i64,
    /// When, RFC 3339.
    pub time: String,
    /// The request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A one-line summary, e.g. `push demo.git: forwarded`.
    pub title: String,
    /// The request line, for events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The final HTTP status, for events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Refs asked for or shown (reads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// Ref updates with their verdicts (pushes, verdicts, decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<StepRef>,
    /// The lines the client was shown (masked by the filter): messages and rejections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shown: Vec<String>,
    /// What the filter could not record in full, and other remarks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The timeline of a session: its records ordered by time (then by place), each as a step.
///
/// The chain is in arrival order; reads come through a queue and may be stored after a later
/// write, so the timeline sorts by when each thing happened.
pub fn timeline(records: &[StoredRecord]) -> Vec<Step> {
    let mut steps: Vec<Step> = records.iter().map(|r| step(&RecordView::new(r))).collect();
    steps.sort_by_key(|s| (s.at, s.seq));
    steps
}

fn verdict_parts(verdict: &RefVerdict) -> (String, Option<String>, Option<String>, Option<String>) {
    match verdict {
        RefVerdict::Allow => ("allow".to_owned(), None, None, None),
        RefVerdict::Deny { code, reason } => (
            "deny".to_owned(),
            Some(code.clone()),
            Some(reason.clone()),
            None,
        ),
        RefVerdict::Hold {
            code,
            ticket,
            reason,
            ..
        } => (
            "hold".to_owned(),
            Some(code.clone()),
            Some(reason.clone()),
            Some(ticket.clone()),
        ),
    }
}

fn step_ref(
    update: &RefUpdate,
    verdict: Option<&RefVerdict>,
    upstream: Option<&RefOutcome>,
) -> StepRef {
    let (verdict, code, reason, ticket) = match verdict.map(verdict_parts) {
        Some((v, c, r, t)) => (Some(v), c, r, t),
        None => (None, None, None, None),
    };
    StepRef {
        refname: update.refname.clone(),
        old: update.old.clone(),
        new: update.new.clone(),
        operation: update.operation.as_str().to_owned(),
        verdict,
        code,
        reason,
        ticket,
        upstream: upstream.map(|o| match (&o.ok, &o.reason) {
            (true, _) => "ok".to_owned(),
            (false, Some(reason)) => format!("ng {reason}"),
            (false, None) => "ng".to_owned(),
        }),
    }
}

/// A record as one step.
pub fn step(view: &RecordView) -> Step {
    let mut step = Step {
        seq: view.seq,
        kind: view.kind.clone(),
        at: view.at,
        time: view.time.clone(),
        request_id: view.request_id.clone(),
        subject: view.subject.clone(),
        title: String::new(),
        request: None,
        status: None,
        refs: Vec::new(),
        updates: Vec::new(),
        shown: Vec::new(),
        notes: Vec::new(),
    };
    let repository = view.repository.as_deref().unwrap_or("-");
    if let Some(event) = view.event() {
        let what = match (event.service.as_str(), event.advertised_service.as_deref()) {
            ("receive-pack", _) => "push".to_owned(),
            ("upload-pack", _) => "fetch".to_owned(),
            ("info-refs", Some("git-receive-pack")) => "ref advertisement (push)".to_owned(),
            ("info-refs", _) => "ref advertisement (fetch)".to_owned(),
            (other, _) => other.to_owned(),
        };
        let decision = event.decision.as_deref().unwrap_or("passed");
        step.title = format!("{what} {repository}: {decision}");
        step.request = Some(format!("{} {}", event.method, event.path));
        step.status = event.status;
        step.refs = event.refs.clone();
        step.updates = event
            .updates
            .iter()
            .enumerate()
            .map(|(index, update)| {
                let upstream = event.upstream.iter().find(|o| o.refname == update.refname);
                step_ref(update, event.verdicts.get(index), upstream)
            })
            .collect();
        step.shown = event.shown.clone();
        step.notes = event.notes.clone();
        if !event.findings.is_empty() {
            step.notes.push(format!(
                "{} secret finding(s): {}",
                event.findings.len(),
                event
                    .findings
                    .iter()
                    .map(|f| f.rule.as_str())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if event.masked > 0 {
            step.notes.push(format!(
                "{} secret value(s) masked in the response",
                event.masked
            ));
        }
    } else if let Some(verdict) = view.verdict() {
        let decisions: Vec<String> = verdict
            .updates
            .iter()
            .map(|u| verdict_parts(&u.verdict).0)
            .collect();
        step.title = format!("verdict on {repository}: {}", decisions.join(", "));
        step.updates = verdict
            .updates
            .iter()
            .map(|u| {
                let mut line = step_ref(&u.update, Some(&u.verdict), None);
                line.ticket = line.ticket.or_else(|| u.ticket.clone());
                line
            })
            .collect();
    } else if let Some(decision) = view.decision() {
        let verb = if decision.decision == "approve" {
            "approved"
        } else {
            "denied"
        };
        step.title = format!(
            "{} {verb} {} ({})",
            decision.reviewer, decision.ticket, decision.update.refname
        );
        let mut line = step_ref(&decision.update, None, None);
        line.ticket = Some(decision.ticket.clone());
        step.updates = vec![line];
        step.notes
            .extend(decision.reason.map(|r| format!("reason: {r}")));
        step.notes
            .extend(decision.comment.map(|c| format!("comment: {c}")));
        if let Some(until) = decision.valid_until {
            step.notes
                .push(format!("valid until {}", clock::rfc3339(until)));
        }
    } else {
        step.title = format!("{} record that could not be read", view.kind);
    }
    step
}

/// A push that brought a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// The session.
    pub session: String,
    /// The record's place.
    pub seq: i64,
    /// The push's request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When, RFC 3339.
    pub time: String,
    /// When, unix milliseconds.
    pub at: i64,
    /// Who pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// An agent?
    pub agent: bool,
    /// The repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `tip` when a ref was set to the commit, `pack` when the pack carried it.
    pub via: Vec<String>,
    /// The filter's decision label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The push's refs with their verdicts and the upstream's answers.
    pub updates: Vec<StepRef>,
}

/// A reviewer's decision on a ticket about a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The ticket.
    pub ticket: String,
    /// `approve` or `deny` (from a decision record), or the ticket's status.
    pub decision: String,
    /// Who.
    pub by: String,
    /// When, RFC 3339.
    pub time: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where it is recorded: `audit` (a decision record) or `ticket` (the ticket table).
    pub source: String,
    /// The decision record's session and place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// Everything the record says about one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitReport {
    /// The id asked for (a full id or a prefix).
    pub commit: String,
    /// The full ids it matched.
    pub ids: Vec<String>,
    /// The sessions that brought it, with their identities.
    pub sessions: Vec<SessionView>,
    /// The pushes that carried it, oldest first.
    pub pushes: Vec<Push>,
    /// The verdict records of those pushes.
    pub verdicts: Vec<RecordView>,
    /// Who approved or denied the tickets of those pushes.
    pub approvals: Vec<Approval>,
}

/// Looks a commit up: the sessions and pushes that brought it, their verdicts and approvals.
pub async fn commit_report(store: &Store, commit: &str) -> Result<CommitReport, StoreError> {
    let pool = store.pool();
    let links = store::commit_links(pool, commit).await?;
    let ids: BTreeSet<String> = links.iter().map(|l| l.commit_id.clone()).collect();
    let mut via: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for link in &links {
        via.entry((link.session.clone(), link.seq))
            .or_default()
            .insert(link.source.clone());
    }

    // The linked records, and every record of the same requests (a commit carried only in
    // the pack is linked from the push event, not from its verdict).
    let mut records: BTreeMap<(String, i64), RecordView> = BTreeMap::new();
    let mut requests = BTreeSet::new();
    for (session, seq) in via.keys() {
        if let Some(record) = store::record_at(pool, session, *seq).await? {
            requests.extend(record.request_id.clone());
            records.insert((session.clone(), *seq), RecordView::new(&record));
        }
    }
    for request in &requests {
        for record in store::records_of_request(pool, request).await? {
            if record.kind != RecordKind::Decision.as_str() {
                records
                    .entry((record.session.clone(), record.seq))
                    .or_insert_with(|| RecordView::new(&record));
            }
        }
    }

    let mut pushes = Vec::new();
    let mut verdicts = Vec::new();
    let mut tickets = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    for (place, view) in &records {
        if let Some(event) = view.event() {
            for verdict in &event.verdicts {
                if let RefVerdict::Hold { ticket, .. } = verdict {
                    tickets.insert(ticket.clone());
                }
            }
            sessions.insert(view.session.clone());
            let step = step(view);
            pushes.push(Push {
                session: view.session.clone(),
                seq: view.seq,
                request_id: view.request_id.clone(),
                time: view.time.clone(),
                at: view.at,
                subject: view.subject.clone(),
                acting_for: view.acting_for.clone(),
                agent: view.agent,
                repository: view.repository.clone(),
                via: via
                    .get(place)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
                decision: event.decision.clone(),
                updates: step.updates,
            });
        } else if let Some(verdict) = view.verdict() {
            tickets.extend(verdict.updates.iter().filter_map(|u| u.ticket.clone()));
            sessions.insert(view.session.clone());
            verdicts.push(view.clone());
        }
    }
    pushes.sort_by_key(|p| (p.at, p.seq));
    verdicts.sort_by_key(|v| (v.at, v.seq));

    let mut approvals = Vec::new();
    for ticket in &tickets {
        let mut recorded = false;
        for record in store::records_of_ticket(pool, ticket).await? {
            let view = RecordView::new(&record);
            if let Some(decision) = view.decision() {
                recorded = true;
                approvals.push(Approval {
                    ticket: ticket.clone(),
                    decision: decision.decision,
                    by: decision.reviewer,
                    time: view.time.clone(),
                    reason: decision.reason,
                    source: "audit".to_owned(),
                    session: Some(view.session.clone()),
                    seq: Some(view.seq),
                });
            }
        }
        // Decisions made before the audit record existed are still on the ticket.
        if !recorded
            && let Some(stored) = store.ticket(ticket).await?
            && stored.status != TicketStatus::Pending
            && let Some(review) = &stored.review
        {
            approvals.push(Approval {
                ticket: ticket.clone(),
                decision: stored.status.as_str().to_owned(),
                by: review.by.clone(),
                time: clock::rfc3339(review.at),
                reason: review.reason.clone(),
                source: "ticket".to_owned(),
                session: None,
                seq: None,
            });
        }
    }

    let mut session_views = Vec::new();
    for session in &sessions {
        if let Some(head) = store::session_head(pool, session).await? {
            session_views.push(SessionView::new(&head));
        }
    }
    Ok(CommitReport {
        commit: commit.to_owned(),
        ids: ids.into_iter().collect(),
        sessions: session_views,
        pushes,
        verdicts,
        approvals,
    })
}

/// A session's head and its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTimeline {
    /// The session.
    pub session: SessionView,
    /// Its steps, by time.
    pub timeline: Vec<Step>,
}

/// The timeline of one session; `None` when it has no head.
pub async fn session_timeline(
    pool: &AnyPool,
    session: &str,
) -> Result<Option<SessionTimeline>, StoreError> {
    let Some(head) = store::session_head(pool, session).await? else {
        return Ok(None);
    };
    let records = store::session_records(pool, session).await?;
    Ok(Some(SessionTimeline {
        session: SessionView::new(&head),
        timeline: timeline(&records),
    }))
}
