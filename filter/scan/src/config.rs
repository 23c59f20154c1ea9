//! The configuration platform teams write, as serde types, and the errors compiling it can give.
//!
//! ```yaml
//! fingerprint_key: "a long random string shared by the filter and the CLI"
//! disable: [generic-secret-unquoted]
//! overrides:
//!   twilio-api-key:
//!     entropy: 3.5
//! rules:
//!   - id: acme-api-token
//!     description: ACME internal API token
//!     keywords: [acme_]
//!     pattern: '\b(acme_[a-z0-9]{32})\b'
//! allowlist:
//!   regexes: ['^AKIA[A-Z2-7]{12}TEST$']
//!   fingerprints: ['5bdcc146bf60754e6a042426089575c7']
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rule::{Family, Validation};

/// Everything the engine reads from configuration. Every field has a default, so an empty
/// document gives the built-in rules with the built-in allowlist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// The HMAC key for fingerprints; at least 16 bytes. When absent a public default is used,
    /// which makes fingerprints of weak secrets guessable.
    pub fingerprint_key: Option<String>,
    /// Built-in rule ids to turn off.
    pub disable: Vec<String>,
    /// Changes to built-in rules, by id.
    pub overrides: BTreeMap<String, RuleOverride>,
    /// Rules added to the built-in ones.
    pub rules: Vec<CustomRule>,
    /// Values to let through.
    pub allowlist: AllowlistConfig,
}

/// A rule added by configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Lower-case letters, digits and `-`; unique among all rules.
    pub id: String,
    /// Defaults to `custom`.
    #[serde(default)]
    pub family: Option<Family>,
    /// One sentence shown with findings.
    #[serde(default)]
    pub description: Option<String>,
    /// Literal keywords, 2 to 64 bytes each; a match must overlap one.
    pub keywords: Vec<String>,
    /// Whether keywords match byte for byte rather than ASCII case-insensitively.
    #[serde(default)]
    pub keywords_case_sensitive: bool,
    /// A regex in `regex-automata` syntax, compiled with Unicode off. `^` and `$` mean the start
    /// and end of the stream; use `(?m)` for lines.
    pub pattern: String,
    /// The capture group holding the secret: defaults to 1 when the pattern has a group, else 0.
    #[serde(default)]
    pub secret_group: Option<usize>,
    /// Minimum Shannon entropy of the secret, bits per byte, 0 to 8.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// A built-in structural check to run on matches.
    #[serde(default)]
    pub validation: Option<Validation>,
    /// The longest match in bytes; defaults to 256, at most 16 KiB.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// How far before a keyword a match may start; defaults to `max_len`.
    #[serde(default)]
    pub max_prefix: Option<usize>,
    /// Whether findings yield to overlapping findings of specific rules.
    #[serde(default)]
    pub generic: bool,
}

/// Changes to one built-in rule; absent fields keep the built-in value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleOverride {
    /// Replaces the pattern.
    pub pattern: Option<String>,
    /// Replaces the keywords.
    pub keywords: Option<Vec<String>>,
    /// Replaces the entropy floor; 0 turns it off.
    pub entropy: Option<f64>,
    /// Replaces the secret group.
    pub secret_group: Option<usize>,
    /// Replaces the longest match.
    pub max_len: Option<usize>,
    /// Replaces how far before a keyword a match may start.
    pub max_prefix: Option<usize>,
}

/// Values configuration lets through on top of the built-in allowlist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllowlistConfig {
    /// Regexes searched in each secret value; a hit drops the finding.
    pub regexes: Vec<String>,
    /// Fingerprints (32 hex digits) of secrets reviewed and accepted.
    pub fingerprints: Vec<String>,
}

/// Why a configuration did not compile. Each variant names the field, and the rule when there
/// is one.
///
/// In every variant `field` is the path of the offending setting (`rules[2].pattern`,
/// `overrides.jwt.max_len`, `disable[0]`), `rule` the rule id, and the other fields the offending
/// value and the limit it broke.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[allow(
    missing_docs,
    reason = "the fields are the same few in every variant, described above"
)]
pub enum ConfigError {
    /// A rule id is empty or has characters other than lower-case letters, digits and `-`.
    #[error("{field}: rule id {rule:?} must be lower-case letters, digits and '-'")]
    InvalidRuleId { field: String, rule: String },
    /// Two rules share an id.
    #[error("{field}: rule id {rule:?} is already taken")]
    DuplicateRule { field: String, rule: String },
    /// `disable` or `overrides` names a rule that is not built in.
    #[error("{field}: no built-in rule is named {rule:?}")]
    UnknownRule { field: String, rule: String },
    /// A pattern does not parse or compile.
    #[error("{field}: pattern of rule {rule:?} does not compile: {message}")]
    InvalidPattern {
        field: String,
        rule: String,
        message: String,
    },
    /// A pattern uses a Unicode class or word boundary, which the lazy DFA cannot run on
    /// non-ASCII input without giving up.
    #[error("{field}: pattern of rule {rule:?} uses a Unicode class or boundary; use ASCII forms")]
    UnicodePattern { field: String, rule: String },
    /// A rule has no keyword.
    #[error("{field}: rule {rule:?} needs at least one keyword")]
    NoKeywords { field: String, rule: String },
    /// A keyword is shorter than 2 or longer than 64 bytes.
    #[error("{field}: keyword {keyword:?} of rule {rule:?} must be 2 to 64 bytes long")]
    KeywordLength {
        field: String,
        rule: String,
        keyword: String,
    },
    /// The secret group does not exist in the pattern.
    #[error("{field}: rule {rule:?} has no capture group {group} (its pattern has {groups})")]
    SecretGroupOutOfRange {
        field: String,
        rule: String,
        group: usize,
        groups: usize,
    },
    /// An entropy floor is outside 0..=8 bits per byte.
    #[error("{field}: entropy {value} of rule {rule:?} is outside 0 to 8 bits per byte")]
    InvalidEntropy {
        field: String,
        rule: String,
        value: f64,
    },
    /// A length cap is zero or above the engine's limit.
    #[error("{field}: {value} for rule {rule:?} is outside 1 to {max} bytes")]
    LengthOutOfRange {
        field: String,
        rule: String,
        value: usize,
        max: usize,
    },
    /// An allowlist regex does not compile.
    #[error("{field}: allowlist regex does not compile: {message}")]
    InvalidAllowlistRegex { field: String, message: String },
    /// An allowlisted fingerprint is not 32 hex digits.
    #[error("{field}: fingerprint {value:?} is not 32 hex digits")]
    InvalidFingerprint { field: String, value: String },
    /// The fingerprint key is too short to keep fingerprints of weak secrets from being guessed.
    #[error("fingerprint_key: key is {len} bytes, at least {min} are needed")]
    FingerprintKeyTooShort { len: usize, min: usize },
    /// The keywords of all rules together are too many for the keyword automaton.
    #[error("keywords: the keyword automaton does not build: {message}")]
    Keywords { message: String },
}
