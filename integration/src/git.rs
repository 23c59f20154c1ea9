//! The real git client, run as a test would run it, but shielded from the machine it runs on.
//!
//! Every command gets its own HOME and global config file, no system config, no inherited
//! `GIT_*` variables, no proxy, and no terminal prompt (so a missing credential fails at once
//! instead of waiting for input). Configuration and credentials travel in the environment
//! (`GIT_CONFIG_COUNT`), never on the command line, so tokens do not show up in process lists or
//! in the messages of failed commands.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::process::{self, Finished};

/// Time a single git command may take before it is killed; a hung push must fail the test, not
/// the CI run.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// The credential helper used by [`Git::credential`]: it answers `get` from two environment
/// variables and ignores `store` and `erase`, so the token never lands in a file.
const CREDENTIAL_HELPER: &str = "!f() { test \"$1\" = get || exit 0; \
     echo \"username=$GITGATE_TEST_USERNAME\"; echo \"password=$GITGATE_TEST_PASSWORD\"; }; f";

/// Environment variables that point git at something outside the test, or route its HTTP
/// through a proxy.
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// Creates the isolated HOME for git commands: an empty global config with an identity, so
/// commits made by tests work on a machine without `user.name`.
pub fn prepare_home(home: &Path) -> Result<()> {
    std::fs::create_dir_all(home).map_err(|e| HarnessError::io("create", home, e))?;
    let config = home.join(".gitconfig");
    let text = "[user]\n\tname = Gitgate Test\n\temail = test@gitgate.invalid\n\
                [init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n";
    std::fs::write(&config, text).map_err(|e| HarnessError::io("write", &config, e))
}

/// A bare `git` command with the isolation described in the module docs; `home` must have been
/// set up by [`prepare_home`], or be `None` for plumbing that reads no user configuration.
pub fn isolated_command(home: Option<&Path>) -> Command {
    let mut command = Command::new("git");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GIT_") {
            command.env_remove(&name);
        }
    }
    for name in PROXY_VARS {
        command.env_remove(name);
    }
    command
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS")
        .env("LC_ALL", "C");
    match home {
        Some(home) => {
            command
                .env("HOME", home)
                .env("XDG_CONFIG_HOME", home.join(".config"))
                .env("GIT_CONFIG_GLOBAL", home.join(".gitconfig"));
        }
        None => {
            command.env("GIT_CONFIG_GLOBAL", "/dev/null");
        }
    }
    command
}

/// A git command being put together for a test. Build it with the chained methods, then run it
/// with [`Git::output`], [`Git::success`] or [`Git::failure`].
#[derive(Debug)]
pub struct Git {
    /// Home directory of the isolated client.
    home: PathBuf,
    /// Arguments after `git`.
    args: Vec<OsString>,
    /// `-c` style configuration, passed as `GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`.
    config: Vec<(String, String)>,
    /// Extra environment.
    env: Vec<(OsString, OsString)>,
    /// Working directory, if not the current one.
    dir: Option<PathBuf>,
    /// Bytes for stdin.
    stdin: Option<Vec<u8>>,
    /// Time limit.
    timeout: Duration,
    /// Logs of the servers, shown when the command does not end as asked.
    server_logs: Vec<PathBuf>,
}

/// What a git command did.
#[derive(Debug, Clone)]
pub struct GitOutput {
    /// How it ended.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (git's progress, `remote:` lines and errors).
    pub stderr: String,
}

impl GitOutput {
    /// Whether git exited with status 0.
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    /// Stdout without surrounding white space, e.g. an object id.
    pub fn trimmed(&self) -> &str {
        self.stdout.trim()
    }
}

impl Git {
    /// A git command for the isolated client living in `home` (see [`prepare_home`]).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Git {
            home: home.into(),
            args: Vec::new(),
            config: Vec::new(),
            env: Vec::new(),
            dir: None,
            stdin: None,
            timeout: DEFAULT_GIT_TIMEOUT,
            server_logs: Vec::new(),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Runs in `dir` (e.g. a clone).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets one configuration value for this command, like `git -c key=value`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.push((key.into(), value.into()));
        self
    }

    /// Sets an environment variable, e.g. `GIT_TRACE_PACKET=1`.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Changes the time limit.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// Sends the token as `Authorization: Bearer <token>` on every request
    /// (`http.extraHeader`).
    pub fn bearer(self, token: &str) -> Self {
        self.config("http.extraHeader", format!("Authorization: Bearer {token}"))
    }

    /// Offers the token as the password of HTTP Basic auth through a credential helper, as a
    /// person's git would after the gateway's 401 challenge.
    pub fn credential(self, username: &str, password: &str) -> Self {
        // The empty value clears helpers from any other configuration first.
        self.config("credential.helper", "")
            .config("credential.helper", CREDENTIAL_HELPER)
            .env("GITGATE_TEST_USERNAME", username)
            .env("GITGATE_TEST_PASSWORD", password)
    }

    /// Shows these server logs when the command does not end as asked.
    pub fn with_server_logs(mut self, logs: impl IntoIterator<Item = PathBuf>) -> Self {
        self.server_logs.extend(logs);
        self
    }

    /// Pins author and committer to a fixed identity and date, so commits made with it have
    /// stable ids.
    pub fn pinned_dates(self) -> Self {
        self.env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z")
    }

    /// Runs the command and returns what it did, whatever its exit status.
    pub fn output(self) -> Result<GitOutput> {
        let mut command = isolated_command(Some(&self.home));
        command.args(&self.args);
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command.env("GIT_CONFIG_COUNT", self.config.len().to_string());
        for (index, (key, value)) in self.config.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{index}"), key);
            command.env(format!("GIT_CONFIG_VALUE_{index}"), value);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let Finished {
            status,
            stdout,
            stderr,
        } = process::run_with_timeout(command, self.stdin, self.timeout)?;
        Ok(GitOutput {
            status,
            stdout,
            stderr,
        })
    }

    /// Runs the command and fails unless git exits with status 0.
    pub fn success(self) -> Result<GitOutput> {
        let (shown, logs) = (self.shown(), self.server_logs.clone());
        let out = self.output()?;
        if out.ok() {
            Ok(out)
        } else {
            Err(unexpected("succeed", &shown, &out, &logs))
        }
    }

    /// Runs the command and fails unless git exits with a non-zero status.
    pub fn failure(self) -> Result<GitOutput> {
        let (shown, logs) = (self.shown(), self.server_logs.clone());
        let out = self.output()?;
        if out.ok() {
            Err(unexpected("fail", &shown, &out, &logs))
        } else {
            Ok(out)
        }
    }

    fn shown(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        format!("git {}", args.join(" "))
    }
}

fn unexpected(wanted: &str, shown: &str, out: &GitOutput, logs: &[PathBuf]) -> HarnessError {
    let mut text = format!(
        "`{shown}` was expected to {wanted} but exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status, out.stdout, out.stderr
    );
    for log in logs {
        text.push_str(&format!(
            "\n--- {}\n{}",
            log.display(),
            process::log_tail(log)
        ));
    }
    HarnessError::Unexpected(text)
}
