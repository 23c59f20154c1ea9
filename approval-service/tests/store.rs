//! The store on its own, against every configured backend.

mod support;

use gitgate::store::{
    DecideOutcome, NewTicket, Pusher, Review, Store, TicketStatus, UpdateKey, VerdictKind,
    VerdictRecord,
};
use gitgate_core::api::Operation;
use support::*;

fn key(new_id: &str) -> UpdateKey {
    UpdateKey {
        repository: "org/app.git".into(),
        refname: "refs/heads/main".into(),
        old_id: OLD.into(),
        new_id: new_id.into(),
    }
}

fn new_ticket(id: &str, new_id: &str, created_at: i64) -> NewTicket {
    NewTicket {
        id: id.into(),
        key: key(new_id),
        operation: Operation::Update,
        pusher: Pusher {
            subject: "agent-7".into(),
            agent: true,
            acting_for: Some("alice".into()),
        },
        request_id: "req-1".into(),
        rule: Some("protect main".into()),
        code: "gitgate:hold:protected-ref".into(),
        reason: "held".into(),
        approvers: "reviewers".into(),
        created_at,
    }
}

fn verdict(id: &str, request_id: &str, position: i64, ticket: Option<&str>) -> VerdictRecord {
    VerdictRecord {
        id: id.into(),
        request_id: request_id.into(),
        position,
        key: key(NEW),
        operation: Operation::Update,
        pusher: Pusher {
            subject: "agent-7".into(),
            agent: true,
            acting_for: None,
        },
        token_id: None,
        decision: if ticket.is_some() {
            VerdictKind::Hold
        } else {
            VerdictKind::Allow
        },
        code: ticket.map(|_| "gitgate:hold:protected-ref".into()),
        reason: None,
        rule: None,
        ticket: ticket.map(str::to_owned),
        decided_at: 1_000 + position,
    }
}

#[tokio::test]
async fn a_ticket_and_its_verdict_round_trip_through_the_store() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        let opened = tx
            .open_ticket(&new_ticket("T-one", NEW, 1_000))
            .await
            .expect("opens");
        tx.record_verdict(&verdict("v1", "req-1", 0, Some("T-one")))
            .await
            .expect("records");
        tx.commit().await.expect("commits");

        let read = store.ticket("T-one").await.expect("reads").expect("exists");
        assert_eq!(read, opened, "[{}]", db.label);
        assert_eq!(read.status, TicketStatus::Pending);
        assert_eq!(read.pusher.acting_for.as_deref(), Some("alice"));
        assert!(read.review.is_none());
        let records = store.verdicts_for_ticket("T-one").await.expect("lists");
        assert_eq!(
            records,
            vec![verdict("v1", "req-1", 0, Some("T-one"))],
            "[{}]",
            db.label
        );
        assert!(store.ticket("T-none").await.expect("reads").is_none());
        store.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn only_one_pending_ticket_exists_per_update() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        let first = tx
            .open_ticket(&new_ticket("T-first", NEW, 1_000))
            .await
            .expect("opens");
        let second = tx
            .open_ticket(&new_ticket("T-second", NEW, 2_000))
            .await
            .expect("reuses");
        tx.commit().await.expect("commits");
        assert_eq!(second.id, first.id, "[{}]", db.label);
        assert!(store.ticket("T-second").await.expect("reads").is_none());

        let mut tx = store.begin().await.expect("begins");
        let latest = tx.latest_ticket(&key(NEW)).await.expect("looks up");
        assert_eq!(latest.map(|t| t.id), Some("T-first".to_owned()));
        assert!(
            tx.latest_ticket(&key(NEWER))
                .await
                .expect("looks up")
                .is_none()
        );
        drop(tx);
        store.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_decision_is_recorded_once() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        tx.open_ticket(&new_ticket("T-one", NEW, 1_000))
            .await
            .expect("opens");
        tx.commit().await.expect("commits");

        let review = Review {
            by: "bob".into(),
            at: 5_000,
            reason: None,
            comment: Some("fine".into()),
            expires_at: Some(9_000),
        };
        let outcome = store
            .decide("T-one", TicketStatus::Approved, &review)
            .await
            .expect("decides");
        let DecideOutcome::Decided(ticket) = outcome else {
            panic!("[{}] {outcome:?}", db.label)
        };
        assert_eq!(ticket.status, TicketStatus::Approved);
        assert_eq!(ticket.review.as_ref(), Some(&review));

        let late = Review {
            by: "dave".into(),
            reason: Some("no".into()),
            ..review.clone()
        };
        let again = store
            .decide("T-one", TicketStatus::Denied, &late)
            .await
            .expect("answers");
        let kept =
            matches!(&again, DecideOutcome::AlreadyDecided(t) if t.review == Some(review.clone()));
        assert!(kept, "[{}] {again:?}", db.label);
        let missing = store
            .decide("T-none", TicketStatus::Denied, &late)
            .await
            .expect("answers");
        assert_eq!(missing, DecideOutcome::NotFound);

        // After a decision the same update may be held again with a new ticket.
        let mut tx = store.begin().await.expect("begins");
        let renewed = tx
            .open_ticket(&new_ticket("T-two", NEW, 10_000))
            .await
            .expect("opens");
        assert_eq!(renewed.id, "T-two", "[{}]", db.label);
        assert_eq!(
            tx.latest_ticket(&key(NEW))
                .await
                .expect("looks up")
                .map(|t| t.id),
            Some("T-two".into())
        );
        tx.commit().await.expect("commits");

        assert_eq!(store.pending_tickets(10).await.expect("lists").len(), 1);
        assert_eq!(
            store.decided_tickets(10).await.expect("lists")[0].id,
            "T-one"
        );
        store.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_transaction_dropped_before_commit_leaves_nothing() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        tx.open_ticket(&new_ticket("T-gone", NEW, 1_000))
            .await
            .expect("opens");
        tx.record_verdict(&verdict("v1", "req-gone", 0, Some("T-gone")))
            .await
            .expect("records");
        drop(tx);
        assert!(
            store.ticket("T-gone").await.expect("reads").is_none(),
            "[{}]",
            db.label
        );
        assert!(
            store
                .verdicts_for_request("req-gone")
                .await
                .expect("lists")
                .is_empty()
        );
        store.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_verdict_naming_an_unknown_ticket_is_refused() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        let result = tx
            .record_verdict(&verdict("v1", "req-1", 0, Some("T-unknown")))
            .await;
        // SQLite checks foreign keys per statement under sqlx's default `foreign_keys = ON`.
        assert!(
            result.is_err() || tx.commit().await.is_err(),
            "[{}]",
            db.label
        );
        store.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn reconnecting_keeps_the_data_and_applies_no_migration_twice() {
    for db in TestDatabase::all().await {
        let store = Store::connect(&db.url).await.expect("connects");
        let mut tx = store.begin().await.expect("begins");
        tx.open_ticket(&new_ticket("T-kept", NEW, 1_000))
            .await
            .expect("opens");
        tx.commit().await.expect("commits");
        store.close().await;

        let reopened = Store::connect(&db.url).await.expect("reconnects");
        assert!(
            reopened.ticket("T-kept").await.expect("reads").is_some(),
            "[{}]",
            db.label
        );
        reopened.close().await;
        db.drop().await;
    }
}

#[tokio::test]
async fn a_sqlite_store_creates_its_directory_and_uses_write_ahead_logging() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("a/b/gitgate.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connects");
    let mut tx = store.begin().await.expect("begins");
    tx.open_ticket(&new_ticket("T-wal", NEW, 1_000))
        .await
        .expect("opens");
    tx.commit().await.expect("commits");
    assert!(path.is_file());
    let wal = path.with_file_name("gitgate.db-wal");
    assert!(
        wal.is_file(),
        "the write-ahead log exists while the store is open"
    );
    store.close().await;
}

#[tokio::test]
async fn a_closed_store_reports_errors_instead_of_panicking() {
    let db = TestDatabase::sqlite();
    let store = Store::connect(&db.url).await.expect("connects");
    store.close().await;
    assert!(store.begin().await.is_err());
    assert!(store.ticket("T-x").await.is_err());
    assert!(store.pending_tickets(1).await.is_err());
}
