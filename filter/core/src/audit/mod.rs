//! The audit record: one [`GateEvent`] for every request the gate instance sees, git or not,
//! passed through or gated, and the per-worker queue that takes the events to the approval
//! service (`POST /v1/events`).
//!
//! An [`EventBuilder`] is made from the request's headers and fed as the request goes by:
//!
//! - the request body of an upload-pack RPC ([`request`]: the v2 command, `want`s,
//!   `ref-prefix`es and `want-ref`s; other bodies are only counted);
//! - the response body as the client gets it, after masking ([`response`]: advertised refs,
//!   the upstream's report-status, side-band 2/3 and `ERR` text, a fetched pack's header;
//!   pack data is skipped unread);
//! - at the end, what the gate knows of a push ([`PushRecord`]: updates, options, verdicts,
//!   findings, the pack summary) and the final status.
//!
//! Every list is capped (`audit.max_refs`, `audit.max_wants`, `audit.max_shown_bytes`), and a
//! list that was cut says so in [`GateEvent::notes`]. Nothing here sees a secret's value:
//! findings are the redacted wire form, and the response is read after masking.
//!
//! The finished event goes into the worker's [`EventQueue`], from which the root context sends
//! one [`crate::api::EventBatch`] at a time.
//!
//! ```
//! use gitgate_core::audit::{AuditSection, EventBuilder, RequestEnd, RequestStart};
//! use gitgate_core::api::EventKind;
//!
//! let start = RequestStart {
//!     request_id: "r-1".into(),
//!     started_ms: 1_000,
//!     method: "GET",
//!     path: "/demo.git/info/refs?service=git-upload-pack",
//!     prefix: "/",
//!     git_protocol: Some("version=2"),
//!     content_encoding: None,
//!     identity: None,
//! };
//! let mut builder = EventBuilder::start(start, &AuditSection::default());
//! builder.on_response_headers(Some("application/x-git-upload-pack-advertisement"));
//! builder.on_response_body(b"001e# service=git-upload-pack\n0000");
//! let event = builder.finish(RequestEnd { ended_ms: 1_012, status: Some(200), ..RequestEnd::default() });
//! assert_eq!(event.kind, Some(EventKind::Read));
//! assert_eq!(event.service, "info-refs");
//! assert_eq!(event.protocol_version, 2);
//! assert_eq!(event.duration_ms, 12);
//! ```

pub mod config;
pub mod queue;
pub mod request;
pub mod response;
mod skim;

pub use config::AuditSection;
pub use queue::{Enqueued, EventQueue, QueueLimits, QueueStats};
pub use skim::SkimError;

use std::sync::Arc;

use crate::api::{
    EventKind, GateEvent, Identity, PackSummary, RefUpdate, RefVerdict, SecretFinding,
};
use crate::push_scan::Redactor;
use crate::request::{self as git_request, GitRequest, Service};
use request::{RequestEncoding, RequestObserver};
use response::{ResponseKind, ResponseObserver};

/// A list that keeps its first `cap` items and counts the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capped<T> {
    /// The items kept, in order.
    pub items: Vec<T>,
    cap: usize,
    /// Items offered, kept or not.
    pub seen: u64,
}

impl<T> Capped<T> {
    /// An empty list keeping at most `cap` items.
    pub fn new(cap: usize) -> Capped<T> {
        Capped {
            items: Vec::new(),
            cap,
            seen: 0,
        }
    }

    /// Offers an item.
    pub fn push(&mut self, item: T) {
        self.seen = self.seen.saturating_add(1);
        if self.items.len() < self.cap {
            self.items.push(item);
        }
    }

    /// Items offered but not kept.
    pub fn left_out(&self) -> u64 {
        self.seen.saturating_sub(self.items.len() as u64)
    }
}

/// What the adapter read from the request's headers.
#[derive(Debug, Clone, Default)]
pub struct RequestStart<'a> {
    /// Envoy's request id (`x-request-id`), as in the access log.
    pub request_id: String,
    /// When the headers arrived, milliseconds since the epoch.
    pub started_ms: u64,
    /// `:method`.
    pub method: &'a str,
    /// `:path`, query included.
    pub path: &'a str,
    /// The gate's normalized path prefix.
    pub prefix: &'a str,
    /// The `Git-Protocol` header.
    pub git_protocol: Option<&'a str>,
    /// The `Content-Encoding` header (every value, joined by `,`).
    pub content_encoding: Option<&'a str>,
    /// Who asked, from the validated token.
    pub identity: Option<Identity>,
}

/// What the gate knows about a push at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushRecord {
    /// Ref updates, in the order sent.
    pub updates: Vec<RefUpdate>,
    /// Push options, in the order sent.
    pub push_options: Vec<String>,
    /// One verdict per update.
    pub verdicts: Vec<RefVerdict>,
    /// The decision label, as in the access log.
    pub decision: String,
    /// Secrets found, redacted.
    pub findings: Vec<SecretFinding>,
    /// What the pack carried.
    pub pack: Option<PackSummary>,
    /// Body bytes received from the client.
    pub received: u64,
    /// The gate's masking of secrets in short strings (scanning on): applied to the ref names
    /// and lines this builder read itself (the request's commands, the report-status), which
    /// the gate's own accessors already hand out masked.
    pub mask: Option<TextMask>,
}

/// A shared [`Redactor`]; equal when it is the same one (events compare in tests).
#[derive(Debug, Clone)]
pub struct TextMask(pub Arc<Redactor>);

impl PartialEq for TextMask {
    fn eq(&self, other: &TextMask) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TextMask {}

/// What the adapter knows at the end of the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestEnd {
    /// When the request ended, milliseconds since the epoch.
    pub ended_ms: u64,
    /// The status sent to the client.
    pub status: Option<u16>,
    /// The gate's record of a push.
    pub push: Option<PushRecord>,
    /// True when the gate answered the request itself (its report-status is then the gate's,
    /// not the upstream's).
    pub answered_by_gate: bool,
    /// Secrets masked in the response.
    pub masked: u64,
    /// Secrets found in the response (a fetch scan), redacted.
    pub response_findings: Vec<SecretFinding>,
    /// A summary of the pack sent back, when something read it whole (better than the
    /// header count this module reads).
    pub response_pack: Option<PackSummary>,
}

/// Per-event caps, from the `audit` section.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_refs: usize,
    max_wants: usize,
    max_shown_bytes: usize,
}

/// Which git exchange a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exchange {
    InfoRefs { smart: bool },
    UploadPack,
    ReceivePack,
    Other,
}

/// One request's event as it is assembled.
#[derive(Debug)]
pub struct EventBuilder {
    event: GateEvent,
    limits: Limits,
    exchange: Exchange,
    request: Option<RequestObserver>,
    response: Option<ResponseObserver>,
}

/// The `Content-Type` prefix of every smart-HTTP body (git-smart-http.md §2).
const GIT_CONTENT_TYPE_PREFIX: &str = "application/x-git-";

impl EventBuilder {
    /// Starts the event of a request with these headers.
    pub fn start(start: RequestStart<'_>, section: &AuditSection) -> EventBuilder {
        let mut event = GateEvent {
            request_id: start.request_id,
            kind: Some(EventKind::Read),
            started_ms: start.started_ms,
            identity: start.identity,
            method: start.method.to_owned(),
            path: redact_query(start.path),
            protocol_version: start.git_protocol.map_or(0, protocol_version),
            ..GateEvent::default()
        };
        let (exchange, repository) =
            match git_request::classify(start.method, start.path, start.prefix) {
                Ok(GitRequest::InfoRefs {
                    repository,
                    service,
                }) => {
                    event.advertised_service = service.map(|s| service_name(s).to_owned());
                    (
                        Exchange::InfoRefs {
                            smart: service.is_some(),
                        },
                        Some(repository),
                    )
                }
                Ok(GitRequest::UploadPack { repository }) => {
                    (Exchange::UploadPack, Some(repository))
                }
                Ok(GitRequest::ReceivePack { repository }) => {
                    event.kind = Some(EventKind::Write);
                    (Exchange::ReceivePack, Some(repository))
                }
                Ok(GitRequest::NotGit) => (Exchange::Other, None),
                Err(err) => {
                    event.notes.push(format!("path: {err}"));
                    (Exchange::Other, None)
                }
            };
        event.repository = repository;
        event.service = match exchange {
            Exchange::InfoRefs { .. } => "info-refs",
            Exchange::UploadPack => "upload-pack",
            Exchange::ReceivePack => "receive-pack",
            Exchange::Other => "other",
        }
        .to_owned();
        let request = (exchange == Exchange::UploadPack).then(|| {
            RequestObserver::new(
                RequestEncoding::from_header(start.content_encoding),
                section.max_refs,
                section.max_wants,
                section.max_request_bytes,
            )
        });
        EventBuilder {
            event,
            limits: Limits {
                max_refs: section.max_refs,
                max_wants: section.max_wants,
                max_shown_bytes: section.max_shown_bytes,
            },
            exchange,
            request,
            response: None,
        }
    }

    /// Adds a note to the event.
    pub fn note(&mut self, note: &str) {
        self.event.notes.push(note.to_owned());
    }

    /// Read or write.
    pub fn kind(&self) -> EventKind {
        self.event.kind.unwrap_or(EventKind::Read)
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.event.request_id
    }

    /// True while the request body is worth reading (an upload-pack body not read to its
    /// budget); otherwise the adapter only counts it with [`EventBuilder::count_request_body`].
    pub fn reads_request_body(&self) -> bool {
        self.request
            .as_ref()
            .is_some_and(RequestObserver::wants_more)
    }

    /// The next chunk of the request body, as sent by the client.
    pub fn on_request_body(&mut self, chunk: &[u8]) {
        self.count_request_body(chunk.len() as u64);
        if let Some(request) = &mut self.request {
            request.feed(chunk);
        }
    }

    /// Counts request body bytes that were not read.
    pub fn count_request_body(&mut self, len: u64) {
        self.event.bytes_in = self.event.bytes_in.saturating_add(len);
    }

    /// The response headers, with their `Content-Type`. A second call (a local reply that
    /// replaces held upstream headers) starts the response over.
    pub fn on_response_headers(&mut self, content_type: Option<&str>) {
        let content_type = content_type.unwrap_or_default().trim().to_ascii_lowercase();
        let git = content_type.starts_with(GIT_CONTENT_TYPE_PREFIX);
        let kind = match self.exchange {
            Exchange::InfoRefs { smart: true } if git => ResponseKind::Advertisement,
            Exchange::UploadPack if git => ResponseKind::UploadPack,
            Exchange::ReceivePack if git => ResponseKind::ReceivePack,
            _ if content_type.starts_with("text/") => ResponseKind::Text,
            _ => ResponseKind::Opaque,
        };
        self.response = Some(ResponseObserver::new(
            kind,
            self.limits.max_refs,
            self.limits.max_shown_bytes,
        ));
    }

    /// How many of the next response bytes need not be read (see
    /// [`ResponseObserver::skippable`]); everything when no response headers came.
    pub fn response_skippable(&self) -> u64 {
        self.response
            .as_ref()
            .map_or(u64::MAX, ResponseObserver::skippable)
    }

    /// How many response bytes are worth reading next, when the observer can tell.
    pub fn response_wanted(&self) -> Option<usize> {
        self.response.as_ref().and_then(ResponseObserver::wanted)
    }

    /// Response body bytes seen so far (read or skipped).
    pub fn response_seen(&self) -> u64 {
        self.response.as_ref().map_or(0, ResponseObserver::seen)
    }

    /// Passes over `len` response bytes that were not read.
    pub fn skip_response(&mut self, len: u64) {
        match &mut self.response {
            Some(response) => response.skip(len),
            None => self.event.bytes_out = self.event.bytes_out.saturating_add(len),
        }
    }

    /// The next response bytes, as the client gets them.
    pub fn on_response_body(&mut self, bytes: &[u8]) {
        match &mut self.response {
            Some(response) => response.feed(bytes),
            None => {
                self.event.bytes_out = self.event.bytes_out.saturating_add(bytes.len() as u64);
            }
        }
    }

    /// The finished event.
    pub fn finish(mut self, end: RequestEnd) -> GateEvent {
        let mut event = std::mem::take(&mut self.event);
        event.duration_ms = end.ended_ms.saturating_sub(event.started_ms);
        event.status = end.status;
        event.masked = end.masked;

        // Request side.
        let mut refs = Capped::new(self.limits.max_refs);
        let mut wants = Capped::new(self.limits.max_wants);
        if let Some(request) = self.request.take() {
            let (lines, notes) = request.finish();
            event.notes.extend(notes);
            if let Some(command) = lines.command {
                // The v2 command is part of what was asked; the service name stays the RPC.
                event.notes.push(format!("command: {command}"));
            }
            if !lines.prefixes.items.is_empty() {
                let more = match lines.prefixes.left_out() {
                    0 => String::new(),
                    n => format!(" and {n} more"),
                };
                event.notes.push(format!(
                    "ref-prefix: {}{more}",
                    lines.prefixes.items.join(" ")
                ));
            }
            let left_out = lines.refs.left_out();
            for name in lines.refs.items {
                refs.push(name);
            }
            refs.seen = refs.seen.saturating_add(left_out);
            wants = lines.wants;
        }

        // Response side.
        let mut fetched = None;
        if let Some(response) = self.response.take() {
            event.bytes_out = event.bytes_out.saturating_add(response.seen());
            let (record, notes) = response.finish();
            event.notes.extend(notes);
            let left_out = record.refs.left_out();
            for name in record.refs.items {
                refs.push(name);
            }
            refs.seen = refs.seen.saturating_add(left_out);
            if let Some(error) = record.unpack_error
                && end.answered_by_gate
            {
                event.notes.push(format!("gate answer: unpack {error}"));
            }
            if !end.answered_by_gate {
                event.upstream = record.outcomes;
            }
            event.shown = record.shown.lines;
            fetched = record.pack;
        }
        if refs.left_out() > 0 {
            event.notes.push(format!(
                "refs: {} seen, first {} kept",
                refs.seen,
                refs.items.len()
            ));
        }
        if wants.left_out() > 0 {
            event.notes.push(format!(
                "wants: {} seen, first {} kept",
                wants.seen,
                wants.items.len()
            ));
        }
        event.refs = refs.items;
        event.wants = wants.items;

        // What the gate and the masker know.
        let mask = end.push.as_ref().and_then(|push| push.mask.clone());
        if let Some(push) = end.push {
            event.updates = push.updates;
            event.push_options = push.push_options;
            event.verdicts = push.verdicts;
            event.decision = Some(push.decision);
            event.findings = push.findings;
            event.pack = push.pack;
            // The gate counts every body byte, also those it did not hand to this builder.
            event.bytes_in = event.bytes_in.max(push.received);
        }
        event.findings.extend(end.response_findings);
        redact_commit_subjects(&mut event);
        if let Some(TextMask(redactor)) = &mask {
            mask_read_text(&mut event, redactor);
        }
        clean_text_fields(&mut event);
        if event.pack.is_none() {
            event.pack = end.response_pack.or_else(|| {
                fetched.map(|pack| PackSummary {
                    objects: pack.objects.unwrap_or_default(),
                    bytes: pack.bytes,
                    ..PackSummary::default()
                })
            });
        }
        event
    }
}

/// The longest request id, repository, path or identity field sent, in characters: what the
/// service accepts (a longer or control-laden field would have the whole batch refused).
pub const MAX_FIELD_CHARS: usize = 1024;

/// Escapes control characters and cuts the field to [`MAX_FIELD_CHARS`]: a repository decoded
/// from `%0a` in the path, or an odd claim, must not make the event unstorable.
fn clean(text: &mut String) {
    if text.chars().count() <= MAX_FIELD_CHARS && !text.chars().any(char::is_control) {
        return;
    }
    let escaped: String = text
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .take(MAX_FIELD_CHARS)
        .collect();
    *text = escaped;
}

/// [`clean`] on every text field the service checks.
fn clean_text_fields(event: &mut GateEvent) {
    clean(&mut event.request_id);
    if event.request_id.is_empty() {
        // Envoy always sets one; an event without it is still worth keeping.
        event.request_id = "-".into();
    }
    clean(&mut event.path);
    if let Some(repository) = &mut event.repository {
        clean(repository);
    }
    if let Some(identity) = &mut event.identity {
        clean(&mut identity.subject);
        for field in [
            &mut identity.acting_for,
            &mut identity.token_id,
            &mut identity.session,
        ]
        .into_iter()
        .flatten()
        {
            clean(field);
        }
    }
}

/// Masks secrets in what the builder read from the bodies itself: a ref name with a token in
/// it is in the request's commands and in the report-status lines too.
fn mask_read_text(event: &mut GateEvent, redactor: &Redactor) {
    let texts = event
        .refs
        .iter_mut()
        .chain(&mut event.shown)
        .chain(&mut event.notes);
    for text in texts {
        if let Some(masked) = redactor.mask_bytes(text.as_bytes()) {
            *text = masked;
        }
    }
    for outcome in &mut event.upstream {
        outcome.refname = redactor.masked(&outcome.refname);
        if let Some(reason) = &mut outcome.reason {
            *reason = redactor.masked(reason);
        }
    }
}

/// What replaces the subject of a commit whose message holds a secret.
pub const REDACTED_SUBJECT: &str = "[redacted: a secret was found in this commit message]";

/// A commit message with a finding must not bring the secret into the record through the
/// pack summary's subject line: the subject of every commit a finding names is replaced.
fn redact_commit_subjects(event: &mut GateEvent) {
    let Some(pack) = &mut event.pack else {
        return;
    };
    for commit in &mut pack.commits {
        let named = event.findings.iter().any(|f| {
            f.kind.as_deref() == Some("commit") && f.object.as_deref() == Some(commit.id.as_str())
        });
        if named {
            commit.subject = REDACTED_SUBJECT.to_owned();
        }
    }
}

/// The wire name of a service.
fn service_name(service: Service) -> &'static str {
    match service {
        Service::UploadPack => "git-upload-pack",
        Service::ReceivePack => "git-receive-pack",
    }
}

/// The version in a `Git-Protocol` header (`version=2`, possibly among other `:`-separated
/// keys, gitprotocol-v2 "HTTP Transport"); 0 when absent or unreadable.
fn protocol_version(header: &str) -> u8 {
    header
        .split(':')
        .find_map(|part| part.trim().strip_prefix("version="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The path with every query value but `service` replaced, so that a token or password put in
/// the query never reaches the record.
fn redact_query(path: &str) -> String {
    let Some((path, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("service", value)) => format!("service={value}"),
            Some((name, _)) => format!("{name}=<redacted>"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start<'a>(method: &'a str, path: &'a str) -> RequestStart<'a> {
        RequestStart {
            request_id: "r".into(),
            started_ms: 10,
            method,
            path,
            prefix: "/",
            ..RequestStart::default()
        }
    }

    #[test]
    fn a_token_in_a_ref_name_is_masked_in_the_report_status_the_builder_read() {
        use gitgate_scan::RuleSet;
        use gitgate_scan::fake::{FakeRng, github_classic};

        let token = github_classic(&mut FakeRng::new(31));
        let mut builder = EventBuilder::start(
            start("POST", "/demo.git/git-receive-pack"),
            &AuditSection::default(),
        );
        builder.on_response_headers(Some("application/x-git-receive-pack-result"));
        let mut body = Vec::new();
        for line in [
            "unpack ok\n".to_owned(),
            format!("ng refs/heads/{token} hook declined\n"),
        ] {
            body.extend(format!("{:04x}", line.len() + 4).into_bytes());
            body.extend(line.into_bytes());
        }
        body.extend_from_slice(b"0000");
        builder.on_response_body(&body);
        let rules = Arc::new(RuleSet::builtin().expect("builtin rules"));
        let push = PushRecord {
            mask: Some(TextMask(Arc::new(Redactor::new(rules)))),
            ..PushRecord::default()
        };
        let event = builder.finish(RequestEnd {
            push: Some(push),
            ..RequestEnd::default()
        });
        let json = serde_json::to_string(&event).expect("json");
        assert!(!json.contains(&token), "{json}");
        assert_eq!(
            event.upstream[0].refname,
            "refs/heads/ghp_****[gitgate:github-pat-classic]"
        );
    }

    #[test]
    fn a_push_is_a_write_and_carries_what_the_gate_knew() {
        let mut builder = EventBuilder::start(
            start("POST", "/demo.git/git-receive-pack"),
            &AuditSection::default(),
        );
        assert_eq!(builder.kind(), EventKind::Write);
        builder.count_request_body(100);
        let push = PushRecord {
            decision: "forwarded".into(),
            received: 120,
            push_options: vec!["ci.skip".into()],
            ..PushRecord::default()
        };
        let event = builder.finish(RequestEnd {
            ended_ms: 15,
            status: Some(200),
            push: Some(push),
            ..RequestEnd::default()
        });
        assert_eq!(event.service, "receive-pack");
        assert_eq!(event.repository.as_deref(), Some("demo.git"));
        assert_eq!(event.decision.as_deref(), Some("forwarded"));
        assert_eq!(event.push_options, ["ci.skip"]);
        assert_eq!(event.bytes_in, 120);
        assert_eq!(event.duration_ms, 5);
    }

    #[test]
    fn a_non_git_request_is_a_read_of_service_other() {
        let mut builder =
            EventBuilder::start(start("GET", "/favicon.ico"), &AuditSection::default());
        builder.on_response_headers(Some("image/png"));
        assert_eq!(builder.response_skippable(), u64::MAX);
        builder.skip_response(300);
        let event = builder.finish(RequestEnd::default());
        assert_eq!(event.service, "other");
        assert_eq!(event.kind, Some(EventKind::Read));
        assert_eq!(event.bytes_out, 300);
        assert!(event.repository.is_none());
    }

    #[test]
    fn a_malformed_path_is_recorded_with_a_note() {
        let event = EventBuilder::start(start("GET", "/a%zz"), &AuditSection::default())
            .finish(RequestEnd::default());
        assert_eq!(event.service, "other");
        assert_eq!(
            event.notes,
            ["path: bad percent-encoding at byte 2 of the path"]
        );
    }

    #[test]
    fn query_values_other_than_the_service_are_redacted() {
        assert_eq!(
            redact_query("/r.git/info/refs?service=git-upload-pack&token=s3cr3t"),
            "/r.git/info/refs?service=git-upload-pack&token=<redacted>"
        );
        assert_eq!(redact_query("/plain"), "/plain");
    }

    #[test]
    fn the_protocol_version_comes_from_the_git_protocol_header() {
        assert_eq!(protocol_version("version=2"), 2);
        assert_eq!(protocol_version("object-format=sha256:version=1"), 1);
        assert_eq!(protocol_version("nonsense"), 0);
    }

    #[test]
    fn the_gates_own_answer_is_shown_but_not_taken_for_the_upstreams() {
        let mut builder = EventBuilder::start(
            start("POST", "/demo.git/git-receive-pack"),
            &AuditSection::default(),
        );
        builder.on_response_headers(Some("application/x-git-receive-pack-result"));
        builder.on_response_body(b"000eunpack ok\n0026ng refs/heads/main gitgate:hold:x\n0000");
        let event = builder.finish(RequestEnd {
            answered_by_gate: true,
            ..RequestEnd::default()
        });
        assert!(event.upstream.is_empty());
        assert_eq!(event.shown, ["ng refs/heads/main gitgate:hold:x"]);
    }

    #[test]
    fn control_characters_in_a_repository_are_escaped_so_the_event_stays_storable() {
        let event = EventBuilder::start(
            start("GET", "/de%0amo.git/info/refs?service=git-upload-pack"),
            &AuditSection::default(),
        )
        .finish(RequestEnd::default());
        assert_eq!(event.repository.as_deref(), Some("de\\nmo.git"));
        let mut long = "x".repeat(MAX_FIELD_CHARS + 10);
        clean(&mut long);
        assert_eq!(long.len(), MAX_FIELD_CHARS);
    }

    #[test]
    fn a_commit_subject_holding_a_secret_is_redacted() {
        let builder = EventBuilder::start(
            start("POST", "/demo.git/git-receive-pack"),
            &AuditSection::default(),
        );
        let commit = |id: &str| crate::api::CommitSummary {
            id: id.into(),
            subject: format!("subject of {id}"),
            ..crate::api::CommitSummary::default()
        };
        let finding = SecretFinding {
            rule: "github-pat-classic".into(),
            kind: Some("commit".into()),
            object: Some("a".repeat(40)),
            line: Some(1),
            offset: 0,
            path: None,
            commit: None,
            fingerprint: "0".repeat(32),
        };
        let push = PushRecord {
            findings: vec![finding],
            pack: Some(PackSummary {
                commits: vec![commit(&"a".repeat(40)), commit(&"b".repeat(40))],
                ..PackSummary::default()
            }),
            ..PushRecord::default()
        };
        let event = builder.finish(RequestEnd {
            push: Some(push),
            ..RequestEnd::default()
        });
        let commits = event.pack.expect("a pack").commits;
        assert_eq!(commits[0].subject, REDACTED_SUBJECT);
        assert_eq!(commits[1].subject, format!("subject of {}", "b".repeat(40)));
    }

    #[test]
    fn capped_lists_count_what_they_leave_out() {
        let mut list = Capped::new(2);
        for i in 0..5 {
            list.push(i);
        }
        assert_eq!(list.items, [0, 1]);
        assert_eq!(list.left_out(), 3);
    }
}
