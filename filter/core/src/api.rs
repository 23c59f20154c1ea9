//! The verdict protocol between the filter and the approval service.
//!
//! The filter makes exactly one callout per push: `POST /v1/verdicts` with a [`VerdictRequest`]
//! as JSON. The service answers `200` with a [`VerdictResponse`] holding one [`RefVerdict`] per
//! update, in the same order as [`VerdictRequest::updates`]. Anything else (another status, a
//! body that does not parse, a count that does not match) is treated by the filter as "the
//! service failed" and handled by its failure mode.
//!
//! The callout is made as soon as the command section is read, except for a push that asks for
//! a secret bypass (`git push -o gitgate.bypass=<why>`): that one waits until the whole pack is
//! scanned and carries the redacted [`SecretFinding`]s, so that the service can hold the push
//! for a security reviewer. The fields added for this are optional both ways, so older peers
//! keep working (and a filter never forwards findings a service did not review).
//!
//! Both sides use these types, so the wire format lives in one place.

use serde::{Deserialize, Serialize};

/// The path of the verdict endpoint on the approval service.
pub const VERDICTS_PATH: &str = "/v1/verdicts";

/// The path where the filter waits for the decision on a held push that is still open.
pub const HOLD_WAIT_PATH: &str = "/v1/holds/wait";

/// The path where the filter delivers its per-request audit events.
pub const EVENTS_PATH: &str = "/v1/events";

/// Who is asking, as the filter read it from the validated token's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The token's subject: the agent or person that holds the token.
    pub subject: String,
    /// True when the token says its holder is an autonomous agent.
    #[serde(default)]
    pub agent: bool,
    /// The person an agent acts for, when the token names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// Groups the subject belongs to, from the configured groups claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The token id (`jti`), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// The session the token belongs to (the configured session claim), when present.
    /// Audit events are grouped by this, or by `token_id` when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What a ref update does, derived from which side of it is the zero id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// The old id is the zero id.
    Create,
    /// Neither id is the zero id.
    Update,
    /// The new id is the zero id.
    Delete,
}

impl Operation {
    /// The lower-case name used in policy files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

/// One ref update of a push, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    /// The full ref name, for example `refs/heads/main`.
    #[serde(rename = "ref")]
    pub refname: String,
    /// The old object id in lower-case hex (all zeros for a create).
    pub old: String,
    /// The new object id in lower-case hex (all zeros for a delete).
    pub new: String,
    /// Create, update or delete.
    pub operation: Operation,
}

/// The filter's question: may these updates reach the upstream?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictRequest {
    /// Envoy's `x-request-id` for this push, also written in Envoy's access log.
    pub request_id: String,
    /// The repository path below the gated prefix, for example `demo.git` or `org/app.git`.
    pub repository: String,
    /// Who is pushing.
    pub identity: Identity,
    /// True when the client asked for an atomic push.
    #[serde(default)]
    pub atomic: bool,
    /// `sha1` or `sha256`.
    pub object_format: String,
    /// The push options (`git push -o`), in the order sent.
    #[serde(default)]
    pub push_options: Vec<String>,
    /// Every ref update, in the order the client sent them.
    pub updates: Vec<RefUpdate>,
    /// Secrets the filter found in the pushed objects, redacted (never the value). Only sent
    /// when the pusher asked for a bypass: the callout then waits until the pack is scanned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<SecretFinding>,
    /// Why the pusher wants the secrets let through (`git push -o gitgate.bypass=<why>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_reason: Option<String>,
    /// What the pack carries, when the filter read it before asking (bypass pushes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackSummary>,
}

/// What a pushed pack carries, as the filter read it while it streamed by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackSummary {
    /// Entries in the pack header.
    pub objects: u64,
    /// Bytes of pack data, header to trailer.
    pub bytes: u64,
    /// Entries per kind: commits, trees, blobs, tags, and deltas whose kind was not resolved.
    #[serde(default)]
    pub commits_count: u64,
    #[serde(default)]
    pub trees: u64,
    #[serde(default)]
    pub blobs: u64,
    #[serde(default)]
    pub tags: u64,
    #[serde(default)]
    pub unresolved_deltas: u64,
    /// The commits the pack introduces, in pack order, at most the configured number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<CommitSummary>,
    /// True when more commits were read than `commits` holds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub commits_truncated: bool,
}

/// One commit read from a pushed pack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSummary {
    /// The commit's object id in hex.
    pub id: String,
    /// Parent ids in hex, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// `Name <email>` of the author, as the commit says (unverified).
    #[serde(default)]
    pub author: String,
    /// Author time, seconds since the epoch, when the header parses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_time: Option<i64>,
    /// The first line of the message, at most 200 characters.
    #[serde(default)]
    pub subject: String,
}

/// The filter's long poll on a held push that is still open: "tell me when these tickets are
/// decided, or after `wait_ms`". Sent once the whole pack was read (its end withheld), so
/// `pack` is complete; the service attaches it to the tickets for the reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldWaitRequest {
    /// The push's request id, as in the verdict request.
    pub request_id: String,
    /// The repository, as in the verdict request.
    pub repository: String,
    /// The tickets of the held updates, in update order, without repeats.
    pub tickets: Vec<String>,
    /// The longest the service may keep the request open before answering `pending`.
    pub wait_ms: u64,
    /// What the pack carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackSummary>,
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TicketState {
    /// No decision yet (or not enough approvals yet).
    Pending,
    /// Approved: the update may go through.
    Approved,
    /// Denied by a reviewer.
    Denied,
    /// Expired or otherwise no longer decidable.
    Expired,
}

/// One ticket's state in a [`HoldWaitResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketStatus {
    /// The ticket id.
    pub ticket: String,
    /// Where it stands.
    pub state: TicketState,
    /// The reviewers who decided it, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decided_by: Vec<String>,
    /// The reviewer's reason (required for a denial), one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The service's answer to a [`HoldWaitRequest`]: one status per ticket, in request order.
/// It answers as soon as every ticket is approved or any is denied or expired, else when
/// `wait_ms` has passed (with the pending ones still `pending`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldWaitResponse {
    /// One status per requested ticket.
    pub tickets: Vec<TicketStatus>,
}

/// A batch of audit events from one filter worker (`POST /v1/events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Events in the order their requests ended on that worker.
    pub events: Vec<GateEvent>,
    /// Read events this worker dropped since its previous batch because its queue was full.
    #[serde(default)]
    pub dropped_reads: u64,
}

/// Whether a request could change the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// receive-pack: never dropped, retried until stored.
    Write,
    /// Everything else: recorded through a bounded queue; drops are counted.
    Read,
}

/// What happened to one request through the gate: who, what, the pack, the verdicts, what the
/// upstream did and what the client was shown (masked). Never a secret's value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateEvent {
    /// Envoy's request id (also in its access log).
    pub request_id: String,
    /// Read or write.
    pub kind: Option<EventKind>,
    /// When the request's headers arrived, milliseconds since the epoch (Envoy's clock).
    pub started_ms: u64,
    /// From the request's headers to its end, in milliseconds.
    pub duration_ms: u64,
    /// Who asked; `None` when there was no valid token (the request was refused before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The repository, when the path names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// `info-refs`, `upload-pack`, `receive-pack`, or `other`.
    pub service: String,
    /// For `info-refs`, the service it advertises (`git-upload-pack`, `git-receive-pack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_service: Option<String>,
    /// The Git protocol version the client asked for (`Git-Protocol: version=2`), 0 if none.
    #[serde(default)]
    pub protocol_version: u8,
    /// The request method and path (query string without credentials).
    pub method: String,
    pub path: String,
    /// Refs requested (ls-refs prefixes, want-ref) or advertised (info/refs, ls-refs output),
    /// at most the configured number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<String>,
    /// Object ids the client wanted (fetch), at most the configured number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wants: Vec<String>,
    /// Ref updates (push).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updates: Vec<RefUpdate>,
    /// Push options (push).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push_options: Vec<String>,
    /// The pack pushed (push) or sent back (fetch), as far as it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack: Option<PackSummary>,
    /// One verdict per update (push), as the service gave it, or as the filter decided when
    /// the service failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<RefVerdict>,
    /// The filter's decision label (`forwarded`, `refused:...`, ...), as in the access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The upstream's per-ref outcome from its report-status (push).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<RefOutcome>,
    /// Secrets found in the pushed or fetched objects (rule, place, fingerprint; no value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<SecretFinding>,
    /// Lines the client was shown (side-band 2/3 text, `ERR`, report-status reasons), after
    /// masking, at most the configured number of bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shown: Vec<String>,
    /// Final HTTP status sent to the client, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request body bytes received from the client, response body bytes sent to it.
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    /// Secret values masked in the response.
    #[serde(default)]
    pub masked: u64,
    /// Anything the filter could not record in full (lists cut, parse errors), one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The upstream's answer for one ref, from its report-status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefOutcome {
    /// The ref name.
    #[serde(rename = "ref")]
    pub refname: String,
    /// True for `ok`, false for `ng`.
    pub ok: bool,
    /// The `ng` reason, or `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One secret found in a pushed object, as the verdict protocol carries it: where it is and
/// which rule found it, with a keyed fingerprint in place of the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    /// The id of the rule that matched, e.g. `github-pat-classic`.
    pub rule: String,
    /// `blob`, `commit` or `tag`; absent when only the bytes a delta inserts were seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The object's id in hex; absent for a delta whose base is not in the pack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// 1-based line of the match in the object (as `git cat-file -p` shows it), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// Byte offset of the match in the object.
    #[serde(default)]
    pub offset: u64,
    /// The file's path in `commit`, for a blob whose path the pushed trees give.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The commit whose tree holds the blob at `path`, or the commit itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// HMAC-SHA256 of the value under the deployment's key, truncated: 32 hex digits.
    pub fingerprint: String,
}

/// The service's answer for one ref update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum RefVerdict {
    /// The update may go through.
    Allow,
    /// The update is refused.
    Deny {
        /// A stable machine-readable code, always starting with `gitgate:deny:`.
        code: String,
        /// A short human-readable reason (one line, no NUL).
        reason: String,
    },
    /// The update waits for a reviewer.
    Hold {
        /// A stable machine-readable code, always starting with `gitgate:hold:`.
        code: String,
        /// The ticket that a reviewer decides.
        ticket: String,
        /// Where the ticket can be decided.
        url: String,
        /// A short human-readable reason (one line, no NUL).
        #[serde(default)]
        reason: String,
    },
}

/// The service's answer to a [`VerdictRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictResponse {
    /// One verdict per update, in the order of [`VerdictRequest::updates`].
    pub verdicts: Vec<RefVerdict>,
    /// True when the service weighed [`VerdictRequest::findings`]. A filter that sent findings
    /// lets the push through only when this is set, so a service that predates findings (and
    /// would allow by its policy alone) cannot wave secrets through.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub findings_reviewed: bool,
}
