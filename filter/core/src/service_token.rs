//! The shared secret between the filter and the approval service (`approval.token`).
//!
//! Every callout to the service (`/v1/verdicts`, `/v1/holds/wait`, `/v1/events`) carries the
//! token in [`HEADER`], and a service started with a filter token refuses those endpoints
//! without it. The value never appears in the plugin configuration, which Envoy's admin
//! `/config_dump` shows: the configuration names an environment variable of the Envoy process,
//! which the VM sees through `vm_config.environment_variables.host_env_keys`, and the adapter
//! reads it once in `on_configure`. Nothing here prints the value: [`ServiceToken`]'s `Debug`
//! leaves it out and every [`TokenProblem`] describes the value without quoting it.
//!
//! ```yaml
//! approval:
//!   token: { env: GITGATE_FILTER_TOKEN, missing: error }
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The request header that carries the token on every callout to the approval service.
///
/// A header of its own rather than `Authorization`: the service's audit API already reads
/// `Authorization: Bearer` as a reviewer token, and the two must never be taken for each other.
pub const HEADER: &str = "x-gitgate-filter-token";

/// The environment variable read by default, in the filter and in `gitgate serve`.
pub const DEFAULT_ENV: &str = "GITGATE_FILTER_TOKEN";

/// The shortest token accepted, in bytes: 128 bits of hex, so a typo or a placeholder such as
/// `changeme` is refused rather than protecting the API with a guessable value.
pub const MIN_LEN: usize = 32;

/// The longest token accepted, in bytes; far above any generated secret, and well under
/// Envoy's header size limits.
pub const MAX_LEN: usize = 1024;

/// What to do when the variable is unset or empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingToken {
    /// The plugin fails to configure (production: a gate that cannot authenticate to the
    /// service is a misconfiguration, not something to run with).
    #[default]
    Error,
    /// The plugin starts and sends no token, with a warning (tests and development against a
    /// service without a filter token).
    Warn,
}

/// The `approval.token` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSection {
    /// The environment variable of the Envoy process holding the token; it must be listed in
    /// the plugin's `vm_config.environment_variables.host_env_keys`.
    pub env: String,
    /// What an unset or empty variable means.
    pub missing: MissingToken,
}

impl Default for TokenSection {
    fn default() -> Self {
        TokenSection {
            env: DEFAULT_ENV.to_owned(),
            missing: MissingToken::default(),
        }
    }
}

/// Checks the section: the variable's name must be one an environment can hold.
pub fn check(section: &TokenSection) -> Result<(), ConfigError> {
    let name = &section.env;
    if name.is_empty() {
        return Err(ConfigError::new("approval.token.env", "must not be empty"));
    }
    if name.contains(['=', '\0']) {
        return Err(ConfigError::new(
            "approval.token.env",
            "must not contain = or a NUL byte",
        ));
    }
    Ok(())
}

/// Why a token value is refused; never quotes the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenProblem {
    /// Shorter than [`MIN_LEN`].
    #[error("the token is {len} bytes long; at least {MIN_LEN} are needed")]
    TooShort {
        /// Its length in bytes.
        len: usize,
    },
    /// Longer than [`MAX_LEN`].
    #[error("the token is {len} bytes long; at most {MAX_LEN} are accepted")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte that is not visible ASCII (RFC 9110 §5.5 field values may hold more, but a
    /// secret with spaces or control bytes is a copy-and-paste accident).
    #[error("the token has a byte that is not visible ASCII at offset {offset}")]
    BadByte {
        /// Where the first such byte is.
        offset: usize,
    },
}

/// A token for the approval service; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceToken(String);

impl fmt::Debug for ServiceToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceToken(..)")
    }
}

impl ServiceToken {
    /// Checks a token's text; one trailing line break (a file written by `echo`) is dropped.
    pub fn new(text: &str) -> Result<ServiceToken, TokenProblem> {
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        if let Some(offset) = text.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(TokenProblem::BadByte { offset });
        }
        let len = text.len();
        if len < MIN_LEN {
            return Err(TokenProblem::TooShort { len });
        }
        if len > MAX_LEN {
            return Err(TokenProblem::TooLong { len });
        }
        Ok(ServiceToken(text.to_owned()))
    }

    /// The value, for the callout header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What the adapter does with the variable it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Send this token on every callout.
    Token(ServiceToken),
    /// No token: send none, and log this warning once.
    Missing {
        /// The warning, naming the variable.
        warning: String,
    },
}

/// Decides from the variable's value (`None` when unset or not Unicode) what the gate sends;
/// an error is a configuration failure, naming the variable but never the value.
pub fn resolve(section: &TokenSection, value: Option<&str>) -> Result<Resolved, ConfigError> {
    let field = "approval.token.env";
    let name = &section.env;
    match value.filter(|v| !v.is_empty()) {
        Some(text) => ServiceToken::new(text)
            .map(Resolved::Token)
            .map_err(|problem| ConfigError::new(field, format!("{name}: {problem}"))),
        None => match section.missing {
            MissingToken::Error => Err(ConfigError::new(
                field,
                format!(
                    "{name} is not set in the VM; set it in Envoy's environment and list it \
                     in vm_config.environment_variables.host_env_keys, or set \
                     approval.token.missing: warn"
                ),
            )),
            MissingToken::Warn => Ok(Resolved::Missing {
                warning: format!(
                    "{name} is not set: callouts to the approval service carry no token, and a \
                     service that requires one refuses them"
                ),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_set_variable_becomes_the_token_without_its_trailing_line_break() {
        let section = TokenSection::default();
        let resolved = resolve(&section, Some(&format!("{GOOD}\n"))).expect("accepted");
        let Resolved::Token(token) = resolved else {
            panic!("a token: {resolved:?}");
        };
        assert_eq!(token.expose(), GOOD);
    }

    #[test]
    fn a_missing_variable_is_an_error_by_default_and_a_warning_when_asked() {
        let error = resolve(&TokenSection::default(), None).expect_err("refused");
        assert_eq!(error.field, "approval.token.env");
        assert!(error.message.contains(DEFAULT_ENV), "{error}");
        assert!(error.message.contains("host_env_keys"), "{error}");

        let warn = TokenSection {
            missing: MissingToken::Warn,
            ..TokenSection::default()
        };
        assert!(matches!(
            resolve(&warn, Some("")),
            Ok(Resolved::Missing { .. })
        ));
    }

    #[test]
    fn short_long_and_spaced_tokens_are_refused_without_quoting_them() {
        let section = TokenSection::default();
        for (text, expected) in [
            ("changeme", TokenProblem::TooShort { len: 8 }),
            (
                &"a".repeat(MAX_LEN + 1),
                TokenProblem::TooLong { len: 1025 },
            ),
            (
                "0123456789abcdef 0123456789abcdef",
                TokenProblem::BadByte { offset: 16 },
            ),
        ] {
            assert_eq!(ServiceToken::new(text), Err(expected));
            let error = resolve(&section, Some(text)).expect_err("refused");
            assert!(!error.to_string().contains(text), "{error}");
        }
    }

    #[test]
    fn the_debug_form_of_a_token_hides_its_value() {
        let token = ServiceToken::new(GOOD).expect("valid");
        assert_eq!(format!("{token:?}"), "ServiceToken(..)");
    }

    #[test]
    fn the_section_is_read_from_the_plugin_configuration_and_checked() {
        use crate::config::GateConfig;
        use serde_json::json;

        let config = GateConfig::from_value(json!({ "approval": { "cluster": "c" } }))
            .expect("the defaults");
        assert_eq!(config.config.approval.token, TokenSection::default());
        let config = GateConfig::from_value(json!({
            "approval": { "cluster": "c", "token": { "env": "MY_TOKEN", "missing": "warn" } }
        }))
        .expect("valid");
        assert_eq!(config.config.approval.token.env, "MY_TOKEN");
        assert_eq!(config.config.approval.token.missing, MissingToken::Warn);
        let error = GateConfig::from_value(json!({
            "approval": { "cluster": "c", "token": { "value": GOOD } }
        }))
        .expect_err("a value in the configuration is refused");
        assert_eq!(error.field, "approval.token.value");
        let error = GateConfig::from_value(json!({
            "approval": { "cluster": "c", "token": { "env": "" } }
        }))
        .expect_err("refused");
        assert_eq!(error.field, "approval.token.env");
    }

    #[test]
    fn a_variable_name_that_no_environment_holds_is_refused() {
        for env in ["", "A=B", "A\0"] {
            let section = TokenSection {
                env: env.to_owned(),
                ..TokenSection::default()
            };
            assert!(check(&section).is_err(), "{env:?}");
        }
        assert!(check(&TokenSection::default()).is_ok());
    }
}
