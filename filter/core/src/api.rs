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
