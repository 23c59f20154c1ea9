//! `serve` settings: embedded defaults, an optional YAML file, then flags and environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::app::DEFAULT_APPROVAL_TTL;

/// Where the service listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// The store used by default: a SQLite file in the local state directory.
pub const DEFAULT_DATABASE: &str = "sqlite://.gitgate/gitgate.db";

/// The dev issuer directory used by default.
pub const DEFAULT_DEV_ISSUER_DIR: &str = ".gitgate/dev";

/// Why the settings could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The config file is not YAML of the expected shape.
    #[error("config file {path} does not parse: {source}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, with the field and line.
        source: serde_norway::Error,
    },
    /// A duration could not be read.
    #[error("{field}: {value:?} is not a duration such as 24h or 90m: {problem}")]
    Duration {
        /// The setting.
        field: &'static str,
        /// The text given.
        value: String,
        /// The parser's complaint.
        problem: String,
    },
    /// A webhook entry is not usable.
    #[error("webhook {name}: {problem}")]
    Webhook {
        /// The webhook's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// The optional YAML file given with `--config`; every field may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on.
    pub listen: Option<String>,
    /// The URL reviewers reach the pages at.
    pub public_url: Option<String>,
    /// `sqlite://PATH` or `postgres://...`.
    pub database: Option<String>,
    /// A policy file.
    pub policy: Option<PathBuf>,
    /// The dev issuer directory.
    pub dev_issuer_dir: Option<PathBuf>,
    /// How long an approval lasts, for example `24h`.
    pub approval_ttl: Option<String>,
    /// The longest a hold wait is kept open, for example `5m`.
    pub hold_wait_max: Option<String>,
    /// Reviewer sign-in through OpenID Connect; without `oidc.issuer` the development issuer.
    #[serde(default)]
    pub oidc: crate::oidc::OidcConfig,
    /// The key that signs session cookies, base64 of at least 64 bytes; the same on every
    /// instance. Also `GITGATE_COOKIE_KEY`. Random per process when absent (development only).
    pub cookie_key: Option<String>,
    /// Webhooks told about every new hold and every decision.
    #[serde(default)]
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
    /// A file holding the token the filter API requires (see `crate::filter_auth`).
    pub filter_token_file: Option<PathBuf>,
}

impl ConfigFile {
    /// Reads a config file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_norway::from_str(&text).map_err(|source| ConfigError::Syntax {
            path: path.to_owned(),
            source,
        })
    }
}

/// The settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    pub listen: String,
    /// The URL reviewers reach the pages at; `None` means `http://` and the bound address.
    pub public_url: Option<String>,
    /// `sqlite://PATH` or `postgres://...`.
    pub database: String,
    /// A policy file; `None` means the embedded default policy.
    pub policy: Option<PathBuf>,
    /// The dev issuer directory, created when missing.
    pub dev_issuer_dir: PathBuf,
    /// How long an approval lasts.
    pub approval_ttl: Duration,
    /// The cap on a hold wait.
    pub hold_wait_max: Duration,
    /// Reviewer sign-in.
    pub oidc: crate::oidc::OidcConfig,
    /// The session cookie key, base64.
    pub cookie_key: Option<String>,
    /// The webhooks.
    pub webhooks: Vec<crate::webhooks::WebhookConfig>,
    /// A file holding the filter API's token; `GITGATE_FILTER_TOKEN` may give it instead.
    pub filter_token_file: Option<PathBuf>,
}

/// Settings given on the command line or in the environment; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--database`.
    pub database: Option<String>,
    /// `--policy`.
    pub policy: Option<PathBuf>,
    /// `--dev-issuer-dir`.
    pub dev_issuer_dir: Option<PathBuf>,
    /// `--approval-ttl`.
    pub approval_ttl: Option<Duration>,
    /// `--filter-token-file`.
    pub filter_token_file: Option<PathBuf>,
}

impl ServeConfig {
    /// Layers the overrides over the file over the embedded defaults.
    pub fn resolve(file: ConfigFile, overrides: Overrides) -> Result<Self, ConfigError> {
        let file_ttl = match file.approval_ttl {
            Some(text) => Some(parse_duration("approval_ttl", &text)?),
            None => None,
        };
        let hold_wait_max = match file.hold_wait_max {
            Some(text) => parse_duration("hold_wait_max", &text)?,
            None => crate::app::DEFAULT_HOLD_WAIT_MAX,
        };
        Ok(ServeConfig {
            listen: overrides
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            public_url: overrides.public_url.or(file.public_url),
            database: overrides
                .database
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
            policy: overrides.policy.or(file.policy),
            dev_issuer_dir: overrides
                .dev_issuer_dir
                .or(file.dev_issuer_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DEV_ISSUER_DIR)),
            approval_ttl: overrides
                .approval_ttl
                .or(file_ttl)
                .unwrap_or(DEFAULT_APPROVAL_TTL),
            hold_wait_max,
            oidc: file.oidc,
            cookie_key: std::env::var("GITGATE_COOKIE_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .or(file.cookie_key),
            webhooks: file.webhooks,
            filter_token_file: overrides.filter_token_file.or(file.filter_token_file),
        })
    }
}

/// Parses a duration such as `24h`, `90m` or `1h 30m`; zero is refused.
pub fn parse_duration(field: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let problem = |problem: String| ConfigError::Duration {
        field,
        value: text.to_owned(),
        problem,
    };
    let duration = humantime::parse_duration(text.trim()).map_err(|e| problem(e.to_string()))?;
    if duration.is_zero() {
        return Err(problem("it must be longer than zero".to_owned()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file: ConfigFile = serde_norway::from_str(
            "listen: 0.0.0.0:1\ndatabase: sqlite://x.db\napproval_ttl: 2h\n",
        )
        .expect("a config file");
        let overrides = Overrides {
            listen: Some("127.0.0.1:2".into()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(file, overrides).expect("resolved");
        assert_eq!(config.listen, "127.0.0.1:2");
        assert_eq!(config.database, "sqlite://x.db");
        assert_eq!(config.approval_ttl, Duration::from_secs(7200));
        assert_eq!(config.dev_issuer_dir, PathBuf::from(DEFAULT_DEV_ISSUER_DIR));
        assert!(config.public_url.is_none());
    }

    #[test]
    fn unknown_config_fields_are_refused() {
        let error = serde_norway::from_str::<ConfigFile>("listn: x\n").expect_err("refused");
        assert!(error.to_string().contains("listn"), "{error}");
    }

    #[test]
    fn zero_and_garbage_durations_are_refused() {
        assert!(parse_duration("approval_ttl", "0s").is_err());
        assert!(parse_duration("approval_ttl", "soon").is_err());
        assert_eq!(
            parse_duration("ttl", "15m").ok(),
            Some(Duration::from_secs(900))
        );
    }
}
