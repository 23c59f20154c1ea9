//! `gitgate audit verify`: walks every chain and reports each record that was changed,
//! removed or reordered.
//!
//! Per session, in sequence order: each record's hash must be SHA-256 over its `prev_hash` and
//! its stored canonical JSON; the JSON must be canonical and name the session and place it is
//! stored at; the query columns must agree with it; its `prev_hash` must be the previous
//! record's hash; the numbers must run from 1 without gaps; and the head in `audit_sessions`
//! must name the last record's number and hash. What this cannot catch: a whole session removed
//! together with its head, or a chain rewritten from some record on with every hash recomputed
//! (the hash is not keyed); see SHORTCOMINGS.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::AnyPool;

use super::chain::{self, GENESIS_HASH};
use super::record::{Envelope, RecordKind};
use super::store::{self, SessionHead, StoredRecord};
use crate::store::StoreError;

/// What is wrong with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProblemKind {
    /// Its content, its hash or its columns were edited.
    Changed,
    /// It is missing.
    Removed,
    /// It is stored at a place other than the one it was written at.
    Reordered,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Changed, removed or reordered.
    pub kind: ProblemKind,
    /// The session.
    pub session: String,
    /// The place of the record concerned.
    pub seq: i64,
    /// What exactly does not hold, one line.
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Sessions walked.
    pub sessions: u64,
    /// Records read.
    pub records: u64,
    /// Everything found, by session and place.
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies one session, or all of them.
pub async fn verify(pool: &AnyPool, session: Option<&str>) -> Result<Report, StoreError> {
    let names = match session {
        Some(name) => vec![name.to_owned()],
        None => store::all_session_names(pool).await?,
    };
    let mut report = Report::default();
    for name in names {
        let head = store::session_head(pool, &name).await?;
        let records = store::session_records(pool, &name).await?;
        report.sessions += 1;
        report.records += u64::try_from(records.len()).unwrap_or(u64::MAX);
        report
            .problems
            .extend(verify_chain(&name, head.as_ref(), &records));
    }
    Ok(report)
}

/// The problems of one session's chain, given its head and its records in `seq` order.
pub fn verify_chain(
    session: &str,
    head: Option<&SessionHead>,
    records: &[StoredRecord],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |kind, seq, detail: String| {
        problems.push(Problem {
            kind,
            session: session.to_owned(),
            seq,
            detail,
        });
    };
    let mut expected_seq = 1i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    // Whether the previous place held a record that checked out on its own; a broken link
    // after such a record means that record was re-hashed, or one after it removed.
    let mut prev_sound = true;

    for record in records {
        let mut gap = false;
        if record.seq > expected_seq {
            for missing in expected_seq..record.seq {
                problem(
                    ProblemKind::Removed,
                    missing,
                    format!("record {missing} is missing"),
                );
            }
            gap = true;
        }
        let mut sound = true;
        match check_content(record) {
            Content::Sound => {}
            Content::Moved { written_as } => {
                sound = false;
                problem(
                    ProblemKind::Reordered,
                    record.seq,
                    format!(
                        "record written as {} of session {:?} is stored as {} of {session:?}",
                        written_as.1, written_as.0, record.seq
                    ),
                );
            }
            Content::Edited(detail) => {
                sound = false;
                problem(ProblemKind::Changed, record.seq, detail);
            }
        }
        if sound && !gap && record.prev_hash != prev_hash {
            if prev_sound && record.seq > 1 {
                // The previous record hashes correctly on its own but not as this one's link:
                // it was replaced by a re-hashed copy.
                problem(
                    ProblemKind::Changed,
                    record.seq - 1,
                    format!(
                        "its hash is not the prev_hash of record {}: it was rewritten",
                        record.seq
                    ),
                );
            } else if record.seq == 1 {
                problem(
                    ProblemKind::Changed,
                    record.seq,
                    "the first record does not link to the genesis hash".to_owned(),
                );
            }
        }
        prev_sound = sound;
        prev_hash = record.hash.clone();
        expected_seq = record.seq.saturating_add(1);
    }

    match head {
        None => problem(
            ProblemKind::Removed,
            0,
            "the session's head row is missing".to_owned(),
        ),
        Some(head) => {
            let last = expected_seq - 1;
            if head.last_seq > last {
                for missing in expected_seq..=head.last_seq {
                    problem(
                        ProblemKind::Removed,
                        missing,
                        format!(
                            "record {missing} is missing (the session has {})",
                            head.last_seq
                        ),
                    );
                }
            } else if head.last_seq < last {
                problem(
                    ProblemKind::Changed,
                    last,
                    format!(
                        "the session ends at {} but records run to {last}",
                        head.last_seq
                    ),
                );
            } else if last > 0 && head.last_hash != prev_hash && prev_sound {
                problem(
                    ProblemKind::Changed,
                    last,
                    "its hash is not the session's last hash: it was rewritten".to_owned(),
                );
            }
        }
    }
    problems
}

enum Content {
    Sound,
    /// The JSON names another place than the row.
    Moved {
        written_as: (String, i64),
    },
    Edited(String),
}

/// Checks one record on its own: its hash, its JSON and its columns.
fn check_content(record: &StoredRecord) -> Content {
    let value: Value = match serde_json::from_str(&record.record) {
        Ok(value) => value,
        Err(_) => return Content::Edited("the record is not valid JSON".to_owned()),
    };
    let envelope: Envelope = match serde_json::from_value(value.clone()) {
        Ok(envelope) => envelope,
        Err(_) => return Content::Edited("the record is not an audit envelope".to_owned()),
    };
    if envelope.session != record.session || envelope.seq != record.seq {
        return Content::Moved {
            written_as: (envelope.session, envelope.seq),
        };
    }
    if chain::canonical_json(&value) != record.record {
        return Content::Edited("the record's JSON is not in canonical form".to_owned());
    }
    if chain::link_hash(&record.prev_hash, &record.record) != record.hash {
        return Content::Edited("the record does not match its hash".to_owned());
    }
    let columns = [
        (
            "kind",
            RecordKind::parse(&record.kind) == Some(envelope.kind),
        ),
        ("request_id", record.request_id == envelope.request_id),
        ("occurred_at", record.occurred_at == envelope.at),
        ("subject", record.subject == envelope.subject),
        ("acting_for", record.acting_for == envelope.acting_for),
        ("agent", (record.agent != 0) == envelope.agent),
        ("token_id", record.token_id == envelope.token_id),
        ("repository", record.repository == envelope.repository),
    ];
    let differ: Vec<&str> = columns
        .iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| *name)
        .collect();
    if !differ.is_empty() {
        return Content::Edited(format!(
            "column {} disagrees with the hashed record",
            differ.join(", ")
        ));
    }
    Content::Sound
}
