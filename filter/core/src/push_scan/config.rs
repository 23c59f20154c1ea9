//! The `secrets` section of the gate's configuration: whether pushes are scanned, with which
//! rules, within which limits, and the push option that asks for a bypass.
//!
//! ```yaml
//! secrets:
//!   enabled: true                  # default true
//!   rules: { disable: [jwt] }      # a gitgate-scan configuration; absent: the top-level `scan`
//!   bypass_option: gitgate.bypass  # git push -o gitgate.bypass="<why>"
//!   no_thin_packs: true            # advertise no-thin, so git sends complete packs
//!   limits:
//!     max_object_bytes: 67108864   # bytes scanned of one object (64 MiB)
//!     max_push_bytes: 2147483648   # bytes scanned of one push (2 GiB)
//!     on_limit: block              # block | pass-with-audit
//!     max_findings: 100            # findings kept and reported per push
//!     path_map_bytes: 4194304      # memory for blob paths read from the pushed trees
//!     delta_base_bytes: 16777216   # memory for delta bases, so modified files are seen whole
//!     max_scan_ms: 30000           # time spent scanning one push; 0: no time limit
//! ```
//!
//! Checking the section ([`check`]) is cheap and happens with the rest of the configuration;
//! compiling the rules ([`SecretScanning::from_config`]) takes tens of milliseconds natively and
//! a few hundred in V8, so the adapter does it once per VM.

use std::sync::Arc;

use gitgate_scan::{RuleSet, ScanConfig};
use serde::{Deserialize, Serialize};

use super::redact::Redactor;
use crate::config::{ConfigError, GateConfig};
use crate::pack_objects::{DEFAULT_MAX_OBJECTS, PackLimits};

/// The push option that asks for a bypass, when the configuration names none.
pub const DEFAULT_BYPASS_OPTION: &str = "gitgate.bypass";

/// Default for [`LimitsSection::max_object_bytes`]: 64 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 64 << 20;

/// Default for [`LimitsSection::max_push_bytes`]: 2 GiB.
pub const DEFAULT_MAX_PUSH_BYTES: u64 = 2 << 30;

/// Default for [`LimitsSection::max_findings`].
pub const DEFAULT_MAX_FINDINGS: u32 = 100;

/// The most findings a push may keep: they travel in the callout and in git's answer.
pub const MAX_FINDINGS: u32 = 1000;

/// Default for [`LimitsSection::path_map_bytes`]: 4 MiB.
pub const DEFAULT_PATH_MAP_BYTES: u64 = 4 << 20;

/// Default for [`LimitsSection::delta_base_bytes`]: 16 MiB.
pub const DEFAULT_DELTA_BASE_BYTES: u64 = 16 << 20;

/// Default for [`LimitsSection::max_scan_ms`]: 30 s, well past the 2-4 s a 100 MB push takes to
/// scan in V8, and under the minutes a client waits for an answer.
pub const DEFAULT_MAX_SCAN_MS: u64 = 30_000;

/// The longest time cap accepted: one hour.
pub const MAX_SCAN_MS: u64 = 3_600_000;

/// The most memory either of the two per-push budgets may be given: a VM's linear memory
/// never shrinks, and every concurrent push on a worker has its own.
pub const MAX_BUDGET_BYTES: u64 = 256 << 20;

/// What happens to a push that goes past a scanning limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnLimit {
    /// Refuse it (`gitgate:deny:secret-scan-limit`): what was not scanned does not pass.
    #[default]
    Block,
    /// Let it through by the approval service's verdict alone, with an audit record (a log
    /// line, a counter, and the decision in the access log).
    PassWithAudit,
}

/// The `secrets` section as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsSection {
    /// Whether pushes are scanned.
    pub enabled: bool,
    /// A gitgate-scan configuration (`fingerprint_key`, `disable`, `overrides`, `rules`,
    /// `allowlist`) for pushes; `null` uses the top-level `scan` section, whose compiled rules
    /// masking shares.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub rules: serde_json::Value,
    /// The push option whose value is the reason for a bypass (`<option>=<why>`).
    pub bypass_option: String,
    /// How much is scanned, and what going past that means.
    pub limits: LimitsSection,
    /// Whether `no-thin` is added to receive-pack advertisements, so that git sends complete
    /// packs whose deltas the scan can rebuild ([`crate::no_thin`]).
    pub no_thin_packs: bool,
}

impl Default for SecretsSection {
    fn default() -> Self {
        SecretsSection {
            enabled: true,
            rules: serde_json::Value::Null,
            bypass_option: DEFAULT_BYPASS_OPTION.to_owned(),
            limits: LimitsSection::default(),
            no_thin_packs: true,
        }
    }
}

/// `secrets.limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Bytes scanned of one object; an object beyond it is scanned up to it.
    pub max_object_bytes: u64,
    /// Bytes scanned of one push, all objects together; scanning stops there.
    pub max_push_bytes: u64,
    /// Whether a push past either limit is refused or let through with an audit record.
    pub on_limit: OnLimit,
    /// Findings kept per push; past it scanning stops (the push is refused in any case).
    pub max_findings: u32,
    /// Memory for the map from blob ids to paths read from the pushed trees; past it, later
    /// findings are reported without a path.
    pub path_map_bytes: u64,
    /// Memory for delta bases: a modified file whose base is kept is rebuilt and scanned
    /// whole, with its id and line numbers; otherwise only the bytes its delta inserts are.
    pub delta_base_bytes: u64,
    /// Milliseconds one push's scan may take, from its first pack byte; past it scanning
    /// stops, which `on_limit` turns into a refusal or an audited pass. 0 means no limit.
    pub max_scan_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            max_push_bytes: DEFAULT_MAX_PUSH_BYTES,
            on_limit: OnLimit::Block,
            max_findings: DEFAULT_MAX_FINDINGS,
            path_map_bytes: DEFAULT_PATH_MAP_BYTES,
            delta_base_bytes: DEFAULT_DELTA_BASE_BYTES,
            max_scan_ms: DEFAULT_MAX_SCAN_MS,
        }
    }
}

/// Checks a `secrets` section without compiling its rules; errors name the field.
pub fn check(section: &SecretsSection) -> Result<(), ConfigError> {
    let option = &section.bypass_option;
    if option.is_empty()
        || option
            .chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control())
    {
        return Err(ConfigError::new(
            "secrets.bypass_option",
            "must be a push option name without '=' or spaces",
        ));
    }
    let limits = &section.limits;
    if limits.max_object_bytes == 0 {
        return Err(ConfigError::new(
            "secrets.limits.max_object_bytes",
            "must be at least 1",
        ));
    }
    if limits.max_push_bytes == 0 {
        return Err(ConfigError::new(
            "secrets.limits.max_push_bytes",
            "must be at least 1",
        ));
    }
    if !(1..=MAX_FINDINGS).contains(&limits.max_findings) {
        return Err(ConfigError::new(
            "secrets.limits.max_findings",
            format!("must be between 1 and {MAX_FINDINGS}"),
        ));
    }
    for (field, value) in [
        ("secrets.limits.path_map_bytes", limits.path_map_bytes),
        ("secrets.limits.delta_base_bytes", limits.delta_base_bytes),
    ] {
        if value > MAX_BUDGET_BYTES {
            return Err(ConfigError::new(
                field,
                format!("must be at most {MAX_BUDGET_BYTES}"),
            ));
        }
    }
    if limits.max_scan_ms > MAX_SCAN_MS {
        return Err(ConfigError::new(
            "secrets.limits.max_scan_ms",
            format!("must be at most {MAX_SCAN_MS} (0: no time limit)"),
        ));
    }
    rules_config(&section.rules)?;
    Ok(())
}

/// Reads `secrets.rules` as a gitgate-scan configuration; `None` when it is absent.
fn rules_config(rules: &serde_json::Value) -> Result<Option<ScanConfig>, ConfigError> {
    if rules.is_null() {
        return Ok(None);
    }
    serde_path_to_error::deserialize::<_, ScanConfig>(rules.clone())
        .map(Some)
        .map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." {
                "secrets.rules".to_owned()
            } else {
                format!("secrets.rules.{path}")
            };
            let message = err.inner().to_string();
            let message = message.split(" at line ").next().unwrap_or_default();
            ConfigError::new(field, message)
        })
}

/// The limits of one push's scan, in the form the scanner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// See [`LimitsSection::max_object_bytes`].
    pub max_object_bytes: u64,
    /// See [`LimitsSection::max_push_bytes`].
    pub max_push_bytes: u64,
    /// See [`LimitsSection::max_findings`].
    pub max_findings: usize,
    /// See [`LimitsSection::path_map_bytes`].
    pub path_map_bytes: usize,
    /// See [`LimitsSection::delta_base_bytes`].
    pub delta_base_bytes: usize,
    /// See [`LimitsSection::max_scan_ms`]; 0 means no limit.
    pub max_scan_ms: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits::from_section(&LimitsSection::default())
    }
}

impl ScanLimits {
    fn from_section(section: &LimitsSection) -> ScanLimits {
        let budget = |value: u64| usize::try_from(value.min(MAX_BUDGET_BYTES)).unwrap_or(0);
        ScanLimits {
            max_object_bytes: section.max_object_bytes,
            max_push_bytes: section.max_push_bytes,
            max_findings: usize::try_from(section.max_findings).unwrap_or(usize::MAX),
            path_map_bytes: budget(section.path_map_bytes),
            delta_base_bytes: budget(section.delta_base_bytes),
            max_scan_ms: section.max_scan_ms,
        }
    }

    /// The pack reader's limits for a scanned push. The reader also frames the pack (it finds
    /// where the pack ends, as [`crate::pack::PackFramer`] does), so its own size checks are
    /// left wide open: a push is not refused for its size, only scanned within
    /// [`ScanLimits::max_push_bytes`]. The entry count stays bounded.
    pub fn pack_limits(&self) -> PackLimits {
        PackLimits {
            max_objects: DEFAULT_MAX_OBJECTS,
            max_object_size: u64::MAX,
            max_delta_result: u64::MAX,
            max_output: u64::MAX,
            base_cache: self.delta_base_bytes,
        }
    }
}

/// What a pusher's push options say about a bypass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bypass {
    /// No bypass asked for.
    None,
    /// The option was given without a reason, which does not count.
    NoReason,
    /// A bypass with this reason (one line, trimmed).
    Reason(String),
}

/// Everything a push's scan needs, compiled once per VM (or process) and shared.
#[derive(Debug)]
pub struct SecretScanning {
    rules: Arc<RuleSet>,
    limits: ScanLimits,
    on_limit: OnLimit,
    bypass_option: String,
    /// Masks secrets in the short strings handed out for logs and records.
    redactor: Arc<Redactor>,
}

/// The longest bypass reason kept, in bytes.
pub const MAX_BYPASS_REASON: usize = 500;

impl SecretScanning {
    /// Compiles the `secrets` section of a validated configuration; `None` when scanning is
    /// off. `shared` is the rule set compiled from the top-level `scan` section, if the caller
    /// already has one (masking does); it is used when `secrets.rules` is absent.
    pub fn from_config(
        config: &GateConfig,
        shared: Option<Arc<RuleSet>>,
    ) -> Result<Option<SecretScanning>, ConfigError> {
        let section = &config.config.secrets;
        if !section.enabled {
            return Ok(None);
        }
        let rules = match (rules_config(&section.rules)?, shared) {
            (Some(own), _) => Arc::new(
                RuleSet::compile(&own)
                    .map_err(|err| ConfigError::new("secrets.rules", err.to_string()))?,
            ),
            (None, Some(shared)) => shared,
            (None, None) => Arc::new(crate::mask::compile_rules(&config.config.scan)?),
        };
        SecretScanning::with_rules(section, rules).map(Some)
    }

    /// A checked `secrets` section with an already compiled rule set.
    pub fn with_rules(
        section: &SecretsSection,
        rules: Arc<RuleSet>,
    ) -> Result<SecretScanning, ConfigError> {
        check(section)?;
        Ok(SecretScanning {
            redactor: Arc::new(Redactor::new(Arc::clone(&rules))),
            rules,
            limits: ScanLimits::from_section(&section.limits),
            on_limit: section.limits.on_limit,
            bypass_option: section.bypass_option.clone(),
        })
    }

    /// The default section with `rules` (for tests and the command line).
    pub fn with_defaults(rules: Arc<RuleSet>) -> SecretScanning {
        SecretScanning {
            redactor: Arc::new(Redactor::new(Arc::clone(&rules))),
            rules,
            limits: ScanLimits::default(),
            on_limit: OnLimit::Block,
            bypass_option: DEFAULT_BYPASS_OPTION.to_owned(),
        }
    }

    /// The same settings with other limits.
    pub fn limited(mut self, limits: ScanLimits, on_limit: OnLimit) -> SecretScanning {
        self.limits = limits;
        self.on_limit = on_limit;
        self
    }

    /// The compiled rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Masks secrets in ref names, push options, paths and other short strings of a push.
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.redactor
    }

    /// The limits of one push.
    pub fn limits(&self) -> &ScanLimits {
        &self.limits
    }

    /// What going past a limit means.
    pub fn on_limit(&self) -> OnLimit {
        self.on_limit
    }

    /// The push option that asks for a bypass.
    pub fn bypass_option(&self) -> &str {
        &self.bypass_option
    }

    /// Reads the bypass request from a push's options: the last `<option>=<why>` wins, and a
    /// bare `<option>` or an empty reason is [`Bypass::NoReason`].
    pub fn bypass(&self, push_options: &[String]) -> Bypass {
        let mut found = Bypass::None;
        for option in push_options {
            let value = match option.split_once('=') {
                Some((name, value)) if name == self.bypass_option => value,
                None if *option == self.bypass_option => "",
                _ => continue,
            };
            let reason = crate::reason::one_line(value, MAX_BYPASS_REASON);
            found = if reason.is_empty() {
                Bypass::NoReason
            } else {
                Bypass::Reason(reason)
            };
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SecretScanning {
        SecretScanning::with_defaults(Arc::new(RuleSet::builtin().expect("builtin rules")))
    }

    #[test]
    fn the_bypass_option_needs_a_reason() {
        let scanning = settings();
        let options = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(scanning.bypass(&options(&["ci.skip"])), Bypass::None);
        assert_eq!(
            scanning.bypass(&options(&["gitgate.bypass"])),
            Bypass::NoReason
        );
        assert_eq!(
            scanning.bypass(&options(&["gitgate.bypass=  "])),
            Bypass::NoReason
        );
        assert_eq!(
            scanning.bypass(&options(&["gitgate.bypass=test fixture, not a key"])),
            Bypass::Reason("test fixture, not a key".into())
        );
        assert_eq!(
            scanning.bypass(&options(&["gitgate.bypassing=x"])),
            Bypass::None
        );
    }

    fn gate_config(secrets: serde_json::Value) -> Result<GateConfig, ConfigError> {
        GateConfig::from_value(serde_json::json!({
            "approval": { "cluster": "gitgate_approval" },
            "secrets": secrets,
        }))
    }

    #[test]
    fn the_plugin_configuration_names_the_bad_secrets_field() {
        let error = gate_config(serde_json::json!({ "limits": { "on_limit": "maybe" } }))
            .expect_err("refused");
        assert_eq!(error.field, "secrets.limits.on_limit", "{error}");
        let error = gate_config(serde_json::json!({ "enable": true })).expect_err("refused");
        assert_eq!(error.field, "secrets.enable", "{error}");
        let error = gate_config(serde_json::json!({ "limits": { "max_push_bytes": 0 } }))
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "secrets.limits.max_push_bytes: must be at least 1"
        );

        // A pattern is only compiled with the rule set, once per VM; its error names the field.
        let config = gate_config(serde_json::json!({
            "rules": { "rules": [{ "id": "acme", "keywords": ["acme_"], "pattern": "(" }] }
        }))
        .expect("the section reads");
        let error = SecretScanning::from_config(&config, None).expect_err("refused");
        assert!(error.to_string().starts_with("secrets.rules: "), "{error}");

        let off = gate_config(serde_json::json!({ "enabled": false })).expect("reads");
        assert!(
            SecretScanning::from_config(&off, None)
                .expect("ok")
                .is_none()
        );
        let on = GateConfig::from_value(serde_json::json!({
            "approval": { "cluster": "gitgate_approval" }
        }))
        .expect("reads");
        assert!(
            SecretScanning::from_config(&on, None)
                .expect("ok")
                .is_some()
        );
    }

    #[test]
    fn bad_sections_name_their_field() {
        let section = SecretsSection {
            bypass_option: "has space".into(),
            ..SecretsSection::default()
        };
        assert_eq!(check(&section).unwrap_err().field, "secrets.bypass_option");

        let mut section = SecretsSection::default();
        section.limits.max_findings = 0;
        assert_eq!(
            check(&section).unwrap_err().field,
            "secrets.limits.max_findings"
        );

        let mut section = SecretsSection::default();
        section.limits.path_map_bytes = MAX_BUDGET_BYTES + 1;
        assert_eq!(
            check(&section).unwrap_err().field,
            "secrets.limits.path_map_bytes"
        );

        let section = SecretsSection {
            rules: serde_json::json!({ "disable": "jwt" }),
            ..SecretsSection::default()
        };
        assert_eq!(check(&section).unwrap_err().field, "secrets.rules.disable");
    }
}
