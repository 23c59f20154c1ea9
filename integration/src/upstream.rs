//! The upstream Git server on its own, without Envoy or the approval service: for testing
//! `gitgate-upstream` itself, or a test that needs a plain Git server.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::error::{HarnessError, Result};
use crate::git::{self, Git};
use crate::process::{self, ManagedProcess};
use crate::repo::{self, RepoOptions};
use crate::stack::Ports;
use crate::upstream_log::{self, UpstreamRequest};

/// Time the server gets to start listening.
const STARTUP: Duration = Duration::from_secs(30);

/// A running `gitgate-upstream` with its own repositories (holding `demo.git`), request log and
/// isolated git client, all in a temporary directory removed on drop.
#[derive(Debug)]
pub struct UpstreamServer {
    process: ManagedProcess,
    port: u16,
    dir: TempDir,
}

impl UpstreamServer {
    /// Starts `binary` on a free port.
    pub fn start(binary: &Path) -> Result<UpstreamServer> {
        let dir = tempfile::Builder::new()
            .prefix("gitgate-upstream-")
            .tempdir()
            .map_err(|e| HarnessError::io("create", std::env::temp_dir(), e))?;
        let repos = dir.path().join("repos");
        std::fs::create_dir_all(&repos).map_err(|e| HarnessError::io("create", &repos, e))?;
        repo::seed_demo(&repos)?;
        git::prepare_home(&dir.path().join("git-home"))?;
        let port = Ports::free()?.upstream;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut command = std::process::Command::new(binary);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--root")
            .arg(&repos)
            .arg("--log")
            .arg(dir.path().join("requests.jsonl"));
        let output = dir.path().join("upstream.log");
        let mut process = ManagedProcess::spawn("upstream", command, &output)?;
        process::wait_ready(
            "upstream",
            &output,
            STARTUP,
            || process.check_running(),
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )?;
        Ok(UpstreamServer { process, port, dir })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a repository, e.g. `http://127.0.0.1:PORT/demo.git`.
    pub fn url(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            repo.trim_start_matches('/')
        )
    }

    /// The repositories directory.
    pub fn repos_dir(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    /// Creates another repository.
    pub fn create_repo(&self, name: &str, options: RepoOptions) -> Result<PathBuf> {
        repo::create_bare_repo(&self.repos_dir(), name, options)
    }

    /// What `refname` points to in `repo`.
    pub fn read_ref(&self, repo: &str, refname: &str) -> Result<Option<String>> {
        repo::read_ref(&self.repos_dir().join(repo), refname)
    }

    /// The `pre-receive` marker lines of `repo`.
    pub fn pre_receive_lines(&self, repo: &str) -> Result<Vec<String>> {
        repo::pre_receive_lines(&self.repos_dir().join(repo))
    }

    /// Every request served so far.
    pub fn requests(&self) -> Result<Vec<UpstreamRequest>> {
        upstream_log::read_log(&self.dir.path().join("requests.jsonl"))
    }

    /// The server's own output (and git http-backend's stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }

    /// A git command builder for an isolated client.
    pub fn git(&self) -> Git {
        Git::new(self.dir.path().join("git-home"))
            .with_server_logs([self.process.log_path().to_owned()])
    }

    /// A scratch directory inside the server's temporary directory.
    pub fn temp_dir(&self) -> Result<TempDir> {
        tempfile::tempdir_in(self.dir.path())
            .map_err(|e| HarnessError::io("create", self.dir.path(), e))
    }
}
