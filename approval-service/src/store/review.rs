//! The reviewers' part of the store: the queue and history with filters and paging, each
//! reviewer's decision (N-of-group approvals), the pack summary of a waiting push, and the
//! webhook delivery record.

use gitgate_core::api::PackSummary;
use sqlx::any::AnyRow;

use super::{
    Backend, Store, StoreError, Ticket, TicketStatus, VerdictTx, int, optional_int, optional_text,
    text, ticket_from_row,
};

/// Which tickets a list shows; every field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketFilter {
    /// Exactly this repository.
    pub repository: Option<String>,
    /// Pushed by exactly this subject (compared without case).
    pub requester: Option<String>,
    /// Pushed on behalf of exactly this person (compared without case).
    pub acting_for: Option<String>,
    /// Held by exactly this rule.
    pub rule: Option<String>,
    /// Opened at or before this instant (unix milliseconds): "waiting at least".
    pub opened_before: Option<i64>,
    /// Free text found in the id, repository, ref, requester, person, rule, reviewer or
    /// reasons (compared without case).
    pub text: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketPage {
    /// The tickets on this page.
    pub tickets: Vec<Ticket>,
    /// True when a further page exists.
    pub more: bool,
}

/// What a reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// An approval (one of the N the ticket may need).
    Approve,
    /// A denial, which decides the ticket at once.
    Deny,
}

impl DecisionKind {
    /// The value stored in `decisions.decision`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Deny => "deny",
        }
    }

    fn parse(value: String) -> Result<Self, StoreError> {
        match value.as_str() {
            "approve" => Ok(DecisionKind::Approve),
            "deny" => Ok(DecisionKind::Deny),
            _ => Err(StoreError::Corrupt {
                column: "decisions.decision",
                value,
            }),
        }
    }
}

/// One reviewer's decision on one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// A unique id.
    pub id: String,
    /// The ticket decided.
    pub ticket_id: String,
    /// The reviewer's subject.
    pub reviewer: String,
    /// The person the reviewer's token acts for, when it acts for one.
    pub reviewer_acting_for: Option<String>,
    /// Approve or deny.
    pub kind: DecisionKind,
    /// Why; required for a denial.
    pub reason: Option<String>,
    /// An optional remark.
    pub comment: Option<String>,
    /// For an approval: until when it lets the update through, unix milliseconds.
    pub valid_until: Option<i64>,
    /// When, unix milliseconds.
    pub decided_at: i64,
}

/// The result of [`Store::record_decision`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// The decision is recorded and decided the ticket (a denial, or the last approval needed).
    Decided(Ticket),
    /// The approval is recorded; the ticket waits for more (`have` of `need`).
    Counted {
        /// The ticket, still pending.
        ticket: Ticket,
        /// Approvals so far, this one included.
        have: u32,
        /// Approvals needed.
        need: u32,
    },
    /// This reviewer decided the ticket before.
    AlreadyByReviewer(Ticket),
    /// Someone decided it first.
    AlreadyDecided(Ticket),
    /// No ticket has that id.
    NotFound,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Claimed; attempts are under way.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    fn parse(value: String) -> Result<Self, StoreError> {
        match value.as_str() {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(StoreError::Corrupt {
                column: "webhook_deliveries.status",
                value,
            }),
        }
    }
}

/// One webhook notification and how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// A unique id.
    pub id: String,
    /// The ticket it is about.
    pub ticket_id: String,
    /// What happened: `hold:<ticket>` or `decision:<decision id>`.
    pub event: String,
    /// The webhook's configured name (never its URL).
    pub target: String,
    /// Pending, delivered or failed.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// The HTTP status of the last attempt, when there was an answer.
    pub last_status: Option<i64>,
    /// Why the last attempt failed, one line, without the URL.
    pub last_error: Option<String>,
    /// When the event was claimed, unix milliseconds.
    pub created_at: i64,
    /// When the row last changed, unix milliseconds.
    pub updated_at: i64,
}

/// A decision to record.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// The reviewer's subject.
    pub reviewer: String,
    /// The person the reviewer's token acts for.
    pub reviewer_acting_for: Option<String>,
    /// Approve or deny.
    pub kind: DecisionKind,
    /// Why.
    pub reason: Option<String>,
    /// A remark.
    pub comment: Option<String>,
    /// For an approval: until when it is valid.
    pub valid_until: Option<i64>,
    /// When.
    pub at: i64,
}

macro_rules! decision_columns {
    () => {
        "SELECT id, ticket_id, reviewer, reviewer_acting_for, decision, reason, comment, \
         valid_until, decided_at FROM decisions"
    };
}

macro_rules! delivery_columns {
    () => {
        "SELECT id, ticket_id, event, target, status, attempts, last_status, last_error, \
         created_at, updated_at FROM webhook_deliveries"
    };
}

/// The SQL `WHERE` of a filter and its bound values, numbered from `$1`.
struct Where {
    clauses: Vec<String>,
    values: Vec<String>,
}

impl Where {
    fn new(base: &str) -> Self {
        Where {
            clauses: vec![base.to_owned()],
            values: Vec::new(),
        }
    }

    /// Adds a clause in which every `{}` is the next bound value.
    fn push(&mut self, clause: &str, value: String) {
        self.values.push(value);
        let placeholder = format!("${}", self.values.len());
        self.clauses.push(clause.replace("{}", &placeholder));
    }

    fn of(filter: &TicketFilter, base: &str) -> (Self, Option<i64>) {
        let mut w = Where::new(base);
        if let Some(repository) = &filter.repository {
            w.push("repository = {}", repository.clone());
        }
        if let Some(requester) = &filter.requester {
            w.push("LOWER(subject) = LOWER({})", requester.clone());
        }
        if let Some(person) = &filter.acting_for {
            w.push("LOWER(acting_for) = LOWER({})", person.clone());
        }
        if let Some(rule) = &filter.rule {
            w.push("rule_name = {}", rule.clone());
        }
        if let Some(text) = &filter.text {
            let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
            w.push(
                "(LOWER(id) LIKE {} ESCAPE '\\' OR LOWER(repository) LIKE {} ESCAPE '\\' \
                 OR LOWER(refname) LIKE {} ESCAPE '\\' OR LOWER(subject) LIKE {} ESCAPE '\\' \
                 OR LOWER(COALESCE(acting_for, '')) LIKE {} ESCAPE '\\' \
                 OR LOWER(COALESCE(rule_name, '')) LIKE {} ESCAPE '\\' \
                 OR LOWER(COALESCE(decision_reason, '')) LIKE {} ESCAPE '\\' \
                 OR EXISTS (SELECT 1 FROM decisions d WHERE d.ticket_id = tickets.id \
                 AND (LOWER(d.reviewer) LIKE {} ESCAPE '\\' \
                 OR LOWER(COALESCE(d.reason, '')) LIKE {} ESCAPE '\\' \
                 OR LOWER(COALESCE(d.comment, '')) LIKE {} ESCAPE '\\')))",
                pattern,
            );
        }
        (w, filter.opened_before)
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store {
    /// Pending tickets matching `filter`, newest first, one page of `limit` from `offset`.
    pub async fn pending_page(
        &self,
        filter: &TicketFilter,
        limit: i64,
        offset: i64,
    ) -> Result<TicketPage, StoreError> {
        self.ticket_page(
            filter,
            "status = 'pending'",
            "created_at DESC, id DESC",
            limit,
            offset,
        )
        .await
    }

    /// Decided tickets matching `filter`, most recently decided first, one page.
    pub async fn decided_page(
        &self,
        filter: &TicketFilter,
        limit: i64,
        offset: i64,
    ) -> Result<TicketPage, StoreError> {
        self.ticket_page(
            filter,
            "status <> 'pending'",
            "decided_at DESC, id DESC",
            limit,
            offset,
        )
        .await
    }

    async fn ticket_page(
        &self,
        filter: &TicketFilter,
        base: &str,
        order: &str,
        limit: i64,
        offset: i64,
    ) -> Result<TicketPage, StoreError> {
        let (mut w, opened_before) = Where::of(filter, base);
        // The age bound is a number; it is pushed as a clause with a literal integer, which
        // cannot inject anything.
        if let Some(before) = opened_before {
            w.clauses.push(format!("created_at <= {before}"));
        }
        let sql = format!(
            "{} WHERE {} ORDER BY {order} LIMIT {} OFFSET {}",
            ticket_columns!(),
            w.sql(),
            limit.saturating_add(1).max(1),
            offset.max(0)
        );
        let mut query = sqlx::query(&sql);
        for value in &w.values {
            query = query.bind(value.clone());
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                action: "list tickets",
                source,
            })?;
        let mut tickets = rows
            .iter()
            .map(ticket_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = i64::try_from(tickets.len()).unwrap_or(i64::MAX) > limit;
        tickets.truncate(usize::try_from(limit.max(0)).unwrap_or(0));
        Ok(TicketPage { tickets, more })
    }

    /// Distinct values of a ticket column among pending tickets, for the queue's filter
    /// choices; `column` is one of a fixed set.
    pub async fn pending_choices(&self, column: ChoiceColumn) -> Result<Vec<String>, StoreError> {
        let name = column.as_sql();
        let sql = format!(
            "SELECT DISTINCT {name} AS choice FROM tickets WHERE status = 'pending' \
             AND {name} IS NOT NULL ORDER BY choice LIMIT 200"
        );
        let rows = sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                action: "list filter choices",
                source,
            })?;
        rows.iter().map(|row| text(row, "choice")).collect()
    }

    /// Keeps the pack summary of a waiting push on a ticket of that repository. Returns false
    /// when no such ticket exists.
    pub async fn record_pack(
        &self,
        ticket_id: &str,
        repository: &str,
        pack: &PackSummary,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(pack).map_err(|e| StoreError::Corrupt {
            column: "tickets.pack",
            value: e.to_string(),
        })?;
        let result = sqlx::query("UPDATE tickets SET pack = $1 WHERE id = $2 AND repository = $3")
            .bind(json)
            .bind(ticket_id)
            .bind(repository)
            .execute(&self.pool)
            .await
            .map_err(|source| StoreError::Query {
                action: "record the pack of a ticket",
                source,
            })?;
        Ok(result.rows_affected() > 0)
    }

    /// Every decision on a ticket, oldest first.
    pub async fn decisions(&self, ticket_id: &str) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(concat!(
            decision_columns!(),
            " WHERE ticket_id = $1 ORDER BY decided_at, id"
        ))
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list the decisions of a ticket",
            source,
        })?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Decisions made after `since` (unix milliseconds), oldest first, at most `limit`: what
    /// the webhook worker announces.
    pub async fn decisions_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(concat!(
            decision_columns!(),
            " WHERE decided_at >= $1 ORDER BY decided_at, id LIMIT $2"
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list recent decisions",
            source,
        })?;
        rows.iter().map(decision_from_row).collect()
    }

    /// Tickets opened after `since`, oldest first, at most `limit`: the holds the webhook
    /// worker announces.
    pub async fn tickets_since(&self, since: i64, limit: i64) -> Result<Vec<Ticket>, StoreError> {
        let rows = sqlx::query(concat!(
            ticket_columns!(),
            " WHERE created_at >= $1 ORDER BY created_at, id LIMIT $2"
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list recent tickets",
            source,
        })?;
        rows.iter().map(ticket_from_row).collect()
    }

    /// Records one reviewer's decision and, when it decides the ticket, the ticket's new
    /// status, in one transaction.
    ///
    /// A denial decides at once. An approval decides once `need` distinct reviewers approved;
    /// the approval then lasts until the earliest `valid_until` among them. The ticket row is
    /// locked first (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`) so two reviewers
    /// approving at once are counted one after the other.
    pub async fn record_decision(
        &self,
        ticket_id: &str,
        decision: &NewDecision,
        need: u32,
    ) -> Result<DecisionOutcome, StoreError> {
        let q = |action: &'static str| move |source| StoreError::Query { action, source };
        let (begin, lock) = match self.backend {
            Backend::Sqlite => (
                "BEGIN IMMEDIATE",
                concat!(ticket_columns!(), " WHERE id = $1"),
            ),
            Backend::Postgres => (
                "BEGIN",
                concat!(ticket_columns!(), " WHERE id = $1 FOR UPDATE"),
            ),
        };
        let mut tx = self
            .pool
            .begin_with(begin)
            .await
            .map_err(q("begin a decision"))?;
        let Some(row) = sqlx::query(lock)
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("read a ticket to decide"))?
        else {
            return Ok(DecisionOutcome::NotFound);
        };
        let ticket = ticket_from_row(&row)?;
        if ticket.status != TicketStatus::Pending {
            return Ok(DecisionOutcome::AlreadyDecided(ticket));
        }
        let earlier = sqlx::query(
            "SELECT COUNT(*) AS n FROM decisions WHERE ticket_id = $1 AND LOWER(reviewer) = \
             LOWER($2)",
        )
        .bind(ticket_id)
        .bind(&decision.reviewer)
        .fetch_one(&mut *tx)
        .await
        .map_err(q("look up a reviewer's decision"))?;
        if int(&earlier, "n")? > 0 {
            return Ok(DecisionOutcome::AlreadyByReviewer(ticket));
        }

        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO decisions (id, ticket_id, reviewer, reviewer_acting_for, decision, \
             reason, comment, valid_until, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(ticket_id)
        .bind(&decision.reviewer)
        .bind(decision.reviewer_acting_for.clone())
        .bind(decision.kind.as_str())
        .bind(decision.reason.clone())
        .bind(decision.comment.clone())
        .bind(decision.valid_until)
        .bind(decision.at)
        .execute(&mut *tx)
        .await
        .map_err(q("record a decision"))?;

        let (status, expires_at, have) = match decision.kind {
            DecisionKind::Deny => (Some(TicketStatus::Denied), None, 0),
            DecisionKind::Approve => {
                let counted = sqlx::query(
                    "SELECT COUNT(*) AS n, MIN(valid_until) AS until FROM decisions \
                     WHERE ticket_id = $1 AND decision = 'approve'",
                )
                .bind(ticket_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(q("count approvals"))?;
                let have = u32::try_from(int(&counted, "n")?).unwrap_or(u32::MAX);
                let until = optional_int(&counted, "until")?;
                let status = (have >= need.max(1)).then_some(TicketStatus::Approved);
                (status, until, have)
            }
        };
        if let Some(status) = status {
            sqlx::query(
                "UPDATE tickets SET status = $1, decided_by = $2, decided_at = $3, \
                 decision_reason = $4, decision_comment = $5, expires_at = $6 \
                 WHERE id = $7 AND status = 'pending'",
            )
            .bind(status.as_str())
            .bind(&decision.reviewer)
            .bind(decision.at)
            .bind(decision.reason.clone())
            .bind(decision.comment.clone())
            .bind(expires_at)
            .bind(ticket_id)
            .execute(&mut *tx)
            .await
            .map_err(q("decide a ticket"))?;
        }
        // The audit record of the decision, in the same transaction: a decision is never
        // stored without its record.
        let record = crate::audit::Decision {
            ticket_id: ticket.id.clone(),
            approve: decision.kind == DecisionKind::Approve,
            reviewer: decision.reviewer.clone(),
            reason: decision.reason.clone(),
            comment: decision.comment.clone(),
            valid_until: decision.valid_until,
            ticket_status: Some(status.unwrap_or(TicketStatus::Pending).as_str().to_owned()),
            repository: ticket.key.repository.clone(),
            refname: ticket.key.refname.clone(),
            old_id: ticket.key.old_id.clone(),
            new_id: ticket.key.new_id.clone(),
            operation: ticket.operation,
            request_id: ticket.request_id.clone(),
            at: decision.at,
        };
        crate::audit::record_decision_in(&mut tx, &record).await?;
        tx.commit().await.map_err(q("commit a decision"))?;
        let ticket = self.ticket(ticket_id).await?.ok_or(StoreError::Corrupt {
            column: "tickets.id",
            value: ticket_id.to_owned(),
        })?;
        Ok(match status {
            Some(_) => DecisionOutcome::Decided(ticket),
            None => DecisionOutcome::Counted { ticket, have, need },
        })
    }

    /// The audit sessions whose pushes were given this ticket, for the ticket page's links.
    pub async fn sessions_of_ticket(&self, ticket_id: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|source| StoreError::Query {
                action: "open a connection",
                source,
            })?;
        crate::audit::store::sessions_of_ticket(&mut conn, ticket_id).await
    }

    /// The pack summary the audit record holds for one of these requests (the filter's event
    /// record, or the verdict record when the verdict request carried one): the ticket page's
    /// fallback when no push waited on the ticket. The first request with commits wins.
    pub async fn pack_from_audit(
        &self,
        request_ids: &[String],
    ) -> Result<Option<PackSummary>, StoreError> {
        let mut found: Option<PackSummary> = None;
        for id in request_ids {
            for record in crate::audit::store::records_of_request(&self.pool, id).await? {
                let pack = serde_json::from_str::<serde_json::Value>(&record.record)
                    .ok()
                    .and_then(|envelope| envelope.pointer("/data/pack").cloned())
                    .and_then(|pack| serde_json::from_value::<PackSummary>(pack).ok());
                match pack {
                    Some(pack) if !pack.commits.is_empty() => return Ok(Some(pack)),
                    Some(pack) if found.is_none() => found = Some(pack),
                    _ => {}
                }
            }
        }
        Ok(found)
    }

    /// Claims a webhook event for delivery: true when this call created the record, false
    /// when it exists already (another instance, or an earlier pass, has it).
    pub async fn claim_delivery(
        &self,
        ticket_id: &str,
        event: &str,
        target: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let result = sqlx::query(
            "INSERT INTO webhook_deliveries (id, ticket_id, event, target, status, attempts, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5) \
             ON CONFLICT (event, target) DO NOTHING",
        )
        .bind(&id)
        .bind(ticket_id)
        .bind(event)
        .bind(target)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "claim a webhook delivery",
            source,
        })?;
        Ok((result.rows_affected() == 1).then_some(id))
    }

    /// Records one delivery attempt's outcome.
    pub async fn update_delivery(
        &self,
        id: &str,
        status: DeliveryStatus,
        attempts: i64,
        last_status: Option<i64>,
        last_error: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, \
             last_error = $4, updated_at = $5 WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(attempts)
        .bind(last_status)
        .bind(last_error.map(str::to_owned))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "record a webhook attempt",
            source,
        })?;
        Ok(())
    }

    /// The webhook deliveries about a ticket, oldest first.
    pub async fn deliveries(&self, ticket_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(concat!(
            delivery_columns!(),
            " WHERE ticket_id = $1 ORDER BY created_at, id"
        ))
        .bind(ticket_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| StoreError::Query {
            action: "list webhook deliveries",
            source,
        })?;
        rows.iter().map(delivery_from_row).collect()
    }
}

/// The ticket columns the queue offers as filter choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceColumn {
    /// `repository`.
    Repository,
    /// `subject`.
    Requester,
    /// `acting_for`.
    ActingFor,
    /// `rule_name`.
    Rule,
}

impl ChoiceColumn {
    fn as_sql(self) -> &'static str {
        match self {
            ChoiceColumn::Repository => "repository",
            ChoiceColumn::Requester => "subject",
            ChoiceColumn::ActingFor => "acting_for",
            ChoiceColumn::Rule => "rule_name",
        }
    }
}

impl VerdictTx {
    /// Every approval of a ticket, oldest first, read in the verdict's transaction: a re-push
    /// may use an N-of-group approval only when none of its approvers is a party to it.
    pub async fn approvals(&mut self, ticket_id: &str) -> Result<Vec<Decision>, StoreError> {
        let rows = sqlx::query(concat!(
            decision_columns!(),
            " WHERE ticket_id = $1 AND decision = 'approve' ORDER BY decided_at, id"
        ))
        .bind(ticket_id)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(|source| StoreError::Query {
            action: "list the approvals of a ticket",
            source,
        })?;
        rows.iter().map(decision_from_row).collect()
    }
}

fn decision_from_row(row: &AnyRow) -> Result<Decision, StoreError> {
    Ok(Decision {
        id: text(row, "id")?,
        ticket_id: text(row, "ticket_id")?,
        reviewer: text(row, "reviewer")?,
        reviewer_acting_for: optional_text(row, "reviewer_acting_for")?,
        kind: DecisionKind::parse(text(row, "decision")?)?,
        reason: optional_text(row, "reason")?,
        comment: optional_text(row, "comment")?,
        valid_until: optional_int(row, "valid_until")?,
        decided_at: int(row, "decided_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: text(row, "id")?,
        ticket_id: text(row, "ticket_id")?,
        event: text(row, "event")?,
        target: text(row, "target")?,
        status: DeliveryStatus::parse(text(row, "status")?)?,
        attempts: int(row, "attempts")?,
        last_status: optional_int(row, "last_status")?,
        last_error: optional_text(row, "last_error")?,
        created_at: int(row, "created_at")?,
        updated_at: int(row, "updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_wildcards_literally() {
        assert_eq!(like_escape("a%b_c\\d"), "a\\%b\\_c\\\\d");
    }

    #[test]
    fn every_filter_value_is_bound_not_spliced() {
        let filter = TicketFilter {
            repository: Some("x'; DROP TABLE tickets; --".into()),
            text: Some("bob".into()),
            ..TicketFilter::default()
        };
        let (w, _) = Where::of(&filter, "status = 'pending'");
        assert!(!w.sql().contains("DROP"), "{}", w.sql());
        assert_eq!(w.values.len(), 2);
        assert!(w.sql().contains("$2"), "{}", w.sql());
    }
}
