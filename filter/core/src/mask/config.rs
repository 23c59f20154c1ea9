//! The `masking` section of the filter configuration: serde types with safe defaults, and the
//! checks that run when the configuration is loaded.
//!
//! ```yaml
//! masking:
//!   enabled: true                  # mask responses at all
//!   paths: ["**"]                  # globs over the normalized request path
//!   git: true                      # pkt-line bodies of git's smart-HTTP answers
//!   content_types:
//!     json: [application/json, "application/*+json", text/json]
//!     text: ["text/*", application/x-diff, ...]
//!     missing: text                # a body without Content-Type: text | pass
//!   compressed: withhold           # a body still compressed: withhold | pass
//!   mask: { keep_prefix: true, max_prefix: 40, fill: "****", tag: "[gitgate:{rule}]" }
//!   json: { base64_fields: [content], max_depth: 256, base64_probe_bytes: 4096 }
//! ```
//!
//! Every field has a default, so an absent section masks with the defaults. Unknown fields are
//! errors, like everywhere else in the configuration.

use serde::{Deserialize, Serialize};

use super::content_type::TypePattern;
use crate::config::ConfigError;
use crate::glob::RepoGlob;

/// The longest `mask.fill` accepted.
pub const MAX_FILL_LEN: usize = 32;

/// The longest `mask.tag` template accepted.
pub const MAX_TAG_LEN: usize = 128;

/// The longest `mask.max_prefix`: the scan engine's longest keyword.
pub const MAX_PREFIX_LEN: usize = gitgate_scan::ruleset::MAX_KEYWORD_LEN;

/// The deepest `json.max_depth` accepted.
pub const MAX_JSON_DEPTH: usize = 4096;

/// The range of `json.base64_probe_bytes`.
pub const BASE64_PROBE_RANGE: std::ops::RangeInclusive<usize> = 64..=1024 * 1024;

/// The placeholder in `mask.tag` replaced by the rule id.
pub const RULE_PLACEHOLDER: &str = "{rule}";

/// What to do with a response body that arrives compressed although the gate asked for identity
/// encoding (envoy-wasm.md §3: the filter sees encoded bytes and does not inflate them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressedPolicy {
    /// Replace the body by a short notice the client can read (the default): nothing passes
    /// unmasked.
    #[default]
    Withhold,
    /// Pass the body as it is, with a counter and an audit log line.
    Pass,
}

/// How a response without a `Content-Type` is treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingContentType {
    /// Mask it as text (the default).
    #[default]
    Text,
    /// Pass it untouched.
    Pass,
}

/// The whole `masking` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingSection {
    /// Whether responses are masked at all.
    pub enabled: bool,
    /// Globs (see [`crate::glob`]) over the normalized request path, without its leading `/`;
    /// `**` matches every path.
    pub paths: Vec<String>,
    /// Whether git's own answers (advertisements, upload-pack and receive-pack results) are
    /// masked.
    pub git: bool,
    /// Which other content types are masked, and how.
    pub content_types: ContentTypes,
    /// What happens to a body that arrives compressed.
    pub compressed: CompressedPolicy,
    /// What a masked secret looks like.
    pub mask: MaskStyleConfig,
    /// JSON specifics.
    pub json: JsonMaskingConfig,
}

impl Default for MaskingSection {
    fn default() -> Self {
        MaskingSection {
            enabled: true,
            paths: vec!["**".into()],
            git: true,
            content_types: ContentTypes::default(),
            compressed: CompressedPolicy::default(),
            mask: MaskStyleConfig::default(),
            json: JsonMaskingConfig::default(),
        }
    }
}

/// `masking.content_types`: patterns over the media type (`type/subtype`, parameters ignored,
/// case-insensitive), where `*` matches any run of characters. JSON is tried before text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentTypes {
    /// Masked as JSON: string values are masked and the document stays valid.
    pub json: Vec<String>,
    /// Masked as text.
    pub text: Vec<String>,
    /// A response without a `Content-Type`.
    pub missing: MissingContentType,
}

impl Default for ContentTypes {
    fn default() -> Self {
        let json = ["application/json", "application/*+json", "text/json"];
        let text = [
            "text/*",
            // Diffs, patches and raw files of the Git hosts' APIs
            // (`application/vnd.github.v3.diff`, `.patch`, `.raw`).
            "application/vnd.github*.diff",
            "application/vnd.github*.patch",
            "application/vnd.github*.raw",
            "application/x-diff",
            "application/x-patch",
            "application/xml",
            "application/*+xml",
            "application/javascript",
            "application/x-yaml",
            "application/yaml",
            "application/toml",
            "application/x-sh",
            "application/x-ndjson",
        ];
        ContentTypes {
            json: json.into_iter().map(String::from).collect(),
            text: text.into_iter().map(String::from).collect(),
            missing: MissingContentType::default(),
        }
    }
}

/// `masking.mask`: a masked secret is written as the rule's public prefix (when kept), then
/// `fill`, then `tag` with `{rule}` replaced by the rule id, e.g.
/// `ghp_****[gitgate:github-pat-classic]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskStyleConfig {
    /// Keep the token format's public prefix (`ghp_`, `AKIA`, `xoxb-`), so a reader knows what
    /// was there. Only literal prefixes of specific rules are kept, never part of a value found
    /// by a generic rule.
    pub keep_prefix: bool,
    /// The longest prefix kept, in bytes.
    pub max_prefix: usize,
    /// What replaces the value after the prefix.
    pub fill: String,
    /// What follows the fill; `{rule}` becomes the rule id.
    pub tag: String,
}

impl Default for MaskStyleConfig {
    fn default() -> Self {
        MaskStyleConfig {
            keep_prefix: true,
            max_prefix: 40,
            fill: "****".into(),
            tag: "[gitgate:{rule}]".into(),
        }
    }
}

/// `masking.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonMaskingConfig {
    /// Object keys whose string values are base64 file contents (GitHub, GitLab and Gitea name
    /// it `content`): decoded, masked and encoded again in the same layout.
    pub base64_fields: Vec<String>,
    /// The deepest nesting followed; past it the rest of the body is masked as text.
    pub max_depth: usize,
    /// How much of a base64 field is held before deciding that it really is base64.
    pub base64_probe_bytes: usize,
}

impl Default for JsonMaskingConfig {
    fn default() -> Self {
        JsonMaskingConfig {
            base64_fields: vec!["content".into()],
            max_depth: 256,
            base64_probe_bytes: 4096,
        }
    }
}

/// The checked and compiled parts of a `masking` section that need no rule set.
#[derive(Debug, Clone)]
pub(crate) struct CheckedSection {
    pub(crate) paths: Vec<RepoGlob>,
    pub(crate) json_types: Vec<TypePattern>,
    pub(crate) text_types: Vec<TypePattern>,
}

/// Checks a `masking` section; errors name the field, e.g. `masking.mask.fill`.
pub(crate) fn check(section: &MaskingSection) -> Result<CheckedSection, ConfigError> {
    let paths = section
        .paths
        .iter()
        .enumerate()
        .map(|(i, pattern)| {
            RepoGlob::new(pattern.trim_start_matches('/'))
                .map_err(|err| ConfigError::new(format!("masking.paths[{i}]"), err.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if section.enabled && paths.is_empty() {
        return Err(ConfigError::new(
            "masking.paths",
            "must list at least one glob (or set enabled: false)",
        ));
    }
    let types = |name: &str, list: &[String]| {
        list.iter()
            .enumerate()
            .map(|(i, pattern)| {
                TypePattern::new(pattern).map_err(|message| {
                    ConfigError::new(format!("masking.content_types.{name}[{i}]"), message)
                })
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let json_types = types("json", &section.content_types.json)?;
    let text_types = types("text", &section.content_types.text)?;

    let mask = &section.mask;
    check_mask_text("masking.mask.fill", &mask.fill, MAX_FILL_LEN)?;
    if mask.fill.is_empty() {
        return Err(ConfigError::new("masking.mask.fill", "must not be empty"));
    }
    check_mask_text("masking.mask.tag", &mask.tag, MAX_TAG_LEN)?;
    if mask.tag.matches(RULE_PLACEHOLDER).count() > 1 {
        return Err(ConfigError::new(
            "masking.mask.tag",
            "may name {rule} at most once",
        ));
    }
    if mask.max_prefix > MAX_PREFIX_LEN {
        return Err(ConfigError::new(
            "masking.mask.max_prefix",
            format!("must be at most {MAX_PREFIX_LEN}"),
        ));
    }

    let json = &section.json;
    if !(1..=MAX_JSON_DEPTH).contains(&json.max_depth) {
        return Err(ConfigError::new(
            "masking.json.max_depth",
            format!("must be between 1 and {MAX_JSON_DEPTH}"),
        ));
    }
    if !BASE64_PROBE_RANGE.contains(&json.base64_probe_bytes) {
        return Err(ConfigError::new(
            "masking.json.base64_probe_bytes",
            format!(
                "must be between {} and {}",
                BASE64_PROBE_RANGE.start(),
                BASE64_PROBE_RANGE.end()
            ),
        ));
    }
    for (i, field) in json.base64_fields.iter().enumerate() {
        if field.is_empty() || field.len() > super::json::MAX_KEY_LEN {
            return Err(ConfigError::new(
                format!("masking.json.base64_fields[{i}]"),
                format!("must be 1 to {} bytes long", super::json::MAX_KEY_LEN),
            ));
        }
    }
    Ok(CheckedSection {
        paths,
        json_types,
        text_types,
    })
}

/// A mask is written into JSON strings, pkt-lines and text alike, so it is printable ASCII
/// without the two characters a JSON string would need escaped.
fn check_mask_text(field: &str, text: &str, max: usize) -> Result<(), ConfigError> {
    if text.len() > max {
        return Err(ConfigError::new(
            field,
            format!("must be at most {max} bytes long"),
        ));
    }
    if let Some(bad) = text
        .chars()
        .find(|&c| !(' '..='~').contains(&c) || c == '"' || c == '\\')
    {
        return Err(ConfigError::new(
            field,
            format!("must be printable ASCII without quote or backslash, found {bad:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_check() {
        let checked = check(&MaskingSection::default()).expect("defaults are valid");
        assert_eq!(checked.paths.len(), 1);
        assert!(checked.text_types.iter().any(|t| t.matches("text/plain")));
        assert!(
            checked
                .json_types
                .iter()
                .any(|t| t.matches("application/vnd.github+json"))
        );
    }

    #[test]
    fn a_fill_with_a_quote_is_refused_by_name() {
        let mut section = MaskingSection::default();
        section.mask.fill = "\"".into();
        let err = check(&section).expect_err("invalid");
        assert_eq!(err.field, "masking.mask.fill");
        section.mask.fill = String::new();
        assert_eq!(
            check(&section).expect_err("empty").field,
            "masking.mask.fill"
        );
    }

    #[test]
    fn a_tag_with_a_backslash_or_two_rules_is_refused() {
        let mut section = MaskingSection::default();
        section.mask.tag = "[\\]".into();
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.mask.tag"
        );
        section.mask.tag = "{rule}{rule}".into();
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.mask.tag"
        );
    }

    #[test]
    fn bad_globs_and_types_name_their_index() {
        let section = MaskingSection {
            paths: vec!["api/**".into(), "a**".into()],
            ..MaskingSection::default()
        };
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.paths[1]"
        );
        let mut section = MaskingSection::default();
        section.content_types.text = vec!["text/plain".into(), "plain".into()];
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.content_types.text[1]"
        );
    }

    #[test]
    fn json_limits_are_checked() {
        let mut section = MaskingSection::default();
        section.json.max_depth = 0;
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.json.max_depth"
        );
        let mut section = MaskingSection::default();
        section.json.base64_probe_bytes = 1;
        assert_eq!(
            check(&section).expect_err("invalid").field,
            "masking.json.base64_probe_bytes"
        );
    }
}
