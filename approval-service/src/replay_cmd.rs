//! `gitgate replay <session> --upstream <url>`: what a session pushed, proven by the commits
//! themselves.
//!
//! The pushes come from the session's audit record, in timeline order. Their commits are
//! fetched by id from the upstream into a scratch bare repository (`git fetch <url> <id>...`),
//! and each ref update is shown as `git diff old new` (with the commits in between), a create
//! as `git show new`, a delete as the id it removed. Git ids are content hashes, so the diff of
//! the ids on record is exactly what changed, whatever the upstream says today. A push that
//! was refused never reached the upstream, so its new commits are reported as not fetched.
//!
//! Fetching by id needs the upstream to serve objects it did not advertise. Over protocol v2
//! (asked for here) git's `upload-pack` serves any object it has by id; a server answering in
//! v0 refuses them unless the repository sets `uploadpack.allowReachableSHA1InWant` (commits
//! reachable from a ref) or `uploadpack.allowAnySHA1InWant` (any object it has).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Args;
use serde::Serialize;

use crate::audit::store;
use crate::audit::view::{self, StepRef};

/// The most commits listed per ref update.
pub const MAX_COMMITS: u32 = 1000;

/// `gitgate replay ...`
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The session to replay.
    session: String,
    /// The Git URL of the upstream repository the session pushed to.
    #[arg(long)]
    upstream: String,
    /// Keep the scratch repository here (created, or reused if it is a bare repository);
    /// by default a temporary one is removed afterwards.
    #[arg(long)]
    into: Option<PathBuf>,
    /// sqlite://PATH or postgres://... [default: sqlite://.gitgate/gitgate.db].
    #[arg(long, env = "GITGATE_DATABASE", hide_env_values = true)]
    database: Option<String>,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// The replay of a session.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    /// The session.
    pub session: String,
    /// The upstream, without any user name or password it carried.
    pub upstream: String,
    /// The scratch repository, when kept.
    pub into: Option<String>,
    /// The pushes, in timeline order.
    pub pushes: Vec<ReplayedPush>,
    /// The reviewers' decisions in the session, in timeline order.
    pub decisions: Vec<view::Step>,
}

/// One push of the session.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedPush {
    /// The record's place.
    pub seq: i64,
    /// The push's request id.
    pub request_id: Option<String>,
    /// When, RFC 3339.
    pub time: String,
    /// The record's one-line summary (the filter's decision for an event).
    pub title: String,
    /// Each ref update with its verdict and its diff.
    pub updates: Vec<ReplayedUpdate>,
}

/// One ref update, replayed.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayedUpdate {
    /// The update and its verdict, as recorded.
    #[serde(flatten)]
    pub recorded: StepRef,
    /// Ids the upstream did not serve (a refused push's new commits never reached it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// `id subject` of each commit from old to new, oldest first (the newest [`MAX_COMMITS`]);
    /// the tip alone for a create.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<String>,
    /// `git diff old new`, or `git show new` for a create; `None` when an id is missing or
    /// for a delete.
    pub diff: Option<String>,
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The scratch directory is not empty and not a bare repository.
    #[error("{path} exists and is not an empty directory or a bare git repository")]
    NotScratch {
        /// The directory.
        path: PathBuf,
    },
    /// git could not be run.
    #[error("cannot run git: {0}")]
    Spawn(std::io::Error),
    /// A git command failed.
    #[error("git {command} failed: {stderr}")]
    Git {
        /// The subcommand.
        command: String,
        /// Its last line of error output.
        stderr: String,
    },
}

/// Runs `gitgate replay`; the process's exit code (1 when the session pushed nothing, 2 on
/// errors).
pub fn run(args: &ReplayArgs) -> ExitCode {
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(replay_session(args)));
    match result {
        Ok(replay) => {
            if args.json {
                match serde_json::to_string_pretty(&replay) {
                    Ok(json) => println!("{json}"),
                    Err(error) => eprintln!("gitgate: error: {error}"),
                }
            } else {
                print!("{}", replay_text(&replay));
            }
            if replay.pushes.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("gitgate: error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn replay_session(args: &ReplayArgs) -> anyhow::Result<Replay> {
    let store = crate::audit_cmd::open_store(args.database.as_deref()).await?;
    let records = store::session_records(store.pool(), &args.session).await?;
    store.close().await;
    if records.is_empty() {
        anyhow::bail!("no audit session {:?}", args.session);
    }
    let steps = view::timeline(&records);

    // A push is its event; a verdict record stands in for a push whose event is missing.
    let event_requests: BTreeSet<String> = steps
        .iter()
        .filter(|s| s.kind == "event" && !s.updates.is_empty())
        .filter_map(|s| s.request_id.clone())
        .collect();
    let pushes: Vec<&view::Step> = steps
        .iter()
        .filter(|s| !s.updates.is_empty())
        .filter(|s| match s.kind.as_str() {
            "event" => true,
            "verdict" => s
                .request_id
                .as_ref()
                .is_none_or(|r| !event_requests.contains(r)),
            _ => false,
        })
        .collect();
    let decisions: Vec<view::Step> = steps
        .iter()
        .filter(|s| s.kind == "decision")
        .cloned()
        .collect();

    let (scratch, _temporary) = match &args.into {
        Some(path) => (prepare_scratch(path)?, None),
        None => {
            let dir = tempfile::tempdir()?;
            let path = dir.path().join("replay.git");
            (prepare_scratch(&path)?, Some(dir))
        }
    };

    let ids: BTreeSet<&str> = pushes
        .iter()
        .flat_map(|p| &p.updates)
        .flat_map(|u| [u.old.as_str(), u.new.as_str()])
        .filter(|id| !is_zero(id))
        .collect();
    fetch(&scratch, &args.upstream, &ids)?;

    let mut replayed = Vec::new();
    for push in pushes {
        let mut updates = Vec::new();
        for update in &push.updates {
            updates.push(replay_update(&scratch, update)?);
        }
        replayed.push(ReplayedPush {
            seq: push.seq,
            request_id: push.request_id.clone(),
            time: push.time.clone(),
            title: push.title.clone(),
            updates,
        });
    }
    Ok(Replay {
        session: args.session.clone(),
        upstream: without_credentials(&args.upstream),
        into: args.into.as_ref().map(|p| p.display().to_string()),
        pushes: replayed,
        decisions,
    })
}

/// A bare repository at `path`: created when missing or empty, reused when it is one.
fn prepare_scratch(path: &Path) -> Result<PathBuf, ReplayError> {
    let empty = match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if empty {
        let parent = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().map(PathBuf::from).unwrap_or_default();
        std::fs::create_dir_all(parent).map_err(ReplayError::Spawn)?;
        git(parent, &["init", "--quiet", "--bare"], &[name.as_os_str()])?;
        return Ok(path.to_owned());
    }
    let bare = git(path, &["rev-parse", "--is-bare-repository"], &[]);
    match bare {
        Ok(text) if text.trim() == "true" => Ok(path.to_owned()),
        _ => Err(ReplayError::NotScratch {
            path: path.to_owned(),
        }),
    }
}

/// Fetches the ids in one go, then one by one those that did not arrive (a refused push's
/// commits are not on the upstream, and one missing id fails the whole fetch).
fn fetch(scratch: &Path, upstream: &str, ids: &BTreeSet<&str>) -> Result<(), ReplayError> {
    let missing: Vec<&str> = ids.iter().copied().filter(|id| !has(scratch, id)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    // An upstream that cannot be reached or refuses us would make every id look missing:
    // say so instead.
    git(scratch, &["ls-remote", upstream, "HEAD"], &[])?;
    let mut args = vec![
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        upstream,
    ];
    args.extend(missing.iter().copied());
    if git(scratch, &args, &[]).is_ok() {
        return Ok(());
    }
    for id in missing {
        // OK to ignore: an id the upstream does not serve is reported per update.
        let _ = git(
            scratch,
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                upstream,
                id,
            ],
            &[],
        );
    }
    Ok(())
}

fn replay_update(scratch: &Path, update: &StepRef) -> Result<ReplayedUpdate, ReplayError> {
    let missing: Vec<String> = [&update.old, &update.new]
        .into_iter()
        .filter(|id| !is_zero(id) && !has(scratch, id))
        .cloned()
        .collect();
    let mut replayed = ReplayedUpdate {
        recorded: update.clone(),
        missing,
        commits: Vec::new(),
        diff: None,
    };
    if !replayed.missing.is_empty() {
        return Ok(replayed);
    }
    match (is_zero(&update.old), is_zero(&update.new)) {
        (_, true) => {}
        (true, false) => {
            replayed.diff = Some(git(
                scratch,
                &["show", "--no-color", "--format=fuller", &update.new],
                &[],
            )?);
            // A new ref's history may be long and mostly the upstream's already: the tip only.
            replayed.commits = log(scratch, &update.new, 1)?;
        }
        (false, false) => {
            replayed.diff = Some(git(
                scratch,
                &["diff", "--no-color", &update.old, &update.new],
                &[],
            )?);
            let range = format!("{}..{}", update.old, update.new);
            replayed.commits = log(scratch, &range, MAX_COMMITS)?;
        }
    }
    Ok(replayed)
}

fn log(scratch: &Path, range: &str, max: u32) -> Result<Vec<String>, ReplayError> {
    let max = format!("--max-count={max}");
    let text = git(
        scratch,
        &["log", "--reverse", "--format=%H %s", &max, range],
        &[],
    )?;
    Ok(text.lines().map(str::to_owned).collect())
}

fn has(scratch: &Path, id: &str) -> bool {
    git(
        scratch,
        &["cat-file", "-e", &format!("{id}^{{commit}}")],
        &[],
    )
    .is_ok()
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Runs git in `dir` without prompting; its standard output.
fn git(dir: &Path, args: &[&str], more: &[&std::ffi::OsStr]) -> Result<String, ReplayError> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "protocol.version=2", "-c", "core.pager=cat"])
        .args(args)
        .args(more)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(ReplayError::Spawn)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(ReplayError::Git {
            command: args.first().copied().unwrap_or_default().to_owned(),
            // git repeats the URL it fetched from, which may carry credentials.
            stderr: stderr
                .lines()
                .last()
                .map(without_credentials)
                .unwrap_or_default(),
        })
    }
}

/// A text with the user name and password of any `scheme://user:pass@host` removed.
fn without_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (head, tail) = rest.split_at(start + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        out.push_str(host);
        rest = after;
    }
    out.push_str(rest);
    out
}

fn replay_text(replay: &Replay) -> String {
    let mut text = format!(
        "replay of session {} from {}\n",
        replay.session, replay.upstream
    );
    for push in &replay.pushes {
        text.push_str(&format!(
            "\n== {} #{} {} (request {})\n",
            push.time,
            push.seq,
            push.title,
            push.request_id.as_deref().unwrap_or("-")
        ));
        for update in &push.updates {
            let r = &update.recorded;
            text.push_str(&format!(
                "-- {} {}..{} {}: {}{}{}{}\n",
                r.refname,
                short(&r.old),
                short(&r.new),
                r.operation,
                r.verdict.as_deref().unwrap_or("-"),
                r.code
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                r.ticket
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default(),
                r.upstream
                    .as_deref()
                    .map(|u| format!(" (upstream {u})"))
                    .unwrap_or_default(),
            ));
            if !update.missing.is_empty() {
                text.push_str(&format!(
                    "   not on the upstream: {}\n",
                    update.missing.join(" ")
                ));
            }
            for commit in &update.commits {
                text.push_str(&format!("   commit {commit}\n"));
            }
            if let Some(diff) = &update.diff {
                text.push_str(diff);
                if !diff.ends_with('\n') && !diff.is_empty() {
                    text.push('\n');
                }
            }
        }
    }
    for decision in &replay.decisions {
        text.push_str(&format!(
            "\n== {} #{} {}\n",
            decision.time, decision.seq, decision.title
        ));
    }
    text
}

fn short(id: &str) -> String {
    id.chars().take(7).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(
            without_credentials("fatal: https://user:tok3n@git.example/x.git not found"),
            "fatal: https://git.example/x.git not found"
        );
        assert_eq!(without_credentials("/srv/git/x.git"), "/srv/git/x.git");
    }
}
