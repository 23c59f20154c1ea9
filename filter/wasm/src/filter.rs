//! The proxy-wasm contexts: one root context per plugin, chosen by its root id, and one HTTP
//! context per stream. All protocol work happens in `gitgate_core`; this module only moves bytes
//! between Envoy and the core and carries out what the core decides.

use std::rc::Rc;
use std::time::Duration;

use gitgate_core::api::{HOLD_WAIT_PATH, Identity, VERDICTS_PATH, VerdictRequest};
use gitgate_core::config::GateConfig;
use gitgate_core::decision::CalloutResult;
use gitgate_core::gate::{BodyAction, BodyEncoding, Outcome, PushGate, PushMeta, ResumeAction};
use gitgate_core::mask::Masking;
use gitgate_core::push_scan::{Clock, SecretScanning};
use gitgate_core::report::RESULT_CONTENT_TYPE;
use gitgate_core::request::{self, GitRequest};
use gitgate_core::service_token::ServiceToken;
use log::{error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::audit::{self, AuditRoot, RequestAudit};
use crate::mask::{self, MaskRoot, ResponseMask};
use crate::no_thin::{self, NoThinResponse};
use crate::{basic_auth, host, plugin_config, service_token};

/// Root id of the instance that rewrites Basic auth, before jwt_authn.
pub const BASIC_AUTH_ROOT_ID: &str = "gitgate_basic_auth";

/// Root id of the gate, after jwt_authn.
pub const GATE_ROOT_ID: &str = "gitgate";

/// Filter state key of the decision (`%FILTER_STATE(wasm.gitgate_decision:PLAIN)%`).
const DECISION_PROPERTY: &str = "gitgate_decision";

/// The most bytes of a verdict response read; the answer is one small JSON object.
const MAX_VERDICT_RESPONSE: usize = 1 << 20;

/// Registers the root context factory.
pub fn start() {
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| {
        Box::new(Root {
            role: Role::Unconfigured,
        })
    });
}

/// What a root context (one plugin) does.
enum Role {
    /// `on_configure` has not succeeded; streams pass untouched.
    Unconfigured,
    /// Rewrites Basic auth carrying a JWT to Bearer.
    BasicAuth,
    /// Gates pushes.
    Gate(Rc<GateRoot>),
}

/// The gate's configuration and counters, shared by its streams.
struct GateRoot {
    config: GateConfig,
    metrics: Metrics,
    /// Response masking; `None` when `masking.enabled` is false.
    masking: Option<Rc<MaskRoot>>,
    /// Secret push protection, compiled once per VM; `None` when `secrets.enabled` is false.
    secrets: Option<Rc<SecretScanning>>,
    /// The audit record's queue and sender; `None` when `audit.enabled` is false.
    audit: Option<Rc<AuditRoot>>,
    /// The approval service's token, sent on every callout; `None` only under
    /// `approval.token.missing: warn` with the variable unset.
    service_token: Option<ServiceToken>,
}

/// Counter ids (`wasmcustom.gitgate_*`); `None` when the host refused to define one.
struct Metrics {
    forwarded: Option<u32>,
    refused: Option<u32>,
    approval_failures: Option<u32>,
    probes: Option<u32>,
    /// Pushes in which secrets were found.
    secret_pushes: Option<u32>,
    /// Pushes let through past a scanning limit by `on_limit: pass-with-audit`.
    scan_limit_passes: Option<u32>,
}

impl Metrics {
    fn define() -> Metrics {
        Metrics {
            forwarded: host::define_counter("gitgate_pushes_forwarded"),
            refused: host::define_counter("gitgate_pushes_refused"),
            approval_failures: host::define_counter("gitgate_approval_failures"),
            probes: host::define_counter("gitgate_probes"),
            secret_pushes: host::define_counter("gitgate_secret_pushes"),
            scan_limit_passes: host::define_counter("gitgate_secret_scan_limit_passes"),
        }
    }
}

struct Root {
    role: Role,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
        // The root's only callouts are the audit record's batches.
        if let Role::Gate(root) = &self.role
            && let Some(audit) = &root.audit
        {
            audit.on_http_call_response(token_id, num_headers);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let root_id = host::get_property(&["plugin_root_id"])
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .unwrap_or_default();
        match root_id.as_str() {
            BASIC_AUTH_ROOT_ID => {
                self.role = Role::BasicAuth;
                true
            }
            GATE_ROOT_ID => match load_gate_config() {
                Ok((config, masking)) => {
                    let service_token = match service_token::load(&config.config.approval.token) {
                        Ok(token) => token,
                        Err(message) => {
                            error!("invalid configuration: {message}");
                            return false;
                        }
                    };
                    info!(
                        "gate configured, approval cluster {}, prefix {}, masking {}",
                        config.config.approval.cluster,
                        config.path_prefix,
                        if masking.is_some() { "on" } else { "off" }
                    );
                    let metrics = Metrics::define();
                    // The push scan shares masking's compiled rules unless it has its own.
                    let shared = masking.as_ref().map(|m| std::sync::Arc::clone(m.rules()));
                    let secrets = match SecretScanning::from_config(&config, shared) {
                        Ok(secrets) => secrets.map(Rc::new),
                        Err(err) => {
                            error!("invalid configuration: {err}");
                            return false;
                        }
                    };
                    info!(
                        "secret push protection {}",
                        if secrets.is_some() { "on" } else { "off" }
                    );
                    let masking = masking.map(|m| Rc::new(MaskRoot::new(m)));
                    let audit = AuditRoot::new(&config, service_token.clone());
                    if let Some(audit) = &audit
                        && !audit.start_timer()
                    {
                        error!("audit: cannot start the timer that sends events");
                        return false;
                    }
                    self.role = Role::Gate(Rc::new(GateRoot {
                        config,
                        metrics,
                        masking,
                        secrets,
                        audit,
                        service_token,
                    }));
                    true
                }
                Err(message) => {
                    error!("invalid configuration: {message}");
                    false
                }
            },
            other => {
                error!(
                    "unknown root_id {other:?}; use {GATE_ROOT_ID:?} or \
                     {BASIC_AUTH_ROOT_ID:?}"
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Returning None would make the SDK panic, so every role yields a context.
        Some(match &self.role {
            Role::Unconfigured => Box::new(PassThrough),
            Role::BasicAuth => Box::new(BasicAuth),
            Role::Gate(root) => Box::new(Gate {
                root: Rc::clone(root),
                push: None,
                mask: None,
                audit: None,
                no_thin: None,
            }),
        })
    }

    fn on_tick(&mut self) {
        if let Role::Gate(root) = &self.role
            && let Some(audit) = &root.audit
        {
            audit.on_tick();
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Reads and checks the configuration, and compiles the masking rules (once per VM).
fn load_gate_config() -> Result<(GateConfig, Option<Masking>), String> {
    let bytes = host::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok_or_else(|| "configuration: cannot be read".to_owned())?;
    let value = plugin_config::decode(&bytes).map_err(|err| format!("configuration: {err}"))?;
    let config = GateConfig::from_value(value).map_err(|err| err.to_string())?;
    let masking = Masking::from_config(&config).map_err(|err| err.to_string())?;
    Ok((config, masking))
}

/// A stream of an unconfigured plugin.
struct PassThrough;

impl Context for PassThrough {}

impl HttpContext for PassThrough {}

/// A stream of the Basic-to-Bearer instance.
struct BasicAuth;

impl Context for BasicAuth {}

impl HttpContext for BasicAuth {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(value) = host::get_header(MapType::HttpRequestHeaders, "authorization") else {
            return Action::Continue;
        };
        if let Some(bearer) = basic_auth::bearer_from_basic(&value)
            && !host::replace_header(MapType::HttpRequestHeaders, "authorization", &bearer)
        {
            warn!("could not rewrite the authorization header");
        }
        Action::Continue
    }
}

/// A stream of the gate instance.
struct Gate {
    root: Rc<GateRoot>,
    /// Set for a gated receive-pack request; `None` means pass through.
    push: Option<Push>,
    /// Set for a request on a masked path: its response is masked.
    mask: Option<ResponseMask>,
    /// This stream's audit event, while it is assembled.
    audit: Option<RequestAudit>,
    /// Set for a gated repository's receive-pack advertisement: `no-thin` is added to it.
    no_thin: Option<NoThinResponse>,
}

/// The state of one gated push.
struct Push {
    gate: PushGate,
    request_id: String,
    repository: String,
    /// The callout's token, once dispatched.
    token: Option<u32>,
    /// The hold wait's token (`POST /v1/holds/wait`), once dispatched.
    hold_token: Option<u32>,
    /// True once the outcome was recorded (filter state, counters, log line).
    recorded: bool,
    /// True while the upstream's response headers are held back (verdict not yet "forward").
    response_paused: bool,
    /// True once the filter sent its own answer (which passes through this filter's response
    /// callbacks too, and must not be held).
    answered: bool,
    /// The answer the filter sent, for the audit record: its body is not always handed to
    /// this filter's response-body callback.
    sent: Vec<u8>,
}

impl Context for Gate {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(push) = self.push.as_mut() else {
            return;
        };
        let is_hold_wait = push.hold_token == Some(token_id);
        if push.token != Some(token_id) && !is_hold_wait {
            return;
        }
        let body = if num_headers == 0 || body_size > MAX_VERDICT_RESPONSE {
            None
        } else {
            host::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        };
        let status = host::get_header(MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| String::from_utf8(s).ok())
            .and_then(|s| s.trim().parse::<u16>().ok());
        let result = match (num_headers, &body) {
            (0, _) | (_, None) => CalloutResult::Failed,
            (_, Some(body)) => CalloutResult::Response { status, body },
        };
        let action = if is_hold_wait {
            push.hold_token = None;
            push.gate.on_hold_wait(result)
        } else {
            push.gate.on_callout(result)
        };
        match action {
            ResumeAction::Nothing => {
                push.release_response();
                push.ask_hold_wait(&self.root);
            }
            ResumeAction::Resume(held) => {
                let restored =
                    held.is_empty() || host::set_buffer(BufferType::HttpRequestBody, 0, 0, &held);
                if restored {
                    push.record(&self.root);
                    if !host::resume_request() {
                        error!("request {}: could not resume", push.request_id);
                    }
                    push.release_response();
                } else {
                    let answer = push
                        .gate
                        .fail_internal("could not restore the withheld bytes");
                    push.respond(&self.root, &answer);
                }
            }
            ResumeAction::Respond(answer) => push.respond(&self.root, &answer),
        }
    }
}

impl HttpContext for Gate {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let config = &self.root.config;
        let method = header_text(":method").unwrap_or_default();
        let path = header_text(":path").unwrap_or_default();
        self.mask = (self.root.masking.as_ref())
            .and_then(|m| mask::on_request_headers(m, &path, || read_identity(config)));
        self.audit = (self.root.audit.as_ref())
            .map(|a| RequestAudit::start(a, config, &method, &path, read_identity(config)));
        let secrets = &config.config.secrets;
        if self.root.secrets.is_some() && secrets.no_thin_packs {
            self.no_thin = no_thin::on_request_headers(&method, &path, &config.path_prefix, |r| {
                config.is_gated(r)
            });
        }
        let repository = match request::classify(&method, &path, &config.path_prefix) {
            Ok(GitRequest::ReceivePack { repository }) if config.is_gated(&repository) => {
                repository
            }
            Ok(_) => return Action::Continue,
            Err(err) => {
                warn!("refusing a request with a malformed path: {err}");
                let body = format!("gitgate: malformed request path: {err}\n");
                let headers = [("content-type", "text/plain; charset=utf-8")];
                if !host::send_response(400, &headers, body.as_bytes()) {
                    error!("could not send a local reply");
                }
                return Action::Pause;
            }
        };

        let request_id = host::get_property(&["request", "id"])
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .unwrap_or_default();
        let encoding = content_encoding();
        let meta = PushMeta {
            request_id: request_id.clone(),
            repository: repository.clone(),
            identity: read_identity(config),
        };
        let gate = PushGate::new(meta, encoding, config.config.approval.failure_mode)
            .summary_commits(config.config.gate.max_summary_commits)
            .hold_window(config.config.approval.hold_window_ms)
            .clock(Clock::new(now_ms));
        let gate = match &self.root.secrets {
            Some(secrets) => gate.scanning(Rc::clone(secrets)),
            None => gate,
        };
        self.push = Some(Push {
            gate,
            request_id,
            repository,
            token: None,
            hold_token: None,
            recorded: false,
            response_paused: false,
            answered: false,
            sent: Vec::new(),
        });
        if end_of_stream {
            // A body-less request: nothing to gate, but let the core record it.
            return self.body(&[], 0, true);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.push.is_none()
            && let Some(audit) = self.audit.as_mut()
        {
            audit.on_request_body(body_size);
        }
        let Some(push) = self.push.as_mut() else {
            return Action::Continue;
        };
        if !end_of_stream && push.gate.streams_through() {
            // Let through with nothing withheld: no need to copy the chunk into the VM.
            push.gate.skipped(body_size);
            return Action::Continue;
        }
        if !end_of_stream && push.gate.drains() {
            // Refused: drop the chunk unread, keep reading until the end of the body.
            push.gate.skipped(body_size);
            if body_size > 0 && !host::set_buffer(BufferType::HttpRequestBody, 0, body_size, &[]) {
                return self.internal_failure("could not drop the request body");
            }
            return Action::Continue;
        }
        // We never pause before the end of the body, so the buffer holds just this chunk.
        let chunk = if body_size == 0 {
            Some(Vec::new())
        } else {
            host::get_buffer(BufferType::HttpRequestBody, 0, body_size)
        };
        match chunk {
            Some(chunk) => self.body(&chunk, body_size, end_of_stream),
            None => self.internal_failure("could not read the request body"),
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.push.is_none() {
            return Action::Continue;
        }
        // With trailers the body callbacks never see end_of_stream (envoy-wasm.md §1.4).
        self.body(&[], 0, true)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if let Some(no_thin) = self.no_thin.as_mut() {
            no_thin.on_response_headers();
        }
        if let Some(mask) = self.mask.as_mut() {
            mask.on_response_headers();
        }
        if let Some(audit) = self.audit.as_mut() {
            audit.on_response_headers();
        }
        // git http-backend answers with its headers before it reads the body. Passing them on
        // before the verdict would make a refusal impossible (Envoy can only reset a stream
        // whose response headers went out), so hold them until the push is let through.
        let Some(push) = self.push.as_mut() else {
            return Action::Continue;
        };
        if !push.answered
            && push.gate.may_add_notice()
            && !host::remove_header(MapType::HttpResponseHeaders, "content-length")
        {
            // A notice put in front of a body of declared length would break the response.
            warn!(
                "request {}: could not drop the response length",
                push.request_id
            );
        }
        if !push.answered && !push.gate.is_forwarding() {
            push.response_paused = true;
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        // Before masking, which then reads the rewritten chunk.
        let body_size = match self.no_thin.as_mut() {
            Some(no_thin) => no_thin.on_response_body(body_size, end_of_stream),
            None => body_size,
        };
        if let Some(mask) = self.mask.as_mut() {
            mask.on_response_body(body_size, end_of_stream);
        }
        // After masking, on the upstream's first bytes: an approval given while the push was
        // held goes first, as band-2 lines (nothing can reach the pusher before this).
        let notice = match self.push.as_mut() {
            Some(push) if !push.answered && push.gate.is_forwarding() => {
                push.gate.take_response_notice()
            }
            _ => Vec::new(),
        };
        if !notice.is_empty() && !host::set_buffer(BufferType::HttpResponseBody, 0, 0, &notice) {
            warn!("could not show the approval notice");
        }
        let body_size = body_size + notice.len();
        // After masking: the record holds what the client gets.
        if let Some(audit) = self.audit.as_mut() {
            audit.on_response_body(body_size);
        }
        // Never pause a response: Envoy would buffer it whole (envoy-wasm.md §1.2).
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if let Some(no_thin) = self.no_thin.as_mut() {
            no_thin.on_response_trailers();
        }
        if let Some(mask) = self.mask.as_mut() {
            mask.on_response_trailers();
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(push) = self.push.as_mut() {
            push.record(&self.root);
        }
        if let Some(mask) = self.mask.as_mut() {
            mask.on_log();
        }
        // Last, so the gate and the masker have recorded their outcomes.
        if let Some(root) = &self.root.audit {
            let mut event = self
                .audit
                .take()
                .unwrap_or_else(|| RequestAudit::late(root, &self.root.config));
            if let Some(push) = self.push.as_ref().filter(|p| p.answered) {
                event.gate_answer(RESULT_CONTENT_TYPE, &push.sent);
            }
            let push = (self.push.as_ref()).map(|p| (audit::push_record(&p.gate), p.answered));
            event.finish(push, self.mask.as_ref().and_then(|m| m.fetch_report()));
        }
    }
}

impl Gate {
    /// Runs one chunk (`body_size` bytes in Envoy's buffer) through the core and carries out
    /// its answer.
    fn body(&mut self, chunk: &[u8], body_size: usize, end_of_stream: bool) -> Action {
        let root = Rc::clone(&self.root);
        let Some(push) = self.push.as_mut() else {
            return Action::Continue;
        };
        let token = &mut push.token;
        let request_id = push.request_id.as_str();
        let mut dispatch = |request: &VerdictRequest| {
            *token = dispatch_verdict_request(&root, request, request_id);
            token.is_some()
        };
        let action = push.gate.on_body(chunk, end_of_stream, &mut dispatch);
        match action {
            BodyAction::Forward(bytes) => {
                if bytes.as_slice() != chunk
                    && !host::set_buffer(BufferType::HttpRequestBody, 0, body_size, &bytes)
                {
                    return self.internal_failure("could not rewrite the request body");
                }
                if end_of_stream {
                    push.record(&root);
                }
                push.release_response();
                Action::Continue
            }
            BodyAction::Wait => {
                if body_size > 0
                    && !host::set_buffer(BufferType::HttpRequestBody, 0, body_size, &[])
                {
                    return self.internal_failure("could not withhold the request body");
                }
                push.ask_hold_wait(&root);
                Action::Pause
            }
            BodyAction::Respond(answer) => {
                push.respond(&root, &answer);
                Action::Pause
            }
        }
    }

    /// Refuses the push because a host call failed.
    fn internal_failure(&mut self, detail: &str) -> Action {
        let root = Rc::clone(&self.root);
        if let Some(push) = self.push.as_mut() {
            error!("request {}: {detail}", push.request_id);
            let answer = push.gate.fail_internal(detail);
            push.respond(&root, &answer);
        }
        Action::Pause
    }
}

impl Push {
    /// Sends the hold wait when the gate asks for one (an open held push whose pack was read
    /// to its end); a wait that cannot be sent ends as a hold refusal at once.
    fn ask_hold_wait(&mut self, root: &GateRoot) {
        let Some(request) = self.gate.hold_wait_request() else {
            return;
        };
        info!(
            "request {}: held for {} ticket(s), waiting up to {} ms for a reviewer",
            self.request_id,
            request.tickets.len(),
            request.wait_ms
        );
        let approval = &root.config.config.approval;
        // The service answers after wait_ms at the latest; the callout's own timeout is the
        // margin for that answer to arrive.
        let timeout = Duration::from_millis(request.wait_ms.saturating_add(approval.timeout_ms));
        self.hold_token = dispatch_json(root, HOLD_WAIT_PATH, &request, timeout, &self.request_id);
        if self.hold_token.is_none() {
            match self.gate.on_hold_wait(CalloutResult::Failed) {
                ResumeAction::Respond(answer) => self.respond(root, &answer),
                ResumeAction::Nothing | ResumeAction::Resume(_) => {}
            }
        }
    }

    /// Lets the upstream's held response headers go, once the push is let through.
    fn release_response(&mut self) {
        if self.response_paused && self.gate.is_forwarding() {
            self.response_paused = false;
            if !host::resume_response() {
                error!("request {}: could not resume the response", self.request_id);
            }
        }
    }

    /// Answers the client with a receive-pack result and records the outcome.
    fn respond(&mut self, root: &GateRoot, answer: &[u8]) {
        self.record(root);
        self.answered = true;
        if root.audit.is_some() {
            self.sent = answer.to_vec();
        }
        let headers = [
            ("content-type", RESULT_CONTENT_TYPE),
            ("cache-control", "no-cache"),
        ];
        if !host::send_response(200, &headers, answer) {
            error!("request {}: could not send the answer", self.request_id);
        }
    }

    /// Records the outcome once: filter state for the access log, a counter, one log line.
    fn record(&mut self, root: &GateRoot) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let outcome = self.gate.outcome();
        let label = self.gate.decision_label();
        if !host::set_property(&[DECISION_PROPERTY], label.as_bytes()) {
            warn!("request {}: could not record the decision", self.request_id);
        }
        let metrics = &root.metrics;
        match outcome {
            Outcome::Forwarded | Outcome::ForwardedOnFailure => host::increment(metrics.forwarded),
            Outcome::Refused { .. } => host::increment(metrics.refused),
            Outcome::Probe | Outcome::Empty => host::increment(metrics.probes),
            Outcome::Incomplete => {}
        }
        if self.gate.service_failed() {
            host::increment(metrics.approval_failures);
        }
        // Findings and limits, never a secret's value.
        for line in self.gate.scan_log_lines() {
            warn!("request {}: {line}", self.request_id);
        }
        if self.gate.scan_report().is_some_and(|r| r.has_findings()) {
            host::increment(metrics.secret_pushes);
        }
        if self.gate.passed_scan_limit() {
            host::increment(metrics.scan_limit_passes);
        }
        info!(
            "request {} repository {} push {} after {} bytes",
            self.request_id,
            self.repository,
            label,
            self.gate.received()
        );
    }
}

/// Sends the verdict request; returns the callout token, or `None` if it could not be sent.
fn dispatch_verdict_request(
    root: &GateRoot,
    request: &VerdictRequest,
    request_id: &str,
) -> Option<u32> {
    // Config validation keeps the timeout in 1..=60000 ms: never 0, which means no timeout.
    let timeout = Duration::from_millis(root.config.config.approval.timeout_ms.max(1));
    dispatch_json(root, VERDICTS_PATH, request, timeout, request_id)
}

/// POSTs `request` as JSON to `path` on the approval service, with the service's token;
/// returns the callout token, or `None` if it could not be sent.
fn dispatch_json(
    root: &GateRoot,
    path: &str,
    request: &impl serde::Serialize,
    timeout: Duration,
    request_id: &str,
) -> Option<u32> {
    let body = match serde_json::to_vec(request) {
        Ok(body) => body,
        Err(err) => {
            error!("request {request_id}: cannot encode the request to {path}: {err}");
            return None;
        }
    };
    let approval = &root.config.config.approval;
    let headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", approval.authority.as_str()),
        ("content-type", "application/json"),
    ];
    let headers = service_token::add_header(headers, root.service_token.as_ref());
    match proxy_wasm::hostcalls::dispatch_http_call(
        &approval.cluster,
        headers,
        Some(&body),
        vec![],
        timeout,
    ) {
        Ok(token) => Some(token),
        Err(status) => {
            error!(
                "request {request_id}: callout to cluster {} failed: {status:?}",
                approval.cluster
            );
            None
        }
    }
}

/// The host's clock in milliseconds since the epoch; 0 if it cannot be read (a scan's time
/// cap then never fires, which the byte caps still bound).
fn now_ms() -> u64 {
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A request header as text (lossy), read in the request-headers phase only.
fn header_text(name: &str) -> Option<String> {
    host::get_header(MapType::HttpRequestHeaders, name)
        .map(|value| String::from_utf8_lossy(&value).into_owned())
}

/// Every `content-encoding` value, joined, so that a repeated header is not missed
/// (Envoy's single-value getter returns only the first, envoy-wasm.md §8.10).
fn content_encoding() -> BodyEncoding {
    let Some(headers) = host::get_headers(MapType::HttpRequestHeaders) else {
        // The headers cannot be read: assume the worst, so the push is refused unread.
        return BodyEncoding::Other("unreadable".into());
    };
    let values: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, value)| String::from_utf8_lossy(value).trim().to_owned())
        .collect();
    if values.is_empty() {
        BodyEncoding::Identity
    } else {
        BodyEncoding::from_header(Some(&values.join(", ")))
    }
}

/// Reads the identity from jwt_authn's metadata, one leaf claim at a time (envoy-wasm.md §4):
/// a nested claim such as `act.sub` by its own path into the payload struct.
fn read_identity(config: &GateConfig) -> Option<Identity> {
    let identity = &config.config.identity;
    let claim = |path: &[&str]| {
        let mut full = vec![
            "metadata",
            "filter_metadata",
            identity.metadata_namespace.as_str(),
            identity.payload_key.as_str(),
        ];
        full.extend_from_slice(path);
        host::get_property(&full)
    };
    identity.identity(&claim)
}
