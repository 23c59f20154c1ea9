//! The gate's plugin configuration: serde types with defaults, and validation.
//!
//! Shape (contract, "Filter plugin configuration"):
//!
//! ```yaml
//! approval: { cluster: gitgate_approval, authority: gitgate-approval, timeout_ms: 5000,
//!             failure_mode: closed }
//! gate: { path_prefix: /, repositories: ["**"] }
//! identity: { subject_claim: sub, agent_claim: agent, acting_for_claim: act_for,
//!             groups_claim: groups, token_id_claim: jti,
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

use crate::glob::RepoGlob;
use crate::request;

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
}

impl Default for GateSection {
    fn default() -> Self {
        GateSection {
            path_prefix: default_path_prefix(),
            repositories: default_repositories(),
        }
    }
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
            metadata_namespace: "envoy.filters.http.jwt_authn".into(),
            payload_key: "jwt_payload".into(),
        }
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
        let identity = &config.identity;
        for (field, value) in [
            ("identity.subject_claim", &identity.subject_claim),
            ("identity.agent_claim", &identity.agent_claim),
            ("identity.acting_for_claim", &identity.acting_for_claim),
            ("identity.groups_claim", &identity.groups_claim),
            ("identity.token_id_claim", &identity.token_id_claim),
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

    #[test]
    fn empty_claim_names_are_rejected() {
        let err = parse(json!({"approval": {"cluster": "c"}, "identity": {"groups_claim": ""}}))
            .expect_err("invalid");
        assert_eq!(err.field, "identity.groups_claim");
    }
}
