//! The audit tables in SQL: appending to a session's chain, the indexes, the drop counters and
//! the queries. Like [`crate::store`], one set of statements serves SQLite and PostgreSQL
//! through sqlx's `Any` driver (`$N` placeholders, BIGINT times and flags, `ON CONFLICT`).
//!
//! Appending to a session locks its head row in `audit_sessions` (a no-op `UPDATE` first, so
//! PostgreSQL's row lock is held until the transaction ends; SQLite's writers are serialised by
//! `BEGIN IMMEDIATE`), then reads the last sequence number and hash, so concurrent writers on
//! several service instances queue up per session and the numbers stay gapless. The primary key
//! (session, seq) backs this up: a writer that got it wrong fails instead of forking the chain.
//! Several sessions are locked in sorted order, so two batches never wait on each other.

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use super::chain::{self, GENESIS_HASH};
use super::record::{Draft, Envelope, RecordKind};
use crate::store::StoreError;

/// The most refs of a read that are indexed (the record itself keeps them all).
const MAX_INDEXED_READ_REFS: usize = 64;

/// The most records one query returns.
pub const MAX_LIMIT: i64 = 5000;

/// The number of records a query returns when it names no limit.
pub const DEFAULT_LIMIT: i64 = 200;

/// The drop counter of the filter's queues.
pub const FILTER_DROPS: &str = "filter";

/// The drop counter of this service's read queue.
pub const SERVICE_DROPS: &str = "service";

/// A stored record, as its row holds it (verify reads the raw columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The session.
    pub session: String,
    /// The place in the session.
    pub seq: i64,
    /// `event`, `verdict` or `decision`, as stored.
    pub kind: String,
    /// The request.
    pub request_id: Option<String>,
    /// When, unix milliseconds.
    pub occurred_at: i64,
    /// Who acted.
    pub subject: Option<String>,
    /// For whom.
    pub acting_for: Option<String>,
    /// 1 for an agent.
    pub agent: i64,
    /// The token id.
    pub token_id: Option<String>,
    /// The repository.
    pub repository: Option<String>,
    /// The canonical JSON of the envelope.
    pub record: String,
    /// The previous record's hash.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
}

/// The head of a session's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHead {
    /// The session.
    pub session: String,
    /// The last sequence number given out (the number of records).
    pub last_seq: i64,
    /// The hash of the last record.
    pub last_hash: String,
    /// When its first record happened.
    pub first_at: i64,
    /// When its last record happened.
    pub last_at: i64,
    /// The subject of its first record with one.
    pub subject: Option<String>,
    /// The person of its first record with a subject.
    pub acting_for: Option<String>,
    /// 1 when that subject is an agent.
    pub agent: i64,
}

/// Read events that were not recorded, by who dropped them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Drops {
    /// Dropped by the filter's workers (full queues), as reported in their batches.
    pub filter: u64,
    /// Dropped by this service's read queue (full, or the store failed), stored so far.
    pub service: u64,
}

/// Which records a query asks for. Every given field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// The session.
    pub session: Option<String>,
    /// The subject (the token holder, or the reviewer of a decision).
    pub subject: Option<String>,
    /// The person an agent acted for.
    pub acting_for: Option<String>,
    /// An agent: the subject, with the agent flag set.
    pub agent: Option<String>,
    /// A person: acting for them, or acting as them without the agent flag.
    pub person: Option<String>,
    /// The repository.
    pub repository: Option<String>,
    /// A ref the record names (updated, asked for or shown).
    pub refname: Option<String>,
    /// The kind.
    pub kind: Option<RecordKind>,
    /// A commit the record names (a pushed tip or a commit in a pushed pack).
    pub commit: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// From this time on, unix milliseconds.
    pub since: Option<i64>,
    /// Up to this time, unix milliseconds.
    pub until: Option<i64>,
    /// At most this many (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]).
    pub limit: Option<i64>,
}

impl RecordQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
    }

    fn is_empty(&self) -> bool {
        RecordQuery {
            limit: None,
            ..self.clone()
        } == RecordQuery::default()
    }
}

/// Where a commit appears: which record named it, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLink {
    /// The full commit id.
    pub commit_id: String,
    /// The record's session.
    pub session: String,
    /// The record's place.
    pub seq: i64,
    /// `tip` or `pack`.
    pub source: String,
    /// The ref, for a tip.
    pub refname: Option<String>,
}

/// A SQL text with its arguments, numbered as they are pushed.
struct Sql {
    text: String,
    args: Vec<Arg>,
}

enum Arg {
    Text(String),
    Int(i64),
}

impl Sql {
    fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// Appends `clause` with every `?` replaced by the next placeholder for `arg`.
    fn push(&mut self, clause: &str, arg: Arg) {
        self.args.push(arg);
        let placeholder = format!("${}", self.args.len());
        self.text.push_str(&clause.replace('?', &placeholder));
    }

    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for arg in &self.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.clone()),
                Arg::Int(value) => query.bind(*value),
            };
        }
        query
    }
}

fn query_error(action: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// Appends drafts to their sessions' chains in the caller's transaction; returns each draft's
/// (session, seq) in the order given.
pub async fn append(
    conn: &mut AnyConnection,
    drafts: Vec<Draft>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let count = drafts.len();
    let mut by_session: BTreeMap<String, Vec<(usize, Draft)>> = BTreeMap::new();
    for (index, draft) in drafts.into_iter().enumerate() {
        by_session
            .entry(draft.session.clone())
            .or_default()
            .push((index, draft));
    }
    let mut places = vec![(String::new(), 0); count];
    for (session, drafts) in by_session {
        let seqs = append_session(conn, &session, &drafts).await?;
        for ((index, _), seq) in drafts.iter().zip(seqs) {
            if let Some(place) = places.get_mut(*index) {
                *place = (session.clone(), seq);
            }
        }
    }
    Ok(places)
}

async fn append_session(
    conn: &mut AnyConnection,
    session: &str,
    drafts: &[(usize, Draft)],
) -> Result<Vec<i64>, StoreError> {
    let Some((_, first)) = drafts.first() else {
        return Ok(Vec::new());
    };
    // The identity of a session is its pusher's, never a reviewer's.
    let named = drafts
        .iter()
        .map(|(_, d)| d)
        .find(|d| d.kind != RecordKind::Decision && d.subject.is_some());
    sqlx::query(
        "INSERT INTO audit_sessions (session, last_seq, last_hash, first_at, last_at, subject, \
         acting_for, agent) VALUES ($1, 0, $2, $3, $3, $4, $5, $6) \
         ON CONFLICT (session) DO NOTHING",
    )
    .bind(session)
    .bind(GENESIS_HASH)
    .bind(first.at)
    .bind(named.and_then(|d| d.subject.clone()))
    .bind(named.and_then(|d| d.acting_for.clone()))
    .bind(i64::from(named.is_some_and(|d| d.agent)))
    .execute(&mut *conn)
    .await
    .map_err(query_error("open an audit session"))?;
    // Takes the head's row lock until commit; the read below then sees the latest head.
    sqlx::query("UPDATE audit_sessions SET last_seq = last_seq WHERE session = $1")
        .bind(session)
        .execute(&mut *conn)
        .await
        .map_err(query_error("lock an audit session"))?;
    let head =
        sqlx::query("SELECT last_seq, last_hash, last_at FROM audit_sessions WHERE session = $1")
            .bind(session)
            .fetch_one(&mut *conn)
            .await
            .map_err(query_error("read an audit session"))?;
    let mut seq: i64 = head
        .try_get("last_seq")
        .map_err(query_error("read last_seq"))?;
    let mut prev: String = head
        .try_get("last_hash")
        .map_err(query_error("read last_hash"))?;
    let mut last_at: i64 = head
        .try_get("last_at")
        .map_err(query_error("read last_at"))?;

    let mut seqs = Vec::with_capacity(drafts.len());
    for (_, draft) in drafts {
        seq = seq.saturating_add(1);
        let envelope = draft.envelope(seq);
        let value = serde_json::to_value(&envelope).map_err(|e| StoreError::Corrupt {
            column: "audit_records.record",
            value: e.to_string(),
        })?;
        let canonical = chain::canonical_json(&value);
        let hash = chain::link_hash(&prev, &canonical);
        sqlx::query(
            "INSERT INTO audit_records (session, seq, kind, request_id, occurred_at, subject, \
             acting_for, agent, token_id, repository, record, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(session)
        .bind(seq)
        .bind(draft.kind.as_str())
        .bind(draft.request_id.clone())
        .bind(draft.at)
        .bind(draft.subject.clone())
        .bind(draft.acting_for.clone())
        .bind(i64::from(draft.agent))
        .bind(draft.token_id.clone())
        .bind(draft.repository.clone())
        .bind(&canonical)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *conn)
        .await
        .map_err(query_error("append an audit record"))?;
        index(conn, session, seq, draft).await?;
        last_at = last_at.max(draft.at);
        prev = hash;
        seqs.push(seq);
    }

    sqlx::query(
        "UPDATE audit_sessions SET last_seq = $2, last_hash = $3, last_at = $4, \
         agent = CASE WHEN subject IS NULL THEN $5 ELSE agent END, \
         subject = COALESCE(subject, $6), acting_for = CASE WHEN subject IS NULL THEN $7 \
         ELSE acting_for END WHERE session = $1",
    )
    .bind(session)
    .bind(seq)
    .bind(&prev)
    .bind(last_at)
    .bind(i64::from(named.is_some_and(|d| d.agent)))
    .bind(named.and_then(|d| d.subject.clone()))
    .bind(named.and_then(|d| d.acting_for.clone()))
    .execute(&mut *conn)
    .await
    .map_err(query_error("advance an audit session"))?;
    Ok(seqs)
}

/// Writes the ref and commit index rows of one record.
async fn index(
    conn: &mut AnyConnection,
    session: &str,
    seq: i64,
    draft: &Draft,
) -> Result<(), StoreError> {
    let mut read_refs = 0usize;
    for (position, item) in draft.refs.iter().enumerate() {
        if item.old_id.is_none() {
            read_refs += 1;
            if read_refs > MAX_INDEXED_READ_REFS {
                continue;
            }
        }
        sqlx::query(
            "INSERT INTO audit_refs (session, seq, position, refname, old_id, new_id, ticket_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session)
        .bind(seq)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&item.refname)
        .bind(item.old_id.clone())
        .bind(item.new_id.clone())
        .bind(item.ticket.clone())
        .execute(&mut *conn)
        .await
        .map_err(query_error("index the refs of an audit record"))?;
    }
    for commit in &draft.commits {
        sqlx::query(
            "INSERT INTO audit_commits (commit_id, session, seq, source, refname) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&commit.id)
        .bind(session)
        .bind(seq)
        .bind(commit.source)
        .bind(commit.refname.clone())
        .execute(&mut *conn)
        .await
        .map_err(query_error("index the commits of an audit record"))?;
    }
    Ok(())
}

/// True when an event record of `request_id` with exactly this payload is stored.
pub async fn has_event(
    conn: &mut AnyConnection,
    request_id: &str,
    data: &serde_json::Value,
) -> Result<bool, StoreError> {
    let rows =
        sqlx::query("SELECT record FROM audit_records WHERE request_id = $1 AND kind = 'event'")
            .bind(request_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error("look up an event"))?;
    for row in rows {
        let record: String = row
            .try_get("record")
            .map_err(query_error("read an event"))?;
        if serde_json::from_str::<Envelope>(&record).is_ok_and(|envelope| &envelope.data == data) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Adds `count` to the drop counter of `source`.
pub async fn add_drops(
    conn: &mut AnyConnection,
    source: &str,
    count: u64,
) -> Result<(), StoreError> {
    if count == 0 {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_drops (source, dropped) VALUES ($1, $2) \
         ON CONFLICT (source) DO UPDATE SET dropped = audit_drops.dropped + excluded.dropped",
    )
    .bind(source)
    .bind(i64::try_from(count).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await
    .map_err(query_error("count dropped reads"))?;
    Ok(())
}

/// The stored drop counters.
pub async fn drops(pool: &AnyPool) -> Result<Drops, StoreError> {
    let rows = sqlx::query("SELECT source, dropped FROM audit_drops")
        .fetch_all(pool)
        .await
        .map_err(query_error("read the drop counters"))?;
    let mut drops = Drops::default();
    for row in rows {
        let source: String = row
            .try_get("source")
            .map_err(query_error("read a drop counter"))?;
        let dropped: i64 = row
            .try_get("dropped")
            .map_err(query_error("read a drop counter"))?;
        let dropped = u64::try_from(dropped).unwrap_or_default();
        match source.as_str() {
            FILTER_DROPS => drops.filter = dropped,
            SERVICE_DROPS => drops.service = dropped,
            _ => {}
        }
    }
    Ok(drops)
}

const RECORD_COLUMNS: &str = "SELECT r.session, r.seq, r.kind, r.request_id, r.occurred_at, \
     r.subject, r.acting_for, r.agent, r.token_id, r.repository, r.record, r.prev_hash, r.hash \
     FROM audit_records r WHERE 1 = 1";

const HEAD_COLUMNS: &str = "SELECT s.session, s.last_seq, s.last_hash, s.first_at, s.last_at, \
     s.subject, s.acting_for, s.agent FROM audit_sessions s WHERE 1 = 1";

/// Adds the conditions of `query` on the records aliased `r`.
fn record_conditions(query: &RecordQuery, sql: &mut Sql) {
    let text = |value: &Option<String>| value.clone().map(Arg::Text);
    if let Some(arg) = text(&query.session) {
        sql.push(" AND r.session = ?", arg);
    }
    if let Some(arg) = text(&query.subject) {
        sql.push(" AND r.subject = ?", arg);
    }
    if let Some(arg) = text(&query.acting_for) {
        sql.push(" AND r.acting_for = ?", arg);
    }
    if let Some(arg) = text(&query.agent) {
        sql.push(" AND r.agent = 1 AND r.subject = ?", arg);
    }
    if let Some(arg) = text(&query.person) {
        sql.push(
            " AND (r.acting_for = ? OR (r.agent = 0 AND r.subject = ?))",
            arg,
        );
    }
    if let Some(arg) = text(&query.repository) {
        sql.push(" AND r.repository = ?", arg);
    }
    if let Some(arg) = text(&query.refname) {
        sql.push(
            " AND EXISTS (SELECT 1 FROM audit_refs f WHERE f.session = r.session \
             AND f.seq = r.seq AND f.refname = ?)",
            arg,
        );
    }
    if let Some(kind) = query.kind {
        sql.push(" AND r.kind = ?", Arg::Text(kind.as_str().to_owned()));
    }
    if let Some(arg) = text(&query.commit) {
        sql.push(
            " AND EXISTS (SELECT 1 FROM audit_commits c WHERE c.session = r.session \
             AND c.seq = r.seq AND c.commit_id = ?)",
            arg,
        );
    }
    if let Some(arg) = text(&query.request_id) {
        sql.push(" AND r.request_id = ?", arg);
    }
    if let Some(since) = query.since {
        sql.push(" AND r.occurred_at >= ?", Arg::Int(since));
    }
    if let Some(until) = query.until {
        sql.push(" AND r.occurred_at <= ?", Arg::Int(until));
    }
}

/// Records matching `query`, newest first.
pub async fn records(pool: &AnyPool, query: &RecordQuery) -> Result<Vec<StoredRecord>, StoreError> {
    let mut sql = Sql::new(RECORD_COLUMNS);
    record_conditions(query, &mut sql);
    sql.push(
        " ORDER BY r.occurred_at DESC, r.session, r.seq DESC LIMIT ?",
        Arg::Int(query.limit()),
    );
    let rows = sql
        .query()
        .fetch_all(pool)
        .await
        .map_err(query_error("query audit records"))?;
    rows.iter().map(record_from_row).collect()
}

/// Every record of a session, in chain order.
pub async fn session_records(
    pool: &AnyPool,
    session: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "{RECORD_COLUMNS} AND r.session = $1 ORDER BY r.seq"
    ))
    .bind(session)
    .fetch_all(pool)
    .await
    .map_err(query_error("read an audit session"))?;
    rows.iter().map(record_from_row).collect()
}

/// The records of several requests (the pushes, verdicts and decisions around a commit).
pub async fn records_of_request(
    pool: &AnyPool,
    request_id: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "{RECORD_COLUMNS} AND r.request_id = $1 ORDER BY r.occurred_at, r.session, r.seq"
    ))
    .bind(request_id)
    .fetch_all(pool)
    .await
    .map_err(query_error("read the records of a request"))?;
    rows.iter().map(record_from_row).collect()
}

/// The records naming a ticket (its verdicts and decisions), oldest first.
pub async fn records_of_ticket(
    pool: &AnyPool,
    ticket: &str,
) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "{RECORD_COLUMNS} AND EXISTS (SELECT 1 FROM audit_refs f WHERE f.session = r.session \
         AND f.seq = r.seq AND f.ticket_id = $1) ORDER BY r.occurred_at, r.session, r.seq"
    ))
    .bind(ticket)
    .fetch_all(pool)
    .await
    .map_err(query_error("read the records of a ticket"))?;
    rows.iter().map(record_from_row).collect()
}

/// The sessions whose verdict records named `ticket`, sorted; in the caller's transaction.
pub async fn sessions_of_ticket(
    conn: &mut AnyConnection,
    ticket: &str,
) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT r.session FROM audit_refs f JOIN audit_records r \
         ON r.session = f.session AND r.seq = f.seq \
         WHERE f.ticket_id = $1 AND r.kind = 'verdict' ORDER BY r.session",
    )
    .bind(ticket)
    .fetch_all(&mut *conn)
    .await
    .map_err(query_error("find the sessions of a ticket"))?;
    rows.iter()
        .map(|row| {
            row.try_get("session")
                .map_err(query_error("read a session"))
        })
        .collect()
}

/// The session of the verdict record of `request_id`, in the caller's transaction.
pub async fn session_of_request(
    conn: &mut AnyConnection,
    request_id: &str,
) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT session FROM audit_records WHERE request_id = $1 AND kind = 'verdict' \
         ORDER BY occurred_at LIMIT 1",
    )
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(query_error("find the session of a request"))?;
    row.map(|row| {
        row.try_get("session")
            .map_err(query_error("read a session"))
    })
    .transpose()
}

/// The places where a commit (a full id, or a prefix of at least four hex digits) appears.
pub async fn commit_links(pool: &AnyPool, commit: &str) -> Result<Vec<CommitLink>, StoreError> {
    // A prefix is matched with LIKE; the id is hex only (checked by the caller), so it holds
    // no LIKE wildcard.
    let rows = sqlx::query(
        "SELECT commit_id, session, seq, source, refname FROM audit_commits \
         WHERE commit_id = $1 OR commit_id LIKE $2 ORDER BY session, seq, source",
    )
    .bind(commit)
    .bind(format!("{commit}%"))
    .fetch_all(pool)
    .await
    .map_err(query_error("look up a commit"))?;
    rows.iter()
        .map(|row| {
            Ok(CommitLink {
                commit_id: row
                    .try_get("commit_id")
                    .map_err(query_error("read a commit"))?,
                session: row
                    .try_get("session")
                    .map_err(query_error("read a commit"))?,
                seq: row.try_get("seq").map_err(query_error("read a commit"))?,
                source: row
                    .try_get("source")
                    .map_err(query_error("read a commit"))?,
                refname: row
                    .try_get("refname")
                    .map_err(query_error("read a commit"))?,
            })
        })
        .collect()
}

/// One record by its place.
pub async fn record_at(
    pool: &AnyPool,
    session: &str,
    seq: i64,
) -> Result<Option<StoredRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "{RECORD_COLUMNS} AND r.session = $1 AND r.seq = $2"
    ))
    .bind(session)
    .bind(seq)
    .fetch_optional(pool)
    .await
    .map_err(query_error("read an audit record"))?;
    row.as_ref().map(record_from_row).transpose()
}

/// Sessions with a record matching `query`, most recently active first.
pub async fn sessions(pool: &AnyPool, query: &RecordQuery) -> Result<Vec<SessionHead>, StoreError> {
    let mut sql = Sql::new(HEAD_COLUMNS);
    if !query.is_empty() {
        sql.text
            .push_str(" AND EXISTS (SELECT 1 FROM audit_records r WHERE r.session = s.session");
        record_conditions(query, &mut sql);
        sql.text.push(')');
    }
    sql.push(
        " ORDER BY s.last_at DESC, s.session LIMIT ?",
        Arg::Int(query.limit()),
    );
    let rows = sql
        .query()
        .fetch_all(pool)
        .await
        .map_err(query_error("list audit sessions"))?;
    rows.iter().map(head_from_row).collect()
}

/// The head of one session.
pub async fn session_head(
    pool: &AnyPool,
    session: &str,
) -> Result<Option<SessionHead>, StoreError> {
    let row = sqlx::query(&format!("{HEAD_COLUMNS} AND s.session = $1"))
        .bind(session)
        .fetch_optional(pool)
        .await
        .map_err(query_error("read an audit session"))?;
    row.as_ref().map(head_from_row).transpose()
}

/// Every session named by a head or by a record, sorted (verify also finds the records of a
/// session whose head was removed).
pub async fn all_session_names(pool: &AnyPool) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT session FROM audit_sessions UNION SELECT session FROM audit_records \
         ORDER BY session",
    )
    .fetch_all(pool)
    .await
    .map_err(query_error("list audit sessions"))?;
    rows.iter()
        .map(|row| {
            row.try_get("session")
                .map_err(query_error("read a session"))
        })
        .collect()
}

fn record_from_row(row: &AnyRow) -> Result<StoredRecord, StoreError> {
    let read = || query_error("read an audit record");
    Ok(StoredRecord {
        session: row.try_get("session").map_err(read())?,
        seq: row.try_get("seq").map_err(read())?,
        kind: row.try_get("kind").map_err(read())?,
        request_id: row.try_get("request_id").map_err(read())?,
        occurred_at: row.try_get("occurred_at").map_err(read())?,
        subject: row.try_get("subject").map_err(read())?,
        acting_for: row.try_get("acting_for").map_err(read())?,
        agent: row.try_get("agent").map_err(read())?,
        token_id: row.try_get("token_id").map_err(read())?,
        repository: row.try_get("repository").map_err(read())?,
        record: row.try_get("record").map_err(read())?,
        prev_hash: row.try_get("prev_hash").map_err(read())?,
        hash: row.try_get("hash").map_err(read())?,
    })
}

fn head_from_row(row: &AnyRow) -> Result<SessionHead, StoreError> {
    let read = || query_error("read an audit session");
    Ok(SessionHead {
        session: row.try_get("session").map_err(read())?,
        last_seq: row.try_get("last_seq").map_err(read())?,
        last_hash: row.try_get("last_hash").map_err(read())?,
        first_at: row.try_get("first_at").map_err(read())?,
        last_at: row.try_get("last_at").map_err(read())?,
        subject: row.try_get("subject").map_err(read())?,
        acting_for: row.try_get("acting_for").map_err(read())?,
        agent: row.try_get("agent").map_err(read())?,
    })
}
