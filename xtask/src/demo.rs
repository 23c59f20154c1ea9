//! `cargo xtask demo`: the local stack on the fixed demo ports, with its state in `.gitgate/`,
//! until Ctrl-C.
//!
//! Each server runs in its own process group, so Ctrl-C in the terminal reaches only this
//! program, which then stops the servers in order (Envoy first) and only those groups.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Demo ports, as in `envoy/gitgate-local.yaml`.
const GATEWAY_PORT: u16 = 8080;
const SERVICE_PORT: u16 = 8090;
const UPSTREAM_PORT: u16 = 8091;
const ADMIN_PORT: u16 = 9901;

/// Time each server gets to become ready; Envoy compiles the module with V8 first.
const STARTUP: Duration = Duration::from_secs(90);

/// The variable through which Envoy's filter and the approval service share the filter token
/// (the shipped configuration's `host_env_keys` and `approval.token.env`).
const FILTER_TOKEN_ENV: &str = "GITGATE_FILTER_TOKEN";

/// Time a server gets to exit after SIGTERM before its group gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Set by the signal handler; the main loop polls it.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    // Only an atomic store: the one kind of work that is safe inside a signal handler.
    STOP.store(true, Ordering::SeqCst);
}

/// A server of the demo, leader of its own process group.
struct Server {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Result<Server> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", command.get_program().display()))?;
        Ok(Server {
            name,
            child: Some(child),
            log,
        })
    }

    /// Fails with the end of the log if the server has exited.
    fn check(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("{} is not running", self.name)
        };
        if let Some(status) = child.try_wait()? {
            self.child = None;
            bail!(
                "{} exited ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }

    /// SIGTERM to the group, a grace period, then SIGKILL if the leader is still there.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
            return;
        };
        // SAFETY: kill(2) with a negative pid signals the process group this program created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: the leader is not reaped yet, so the group id is still ours.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last 4 KiB of a log.
fn tail(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(4096);
    String::from_utf8_lossy(&text[start..]).into_owned()
}

/// Polls `ready` until it holds, failing early if the server exits.
fn wait_ready(server: &mut Server, mut ready: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    loop {
        server.check()?;
        if ready() {
            return Ok(());
        }
        if STOP.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if started.elapsed() > STARTUP {
            bail!(
                "{} not ready after {STARTUP:?}; the end of its log:\n{}",
                server.name,
                tail(&server.log)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200. A readiness probe only, so a bare
/// HTTP/1.1 exchange is enough: the status line is all it reads.
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A fresh filter token for this run: 32 random bytes, hex. It lives only in the environments
/// of the service and Envoy, so a restarted demo simply makes a new one.
fn fresh_filter_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Fails with a clear message if a demo port is taken (another demo, or another Envoy).
fn check_ports_free() -> Result<()> {
    for (port, what) in [
        (GATEWAY_PORT, "gateway"),
        (SERVICE_PORT, "approval service"),
        (UPSTREAM_PORT, "upstream"),
        (ADMIN_PORT, "envoy admin"),
    ] {
        if TcpListener::bind(addr(port)).is_err() {
            bail!("port {port} ({what}) is already in use on 127.0.0.1: is another demo running?");
        }
    }
    Ok(())
}

/// Builds everything, starts the stack, prints how to use it, and waits for Ctrl-C.
pub fn run(root: &Path) -> Result<()> {
    let envoy = crate::ensure_envoy(root)?;
    crate::build_wasm(root)?;
    crate::build_binaries(root)?;
    check_ports_free()?;

    let state = root.join(".gitgate");
    let logs = state.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    crate::dev_init(root)?;
    crate::ensure_git_credential(root)?;
    let filter_token = fresh_filter_token()?;

    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            request_stop as *const () as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            request_stop as *const () as libc::sighandler_t,
        );
    }

    crate::step("starting the stack (state in .gitgate/)");
    // Declared in start order; dropped (stopped) in reverse, so Envoy goes first.
    let mut upstream = {
        let mut command = Command::new(root.join("target/debug/gitgate-upstream"));
        command
            .current_dir(root)
            .args(["--listen", &addr(UPSTREAM_PORT).to_string()])
            .args([
                "--root",
                ".gitgate/repos",
                "--log",
                ".gitgate/logs/upstream-requests.jsonl",
            ])
            // The Git server wants its own credential, which Envoy injects after the gate.
            .args(["--credential-file", crate::GIT_CREDENTIAL])
            .arg("--seed-demo");
        Server::spawn("gitgate-upstream", command, logs.join("upstream.log"))?
    };
    let mut service = {
        let mut command = Command::new(crate::gitgate_bin(root));
        command
            .current_dir(root)
            .arg("serve")
            .args(["--listen", &addr(SERVICE_PORT).to_string()])
            .args(["--database", "sqlite://.gitgate/gitgate.db"])
            .args(["--dev-issuer-dir", crate::DEV_DIR])
            .args(["--public-url", &format!("http://127.0.0.1:{SERVICE_PORT}")])
            // The filter API answers only the gateway's filter, which has the same token; a
            // token file from the caller's environment would make two sources.
            .env(FILTER_TOKEN_ENV, &filter_token)
            .env_remove("GITGATE_FILTER_TOKEN_FILE");
        Server::spawn("gitgate serve", command, logs.join("service.log"))?
    };
    wait_ready(&mut upstream, || {
        TcpStream::connect_timeout(&addr(UPSTREAM_PORT), Duration::from_millis(200)).is_ok()
    })?;
    wait_ready(&mut service, || http_ok(SERVICE_PORT, "/healthz"))?;
    let mut envoy = {
        let mut command = Command::new(&envoy);
        // Unique among live processes, so another Envoy on the machine keeps its own namespace.
        let base_id = std::process::id().to_string();
        command
            .current_dir(root)
            .args([
                "-c",
                "envoy/gitgate-local.yaml",
                "--concurrency",
                "1",
                "-l",
                "info",
            ])
            .args(["--base-id", &base_id])
            // Read by the filter through `host_env_keys`, never written into its configuration.
            .env(FILTER_TOKEN_ENV, &filter_token);
        Server::spawn("envoy", command, logs.join("envoy.log"))?
    };
    wait_ready(&mut envoy, || http_ok(ADMIN_PORT, "/ready"))?;

    print_welcome();

    let mut servers = [&mut upstream, &mut service, &mut envoy];
    let outcome = loop {
        if STOP.load(Ordering::SeqCst) {
            break Ok(());
        }
        if let Some(err) = servers.iter_mut().find_map(|server| server.check().err()) {
            break Err(err);
        }
        thread::sleep(Duration::from_millis(200));
    };
    eprintln!("\nstopping the stack");
    envoy.stop();
    service.stop();
    upstream.stop();
    eprintln!("stopped; state is kept in .gitgate/ (delete it to start afresh)");
    outcome
}

fn print_welcome() {
    let gateway = format!("http://127.0.0.1:{GATEWAY_PORT}/demo.git");
    let pages = format!("http://127.0.0.1:{SERVICE_PORT}/");
    let upstream = format!("http://127.0.0.1:{UPSTREAM_PORT}/demo.git");
    println!(
        r#"
gitgate demo is up.

  gateway (git remote)   {gateway}
  approval pages         {pages}
  envoy admin            http://127.0.0.1:{ADMIN_PORT}/
  logs                   .gitgate/logs/  (envoy.log has the access log with each decision)

The Git server behind the gateway wants its own credential (.gitgate/git-credential), which
only Envoy adds, after the gate; agents never hold it, and their tokens stop at the gateway.
The approval service's filter API answers only the gateway's filter: both were given a fresh
random token (GITGATE_FILTER_TOKEN) for this run.

In another terminal, from this project folder (the first `cargo xtask token` builds the
gitgate binary, which takes a minute), as an agent acting for alice:

  TOKEN=$(cargo xtask token agent-1 --agent --for alice)
  git -c http.extraHeader="Authorization: Bearer $TOKEN" clone {gateway} /tmp/gitgate-demo
  cd /tmp/gitgate-demo
  git switch -c agent/try && echo change >> README.md && git commit -qam "Try the gate"
  git -c http.extraHeader="Authorization: Bearer $TOKEN" push origin agent/try   # a side branch
  git -c http.extraHeader="Authorization: Bearer $TOKEN" push origin HEAD:main   # main is protected: held for review

The push to main waits, silent, for up to a minute (the hold window). Meanwhile, sign in as
a reviewer at {pages}login (the development issuer asks for a name: bob, role reviewer;
`cargo xtask token bob --reviewer` pasted there works too), open the ticket in the queue and
approve it: the waiting push completes. Deny it instead and git prints your reason; let the
window pass and git prints the ticket's URL, and the same push made after an approval goes
through. git can also take the token as the password when it asks (any user name).

The record of it all (the store is .gitgate/gitgate.db; run from this project folder):

  cargo run -q -p gitgate -- audit commit <commit id>    # who brought it, who approved it
  cargo run -q -p gitgate -- audit verify                # the hash chains are intact
  cargo run -q -p gitgate -- audit sessions              # the sessions, for replay
  GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader \
  GIT_CONFIG_VALUE_0="Authorization: $(cat .gitgate/git-credential)" \
  cargo run -q -p gitgate -- replay <session> --upstream {upstream}
      # the session's pushes as diffs, fetched from the Git server (which wants its credential)

Ctrl-C stops the stack."#
    );
}
