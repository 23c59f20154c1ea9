//! The per-worker queue of events waiting to be sent to the approval service.
//!
//! Rules (issue 5; contract §3):
//!
//! - a write event (receive-pack) is never dropped: it stays queued, and is sent again after
//!   every failure, until the service answers 2xx for a batch holding it;
//! - a read event is dropped when the queue is full (by count or by bytes), and so is a queued
//!   read when a write needs its room; every drop is counted, and the count goes out in the
//!   next batch's `dropped_reads` (and the adapter's counter);
//! - one batch is in flight at a time, so batches are stored in the order their requests
//!   ended; after a failure the batch goes back to the front and the next attempt waits, twice
//!   as long after each failure, up to the configured maximum.
//!
//! Events are encoded once, when queued, so the queue's byte bound is exact and a batch is
//! just the encoded events joined. Time is handed in by the caller (milliseconds), so this is
//! pure and tested natively.

use std::collections::VecDeque;

use crate::api::{EventKind, GateEvent};

/// One encoded event.
#[derive(Debug, Clone)]
struct Queued {
    write: bool,
    /// The request id, to name an event the service refuses.
    request_id: String,
    json: Vec<u8>,
}

/// The batch on its way to the service.
#[derive(Debug, Clone)]
struct InFlight {
    events: Vec<Queued>,
    dropped_reads: u64,
    sent_ms: u64,
}

/// What became of an event handed to [`EventQueue::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued within the bounds.
    Queued,
    /// A read, dropped because the queue was full.
    DroppedRead,
    /// A write, queued although the queue is over its bounds (writes are never dropped).
    OverBound,
}

/// The queue's limits, from the `audit` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Events queued at most before reads are dropped.
    pub max_events: usize,
    /// Encoded bytes queued at most before reads are dropped.
    pub max_bytes: usize,
    /// Events per batch at most.
    pub batch_events: usize,
    /// Encoded bytes per batch at most (one larger event still goes alone).
    pub batch_bytes: usize,
    /// The first wait after a failure, in milliseconds.
    pub min_backoff_ms: u64,
    /// The longest wait after failures, in milliseconds.
    pub max_backoff_ms: u64,
    /// How long a batch may be in flight before it counts as failed (the host reports every
    /// callout's end, this only guards against a lost one).
    pub in_flight_timeout_ms: u64,
}

impl QueueLimits {
    /// The limits an `audit` section gives.
    pub fn from_section(section: &super::AuditSection) -> QueueLimits {
        QueueLimits {
            max_events: section.max_queue_events,
            max_bytes: section.max_queue_bytes,
            batch_events: section.max_batch_events,
            batch_bytes: section.max_batch_bytes,
            min_backoff_ms: section.tick_ms,
            max_backoff_ms: section.max_backoff_ms,
            in_flight_timeout_ms: section.timeout_ms.saturating_mul(2),
        }
    }
}

/// Counters of the queue's life, for the adapter's metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events the service accepted.
    pub delivered: u64,
    /// Reads dropped, in all.
    pub dropped_reads: u64,
    /// Batches that failed.
    pub failed_batches: u64,
    /// Events the service refused as malformed, taken out of the queue.
    pub rejected: u64,
}

/// The queue of one worker.
#[derive(Debug, Clone)]
pub struct EventQueue {
    limits: QueueLimits,
    queued: VecDeque<Queued>,
    queued_bytes: usize,
    queued_writes: usize,
    in_flight: Option<InFlight>,
    /// Reads dropped since the last batch that carried the count out.
    dropped_reads: u64,
    /// Failures in a row, for the backoff.
    failures: u32,
    /// Batches still to send one event at a time, to find the event a refused batch holds.
    solo_batches: usize,
    /// No batch is sent before this time.
    next_attempt_ms: u64,
    stats: QueueStats,
}

impl EventQueue {
    /// An empty queue with these limits.
    pub fn new(limits: QueueLimits) -> EventQueue {
        EventQueue {
            limits,
            queued: VecDeque::new(),
            queued_bytes: 0,
            queued_writes: 0,
            in_flight: None,
            dropped_reads: 0,
            failures: 0,
            solo_batches: 0,
            next_attempt_ms: 0,
            stats: QueueStats::default(),
        }
    }

    /// Events waiting (not counting a batch in flight).
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// True when nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_none()
    }

    /// True while a batch is in flight.
    pub fn has_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Write events waiting or in flight.
    pub fn pending_writes(&self) -> usize {
        let in_flight = self
            .in_flight
            .as_ref()
            .map_or(0, |f| f.events.iter().filter(|e| e.write).count());
        self.queued_writes + in_flight
    }

    /// The counters so far.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Queues an event, encoding it now.
    pub fn push(&mut self, event: &GateEvent) -> Result<Enqueued, serde_json::Error> {
        let json = serde_json::to_vec(event)?;
        let write = event.kind == Some(EventKind::Write);
        let request_id = event.request_id.clone();
        Ok(self.push_encoded(Queued {
            write,
            request_id,
            json,
        }))
    }

    fn push_encoded(&mut self, event: Queued) -> Enqueued {
        let fits = |queue: &EventQueue| {
            queue.queued.len() < queue.limits.max_events
                && queue.queued_bytes.saturating_add(event.json.len()) <= queue.limits.max_bytes
        };
        if !event.write {
            if !fits(self) {
                self.count_dropped(1);
                return Enqueued::DroppedRead;
            }
            self.add_back(event);
            return Enqueued::Queued;
        }
        // A write takes the room of the newest queued reads, if it needs it.
        while !fits(self) && self.drop_newest_read() {}
        let within = fits(self);
        self.add_back(event);
        if within {
            Enqueued::Queued
        } else {
            Enqueued::OverBound
        }
    }

    fn add_back(&mut self, event: Queued) {
        self.queued_bytes += event.json.len();
        self.queued_writes += usize::from(event.write);
        self.queued.push_back(event);
    }

    fn drop_newest_read(&mut self) -> bool {
        let Some(index) = self.queued.iter().rposition(|e| !e.write) else {
            return false;
        };
        if let Some(read) = self.queued.remove(index) {
            self.queued_bytes -= read.json.len();
            self.count_dropped(1);
        }
        true
    }

    fn count_dropped(&mut self, count: u64) {
        self.dropped_reads = self.dropped_reads.saturating_add(count);
        self.stats.dropped_reads = self.stats.dropped_reads.saturating_add(count);
    }

    /// The next batch to send at `now_ms`, as the JSON body of `POST /v1/events`, or `None`
    /// when a batch is in flight, the backoff has not passed, or there is nothing to say.
    /// The caller must report its end with [`EventQueue::delivered`] or
    /// [`EventQueue::failed`].
    pub fn next_batch(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        if let Some(in_flight) = &self.in_flight {
            let overdue =
                now_ms.saturating_sub(in_flight.sent_ms) > self.limits.in_flight_timeout_ms;
            if !overdue {
                return None;
            }
            self.failed(now_ms);
        }
        if now_ms < self.next_attempt_ms || (self.queued.is_empty() && self.dropped_reads == 0) {
            return None;
        }
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let batch_events = if self.solo_batches > 0 {
            self.solo_batches -= 1;
            1
        } else {
            self.limits.batch_events
        };
        while let Some(next) = self.queued.front() {
            let full = events.len() >= batch_events
                || (!events.is_empty()
                    && bytes.saturating_add(next.json.len()) > self.limits.batch_bytes);
            if full {
                break;
            }
            let Some(event) = self.queued.pop_front() else {
                break;
            };
            bytes += event.json.len();
            self.queued_bytes -= event.json.len();
            self.queued_writes -= usize::from(event.write);
            events.push(event);
        }
        let dropped_reads = std::mem::take(&mut self.dropped_reads);
        let body = encode_batch(&events, dropped_reads);
        self.in_flight = Some(InFlight {
            events,
            dropped_reads,
            sent_ms: now_ms,
        });
        Some(body)
    }

    /// The batch in flight was stored (the service answered 2xx).
    pub fn delivered(&mut self) {
        if let Some(batch) = self.in_flight.take() {
            self.stats.delivered = self
                .stats
                .delivered
                .saturating_add(batch.events.len() as u64);
        }
        self.failures = 0;
        self.next_attempt_ms = 0;
    }

    /// The batch in flight failed at `now_ms`: its events go back to the front, in order,
    /// and the next attempt waits. Reads that no longer fit are dropped and counted.
    pub fn failed(&mut self, now_ms: u64) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        self.stats.failed_batches = self.stats.failed_batches.saturating_add(1);
        self.dropped_reads = self.dropped_reads.saturating_add(batch.dropped_reads);
        for event in batch.events.into_iter().rev() {
            self.queued_bytes += event.json.len();
            self.queued_writes += usize::from(event.write);
            self.queued.push_front(event);
        }
        while (self.queued.len() > self.limits.max_events
            || self.queued_bytes > self.limits.max_bytes)
            && self.drop_newest_read()
        {}
        self.failures = self.failures.saturating_add(1);
        let factor = 1u64
            .checked_shl(self.failures.saturating_sub(1).min(32))
            .unwrap_or(u64::MAX);
        let wait = self
            .limits
            .min_backoff_ms
            .saturating_mul(factor)
            .min(self.limits.max_backoff_ms);
        self.next_attempt_ms = now_ms.saturating_add(wait);
    }

    /// The service refused the batch in flight as malformed (4xx): sending it again as it is
    /// cannot help. A batch of several events goes back, and the next ones carry one event
    /// each until the refused event is found; a batch of one is taken out of the queue, and
    /// its request id returned for the log (with whether it was a write), so that one bad
    /// event cannot hold every later one back.
    pub fn rejected(&mut self, now_ms: u64) -> Option<(String, bool)> {
        let batch = self.in_flight.as_ref()?;
        if batch.events.len() > 1 {
            self.solo_batches = batch.events.len();
            self.failed(now_ms);
            return None;
        }
        let mut batch = self.in_flight.take()?;
        self.stats.rejected = self.stats.rejected.saturating_add(1);
        self.dropped_reads = self.dropped_reads.saturating_add(batch.dropped_reads);
        let event = batch.events.pop()?;
        Some((event.request_id, event.write))
    }

    /// The time before which no batch is sent, after failures.
    pub fn next_attempt_ms(&self) -> u64 {
        self.next_attempt_ms
    }
}

/// `{"events":[...],"dropped_reads":N}` from already encoded events: the shape of
/// [`crate::api::EventBatch`].
fn encode_batch(events: &[Queued], dropped_reads: u64) -> Vec<u8> {
    let size: usize = events.iter().map(|e| e.json.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 40);
    body.extend_from_slice(b"{\"events\":[");
    for (index, event) in events.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.json);
    }
    body.extend_from_slice(b"],\"dropped_reads\":");
    body.extend_from_slice(dropped_reads.to_string().as_bytes());
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EventBatch;

    fn limits(max_events: usize) -> QueueLimits {
        QueueLimits {
            max_events,
            max_bytes: 1 << 20,
            batch_events: 2,
            batch_bytes: 1 << 20,
            min_backoff_ms: 100,
            max_backoff_ms: 1000,
            in_flight_timeout_ms: 10_000,
        }
    }

    fn event(id: &str, kind: EventKind) -> GateEvent {
        GateEvent {
            request_id: id.into(),
            kind: Some(kind),
            service: "upload-pack".into(),
            ..GateEvent::default()
        }
    }

    fn ids(body: &[u8]) -> (Vec<String>, u64) {
        let batch: EventBatch = serde_json::from_slice(body).expect("a valid batch");
        let ids = batch.events.into_iter().map(|e| e.request_id).collect();
        (ids, batch.dropped_reads)
    }

    #[test]
    fn batches_keep_the_order_and_one_is_in_flight_at_a_time() {
        let mut queue = EventQueue::new(limits(10));
        for id in ["a", "b", "c"] {
            assert_eq!(
                queue.push(&event(id, EventKind::Read)).ok(),
                Some(Enqueued::Queued)
            );
        }
        let first = queue.next_batch(0).expect("a batch");
        assert_eq!(ids(&first), (vec!["a".into(), "b".into()], 0));
        assert!(
            queue.next_batch(1).is_none(),
            "one batch in flight at a time"
        );
        queue.delivered();
        let second = queue.next_batch(2).expect("a batch");
        assert_eq!(ids(&second).0, ["c"]);
        queue.delivered();
        assert!(queue.next_batch(3).is_none());
        assert!(queue.is_empty());
        assert_eq!(queue.stats().delivered, 3);
    }

    #[test]
    fn reads_are_dropped_when_full_and_the_count_goes_out_in_the_next_batch() {
        let mut queue = EventQueue::new(limits(2));
        queue.push(&event("a", EventKind::Read)).expect("encodes");
        queue.push(&event("b", EventKind::Read)).expect("encodes");
        assert_eq!(
            queue.push(&event("c", EventKind::Read)).ok(),
            Some(Enqueued::DroppedRead)
        );
        // A write takes a read's room: never dropped.
        assert_eq!(
            queue.push(&event("w", EventKind::Write)).ok(),
            Some(Enqueued::Queued)
        );
        let body = queue.next_batch(0).expect("a batch");
        assert_eq!(ids(&body), (vec!["a".into(), "w".into()], 2));
        queue.delivered();
        assert_eq!(queue.stats().dropped_reads, 2);
        assert!(queue.next_batch(1).is_none(), "the count went out once");
    }

    #[test]
    fn writes_are_never_dropped_even_over_the_bound() {
        let mut queue = EventQueue::new(limits(1));
        assert_eq!(
            queue.push(&event("w1", EventKind::Write)).ok(),
            Some(Enqueued::Queued)
        );
        assert_eq!(
            queue.push(&event("w2", EventKind::Write)).ok(),
            Some(Enqueued::OverBound)
        );
        assert_eq!(queue.pending_writes(), 2);
    }

    #[test]
    fn a_failed_batch_goes_back_to_the_front_and_waits_longer_each_time() {
        let mut queue = EventQueue::new(limits(10));
        queue.push(&event("w", EventKind::Write)).expect("encodes");
        queue.push(&event("r", EventKind::Read)).expect("encodes");
        queue
            .push(&event("later", EventKind::Write))
            .expect("encodes");
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let body = queue
                .next_batch(now)
                .expect("a batch once the wait is over");
            assert_eq!(ids(&body).0, ["w", "r"]);
            queue.failed(now);
            waits.push(queue.next_attempt_ms() - now);
            assert!(queue.next_batch(now + 1).is_none(), "backing off");
            now = queue.next_attempt_ms();
        }
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(queue.pending_writes(), 2);
        queue.next_batch(now).expect("a batch");
        queue.delivered();
        assert_eq!(ids(&queue.next_batch(now).expect("the rest")).0, ["later"]);
    }

    #[test]
    fn a_lost_callout_counts_as_failed_after_the_timeout() {
        let mut queue = EventQueue::new(limits(10));
        queue.push(&event("w", EventKind::Write)).expect("encodes");
        queue.next_batch(0).expect("a batch");
        assert!(queue.next_batch(5_000).is_none());
        assert!(
            queue.next_batch(10_001).is_none(),
            "failed, now backing off"
        );
        assert_eq!(queue.stats().failed_batches, 1);
        assert!(queue.next_batch(10_101).is_some());
    }

    #[test]
    fn dropped_reads_of_a_failed_batch_are_carried_again() {
        let mut queue = EventQueue::new(limits(1));
        queue.push(&event("a", EventKind::Read)).expect("encodes");
        queue.push(&event("b", EventKind::Read)).expect("encodes");
        queue.next_batch(0).expect("a batch");
        queue.failed(0);
        let body = queue.next_batch(1000).expect("a batch");
        assert_eq!(ids(&body), (vec!["a".into()], 1));
    }

    #[test]
    fn a_refused_batch_is_split_until_the_bad_event_is_found_and_set_aside() {
        let mut queue = EventQueue::new(limits(10));
        for id in ["a", "bad", "c"] {
            queue.push(&event(id, EventKind::Write)).expect("encodes");
        }
        queue.next_batch(0).expect("a batch");
        assert_eq!(queue.rejected(0), None, "a batch of two is split");
        let first = queue.next_batch(1000).expect("one event");
        assert_eq!(ids(&first).0, ["a"]);
        queue.delivered();
        assert_eq!(ids(&queue.next_batch(1000).expect("one event")).0, ["bad"]);
        assert_eq!(queue.rejected(1000), Some(("bad".to_owned(), true)));
        assert_eq!(ids(&queue.next_batch(1000).expect("the rest")).0, ["c"]);
        assert_eq!(queue.stats().rejected, 1);
    }

    #[test]
    fn a_batch_respects_its_byte_bound_but_a_large_event_still_goes_alone() {
        let mut queue = EventQueue::new(QueueLimits {
            batch_events: 100,
            batch_bytes: 10,
            ..limits(10)
        });
        queue.push(&event("a", EventKind::Read)).expect("encodes");
        queue.push(&event("b", EventKind::Read)).expect("encodes");
        assert_eq!(ids(&queue.next_batch(0).expect("a batch")).0, ["a"]);
    }
}
