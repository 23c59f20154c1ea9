//! The filter's shared secret: `/v1/verdicts`, `/v1/holds/wait` and `/v1/events` answer only
//! requests that carry it.
//!
//! The token comes from `--filter-token-file` (or `filter_token_file` in the config file, or
//! `GITGATE_FILTER_TOKEN_FILE`) or from the `GITGATE_FILTER_TOKEN` variable itself, and the
//! filter sends it in [`HEADER`] on every callout (see `gitgate_core::service_token`). Without
//! one the service starts anyway, warns once, and those endpoints stay open to whoever can
//! reach the port. Only those routes are behind [`protect`]: the reviewer pages, sign-in and
//! the audit query API have their own sign-in.
//!
//! The comparison is constant-time ([`subtle`]), and the value is never logged: the
//! [`FilterToken`]'s `Debug` leaves it out, and a refusal logs only whether the header was
//! missing or wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use gitgate_core::service_token::{ServiceToken, TokenProblem};
use subtle::ConstantTimeEq;

pub use gitgate_core::service_token::{DEFAULT_ENV as TOKEN_ENV, HEADER};

use crate::app::AppState;
use crate::error::AppError;

/// The variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "GITGATE_FILTER_TOKEN_FILE";

/// Why the token could not be set up; never quotes the value.
#[derive(Debug, thiserror::Error)]
pub enum FilterTokenError {
    /// The token file could not be read.
    #[error("cannot read the filter token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Both a file and the variable were given, so which one counts would be a guess.
    #[error("both a filter token file and {TOKEN_ENV} are set; set one")]
    Ambiguous,
    /// The value is not a usable token.
    #[error("the filter token from {source_name} is refused: {problem}")]
    Refused {
        /// Where it came from: the file's path or the variable's name.
        source_name: String,
        /// What is wrong with it.
        problem: TokenProblem,
    },
}

/// Why a request to the filter API was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No [`HEADER`] on the request.
    Missing,
    /// A [`HEADER`] with another value.
    Wrong,
}

impl Refusal {
    /// The word the log and the answer use.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Wrong => "wrong",
        }
    }
}

/// The token the filter must present; its `Debug` never shows the value. Cheap to clone.
#[derive(Clone)]
pub struct FilterToken(Arc<ServiceToken>);

impl std::fmt::Debug for FilterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterToken(..)")
    }
}

impl FilterToken {
    /// A token from its text (one trailing line break dropped).
    pub fn new(text: &str) -> Result<FilterToken, TokenProblem> {
        ServiceToken::new(text).map(|token| FilterToken(Arc::new(token)))
    }

    /// The token from a file or from the variable's value; `None` when neither is given.
    pub fn load(
        file: Option<&Path>,
        env_value: Option<&str>,
    ) -> Result<Option<FilterToken>, FilterTokenError> {
        let env_value = env_value.filter(|v| !v.is_empty());
        let (text, source_name) = match (file, env_value) {
            (Some(_), Some(_)) => return Err(FilterTokenError::Ambiguous),
            (None, None) => return Ok(None),
            (Some(path), None) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| FilterTokenError::Read {
                        path: path.to_owned(),
                        source,
                    })?;
                (text, path.display().to_string())
            }
            (None, Some(value)) => (value.to_owned(), TOKEN_ENV.to_owned()),
        };
        FilterToken::new(&text)
            .map(Some)
            .map_err(|problem| FilterTokenError::Refused {
                source_name,
                problem,
            })
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    /// (The length may show: the token's length is not the secret.)
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.expose().as_bytes().ct_eq(presented).into()
    }

    /// Checks a request's headers.
    pub fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(HEADER).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            // None, or several: a repeated header is not a token either.
            return Err(if headers.contains_key(HEADER) {
                Refusal::Wrong
            } else {
                Refusal::Missing
            });
        };
        if self.matches(value.as_bytes()) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

/// `router` with every route behind the filter token, when there is one.
pub fn protect(router: Router<AppState>, token: Option<FilterToken>) -> Router<AppState> {
    match token {
        Some(token) => router.route_layer(middleware::from_fn_with_state(token, require)),
        None => router,
    }
}

/// The middleware: lets the request on with the right token, else answers 401.
async fn require(
    State(token): State<FilterToken>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    token
        .check(request.headers())
        .map_err(|refusal| AppError::FilterUnauthorized { refusal })?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HEADER,
                HeaderValue::from_str(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn only_the_exact_token_once_passes() {
        let token = FilterToken::new(GOOD).expect("valid");
        assert_eq!(token.check(&headers(&[GOOD])), Ok(()));
        assert_eq!(token.check(&headers(&[])), Err(Refusal::Missing));
        let longer = format!("{GOOD}0");
        assert_eq!(token.check(&headers(&[&longer])), Err(Refusal::Wrong));
        assert_eq!(token.check(&headers(&[&GOOD[1..]])), Err(Refusal::Wrong));
        assert_eq!(token.check(&headers(&[GOOD, GOOD])), Err(Refusal::Wrong));
    }

    #[test]
    fn a_file_and_the_variable_together_are_refused() {
        let file = tempfile::NamedTempFile::new().expect("a file");
        std::fs::write(file.path(), format!("{GOOD}\n")).expect("written");
        assert!(matches!(
            FilterToken::load(Some(file.path()), Some(GOOD)),
            Err(FilterTokenError::Ambiguous)
        ));
        let from_file = FilterToken::load(Some(file.path()), Some(""))
            .expect("read")
            .expect("a token");
        assert!(from_file.matches(GOOD.as_bytes()));
        assert!(FilterToken::load(None, None).expect("fine").is_none());
    }

    #[test]
    fn a_weak_token_is_refused_without_quoting_it() {
        let error = FilterToken::load(None, Some("changeme")).expect_err("refused");
        let text = error.to_string();
        assert!(!text.contains("changeme"), "{text}");
        assert!(text.contains(TOKEN_ENV), "{text}");
        assert_eq!(
            format!("{:?}", FilterToken::new(GOOD).expect("valid")),
            "FilterToken(..)"
        );
    }
}
