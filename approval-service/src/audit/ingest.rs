//! `POST /v1/events`: the filter's audit events, stored in their sessions' chains.
//!
//! Write events (pushes), and events whose kind is missing, are appended in one transaction
//! that commits before the answer (204), so the filter can drop a write event only once it is
//! on record; a store failure answers 503 and the filter retries. Read events go through a
//! bounded in-process queue ([`ReadQueue`]) drained by one writer task: when it is full the
//! event is dropped and counted, and the count is stored with the next batch the writer
//! commits, beside the filter's own `dropped_reads`. `GET /v1/audit/drops` shows both.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use gitgate_core::api::{EventBatch, EventKind, GateEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::record::Draft;
use super::store::{self, SERVICE_DROPS};
use crate::app::AppState;
use crate::error::AppError;
use crate::store::{Store, StoreError};

/// The largest event batch accepted, in bytes (axum's default of 2 MiB is too small for a
/// full batch of pushes with their pack summaries).
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// The most events one batch may carry.
pub const MAX_EVENTS: usize = 10_000;

/// The read queue's capacity, in events, unless the settings say otherwise.
pub const DEFAULT_READ_QUEUE: usize = 4096;

/// The most read events the writer commits in one transaction.
const WRITER_BATCH: usize = 256;

/// How often the writer tries a batch before it counts the batch as dropped.
const WRITER_ATTEMPTS: u32 = 4;

/// The writer's first pause after a failed attempt; doubled after each.
const WRITER_BACKOFF: Duration = Duration::from_millis(100);

pub(super) async fn post_events(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let batch = parse_batch(&body)?;
    let (reads, writes): (Vec<GateEvent>, Vec<GateEvent>) = batch
        .events
        .into_iter()
        .partition(|event| event.kind == Some(EventKind::Read));

    if !writes.is_empty() || batch.dropped_reads > 0 {
        let mut tx = state.store().begin().await.map_err(AppError::AuditStore)?;
        append_events(tx.connection(), &writes)
            .await
            .map_err(AppError::AuditStore)?;
        store::add_drops(tx.connection(), store::FILTER_DROPS, batch.dropped_reads)
            .await
            .map_err(AppError::AuditStore)?;
        // The answer leaves only after the commit: a write event the filter lets go is stored.
        tx.commit().await.map_err(AppError::AuditStore)?;
        for event in &writes {
            tracing::info!(request_id = %event.request_id, service = %event.service, "write recorded");
        }
        if batch.dropped_reads > 0 {
            tracing::warn!(
                dropped = batch.dropped_reads,
                "the filter dropped read events"
            );
        }
    }
    for event in reads {
        state.audit().enqueue(event);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Parses and checks an event batch; every problem is a 400 naming the field.
pub fn parse_batch(body: &[u8]) -> Result<EventBatch, AppError> {
    let batch: EventBatch = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not an event batch: {e}")))?;
    if batch.events.len() > MAX_EVENTS {
        return Err(bad(format!(
            "{} events in one batch; at most {MAX_EVENTS} are accepted",
            batch.events.len()
        )));
    }
    for (index, event) in batch.events.iter().enumerate() {
        let place = |field: &str| format!("events[{index}].{field}");
        check_text(&place("request_id"), &event.request_id)?;
        if let Some(repository) = &event.repository {
            check_text(&place("repository"), repository)?;
        }
        if let Some(identity) = &event.identity {
            check_text(&place("identity.subject"), &identity.subject)?;
            for (field, value) in [
                ("identity.acting_for", &identity.acting_for),
                ("identity.token_id", &identity.token_id),
                ("identity.session", &identity.session),
            ] {
                if let Some(value) = value {
                    check_text(&place(field), value)?;
                }
            }
        }
        for (position, update) in event.updates.iter().enumerate() {
            check_text(&place(&format!("updates[{position}].ref")), &update.refname)?;
            for (field, id) in [("old", &update.old), ("new", &update.new)] {
                if !is_object_id(id) {
                    return Err(bad(format!(
                        "{} is not a lower-case hex object id",
                        place(&format!("updates[{position}].{field}"))
                    )));
                }
            }
        }
        if let Some(pack) = &event.pack {
            for (position, commit) in pack.commits.iter().enumerate() {
                if !is_object_id(&commit.id) {
                    return Err(bad(format!(
                        "{} is not a lower-case hex object id",
                        place(&format!("pack.commits[{position}].id"))
                    )));
                }
            }
        }
    }
    Ok(batch)
}

/// A SHA-1 or SHA-256 object id in lower-case hex.
pub fn is_object_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_text(field: &str, value: &str) -> Result<(), AppError> {
    crate::verdicts::field_problem(field, value).map_or(Ok(()), |message| Err(bad(message)))
}

fn bad(message: String) -> AppError {
    AppError::BadEventBatch { message }
}

/// What the writer task receives.
enum Message {
    Event(Box<GateEvent>),
    /// Answered once everything queued before it is committed (or counted as dropped).
    Flush(oneshot::Sender<()>),
}

/// The bounded queue of read events and its writer task. Cheap to clone; clones share it.
///
/// The writer is started by the first event, inside the runtime that serves requests.
#[derive(Clone)]
pub struct ReadQueue {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    store: Store,
    capacity: usize,
    state: Mutex<QueueState>,
    /// Dropped events not yet added to the stored counter.
    unstored_drops: AtomicU64,
    /// Dropped events since this process started.
    dropped_here: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    sender: Option<mpsc::Sender<Message>>,
    writer: Option<JoinHandle<()>>,
    closed: bool,
}

impl std::fmt::Debug for ReadQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadQueue")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

impl ReadQueue {
    /// A queue of at most `capacity` read events in front of `store`.
    pub fn new(store: Store, capacity: usize) -> Self {
        ReadQueue {
            inner: Arc::new(QueueInner {
                store,
                capacity: capacity.max(1),
                state: Mutex::new(QueueState::default()),
                unstored_drops: AtomicU64::new(0),
                dropped_here: AtomicU64::new(0),
            }),
        }
    }

    /// Queues a read event, or counts it as dropped when the queue is full or closed.
    pub fn enqueue(&self, event: GateEvent) {
        let sender = self.sender();
        let sent = match sender {
            Some(sender) => sender.try_send(Message::Event(Box::new(event))).is_ok(),
            None => false,
        };
        if !sent {
            self.count_drops(1);
        }
    }

    /// Drops counted by this process that are not in the store yet.
    pub fn unstored_drops(&self) -> u64 {
        self.inner.unstored_drops.load(Ordering::Relaxed)
    }

    /// Drops counted by this process since it started.
    pub fn dropped_here(&self) -> u64 {
        self.inner.dropped_here.load(Ordering::Relaxed)
    }

    /// Waits until every event queued before the call is stored (or counted as dropped), and
    /// the drop count with it.
    pub async fn flush(&self) {
        let Some(sender) = self.sender() else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if sender.send(Message::Flush(done)).await.is_ok() {
            // OK to ignore: a writer that ended has nothing left to store.
            let _ = wait.await;
        }
    }

    /// Stops taking events, stores what is queued and waits for the writer to end. Used at
    /// shutdown, before the store closes.
    pub async fn close(&self) {
        let writer = {
            let mut state = self.lock();
            state.closed = true;
            state.sender = None;
            state.writer.take()
        };
        match writer {
            // OK to ignore: a writer that panicked has already lost its batch, and the
            // service is stopping.
            Some(writer) => drop(writer.await),
            None => {
                // Nothing was queued, but drops may have been counted.
                let count = self.inner.unstored_drops.swap(0, Ordering::Relaxed);
                if let Err(error) = store_drops(&self.inner.store, count).await {
                    tracing::error!(%error, dropped = count, "the read drop count was not stored");
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A poisoned lock only means a panic elsewhere while it was held; the state is a
        // pair of handles and stays usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sender, starting the writer on first use; `None` once closed.
    fn sender(&self) -> Option<mpsc::Sender<Message>> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        if let Some(sender) = &state.sender {
            return Some(sender.clone());
        }
        let (sender, receiver) = mpsc::channel(self.inner.capacity);
        state.writer = Some(tokio::spawn(write_reads(self.inner.clone(), receiver)));
        state.sender = Some(sender.clone());
        Some(sender)
    }

    fn count_drops(&self, count: u64) {
        self.inner
            .unstored_drops
            .fetch_add(count, Ordering::Relaxed);
        let total = self.inner.dropped_here.fetch_add(count, Ordering::Relaxed) + count;
        // Once per power of two, so a flood of drops does not flood the log too.
        if total.is_power_of_two() {
            tracing::warn!(
                dropped = total,
                capacity = self.inner.capacity,
                "the read queue is full: read events dropped"
            );
        }
    }
}

/// The writer task: commits read events in batches until the queue closes.
async fn write_reads(inner: Arc<QueueInner>, mut receiver: mpsc::Receiver<Message>) {
    let mut pending: VecDeque<Message> = VecDeque::new();
    loop {
        let Some(first) = receiver.recv().await else {
            break;
        };
        pending.push_back(first);
        while pending.len() < WRITER_BATCH {
            match receiver.try_recv() {
                Ok(message) => pending.push_back(message),
                Err(_) => break,
            }
        }
        let mut events = Vec::new();
        let mut flushes = Vec::new();
        for message in pending.drain(..) {
            match message {
                Message::Event(event) => events.push(*event),
                Message::Flush(done) => flushes.push(done),
            }
        }
        commit_reads(&inner, &events).await;
        for done in flushes {
            // OK to ignore: the caller stopped waiting.
            let _ = done.send(());
        }
    }
    // The queue is closed: store the last drop count.
    let count = inner.unstored_drops.swap(0, Ordering::Relaxed);
    if let Err(error) = store_drops(&inner.store, count).await {
        tracing::error!(%error, dropped = count, "the read drop count was not stored");
    }
}

/// Stores a batch of reads with the drop count, retrying; a batch that still fails is counted
/// as dropped.
async fn commit_reads(inner: &QueueInner, events: &[GateEvent]) {
    let mut pause = WRITER_BACKOFF;
    for attempt in 1..=WRITER_ATTEMPTS {
        let drops = inner.unstored_drops.swap(0, Ordering::Relaxed);
        match store_reads(&inner.store, events, drops).await {
            Ok(()) => return,
            Err(error) => {
                inner.unstored_drops.fetch_add(drops, Ordering::Relaxed);
                tracing::warn!(%error, attempt, events = events.len(), "storing read events failed");
                if attempt < WRITER_ATTEMPTS {
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
            }
        }
    }
    let lost = u64::try_from(events.len()).unwrap_or(u64::MAX);
    inner.unstored_drops.fetch_add(lost, Ordering::Relaxed);
    inner.dropped_here.fetch_add(lost, Ordering::Relaxed);
    tracing::error!(
        dropped = lost,
        "read events dropped: the store keeps failing"
    );
}

async fn store_reads(store: &Store, events: &[GateEvent], drops: u64) -> Result<(), StoreError> {
    if events.is_empty() && drops == 0 {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    append_events(tx.connection(), events).await?;
    store::add_drops(tx.connection(), SERVICE_DROPS, drops).await?;
    tx.commit().await
}

/// Appends events to their chains, skipping any already stored exactly so: a batch the
/// filter sends again because the answer to the first attempt was lost is recorded once.
async fn append_events(
    conn: &mut sqlx::AnyConnection,
    events: &[GateEvent],
) -> Result<(), StoreError> {
    let mut drafts = Vec::with_capacity(events.len());
    for event in events {
        let draft = Draft::of_event(event);
        if !store::has_event(conn, &event.request_id, &draft.data).await? {
            drafts.push(draft);
        }
    }
    store::append(conn, drafts).await?;
    Ok(())
}

async fn store_drops(store: &Store, count: u64) -> Result<(), StoreError> {
    store_reads(store, &[], count).await
}
