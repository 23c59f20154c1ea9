//! The one error type of the harness.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while the harness builds repositories, starts the stack or runs a
/// command for a test.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the harness was doing, e.g. "write".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A program could not be started at all.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program, as given to the command.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A helper command ran but did not succeed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for the reader.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },

    /// A command ran longer than it was allowed to and was killed.
    #[error("`{command}` did not finish within {limit:?} and was killed; stderr so far: {stderr}")]
    Timeout {
        /// The command line, for the reader.
        command: String,
        /// The time it had.
        limit: Duration,
        /// What it wrote to stderr before it was killed.
        stderr: String,
    },

    /// A file the stack needs has not been built (or installed) yet.
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        /// What is missing, e.g. "the gitgate binary".
        what: &'static str,
        /// Where the harness looked.
        path: PathBuf,
        /// How to get it.
        hint: &'static str,
    },

    /// A component did not become ready before the deadline.
    #[error("{component} was not ready after {waited:?}; its log ends with:\n{log_tail}")]
    NotReady {
        /// The component, e.g. "envoy".
        component: &'static str,
        /// How long the harness waited.
        waited: Duration,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A component exited while the harness still needed it.
    #[error("{component} exited ({status}); its log ends with:\n{log_tail}")]
    Exited {
        /// The component, e.g. "envoy".
        component: &'static str,
        /// How it ended.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },

    /// The shipped Envoy configuration no longer has a value the harness substitutes, so the
    /// tested configuration would silently differ from the shipped one.
    #[error("envoy config template has no `{placeholder}` to substitute")]
    Template {
        /// The text the harness looked for.
        placeholder: String,
    },

    /// A repository name would leave the repositories directory or is not a bare `*.git` name.
    #[error("invalid repository name {name:?}: {reason}")]
    RepoName {
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// An HTTP exchange made by the harness failed below the HTTP status level.
    #[error("http {method} {url}: {reason}")]
    Http {
        /// The method used.
        method: String,
        /// The URL asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A log line could not be decoded.
    #[error("{path} line {line}: {source}")]
    LogLine {
        /// The log file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The decoding error.
        source: serde_json::Error,
    },

    /// A git command's result was not what the test asked for.
    #[error("{0}")]
    Unexpected(String),
}

/// Shorthand for the harness's results.
pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

impl HarnessError {
    /// Wraps an I/O error with the action and the path it concerned.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HarnessError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
