//! `gitgate audit`: the audit record from the command line, read from the store directly.
//!
//! Every subcommand prints text, or with `--json` one JSON document (`export` prints JSON
//! Lines either way). Exit status: 0 when the answer is there, 1 when `verify` found a problem
//! or `commit`/`session` found nothing, 2 when the store cannot be read or an argument is wrong.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::audit::api::{is_commit_prefix, parse_time};
use crate::audit::store::{self, RecordQuery};
use crate::audit::view::{self, ExportLine, RecordView, SessionView, Step};
use crate::audit::{RecordKind, verify};
use crate::config;
use crate::store::Store;

/// `gitgate audit ...`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// sqlite://PATH or postgres://... [default: sqlite://.gitgate/gitgate.db].
    #[arg(long, env = "GITGATE_DATABASE", hide_env_values = true, global = true)]
    database: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Which sessions brought a commit, the pushes, their verdicts, who approved and when.
    Commit {
        /// A commit id, or a prefix of at least 4 hex digits.
        id: String,
    },
    /// Sessions with a record matching the filters, most recently active first.
    Sessions(FilterArgs),
    /// Records matching the filters, newest first.
    Events {
        #[command(flatten)]
        filters: FilterArgs,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
        /// Only records of this kind: event, verdict or decision.
        #[arg(long)]
        kind: Option<String>,
    },
    /// A session's timeline, step by step as the client saw it.
    Session {
        /// The session.
        session: String,
    },
    /// A session's records as JSON Lines, in chain order (re-verifiable from the file alone).
    Export {
        /// The session.
        session: String,
    },
    /// Check every chain (or one session's); exit 1 if a record was changed, removed or
    /// reordered.
    Verify {
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
    },
    /// How many read events were dropped, by the filter and by the service.
    Drops,
}

#[derive(Debug, Args)]
struct FilterArgs {
    /// The token subject (or the reviewer of a decision).
    #[arg(long)]
    subject: Option<String>,
    /// The person an agent acted for.
    #[arg(long)]
    acting_for: Option<String>,
    /// An agent's subject.
    #[arg(long)]
    agent: Option<String>,
    /// A person: acted for, or acting themselves.
    #[arg(long)]
    person: Option<String>,
    /// The repository.
    #[arg(long)]
    repository: Option<String>,
    /// A ref named by the record.
    #[arg(long = "ref")]
    refname: Option<String>,
    /// A commit named by the record (id or prefix).
    #[arg(long)]
    commit: Option<String>,
    /// From (RFC 3339 or unix milliseconds).
    #[arg(long)]
    since: Option<String>,
    /// Until (RFC 3339 or unix milliseconds).
    #[arg(long)]
    until: Option<String>,
    /// At most this many.
    #[arg(long)]
    limit: Option<i64>,
}

impl FilterArgs {
    fn query(&self) -> anyhow::Result<RecordQuery> {
        let time = |name: &str, value: &Option<String>| -> anyhow::Result<Option<i64>> {
            match value {
                Some(text) => parse_time(text).map(Some).ok_or_else(|| {
                    anyhow::anyhow!("--{name} is neither RFC 3339 nor unix milliseconds")
                }),
                None => Ok(None),
            }
        };
        if let Some(commit) = &self.commit
            && !is_commit_prefix(commit)
        {
            anyhow::bail!("--commit is not 4 to 64 lower-case hex digits");
        }
        Ok(RecordQuery {
            subject: self.subject.clone(),
            acting_for: self.acting_for.clone(),
            agent: self.agent.clone(),
            person: self.person.clone(),
            repository: self.repository.clone(),
            refname: self.refname.clone(),
            commit: self.commit.clone(),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit,
            ..RecordQuery::default()
        })
    }
}

/// What a subcommand found.
enum Found {
    Yes,
    /// Nothing, or problems: exit 1.
    No,
}

/// Runs `gitgate audit`; the process's exit code.
pub fn run(args: &AuditArgs) -> ExitCode {
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(execute(args)));
    match result {
        Ok(Found::Yes) => ExitCode::SUCCESS,
        Ok(Found::No) => ExitCode::from(1),
        Err(error) => {
            eprintln!("gitgate: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Connects to an existing store: a SQLite file that is not there is an error here, not a new
/// empty database that would verify as clean.
pub async fn open_store(database: Option<&str>) -> anyhow::Result<Store> {
    let url = database.unwrap_or(config::DEFAULT_DATABASE);
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if !path.is_empty() && path != ":memory:" && !std::path::Path::new(path).exists() {
            anyhow::bail!("no database at {path}: pass --database or set GITGATE_DATABASE");
        }
    }
    Ok(Store::connect(url).await?)
}

async fn execute(args: &AuditArgs) -> anyhow::Result<Found> {
    let store = open_store(args.database.as_deref()).await?;
    let found = match &args.command {
        AuditCommand::Commit { id } => {
            if !is_commit_prefix(id) {
                anyhow::bail!("a commit is 4 to 64 lower-case hex digits");
            }
            let report = view::commit_report(&store, id).await?;
            let found = !report.ids.is_empty();
            output(args.json, &report, || commit_text(&report));
            found
        }
        AuditCommand::Sessions(filters) => {
            let heads = store::sessions(store.pool(), &filters.query()?).await?;
            let sessions: Vec<SessionView> = heads.iter().map(SessionView::new).collect();
            output(args.json, &sessions, || {
                sessions.iter().map(session_line).collect::<String>()
            });
            true
        }
        AuditCommand::Events {
            filters,
            session,
            kind,
        } => {
            let mut query = filters.query()?;
            query.session = session.clone();
            query.kind = match kind {
                Some(kind) => Some(RecordKind::parse(kind).ok_or_else(|| {
                    anyhow::anyhow!("--kind {kind:?} is not event, verdict or decision")
                })?),
                None => None,
            };
            let records = store::records(store.pool(), &query).await?;
            let views: Vec<RecordView> = records.iter().map(RecordView::new).collect();
            output(args.json, &views, || {
                views
                    .iter()
                    .map(|v| {
                        let step = view::step(v);
                        format!("{}  {}#{}  {}\n", v.time, v.session, v.seq, step.title)
                    })
                    .collect::<String>()
            });
            true
        }
        AuditCommand::Session { session } => {
            match view::session_timeline(store.pool(), session).await? {
                Some(timeline) => {
                    output(args.json, &timeline, || {
                        let mut text = session_line(&timeline.session);
                        for step in &timeline.timeline {
                            text.push_str(&step_text(step));
                        }
                        text
                    });
                    true
                }
                None => {
                    eprintln!("gitgate: no audit session {session:?}");
                    false
                }
            }
        }
        AuditCommand::Export { session } => {
            let records = store::session_records(store.pool(), session).await?;
            for record in &records {
                println!("{}", serde_json::to_string(&ExportLine::new(record))?);
            }
            !records.is_empty()
        }
        AuditCommand::Verify { session } => {
            let report = verify::verify(store.pool(), session.as_deref()).await?;
            let clean = report.is_clean();
            output(args.json, &report, || {
                let mut text = String::new();
                for problem in &report.problems {
                    text.push_str(&format!(
                        "{} {}#{}: {}\n",
                        serde_json::to_value(problem.kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        problem.session,
                        problem.seq,
                        problem.detail
                    ));
                }
                text.push_str(&format!(
                    "{}: {} session(s), {} record(s), {} problem(s)\n",
                    if clean { "ok" } else { "FAILED" },
                    report.sessions,
                    report.records,
                    report.problems.len()
                ));
                text
            });
            clean
        }
        AuditCommand::Drops => {
            let drops = store::drops(store.pool()).await?;
            output(args.json, &drops, || {
                format!(
                    "read events dropped: {} by the filter, {} by the service\n",
                    drops.filter, drops.service
                )
            });
            true
        }
    };
    store.close().await;
    Ok(if found { Found::Yes } else { Found::No })
}

fn output<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(error) => eprintln!("gitgate: error: {error}"),
        }
    } else {
        print!("{}", text());
    }
}

fn who(subject: Option<&str>, acting_for: Option<&str>, agent: bool) -> String {
    let mut text = subject.unwrap_or("-").to_owned();
    if agent {
        text.push_str(" (agent)");
    }
    if let Some(person) = acting_for {
        text.push_str(&format!(" for {person}"));
    }
    text
}

fn session_line(session: &SessionView) -> String {
    format!(
        "session {}  {}  {} record(s)  {} .. {}\n",
        session.session,
        who(
            session.subject.as_deref(),
            session.acting_for.as_deref(),
            session.agent
        ),
        session.records,
        session.first,
        session.last
    )
}

fn step_text(step: &Step) -> String {
    let mut text = format!("{}  #{}  {}\n", step.time, step.seq, step.title);
    if let Some(request) = &step.request {
        let status = step.status.map(|s| format!(" -> {s}")).unwrap_or_default();
        text.push_str(&format!("    {request}{status}\n"));
    }
    for update in &step.updates {
        text.push_str(&format!(
            "    {} {}..{} {}: {}{}{}{}\n",
            update.refname,
            short(&update.old),
            short(&update.new),
            update.operation,
            update.verdict.as_deref().unwrap_or("-"),
            update
                .code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            update
                .ticket
                .as_deref()
                .map(|t| format!(" {t}"))
                .unwrap_or_default(),
            update
                .upstream
                .as_deref()
                .map(|u| format!(" (upstream {u})"))
                .unwrap_or_default(),
        ));
    }
    if !step.refs.is_empty() {
        text.push_str(&format!("    refs: {}\n", step.refs.join(" ")));
    }
    for line in &step.shown {
        text.push_str(&format!("    shown: {line}\n"));
    }
    for note in &step.notes {
        text.push_str(&format!("    note: {note}\n"));
    }
    text
}

fn short(id: &str) -> String {
    id.chars().take(7).collect()
}

fn commit_text(report: &view::CommitReport) -> String {
    if report.ids.is_empty() {
        return format!("no record names commit {}\n", report.commit);
    }
    let mut text = format!("commit {}\n", report.ids.join(", "));
    for session in &report.sessions {
        text.push_str(&format!("  {}", session_line(session)));
    }
    for push in &report.pushes {
        text.push_str(&format!(
            "  push {} in {}#{} by {} to {} ({}): {}\n",
            push.request_id.as_deref().unwrap_or("-"),
            push.session,
            push.seq,
            who(
                push.subject.as_deref(),
                push.acting_for.as_deref(),
                push.agent
            ),
            push.repository.as_deref().unwrap_or("-"),
            push.via.join("+"),
            push.decision.as_deref().unwrap_or("-"),
        ));
        for update in &push.updates {
            text.push_str(&format!(
                "    {} {}..{}: {}{}\n",
                update.refname,
                short(&update.old),
                short(&update.new),
                update.verdict.as_deref().unwrap_or("-"),
                update
                    .upstream
                    .as_deref()
                    .map(|u| format!(" (upstream {u})"))
                    .unwrap_or_default()
            ));
        }
    }
    for verdict in &report.verdicts {
        let step = view::step(verdict);
        text.push_str(&format!(
            "  {} in {}#{} at {}\n",
            step.title, verdict.session, verdict.seq, verdict.time
        ));
    }
    for approval in &report.approvals {
        text.push_str(&format!(
            "  {} {} by {} at {}{}\n",
            approval.ticket,
            approval.decision,
            approval.by,
            approval.time,
            approval
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    text
}
