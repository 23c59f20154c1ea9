//! One push through the gate: the per-request state machine the filter drives.
//!
//! The adapter hands over each body chunk and the callout's answer; the gate says what to do
//! with the chunk and when to answer. The steps (envoy-wasm.md §9, git-smart-http.md §2):
//!
//! 1. Feed the body to the command parser, forwarding everything but the last
//!    [`TAIL_LEN`](crate::withhold::TAIL_LEN) bytes.
//! 2. When the command section is complete, ask the approval service once, and keep streaming
//!    while waiting. Until the verdict is known, the pack is framed entry by entry so that a
//!    body whose pack ends before the body does (which would let the upstream act on the refs
//!    before the verdict) is refused.
//! 3. On a refusal known early, drop every further chunk but keep reading: answering before the
//!    body is read loses the answer ("Send failure: Broken pipe").
//! 4. At the end of the body: forward the withheld tail (allowed), answer with a report-status
//!    (refused), or wait for the verdict with the tail still withheld.
//!
//! A body of only `0000` is a probe and passes without a callout. Nothing that cannot be parsed
//! is ever forwarded as a push.
//!
//! With secret scanning on ([`PushGate::scanning`]), the pack is read object by object to its
//! end whatever the verdict ([`crate::push_scan`]), and the tail stays withheld until the scan
//! is done. At the end of the body the two are composed: a push with findings is refused for
//! every ref (`gitgate:deny:secret-detected`), unless the pusher asked for a bypass; then the
//! callout, held back until now, carries the findings and the service decides (it holds the
//! push for the security reviewers). A scanning limit refuses or passes with an audit record,
//! as configured; otherwise the service's verdict stands.
//!
//! Hold and forward ([`PushGate::hold_window`]): when the service holds a push and denies
//! nothing, the push is not refused at once. The pack goes on being read (framed or scanned) to
//! its end with its tail withheld; then the adapter sends the long poll
//! ([`PushGate::hold_wait_request`]) and hands its answer to [`PushGate::on_hold_wait`]:
//! every ticket approved releases the tail, and the approval is shown in front of the
//! upstream's answer ([`PushGate::take_response_notice`]); a denial refuses with the reviewer's
//! reason (`gitgate:deny:reviewer-denied`); anything else refuses with the hold message and the
//! ticket URL, as without a window.

use std::rc::Rc;

use crate::api::{
    HoldWaitRequest, Identity, PackSummary, RefUpdate, RefVerdict, SecretFinding, VerdictRequest,
    VerdictResponse,
};
use crate::config::FailureMode;
use crate::decision::{
    self, BAD_REQUEST, CalloutResult, Decision, Hold, INTERNAL, NO_IDENTITY, Refusal,
    ServiceFailure, UNSUPPORTED_ENCODING, WaitOutcome,
};
use crate::gzip::GzipSection;
use crate::pack::{EntryCounts, PackFramer};
use crate::push_scan::summary::DEFAULT_MAX_SUMMARY_COMMITS;
use crate::push_scan::{self, Bypass, Clock, OnLimit, PushScan, ScanReport, SecretScanning};
use crate::receive_pack::{CommandSection, Parser, Progress};
use crate::report::{self, ReportMode};
use crate::withhold::TailWithholder;

/// What the gate knows about the request from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMeta {
    /// Envoy's request id.
    pub request_id: String,
    /// The repository path below the prefix.
    pub repository: String,
    /// The pusher, or `None` when the token claims were missing.
    pub identity: Option<Identity>,
}

/// The body's `Content-Encoding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No encoding (absent or `identity`).
    Identity,
    /// `gzip` or `x-gzip`: inspected for the report only, never forwarded.
    Gzip,
    /// Anything else: refused unread.
    Other(String),
}

impl BodyEncoding {
    /// Reads a `Content-Encoding` value (all values joined by `,` if the header was repeated).
    pub fn from_header(value: Option<&str>) -> BodyEncoding {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return BodyEncoding::Identity;
        };
        if value.eq_ignore_ascii_case("identity") {
            BodyEncoding::Identity
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            BodyEncoding::Gzip
        } else {
            BodyEncoding::Other(value.to_owned())
        }
    }
}

/// What to do with the current body chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Replace the chunk with these bytes (possibly none) and continue.
    Forward(Vec<u8>),
    /// End of body with the verdict pending: replace the chunk with nothing and pause.
    Wait,
    /// Answer the client: HTTP 200 with this receive-pack result body.
    Respond(Vec<u8>),
}

/// What to do when the verdict arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeAction {
    /// Nothing now: the body is still streaming (the decision applies to the next chunks).
    Nothing,
    /// Put these bytes in front of the buffered body and resume the request.
    Resume(Vec<u8>),
    /// Answer the client: HTTP 200 with this receive-pack result body.
    Respond(Vec<u8>),
}

/// How the push ended, for logs, filter state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished (for example, the client went away while waiting).
    Incomplete,
    /// Forwarded after every update was allowed.
    Forwarded,
    /// Forwarded because the service failed and `failure_mode` is `open`.
    ForwardedOnFailure,
    /// Refused, with the code that caused it.
    Refused {
        /// The code, e.g. `gitgate:hold:protected-branch`.
        code: String,
    },
    /// A probe (`0000`) or a command list without commands: passed without a callout.
    Probe,
    /// An empty body: passed.
    Empty,
}

impl Outcome {
    /// A short label for the access log: `forwarded`, `refused:<code>`, `probe`, ...
    pub fn label(&self) -> String {
        match self {
            Outcome::Incomplete => "incomplete".into(),
            Outcome::Forwarded => "forwarded".into(),
            Outcome::ForwardedOnFailure => "forwarded:failure-mode-open".into(),
            Outcome::Refused { code } => format!("refused:{code}"),
            Outcome::Probe => "probe".into(),
            Outcome::Empty => "empty".into(),
        }
    }
}

/// Which layer reads the next body bytes.
#[derive(Debug)]
enum Inspect {
    /// The command section, uncompressed.
    Commands(Box<Parser>),
    /// The command section inside a gzip stream.
    Gzip(Box<GzipSection>),
    /// The pack, while the verdict is pending.
    Pack(Box<PackFramer>),
    /// The pack, framed and scanned for secrets to its end.
    Scan(Box<PushScan>),
    /// After a delete-only or empty command section: no byte may follow.
    NothingMore,
    /// Nothing left to inspect.
    Done,
}

/// Where the verdict stands.
#[derive(Debug, Clone)]
enum Verdict {
    /// No callout made (command section incomplete, or empty).
    Open,
    /// The callout is in flight for these updates.
    Pending { updates: Vec<crate::api::RefUpdate> },
    /// Decided.
    Decided(Decision),
    /// Held by the service (nothing denied) with the hold window on: the pack is read to its
    /// end with its tail withheld, then the gate waits for the reviewers (hold and forward).
    Holding {
        hold: Box<Hold>,
        /// When the wait was asked for (the clock's milliseconds, 0 without a clock); `None`
        /// until then.
        asked_at: Option<u64>,
    },
}

/// The state of one push.
#[derive(Debug)]
pub struct PushGate {
    meta: PushMeta,
    failure_mode: FailureMode,
    inspect: Inspect,
    verdict: Verdict,
    tail: TailWithholder,
    /// How the client wants the answer, once its capabilities are known.
    mode: Option<ReportMode>,
    /// Ref names of the push as far as they are known, for refusals.
    refnames: Vec<String>,
    outcome: Outcome,
    service_failed: bool,
    ended: bool,
    answered: bool,
    /// Body bytes received so far.
    received: u64,
    /// Secret scanning, when on.
    secrets: Option<Rc<SecretScanning>>,
    /// The bypass the pusher asked for with a push option.
    bypass: Bypass,
    /// What the scan of the pack found, once the pack ended.
    scan_report: Option<ScanReport>,
    /// The callout held back until the pack is scanned (a push that asks for a bypass).
    deferred: Option<Box<VerdictRequest>>,
    /// True when the callout carried findings: only a service that reviewed them may let the
    /// push through.
    findings_sent: bool,
    /// True when a scanning limit was passed by `on_limit: pass-with-audit`.
    limit_passed: bool,
    /// The push's ref updates, once the command section is read.
    updates: Vec<RefUpdate>,
    /// The push options, once the command section is read.
    push_options: Vec<String>,
    /// The service's verdicts, when it gave a usable answer.
    received_verdicts: Option<Vec<RefVerdict>>,
    /// What the pack carries, once the walk of the pack ended.
    pack_summary: Option<PackSummary>,
    /// Commits kept at most in the pack summary.
    summary_commits: u32,
    /// The clock a scan's time limit is measured on; `None`: no time limit.
    clock: Option<Clock>,
    /// Absolute body offset of the pack, once the command section is read.
    pack_start: Option<u64>,
    /// What the framer walked (scanning off), as far as it went.
    framed: Option<EntryCounts>,
    /// How long an open held push waits for its reviewers, in ms; 0: hold and forward is off.
    hold_window_ms: u64,
    /// Lines to show in front of the upstream's answer (an approval given while the push was
    /// open); taken once.
    notice: Vec<String>,
    /// True when a reviewer released the push while it was open.
    released_in_window: bool,
}

impl PushGate {
    /// A gate for a push with these headers.
    pub fn new(meta: PushMeta, encoding: BodyEncoding, failure_mode: FailureMode) -> PushGate {
        let mut gate = PushGate {
            meta,
            failure_mode,
            inspect: Inspect::Commands(Box::default()),
            verdict: Verdict::Open,
            tail: TailWithholder::default(),
            mode: None,
            refnames: Vec::new(),
            outcome: Outcome::Incomplete,
            service_failed: false,
            ended: false,
            answered: false,
            received: 0,
            secrets: None,
            bypass: Bypass::None,
            scan_report: None,
            deferred: None,
            findings_sent: false,
            limit_passed: false,
            updates: Vec::new(),
            push_options: Vec::new(),
            received_verdicts: None,
            pack_summary: None,
            summary_commits: DEFAULT_MAX_SUMMARY_COMMITS,
            clock: None,
            pack_start: None,
            framed: None,
            hold_window_ms: 0,
            notice: Vec::new(),
            released_in_window: false,
        };
        match encoding {
            BodyEncoding::Identity => {}
            BodyEncoding::Gzip => {
                gate.inspect = Inspect::Gzip(Box::new(GzipSection::new(Parser::default())));
                gate.refuse(Refusal::all(&[], UNSUPPORTED_ENCODING, "gzip-encoded push"));
            }
            BodyEncoding::Other(name) => {
                gate.inspect = Inspect::Done;
                let detail = format!("content encoding {name:?}");
                gate.refuse(Refusal::all(&[], UNSUPPORTED_ENCODING, &detail));
            }
        }
        gate
    }

    /// Turns on secret scanning for this push with `settings` (compiled once per VM).
    pub fn scanning(mut self, settings: Rc<SecretScanning>) -> PushGate {
        self.secrets = Some(settings);
        self
    }

    /// Keeps at most `max` commits in the pack summary (`gate.max_summary_commits`).
    pub fn summary_commits(mut self, max: u32) -> PushGate {
        self.summary_commits = max;
        self
    }

    /// Measures the scan's time limit (`secrets.limits.max_scan_ms`) on `clock`, in
    /// milliseconds. The adapter passes the host's clock; without one the scan has no time cap.
    pub fn clock(mut self, clock: Clock) -> PushGate {
        self.clock = Some(clock);
        self
    }

    /// Turns hold and forward on (`approval.hold_window_ms`; 0 leaves it off): a push the
    /// service holds, with nothing denied, keeps its pack's end withheld and waits up to
    /// `window_ms` for the reviewers ([`PushGate::hold_wait_request`], [`PushGate::on_hold_wait`]).
    pub fn hold_window(mut self, window_ms: u64) -> PushGate {
        self.hold_window_ms = window_ms;
        self
    }

    /// Handles one body chunk. `dispatch` sends the verdict request and returns whether the
    /// callout was sent; it is called at most once per push.
    pub fn on_body(
        &mut self,
        chunk: &[u8],
        end_of_stream: bool,
        dispatch: &mut dyn FnMut(&VerdictRequest) -> bool,
    ) -> BodyAction {
        if self.answered || self.ended {
            // Nothing may come after the end; never forward stray bytes of a push.
            return BodyAction::Forward(Vec::new());
        }
        let start = self.received;
        self.received = self.received.saturating_add(chunk.len() as u64);
        self.inspect_chunk(chunk, start, dispatch);
        if end_of_stream {
            self.ended = true;
            self.finish_scan(dispatch);
            self.finish_body();
            self.summarise_framed();
        }

        // While the pack is being scanned, an early "allow" does not release the tail.
        let scanning = matches!(self.inspect, Inspect::Scan(_));
        match &self.verdict {
            Verdict::Decided(Decision::Forward) if !scanning => {
                let mut out = self.tail.take();
                out.extend_from_slice(chunk);
                BodyAction::Forward(out)
            }
            Verdict::Decided(Decision::Refuse(_)) if end_of_stream => {
                BodyAction::Respond(self.answer())
            }
            Verdict::Decided(Decision::Refuse(_)) => BodyAction::Forward(Vec::new()),
            _ if end_of_stream => {
                self.tail.hold(chunk);
                BodyAction::Wait
            }
            _ => BodyAction::Forward(self.tail.push(chunk)),
        }
    }

    /// Handles the callout's result.
    pub fn on_callout(&mut self, result: CalloutResult<'_>) -> ResumeAction {
        let Verdict::Pending { updates } = &self.verdict else {
            return ResumeAction::Nothing;
        };
        if self.deferred.is_some() {
            // Not asked yet: this answer is not for this push.
            return ResumeAction::Nothing;
        }
        let decision = match decision::from_callout(updates, result) {
            Ok(decision) => {
                self.received_verdicts = decision::verdicts_of(result);
                self.outcome = match &decision {
                    Decision::Forward => Outcome::Forwarded,
                    Decision::Refuse(refusal) => Outcome::Refused {
                        code: refusal.code.clone(),
                    },
                };
                decision
            }
            Err(failure) => self.failure_decision(&failure),
        };
        let reviewed = findings_reviewed(result);
        let decision = if self.findings_sent {
            self.review_decision(decision, reviewed)
        } else {
            decision
        };
        if let Some(hold) = self.hold_for(&decision, !self.findings_sent || reviewed) {
            // The pack goes on being read (framed or scanned) with its tail withheld; once the
            // body has ended the adapter asks for the wait.
            self.verdict = Verdict::Holding {
                hold: Box::new(hold),
                asked_at: None,
            };
            return ResumeAction::Nothing;
        }
        self.verdict = Verdict::Decided(decision);
        // The verdict is known: the pack needs no more framing (but a scan goes on to its end).
        if !matches!(self.inspect, Inspect::Scan(_)) {
            self.inspect = Inspect::Done;
        }
        if !self.ended || self.answered {
            return ResumeAction::Nothing;
        }
        match &self.verdict {
            Verdict::Decided(Decision::Forward) => ResumeAction::Resume(self.tail.take()),
            _ => ResumeAction::Respond(self.answer()),
        }
    }

    /// The long poll to send now for an open held push (`POST /v1/holds/wait`), once: when the
    /// service held it, the body has ended and the pack was read to its end (so the summary is
    /// complete). `None` otherwise. The wait is [`PushGate::hold_window`] long from now.
    pub fn hold_wait_request(&mut self) -> Option<HoldWaitRequest> {
        if !self.ended || self.answered || matches!(self.inspect, Inspect::Scan(_)) {
            return None;
        }
        let now = self.clock.as_ref().map_or(0, Clock::now_ms);
        let Verdict::Holding { hold, asked_at } = &mut self.verdict else {
            return None;
        };
        if asked_at.is_some() {
            return None;
        }
        *asked_at = Some(now);
        Some(HoldWaitRequest {
            request_id: self.meta.request_id.clone(),
            repository: self.meta.repository.clone(),
            tickets: hold.tickets.clone(),
            wait_ms: self.hold_window_ms,
            pack: self.pack_summary.clone(),
        })
    }

    /// Handles the answer to the hold wait (or [`CalloutResult::Failed`] when it could not be
    /// sent): every ticket approved releases the withheld tail; a denial refuses with the
    /// reviewer's reason; anything else refuses with the hold message, as without a window.
    pub fn on_hold_wait(&mut self, result: CalloutResult<'_>) -> ResumeAction {
        if self.answered {
            return ResumeAction::Nothing;
        }
        let Verdict::Holding {
            hold,
            asked_at: Some(asked_at),
        } = &self.verdict
        else {
            return ResumeAction::Nothing;
        };
        let waited = match &self.clock {
            Some(clock) => clock.now_ms().saturating_sub(*asked_at),
            None => self.hold_window_ms,
        };
        match decision::from_hold_wait(hold, &self.updates, waited, result) {
            WaitOutcome::Approved { notice } => {
                self.notice = notice;
                self.released_in_window = true;
                self.outcome = Outcome::Forwarded;
                self.verdict = Verdict::Decided(Decision::Forward);
                self.inspect = Inspect::Done;
                ResumeAction::Resume(self.tail.take())
            }
            WaitOutcome::Denied(refusal) | WaitOutcome::Undecided(refusal) => {
                self.refuse(refusal);
                ResumeAction::Respond(self.answer())
            }
        }
    }

    /// The side-band-2 packets to put in front of the upstream's answer, once: the approval
    /// given while the push was open (`gitgate: <ticket> approved by <who>`). Empty when there
    /// is nothing to show or the client has no side band to show it on.
    pub fn take_response_notice(&mut self) -> Vec<u8> {
        let lines = std::mem::take(&mut self.notice);
        if lines.is_empty() {
            return Vec::new();
        }
        let mut lines = lines;
        lines.push("gitgate: the push was held for review and released while it waited".into());
        report::info_packets(self.mode, &lines)
    }

    /// True while a held push waits, open, for its reviewers (the pack's end withheld).
    pub fn is_holding(&self) -> bool {
        matches!(self.verdict, Verdict::Holding { .. }) && !self.answered
    }

    /// True when hold and forward is on for this push: the adapter then keeps the upstream's
    /// answer free of a `content-length`, so a notice can go in front of it.
    pub fn may_add_notice(&self) -> bool {
        self.hold_window_ms > 0
    }

    /// Whether a refusal by `decision` is a hold to wait on while the push is open.
    fn hold_for(&self, decision: &Decision, may_pass: bool) -> Option<Hold> {
        if self.hold_window_ms == 0 || self.answered || !may_pass {
            return None;
        }
        let Decision::Refuse(refusal) = decision else {
            return None;
        };
        Hold::of(self.received_verdicts.as_deref()?, refusal)
    }

    /// Refuses the push because the adapter could not carry out a step (a host call failed);
    /// returns the answer body.
    pub fn fail_internal(&mut self, detail: &str) -> Vec<u8> {
        let refusal = Refusal::all(&self.refnames, INTERNAL, detail);
        self.refuse(refusal);
        self.answer()
    }

    /// How the push ended (so far).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// True when the approval service failed for this push.
    pub fn service_failed(&self) -> bool {
        self.service_failed
    }

    /// True once the push is let through: the upstream's answer may then reach the client.
    /// Until then the adapter holds the upstream's response headers, so that a refusal can
    /// still replace them (`git http-backend` sends its headers before reading the body).
    pub fn is_forwarding(&self) -> bool {
        matches!(self.verdict, Verdict::Decided(Decision::Forward))
            && !matches!(self.inspect, Inspect::Scan(_))
    }

    /// True when a further (non-final) chunk needs no look at all: the push is let through and
    /// nothing is withheld, so the adapter may leave the chunk in place unread and only report
    /// its length with [`PushGate::skipped`].
    pub fn streams_through(&self) -> bool {
        !self.ended && self.is_forwarding() && self.tail.held().is_empty()
    }

    /// True when further (non-final) chunks are dropped unread: the push is refused and the body
    /// is only being drained before the answer.
    pub fn drains(&self) -> bool {
        !self.ended
            && matches!(self.verdict, Verdict::Decided(Decision::Refuse(_)))
            && !matches!(self.inspect, Inspect::Gzip(_) | Inspect::Scan(_))
    }

    /// Counts a chunk the adapter handled without reading it (see [`PushGate::streams_through`]
    /// and [`PushGate::drains`]).
    pub fn skipped(&mut self, len: usize) {
        self.received = self.received.saturating_add(len as u64);
    }

    /// True while the end of the body has been seen and the verdict is pending.
    pub fn is_waiting(&self) -> bool {
        self.ended
            && !self.answered
            && matches!(
                self.verdict,
                Verdict::Pending { .. } | Verdict::Holding { .. }
            )
    }

    /// Body bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The push's ref updates in the order sent; empty until the command section is read.
    pub fn updates(&self) -> &[RefUpdate] {
        &self.updates
    }

    /// The push options (`git push -o`) in the order sent; empty until the command section
    /// is read.
    pub fn push_options(&self) -> &[String] {
        &self.push_options
    }

    /// The masking of secrets in short strings, when scanning is on: for whatever else the
    /// adapter records about the push (the report-status lines, the request's commands).
    pub fn redactor(&self) -> Option<std::sync::Arc<push_scan::Redactor>> {
        self.secrets
            .as_ref()
            .map(|s| std::sync::Arc::clone(s.redactor()))
    }

    /// One verdict per update: the service's, as it gave them, when it answered usefully;
    /// otherwise the filter's own once it decided (every update `Allow` when it forwarded,
    /// else a `Deny` carrying each ref's refusal code, which may then be a `gitgate:error:*`
    /// or `gitgate:refused:*` code rather than a `gitgate:deny:*` one). Empty while undecided.
    pub fn verdicts(&self) -> Vec<RefVerdict> {
        if let Some(verdicts) = &self.received_verdicts {
            return verdicts.clone();
        }
        match &self.verdict {
            Verdict::Decided(Decision::Forward) => vec![RefVerdict::Allow; self.updates.len()],
            Verdict::Decided(Decision::Refuse(refusal)) => refusal
                .refs
                .iter()
                .map(|r| {
                    let text = r.reason.as_str();
                    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
                    RefVerdict::Deny {
                        code: code.to_owned(),
                        reason: reason.to_owned(),
                    }
                })
                .collect(),
            Verdict::Open | Verdict::Pending { .. } | Verdict::Holding { .. } => Vec::new(),
        }
    }

    /// The secrets the scan found, in the verdict protocol's redacted form (never a value);
    /// empty until the pack was scanned to its end, or when scanning is off.
    pub fn findings(&self) -> Vec<SecretFinding> {
        self.scan_report
            .as_ref()
            .map(|r| r.findings.iter().map(|f| f.to_wire()).collect())
            .unwrap_or_default()
    }

    /// What the pack carries, once its walk ended; `None` before, and for pushes without a
    /// pack (see [`crate::push_scan::summary`] for what a walk without scanning leaves out).
    pub fn pack_summary(&self) -> Option<PackSummary> {
        self.pack_summary.clone()
    }

    fn inspect_chunk(
        &mut self,
        chunk: &[u8],
        start: u64,
        dispatch: &mut dyn FnMut(&VerdictRequest) -> bool,
    ) {
        match std::mem::replace(&mut self.inspect, Inspect::Done) {
            Inspect::Commands(mut parser) => match parser.feed(chunk) {
                Ok(Progress::NeedMore) => self.inspect = Inspect::Commands(parser),
                Ok(Progress::Complete { consumed }) => match parser.section() {
                    Some(section) => {
                        let rest = chunk.get(consumed..).unwrap_or_default();
                        let rest_start = start.saturating_add(consumed as u64);
                        self.section_complete(section, rest, rest_start, dispatch);
                    }
                    None => self.refuse_bad_request(&parser, "command section lost"),
                },
                Err(err) => self.refuse_bad_request(&parser, &err.to_string()),
            },
            Inspect::Gzip(mut section) => match section.feed(chunk) {
                Ok(false) => self.inspect = Inspect::Gzip(section),
                Ok(true) => {
                    let parser = section.parser();
                    self.learn(parser);
                    let refusal =
                        Refusal::all(&self.refnames, UNSUPPORTED_ENCODING, "gzip-encoded push");
                    self.refuse(refusal);
                }
                Err(err) => self.refuse_bad_request(section.parser(), &err.to_string()),
            },
            Inspect::Pack(mut framer) => {
                let fed = framer.feed(chunk);
                self.framed = Some(framer.counts());
                match fed {
                    Ok(()) => self.inspect = Inspect::Pack(framer),
                    Err(err) => self.refuse_unparsable(&err.to_string()),
                }
            }
            Inspect::Scan(mut scan) => match scan.feed(chunk) {
                Ok(()) => self.inspect = Inspect::Scan(scan),
                Err(err) => self.refuse_unparsable(&err.to_string()),
            },
            Inspect::NothingMore if chunk.is_empty() => self.inspect = Inspect::NothingMore,
            Inspect::NothingMore => {
                self.refuse_unparsable(&format!("data after the command section at byte {start}"));
            }
            Inspect::Done => {}
        }
    }

    /// The command section is complete; `rest` (at body offset `rest_start`) follows it.
    fn section_complete(
        &mut self,
        section: CommandSection,
        rest: &[u8],
        rest_start: u64,
        dispatch: &mut dyn FnMut(&VerdictRequest) -> bool,
    ) {
        self.mode = Some(ReportMode::from_capabilities(&section.capabilities));
        self.refnames = section.commands.iter().map(|c| c.refname.clone()).collect();

        if section.is_empty() {
            self.inspect = Inspect::NothingMore;
            self.inspect_chunk(rest, rest_start, dispatch);
            return;
        }
        self.keep_for_records(&section);
        if self.refuse_secret_in_commands(&section) {
            return;
        }
        let Some(identity) = self.meta.identity.clone() else {
            let refusal = Refusal::all(&self.refnames, NO_IDENTITY, "no identity on the request");
            self.refuse(refusal);
            return;
        };

        if section.expects_pack() {
            self.pack_start = Some(section.end_offset);
        }
        self.inspect = match (&self.secrets, section.expects_pack()) {
            (Some(settings), true) => {
                self.bypass = settings.bypass(&section.push_options);
                let scan = PushScan::new(
                    Rc::clone(settings),
                    section.object_format,
                    section.end_offset,
                )
                .summary_commits(self.summary_commits);
                let scan = match &self.clock {
                    Some(clock) => scan.clocked(clock.clone()),
                    None => scan,
                };
                Inspect::Scan(Box::new(scan))
            }
            (None, true) => Inspect::Pack(Box::new(PackFramer::new(
                section.object_format,
                section.end_offset,
            ))),
            (_, false) => Inspect::NothingMore,
        };
        let updates = section.ref_updates();
        self.verdict = Verdict::Pending {
            updates: updates.clone(),
        };
        self.inspect_chunk(rest, rest_start, dispatch);
        if !matches!(self.verdict, Verdict::Pending { .. }) {
            // The rest of the chunk already broke the push: no callout needed.
            return;
        }

        let request = VerdictRequest {
            request_id: self.meta.request_id.clone(),
            repository: self.meta.repository.clone(),
            identity,
            atomic: section.capabilities.atomic,
            object_format: section.object_format.name().to_owned(),
            push_options: section.push_options,
            updates,
            findings: Vec::new(),
            bypass_reason: None,
            pack: None,
        };
        if matches!(self.bypass, Bypass::Reason(_)) && matches!(self.inspect, Inspect::Scan(_)) {
            // A bypass is decided on the findings, which are only known at the end of the pack.
            self.deferred = Some(Box::new(request));
            return;
        }
        if !dispatch(&request) {
            let decision = self.failure_decision(&ServiceFailure::Unavailable);
            self.verdict = Verdict::Decided(decision);
            if matches!(self.verdict, Verdict::Decided(Decision::Refuse(_))) {
                self.inspect = Inspect::Done;
            }
        }
    }

    /// Keeps the section's updates and push options for the record ([`PushGate::updates`],
    /// [`PushGate::push_options`]), with every secret in them masked when scanning is on.
    fn keep_for_records(&mut self, section: &CommandSection) {
        self.updates = section.ref_updates();
        self.push_options = section.push_options.clone();
        let Some(settings) = &self.secrets else {
            return;
        };
        let redactor = settings.redactor();
        for update in &mut self.updates {
            update.refname = redactor.masked(&update.refname);
        }
        for option in &mut self.push_options {
            *option = redactor.masked(option);
        }
    }

    /// Refuses the push for every ref when a ref name, a push option or the push certificate
    /// holds a secret. This comes before the callout: the request would carry the value to the
    /// approval service (and its log and database), and an allowed push would create the ref
    /// with it upstream. Returns whether the push was refused.
    fn refuse_secret_in_commands(&mut self, section: &CommandSection) -> bool {
        let Some(found) = self
            .secrets
            .as_ref()
            .and_then(|s| s.redactor().command_secret(section))
        else {
            return false;
        };
        let place = found.place.describe();
        let detail = format!("{} in {place} (the value is not shown)", found.rule);
        let mut refusal = Refusal::all(&self.refnames, push_scan::report::SECRET_DETECTED, &detail);
        refusal.info.push(format!(
            "gitgate: remove the secret from {place} and push again; a bypass does not apply to it"
        ));
        self.refuse(refusal);
        true
    }

    /// The end of the body, for a push still without a callout.
    fn finish_body(&mut self) {
        if !matches!(self.verdict, Verdict::Open) {
            return;
        }
        match std::mem::replace(&mut self.inspect, Inspect::Done) {
            Inspect::Commands(parser) => match parser.finish() {
                Ok(()) if parser.is_untouched() => self.pass(Outcome::Empty),
                // A complete section never stays in this state; an error was already handled.
                Ok(()) => self.pass(Outcome::Probe),
                Err(err) => self.refuse_bad_request(&parser, &err.to_string()),
            },
            Inspect::NothingMore => self.pass(Outcome::Probe),
            Inspect::Gzip(_) | Inspect::Pack(_) | Inspect::Scan(_) | Inspect::Done => {
                self.refuse_unparsable("body ended in an unexpected state");
            }
        }
    }

    /// The end of the body, for a push whose pack is being scanned: ends the scan and composes
    /// its result with the verdict (see the module documentation for the order).
    fn finish_scan(&mut self, dispatch: &mut dyn FnMut(&VerdictRequest) -> bool) {
        if !matches!(self.inspect, Inspect::Scan(_)) {
            return;
        }
        let Inspect::Scan(scan) = std::mem::replace(&mut self.inspect, Inspect::Done) else {
            return;
        };
        let report = match scan.finish() {
            Ok(report) => report,
            Err(err) => return self.refuse_unparsable(&err.to_string()),
        };
        self.pack_summary = Some(report.pack.clone());
        let Some(settings) = self.secrets.clone() else {
            return;
        };
        let blocks_on_limit = !report.limits.is_empty() && settings.on_limit() == OnLimit::Block;
        let bypass = match &self.bypass {
            Bypass::Reason(reason) => Some(reason.clone()),
            Bypass::None | Bypass::NoReason => None,
        };

        // Step 1: secrets without a bypass are refused here; the service is not asked.
        if report.has_findings() && bypass.is_none() {
            let option = settings.bypass_option();
            let note = (self.bypass == Bypass::NoReason).then(|| {
                format!("the bypass option was ignored: it needs a reason, -o {option}=\"<why>\"")
            });
            let refusal =
                push_scan::report::refusal(&self.refnames, &report, option, note.as_deref());
            self.scan_report = Some(report);
            return self.refuse(refusal);
        }

        // Step 2: a scanning limit, by policy.
        if blocks_on_limit {
            let refusal = push_scan::report::limit_refusal(&self.refnames, &report.limits);
            self.scan_report = Some(report);
            return self.refuse(refusal);
        }
        self.limit_passed = !report.limits.is_empty();

        // Step 3: the held-back callout, with the findings when there are any.
        let request = self.deferred.take().map(|mut request| {
            request.findings = report.findings.iter().map(|f| f.to_wire()).collect();
            request.bypass_reason = bypass;
            request.pack = Some(report.pack.clone());
            request
        });
        self.findings_sent = report.has_findings();
        self.scan_report = Some(report);
        if let Some(request) = request
            && !dispatch(&request)
        {
            let decision = self.failure_decision(&ServiceFailure::Unavailable);
            let decision = self.review_decision(decision, false);
            self.verdict = Verdict::Decided(decision);
        }
    }

    /// The decision for a push whose findings went to the service: it passes only when every
    /// ref was allowed by a service that reviewed the findings; any other answer (a failure
    /// included, whatever the failure mode) refuses, with the findings listed.
    fn review_decision(&mut self, decision: Decision, reviewed: bool) -> Decision {
        let Some(report) = &self.scan_report else {
            return decision;
        };
        let option = self
            .secrets
            .as_ref()
            .map_or(push_scan::config::DEFAULT_BYPASS_OPTION, |s| {
                s.bypass_option()
            });
        let local = |note: &str| {
            Decision::Refuse(push_scan::report::refusal(
                &self.refnames,
                report,
                option,
                Some(note),
            ))
        };
        let decision = match decision {
            _ if self.service_failed => {
                local("the approval service did not answer, so no bypass could be asked for")
            }
            Decision::Forward if reviewed => Decision::Forward,
            Decision::Forward => local(
                "the approval service did not review the findings (it may predate secret \
                 scanning), so the bypass does not apply",
            ),
            Decision::Refuse(refusal) => {
                Decision::Refuse(push_scan::report::with_findings(refusal, report))
            }
        };
        self.outcome = match &decision {
            Decision::Forward => Outcome::Forwarded,
            Decision::Refuse(refusal) => Outcome::Refused {
                code: refusal.code.clone(),
            },
        };
        decision
    }

    /// What the secret scan of this push found, once the pack ended.
    pub fn scan_report(&self) -> Option<&ScanReport> {
        self.scan_report.as_ref()
    }

    /// True when the push went past a scanning limit and was let through by
    /// `on_limit: pass-with-audit`.
    pub fn passed_scan_limit(&self) -> bool {
        self.limit_passed && self.is_forwarding()
    }

    /// The decision for the access log: [`Outcome::label`], with `:secret-scan-limit` added
    /// when a scanning limit was passed by policy.
    pub fn decision_label(&self) -> String {
        let label = self.outcome.label();
        let label = if self.released_in_window {
            format!("{label}:approved-while-held")
        } else {
            label
        };
        if self.limit_passed
            && matches!(
                self.outcome,
                Outcome::Forwarded | Outcome::ForwardedOnFailure
            )
        {
            format!("{label}:secret-scan-limit")
        } else {
            label
        }
    }

    /// Lines for the filter's log about the secret scan (findings without values, limits),
    /// empty when nothing was found.
    pub fn scan_log_lines(&self) -> Vec<String> {
        let Some(report) = &self.scan_report else {
            return Vec::new();
        };
        let mut lines: Vec<String> = report
            .findings
            .iter()
            .map(push_scan::report::describe)
            .collect();
        let what = match self.secrets.as_ref().map(|s| s.on_limit()) {
            Some(OnLimit::PassWithAudit) => "passed by on_limit: pass-with-audit",
            _ => "refused by on_limit: block",
        };
        lines.extend(
            report
                .limits
                .iter()
                .map(|hit| format!("scan limit: {}; {what}", hit.describe())),
        );
        lines
    }

    /// At the end of the body, the summary of a pack that was only framed (scanning off):
    /// the header's entry count, the pack's bytes, and the stored kinds of the entries framed
    /// before the verdict arrived (the framer stops then); no commits (see
    /// [`crate::push_scan::summary`]).
    fn summarise_framed(&mut self) {
        let (Some(counts), Some(pack_start), None) =
            (self.framed, self.pack_start, &self.pack_summary)
        else {
            return;
        };
        self.pack_summary = Some(PackSummary {
            objects: counts.declared.map_or(0, u64::from),
            bytes: self.received.saturating_sub(pack_start),
            commits_count: counts.commits,
            trees: counts.trees,
            blobs: counts.blobs,
            tags: counts.tags,
            unresolved_deltas: counts.deltas,
            ..PackSummary::default()
        });
    }

    fn pass(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.verdict = Verdict::Decided(Decision::Forward);
    }

    fn failure_decision(&mut self, failure: &ServiceFailure) -> Decision {
        self.service_failed = true;
        let updates = match &self.verdict {
            Verdict::Pending { updates } => updates.clone(),
            _ => Vec::new(),
        };
        let decision = decision::on_failure(&updates, failure, self.failure_mode);
        self.outcome = match &decision {
            Decision::Forward => Outcome::ForwardedOnFailure,
            Decision::Refuse(refusal) => Outcome::Refused {
                code: refusal.code.clone(),
            },
        };
        decision
    }

    /// Learns the capabilities and ref names a parser has read so far.
    fn learn(&mut self, parser: &Parser) {
        if let Some(caps) = parser.capabilities() {
            self.mode = Some(ReportMode::from_capabilities(caps));
        }
        self.refnames = parser.refnames();
        if let Some(section) = parser.section() {
            self.refnames = section.commands.iter().map(|c| c.refname.clone()).collect();
        }
    }

    fn refuse_bad_request(&mut self, parser: &Parser, detail: &str) {
        self.learn(parser);
        self.refuse_unparsable(detail);
    }

    fn refuse_unparsable(&mut self, detail: &str) {
        let refusal = Refusal::all(&self.refnames, BAD_REQUEST, detail);
        self.refuse(refusal);
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.outcome = Outcome::Refused {
            code: refusal.code.clone(),
        };
        self.verdict = Verdict::Decided(Decision::Refuse(refusal));
        if !matches!(self.inspect, Inspect::Gzip(_)) {
            self.inspect = Inspect::Done;
        }
        // Withheld bytes of a refused push are never forwarded.
        self.tail.take();
    }

    /// The answer body for the refusal in force; marks the push as answered.
    fn answer(&mut self) -> Vec<u8> {
        self.answered = true;
        self.tail.take();
        match &self.verdict {
            Verdict::Decided(Decision::Refuse(refusal)) => {
                report::refusal(self.mode, &refusal.info, &refusal.refs, &refusal.summary())
            }
            // Only called for refusals; an empty answer would be read by git as a failure.
            _ => report::error_packet("gitgate:error:internal no refusal to report"),
        }
    }
}

/// Whether the service's answer says it reviewed the findings it was sent.
fn findings_reviewed(result: CalloutResult<'_>) -> bool {
    match result {
        CalloutResult::Response {
            status: Some(200),
            body,
        } => serde_json::from_slice::<VerdictResponse>(body).is_ok_and(|r| r.findings_reviewed),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HoldWaitResponse, RefVerdict, TicketState, TicketStatus, VerdictResponse};
    use crate::pktline;

    const OLD: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn meta() -> PushMeta {
        PushMeta {
            request_id: "req-1".into(),
            repository: "demo.git".into(),
            identity: Some(Identity {
                subject: "agent-7".into(),
                agent: true,
                ..Identity::default()
            }),
        }
    }

    fn section(commands: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (old, new, name)) in commands.iter().enumerate() {
            let caps = if i == 0 {
                "\0 report-status-v2 side-band-64k quiet"
            } else {
                ""
            };
            pktline::encode_data(format!("{old} {new} {name}{caps}").as_bytes(), &mut out)
                .expect("small");
        }
        pktline::encode_flush(&mut out);
        out
    }

    fn empty_pack() -> Vec<u8> {
        let mut out = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
        out.extend_from_slice(&[0xee; 20]);
        out
    }

    fn update_body() -> Vec<u8> {
        let mut body = section(&[(OLD, NEW, "refs/heads/main")]);
        body.extend(empty_pack());
        body
    }

    fn allow_all(count: usize) -> Vec<u8> {
        let response = VerdictResponse {
            verdicts: vec![RefVerdict::Allow; count],
            ..VerdictResponse::default()
        };
        serde_json::to_vec(&response).expect("serializable")
    }

    fn ok(body: &[u8]) -> CalloutResult<'_> {
        CalloutResult::Response {
            status: Some(200),
            body,
        }
    }

    /// Feeds `body` in chunks of `size`, then an empty end-of-stream chunk, as Envoy does on
    /// HTTP/1.1. Returns the forwarded bytes, the final action and the dispatched requests.
    fn run(
        gate: &mut PushGate,
        body: &[u8],
        size: usize,
    ) -> (Vec<u8>, BodyAction, Vec<VerdictRequest>) {
        let mut requests = Vec::new();
        let mut forwarded = Vec::new();
        let mut dispatch = |request: &VerdictRequest| {
            requests.push(request.clone());
            true
        };
        for chunk in body.chunks(size.max(1)) {
            match gate.on_body(chunk, false, &mut dispatch) {
                BodyAction::Forward(bytes) => forwarded.extend(bytes),
                other => panic!("unexpected {other:?} mid-body"),
            }
        }
        let last = gate.on_body(b"", true, &mut dispatch);
        (forwarded, last, requests)
    }

    #[test]
    fn an_allowed_push_reaches_the_upstream_whole_after_the_verdict() {
        let body = update_body();
        for size in [1, 7, 64, body.len()] {
            let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
            let (mut forwarded, last, requests) = run(&mut gate, &body, size);
            assert_eq!(last, BodyAction::Wait);
            assert_eq!(requests.len(), 1);
            assert!(
                forwarded.len() <= body.len() - 64,
                "the tail must be withheld"
            );
            let ResumeAction::Resume(held) = gate.on_callout(ok(&allow_all(1))) else {
                panic!("expected resume");
            };
            forwarded.extend(held);
            assert_eq!(forwarded, body);
            assert_eq!(gate.outcome(), &Outcome::Forwarded);
        }
    }

    #[test]
    fn the_verdict_request_describes_the_push() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (_, _, requests) = run(&mut gate, &update_body(), 1000);
        let request = &requests[0];
        assert_eq!(request.request_id, "req-1");
        assert_eq!(request.repository, "demo.git");
        assert_eq!(request.identity.subject, "agent-7");
        assert_eq!(request.object_format, "sha1");
        assert_eq!(request.updates[0].refname, "refs/heads/main");
    }

    #[test]
    fn a_verdict_before_the_end_lets_the_rest_stream_through() {
        let body = update_body();
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let mut dispatch = |_: &VerdictRequest| true;
        let mut forwarded = Vec::new();
        let (head, tail) = body.split_at(body.len() - 10);
        let BodyAction::Forward(bytes) = gate.on_body(head, false, &mut dispatch) else {
            panic!("forward");
        };
        forwarded.extend(bytes);
        assert_eq!(gate.on_callout(ok(&allow_all(1))), ResumeAction::Nothing);
        let BodyAction::Forward(bytes) = gate.on_body(tail, false, &mut dispatch) else {
            panic!("forward");
        };
        forwarded.extend(bytes);
        assert_eq!(
            gate.on_body(b"", true, &mut dispatch),
            BodyAction::Forward(Vec::new())
        );
        assert_eq!(forwarded, body);
    }

    #[test]
    fn a_held_push_is_answered_with_a_report_after_the_whole_body() {
        let body = update_body();
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (_, last, _) = run(&mut gate, &body, 10);
        assert_eq!(last, BodyAction::Wait);
        let response = VerdictResponse {
            verdicts: vec![RefVerdict::Hold {
                code: "gitgate:hold:protected-branch".into(),
                ticket: "t-1".into(),
                url: "http://approve/t-1".into(),
                reason: "needs review".into(),
            }],
            ..VerdictResponse::default()
        };
        let json = serde_json::to_vec(&response).expect("json");
        let ResumeAction::Respond(answer) = gate.on_callout(ok(&json)) else {
            panic!("expected an answer");
        };
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("gitgate: refs/heads/main is held for review, approve at"));
        assert!(text.contains("ng refs/heads/main gitgate:hold:protected-branch needs review"));
        assert_eq!(
            gate.outcome().label(),
            "refused:gitgate:hold:protected-branch"
        );
    }

    #[test]
    fn an_early_refusal_drops_the_rest_of_the_body_and_answers_at_the_end() {
        let mut body = update_body();
        body.extend(vec![0u8; 5000]);
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let mut dispatch = |_: &VerdictRequest| true;
        let (head, rest) = body.split_at(150);
        gate.on_body(head, false, &mut dispatch);
        let deny = VerdictResponse {
            verdicts: vec![RefVerdict::Deny {
                code: "gitgate:deny:x".into(),
                reason: "no".into(),
            }],
            ..VerdictResponse::default()
        };
        let json = serde_json::to_vec(&deny).expect("json");
        assert_eq!(gate.on_callout(ok(&json)), ResumeAction::Nothing);
        for chunk in rest.chunks(1000) {
            assert_eq!(
                gate.on_body(chunk, false, &mut dispatch),
                BodyAction::Forward(Vec::new())
            );
        }
        assert!(matches!(
            gate.on_body(b"", true, &mut dispatch),
            BodyAction::Respond(_)
        ));
    }

    #[test]
    fn data_after_the_pack_is_refused_before_the_pack_trailer_leaves() {
        let mut body = update_body();
        let pack_end = body.len();
        body.extend(vec![b'j'; 200]);
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (forwarded, last, _) = run(&mut gate, &body, body.len());
        assert!(
            forwarded.len() < pack_end - 20,
            "the pack trailer must stay withheld"
        );
        let BodyAction::Respond(answer) = last else {
            panic!("expected a refusal")
        };
        assert!(String::from_utf8_lossy(&answer).contains("gitgate:error:bad-request"));
        // A late verdict changes nothing.
        assert_eq!(gate.on_callout(ok(&allow_all(1))), ResumeAction::Nothing);
    }

    #[test]
    fn data_after_a_delete_only_section_is_refused() {
        let mut body = section(&[(OLD, ZERO, "refs/heads/old")]);
        body.extend(vec![b'j'; 100]);
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (_, last, _) = run(&mut gate, &body, 13);
        assert!(matches!(last, BodyAction::Respond(_)));
    }

    #[test]
    fn a_delete_only_push_is_gated_too() {
        let body = section(&[(OLD, ZERO, "refs/heads/old")]);
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (forwarded, last, requests) = run(&mut gate, &body, 5);
        assert_eq!(requests.len(), 1);
        assert_eq!(last, BodyAction::Wait);
        assert!(
            forwarded.len() <= body.len() - 64,
            "the final flush must be withheld"
        );
    }

    #[test]
    fn the_probe_passes_without_a_callout() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let mut dispatch = |_: &VerdictRequest| panic!("no callout for a probe");
        assert_eq!(
            gate.on_body(b"0000", true, &mut dispatch),
            BodyAction::Forward(b"0000".to_vec())
        );
        assert_eq!(gate.outcome(), &Outcome::Probe);
    }

    #[test]
    fn the_probe_split_over_callbacks_passes_whole() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (forwarded, last, requests) = run(&mut gate, b"0000", 1);
        assert!(requests.is_empty());
        let BodyAction::Forward(rest) = last else {
            panic!("forward")
        };
        assert_eq!([forwarded, rest].concat(), b"0000");
    }

    #[test]
    fn an_empty_body_passes() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let mut dispatch = |_: &VerdictRequest| true;
        assert_eq!(
            gate.on_body(b"", true, &mut dispatch),
            BodyAction::Forward(Vec::new())
        );
        assert_eq!(gate.outcome(), &Outcome::Empty);
    }

    #[test]
    fn a_truncated_command_section_is_refused() {
        let body = update_body();
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let (_, last, requests) = run(&mut gate, &body[..50], 10);
        assert!(requests.is_empty());
        let BodyAction::Respond(answer) = last else {
            panic!("refusal")
        };
        // The first command was not complete, so the capabilities are unknown: an ERR packet.
        assert!(String::from_utf8_lossy(&answer).contains("ERR gitgate: push refused"));
    }

    #[test]
    fn a_push_without_identity_is_refused_without_a_callout() {
        let mut without = meta();
        without.identity = None;
        let mut gate = PushGate::new(without, BodyEncoding::Identity, FailureMode::Open);
        let (_, last, requests) = run(&mut gate, &update_body(), 100);
        assert!(requests.is_empty());
        let BodyAction::Respond(answer) = last else {
            panic!("refusal")
        };
        assert!(String::from_utf8_lossy(&answer).contains("gitgate:error:no-identity"));
    }

    #[test]
    fn a_failed_dispatch_follows_the_failure_mode() {
        for (mode, refused) in [(FailureMode::Closed, true), (FailureMode::Open, false)] {
            let mut gate = PushGate::new(meta(), BodyEncoding::Identity, mode);
            let mut dispatch = |_: &VerdictRequest| false;
            let body = update_body();
            let first = gate.on_body(&body, false, &mut dispatch);
            let last = gate.on_body(b"", true, &mut dispatch);
            assert!(gate.service_failed());
            if refused {
                assert_eq!(first, BodyAction::Forward(Vec::new()));
                let BodyAction::Respond(answer) = last else {
                    panic!("refusal")
                };
                assert!(String::from_utf8_lossy(&answer).contains("approval-unavailable"));
            } else {
                let (BodyAction::Forward(a), BodyAction::Forward(b)) = (first, last) else {
                    panic!("forward");
                };
                assert_eq!([a, b].concat(), body);
                assert_eq!(gate.outcome(), &Outcome::ForwardedOnFailure);
            }
        }
    }

    #[test]
    fn a_callout_failure_while_waiting_follows_the_failure_mode() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        run(&mut gate, &update_body(), 50);
        assert!(gate.is_waiting());
        let ResumeAction::Respond(answer) = gate.on_callout(CalloutResult::Failed) else {
            panic!("refusal");
        };
        assert!(String::from_utf8_lossy(&answer).contains("gitgate:error:approval-unavailable"));

        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        run(&mut gate, &update_body(), 50);
        let result = CalloutResult::Response {
            status: Some(200),
            body: b"{\"verdicts\":[]}",
        };
        let ResumeAction::Respond(answer) = gate.on_callout(result) else {
            panic!("refusal")
        };
        assert!(String::from_utf8_lossy(&answer).contains("gitgate:error:approval-malformed"));
    }

    #[test]
    fn a_gzip_push_is_refused_with_a_proper_report_and_never_forwarded() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&update_body()).expect("in memory");
        let compressed = encoder.finish().expect("in memory");
        let mut gate = PushGate::new(meta(), BodyEncoding::Gzip, FailureMode::Open);
        let (forwarded, last, requests) = run(&mut gate, &compressed, 9);
        assert!(forwarded.is_empty());
        assert!(requests.is_empty());
        let BodyAction::Respond(answer) = last else {
            panic!("refusal")
        };
        let text = String::from_utf8_lossy(&answer);
        assert!(text.contains("ng refs/heads/main gitgate:error:unsupported-content-encoding"));
    }

    #[test]
    fn an_unknown_encoding_is_refused_unread() {
        let encoding = BodyEncoding::from_header(Some("br"));
        assert_eq!(encoding, BodyEncoding::Other("br".into()));
        let mut gate = PushGate::new(meta(), encoding, FailureMode::Open);
        let (forwarded, last, _) = run(&mut gate, &update_body(), 100);
        assert!(forwarded.is_empty());
        assert!(matches!(last, BodyAction::Respond(_)));
    }

    #[test]
    fn content_encoding_values_are_read() {
        assert_eq!(BodyEncoding::from_header(None), BodyEncoding::Identity);
        assert_eq!(
            BodyEncoding::from_header(Some(" identity ")),
            BodyEncoding::Identity
        );
        assert_eq!(BodyEncoding::from_header(Some("GZIP")), BodyEncoding::Gzip);
        assert_eq!(
            BodyEncoding::from_header(Some("x-gzip")),
            BodyEncoding::Gzip
        );
        assert_eq!(
            BodyEncoding::from_header(Some("gzip, gzip")),
            BodyEncoding::Other("gzip, gzip".into())
        );
    }

    #[test]
    fn chunks_need_no_reading_once_the_push_streams_through_or_drains() {
        let body = update_body();
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        let mut dispatch = |_: &VerdictRequest| true;
        gate.on_body(&body, false, &mut dispatch);
        assert!(!gate.streams_through() && !gate.drains());
        gate.on_callout(ok(&allow_all(1)));
        // The withheld tail still has to go out with the next chunk.
        assert!(!gate.streams_through());
        assert_eq!(gate.on_body(b"x", false, &mut dispatch).clone(), {
            let mut expected = body[body.len() - 64..].to_vec();
            expected.push(b'x');
            BodyAction::Forward(expected)
        });
        assert!(gate.streams_through());

        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        gate.on_body(b"zzzz", false, &mut dispatch);
        assert!(gate.drains());
        gate.skipped(10);
        assert_eq!(gate.received(), 14);
    }

    fn hold_json(tickets: &[&str]) -> Vec<u8> {
        let verdicts = tickets
            .iter()
            .map(|t| match *t {
                "" => RefVerdict::Allow,
                "deny" => RefVerdict::Deny {
                    code: "gitgate:deny:x".into(),
                    reason: "no".into(),
                },
                ticket => RefVerdict::Hold {
                    code: "gitgate:hold:protected-branch".into(),
                    ticket: ticket.into(),
                    url: format!("http://approve/{ticket}"),
                    reason: "needs review".into(),
                },
            })
            .collect();
        let response = VerdictResponse {
            verdicts,
            ..VerdictResponse::default()
        };
        serde_json::to_vec(&response).expect("json")
    }

    fn wait_json(statuses: &[(&str, TicketState, &str, Option<&str>)]) -> Vec<u8> {
        let response = HoldWaitResponse {
            tickets: statuses
                .iter()
                .map(|(ticket, state, who, reason)| TicketStatus {
                    ticket: (*ticket).into(),
                    state: *state,
                    decided_by: if who.is_empty() {
                        Vec::new()
                    } else {
                        vec![(*who).into()]
                    },
                    reason: reason.map(str::to_owned),
                })
                .collect(),
        };
        serde_json::to_vec(&response).expect("json")
    }

    /// A push of `body` through a gate with a hold window, held by the service after the end
    /// of the body, with the wait asked for. Returns the gate and the bytes forwarded so far.
    fn held_open(body: &[u8], verdicts: &[u8]) -> (PushGate, Vec<u8>) {
        let mut gate =
            PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).hold_window(5000);
        let (forwarded, last, _) = run(&mut gate, body, 9);
        assert_eq!(last, BodyAction::Wait);
        assert_eq!(gate.on_callout(ok(verdicts)), ResumeAction::Nothing);
        assert!(gate.is_holding() && gate.is_waiting());
        (gate, forwarded)
    }

    #[test]
    fn an_approval_while_the_push_is_open_releases_the_withheld_tail() {
        let body = update_body();
        let (mut gate, mut forwarded) = held_open(&body, &hold_json(&["t-1"]));
        assert!(
            forwarded.len() <= body.len() - 64,
            "the tail stays withheld"
        );
        let request = gate.hold_wait_request().expect("the wait is asked for");
        assert_eq!(request.tickets, ["t-1"]);
        assert_eq!(request.wait_ms, 5000);
        assert_eq!(request.request_id, "req-1");
        assert!(gate.hold_wait_request().is_none(), "asked once");
        assert!(!gate.is_forwarding());

        let approved = wait_json(&[("t-1", TicketState::Approved, "bob", None)]);
        let ResumeAction::Resume(tail) = gate.on_hold_wait(ok(&approved)) else {
            panic!("expected the tail to be released");
        };
        forwarded.extend(tail);
        assert_eq!(forwarded, body);
        assert!(gate.is_forwarding());
        assert_eq!(gate.outcome(), &Outcome::Forwarded);
        assert_eq!(gate.decision_label(), "forwarded:approved-while-held");
        let notice = gate.take_response_notice();
        let text = String::from_utf8_lossy(&notice);
        assert!(
            text.starts_with("0022\x02gitgate: t-1 approved by bob\n"),
            "{text:?}"
        );
        assert!(gate.take_response_notice().is_empty(), "shown once");
    }

    #[test]
    fn a_hold_known_before_the_end_waits_for_the_whole_pack_first() {
        let body = update_body();
        let mut gate =
            PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).hold_window(5000);
        let mut dispatch = |_: &VerdictRequest| true;
        let (head, rest) = body.split_at(body.len() - 30);
        let BodyAction::Forward(mut forwarded) = gate.on_body(head, false, &mut dispatch) else {
            panic!("forward");
        };
        let hold = hold_json(&["t-1"]);
        assert_eq!(gate.on_callout(ok(&hold)), ResumeAction::Nothing);
        assert!(
            gate.hold_wait_request().is_none(),
            "not before the pack is read"
        );
        let BodyAction::Forward(more) = gate.on_body(rest, false, &mut dispatch) else {
            panic!("the body still streams, less its tail");
        };
        forwarded.extend(more);
        assert!(forwarded.len() <= body.len() - 64);
        assert_eq!(gate.on_body(b"", true, &mut dispatch), BodyAction::Wait);
        assert!(gate.hold_wait_request().is_some());
        let pack = gate.pack_summary().expect("the framed pack");
        assert_eq!(pack.objects, 0);
    }

    #[test]
    fn data_after_the_pack_of_a_held_push_is_still_refused() {
        let mut body = update_body();
        body.extend(vec![b'j'; 100]);
        let mut gate =
            PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).hold_window(5000);
        let mut dispatch = |_: &VerdictRequest| true;
        gate.on_body(&body[..100], false, &mut dispatch);
        gate.on_callout(ok(&hold_json(&["t-1"])));
        assert_eq!(
            gate.on_body(&body[100..], false, &mut dispatch),
            BodyAction::Forward(Vec::new())
        );
        let BodyAction::Respond(answer) = gate.on_body(b"", true, &mut dispatch) else {
            panic!("refused");
        };
        assert!(String::from_utf8_lossy(&answer).contains("gitgate:error:bad-request"));
        assert!(gate.hold_wait_request().is_none());
    }

    #[test]
    fn a_denial_while_the_push_is_open_refuses_with_the_reviewers_reason() {
        let mut body = section(&[
            (OLD, NEW, "refs/heads/main"),
            (ZERO, NEW, "refs/heads/agent/fix"),
        ]);
        body.extend(empty_pack());
        let (mut gate, _) = held_open(&body, &hold_json(&["t-1", ""]));
        gate.hold_wait_request().expect("asked");
        let denied = wait_json(&[("t-1", TicketState::Denied, "bob", Some("use a PR"))]);
        let ResumeAction::Respond(answer) = gate.on_hold_wait(ok(&denied)) else {
            panic!("refused");
        };
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains(
                "ng refs/heads/main gitgate:deny:reviewer-denied bob denied t-1: use a PR"
            ),
            "{text}"
        );
        assert!(text.contains("ng refs/heads/agent/fix gitgate:refused:other-ref-refused"));
        assert!(text.contains("gitgate: refs/heads/main is denied: bob denied t-1: use a PR"));
        assert_eq!(
            gate.outcome().label(),
            "refused:gitgate:deny:reviewer-denied"
        );
        assert!(gate.take_response_notice().is_empty());
    }

    #[test]
    fn no_decision_in_the_window_refuses_with_the_hold_message_and_ticket_url() {
        let pending = wait_json(&[("t-1", TicketState::Pending, "", None)]);
        let expired = wait_json(&[("t-1", TicketState::Expired, "", None)]);
        let wrong = wait_json(&[("t-2", TicketState::Approved, "bob", None)]);
        let cases: [(CalloutResult<'_>, &str); 5] = [
            (ok(&pending), "the push waited 5 s for a review while open"),
            (ok(&expired), "ticket t-1 expired while the push waited"),
            (ok(&wrong), "could not say whether it was decided"),
            (ok(b"{"), "could not say whether it was decided"),
            (
                CalloutResult::Failed,
                "could not say whether it was decided",
            ),
        ];
        for (result, why) in cases {
            let (mut gate, _) = held_open(&update_body(), &hold_json(&["t-1"]));
            gate.hold_wait_request().expect("asked");
            let ResumeAction::Respond(answer) = gate.on_hold_wait(result) else {
                panic!("refused");
            };
            let text = String::from_utf8_lossy(&answer);
            assert!(
                text.contains("is held for review, approve at http://approve/t-1"),
                "{text}"
            );
            assert!(
                text.contains("ng refs/heads/main gitgate:hold:protected-branch"),
                "{text}"
            );
            assert!(text.contains(why), "{why}: {text}");
            assert!(!gate.is_forwarding());
            assert_eq!(gate.on_hold_wait(ok(&pending)), ResumeAction::Nothing);
        }
    }

    #[test]
    fn every_ticket_must_be_approved_before_the_push_is_released() {
        let mut body = section(&[(OLD, NEW, "refs/heads/main"), (OLD, NEW, "refs/heads/b")]);
        body.extend(empty_pack());
        let (mut gate, _) = held_open(&body, &hold_json(&["t-1", "t-2"]));
        assert_eq!(
            gate.hold_wait_request().expect("asked").tickets,
            ["t-1", "t-2"]
        );
        let half = wait_json(&[
            ("t-1", TicketState::Approved, "bob", None),
            ("t-2", TicketState::Pending, "", None),
        ]);
        assert!(matches!(
            gate.on_hold_wait(ok(&half)),
            ResumeAction::Respond(_)
        ));
    }

    #[test]
    fn a_denied_ref_or_a_window_of_zero_refuses_at_once() {
        let body = update_body();
        let mut gate =
            PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).hold_window(5000);
        run(&mut gate, &body, 9);
        let mut two = section(&[(OLD, NEW, "refs/heads/main"), (OLD, NEW, "refs/heads/b")]);
        two.extend(empty_pack());
        let mut gate2 =
            PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed).hold_window(5000);
        run(&mut gate2, &two, 9);
        assert!(matches!(
            gate2.on_callout(ok(&hold_json(&["t-1", "deny"]))),
            ResumeAction::Respond(_)
        ));
        let mut off = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Closed);
        run(&mut off, &body, 9);
        assert!(matches!(
            off.on_callout(ok(&hold_json(&["t-1"]))),
            ResumeAction::Respond(_)
        ));
        assert!(off.hold_wait_request().is_none());
        // An allow needs no wait either.
        assert!(matches!(
            gate.on_callout(ok(&allow_all(1))),
            ResumeAction::Resume(_)
        ));
    }

    #[test]
    fn internal_failures_refuse_with_a_report() {
        let mut gate = PushGate::new(meta(), BodyEncoding::Identity, FailureMode::Open);
        run(&mut gate, &update_body(), 100);
        let answer = gate.fail_internal("could not restore the body");
        assert!(
            String::from_utf8_lossy(&answer).contains("ng refs/heads/main gitgate:error:internal")
        );
    }
}
