//! The audit record on the filter side: every stream of the gate instance builds one
//! `GateEvent` (`gitgate_core::audit`), and the root context sends them to the approval service.
//!
//! Why the root sends: an HTTP context is destroyed right after `on_log`, and Envoy cancels its
//! callouts then without calling back (envoy-wasm.md §2). So `on_log` only puts the finished
//! event into the worker's queue, held by the gate's root (one per VM, so per worker), and the
//! root's timer (`audit.tick_ms`) posts one `EventBatch` at a time to `/v1/events` on the
//! approval cluster; while a backlog remains, the next batch goes as soon as the previous one
//! was stored, without waiting for the next tick. A batch that fails (no answer, a reset, any status but 2xx) goes back to
//! the front of the queue and is sent again after a growing wait: write events are never
//! dropped; read events are dropped only when the queue is full, and counted.
//!
//! What the stream reads for the record, and what it costs:
//!
//! - request headers: `Git-Protocol`, `Content-Encoding`, the request id and the clock (a few
//!   host calls); the identity is the one the gate reads anyway;
//! - an upload-pack request body: each chunk is copied once into the VM (these bodies are small:
//!   wants, haves and a few arguments); other request bodies are only counted;
//! - the response body, after masking rewrote it: the chunk is read again from Envoy's buffer
//!   (a second copy when the masker read it too), but only where it is worth reading. Pack data
//!   of a fetch is skipped unread: for each band-1 packet only its length prefix and the few
//!   bytes after it are copied, so a clone costs two small host calls per 64 KiB packet. Bodies
//!   that are neither pkt-lines nor text are not read at all.

// The SDK declares these imports with its `#[repr(u32)]` enums; here the results are plain
// numbers, so an unexpected status is a value, never a panic (as in `host`).
#![allow(clashing_extern_declarations)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use gitgate_core::api::{EVENTS_PATH, EventKind, Identity};
use gitgate_core::audit::{
    AuditSection, Enqueued, EventBuilder, EventQueue, PushRecord, QueueLimits, QueueStats,
    RequestEnd, RequestStart,
};
use gitgate_core::config::GateConfig;
use gitgate_core::fetch_scan::FetchReport;
use gitgate_core::gate::PushGate;
use gitgate_core::service_token::ServiceToken;
use log::{error, info, warn};
use proxy_wasm::types::{BufferType, MapType, Status};

use crate::host;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_get_buffer_status(buffer_type: u32, length: *mut usize, flags: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

const OK: u32 = Status::Ok as u32;

/// The most response bytes copied into the VM at once while skimming a response.
const MAX_READ: usize = 64 * 1024;

/// The host's clock in milliseconds since the epoch; 0 when it cannot be read.
pub(crate) fn now_ms() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the pointer is valid for the call.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == OK { nanos / 1_000_000 } else { 0 }
}

/// The current length of a body buffer (after another step of this filter rewrote it).
fn buffer_len(buffer: BufferType) -> Option<usize> {
    let mut length = 0usize;
    let mut flags = 0u32;
    // SAFETY: the pointers are valid for the call.
    let status = unsafe { proxy_get_buffer_status(buffer as u32, &mut length, &mut flags) };
    match status {
        OK => Some(length),
        s if s == Status::NotFound as u32 => Some(0),
        _ => None,
    }
}

/// Counter ids (`wasmcustom.gitgate_audit_*`).
struct Metrics {
    queued: Option<u32>,
    delivered: Option<u32>,
    dropped_reads: Option<u32>,
    failed_batches: Option<u32>,
    writes_over_bound: Option<u32>,
    batches: Option<u32>,
    rejected: Option<u32>,
}

/// The worker's audit queue and its sender, in the gate's root context.
pub(crate) struct AuditRoot {
    section: AuditSection,
    cluster: String,
    authority: String,
    /// The approval service's token, sent with every batch (see `crate::service_token`).
    service_token: Option<ServiceToken>,
    queue: RefCell<EventQueue>,
    /// The token of the batch in flight.
    in_flight: Cell<Option<u32>>,
    /// Counters already reported to the host, to add only the difference.
    reported: Cell<QueueStats>,
    metrics: Metrics,
}

impl AuditRoot {
    /// The audit root of a configuration; `None` when `audit.enabled` is false.
    pub(crate) fn new(
        config: &GateConfig,
        service_token: Option<ServiceToken>,
    ) -> Option<Rc<AuditRoot>> {
        let section = &config.config.audit;
        if !section.enabled {
            return None;
        }
        let approval = &config.config.approval;
        Some(Rc::new(AuditRoot {
            section: section.clone(),
            cluster: approval.cluster.clone(),
            authority: approval.authority.clone(),
            service_token,
            queue: RefCell::new(EventQueue::new(QueueLimits::from_section(section))),
            in_flight: Cell::new(None),
            reported: Cell::new(QueueStats::default()),
            metrics: Metrics {
                queued: host::define_counter("gitgate_audit_events_queued"),
                delivered: host::define_counter("gitgate_audit_events_delivered"),
                dropped_reads: host::define_counter("gitgate_audit_reads_dropped"),
                failed_batches: host::define_counter("gitgate_audit_batches_failed"),
                writes_over_bound: host::define_counter("gitgate_audit_writes_over_bound"),
                batches: host::define_counter("gitgate_audit_batches_sent"),
                rejected: host::define_counter("gitgate_audit_events_rejected"),
            },
        }))
    }

    /// Starts the root's timer; called from `on_configure`.
    pub(crate) fn start_timer(&self) -> bool {
        let period = u32::try_from(self.section.tick_ms).unwrap_or(u32::MAX);
        // SAFETY: no pointers involved.
        unsafe { proxy_set_tick_period_milliseconds(period) == OK }
    }

    /// Puts a finished event into the queue.
    fn enqueue(&self, event: &gitgate_core::api::GateEvent) {
        let outcome = self.queue.borrow_mut().push(event);
        match outcome {
            Ok(Enqueued::Queued) => host::increment(self.metrics.queued),
            Ok(Enqueued::DroppedRead) => {}
            Ok(Enqueued::OverBound) => {
                host::increment(self.metrics.queued);
                host::increment(self.metrics.writes_over_bound);
                warn!(
                    "request {}: audit queue over its bound; the write event is kept",
                    event.request_id
                );
            }
            Err(err) => error!(
                "request {}: cannot encode the audit event: {err}",
                event.request_id
            ),
        }
        self.report_stats();
    }

    /// The root's timer: sends the next batch unless one is in flight.
    pub(crate) fn on_tick(&self) {
        let body = {
            let mut queue = self.queue.borrow_mut();
            // The queue also gives up on a batch whose answer never came (then its token is
            // forgotten here, and a late answer to it is ignored).
            let body = queue.next_batch(now_ms());
            if body.is_none() && !queue.has_in_flight() {
                self.in_flight.set(None);
            }
            body
        };
        let Some(body) = body else {
            self.report_stats();
            return;
        };
        let headers = vec![
            (":method", "POST"),
            (":path", EVENTS_PATH),
            (":authority", self.authority.as_str()),
            ("content-type", "application/json"),
        ];
        let headers = crate::service_token::add_header(headers, self.service_token.as_ref());
        // Validation keeps the timeout in 1..=60000 ms: never 0, which means no timeout.
        let timeout = Duration::from_millis(self.section.timeout_ms.max(1));
        match proxy_wasm::hostcalls::dispatch_http_call(
            &self.cluster,
            headers,
            Some(&body),
            vec![],
            timeout,
        ) {
            Ok(token) => {
                self.in_flight.set(Some(token));
                host::increment(self.metrics.batches);
            }
            Err(status) => {
                warn!(
                    "audit: cannot send a batch to cluster {}: {status:?}",
                    self.cluster
                );
                self.queue.borrow_mut().failed(now_ms());
                self.report_stats();
            }
        }
    }

    /// The answer to a batch; false when `token` is not the audit's.
    pub(crate) fn on_http_call_response(&self, token: u32, num_headers: usize) -> bool {
        if self.in_flight.get() != Some(token) {
            return false;
        }
        self.in_flight.set(None);
        let status = (num_headers > 0)
            .then(|| host::get_header(MapType::HttpCallResponseHeaders, ":status"))
            .flatten()
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<u16>().ok());
        // The queue is borrowed for this step only: `report_stats` borrows it again.
        let mut queue = self.queue.borrow_mut();
        match status {
            Some(200..=299) => queue.delivered(),
            Some(status @ 400..=499) => {
                // Malformed in the service's eyes: split the batch, and set aside the one event
                // it refuses, so that it cannot hold every later event back.
                match queue.rejected(now_ms()) {
                    Some((request_id, write)) => {
                        let kind = if write { "write" } else { "read" };
                        error!(
                            "audit: the service refused the {kind} event of request \
                             {request_id} (status {status}); it is not kept"
                        );
                    }
                    None => {
                        warn!("audit: the service refused a batch (status {status}); splitting it");
                    }
                }
            }
            other => {
                queue.failed(now_ms());
                let pending = queue.pending_writes();
                // num_headers == 0 is a failure of the call itself (envoy-wasm.md §2).
                let what = other.map_or_else(|| "no answer".to_owned(), |s| format!("status {s}"));
                warn!("audit: batch not stored ({what}); {pending} write events kept for a retry");
            }
        }
        let backlog = status.is_some_and(|s| (200..300).contains(&s)) && !queue.is_empty();
        drop(queue);
        self.report_stats();
        if backlog {
            // A backlog goes out batch after batch, not one batch per tick.
            self.on_tick();
        }
        true
    }

    /// Adds what the queue counted since the last report to the host's counters.
    fn report_stats(&self) {
        let now = self.queue.borrow().stats();
        let before = self.reported.replace(now);
        host::increment_by(
            self.metrics.delivered,
            now.delivered.saturating_sub(before.delivered),
        );
        host::increment_by(
            self.metrics.dropped_reads,
            now.dropped_reads.saturating_sub(before.dropped_reads),
        );
        host::increment_by(
            self.metrics.failed_batches,
            now.failed_batches.saturating_sub(before.failed_batches),
        );
        host::increment_by(
            self.metrics.rejected,
            now.rejected.saturating_sub(before.rejected),
        );
    }
}

/// One stream's part of the record.
pub(crate) struct RequestAudit {
    root: Rc<AuditRoot>,
    builder: Option<EventBuilder>,
}

/// Every value of a request header, joined by `,` (the single-value getter returns only the
/// first of a repeated header, envoy-wasm.md §8.10).
fn joined_header(name: &str) -> Option<String> {
    let headers = host::get_headers(MapType::HttpRequestHeaders)?;
    let values: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

impl RequestAudit {
    /// In the request-headers phase: starts the stream's event.
    pub(crate) fn start(
        root: &Rc<AuditRoot>,
        config: &GateConfig,
        method: &str,
        path: &str,
        identity: Option<Identity>,
    ) -> RequestAudit {
        let git_protocol = joined_header("git-protocol");
        let content_encoding = joined_header("content-encoding");
        RequestAudit::start_with(
            root,
            config,
            method,
            path,
            identity,
            git_protocol.as_deref(),
            content_encoding.as_deref(),
        )
    }

    fn start_with(
        root: &Rc<AuditRoot>,
        config: &GateConfig,
        method: &str,
        path: &str,
        identity: Option<Identity>,
        git_protocol: Option<&str>,
        content_encoding: Option<&str>,
    ) -> RequestAudit {
        let request_id = host::get_property(&["request", "id"])
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .unwrap_or_default();
        let start = RequestStart {
            request_id,
            started_ms: now_ms(),
            method,
            path,
            prefix: &config.path_prefix,
            git_protocol,
            content_encoding,
            identity,
        };
        RequestAudit {
            root: Rc::clone(root),
            builder: Some(EventBuilder::start(start, &root.section)),
        }
    }

    /// A request body chunk of `body_size` bytes the filter did not pause before (so the
    /// buffer holds just this chunk). Read only when the builder wants it (upload-pack).
    pub(crate) fn on_request_body(&mut self, body_size: usize) {
        let Some(builder) = self.builder.as_mut() else {
            return;
        };
        if body_size == 0 || !builder.reads_request_body() {
            builder.count_request_body(body_size as u64);
            return;
        }
        match host::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Some(chunk) => builder.on_request_body(&chunk),
            None => builder.count_request_body(body_size as u64),
        }
    }

    /// In the response-headers phase (again for a local reply that replaces held headers).
    pub(crate) fn on_response_headers(&mut self) {
        let content_type = host::get_header(MapType::HttpResponseHeaders, "content-type")
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        if let Some(builder) = self.builder.as_mut() {
            builder.on_response_headers(content_type.as_deref());
        }
    }

    /// A response chunk, after masking: reads what the observer wants of the buffer as it now
    /// is (its length may differ from `body_size`, which was before the masker rewrote it).
    pub(crate) fn on_response_body(&mut self, body_size: usize) {
        let Some(builder) = self.builder.as_mut() else {
            return;
        };
        let len = buffer_len(BufferType::HttpResponseBody).unwrap_or(body_size);
        let mut at = 0usize;
        while at < len {
            let left = len - at;
            let skip = usize::try_from(builder.response_skippable())
                .unwrap_or(usize::MAX)
                .min(left);
            if skip > 0 {
                builder.skip_response(skip as u64);
                at += skip;
                continue;
            }
            let want = builder
                .response_wanted()
                .unwrap_or(MAX_READ)
                .clamp(1, MAX_READ.min(left));
            match host::get_buffer(BufferType::HttpResponseBody, at, want) {
                Some(bytes) if !bytes.is_empty() => {
                    at += bytes.len();
                    builder.on_response_body(&bytes);
                }
                _ => {
                    // Unreadable: counted, not read.
                    builder.skip_response(left as u64);
                    break;
                }
            }
        }
    }

    /// The answer the gate sent itself, when the response callbacks did not hand its body
    /// over (Envoy runs a filter's own local reply past its headers callback, but the body
    /// did not reach the body callback in the end-to-end tests).
    pub(crate) fn gate_answer(&mut self, content_type: &str, answer: &[u8]) {
        if let Some(builder) = self.builder.as_mut()
            && builder.response_seen() == 0
        {
            builder.on_response_headers(Some(content_type));
            builder.on_response_body(answer);
        }
    }

    /// In `on_log` of a stream whose request headers never reached this filter (a filter
    /// before it answered, e.g. jwt_authn's 401): an event from the request's properties.
    pub(crate) fn late(root: &Rc<AuditRoot>, config: &GateConfig) -> RequestAudit {
        let property = |path: &[&str]| {
            host::get_property(path).map(|v| String::from_utf8_lossy(&v).into_owned())
        };
        let method = property(&["request", "method"]).unwrap_or_default();
        let path = property(&["request", "path"]).unwrap_or_default();
        let mut audit = RequestAudit::start_with(root, config, &method, &path, None, None, None);
        if let Some(builder) = audit.builder.as_mut() {
            builder.note("the request was answered before it reached the gate");
        }
        audit
    }

    /// In `on_log`: finishes the event with what the gate (`push`) and the fetch scan
    /// (`fetch`) know, and queues it.
    pub(crate) fn finish(&mut self, push: Option<(PushRecord, bool)>, fetch: Option<FetchReport>) {
        let Some(builder) = self.builder.take() else {
            return;
        };
        let mut end = RequestEnd {
            ended_ms: now_ms(),
            status: host::get_property(&["response", "code"])
                .and_then(|v| v.first_chunk::<8>().map(|b| u64::from_le_bytes(*b)))
                .and_then(|code| u16::try_from(code).ok()),
            ..RequestEnd::default()
        };
        if let Some((record, answered)) = push {
            end.push = Some(record);
            end.answered_by_gate = answered;
        }
        match fetch {
            Some(report) => {
                end.masked = report.masked;
                end.response_findings = report.findings;
                end.response_pack = (report.pack.bytes > 0).then_some(report.pack);
            }
            None => end.masked = masked_count(),
        }
        let event = builder.finish(end);
        if event.kind == Some(EventKind::Write) {
            info!(
                "request {}: audit write event queued ({} updates)",
                event.request_id,
                event.updates.len()
            );
        }
        self.root.enqueue(&event);
    }
}

/// What the gate knows about a push, for its event.
pub(crate) fn push_record(gate: &PushGate) -> PushRecord {
    PushRecord {
        updates: gate.updates().to_vec(),
        push_options: gate.push_options().to_vec(),
        verdicts: gate.verdicts(),
        decision: gate.decision_label(),
        findings: gate.findings(),
        pack: gate.pack_summary(),
        received: gate.received(),
        mask: gate.redactor().map(gitgate_core::audit::TextMask),
    }
}

/// Secrets masked in the response, from the masking step's filter state (`masked:<n>`).
fn masked_count() -> u64 {
    host::get_property(&["gitgate_masking"])
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.strip_prefix("masked:").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
