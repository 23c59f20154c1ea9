//! The gate's plugin configuration: serde types with defaults, and validation.
//!
//! Shape (contract, "Filter plugin configuration"):
//!
//! ```yaml
//! approval: { cluster: gitgate_approval, authority: gitgate-approval, timeout_ms: 5000,
//!             failure_mode: closed, hold_window_ms: 60000,
//!             token: { env: GITGATE_FILTER_TOKEN, missing: error } }  # see crate::service_token
//! gate: { path_prefix: /, repositories: ["**"], max_summary_commits: 1000 }
//! identity: { subject_claim: sub, agent_claim: agent, acting_for_claim: act_for,
//!             groups_claim: groups, token_id_claim: jti, session_claim: sid,
//!             actor_claim: act,
//!             metadata_namespace: envoy.filters.http.jwt_authn, payload_key: jwt_payload }
//! masking: { enabled: true, paths: ["**"], compressed: withhold }   # see crate::mask::config
//! scan: { disable: [generic-secret-unquoted] }                       # a gitgate-scan config
//! secrets: { enabled: true, bypass_option: gitgate.bypass }          # see crate::push_scan::config
//! ```
//!
//! Unknown fields are errors, and every error names its field, e.g.
//! `approval.timeout_ms: must be between 1 and 60000`. The adapter turns the bytes Envoy hands
//! over (protobuf Struct, JSON or YAML) into a `serde_json::Value` and calls [`GateConfig::from_value`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::Identity;
use crate::glob::RepoGlob;
use crate::{pairs, request};

/// The longest callout timeout accepted, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// What to do with a push when the approval service fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// Refuse the push (the default).
    #[default]
    Closed,
    /// Let the push through.
    Open,
}

/// The whole configuration of the gate root context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// How to reach the approval service.
    pub approval: ApprovalConfig,
    /// Which requests are gated.
    #[serde(default)]
    pub gate: GateSection,
    /// Where the identity comes from.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Which responses are masked, and how (see [`crate::mask::config`]).
    #[serde(default)]
    pub masking: crate::mask::MaskingSection,
    /// The secret detection rules: a `gitgate-scan` configuration (`fingerprint_key`,
    /// `disable`, `overrides`, `rules`, `allowlist`); absent means the built-in rules.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub scan: serde_json::Value,
    /// Secret push protection: which pushes are scanned, how far, and the bypass option (see
    /// [`crate::push_scan::config`]).
    #[serde(default)]
    pub secrets: crate::push_scan::SecretsSection,
    /// The audit record: whether every request's event is sent, queue bounds and list caps
    /// (see [`crate::audit::config`]).
    #[serde(default)]
    pub audit: crate::audit::AuditSection,
    /// What a fetch whose pack carries a secret gets: passed with an audit record, or refused
    /// for chosen identities (see [`crate::fetch_scan::config`]).
    #[serde(default)]
    pub fetch: crate::fetch_scan::config::FetchSection,
}

/// The `approval` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// The Envoy cluster of the approval service (required).
    pub cluster: String,
    /// The `:authority` of the callout.
    #[serde(default = "default_authority")]
    pub authority: String,
    /// The callout timeout in milliseconds, 1..=60000. Never 0, which Envoy reads as no timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Refuse (closed) or forward (open) pushes when the service fails.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Hold and forward: how long a held push that is still open waits for a reviewer, in
    /// milliseconds, with the end of its pack withheld; 0 turns it off (a held push is refused
    /// at once). 0..=[`MAX_HOLD_WINDOW_MS`], default [`DEFAULT_HOLD_WINDOW_MS`].
    #[serde(default = "default_hold_window_ms")]
    pub hold_window_ms: u64,
    /// The shared secret sent on every callout, named by an environment variable (see
    /// [`crate::service_token`]).
    #[serde(default)]
    pub token: crate::service_token::TokenSection,
}

/// Default for [`ApprovalConfig::hold_window_ms`]: one minute. Long enough for a reviewer who
/// is watching (a chat notification, a click) to release the push; short enough that an agent
/// whose push nobody is watching learns within a minute that it is held, and that the push's
/// stream, its connection to the Git server and the Git server's half-received pack are not
/// kept open long. The pusher's terminal shows nothing while it waits (see SHORTCOMINGS.md).
pub const DEFAULT_HOLD_WINDOW_MS: u64 = 60_000;

/// The longest hold window accepted: five minutes, the approval service's own cap on a wait
/// (`hold_wait_max`), and a twelfth of the shipped configurations' `stream_idle_timeout`
/// (3600 s), which a held push must stay well under since nothing moves on it while it waits.
pub const MAX_HOLD_WINDOW_MS: u64 = 300_000;

fn default_hold_window_ms() -> u64 {
    DEFAULT_HOLD_WINDOW_MS
}

/// The `gate` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    /// The path under which repositories live.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Globs of gated repository paths (see [`crate::glob`]).
    #[serde(default = "default_repositories")]
    pub repositories: Vec<String>,
    /// Commits kept at most in a push's pack summary (for the reviewer and the audit record);
    /// past it the summary says it was cut. 0..=100000.
    #[serde(default = "default_max_summary_commits")]
    pub max_summary_commits: u32,
}

impl Default for GateSection {
    fn default() -> Self {
        GateSection {
            path_prefix: default_path_prefix(),
            repositories: default_repositories(),
            max_summary_commits: default_max_summary_commits(),
        }
    }
}

fn default_max_summary_commits() -> u32 {
    crate::push_scan::summary::DEFAULT_MAX_SUMMARY_COMMITS
}

/// The `identity` section: claim names and where jwt_authn stores the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Claim holding the subject.
    pub subject_claim: String,
    /// Claim holding the agent flag (bool).
    pub agent_claim: String,
    /// Claim holding the person an agent acts for.
    pub acting_for_claim: String,
    /// Claim holding the groups (list of strings).
    pub groups_claim: String,
    /// Claim holding the token id.
    pub token_id_claim: String,
    /// Claim holding the session id; events without it are grouped by token id.
    pub session_claim: String,
    /// Claim holding the RFC 8693 actor (`{"act": {"sub": "<agent>"}}`): when the token has
    /// `<actor_claim>.sub`, that is the subject (an agent) and the token's subject is the person
    /// it acts for, whatever `agent_claim` and `acting_for_claim` say.
    pub actor_claim: String,
    /// Dynamic metadata namespace written by jwt_authn.
    pub metadata_namespace: String,
    /// Key of the payload inside that namespace (`payload_in_metadata`).
    pub payload_key: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            subject_claim: "sub".into(),
            agent_claim: "agent".into(),
            acting_for_claim: "act_for".into(),
            groups_claim: "groups".into(),
            token_id_claim: "jti".into(),
            session_claim: "sid".into(),
            actor_claim: "act".into(),
            metadata_namespace: "envoy.filters.http.jwt_authn".into(),
            payload_key: "jwt_payload".into(),
        }
    }
}

/// The member of an RFC 8693 `act` claim that names the actor (RFC 8693 §4.1).
pub const ACTOR_SUBJECT: &str = "sub";

impl IdentityConfig {
    /// Who is asking, from the validated token's claims; `None` without a subject.
    ///
    /// `claim` reads one claim by its path in the payload (`["sub"]`, `["act", "sub"]`) and
    /// returns the leaf's bytes as `get_property` gives them (envoy-wasm.md §4): a nested claim
    /// is read by its own leaf path rather than by decoding the whole struct.
    ///
    /// With an actor (`<actor_claim>.sub`, RFC 8693 §4.1) the actor is the subject and an agent,
    /// and the token's `sub` is the person it acts for; a nested `act` inside it (earlier actors
    /// of a delegation chain) is not read. Without one, the flat claims apply.
    pub fn identity(&self, claim: &dyn Fn(&[&str]) -> Option<Vec<u8>>) -> Option<Identity> {
        let text = |path: &[&str]| claim(path).and_then(|v| pairs::string_value(&v));
        let subject = text(&[&self.subject_claim])?;
        let actor = text(&[&self.actor_claim, ACTOR_SUBJECT]);
        let (subject, agent, acting_for) = match actor {
            Some(actor) => (actor, true, Some(subject)),
            None => (
                subject,
                claim(&[&self.agent_claim])
                    .and_then(|v| pairs::bool_value(&v))
                    .unwrap_or(false),
                text(&[&self.acting_for_claim]),
            ),
        };
        Some(Identity {
            subject,
            agent,
            acting_for,
            groups: claim(&[&self.groups_claim])
                .map(|v| pairs::string_list_claim(&v))
                .unwrap_or_default(),
            token_id: text(&[&self.token_id_claim]),
            session: text(&[&self.session_claim]),
        })
    }
}

fn default_authority() -> String {
    "gitgate-approval".into()
}

fn default_timeout_ms() -> u64 {
    5000
}

fn default_path_prefix() -> String {
    "/".into()
}

fn default_repositories() -> Vec<String> {
    vec!["**".into()]
}

/// A configuration error naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `approval.timeout_ms`.
    pub field: String,
    /// What is wrong, lower case.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A validated configuration, with the prefix normalized and the globs compiled.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The configuration as given (with defaults filled in).
    pub config: FilterConfig,
    /// `gate.path_prefix`, normalized to start and end with `/`.
    pub path_prefix: String,
    /// `gate.repositories`, compiled.
    pub repositories: Vec<RepoGlob>,
}

impl GateConfig {
    /// Parses and validates a configuration value.
    pub fn from_value(value: serde_json::Value) -> Result<GateConfig, ConfigError> {
        let config: FilterConfig =
            serde_path_to_error::deserialize(value).map_err(|err| serde_error(&err))?;
        Self::validate(config)
    }

    /// Validates an already deserialized configuration.
    pub fn validate(config: FilterConfig) -> Result<GateConfig, ConfigError> {
        let approval = &config.approval;
        if approval.cluster.trim().is_empty() {
            return Err(ConfigError::new("approval.cluster", "must not be empty"));
        }
        if approval.authority.trim().is_empty() {
            return Err(ConfigError::new("approval.authority", "must not be empty"));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&approval.timeout_ms) {
            return Err(ConfigError::new(
                "approval.timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS}"),
            ));
        }
        if approval.hold_window_ms > MAX_HOLD_WINDOW_MS {
            return Err(ConfigError::new(
                "approval.hold_window_ms",
                format!("must be at most {MAX_HOLD_WINDOW_MS} (0 turns hold and forward off)"),
            ));
        }
        let prefix = &config.gate.path_prefix;
        if !prefix.starts_with('/') {
            return Err(ConfigError::new("gate.path_prefix", "must start with /"));
        }
        let path_prefix = request::normalize_prefix(prefix)
            .map_err(|err| ConfigError::new("gate.path_prefix", err.to_string()))?;
        if config.gate.repositories.is_empty() {
            return Err(ConfigError::new(
                "gate.repositories",
                "must list at least one glob",
            ));
        }
        let repositories = config
            .gate
            .repositories
            .iter()
            .enumerate()
            .map(|(i, pattern)| {
                RepoGlob::new(pattern).map_err(|err| {
                    ConfigError::new(format!("gate.repositories[{i}]"), err.to_string())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_commits = crate::push_scan::summary::MAX_SUMMARY_COMMITS;
        if config.gate.max_summary_commits > max_commits {
            return Err(ConfigError::new(
                "gate.max_summary_commits",
                format!("must be at most {max_commits}"),
            ));
        }
        let identity = &config.identity;
        for (field, value) in [
            ("identity.subject_claim", &identity.subject_claim),
            ("identity.agent_claim", &identity.agent_claim),
            ("identity.acting_for_claim", &identity.acting_for_claim),
            ("identity.groups_claim", &identity.groups_claim),
            ("identity.token_id_claim", &identity.token_id_claim),
            ("identity.actor_claim", &identity.actor_claim),
            ("identity.metadata_namespace", &identity.metadata_namespace),
            ("identity.payload_key", &identity.payload_key),
        ] {
            if value.is_empty() {
                return Err(ConfigError::new(field, "must not be empty"));
            }
        }
        crate::mask::config::check(&config.masking)?;
        crate::mask::scan_config(&config.scan)?;
        crate::push_scan::config::check(&config.secrets)?;
        crate::audit::config::check(&config.audit)?;
        crate::service_token::check(&config.approval.token)?;
        Ok(GateConfig {
            config,
            path_prefix,
            repositories,
        })
    }

    /// True when the repository path is gated.
    pub fn is_gated(&self, repository: &str) -> bool {
        crate::glob::any_matches(&self.repositories, repository)
    }
}

/// Names the field of a serde error: `missing field `x`` and `unknown field `x`` errors are
/// reported on the field itself rather than on the enclosing section.
fn serde_error(err: &serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
    let path = err.path().to_string();
    let section = if path == "." { String::new() } else { path };
    let message = err.inner().to_string();
    let join = |name: &str| {
        if section.is_empty() {
            name.to_owned()
        } else {
            format!("{section}.{name}")
        }
    };
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = quoted("missing field `") {
        return ConfigError::new(join(&name), "is required");
    }
    if let Some(name) = quoted("unknown field `") {
        // The path already ends at the unknown key.
        let field = if section.is_empty() { name } else { section };
        return ConfigError::new(field, "unknown field");
    }
    let field = if section.is_empty() {
        "configuration".to_owned()
    } else {
        section
    };
    // serde_json appends " at line N column M", meaningless for a value.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or_default()
        .to_owned();
    ConfigError::new(field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<GateConfig, ConfigError> {
        GateConfig::from_value(value)
    }

    #[test]
    fn only_the_cluster_is_required() {
        let config = parse(json!({"approval": {"cluster": "gitgate_approval"}})).expect("valid");
        assert_eq!(config.config.approval.authority, "gitgate-approval");
        assert_eq!(config.config.approval.timeout_ms, 5000);
        assert_eq!(config.config.approval.failure_mode, FailureMode::Closed);
        assert_eq!(config.path_prefix, "/");
        assert!(config.is_gated("any/repo.git"));
        assert_eq!(config.config.identity, IdentityConfig::default());
    }

    #[test]
    fn a_full_configuration_parses() {
        let config = parse(json!({
            "approval": {"cluster": "c", "authority": "a", "timeout_ms": 100, "failure_mode": "open"},
            "gate": {"path_prefix": "/git", "repositories": ["org/*.git"]},
            "identity": {"subject_claim": "email"}
        }))
        .expect("valid");
        assert_eq!(config.config.approval.failure_mode, FailureMode::Open);
        assert_eq!(config.path_prefix, "/git/");
        assert!(config.is_gated("org/app.git"));
        assert!(!config.is_gated("demo.git"));
        assert_eq!(config.config.identity.subject_claim, "email");
        assert_eq!(config.config.identity.groups_claim, "groups");
    }

    #[test]
    fn a_missing_cluster_names_the_field() {
        let err = parse(json!({"approval": {}})).expect_err("invalid");
        assert_eq!(err.to_string(), "approval.cluster: is required");
        let err = parse(json!({})).expect_err("invalid");
        assert_eq!(err.to_string(), "approval: is required");
    }

    #[test]
    fn unknown_fields_are_rejected_by_name() {
        let err = parse(json!({"approval": {"cluster": "c", "timeout": 1}})).expect_err("invalid");
        assert_eq!(err.to_string(), "approval.timeout: unknown field");
        let err = parse(json!({"approval": {"cluster": "c"}, "extra": 1})).expect_err("invalid");
        assert_eq!(err.to_string(), "extra: unknown field");
    }

    #[test]
    fn the_hold_window_defaults_to_a_minute_and_is_bounded() {
        let config = parse(json!({"approval": {"cluster": "c"}})).expect("valid");
        assert_eq!(
            config.config.approval.hold_window_ms,
            DEFAULT_HOLD_WINDOW_MS
        );
        let off = parse(json!({"approval": {"cluster": "c", "hold_window_ms": 0}})).expect("valid");
        assert_eq!(off.config.approval.hold_window_ms, 0);
        let err = parse(json!({"approval": {"cluster": "c", "hold_window_ms": 300_001}}))
            .expect_err("invalid");
        assert_eq!(err.field, "approval.hold_window_ms");
    }

    #[test]
    fn the_timeout_must_be_in_range() {
        for timeout in [0, 60_001] {
            let err = parse(json!({"approval": {"cluster": "c", "timeout_ms": timeout}}))
                .expect_err("invalid");
            assert_eq!(
                err.to_string(),
                "approval.timeout_ms: must be between 1 and 60000"
            );
        }
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let err = parse(json!({"approval": {"cluster": "c", "timeout_ms": "soon"}}))
            .expect_err("invalid");
        assert_eq!(err.field, "approval.timeout_ms");
        let err = parse(json!({"approval": {"cluster": "c", "failure_mode": "maybe"}}))
            .expect_err("invalid");
        assert_eq!(err.field, "approval.failure_mode");
    }

    #[test]
    fn bad_globs_name_their_index() {
        let err =
            parse(json!({"approval": {"cluster": "c"}, "gate": {"repositories": ["ok", "a**"]}}))
                .expect_err("invalid");
        assert_eq!(err.field, "gate.repositories[1]");
        let err = parse(json!({"approval": {"cluster": "c"}, "gate": {"repositories": []}}))
            .expect_err("invalid");
        assert_eq!(err.field, "gate.repositories");
    }

    #[test]
    fn the_prefix_must_be_absolute() {
        let err = parse(json!({"approval": {"cluster": "c"}, "gate": {"path_prefix": "git"}}))
            .expect_err("invalid");
        assert_eq!(err.to_string(), "gate.path_prefix: must start with /");
    }

    /// A claim reader over a JSON payload, answering leaf paths as Envoy does: strings as
    /// their bytes, bools as one byte, lists in the pairs encoding; nothing for a struct.
    fn claims(payload: serde_json::Value) -> impl Fn(&[&str]) -> Option<Vec<u8>> {
        move |path: &[&str]| {
            let mut value = &payload;
            for name in path {
                value = value.get(name)?;
            }
            match value {
                serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
                serde_json::Value::Bool(b) => Some(vec![u8::from(*b)]),
                serde_json::Value::Array(items) => {
                    let items: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                    let list: Vec<(&[u8], &[u8])> =
                        items.iter().map(|i| (i.as_bytes(), &b""[..])).collect();
                    Some(pairs::encode(&list))
                }
                _ => None,
            }
        }
    }

    #[test]
    fn an_rfc_8693_actor_is_the_subject_acting_for_the_tokens_subject() {
        let identity = IdentityConfig::default();
        let token = claims(json!({
            "sub": "alice", "act": {"sub": "agent-7", "act": {"sub": "ci"}},
            "agent": false, "act_for": "mallory", "groups": ["dev"], "jti": "t-1", "sid": "s-1"
        }));
        let who = identity.identity(&token).expect("a subject");
        assert_eq!(who.subject, "agent-7");
        assert!(who.agent);
        assert_eq!(who.acting_for.as_deref(), Some("alice"));
        assert_eq!(who.groups, ["dev"]);
        assert_eq!(who.token_id.as_deref(), Some("t-1"));
        assert_eq!(who.session.as_deref(), Some("s-1"));
    }

    #[test]
    fn without_an_actor_the_flat_claims_apply() {
        let identity = IdentityConfig::default();
        let token = claims(json!({"sub": "agent-7", "agent": true, "act_for": "alice"}));
        let who = identity.identity(&token).expect("a subject");
        assert_eq!((who.subject.as_str(), who.agent), ("agent-7", true));
        assert_eq!(who.acting_for.as_deref(), Some("alice"));

        let person = identity
            .identity(&claims(json!({"sub": "bob"})))
            .expect("a subject");
        assert_eq!((person.subject.as_str(), person.agent), ("bob", false));
        assert_eq!(person.acting_for, None);

        // An `act` without a `sub` names no actor.
        let odd = identity
            .identity(&claims(json!({"sub": "bob", "act": {"iss": "x"}})))
            .expect("a subject");
        assert_eq!((odd.subject.as_str(), odd.agent), ("bob", false));
        assert!(
            identity
                .identity(&claims(json!({"act": {"sub": "a"}})))
                .is_none()
        );
    }

    #[test]
    fn the_actor_claim_is_configurable() {
        let config =
            parse(json!({"approval": {"cluster": "c"}, "identity": {"actor_claim": "may_act"}}))
                .expect("valid");
        let token = claims(json!({"sub": "alice", "act": {"sub": "x"}, "may_act": {"sub": "y"}}));
        let who = config.config.identity.identity(&token).expect("a subject");
        assert_eq!(who.subject, "y");
        let err = parse(json!({"approval": {"cluster": "c"}, "identity": {"actor_claim": ""}}))
            .expect_err("invalid");
        assert_eq!(err.field, "identity.actor_claim");
    }

    #[test]
    fn empty_claim_names_are_rejected() {
        let err = parse(json!({"approval": {"cluster": "c"}, "identity": {"groups_claim": ""}}))
            .expect_err("invalid");
        assert_eq!(err.field, "identity.groups_claim");
    }
}
