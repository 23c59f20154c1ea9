//! The store: tickets and verdicts in SQLite or PostgreSQL, through one set of queries.
//!
//! This is the only module that speaks SQL. It uses sqlx's `Any` driver so the same code and the
//! same migrations serve both backends; the schema keeps to what both understand (text ids,
//! BIGINT unix milliseconds, BIGINT 0/1 flags, `$N` placeholders, which SQLite also accepts).
//! Migrations in `migrations/` are applied at start-up.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use gitgate_core::api::{Operation, PackSummary, SecretFinding};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

/// Migrations embedded in the binary, shared by both backends.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a request waits for a free database connection before the store reports failure.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many connections the pool opens at most.
const MAX_CONNECTIONS: u32 = 8;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names no backend this service speaks.
    #[error("unsupported database url scheme {scheme:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl {
        /// The part before `:`; the rest is not repeated, as it may hold a password.
        scheme: String,
    },
    /// The directory for the SQLite file could not be created.
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The database could not be reached.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed.
    #[error("database error while trying to {action}: {source}")]
    Query {
        /// What the store was doing, for example `record a verdict`.
        action: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A row holds a value this version of the service does not know.
    #[error("unexpected value {value:?} in column {column}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// The value found.
        value: String,
    },
}

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.to_owned(),
            }),
        }
    }

    /// The lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketStatus {
    /// Waiting for a reviewer.
    Pending,
    /// A reviewer approved it; valid until the ticket's `expires_at`.
    Approved,
    /// A reviewer denied it; the denial sticks.
    Denied,
}

impl TicketStatus {
    /// The value stored in `tickets.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Pending => "pending",
            TicketStatus::Approved => "approved",
            TicketStatus::Denied => "denied",
        }
    }
}

impl FromStr for TicketStatus {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, StoreError> {
        match value {
            "pending" => Ok(TicketStatus::Pending),
            "approved" => Ok(TicketStatus::Approved),
            "denied" => Ok(TicketStatus::Denied),
            other => Err(StoreError::Corrupt {
                column: "tickets.status",
                value: other.to_owned(),
            }),
        }
    }
}

/// One ref update as the store keys it: tickets apply to exactly this tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateKey {
    /// The repository path.
    pub repository: String,
    /// The full ref name.
    pub refname: String,
    /// The old object id.
    pub old_id: String,
    /// The new object id.
    pub new_id: String,
}

/// Who pushed, as stored beside tickets and verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pusher {
    /// The token's subject.
    pub subject: String,
    /// True for an autonomous agent.
    pub agent: bool,
    /// The person the agent acts for.
    pub acting_for: Option<String>,
}

/// A ticket to be opened for a held update.
#[derive(Debug, Clone)]
pub struct NewTicket {
    /// The id, `T-` and a short random part.
    pub id: String,
    /// The held update.
    pub key: UpdateKey,
    /// What the update does.
    pub operation: Operation,
    /// Who pushed it.
    pub pusher: Pusher,
    /// The push that first asked.
    pub request_id: String,
    /// The rule that held it; `None` for the policy's default action.
    pub rule: Option<String>,
    /// The full hold code.
    pub code: String,
    /// The rule's reason.
    pub reason: String,
    /// The group whose members may decide.
    pub approvers: String,
    /// When it was opened, unix milliseconds.
    pub created_at: i64,
}

/// A reviewer's decision, as recorded on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The reviewer's subject.
    pub by: String,
    /// When, unix milliseconds.
    pub at: i64,
    /// Why (required for a denial).
    pub reason: Option<String>,
    /// An optional remark.
    pub comment: Option<String>,
    /// When an approval stops letting the update through, unix milliseconds.
    pub expires_at: Option<i64>,
}

/// A stored ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The id, `T-` and a short random part.
    pub id: String,
    /// The update it is about.
    pub key: UpdateKey,
    /// What the update does.
    pub operation: Operation,
    /// Who pushed it first.
    pub pusher: Pusher,
    /// The push that opened it.
    pub request_id: String,
    /// The rule that held it.
    pub rule: Option<String>,
    /// The full hold code.
    pub code: String,
    /// The rule's reason.
    pub reason: String,
    /// The group whose members may decide.
    pub approvers: String,
    /// Pending, approved or denied.
    pub status: TicketStatus,
    /// When it was opened, unix milliseconds.
    pub created_at: i64,
    /// The decision; `Some` exactly when the status is not pending.
    pub review: Option<Review>,
    /// For a secret bypass: the redacted findings of the push that last asked (never a value).
    pub findings: Vec<SecretFinding>,
    /// For a secret bypass: why the pusher wants the secrets let through.
    pub bypass_reason: Option<String>,
    /// What the pack of the open push that waited on the ticket carried, when one did.
    pub pack: Option<PackSummary>,
}

/// The decision of one verdict, as stored in `verdicts.decision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// Let through.
    Allow,
    /// Refused.
    Deny,
    /// Waiting for a reviewer.
    Hold,
}

impl VerdictKind {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Allow => "allow",
            VerdictKind::Deny => "deny",
            VerdictKind::Hold => "hold",
        }
    }
}

impl FromStr for VerdictKind {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, StoreError> {
        match value {
            "allow" => Ok(VerdictKind::Allow),
            "deny" => Ok(VerdictKind::Deny),
            "hold" => Ok(VerdictKind::Hold),
            other => Err(StoreError::Corrupt {
                column: "verdicts.decision",
                value: other.to_owned(),
            }),
        }
    }
}

/// One verdict row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRecord {
    /// A unique id for the row.
    pub id: String,
    /// The push's request id.
    pub request_id: String,
    /// The update's index in the push, from 0.
    pub position: i64,
    /// The update.
    pub key: UpdateKey,
    /// What the update does.
    pub operation: Operation,
    /// Who pushed.
    pub pusher: Pusher,
    /// The token id (`jti`), when the token had one.
    pub token_id: Option<String>,
    /// Allow, deny or hold.
    pub decision: VerdictKind,
    /// The full code for a deny or hold.
    pub code: Option<String>,
    /// The reason given or recorded.
    pub reason: Option<String>,
    /// The rule that decided, when a rule did.
    pub rule: Option<String>,
    /// The ticket involved, when one was.
    pub ticket: Option<String>,
    /// When, unix milliseconds.
    pub decided_at: i64,
}

/// The result of [`Store::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideOutcome {
    /// The ticket was pending and now carries the decision.
    Decided(Ticket),
    /// No ticket has that id.
    NotFound,
    /// Someone decided it first; here it is as it stands.
    AlreadyDecided(Ticket),
}

/// A handle on the database, cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

/// The columns of `tickets` in the order [`ticket_from_row`] reads them.
macro_rules! ticket_columns {
    () => {
        "SELECT id, repository, refname, old_id, new_id, operation, subject, agent, acting_for, \
         request_id, rule_name, code, reason, approvers, status, created_at, decided_by, \
         decided_at, decision_reason, decision_comment, expires_at, findings, bypass_reason, \
         pack FROM tickets"
    };
}

/// The columns of `verdicts` in the order [`verdict_from_row`] reads them.
macro_rules! verdict_columns {
    () => {
        "SELECT id, request_id, position, repository, refname, old_id, new_id, operation, \
         subject, acting_for, agent, token_id, decision, code, reason, rule_name, ticket_id, \
         decided_at FROM verdicts"
    };
}

// After the column macros, which it uses.
mod review;

pub use review::{
    ChoiceColumn, Decision, DecisionKind, DecisionOutcome, Delivery, DeliveryStatus, NewDecision,
    TicketFilter, TicketPage,
};

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and applies the migrations.
    ///
    /// For SQLite the file and its parent directory are created when missing, and the database
    /// is switched to write-ahead logging.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (url, in_memory) = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => (url.to_owned(), false),
        };
        // Each connection to `:memory:` is a database of its own, so keep to one.
        let max_connections = if in_memory { 1 } else { MAX_CONNECTIONS };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&url)
            .await
            .map_err(|source| StoreError::Connect {
                backend: backend.as_str(),
                source,
            })?;
        if backend == Backend::Sqlite && !in_memory {
            // The journal mode is a property of the file, so setting it once is enough.
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_optional(&pool)
                .await
                .map_err(|source| StoreError::Query {
                    action: "enable WAL",
                    source,
                })?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool, backend })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool, for the audit record's queries (`crate::audit::store`).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; later calls fail. Used at shutdown, and by tests to make the
    /// store fail on purpose.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts the transaction in which one verdict request is decided and recorded.
    pub async fn begin(&self) -> Result<VerdictTx, StoreError> {
        // SQLite: take the write lock up front. A deferred transaction that reads first and
        // writes later fails at once with SQLITE_BUSY when another writer got in between.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        };
        let tx = tx.map_err(|source| StoreError::Query {
            action: "begin a transaction",
            source,
        })?;
        Ok(VerdictTx { tx })
    }

    /// The ticket with this id.
    pub async fn ticket(&self, id: &str) -> Result<Option<Ticket>, StoreError> {
        let row = sqlx::query(concat!(ticket_columns!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                action: "read a ticket",
                source,
            })?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// Pending tickets, newest first, at most `limit`.
    pub async fn pending_tickets(&self, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(concat!(
            ticket_columns!(),
            " WHERE status = 'pending' ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list pending tickets",
            source,
        })?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Decided tickets, most recently decided first, at most `limit`.
    pub async fn decided_tickets(&self, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(concat!(
            ticket_columns!(),
            " WHERE status <> 'pending' ORDER BY decided_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list decided tickets",
            source,
        })?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Records a reviewer's decision on a pending ticket.
    ///
    /// `status` must be approved or denied. The update is conditional on the ticket still being
    /// pending, so of two reviewers deciding at once exactly one wins.
    pub async fn decide(
        &self,
        id: &str,
        status: TicketStatus,
        review: &Review,
    ) -> Result<DecideOutcome, StoreError> {
        let result = sqlx::query(
            "UPDATE tickets SET status = $1, decided_by = $2, decided_at = $3, \
             decision_reason = $4, decision_comment = $5, expires_at = $6 \
             WHERE id = $7 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(&review.by)
        .bind(review.at)
        .bind(review.reason.clone())
        .bind(review.comment.clone())
        .bind(review.expires_at)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "record a decision",
            source,
        })?;
        let ticket = self.ticket(id).await?;
        Ok(match ticket {
            None => DecideOutcome::NotFound,
            Some(ticket) if result.rows_affected() == 1 => DecideOutcome::Decided(ticket),
            Some(ticket) => DecideOutcome::AlreadyDecided(ticket),
        })
    }

    /// The verdicts given to one push, in update order.
    pub async fn verdicts_for_request(
        &self,
        request_id: &str,
    ) -> Result<Vec<VerdictRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            verdict_columns!(),
            " WHERE request_id = $1 ORDER BY position, decided_at"
        ))
        .bind(request_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list verdicts of a push",
            source,
        })?;
        rows.iter().map(verdict_from_row).collect()
    }

    /// The verdicts that named a ticket, oldest first.
    pub async fn verdicts_for_ticket(
        &self,
        ticket_id: &str,
    ) -> Result<Vec<VerdictRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            verdict_columns!(),
            " WHERE ticket_id = $1 ORDER BY decided_at, position"
        ))
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list verdicts of a ticket",
            source,
        })?;
        rows.iter().map(verdict_from_row).collect()
    }
}

/// The transaction of one verdict request: look up and open tickets, record verdicts, commit.
///
/// Dropping it without [`VerdictTx::commit`] rolls everything back.
pub struct VerdictTx {
    tx: Transaction<'static, Any>,
}

impl VerdictTx {
    /// The transaction's connection, so the audit record is appended in the same transaction.
    pub fn connection(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// The newest ticket for exactly this update, whatever its status.
    pub async fn latest_ticket(&mut self, key: &UpdateKey) -> Result<Option<Ticket>, StoreError> {
        let row = sqlx::query(concat!(
            ticket_columns!(),
            " WHERE repository = $1 AND refname = $2 AND old_id = $3 AND new_id = $4 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(&key.repository)
        .bind(&key.refname)
        .bind(&key.old_id)
        .bind(&key.new_id)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(|source| StoreError::Query {
            action: "look up a ticket",
            source,
        })?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// Opens a pending ticket, or returns the pending ticket that a concurrent push of the same
    /// update opened first.
    pub async fn open_ticket(&mut self, new: &NewTicket) -> Result<Ticket, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO tickets (id, repository, refname, old_id, new_id, operation, subject, \
             agent, acting_for, request_id, rule_name, code, reason, approvers, status, \
             created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'pending', $15) \
             ON CONFLICT (repository, refname, old_id, new_id, code) WHERE status = 'pending' \
             DO NOTHING",
        )
        .bind(&new.id)
        .bind(&new.key.repository)
        .bind(&new.key.refname)
        .bind(&new.key.old_id)
        .bind(&new.key.new_id)
        .bind(new.operation.as_str())
        .bind(&new.pusher.subject)
        .bind(i64::from(new.pusher.agent))
        .bind(new.pusher.acting_for.clone())
        .bind(&new.request_id)
        .bind(new.rule.clone())
        .bind(&new.code)
        .bind(&new.reason)
        .bind(&new.approvers)
        .bind(new.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(|source| StoreError::Query {
            action: "open a ticket",
            source,
        })?;
        let query = if inserted.rows_affected() == 1 {
            sqlx::query(concat!(ticket_columns!(), " WHERE id = $1")).bind(new.id.clone())
        } else {
            sqlx::query(concat!(
                ticket_columns!(),
                " WHERE repository = $1 AND refname = $2 AND old_id = $3 AND new_id = $4 \
                 AND code = $5 AND status = 'pending'"
            ))
            .bind(new.key.repository.clone())
            .bind(new.key.refname.clone())
            .bind(new.key.old_id.clone())
            .bind(new.key.new_id.clone())
            .bind(new.code.clone())
        };
        let row = query
            .fetch_one(&mut *self.tx)
            .await
            .map_err(|source| StoreError::Query {
                action: "read an opened ticket",
                source,
            })?;
        ticket_from_row(&row)
    }

    /// The newest ticket for exactly this update whose code is (`with` true) or is not
    /// (`with` false) `code`: secret bypasses and policy holds of one update are decided apart.
    pub async fn latest_ticket_by_code(
        &mut self,
        key: &UpdateKey,
        code: &str,
        with: bool,
    ) -> Result<Option<Ticket>, StoreError> {
        let query = if with {
            concat!(
                ticket_columns!(),
                " WHERE repository = $1 AND refname = $2 AND old_id = $3 AND new_id = $4 \
                 AND code = $5 ORDER BY created_at DESC, id DESC LIMIT 1"
            )
        } else {
            concat!(
                ticket_columns!(),
                " WHERE repository = $1 AND refname = $2 AND old_id = $3 AND new_id = $4 \
                 AND code <> $5 ORDER BY created_at DESC, id DESC LIMIT 1"
            )
        };
        let row = sqlx::query(query)
            .bind(&key.repository)
            .bind(&key.refname)
            .bind(&key.old_id)
            .bind(&key.new_id)
            .bind(code)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(|source| StoreError::Query {
                action: "look up a ticket",
                source,
            })?;
        row.as_ref().map(ticket_from_row).transpose()
    }

    /// Keeps the redacted findings and the bypass reason of the push that asked, on a pending
    /// ticket.
    pub async fn record_findings(
        &mut self,
        ticket_id: &str,
        findings: &[SecretFinding],
        bypass_reason: &str,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(findings).map_err(|e| StoreError::Corrupt {
            column: "tickets.findings",
            value: e.to_string(),
        })?;
        sqlx::query(
            "UPDATE tickets SET findings = $1, bypass_reason = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(json)
        .bind(bypass_reason)
        .bind(ticket_id)
        .execute(&mut *self.tx)
        .await
        .map_err(|source| StoreError::Query {
            action: "record the findings of a ticket",
            source,
        })?;
        Ok(())
    }

    /// Records one verdict.
    pub async fn record_verdict(&mut self, record: &VerdictRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO verdicts (id, request_id, position, repository, refname, old_id, new_id, \
             operation, subject, acting_for, agent, token_id, decision, code, reason, rule_name, \
             ticket_id, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18)",
        )
        .bind(&record.id)
        .bind(&record.request_id)
        .bind(record.position)
        .bind(&record.key.repository)
        .bind(&record.key.refname)
        .bind(&record.key.old_id)
        .bind(&record.key.new_id)
        .bind(record.operation.as_str())
        .bind(&record.pusher.subject)
        .bind(record.pusher.acting_for.clone())
        .bind(i64::from(record.pusher.agent))
        .bind(record.token_id.clone())
        .bind(record.decision.as_str())
        .bind(record.code.clone())
        .bind(record.reason.clone())
        .bind(record.rule.clone())
        .bind(record.ticket.clone())
        .bind(record.decided_at)
        .execute(&mut *self.tx)
        .await
        .map_err(|source| StoreError::Query {
            action: "record a verdict",
            source,
        })?;
        Ok(())
    }

    /// Makes every ticket and verdict of this request durable.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(|source| StoreError::Query {
            action: "commit verdicts",
            source,
        })
    }
}

/// Normalises a SQLite URL so the file is created when missing, and creates its directory.
/// Returns the URL to connect to and whether it names an in-memory database.
fn prepare_sqlite_url(url: &str) -> Result<(String, bool), StoreError> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or("");
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    let in_memory = path.is_empty() || path == ":memory:";
    if in_memory {
        return Ok((url.to_owned(), true));
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    let has_mode = query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("mode=")));
    let url = match (query, has_mode) {
        (_, true) => url.to_owned(),
        (Some(_), false) => format!("{url}&mode=rwc"),
        (None, false) => format!("{url}?mode=rwc"),
    };
    Ok((url, false))
}

fn ticket_from_row(row: &AnyRow) -> Result<Ticket, StoreError> {
    let status: TicketStatus = text(row, "status")?.parse()?;
    let review = match status {
        TicketStatus::Pending => None,
        TicketStatus::Approved | TicketStatus::Denied => Some(Review {
            by: optional_text(row, "decided_by")?.unwrap_or_default(),
            at: optional_int(row, "decided_at")?.unwrap_or_default(),
            reason: optional_text(row, "decision_reason")?,
            comment: optional_text(row, "decision_comment")?,
            expires_at: optional_int(row, "expires_at")?,
        }),
    };
    Ok(Ticket {
        id: text(row, "id")?,
        key: key_from_row(row)?,
        operation: operation(row, "tickets.operation")?,
        pusher: pusher_from_row(row)?,
        request_id: text(row, "request_id")?,
        rule: optional_text(row, "rule_name")?,
        code: text(row, "code")?,
        reason: text(row, "reason")?,
        approvers: text(row, "approvers")?,
        status,
        created_at: int(row, "created_at")?,
        review,
        findings: match optional_text(row, "findings")? {
            Some(json) => serde_json::from_str(&json).map_err(|_| StoreError::Corrupt {
                column: "tickets.findings",
                value: json.chars().take(80).collect(),
            })?,
            None => Vec::new(),
        },
        bypass_reason: optional_text(row, "bypass_reason")?,
        pack: match optional_text(row, "pack")? {
            // A summary this version cannot read is left out rather than failing the page.
            Some(json) => serde_json::from_str(&json).ok(),
            None => None,
        },
    })
}

fn verdict_from_row(row: &AnyRow) -> Result<VerdictRecord, StoreError> {
    Ok(VerdictRecord {
        id: text(row, "id")?,
        request_id: text(row, "request_id")?,
        position: int(row, "position")?,
        key: key_from_row(row)?,
        operation: operation(row, "verdicts.operation")?,
        pusher: pusher_from_row(row)?,
        token_id: optional_text(row, "token_id")?,
        decision: text(row, "decision")?.parse()?,
        code: optional_text(row, "code")?,
        reason: optional_text(row, "reason")?,
        rule: optional_text(row, "rule_name")?,
        ticket: optional_text(row, "ticket_id")?,
        decided_at: int(row, "decided_at")?,
    })
}

fn key_from_row(row: &AnyRow) -> Result<UpdateKey, StoreError> {
    Ok(UpdateKey {
        repository: text(row, "repository")?,
        refname: text(row, "refname")?,
        old_id: text(row, "old_id")?,
        new_id: text(row, "new_id")?,
    })
}

fn pusher_from_row(row: &AnyRow) -> Result<Pusher, StoreError> {
    Ok(Pusher {
        subject: text(row, "subject")?,
        agent: int(row, "agent")? != 0,
        acting_for: optional_text(row, "acting_for")?,
    })
}

fn operation(row: &AnyRow, column: &'static str) -> Result<Operation, StoreError> {
    let value = text(row, "operation")?;
    [Operation::Create, Operation::Update, Operation::Delete]
        .into_iter()
        .find(|op| op.as_str() == value)
        .ok_or(StoreError::Corrupt { column, value })
}

fn text(row: &AnyRow, column: &'static str) -> Result<String, StoreError> {
    row.try_get(column).map_err(|source| StoreError::Query {
        action: "read a text column",
        source,
    })
}

fn optional_text(row: &AnyRow, column: &'static str) -> Result<Option<String>, StoreError> {
    row.try_get(column).map_err(|source| StoreError::Query {
        action: "read a text column",
        source,
    })
}

fn int(row: &AnyRow, column: &'static str) -> Result<i64, StoreError> {
    row.try_get(column).map_err(|source| StoreError::Query {
        action: "read an integer column",
        source,
    })
}

fn optional_int(row: &AnyRow, column: &'static str) -> Result<Option<i64>, StoreError> {
    row.try_get(column).map_err(|source| StoreError::Query {
        action: "read an integer column",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_gain_create_mode_unless_they_set_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("nested/gitgate.db");
        let url = format!("sqlite://{}", path.display());
        let (prepared, in_memory) = prepare_sqlite_url(&url).expect("a prepared url");
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(!in_memory);
        assert!(
            path.parent().is_some_and(Path::is_dir),
            "the parent directory is created"
        );

        let (kept, _) = prepare_sqlite_url(&format!("{url}?mode=ro")).expect("a prepared url");
        assert_eq!(kept, format!("{url}?mode=ro"));
        assert!(prepare_sqlite_url("sqlite::memory:").expect("memory").1);
    }

    #[test]
    fn unknown_url_schemes_are_refused_without_echoing_the_url() {
        let error = Backend::of_url("mysql://user:secret@host/db").expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("\"mysql\""), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
