//! The `gitgate` command line: `serve`, `dev init`, `dev token`, `mask` and `scan`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, ConfigFile, Overrides, ServeConfig};
use crate::issuer::{DevIssuer, TokenSpec};

/// gitgate: approvals for the pushes AI coding agents make.
#[derive(Debug, Parser)]
#[command(name = "gitgate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the approval service (verdict API, reviewer pages, /healthz).
    Serve(ServeArgs),
    /// Development helpers: a local token issuer.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Mask standard input to standard output as the filter masks a response body.
    Mask(crate::mask_cmd::MaskArgs),
    /// Scan files, standard input or a revision range for secrets, as the filter scans pushes;
    /// exits 1 when it finds any, 2 on errors.
    Scan(crate::scan_cmd::ScanArgs),
    /// Query and verify the audit record: commit, sessions, events, session, export, verify,
    /// drops; exits 1 when verify finds a problem or nothing was found, 2 on errors.
    Audit(crate::audit_cmd::AuditArgs),
    /// Fetch the commits a session pushed, by id, into a scratch repository and show each push
    /// as a diff, with its verdicts.
    Replay(crate::replay_cmd::ReplayArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// A YAML config file; flags and environment variables win over it.
    #[arg(long, env = "GITGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8090].
    #[arg(long, env = "GITGATE_LISTEN")]
    listen: Option<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://.gitgate/gitgate.db].
    #[arg(long, env = "GITGATE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// A policy file [default: the embedded policy protecting refs/heads/main].
    #[arg(long, env = "GITGATE_POLICY")]
    policy: Option<PathBuf>,
    /// The URL reviewers reach the pages at [default: http:// and the bound address].
    #[arg(long, env = "GITGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// The dev issuer directory, created when missing [default: .gitgate/dev].
    #[arg(long, env = "GITGATE_DEV_ISSUER_DIR")]
    dev_issuer_dir: Option<PathBuf>,
    /// How long an approval lets a re-push through [default: 24h].
    #[arg(long, env = "GITGATE_APPROVAL_TTL", value_parser = parse_ttl)]
    approval_ttl: Option<Duration>,
    /// A file holding the token the filter must send to /v1/verdicts, /v1/holds/wait and
    /// /v1/events (or give the token itself in GITGATE_FILTER_TOKEN) [default: none, and
    /// those endpoints are open].
    #[arg(long, env = "GITGATE_FILTER_TOKEN_FILE")]
    filter_token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Create an Ed25519 signing key and jwks.json in the directory, if absent.
    Init {
        /// The issuer directory.
        #[arg(long, env = "GITGATE_DEV_ISSUER_DIR", default_value = config::DEFAULT_DEV_ISSUER_DIR)]
        dir: PathBuf,
    },
    /// Print a signed EdDSA token (JWT) for a subject.
    Token(TokenArgs),
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The token's subject (`sub`).
    subject: String,
    /// Mark the holder as an autonomous agent (`agent: true`).
    #[arg(long)]
    agent: bool,
    /// The person the agent acts for (`act_for`).
    #[arg(long = "for", value_name = "PERSON")]
    acting_for: Option<String>,
    /// A group to add to `groups`; repeat for more.
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// A reviewer token: role `reviewer` and group `reviewers`.
    #[arg(long)]
    reviewer: bool,
    /// Lifetime.
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    ttl: Duration,
    /// The issuer directory; created when missing.
    #[arg(long, env = "GITGATE_DEV_ISSUER_DIR", default_value = config::DEFAULT_DEV_ISSUER_DIR)]
    dir: PathBuf,
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    config::parse_duration("duration", text).map_err(|e| e.to_string())
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `scan` has exit statuses of its own (1: secrets found, 2: errors).
    if let Command::Scan(args) = &cli.command {
        return crate::scan_cmd::run(args);
    }
    // So do `audit` and `replay` (1: a problem or nothing found, 2: errors).
    match &cli.command {
        Command::Audit(args) => return crate::audit_cmd::run(args),
        Command::Replay(args) => return crate::replay_cmd::run(args),
        _ => {}
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("gitgate: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let file = match &args.config {
                Some(path) => ConfigFile::read(path)?,
                None => ConfigFile::default(),
            };
            let overrides = Overrides {
                listen: args.listen,
                public_url: args.public_url,
                database: args.database,
                policy: args.policy,
                dev_issuer_dir: args.dev_issuer_dir,
                approval_ttl: args.approval_ttl,
                filter_token_file: args.filter_token_file,
            };
            let config = ServeConfig::resolve(file, overrides)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(crate::serve::serve(config))
        }
        Command::Dev {
            command: DevCommand::Init { dir },
        } => {
            let issuer = DevIssuer::ensure(&dir)?;
            println!(
                "gitgate: dev issuer ready in {} (kid {})",
                dir.display(),
                issuer.kid()
            );
            Ok(())
        }
        Command::Mask(args) => crate::mask_cmd::run(&args),
        // Handled in `main`, which gives it its own exit statuses.
        Command::Scan(_) | Command::Audit(_) | Command::Replay(_) => Ok(()),
        Command::Dev {
            command: DevCommand::Token(args),
        } => {
            if args.subject.trim().is_empty() {
                anyhow::bail!("the subject must not be empty");
            }
            let issuer = DevIssuer::ensure(&args.dir)?;
            let spec = TokenSpec {
                subject: args.subject,
                agent: args.agent,
                acting_for: args.acting_for,
                groups: args.groups,
                reviewer: args.reviewer,
                ttl: args.ttl,
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            println!("{}", issuer.mint(&spec, now)?);
            Ok(())
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
