//! The response path: secrets in what the upstream returns are masked on their way to the
//! client. The work is in `gitgate_core::mask`; this module reads headers in their phase, moves
//! each body chunk through a `ResponseMasker`, and records what happened.
//!
//! Per stream (envoy-wasm.md §3, §8):
//!
//! 1. Request headers: a request on a masked path has `accept-encoding` removed, so the
//!    upstream answers in identity encoding.
//! 2. Response headers: the plan is made from `content-type` and every `content-encoding`
//!    value. When the body may change, `content-length` goes (Envoy then re-frames the body),
//!    and a withheld body loses `content-encoding` too. Headers are never touched later.
//! 3. Body: every chunk is read, masked and replaced, and the callback always continues (a
//!    response is never paused, so Envoy never buffers it). Pack data the masker would only copy
//!    is not even read (unless the fetch scan reads it). The held tail goes out with the
//!    end-of-stream chunk.
//! 4. Trailers end the body too, but the held tail can no longer be added then; it is dropped
//!    (never passed unmasked) and counted.
//!
//! An upload-pack answer (a fetch or clone) is also read by `gitgate_core::fetch_scan`, after
//! masking: every object of its pack is scanned. For an identity the `fetch` policy refuses,
//! the last band-1 packets stay held until the pack was read; when it carries a secret they
//! are dropped and the answer ends with the refusal git prints. [`ResponseMask::fetch_report`]
//! says what was found, for the audit record.

use std::rc::Rc;
use std::sync::Arc;

use gitgate_core::api::Identity;
use gitgate_core::fetch_scan::{Ended, FetchReport, FetchScan};
use gitgate_core::mask::{Chunk, Masking, ResponseMasker, ResponsePlan};
use gitgate_core::push_scan::SecretScanning;
use gitgate_core::request;
use log::{info, warn};
use proxy_wasm::types::{BufferType, MapType};

use crate::host;

/// Filter state key of the masking outcome (`%FILTER_STATE(wasm.gitgate_masking:PLAIN)%`).
const MASKING_PROPERTY: &str = "gitgate_masking";

/// Filter state key of a fetch's scan (`%FILTER_STATE(wasm.gitgate_fetch:PLAIN)%`): `clean`,
/// `passed:secrets:<n>`, `refused:secrets:<n>`, `unscanned` (the pack could not be read).
const FETCH_PROPERTY: &str = "gitgate_fetch";

/// The request path's last segment of a fetch RPC.
const UPLOAD_PACK: &str = "/git-upload-pack";

/// How many masked secrets a log line names.
const LOGGED_SECRETS: usize = 8;

/// Masking's configuration and counters, in the gate's root context.
pub(crate) struct MaskRoot {
    masking: Masking,
    metrics: MaskMetrics,
    /// The push scan's settings under the `fetch` limits; `None` when fetches are not scanned.
    fetch: Option<Rc<SecretScanning>>,
}

/// Counter ids (`wasmcustom.gitgate_*`).
struct MaskMetrics {
    masked_responses: Option<u32>,
    masked_secrets: Option<u32>,
    withheld: Option<u32>,
    passed_compressed: Option<u32>,
    truncated: Option<u32>,
    /// Fetches whose pack carried secrets, passed or refused.
    fetch_secrets: Option<u32>,
    /// Fetches refused for their secrets.
    fetch_refused: Option<u32>,
}

impl MaskRoot {
    /// Wraps a compiled configuration and defines the counters.
    pub(crate) fn new(masking: Masking) -> MaskRoot {
        let fetch = masking
            .fetch_policy()
            .map(|policy| Rc::new(policy.scanning(Arc::clone(masking.rules()))));
        MaskRoot {
            fetch,
            masking,
            metrics: MaskMetrics {
                masked_responses: host::define_counter("gitgate_responses_masked"),
                masked_secrets: host::define_counter("gitgate_secrets_masked"),
                withheld: host::define_counter("gitgate_responses_withheld_compressed"),
                passed_compressed: host::define_counter("gitgate_responses_passed_compressed"),
                truncated: host::define_counter("gitgate_responses_mask_truncated"),
                fetch_secrets: host::define_counter("gitgate_fetch_secret_packs"),
                fetch_refused: host::define_counter("gitgate_fetches_refused"),
            },
        }
    }
}

/// Where one stream's response is.
enum Phase {
    /// The request was on a masked path; the response headers have not come yet.
    AwaitingHeaders,
    /// The body goes through the masker.
    Body(Box<ResponseMasker>),
    /// Nothing more to do.
    Done,
}

/// The response side of one stream on a masked path.
pub(crate) struct ResponseMask {
    root: Rc<MaskRoot>,
    request_id: String,
    path: String,
    content_type: String,
    phase: Phase,
    /// Held bytes that could not be written (trailers ended the body).
    dropped: usize,
    recorded: bool,
    /// For a fetch RPC: who asked, read in the request-headers phase.
    identity: Option<Identity>,
    /// The scan of an upload-pack answer's pack, until the body ends.
    fetch: Option<FetchScan>,
    /// How the fetch scan ended.
    fetch_ended: Option<Ended>,
}

/// In the request-headers phase: decides whether the response will be masked, and if so asks
/// the upstream for identity encoding. `identity` reads who is asking (called for fetch RPCs
/// only, in this phase).
pub(crate) fn on_request_headers(
    root: &Rc<MaskRoot>,
    raw_path: &str,
    identity: impl FnOnce() -> Option<Identity>,
) -> Option<ResponseMask> {
    let path = raw_path.split(['?', '#']).next().unwrap_or_default();
    // A path that does not normalize is answered 400 by the gate; nothing to mask then.
    let normalized = request::normalize_path(path).ok()?;
    if !root.masking.masks_path(&normalized) {
        return None;
    }
    if !host::remove_header(MapType::HttpRequestHeaders, "accept-encoding") {
        warn!("could not remove accept-encoding from a masked request");
    }
    let request_id = host::get_property(&["request", "id"])
        .map(|id| String::from_utf8_lossy(&id).into_owned())
        .unwrap_or_default();
    let identity = if root.fetch.is_some() && normalized.ends_with(UPLOAD_PACK) {
        identity()
    } else {
        None
    };
    Some(ResponseMask {
        identity,
        fetch: None,
        fetch_ended: None,
        root: Rc::clone(root),
        request_id,
        path: normalized,
        content_type: String::new(),
        phase: Phase::AwaitingHeaders,
        dropped: 0,
        recorded: false,
    })
}

impl ResponseMask {
    /// In the response-headers phase: makes the plan and fixes the headers it affects. It runs
    /// again when a local reply replaces a response whose headers were held (a refused push),
    /// and the reply gets its own plan.
    pub(crate) fn on_response_headers(&mut self) {
        self.recorded = false;
        let headers = host::get_headers(MapType::HttpResponseHeaders);
        let values = |name: &str| -> Option<String> {
            let found: Vec<String> = headers
                .iter()
                .flatten()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_owned())
                .collect();
            (!found.is_empty()).then(|| found.join(","))
        };
        let content_type = values("content-type");
        let plan = match (&headers, content_type.as_deref()) {
            // Unreadable headers: the body cannot be classified, so it is masked as text
            // rather than passed.
            (None, _) => ResponsePlan::Mask(gitgate_core::mask::BodyKind::Text),
            (Some(_), content_type) => {
                let encoding = values("content-encoding");
                self.root.masking.plan(content_type, encoding.as_deref())
            }
        };
        let encoding = values("content-encoding");
        self.fetch = match &self.root.fetch {
            Some(settings)
                if self
                    .root
                    .masking
                    .scans_fetch(content_type.as_deref(), encoding.as_deref()) =>
            {
                let withhold = self
                    .root
                    .masking
                    .fetch_policy()
                    .is_some_and(|p| p.refuses(self.identity.as_ref()));
                Some(FetchScan::new(Rc::clone(settings), withhold))
            }
            _ => None,
        };
        let withholds = self.fetch.as_ref().is_some_and(FetchScan::withholds);
        self.content_type = content_type.unwrap_or_default();
        if plan.changes_body() || withholds {
            // After this callback the header map is gone (envoy-wasm.md §3): now or never.
            if !host::remove_header(MapType::HttpResponseHeaders, "content-length") {
                warn!(
                    "request {}: could not remove content-length",
                    self.request_id
                );
            }
            if matches!(plan, ResponsePlan::Withhold { .. })
                && !host::remove_header(MapType::HttpResponseHeaders, "content-encoding")
            {
                warn!(
                    "request {}: could not remove content-encoding",
                    self.request_id
                );
            }
        }
        if let ResponsePlan::PassCompressed { encoding, .. } = &plan {
            host::increment(self.root.metrics.passed_compressed);
            info!(
                "request {} path {}: {} response passed unmasked (content-encoding {encoding})",
                self.request_id, self.path, self.content_type
            );
            if !host::set_property(&[MASKING_PROPERTY], b"passed:compressed") {
                warn!(
                    "request {}: could not record the masking outcome",
                    self.request_id
                );
            }
        }
        self.phase = match plan {
            ResponsePlan::Pass | ResponsePlan::PassCompressed { .. } if self.fetch.is_none() => {
                self.recorded = true;
                Phase::Done
            }
            plan => Phase::Body(Box::new(ResponseMasker::new(&self.root.masking, plan))),
        };
    }

    /// A body chunk of `body_size` bytes (the callback always continues, so that is just this
    /// chunk).
    pub(crate) fn on_response_body(&mut self, body_size: usize, end_of_stream: bool) {
        let Phase::Body(masker) = &mut self.phase else {
            return;
        };
        if !end_of_stream && self.fetch.is_none() && masker.passthrough_len() >= body_size as u64 {
            // Pack data: copied as it is, so not even read.
            masker.skip(body_size as u64);
            return;
        }
        let chunk = if body_size == 0 {
            Some(Vec::new())
        } else {
            host::get_buffer(BufferType::HttpResponseBody, 0, body_size)
        };
        let Some(chunk) = chunk.filter(|c| c.len() == body_size) else {
            // Never pass what could not be read: drop it.
            warn!(
                "request {}: could not read {body_size} response bytes, dropping them",
                self.request_id
            );
            let _ = host::set_buffer(BufferType::HttpResponseBody, 0, body_size, &[]);
            return;
        };
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let mut changed = masker.feed(&chunk, &mut out) == Chunk::Replaced;
        if end_of_stream {
            if !changed {
                // The tail is appended to this chunk, which must then be written whole.
                out.clear();
                out.extend_from_slice(&chunk);
            }
            changed |= masker.finish(&mut out);
        }
        if let Some(fetch) = self.fetch.as_mut() {
            // The scan reads what the client gets: masking never changes band 1.
            let client = if changed {
                std::mem::take(&mut out)
            } else {
                chunk
            };
            let mut guarded = Vec::with_capacity(client.len());
            if fetch.feed(&client, &mut guarded) {
                out = guarded;
                changed = true;
            } else {
                out = client;
            }
            if end_of_stream && let Some(fetch) = self.fetch.take() {
                let refuse = self.refuses();
                let before = out.len();
                let ended = fetch.finish(refuse, &mut out);
                changed |= ended.refused || out.len() != before;
                self.fetch_ended = Some(ended);
            }
        }
        if changed && !host::set_buffer(BufferType::HttpResponseBody, 0, body_size, &out) {
            warn!(
                "request {}: could not rewrite the response body",
                self.request_id
            );
        }
        if end_of_stream {
            self.record();
        }
    }

    /// Trailers end the body. The held tail cannot be added any more: it is dropped.
    pub(crate) fn on_response_trailers(&mut self) {
        if let Phase::Body(masker) = &mut self.phase {
            let mut tail = Vec::new();
            if masker.finish(&mut tail) {
                self.dropped = tail.len();
                host::increment(self.root.metrics.truncated);
            }
        }
        // A withheld pack end is dropped with it: the fetch fails rather than pass unread.
        self.end_fetch_unwritten();
        self.record();
    }

    /// The stream ends (also after a reset): records the outcome once.
    pub(crate) fn on_log(&mut self) {
        self.end_fetch_unwritten();
        self.record();
    }

    /// What the fetch scan found, once the answer ended (for the audit record): findings,
    /// pack summary, masked count. `None` for responses that carried no pack (other answers,
    /// v2 `ls-refs`, negotiation rounds), and when fetch scanning is off. Complete once
    /// [`ResponseMask::on_log`] ran (it ends a scan the body's end did not).
    #[allow(
        dead_code,
        reason = "read by the audit record, which is wired in by its own module"
    )]
    pub(crate) fn fetch_report(&self) -> Option<FetchReport> {
        let ended = self.fetch_ended.as_ref()?;
        if ended.report.pack.bytes == 0 {
            return None;
        }
        let mut report = ended.report.clone();
        if let Phase::Body(masker) = &self.phase {
            report.masked = masker.report().map_or(0, |r| r.masked);
        }
        Some(report)
    }

    /// Whether the policy refuses this fetch when its pack carries a secret.
    fn refuses(&self) -> bool {
        self.root
            .masking
            .fetch_policy()
            .is_some_and(|p| p.refuses(self.identity.as_ref()))
    }

    /// Ends a fetch scan whose answer stopped without an end of stream: nothing can be written
    /// any more, so what was held is dropped.
    fn end_fetch_unwritten(&mut self) {
        if let Some(fetch) = self.fetch.take() {
            let refuse = self.refuses();
            let mut lost = Vec::new();
            let ended = fetch.finish(refuse, &mut lost);
            if !lost.is_empty() {
                warn!(
                    "request {}: the answer ended without its last {} bytes (trailers or a reset)",
                    self.request_id,
                    lost.len()
                );
            }
            self.fetch_ended = Some(ended);
        }
    }

    /// Log lines, counters and filter state of a fetch scan, once it ended.
    fn record_fetch(&self) {
        let Some(ended) = &self.fetch_ended else {
            return;
        };
        let report = &ended.report;
        if report.pack.bytes == 0 {
            // No pack (ls-refs, a negotiation round): nothing was scanned.
            return;
        }
        let metrics = &self.root.metrics;
        for line in &ended.log_lines {
            warn!(
                "request {} path {}: fetch: {line}",
                self.request_id, self.path
            );
        }
        if ended.withheld_abandoned {
            warn!(
                "request {}: fetch: more than {} bytes after the pack; its end was not withheld",
                self.request_id,
                gitgate_core::fetch_scan::MAX_HELD
            );
        }
        let found = report.findings.len();
        if found > 0 {
            host::increment(metrics.fetch_secrets);
        }
        if ended.refused {
            host::increment(metrics.fetch_refused);
        }
        info!(
            "request {} path {}: {}",
            self.request_id,
            self.path,
            report.summary()
        );
        let label = match (ended.refused, found, &report.error) {
            (true, n, _) => format!("refused:secrets:{n}"),
            (false, 0, Some(_)) if report.pack.bytes > 0 => "unscanned".to_owned(),
            (false, 0, _) => "clean".to_owned(),
            (false, n, _) => format!("passed:secrets:{n}"),
        };
        if !host::set_property(&[FETCH_PROPERTY], label.as_bytes()) {
            warn!(
                "request {}: could not record the fetch scan",
                self.request_id
            );
        }
    }

    /// Filter state, counters and one log line, once: rule ids, fingerprints and offsets only.
    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.record_fetch();
        let Phase::Body(masker) = &self.phase else {
            return;
        };
        if *masker.plan() == ResponsePlan::Pass {
            // Read for the fetch scan only: masking has nothing to record.
            return;
        }
        let metrics = &self.root.metrics;
        let label = match masker.plan() {
            ResponsePlan::Withhold { encoding, .. } => {
                host::increment(metrics.withheld);
                warn!(
                    "request {} path {}: {} response withheld: content-encoding {encoding} \
                     cannot be masked",
                    self.request_id, self.path, self.content_type
                );
                "withheld:compressed".to_owned()
            }
            _ => {
                let masked = masker.report().map_or(0, |r| r.masked);
                if let Some(report) = masker.report().filter(|r| r.masked > 0) {
                    host::increment(metrics.masked_responses);
                    host::increment_by(metrics.masked_secrets, report.masked);
                    let listed: Vec<String> = report
                        .secrets
                        .iter()
                        .take(LOGGED_SECRETS)
                        .map(ToString::to_string)
                        .collect();
                    info!(
                        "request {} path {}: masked {} secret(s) in the response ({}, {} bytes): {}",
                        self.request_id,
                        self.path,
                        report.masked,
                        self.content_type,
                        masker.received(),
                        listed.join("; ")
                    );
                }
                if let Some(fallback) = masker.report().and_then(|r| r.fallback.as_ref()) {
                    info!(
                        "request {}: part of the response masked as text: {fallback}",
                        self.request_id
                    );
                }
                if self.dropped > 0 {
                    warn!(
                        "request {}: response trailers came with {} masked bytes still held; \
                         they were dropped",
                        self.request_id, self.dropped
                    );
                }
                if masked > 0 {
                    format!("masked:{masked}")
                } else {
                    "clean".to_owned()
                }
            }
        };
        if !host::set_property(&[MASKING_PROPERTY], label.as_bytes()) {
            warn!(
                "request {}: could not record the masking outcome",
                self.request_id
            );
        }
    }
}
