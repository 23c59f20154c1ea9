//! The whole local stack for end-to-end tests: upstream Git server, approval service and Envoy
//! with the gitgate filter, as real processes.
//!
//! ```no_run
//! use gitgate_integration::{Stack, TokenOptions};
//!
//! let stack = Stack::shared();
//! let token = stack.token("agent-1", &TokenOptions::agent_for("alice")).unwrap();
//! let clone = stack.temp_dir().unwrap();
//! stack
//!     .git()
//!     .args(["clone", &stack.gateway_url("demo.git")])
//!     .arg(clone.path().join("demo"))
//!     .bearer(&token)
//!     .success()
//!     .unwrap();
//! ```

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

use crate::envoy::{self, GitCredential};
use crate::error::{HarnessError, Result};
use crate::git::{self, Git};
use crate::http::{self, HttpResponse};
use crate::oidc::{OidcOptions, OidcProvider};
use crate::paths::{Binaries, workspace_root};
use crate::process::{self, ManagedProcess};
use crate::repo::{self, RepoOptions};
use crate::upstream_log::{self, UpstreamRequest};

/// Time a `gitgate` CLI call may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// The variable through which Envoy's filter and the approval service share the filter token
/// (`approval.token.env` of the shipped configuration, and `gitgate serve`'s own).
pub const FILTER_TOKEN_ENV: &str = "GITGATE_FILTER_TOKEN";

/// The shared secret of the filter and the service, one per stack; `Debug` leaves it out.
#[derive(Clone)]
struct FilterToken(String);

impl std::fmt::Debug for FilterToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FilterToken(..)")
    }
}

/// Default time the stack gets to come up. Envoy compiles the filter module with V8 on start,
/// which takes seconds on a busy two-core machine.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

/// The ports of one stack, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Envoy's listener: where git clients connect.
    pub gateway: u16,
    /// The approval service (pages, `/v1` API, `/healthz`).
    pub service: u16,
    /// The upstream Git server.
    pub upstream: u16,
    /// Envoy's admin interface.
    pub admin: u16,
}

impl Ports {
    /// The fixed ports of the demo, as written in `envoy/gitgate-local.yaml`.
    pub const DEMO: Ports = Ports {
        gateway: 8080,
        service: 8090,
        upstream: 8091,
        admin: 9901,
    };

    /// Four ports that were free a moment ago. They are taken by binding all four at once and
    /// then released, so they are distinct; another program could still grab one before the
    /// stack binds it, which start-up then reports.
    pub fn free() -> Result<Ports> {
        let bind = || {
            TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind", "127.0.0.1:0", e))
        };
        let listeners = [bind()?, bind()?, bind()?, bind()?];
        let mut ports = [0u16; 4];
        for (port, listener) in ports.iter_mut().zip(&listeners) {
            *port = listener
                .local_addr()
                .map_err(|e| HarnessError::io("inspect", "127.0.0.1:0", e))?
                .port();
        }
        Ok(Ports {
            gateway: ports[0],
            service: ports[1],
            upstream: ports[2],
            admin: ports[3],
        })
    }
}

/// Which ports a stack uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PortChoice {
    /// Free ports picked at start (tests).
    #[default]
    Free,
    /// The demo's fixed ports.
    Demo,
    /// These ports.
    Fixed(Ports),
}

/// How to start a [`Stack`].
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Ports to use.
    pub ports: PortChoice,
    /// Keep all state in this directory instead of a fresh temporary one (kept after the stack
    /// stops). Existing repositories, keys and database are reused.
    pub state_dir: Option<PathBuf>,
    /// A policy file for the service (`gitgate serve --policy`); the built-in policy otherwise.
    pub policy: Option<PathBuf>,
    /// Exact text replacements applied to the rendered Envoy configuration, e.g. to set
    /// `failure_mode: open` for one test. Each text must occur in the configuration.
    pub envoy_edits: Vec<(String, String)>,
    /// Extra environment for the approval service.
    pub service_env: Vec<(String, String)>,
    /// Extra arguments for `gitgate serve`.
    pub service_args: Vec<String>,
    /// A configuration file for `gitgate serve --config`, as YAML text; written into the state
    /// directory with the OpenID provider's placeholders filled in (see
    /// [`IdentityProvider::Oidc`]), e.g. `oidc: { issuer: "{oidc_issuer}", client_id:
    /// "{oidc_reviewer_client_id}" }`.
    pub service_config: Option<String>,
    /// How long start-up may take.
    pub startup_timeout: Duration,
    /// The programs to run; [`Binaries::locate`] when `None`.
    pub binaries: Option<Binaries>,
    /// Who issues the tokens jwt_authn accepts: the dev issuer (`gitgate dev token`), or a real
    /// OpenID provider started with the stack.
    pub identity_provider: IdentityProvider,
    /// The filter's `approval.hold_window_ms` (hold and forward); `None` leaves the shipped
    /// configuration's value. Test stacks default to `Some(0)`: a held push is refused at once,
    /// which most tests expect.
    pub hold_window_ms: Option<u64>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            ports: PortChoice::Free,
            state_dir: None,
            policy: None,
            envoy_edits: Vec::new(),
            service_env: Vec::new(),
            service_args: Vec::new(),
            service_config: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            binaries: None,
            identity_provider: IdentityProvider::DevIssuer,
            hold_window_ms: Some(0),
        }
    }
}

impl StackOptions {
    /// The default options with a real OpenID provider in front (see [`IdentityProvider::Oidc`]).
    pub fn with_oidc() -> Self {
        StackOptions {
            identity_provider: IdentityProvider::Oidc(OidcOptions::default()),
            ..StackOptions::default()
        }
    }
}

/// Where the gateway's tokens come from.
#[derive(Debug, Clone, Default)]
pub enum IdentityProvider {
    /// The dev issuer of `gitgate dev init`: jwt_authn reads its key set from a local file, and
    /// [`Stack::token`] mints tokens.
    #[default]
    DevIssuer,
    /// A real OpenID provider (`oidc-provider` under Node, see [`crate::oidc`]), started before
    /// the service: jwt_authn fetches its key set over HTTP (`remote_jwks`), and tokens come from
    /// [`Stack::oidc`]. The dev issuer still signs reviewers in on the service's pages.
    ///
    /// In [`StackOptions::service_args`], [`StackOptions::service_config`] and the values of
    /// [`StackOptions::service_env`], the texts `{oidc_issuer}`, `{oidc_reviewer_client_id}`
    /// and `{oidc_reviewer_client_secret}` are replaced with the provider's (pass the secret
    /// through the environment: `GITGATE_OIDC_CLIENT_SECRET`).
    Oidc(OidcOptions),
}

/// What a dev token says about its holder (`gitgate dev token`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenOptions {
    /// The holder is an AI agent (`--agent`).
    pub agent: bool,
    /// The person the agent acts for (`--for`).
    pub acting_for: Option<String>,
    /// Groups (`--group`, repeated).
    pub groups: Vec<String>,
    /// The holder may review held pushes (`--reviewer`).
    pub reviewer: bool,
    /// Lifetime such as `15m` (`--ttl`); the CLI's default when `None`.
    pub ttl: Option<String>,
}

impl TokenOptions {
    /// A person's token with no roles.
    pub fn person() -> Self {
        TokenOptions::default()
    }

    /// An agent's token acting for `person`.
    pub fn agent_for(person: &str) -> Self {
        TokenOptions {
            agent: true,
            acting_for: Some(person.to_owned()),
            ..Default::default()
        }
    }

    /// A reviewer's token.
    pub fn reviewer() -> Self {
        TokenOptions {
            reviewer: true,
            ..Default::default()
        }
    }

    /// Adds a group.
    pub fn group(mut self, group: &str) -> Self {
        self.groups.push(group.to_owned());
        self
    }

    /// Sets the lifetime, e.g. `"1s"`.
    pub fn ttl(mut self, ttl: &str) -> Self {
        self.ttl = Some(ttl.to_owned());
        self
    }

    /// The `gitgate dev token` arguments after the subject.
    fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.agent {
            args.push("--agent".to_owned());
        }
        if let Some(person) = &self.acting_for {
            args.extend(["--for".to_owned(), person.clone()]);
        }
        for group in &self.groups {
            args.extend(["--group".to_owned(), group.clone()]);
        }
        if self.reviewer {
            args.push("--reviewer".to_owned());
        }
        if let Some(ttl) = &self.ttl {
            args.extend(["--ttl".to_owned(), ttl.clone()]);
        }
        args
    }
}

/// Where one stack keeps its files.
#[derive(Debug, Clone)]
struct Layout {
    /// The state directory.
    root: PathBuf,
    /// Upstream repositories.
    repos: PathBuf,
    /// Dev issuer: `signing-key.pem`, `jwks.json`.
    dev: PathBuf,
    /// SQLite store of the service.
    database: PathBuf,
    /// HOME of the isolated git client.
    git_home: PathBuf,
    /// The rendered Envoy configuration.
    envoy_config: PathBuf,
    /// Process output.
    upstream_log: PathBuf,
    service_log: PathBuf,
    envoy_log: PathBuf,
    /// The upstream's JSON request log.
    upstream_requests: PathBuf,
    /// The OpenID provider's files, when there is one.
    oidc: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        let logs = root.join("logs");
        Layout {
            root: root.to_owned(),
            repos: root.join("repos"),
            dev: root.join("dev"),
            database: root.join("gitgate.db"),
            git_home: root.join("git-home"),
            envoy_config: root.join("envoy.yaml"),
            upstream_log: logs.join("upstream.log"),
            service_log: logs.join("service.log"),
            envoy_log: logs.join("envoy.log"),
            upstream_requests: logs.join("upstream-requests.jsonl"),
            oidc: root.join("oidc"),
        }
    }
}

/// A running stack. Dropping it stops Envoy, the service and the upstream (each by its own
/// process group) and removes its temporary state; when dropped during a panic it first prints
/// the end of every log.
#[derive(Debug)]
pub struct Stack {
    ports: Ports,
    layout: Layout,
    binaries: Binaries,
    options: StackOptions,
    /// The Git server's credential, which Envoy injects and the upstream requires.
    git_credential: GitCredential,
    /// The token Envoy's filter sends the approval service, and the service requires.
    filter_token: FilterToken,
    /// The OpenID provider, with [`IdentityProvider::Oidc`].
    oidc: Option<OidcProvider>,
    /// The temporary state directory, if the stack made one; `None` after shutdown.
    temp: Mutex<Option<TempDir>>,
    upstream: Mutex<Option<ManagedProcess>>,
    service: Mutex<Option<ManagedProcess>>,
    envoy: Mutex<Option<ManagedProcess>>,
    /// Source of unique names handed out by [`Stack::unique_repo_name`].
    names: AtomicUsize,
}

/// The stack shared by all tests of one test binary.
static SHARED: OnceLock<Stack> = OnceLock::new();

/// Envoy start counter, part of each `--base-id`.
static ENVOY_STARTS: AtomicU32 = AtomicU32::new(0);

/// Stops the shared stack when the test binary exits; statics are never dropped.
extern "C" fn stop_shared_stack() {
    if let Some(stack) = SHARED.get() {
        stack.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding a lock leaves the data usable: these are process
    // handles, not invariants.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Stack {
    /// Starts a stack with the default options: free ports, fresh temporary state.
    pub fn start() -> Result<Stack> {
        Stack::start_with(StackOptions::default())
    }

    /// The stack shared by every test in this test binary, started on first use and stopped
    /// when the binary exits. Tests that change its state should use their own repositories
    /// ([`Stack::create_repo`] with [`Stack::unique_repo_name`]).
    ///
    /// # Panics
    ///
    /// If the stack cannot start; the message carries the logs.
    pub fn shared() -> &'static Stack {
        Stack::shared_with(StackOptions::default)
    }

    /// The stack shared by every test in this test binary, like [`Stack::shared`], but started
    /// with the options `make` gives (for example [`StackOptions::with_oidc`]). The first call
    /// in a test binary starts it; later calls get that stack whatever their options, so a test
    /// binary should use one kind of shared stack only.
    ///
    /// # Panics
    ///
    /// If the stack cannot start; the message carries the logs.
    pub fn shared_with(make: fn() -> StackOptions) -> &'static Stack {
        SHARED.get_or_init(|| {
            let stack = match start_on_lasting_thread(make) {
                Ok(stack) => stack,
                Err(err) => panic!("the shared gitgate stack did not start: {err}"),
            };
            // SAFETY: atexit takes a plain extern "C" function without arguments.
            unsafe {
                libc::atexit(stop_shared_stack);
            }
            stack
        })
    }

    /// Starts a stack as `options` say.
    pub fn start_with(options: StackOptions) -> Result<Stack> {
        let binaries = options.binaries.clone().unwrap_or_else(Binaries::locate);
        binaries.check()?;
        let ports = match options.ports {
            PortChoice::Free => Ports::free()?,
            PortChoice::Demo => Ports::DEMO,
            PortChoice::Fixed(ports) => ports,
        };
        let (temp, root) = match &options.state_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("gitgate-stack-")
                    .tempdir()
                    .map_err(|e| HarnessError::io("create", std::env::temp_dir(), e))?;
                let root = temp.path().to_owned();
                (Some(temp), root)
            }
        };
        let layout = Layout::new(&root);
        for dir in [&layout.root, &layout.repos, &layout.dev, &root.join("logs")] {
            std::fs::create_dir_all(dir).map_err(|e| HarnessError::io("create", dir, e))?;
        }
        git::prepare_home(&layout.git_home)?;
        if !layout.repos.join(repo::DEMO_REPO).exists() {
            repo::seed_demo(&layout.repos)?;
        }
        let git_credential = envoy::write_git_credential(&layout.root)?;
        // Fresh per stack, and only ever in the two processes' environments: never in a file
        // or on a command line.
        let filter_token = FilterToken(envoy::random_password()?);
        // First, so that the service's arguments can name it; dropped with the stack on error.
        let oidc = match &options.identity_provider {
            IdentityProvider::DevIssuer => None,
            IdentityProvider::Oidc(oidc_options) => Some(OidcProvider::start(
                &layout.oidc,
                oidc_options,
                &format!("http://127.0.0.1:{}", ports.service),
            )?),
        };

        // From here on a failure drops the stack, which stops whatever was started.
        let stack = Stack {
            ports,
            layout,
            binaries,
            options,
            git_credential,
            filter_token,
            oidc,
            temp: Mutex::new(temp),
            upstream: Mutex::new(None),
            service: Mutex::new(None),
            envoy: Mutex::new(None),
            names: AtomicUsize::new(0),
        };
        stack.cli(&["dev", "init", "--dir"], &[stack.layout.dev.as_os_str()])?;
        stack.spawn_upstream()?;
        stack.spawn_service()?;
        stack.wait_upstream()?;
        stack.wait_service()?;
        stack.start_envoy()?;
        Ok(stack)
    }

    // ---- start and stop -------------------------------------------------------------------

    fn spawn_upstream(&self) -> Result<()> {
        let mut command = Command::new(&self.binaries.upstream);
        command
            .arg("--listen")
            .arg(self.addr(self.ports.upstream).to_string())
            .arg("--root")
            .arg(&self.layout.repos)
            .arg("--log")
            .arg(&self.layout.upstream_requests)
            .arg("--credential-file")
            .arg(&self.git_credential.file);
        let process = ManagedProcess::spawn("upstream", command, &self.layout.upstream_log)?;
        *lock(&self.upstream) = Some(process);
        Ok(())
    }

    fn wait_upstream(&self) -> Result<()> {
        let addr = self.addr(self.ports.upstream);
        process::wait_ready(
            "upstream",
            &self.layout.upstream_log,
            self.options.startup_timeout,
            || alive(&self.upstream, "upstream"),
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
        )
    }

    fn spawn_service(&self) -> Result<()> {
        let mut command = Command::new(&self.binaries.gitgate);
        let listen = self.addr(self.ports.service).to_string();
        command
            .current_dir(&self.layout.root)
            .arg("serve")
            .args(["--listen", &listen])
            .arg("--database")
            .arg(format!("sqlite://{}", self.layout.database.display()))
            .arg("--dev-issuer-dir")
            .arg(&self.layout.dev)
            .args(["--public-url", &self.service_url("")]);
        if let Some(policy) = &self.options.policy {
            command.arg("--policy").arg(policy);
        }
        if let Some(text) = &self.options.service_config {
            let path = self.layout.root.join("service.yaml");
            std::fs::write(&path, self.fill_in_oidc(text))
                .map_err(|e| HarnessError::io("write", &path, e))?;
            command.arg("--config").arg(&path);
        }
        command.args(
            self.options
                .service_args
                .iter()
                .map(|a| self.fill_in_oidc(a)),
        );
        scrub_gitgate_env(&mut command);
        // Before the test's own environment, which may take it away again.
        command.env(FILTER_TOKEN_ENV, &self.filter_token.0);
        // Plain text in the log file; colour codes only help on a terminal.
        command.env("NO_COLOR", "1");
        for (key, value) in &self.options.service_env {
            command.env(key, self.fill_in_oidc(value));
        }
        let process = ManagedProcess::spawn("service", command, &self.layout.service_log)?;
        *lock(&self.service) = Some(process);
        Ok(())
    }

    /// `text` with the OpenID provider's placeholders filled in (see [`IdentityProvider::Oidc`]).
    fn fill_in_oidc(&self, text: &str) -> String {
        match &self.oidc {
            None => text.to_owned(),
            Some(oidc) => text
                .replace("{oidc_issuer}", oidc.issuer())
                .replace("{oidc_reviewer_client_id}", crate::oidc::REVIEWER_CLIENT_ID)
                .replace(
                    "{oidc_reviewer_client_secret}",
                    oidc.reviewer_client_secret(),
                ),
        }
    }

    fn wait_service(&self) -> Result<()> {
        let url = self.service_url("/healthz");
        process::wait_ready(
            "service",
            &self.layout.service_log,
            self.options.startup_timeout,
            || alive(&self.service, "service"),
            || probe_ok(&url),
        )
    }

    fn start_envoy(&self) -> Result<()> {
        let template_path = workspace_root().join(envoy::LOCAL_CONFIG);
        let template = std::fs::read_to_string(&template_path)
            .map_err(|e| HarnessError::io("read", &template_path, e))?;
        let jwks = self.layout.dev.join("jwks.json");
        let files = envoy::Files {
            wasm: &self.binaries.wasm,
            jwks: &jwks,
            credential_sds: &self.git_credential.sds,
        };
        let mut rendered = envoy::render(&template, &self.ports, &files)?;
        if let Some(oidc) = &self.oidc {
            let edits = envoy::remote_jwks_edits(&oidc.remote_jwks(), &jwks);
            rendered = envoy::edit(&rendered, &edits)?;
        }
        if let Some(window) = self.options.hold_window_ms {
            let anchor = "\n                      authority: gitgate-approval\n";
            let line = format!("{anchor}                      hold_window_ms: {window}\n");
            rendered = envoy::edit(&rendered, &[(anchor.to_owned(), line)])?;
        }
        let rendered = envoy::edit(&rendered, &self.options.envoy_edits)?;
        let config = &self.layout.envoy_config;
        std::fs::write(config, rendered).map_err(|e| HarnessError::io("write", config, e))?;

        // Distinct per live process and per start, so parallel test binaries and stacks never
        // share Envoy's shared-memory namespace.
        let start = ENVOY_STARTS.fetch_add(1, Ordering::Relaxed) % 16;
        let base_id = std::process::id().wrapping_mul(16).wrapping_add(start);
        let mut command = Command::new(&self.binaries.envoy);
        command
            .current_dir(&self.layout.root)
            .arg("-c")
            .arg(config)
            .args(["--concurrency", "1", "-l", "info"])
            .args(["--base-id", &base_id.to_string()])
            // Read by the filter through `host_env_keys`; not in the rendered configuration.
            .env(FILTER_TOKEN_ENV, &self.filter_token.0);
        let process = ManagedProcess::spawn("envoy", command, &self.layout.envoy_log)?;
        *lock(&self.envoy) = Some(process);

        let ready = self.admin_url("/ready");
        process::wait_ready(
            "envoy",
            &self.layout.envoy_log,
            self.options.startup_timeout,
            || alive(&self.envoy, "envoy"),
            || probe_ok(&ready),
        )?;
        let gateway = self.addr(self.ports.gateway);
        process::wait_ready(
            "envoy listener",
            &self.layout.envoy_log,
            self.options.startup_timeout,
            || alive(&self.envoy, "envoy"),
            || TcpStream::connect_timeout(&gateway, Duration::from_millis(200)).is_ok(),
        )
    }

    /// Stops the approval service (to test what the gate does when it is down).
    pub fn stop_service(&self) {
        if let Some(mut service) = lock(&self.service).take() {
            service.stop();
        }
    }

    /// Starts the approval service again after [`Stack::stop_service`], with the same store.
    pub fn start_service(&self) -> Result<()> {
        self.stop_service();
        self.spawn_service()?;
        self.wait_service()
    }

    /// Stops everything and removes temporary state; what `Drop` does. Safe to call twice.
    pub fn shutdown(&self) {
        // Envoy first, so no client request reaches a half-stopped back end.
        for slot in [&self.envoy, &self.service, &self.upstream] {
            if let Some(mut process) = lock(slot).take() {
                process.stop();
            }
        }
        if let Some(oidc) = &self.oidc {
            oidc.stop();
        }
        if let Some(temp) = lock(&self.temp).take()
            && std::env::var_os("GITGATE_KEEP_STATE").is_some()
        {
            let kept = temp.keep();
            eprintln!("gitgate stack state kept in {}", kept.display());
        }
    }

    // ---- addresses ------------------------------------------------------------------------

    fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The ports in use.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// The URL of a repository through the gateway, e.g. `http://127.0.0.1:PORT/demo.git`.
    pub fn gateway_url(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.ports.gateway,
            repo.trim_start_matches('/')
        )
    }

    /// The URL of a repository on the upstream directly, bypassing the gateway, with the Git
    /// server's credential as its user information (which git sends once the upstream's Basic
    /// challenge asks for it), e.g. `http://gitgate-gateway:PASSWORD@127.0.0.1:PORT/demo.git`.
    pub fn upstream_url(&self, repo: &str) -> String {
        format!(
            "http://{}@127.0.0.1:{}/{}",
            self.git_credential.userinfo(),
            self.ports.upstream,
            repo.trim_start_matches('/')
        )
    }

    /// The URL of a repository (or any path) on the upstream without a credential: the
    /// upstream answers it 401 unless the request carries [`Stack::upstream_authorization`].
    pub fn upstream_url_without_credential(&self, repo: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.ports.upstream,
            repo.trim_start_matches('/')
        )
    }

    /// The `Authorization` value the upstream wants: the Git server's credential, which the
    /// gateway injects and agents never hold.
    pub fn upstream_authorization(&self) -> &str {
        self.git_credential.header()
    }

    /// The token the gateway's filter sends the approval service on every callout, and the
    /// service requires on `/v1/verdicts`, `/v1/holds/wait` and `/v1/events`.
    pub fn filter_token(&self) -> &str {
        &self.filter_token.0
    }

    /// The SDS file of the Git server's credential (for another Envoy in front of the upstream).
    pub fn git_credential_sds(&self) -> PathBuf {
        self.git_credential.sds.clone()
    }

    /// A URL of the approval service; `path` starts with `/` or is empty.
    pub fn service_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ports.service, path)
    }

    /// A URL of Envoy's admin interface; `path` starts with `/`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ports.admin, path)
    }

    // ---- identity -------------------------------------------------------------------------

    /// The OpenID provider, when the stack was started with [`IdentityProvider::Oidc`].
    pub fn oidc(&self) -> Option<&OidcProvider> {
        self.oidc.as_ref()
    }

    /// Mints a dev token for `subject` with `gitgate dev token`.
    pub fn token(&self, subject: &str, options: &TokenOptions) -> Result<String> {
        let mut args: Vec<String> = vec!["dev".into(), "token".into(), subject.into()];
        args.extend(options.cli_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.cli(&args, &["--dir".as_ref(), self.layout.dev.as_os_str()])?;
        Ok(out.trim().to_owned())
    }

    /// The dev issuer's directory (`signing-key.pem`, `jwks.json`).
    pub fn dev_issuer_dir(&self) -> &Path {
        &self.layout.dev
    }

    /// Runs the `gitgate` CLI with `args` followed by `tail`; returns stdout.
    fn cli(&self, args: &[&str], tail: &[&std::ffi::OsStr]) -> Result<String> {
        let mut command = Command::new(&self.binaries.gitgate);
        command.current_dir(&self.layout.root).args(args).args(tail);
        scrub_gitgate_env(&mut command);
        Ok(process::run_ok(command, None, CLI_TIMEOUT)?.stdout)
    }

    // ---- git ------------------------------------------------------------------------------

    /// A command builder for the real git client with an isolated HOME and configuration. A
    /// command that does not end as asked reports the end of every server log.
    pub fn git(&self) -> Git {
        Git::new(&self.layout.git_home).with_server_logs(self.log_paths())
    }

    /// A fresh directory for clones, removed when dropped.
    pub fn temp_dir(&self) -> Result<TempDir> {
        let scratch = self.layout.root.join("scratch");
        std::fs::create_dir_all(&scratch).map_err(|e| HarnessError::io("create", &scratch, e))?;
        tempfile::tempdir_in(&scratch).map_err(|e| HarnessError::io("create", scratch, e))
    }

    // ---- upstream -------------------------------------------------------------------------

    /// The directory of the upstream repositories.
    pub fn repos_dir(&self) -> &Path {
        &self.layout.repos
    }

    /// The path of an upstream bare repository.
    pub fn upstream_repo(&self, repo: &str) -> PathBuf {
        self.layout.repos.join(repo)
    }

    /// A repository name no other caller of this stack got, e.g. `prefix-3.git`.
    pub fn unique_repo_name(&self, prefix: &str) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{n}.git")
    }

    /// Creates another upstream repository (SHA-256 or empty ones too, see [`RepoOptions`]).
    pub fn create_repo(&self, repo: &str, options: RepoOptions) -> Result<PathBuf> {
        repo::create_bare_repo(&self.layout.repos, repo, options)
    }

    /// What `refname` points to in the upstream repository, read with `git rev-parse`; `None`
    /// if the ref does not exist there.
    pub fn upstream_ref(&self, repo: &str, refname: &str) -> Result<Option<String>> {
        repo::read_ref(&self.upstream_repo(repo), refname)
    }

    /// Every `<old> <new> <ref>` line the upstream's `pre-receive` hook of `repo` has recorded;
    /// empty if receive-pack never ran its hooks there.
    pub fn pre_receive_lines(&self, repo: &str) -> Result<Vec<String>> {
        repo::pre_receive_lines(&self.upstream_repo(repo))
    }

    /// Every request the upstream has served so far, oldest first.
    pub fn upstream_requests(&self) -> Result<Vec<UpstreamRequest>> {
        upstream_log::read_log(&self.layout.upstream_requests)
    }

    /// Polls the upstream request log until `done` holds for it, and returns it then.
    ///
    /// A completed exchange is logged before its answer ends, so after a successful git
    /// command the log is already complete. A request the gateway broke off (a refused push
    /// whose upstream stream Envoy reset) is logged only once the upstream has noticed, a moment
    /// later: wait for it with this.
    pub fn wait_upstream_requests(
        &self,
        limit: Duration,
        mut done: impl FnMut(&[UpstreamRequest]) -> bool,
    ) -> Result<Vec<UpstreamRequest>> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let requests = self.upstream_requests()?;
            if done(&requests) {
                return Ok(requests);
            }
            if std::time::Instant::now() >= deadline {
                return Err(HarnessError::Unexpected(format!(
                    "the upstream request log did not reach the expected state within \
                     {limit:?}; it holds:\n{requests:#?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // ---- envoy ----------------------------------------------------------------------------

    /// Envoy's process id while it runs, e.g. to read its memory use from `/proc/<pid>/status`.
    /// The `.venv` launcher execs Envoy, so this is the Envoy process itself.
    pub fn envoy_pid(&self) -> Option<u32> {
        lock(&self.envoy).as_ref().and_then(ManagedProcess::pid)
    }

    /// Envoy's counters and gauges from admin `/stats`, by name.
    pub fn envoy_stats(&self) -> Result<BTreeMap<String, u64>> {
        let response = http::get(&self.admin_url("/stats"))?;
        Ok(parse_stats(&response.text()))
    }

    /// One Envoy counter or gauge, e.g. `http.gitgate.downstream_rq_completed`.
    pub fn envoy_stat(&self, name: &str) -> Result<Option<u64>> {
        Ok(self.envoy_stats()?.get(name).copied())
    }

    /// Sends one HTTP request (to any URL of this stack) and reads the whole answer.
    pub fn http(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<HttpResponse> {
        http::request(method, url, headers, body)
    }

    // ---- logs -----------------------------------------------------------------------------

    fn log_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![
            self.layout.envoy_log.clone(),
            self.layout.service_log.clone(),
            self.layout.upstream_log.clone(),
        ];
        if let Some(oidc) = &self.oidc {
            paths.push(oidc.log_path().to_owned());
        }
        paths
    }

    /// Envoy's output (its log and its access log).
    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(&self.layout.envoy_log).unwrap_or_default()
    }

    /// The approval service's output.
    pub fn service_log(&self) -> String {
        std::fs::read_to_string(&self.layout.service_log).unwrap_or_default()
    }

    /// The upstream server's output (git http-backend's stderr included).
    pub fn upstream_output(&self) -> String {
        std::fs::read_to_string(&self.layout.upstream_log).unwrap_or_default()
    }

    /// Prints the end of every log to stderr (which the test harness shows for failed tests).
    pub fn print_logs(&self) {
        for path in self.log_paths() {
            eprintln!(
                "----- {} -----\n{}",
                path.display(),
                process::log_tail(&path)
            );
        }
    }

    /// A guard that prints the logs if the test panics while it is alive; for the shared
    /// stack, which is never dropped by a test.
    pub fn logs_on_failure(&self) -> LogsOnFailure<'_> {
        LogsOnFailure { stack: self }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        self.shutdown();
    }
}

/// Prints the stack's logs when dropped during a panic; see [`Stack::logs_on_failure`].
#[derive(Debug)]
pub struct LogsOnFailure<'a> {
    stack: &'a Stack,
}

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stack.print_logs();
        }
    }
}

/// Starts a default stack from a thread that lives as long as the test binary.
///
/// Envoy sets `PR_SET_PDEATHSIG` to SIGTERM, and Linux sends that signal when the *thread* that
/// spawned the process ends, not the process. The first test to ask for the shared stack runs on
/// a thread of its own that ends with that test; started from there, Envoy would stop under
/// every later test.
fn start_on_lasting_thread(make: fn() -> StackOptions) -> Result<Stack> {
    let (started, outcome) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("gitgate-shared-stack".into())
        .spawn(move || {
            let _ = started.send(Stack::start_with(make()));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| HarnessError::Unexpected(format!("cannot spawn the stack thread: {e}")))?;
    outcome.recv().unwrap_or_else(|_| {
        Err(HarnessError::Unexpected(
            "the stack thread ended without a stack".into(),
        ))
    })
}

fn alive(slot: &Mutex<Option<ManagedProcess>>, component: &'static str) -> Result<()> {
    match lock(slot).as_mut() {
        Some(process) => process.check_running(),
        None => Err(HarnessError::Exited {
            component,
            status: "not started".into(),
            log_tail: String::new(),
        }),
    }
}

fn probe_ok(url: &str) -> bool {
    http::request_with_timeout("GET", url, &[], Vec::new(), Duration::from_secs(2))
        .is_ok_and(|response| response.status == 200)
}

/// Removes `GITGATE_*` variables from the caller's environment, so a developer's shell settings
/// cannot change the service under test; the test's own settings are added after this.
fn scrub_gitgate_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("GITGATE_") {
            command.env_remove(&name);
        }
    }
}

/// Reads the plain `/stats` format (`name: value` per line); histogram lines, which are not
/// plain integers, are left out.
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(": ")?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_become_numbers_and_histograms_are_skipped() {
        let stats = parse_stats(
            "cluster.gitgate_upstream.upstream_rq_200: 3\n\
             http.gitgate.downstream_rq_time: P0(nan,1) P25(nan,1)\n\
             wasmcustom.gitgate.pushes: 2\n",
        );
        assert_eq!(
            stats.get("cluster.gitgate_upstream.upstream_rq_200"),
            Some(&3)
        );
        assert_eq!(stats.get("wasmcustom.gitgate.pushes"), Some(&2));
        assert_eq!(stats.len(), 2);
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = Ports::free().unwrap();
        let all = [ports.gateway, ports.service, ports.upstream, ports.admin];
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), 4, "{ports:?}");
    }

    #[test]
    fn token_options_become_cli_flags() {
        let args = TokenOptions::agent_for("alice")
            .group("dev")
            .ttl("1m")
            .cli_args();
        assert_eq!(
            args,
            ["--agent", "--for", "alice", "--group", "dev", "--ttl", "1m"]
        );
        assert_eq!(TokenOptions::reviewer().cli_args(), ["--reviewer"]);
    }
}
