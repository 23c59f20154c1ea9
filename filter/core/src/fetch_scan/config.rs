//! The `fetch` section of the gate's configuration: what happens to a fetch or clone whose pack
//! carries a secret.
//!
//! Pack data cannot be masked (a changed byte changes object ids and the pack checksum), so a
//! secret in a fetched object is handled by policy instead:
//!
//! ```yaml
//! fetch:
//!   enabled: true                  # scan the packs of fetches and clones (default true)
//!   on_secret: pass-with-audit     # pass-with-audit | refuse
//!   refuse_for:                    # who is refused under `on_secret: refuse`; empty: everyone
//!     subjects: [agent-7]          # token subjects, exactly
//!     groups: [contractors]        # any of the token's groups
//!     agents: true                 # every agent token
//!   limits:
//!     max_object_bytes: 67108864   # bytes scanned of one object (64 MiB)
//!     max_fetch_bytes: 2147483648  # bytes scanned of one fetch (2 GiB)
//!     max_findings: 100            # findings kept per fetch
//!     path_map_bytes: 4194304      # memory for blob paths read from the fetched trees
//!     delta_base_bytes: 16777216   # memory for delta bases
//! ```
//!
//! The rules are the top-level `scan` section's, compiled once for masking and shared.

use serde::{Deserialize, Serialize};

use crate::api::Identity;
use crate::config::ConfigError;
use crate::push_scan::config::{
    DEFAULT_DELTA_BASE_BYTES, DEFAULT_MAX_FINDINGS, DEFAULT_MAX_OBJECT_BYTES,
    DEFAULT_MAX_PUSH_BYTES, DEFAULT_PATH_MAP_BYTES, MAX_BUDGET_BYTES, MAX_FINDINGS,
};
use crate::push_scan::{OnLimit, ScanLimits, SecretScanning};

/// What happens to a fetch whose pack carries a secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnSecret {
    /// The fetch completes; the findings go to the log, the counters and the audit record.
    #[default]
    PassWithAudit,
    /// For the identities in `refuse_for`, the pack is never completed: the response ends with
    /// an error git prints, and git discards what it received. Others pass with an audit record.
    Refuse,
}

/// `fetch.refuse_for`: whose fetches `on_secret: refuse` applies to. All empty means everyone,
/// requests without a token included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RefuseFor {
    /// Token subjects, compared exactly.
    pub subjects: Vec<String>,
    /// Groups: a token in any of them is refused.
    pub groups: Vec<String>,
    /// Every agent token (the `agent` claim set).
    pub agents: bool,
}

impl RefuseFor {
    fn is_everyone(&self) -> bool {
        self.subjects.is_empty() && self.groups.is_empty() && !self.agents
    }

    /// Whether `identity` (`None`: no valid token) is named here.
    pub fn covers(&self, identity: Option<&Identity>) -> bool {
        if self.is_everyone() {
            return true;
        }
        let Some(identity) = identity else {
            return false;
        };
        (self.agents && identity.agent)
            || self.subjects.contains(&identity.subject)
            || identity.groups.iter().any(|g| self.groups.contains(g))
    }
}

/// `fetch.limits`: how much of a fetch is scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchLimitsSection {
    /// Bytes scanned of one object.
    pub max_object_bytes: u64,
    /// Bytes scanned of one fetch, all objects together; scanning stops there.
    pub max_fetch_bytes: u64,
    /// Findings kept per fetch; past it scanning stops.
    pub max_findings: u32,
    /// Memory for the map from blob ids to paths.
    pub path_map_bytes: u64,
    /// Memory for delta bases, so that a delta is scanned as the whole object it makes.
    pub delta_base_bytes: u64,
}

impl Default for FetchLimitsSection {
    fn default() -> Self {
        FetchLimitsSection {
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_fetch_bytes: DEFAULT_MAX_PUSH_BYTES,
            max_findings: DEFAULT_MAX_FINDINGS,
            path_map_bytes: DEFAULT_PATH_MAP_BYTES,
            delta_base_bytes: DEFAULT_DELTA_BASE_BYTES,
        }
    }
}

/// The `fetch` section as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSection {
    /// Whether fetch packs are scanned at all.
    pub enabled: bool,
    /// What a secret in a fetched pack means.
    pub on_secret: OnSecret,
    /// Whom `on_secret: refuse` applies to.
    pub refuse_for: RefuseFor,
    /// How much is scanned.
    pub limits: FetchLimitsSection,
}

impl Default for FetchSection {
    fn default() -> Self {
        FetchSection {
            enabled: true,
            on_secret: OnSecret::PassWithAudit,
            refuse_for: RefuseFor::default(),
            limits: FetchLimitsSection::default(),
        }
    }
}

/// Checks a `fetch` section; errors name the field.
pub fn check(section: &FetchSection) -> Result<(), ConfigError> {
    let limits = &section.limits;
    for (field, value) in [
        ("fetch.limits.max_object_bytes", limits.max_object_bytes),
        ("fetch.limits.max_fetch_bytes", limits.max_fetch_bytes),
    ] {
        if value == 0 {
            return Err(ConfigError::new(field, "must be at least 1"));
        }
    }
    if !(1..=MAX_FINDINGS).contains(&limits.max_findings) {
        return Err(ConfigError::new(
            "fetch.limits.max_findings",
            format!("must be between 1 and {MAX_FINDINGS}"),
        ));
    }
    for (field, value) in [
        ("fetch.limits.path_map_bytes", limits.path_map_bytes),
        ("fetch.limits.delta_base_bytes", limits.delta_base_bytes),
    ] {
        if value > MAX_BUDGET_BYTES {
            return Err(ConfigError::new(
                field,
                format!("must be at most {MAX_BUDGET_BYTES}"),
            ));
        }
    }
    let names = section
        .refuse_for
        .subjects
        .iter()
        .map(|s| ("fetch.refuse_for.subjects", s))
        .chain(
            section
                .refuse_for
                .groups
                .iter()
                .map(|g| ("fetch.refuse_for.groups", g)),
        );
    for (field, name) in names {
        if name.trim().is_empty() {
            return Err(ConfigError::new(field, "must not hold an empty name"));
        }
    }
    Ok(())
}

/// A checked `fetch` section, in the form each fetch uses.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    on_secret: OnSecret,
    refuse_for: RefuseFor,
    limits: ScanLimits,
}

impl FetchPolicy {
    /// Checks `section`; `None` when fetch scanning is off.
    pub fn from_section(section: &FetchSection) -> Result<Option<FetchPolicy>, ConfigError> {
        check(section)?;
        if !section.enabled {
            return Ok(None);
        }
        let budget = |value: u64| usize::try_from(value.min(MAX_BUDGET_BYTES)).unwrap_or(0);
        let limits = &section.limits;
        Ok(Some(FetchPolicy {
            on_secret: section.on_secret,
            refuse_for: section.refuse_for.clone(),
            limits: ScanLimits {
                max_object_bytes: limits.max_object_bytes,
                max_push_bytes: limits.max_fetch_bytes,
                max_findings: usize::try_from(limits.max_findings).unwrap_or(usize::MAX),
                path_map_bytes: budget(limits.path_map_bytes),
                delta_base_bytes: budget(limits.delta_base_bytes),
                // Anything the push scan adds later keeps its default.
                ..ScanLimits::default()
            },
        }))
    }

    /// Whether a fetch by `identity` whose pack carries a secret is refused.
    pub fn refuses(&self, identity: Option<&Identity>) -> bool {
        self.on_secret == OnSecret::Refuse && self.refuse_for.covers(identity)
    }

    /// The scan limits of one fetch.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    /// The push scan's settings with this policy's limits, for the shared `rules`. A limit hit
    /// never refuses a fetch (what was not scanned is recorded), hence `pass-with-audit`.
    pub fn scanning(&self, rules: std::sync::Arc<gitgate_scan::RuleSet>) -> SecretScanning {
        SecretScanning::with_defaults(rules).limited(self.limits, OnLimit::PassWithAudit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, agent: bool, groups: &[&str]) -> Identity {
        Identity {
            subject: subject.into(),
            agent,
            acting_for: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            token_id: None,
            session: None,
        }
    }

    #[test]
    fn the_default_passes_every_fetch_with_an_audit_record() {
        let policy = FetchPolicy::from_section(&FetchSection::default())
            .expect("valid")
            .expect("on");
        assert!(!policy.refuses(Some(&identity("agent-7", true, &[]))));
        assert!(!policy.refuses(None));
    }

    #[test]
    fn refuse_applies_to_the_named_subjects_groups_and_agents_only() {
        let section = FetchSection {
            on_secret: OnSecret::Refuse,
            refuse_for: RefuseFor {
                subjects: vec!["bob".into()],
                groups: vec!["contractors".into()],
                agents: true,
            },
            ..FetchSection::default()
        };
        let policy = FetchPolicy::from_section(&section).unwrap().unwrap();
        assert!(policy.refuses(Some(&identity("bob", false, &[]))));
        assert!(policy.refuses(Some(&identity("carol", false, &["contractors"]))));
        assert!(policy.refuses(Some(&identity("agent-7", true, &[]))));
        assert!(!policy.refuses(Some(&identity("alice", false, &["staff"]))));
        assert!(!policy.refuses(None));
    }

    #[test]
    fn refuse_without_names_applies_to_everyone() {
        let section = FetchSection {
            on_secret: OnSecret::Refuse,
            ..FetchSection::default()
        };
        let policy = FetchPolicy::from_section(&section).unwrap().unwrap();
        assert!(policy.refuses(Some(&identity("alice", false, &[]))));
        assert!(policy.refuses(None));
    }

    #[test]
    fn bad_limits_and_names_are_refused_by_field() {
        let mut section = FetchSection::default();
        section.limits.max_fetch_bytes = 0;
        assert_eq!(
            check(&section).unwrap_err().field,
            "fetch.limits.max_fetch_bytes"
        );
        let mut section = FetchSection::default();
        section.limits.max_findings = MAX_FINDINGS + 1;
        assert_eq!(
            check(&section).unwrap_err().field,
            "fetch.limits.max_findings"
        );
        let mut section = FetchSection::default();
        section.refuse_for.groups = vec![" ".into()];
        assert_eq!(
            check(&section).unwrap_err().field,
            "fetch.refuse_for.groups"
        );
        let off = FetchSection {
            enabled: false,
            ..FetchSection::default()
        };
        assert!(FetchPolicy::from_section(&off).unwrap().is_none());
    }

    #[test]
    fn unknown_fields_and_values_are_named_in_the_plugin_configuration() {
        let parse = |fetch: serde_json::Value| {
            crate::config::GateConfig::from_value(serde_json::json!({
                "approval": { "cluster": "gitgate_approval" },
                "fetch": fetch,
            }))
        };
        let err = parse(serde_json::json!({ "on_secret": "block" })).unwrap_err();
        assert_eq!(err.field, "fetch.on_secret", "{err}");
        let err = parse(serde_json::json!({ "refuse_for": { "agent": true } })).unwrap_err();
        assert_eq!(err.field, "fetch.refuse_for.agent", "{err}");
        let config = parse(serde_json::json!({ "on_secret": "refuse" })).expect("valid");
        assert_eq!(config.config.fetch.on_secret, OnSecret::Refuse);
    }
}
