//! `gitgate-bench`: what the gate costs a git client, measured against a plain Envoy.
//!
//! Starts, in one run, the whole gitgate stack and beside it a second Envoy made from the same
//! `envoy/gitgate-local.yaml` with every HTTP filter but the router taken out (no wasm gate, no
//! Basic-auth rewrite, no `jwt_authn`), forwarding to the same upstream Git server. Then it
//! times the real git client through both, the two interleaved, and prints Markdown tables:
//!
//! - `git ls-remote`, a clone of the demo repository, and a small push (one small commit to a
//!   fresh branch, which the policy allows): `--reps` runs each, median and p90;
//! - a push of a commit with `--big-mb` MB of incompressible data in 10 MB files (allowed):
//!   `--big-reps` runs;
//! - Envoy's peak resident memory (`VmHWM` in `/proc/<pid>/status`, reset just before) during
//!   one push of `--rss-mb` MB.
//!
//! The gate runs the shipped configuration, secret push protection included; `--secrets off`
//! turns the scan off, so that two runs tell its cost from the rest of the gate's.
//!
//! Nothing here is a test: no figure is checked against a limit. Run it with
//! `cargo xtask bench`, which builds release binaries first and points the harness at them
//! (`GITGATE_BIN`, `GITGATE_UPSTREAM_BIN`, `GITGATE_FILTER_WASM`, `GITGATE_ENVOY`).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use gitgate_integration::process::{self, ManagedProcess};
use gitgate_integration::{
    Binaries, Ports, RepoOptions, Stack, StackOptions, TokenOptions, envoy, git,
};
use serde_norway::Value;
use tempfile::TempDir;

/// Limit for one small git command; a hung command ends the run instead of the machine's day.
const SMALL_LIMIT: Duration = Duration::from_secs(120);

/// Limit for one large push.
const BIG_LIMIT: Duration = Duration::from_secs(900);

/// How often a running git command is looked at: the resolution of every figure.
const POLL: Duration = Duration::from_millis(1);

/// Size of each file of the large pushes. The gate scans every object for secrets and refuses
/// an object over its scan limit (64 MiB by default), so large pushes are made of many files,
/// as real ones are.
const FILE_MB: u64 = 10;

/// How often Envoy's resident memory is sampled during the large push.
const RSS_SAMPLE: Duration = Duration::from_millis(10);

/// The HTTP filters the plain Envoy keeps: the router, and the injector of the Git server's
/// credential (the upstream wants it from every client).
const ROUTER_FILTER: &str = "envoy.filters.http.router";
const CREDENTIAL_FILTER: &str = "envoy.filters.http.credential_injector";

/// The branch the small pushes and the large pushes go to; the policy protects only `main`.
const BENCH_BRANCH: &str = "refs/heads/bench";

#[derive(Debug, Parser)]
#[command(
    name = "gitgate-bench",
    about = "Time git through the gitgate stack and through a plain Envoy"
)]
struct Args {
    /// Runs of ls-remote, clone and the small push through each Envoy.
    #[arg(long, default_value_t = 30)]
    reps: usize,
    /// Runs of the large push through each Envoy.
    #[arg(long, default_value_t = 10)]
    big_reps: usize,
    /// Size of the large push, in MB of incompressible data.
    #[arg(long, default_value_t = 100)]
    big_mb: u64,
    /// Size of the push during which Envoy's peak memory is read, in MB.
    #[arg(long, default_value_t = 200)]
    rss_mb: u64,
    /// Secret push protection in the gate: `on` (the shipped configuration) or `off` (the gate
    /// with `secrets: { enabled: false }`), to tell the scan's cost from the gate's.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    secrets: String,
    /// What to time: `git` (ls-remote, clone, pushes, memory) or `mask` (response masking of
    /// large text and JSON bodies, and a clone of a repository with no maskable text).
    #[arg(long, default_value = "git", value_parser = ["git", "mask"])]
    mode: String,
    /// Scanning of fetched packs in the gate (`mask` mode): `on` (the shipped configuration)
    /// or `off` (`fetch: { enabled: false }`).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    fetch: String,
    /// The audit record in the gate: `on` (the shipped configuration) or `off` (`audit: {
    /// enabled: false }`), to tell its cost from the rest of the gate's.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    audit: String,
    /// Size of each body of the `mask` mode, in MB.
    #[arg(long, default_value_t = 32)]
    body_mb: u64,
    /// Size of the repository cloned in the `mask` mode, in MB of incompressible data.
    #[arg(long, default_value_t = 50)]
    clone_mb: u64,
}

/// Which Envoy a command goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The gitgate stack's Envoy: Basic-auth rewrite, `jwt_authn`, the gate, the router.
    Gate,
    /// The same listener with the router alone.
    Plain,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Gate => "gate",
            Via::Plain => "plain",
        }
    }

    /// Both, gate first on even runs and plain first on odd ones, so neither always runs on a
    /// machine the other just warmed.
    fn order(run: usize) -> [Via; 2] {
        if run.is_multiple_of(2) {
            [Via::Gate, Via::Plain]
        } else {
            [Via::Plain, Via::Gate]
        }
    }
}

fn main() {
    let args = Args::parse();
    if let Err(err) = run(&args) {
        eprintln!("gitgate-bench: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<()> {
    if args.reps == 0 || args.big_reps == 0 {
        bail!("--reps and --big-reps must be at least 1");
    }
    let binaries = Binaries::locate();
    let stack = start_stack(args).context("starting the gitgate stack")?;
    let plain = PlainEnvoy::start(&stack, &binaries.envoy)?;
    let token = stack.token("bench-agent", &TokenOptions::agent_for("bench"))?;
    let scratch = TempDir::with_prefix("gitgate-bench-")?;
    let client = Client::new(scratch.path(), &stack, &plain, &token)?;
    let mut report = Report::default();
    if args.mode == "mask" {
        return mask::run(args, &stack, &client, report, &binaries);
    }

    // Memory first, so that "before" is an Envoy that has served one ls-remote and nothing
    // else, and the peak shows what the large push itself costs.
    progress(&format!("Envoy's memory during a {} MB push", args.rss_mb));
    let gate_pid = stack
        .envoy_pid()
        .context("the stack's Envoy is not running")?;
    let plain_pid = plain.pid()?;
    for (via, pid) in [(Via::Gate, gate_pid), (Via::Plain, plain_pid)] {
        let mut warm_up = client.git(None);
        warm_up.arg("ls-remote").arg(client.url(via, "demo.git"));
        timed(warm_up, SMALL_LIMIT)?;
        report
            .memory
            .push(client.push_memory(&stack, via, pid, args.rss_mb)?);
    }

    progress("git ls-remote");
    report.timings.push(client.ls_remote(args.reps)?);
    progress("git clone of the demo repository");
    report.timings.push(client.clone_demo(args.reps)?);
    progress("small push");
    report.timings.push(client.small_push(&stack, args.reps)?);
    progress(&format!("{} MB push", args.big_mb));
    report
        .timings
        .push(client.big_push(&stack, args.big_reps, args.big_mb)?);

    print!("{}", report.markdown(args, &binaries)?);
    Ok(())
}

/// The gitgate stack, with secret scanning turned off when `--secrets off` says so.
fn start_stack(args: &Args) -> Result<Stack> {
    let mut options = StackOptions::default();
    if args.fetch == "off" {
        // Before `approval`, which the gate's configuration opens with.
        let first = "                    approval:\n";
        options.envoy_edits.push((
            first.to_owned(),
            format!("                    fetch: {{ enabled: false }}\n{first}"),
        ));
    }
    if args.audit == "off" {
        let first = "                    approval:\n";
        options.envoy_edits.push((
            first.to_owned(),
            format!("                    audit: {{ enabled: false }}\n{first}"),
        ));
    }
    if args.secrets == "off" {
        // The gate's configuration ends its `identity` section with this line.
        let last = "payload_key: jwt_payload";
        options.envoy_edits.push((
            last.to_owned(),
            format!("{last}\n                    secrets: {{ enabled: false }}"),
        ));
    }
    Ok(Stack::start_with(options)?)
}

fn progress(what: &str) {
    eprintln!("gitgate-bench: {what}");
}

// ---- the plain Envoy ---------------------------------------------------------------------

/// A second Envoy without the gitgate filters, forwarding to the stack's upstream.
struct PlainEnvoy {
    /// Its listener.
    port: u16,
    process: ManagedProcess,
    _dir: TempDir,
}

impl PlainEnvoy {
    /// Renders the shipped configuration for two new ports and the stack's upstream, strips it
    /// to the router, validates it and starts it.
    fn start(stack: &Stack, envoy_bin: &Path) -> Result<PlainEnvoy> {
        let root = gitgate_integration::workspace_root();
        let template_path = root.join(envoy::LOCAL_CONFIG);
        let template = std::fs::read_to_string(&template_path)
            .with_context(|| format!("reading {}", template_path.display()))?;
        let free = Ports::free()?;
        let ports = Ports {
            gateway: free.gateway,
            admin: free.admin,
            ..stack.ports()
        };
        let dir = TempDir::with_prefix("gitgate-plain-envoy-")?;
        // The wasm and key-set paths are rendered too, though nothing in the result reads them;
        // the credential is the stack's, which the upstream wants from this Envoy too.
        let jwks = stack.dev_issuer_dir().join("jwks.json");
        let credential_sds = stack.git_credential_sds();
        let files = envoy::Files {
            wasm: Path::new(envoy::WASM_PATH),
            jwks: &jwks,
            credential_sds: &credential_sds,
        };
        let rendered = envoy::render(&template, &ports, &files)?;
        let config = dir.path().join("plain-envoy.yaml");
        std::fs::write(&config, router_only(&rendered)?)?;

        let mut validate = Command::new(envoy_bin);
        validate
            .args(["--mode", "validate", "-l", "warning", "-c"])
            .arg(&config);
        process::run_ok(validate, None, Duration::from_secs(120))
            .context("the plain Envoy configuration does not validate")?;

        let log = dir.path().join("plain-envoy.log");
        let mut command = Command::new(envoy_bin);
        command
            .arg("-c")
            .arg(&config)
            .args(["--concurrency", "1", "-l", "warning"])
            .arg("--disable-hot-restart");
        let mut process = ManagedProcess::spawn("plain envoy", command, &log)?;
        let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], ports.gateway));
        process::wait_ready(
            "plain envoy",
            &log,
            Duration::from_secs(60),
            || process.check_running(),
            || TcpStream::connect_timeout(&gateway, Duration::from_millis(200)).is_ok(),
        )?;
        Ok(PlainEnvoy {
            port: ports.gateway,
            process,
            _dir: dir,
        })
    }

    fn pid(&self) -> Result<u32> {
        self.process.pid().context("the plain Envoy is not running")
    }

    fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}

/// The configuration with every HTTP filter of every listener taken out but the Git server's
/// credential injector and the router.
fn router_only(config: &str) -> Result<String> {
    let mut doc: Value = serde_norway::from_str(config).context("parsing the Envoy config")?;
    let listeners = doc
        .get_mut("static_resources")
        .and_then(|r| r.get_mut("listeners"))
        .and_then(Value::as_sequence_mut)
        .context("the config has no static_resources.listeners")?;
    let mut kept = 0;
    for listener in listeners {
        let chains = listener
            .get_mut("filter_chains")
            .and_then(Value::as_sequence_mut)
            .context("a listener without filter_chains")?;
        for chain in chains {
            let filters = chain
                .get_mut("filters")
                .and_then(Value::as_sequence_mut)
                .context("a filter chain without filters")?;
            for filter in filters {
                let Some(http_filters) = filter
                    .get_mut("typed_config")
                    .and_then(|c| c.get_mut("http_filters"))
                    .and_then(Value::as_sequence_mut)
                else {
                    continue;
                };
                http_filters.retain(|f| {
                    let name = f.get("name").and_then(Value::as_str);
                    name == Some(ROUTER_FILTER) || name == Some(CREDENTIAL_FILTER)
                });
                kept += http_filters.len();
            }
        }
    }
    if kept == 0 {
        bail!("no {ROUTER_FILTER} found in the Envoy config");
    }
    Ok(serde_norway::to_string(&doc)?)
}

// ---- the git client ----------------------------------------------------------------------

/// The real git client, isolated like the harness's, pointed at both Envoys.
struct Client<'a> {
    /// HOME of the client.
    home: PathBuf,
    /// Clones and generated data.
    work: PathBuf,
    stack: &'a Stack,
    plain: &'a PlainEnvoy,
    /// The agent's token. The plain Envoy gets it too (its route drops it), so both requests
    /// are the same size.
    token: String,
}

/// One operation's figures through both Envoys.
struct Timing {
    operation: String,
    gate: Vec<Duration>,
    plain: Vec<Duration>,
}

/// Envoy's memory around one large push.
struct Memory {
    via: Via,
    /// Resident memory before the push, KiB.
    before_kib: u64,
    /// Peak resident memory during the push, KiB.
    peak_kib: u64,
    /// The largest resident memory seen by sampling every [`RSS_SAMPLE`], KiB.
    sampled_kib: u64,
    /// Whether the peak was reset just before the push; if not, it covers Envoy's whole life.
    reset: bool,
    wall: Duration,
}

impl<'a> Client<'a> {
    fn new(
        scratch: &Path,
        stack: &'a Stack,
        plain: &'a PlainEnvoy,
        token: &str,
    ) -> Result<Client<'a>> {
        let home = scratch.join("home");
        git::prepare_home(&home)?;
        let work = scratch.join("work");
        std::fs::create_dir_all(&work)?;
        Ok(Client {
            home,
            work,
            stack,
            plain,
            token: token.to_owned(),
        })
    }

    fn url(&self, via: Via, repo: &str) -> String {
        match via {
            Via::Gate => self.stack.gateway_url(repo),
            Via::Plain => self.plain.url(repo),
        }
    }

    /// A git command with the token as a Bearer header (in the environment, not the command
    /// line).
    fn git(&self, dir: Option<&Path>) -> Command {
        let mut command = git::isolated_command(Some(&self.home));
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Bearer {}", self.token),
            );
        command
    }

    /// Runs `command` untimed and fails unless it succeeds.
    fn setup(&self, command: Command) -> Result<()> {
        process::run_ok(command, None, BIG_LIMIT)?;
        Ok(())
    }

    fn ls_remote(&self, reps: usize) -> Result<Timing> {
        let mut timing = Timing::new("`git ls-remote` (demo)");
        for run in 0..=reps {
            for via in Via::order(run) {
                let mut command = self.git(None);
                command.arg("ls-remote").arg(self.url(via, "demo.git"));
                let took = timed(command, SMALL_LIMIT)?;
                // Run 0 warms both Envoys and is not counted.
                if run > 0 {
                    timing.add(via, took);
                }
            }
        }
        Ok(timing)
    }

    fn clone_demo(&self, reps: usize) -> Result<Timing> {
        let mut timing = Timing::new("`git clone` (demo)");
        for run in 0..=reps {
            for via in Via::order(run) {
                let target = self.work.join(format!("clone-{}-{run}", via.name()));
                let mut command = self.git(None);
                command
                    .args(["clone", "--quiet"])
                    .arg(self.url(via, "demo.git"))
                    .arg(&target);
                let took = timed(command, SMALL_LIMIT)?;
                std::fs::remove_dir_all(&target)?;
                if run > 0 {
                    timing.add(via, took);
                }
            }
        }
        Ok(timing)
    }

    /// One small commit, pushed to a new branch each time, through both Envoys into one
    /// repository: each push sends one commit, one tree and one blob.
    fn small_push(&self, stack: &Stack, reps: usize) -> Result<Timing> {
        let repo = "bench-small.git";
        stack.create_repo(repo, RepoOptions::default())?;
        let local = self.work.join("small");
        let mut clone = self.git(None);
        clone
            .args(["clone", "--quiet"])
            .arg(stack.upstream_repo(repo))
            .arg(&local);
        self.setup(clone)?;

        let mut timing = Timing::new("small push (1 commit, new branch)");
        for run in 0..=reps {
            for via in Via::order(run) {
                let name = format!("{}-{run}", via.name());
                std::fs::write(local.join("small.txt"), format!("{name}\n"))?;
                self.commit(&local, &name)?;
                let mut push = self.git(Some(&local));
                push.args(["push", "--quiet"])
                    .arg(self.url(via, repo))
                    .arg(format!("HEAD:{BENCH_BRANCH}/small-{name}"));
                let took = timed(push, SMALL_LIMIT)?;
                if run > 0 {
                    timing.add(via, took);
                }
            }
        }
        Ok(timing)
    }

    /// A commit with `mb` MB of incompressible data, pushed into a fresh repository through
    /// each Envoy; the repositories are removed after each run.
    fn big_push(&self, stack: &Stack, reps: usize, mb: u64) -> Result<Timing> {
        let mut timing = Timing::new(&format!("{mb} MB push ({FILE_MB} MB files, new branch)"));
        for run in 0..reps {
            let local = self.big_commit(stack, mb, run as u64)?;
            for via in Via::order(run) {
                let took = self.push_into_fresh_repo(stack, &local, via, run)?;
                timing.add(via, took);
            }
            std::fs::remove_dir_all(&local)?;
        }
        Ok(timing)
    }

    /// Envoy's resident memory before, and its peak during, one push of `mb` MB through `via`.
    fn push_memory(&self, stack: &Stack, via: Via, pid: u32, mb: u64) -> Result<Memory> {
        let local = self.big_commit(stack, mb, 1000 + via as u64)?;
        let before_kib = proc_status_kib(pid, "VmRSS")?;
        // Writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)); it needs the
        // rights to the process, which the user who started it has.
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        // A sampler beside the kernel's own peak, as a cross-check of the reset.
        let pushing = AtomicBool::new(true);
        let (wall, sampled_kib) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut max = 0;
                while pushing.load(Ordering::Relaxed) {
                    max = max.max(proc_status_kib(pid, "VmRSS").unwrap_or(0));
                    std::thread::sleep(RSS_SAMPLE);
                }
                max
            });
            let wall = self.push_into_fresh_repo(stack, &local, via, 1000);
            pushing.store(false, Ordering::Relaxed);
            (wall, sampler.join().unwrap_or(0))
        });
        let wall = wall?;
        let peak_kib = proc_status_kib(pid, "VmHWM")?;
        std::fs::remove_dir_all(&local)?;
        Ok(Memory {
            via,
            before_kib,
            peak_kib,
            sampled_kib,
            reset,
            wall,
        })
    }

    /// A clone of the demo repository (from disk) with one more commit holding `mb` MB of
    /// pseudo-random bytes from `seed`, in files of [`FILE_MB`] MB.
    fn big_commit(&self, stack: &Stack, mb: u64, seed: u64) -> Result<PathBuf> {
        let local = self.work.join(format!("big-{seed}"));
        let mut clone = self.git(None);
        clone
            .args(["clone", "--quiet"])
            .arg(stack.upstream_repo("demo.git"))
            .arg(&local);
        self.setup(clone)?;
        // Files over this size are stored packed and never searched for deltas, so the client
        // neither compares random files with each other nor deflates them a second time: the
        // push's time is the transfer through Envoy and the server's own work.
        let mut threshold = self.git(Some(&local));
        threshold.args(["config", "core.bigFileThreshold", "1m"]);
        self.setup(threshold)?;
        let mut left = mb;
        for file in 0.. {
            if left == 0 {
                break;
            }
            let size = left.min(FILE_MB);
            let name = local.join(format!("data-{file:03}.bin"));
            write_noise(&name, size * 1_000_000, seed * 10_000 + file)?;
            left -= size;
        }
        self.commit(&local, &format!("{mb} MB of data"))?;
        Ok(local)
    }

    /// Pushes the clone's HEAD into a new upstream repository through `via`, then removes
    /// that repository.
    fn push_into_fresh_repo(
        &self,
        stack: &Stack,
        local: &Path,
        via: Via,
        run: usize,
    ) -> Result<Duration> {
        let repo = stack.unique_repo_name(&format!("bench-big-{}-{run}", via.name()));
        stack.create_repo(&repo, RepoOptions::default())?;
        let mut push = self.git(Some(local));
        push.args(["push", "--quiet"])
            .arg(self.url(via, &repo))
            .arg(format!("HEAD:{BENCH_BRANCH}/big"));
        let took = timed(push, BIG_LIMIT)?;
        std::fs::remove_dir_all(stack.upstream_repo(&repo))?;
        Ok(took)
    }

    fn commit(&self, dir: &Path, message: &str) -> Result<()> {
        let mut add = self.git(Some(dir));
        add.args(["add", "--all"]);
        self.setup(add)?;
        let mut commit = self.git(Some(dir));
        commit.args(["commit", "--quiet", "-m", message]);
        self.setup(commit)
    }
}

/// Runs `command` to its end and returns how long it took; fails if it fails or runs past
/// `limit` (then its process group is killed). Output is kept only to explain a failure.
fn timed(mut command: Command, limit: Duration) -> Result<Duration> {
    let shown = process::describe(&command);
    let errors = tempfile::tempfile()?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(errors.try_clone()?)
        .process_group(0);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting `{shown}`"))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: kill(2) with a negative pid signals only the child's own group.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
            let _ = child.wait();
            bail!("`{shown}` ran past {limit:?}");
        }
        std::thread::sleep(POLL);
    };
    let took = started.elapsed();
    if !status.success() {
        let mut stderr = String::new();
        let mut errors = errors;
        errors.rewind()?;
        errors.read_to_string(&mut stderr)?;
        bail!("`{shown}` failed ({status}):\n{stderr}");
    }
    Ok(took)
}

/// Writes `len` bytes of xorshift64* output: incompressible, so zlib cannot shrink the push.
fn write_noise(path: &Path, len: u64, seed: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut written = 0u64;
    while written < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        let take = usize::try_from((len - written).min(8)).unwrap_or(8);
        out.write_all(&word[..take])?;
        written += take as u64;
    }
    out.flush()?;
    Ok(())
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmHWM`.
fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

// ---- the report --------------------------------------------------------------------------

impl Timing {
    fn new(operation: &str) -> Timing {
        Timing {
            operation: operation.to_owned(),
            gate: Vec::new(),
            plain: Vec::new(),
        }
    }

    fn add(&mut self, via: Via, took: Duration) {
        match via {
            Via::Gate => self.gate.push(took),
            Via::Plain => self.plain.push(took),
        }
    }
}

/// The `q`-quantile of `samples` by the nearest-rank method (`q` = 0.5 is the median).
fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[derive(Default)]
struct Report {
    timings: Vec<Timing>,
    memory: Vec<Memory>,
}

impl Report {
    fn markdown(&self, args: &Args, binaries: &Binaries) -> Result<String> {
        let mut out = String::new();
        writeln!(out, "## gitgate: git through the gate vs. a plain Envoy\n")?;
        writeln!(
            out,
            "{}; Envoy {}; {} CPU cores; both Envoys with `--concurrency 1`, one upstream \
             (`gitgate-upstream`, git http-backend). Wall time of the git command, {} runs \
             each (large push: {}), gate and plain interleaved. Service: `{}`. Secret push \
             protection in the gate: {}.\n",
            command_line("git", &["--version"]),
            envoy_version(&binaries.envoy),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            args.reps,
            args.big_reps,
            shown(&binaries.gitgate),
            args.secrets,
        )?;
        writeln!(
            out,
            "| operation | gate median | gate p90 | plain median | plain p90 | gate - plain \
             (median) |"
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
        for t in &self.timings {
            let (gm, gp) = (quantile(&t.gate, 0.5), quantile(&t.gate, 0.9));
            let (pm, pp) = (quantile(&t.plain, 0.5), quantile(&t.plain, 0.9));
            let diff = if gm >= pm {
                format!("+{}", ms(gm - pm))
            } else {
                format!("-{}", ms(pm - gm))
            };
            let ratio = gm.as_secs_f64() / pm.as_secs_f64().max(f64::EPSILON);
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {diff} ({ratio:.2}x) |",
                t.operation,
                ms(gm),
                ms(gp),
                ms(pm),
                ms(pp),
            )?;
        }
        writeln!(out)?;
        if self.memory.is_empty() {
            // The `mask` mode reads no memory.
            return Ok(out);
        }
        writeln!(
            out,
            "| Envoy during one {} MB push | RSS before | peak RSS (VmHWM) | peak - before | \
             largest RSS sampled | push wall time |",
            args.rss_mb
        )?;
        writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
        for m in &self.memory {
            let note = if m.reset { "" } else { " (peak since start)" };
            writeln!(
                out,
                "| {} | {} | {}{note} | {} | {} | {} |",
                m.via.name(),
                mib(m.before_kib),
                mib(m.peak_kib),
                mib(m.peak_kib.saturating_sub(m.before_kib)),
                mib(m.sampled_kib),
                ms(m.wall)
            )?;
        }
        Ok(out)
    }
}

/// A path relative to the workspace root when it is inside it.
fn shown(path: &Path) -> String {
    let root = gitgate_integration::workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| format!("{program} (version unknown)"))
}

/// `1.40.0` from `envoy --version`, which prints `<path>  version: <sha>/1.40.0/Clean/...`.
fn envoy_version(envoy: &Path) -> String {
    let text = command_line(&envoy.display().to_string(), &["--version"]);
    text.split_once("version: ")
        .and_then(|(_, rest)| rest.split('/').nth(1))
        .map(str::to_owned)
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_config_keeps_the_router_alone() {
        let root = gitgate_integration::workspace_root();
        let shipped = std::fs::read_to_string(root.join(envoy::LOCAL_CONFIG)).unwrap();
        let plain = router_only(&shipped).unwrap();
        assert!(plain.contains(ROUTER_FILTER));
        for gone in ["jwt_authn", "gitgate_basic_auth", "envoy.filters.http.wasm"] {
            assert!(!plain.contains(gone), "{gone} is still in:\n{plain}");
        }
        // Everything around the filters stays: the route, the upstream cluster, the timeouts,
        // and the Git server's credential.
        for kept in ["gitgate_upstream", "stream_idle_timeout", CREDENTIAL_FILTER] {
            assert!(plain.contains(kept), "{kept} is missing from:\n{plain}");
        }
    }

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(5));
        assert_eq!(quantile(&samples, 0.9), Duration::from_millis(9));
        assert_eq!(quantile(&samples[..1], 0.9), Duration::from_millis(1));
    }

    #[test]
    fn noise_does_not_compress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise");
        write_noise(&path, 100_003, 7).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 100_003);
        let mut counts = [0u32; 256];
        for b in &bytes {
            counts[usize::from(*b)] += 1;
        }
        // Every byte value shows up near 100_003 / 256 = 390 times.
        assert!(
            counts.iter().all(|&c| (250..550).contains(&c)),
            "{counts:?}"
        );
    }
}

// ---- masking figures (`--mode mask`) --------------------------------------------------------

/// Response masking through the gate against the plain Envoy: large text and JSON bodies
/// served by the upstream's recorded-response route, and a clone whose pack carries no
/// maskable text (so the gate's cost there is reading and scanning the pack).
mod mask {
    use super::*;

    /// One fake credential per this many bytes of body, so the masks are exercised.
    const SECRET_EVERY: usize = 256 << 10;

    /// A credential in a real format (a Slack bot token), made up here and never issued.
    const FAKE_SLACK: &str = "xoxb-1234567890-123456789012-a1B2c3D4e5F6g7H8i9J0k1L2";

    pub(super) fn run(
        args: &Args,
        stack: &Stack,
        client: &Client<'_>,
        mut report: Report,
        binaries: &Binaries,
    ) -> Result<()> {
        let bytes = usize::try_from(args.body_mb * 1_000_000).context("body size")?;
        record(
            stack,
            "bench-text",
            "text/plain; charset=utf-8",
            &text_body(bytes),
        )?;
        record(
            stack,
            "bench-json",
            "application/json; charset=utf-8",
            &json_body(bytes),
        )?;
        let mut rates = Vec::new();
        for (name, what) in [("bench-text", "text"), ("bench-json", "JSON")] {
            progress(&format!("GET of a {} MB {what} body", args.body_mb));
            let timing = client.get_body(
                &format!("_recorded/{name}"),
                &format!("GET {} MB {what} body", args.body_mb),
                args.reps,
            )?;
            rates.push((
                what,
                bytes,
                quantile(&timing.gate, 0.5),
                quantile(&timing.plain, 0.5),
            ));
            report.timings.push(timing);
        }
        progress(&format!(
            "git clone of {} MB without maskable text",
            args.clone_mb
        ));
        report
            .timings
            .push(client.clone_big(stack, args.clone_mb, args.reps)?);

        print!("{}", report.markdown(args, binaries)?);
        println!();
        println!("| body | gate MB/s | plain MB/s | masking alone MB/s (from the difference) |");
        println!("|---|---:|---:|---:|");
        for (what, bytes, gate, plain) in rates {
            let mb = bytes as f64 / 1e6;
            let extra = gate.saturating_sub(plain).as_secs_f64();
            let alone = if extra > 0.0 {
                format!("{:.0}", mb / extra)
            } else {
                "n/a".to_owned()
            };
            println!(
                "| {what} | {:.0} | {:.0} | {alone} |",
                mb / gate.as_secs_f64(),
                mb / plain.as_secs_f64()
            );
        }
        println!(
            "\nScanning of fetched packs in the gate: {}; audit record: {}.",
            args.fetch, args.audit
        );
        Ok(())
    }

    /// Source-like text with a fake credential every [`SECRET_EVERY`] bytes.
    fn text_body(len: usize) -> String {
        let mut out = String::with_capacity(len + 256);
        let mut line = 0usize;
        while out.len() < len {
            if out.len() / SECRET_EVERY > (out.len().saturating_sub(80)) / SECRET_EVERY {
                out.push_str(&format!("SLACK_TOKEN = \"{FAKE_SLACK}\"\n"));
            }
            out.push_str(&format!(
                "    let value_{line} = compute(&input[{line}..], Options::default())?;\n"
            ));
            line += 1;
        }
        out
    }

    /// A JSON list of issue-like objects whose bodies carry the same text.
    fn json_body(len: usize) -> serde_json::Value {
        let mut issues = Vec::new();
        let mut size = 0usize;
        let mut n = 0u64;
        while size < len {
            let body = text_body(4096);
            size += body.len() + 200;
            issues.push(serde_json::json!({
                "number": n, "title": format!("Issue {n}"), "state": "open",
                "labels": [{"name": "bug"}], "body": body,
            }));
            n += 1;
        }
        serde_json::Value::Array(issues)
    }

    fn record(
        stack: &Stack,
        name: &str,
        content_type: &str,
        response: &impl serde::Serialize,
    ) -> Result<()> {
        let dir = stack.repos_dir().join("_recorded");
        std::fs::create_dir_all(&dir)?;
        let recording = serde_json::json!({
            "status": 200,
            "headers": { "content-type": content_type },
            "response": response,
        });
        std::fs::write(
            dir.join(format!("{name}.json")),
            serde_json::to_vec(&recording)?,
        )?;
        Ok(())
    }

    impl Client<'_> {
        /// GETs `path` through both Envoys, `reps` times each after a warm-up.
        pub(super) fn get_body(&self, path: &str, operation: &str, reps: usize) -> Result<Timing> {
            let mut timing = Timing::new(operation);
            let bearer = format!("Bearer {}", self.token);
            for run in 0..=reps {
                for via in Via::order(run) {
                    let url = self.url(via, path);
                    let started = Instant::now();
                    let response = gitgate_integration::http::request_with_timeout(
                        "GET",
                        &url,
                        &[("authorization", bearer.as_str())],
                        Vec::new(),
                        BIG_LIMIT,
                    )?;
                    let took = started.elapsed();
                    if response.status != 200 || response.body.is_empty() {
                        bail!("GET {url}: status {}", response.status);
                    }
                    if run > 0 {
                        timing.add(via, took);
                    }
                }
            }
            Ok(timing)
        }

        /// Clones a repository holding `mb` MB of incompressible data through both Envoys.
        pub(super) fn clone_big(&self, stack: &Stack, mb: u64, reps: usize) -> Result<Timing> {
            let local = self.big_commit(stack, mb, 77)?;
            let repo = "bench-clone.git";
            stack.create_repo(repo, RepoOptions::default())?;
            let mut push = self.git(Some(&local));
            push.args(["push", "--quiet", "--force"])
                .arg(stack.upstream_repo(repo))
                .arg("HEAD:main");
            self.setup(push)?;
            std::fs::remove_dir_all(&local)?;
            // One pack, so that every clone reuses its compressed objects: the clone's time is
            // then the transfer and the gate's reading of the pack, not the server deflating.
            let mut repack = self.git(None);
            repack
                .arg("--git-dir")
                .arg(stack.upstream_repo(repo))
                .args(["repack", "-adq"]);
            self.setup(repack)?;
            let mut timing = Timing::new(&format!("`git clone` ({mb} MB, no maskable text)"));
            for run in 0..=reps {
                for via in Via::order(run) {
                    let target = self.work.join(format!("clone-big-{}-{run}", via.name()));
                    let mut command = self.git(None);
                    command
                        .args(["clone", "--quiet"])
                        .arg(self.url(via, repo))
                        .arg(&target);
                    let took = timed(command, BIG_LIMIT)?;
                    std::fs::remove_dir_all(&target)?;
                    if run > 0 {
                        timing.add(via, took);
                    }
                }
            }
            Ok(timing)
        }
    }
}
