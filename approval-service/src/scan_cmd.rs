//! `gitgate scan`: the filter's secret scan, on files, standard input or a git revision range.
//!
//! ```text
//! gitgate scan [--config FILE] [PATH...]      # files (directories are walked); stdin without PATH
//! gitgate scan [--config FILE] --git <range>  # what `git rev-list --objects <range>` lists
//! ```
//!
//! One JSON object per finding on standard output (`rule`, `path` or `object`, `line`,
//! `column`, `fingerprint`; never the value). Exit status: 0 when nothing was found, 1 when
//! something was, 2 when an input could not be read (what could be read is still scanned).
//!
//! `--config` takes the filter's plugin configuration (YAML or JSON): its `secrets.rules`
//! section, else its `scan` section, gives the rules, so fingerprints match the filter's. A file
//! with neither is read as a gitgate-scan configuration itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;
use gitgate_scan::{Finding, RuleSet, ScanConfig, Scanner};
use serde::Serialize;

/// Bytes read from an input at a time: a scanner's memory stays at one block plus its carry.
const READ_LEN: usize = 64 * 1024;

/// Exit status when a secret was found.
const FOUND: u8 = 1;

/// Exit status when an input could not be read or the configuration is wrong.
const TROUBLE: u8 = 2;

/// The arguments of `gitgate scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The filter's configuration (its `secrets.rules`, else `scan`), or a gitgate-scan
    /// configuration; the built-in rules without it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Scan the blobs and commit and tag objects of this revision range in the current
    /// repository (`git rev-list --objects <range>`), e.g. `origin/main..HEAD`.
    #[arg(long, value_name = "RANGE", conflicts_with = "paths")]
    git: Option<String>,
    /// Files or directories to scan; `-` or nothing for standard input.
    paths: Vec<PathBuf>,
}

/// One finding as printed.
#[derive(Debug, Serialize)]
struct Line<'a> {
    rule: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    line: u64,
    column: u64,
    fingerprint: String,
}

/// Runs `gitgate scan`; the process's exit status.
pub fn run(args: &ScanArgs) -> ExitCode {
    let rules = match load_rules(args.config.as_deref()) {
        Ok(rules) => rules,
        Err(error) => {
            eprintln!("gitgate: error: {error:#}");
            return ExitCode::from(TROUBLE);
        }
    };
    let mut report = Report::default();
    let outcome = match &args.git {
        Some(range) => scan_git(&rules, range, &mut report),
        None => {
            scan_paths(&rules, &args.paths, &mut report);
            Ok(())
        }
    };
    if let Err(error) = outcome {
        eprintln!("gitgate: error: {error:#}");
        report.troubled = true;
    }
    if report.troubled {
        ExitCode::from(TROUBLE)
    } else if report.found > 0 {
        ExitCode::from(FOUND)
    } else {
        ExitCode::SUCCESS
    }
}

/// What the run found and met.
#[derive(Debug, Default)]
struct Report {
    found: u64,
    troubled: bool,
}

impl Report {
    fn print(&mut self, place: Place<'_>, findings: &[Finding]) {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for finding in findings {
            let line = Line {
                rule: &finding.rule_id,
                kind: place.kind,
                object: place.object,
                path: place.path,
                line: finding.line,
                column: finding.column,
                fingerprint: finding.fingerprint.to_string(),
            };
            match serde_json::to_string(&line) {
                Ok(json) => {
                    if writeln!(out, "{json}").is_err() {
                        self.troubled = true;
                    }
                }
                Err(_) => self.troubled = true,
            }
            self.found += 1;
        }
    }

    fn trouble(&mut self, what: &str, error: &dyn std::fmt::Display) {
        eprintln!("gitgate: error: {what}: {error}");
        self.troubled = true;
    }
}

/// Where findings are.
#[derive(Debug, Clone, Copy, Default)]
struct Place<'a> {
    kind: Option<&'a str>,
    object: Option<&'a str>,
    path: Option<&'a str>,
}

/// The rules from `--config`, or the built-in ones.
fn load_rules(config: Option<&Path>) -> anyhow::Result<RuleSet> {
    let Some(path) = config else {
        return Ok(RuleSet::builtin()?);
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document: serde_json::Value = serde_norway::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    let (field, section) = match (
        document.get("secrets").and_then(|s| s.get("rules")),
        document.get("scan"),
    ) {
        (Some(rules), _) if !rules.is_null() => ("secrets.rules", rules.clone()),
        (_, Some(scan)) if !scan.is_null() => ("scan", scan.clone()),
        _ if document.get("secrets").is_some() || document.get("approval").is_some() => {
            return Ok(RuleSet::builtin()?);
        }
        _ => ("", document),
    };
    let config: ScanConfig = serde_path_to_error::deserialize(section).map_err(|err| {
        let at = err.path().to_string();
        let name = match (field.is_empty(), at == ".") {
            (true, true) => "configuration".to_owned(),
            (true, false) => at,
            (false, true) => field.to_owned(),
            (false, false) => format!("{field}.{at}"),
        };
        anyhow::anyhow!("{}: {name}: {}", path.display(), err.inner())
    })?;
    RuleSet::compile(&config).map_err(|err| {
        let prefix = if field.is_empty() {
            String::new()
        } else {
            format!("{field}: ")
        };
        anyhow::anyhow!("{}: {prefix}{err}", path.display())
    })
}

/// Scans a reader to its end, in blocks.
fn scan_reader(rules: &RuleSet, reader: &mut dyn Read) -> std::io::Result<Vec<Finding>> {
    let mut scanner = Scanner::new(rules);
    let mut findings = Vec::new();
    let mut buffer = vec![0u8; READ_LEN];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        let _ = scanner.feed(buffer.get(..read).unwrap_or_default(), &mut findings);
    }
    let _ = scanner.finish(&mut findings);
    Ok(findings)
}

fn scan_paths(rules: &RuleSet, paths: &[PathBuf], report: &mut Report) {
    if paths.is_empty() {
        return scan_stdin(rules, report);
    }
    for path in paths {
        if path.as_os_str() == "-" {
            scan_stdin(rules, report);
        } else {
            scan_path(rules, path, report);
        }
    }
}

fn scan_stdin(rules: &RuleSet, report: &mut Report) {
    let stdin = std::io::stdin();
    match scan_reader(rules, &mut stdin.lock()) {
        Ok(findings) => report.print(
            Place {
                path: Some("-"),
                ..Place::default()
            },
            &findings,
        ),
        Err(error) => report.trouble("standard input", &error),
    }
}

fn scan_path(rules: &RuleSet, path: &Path, report: &mut Report) {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => return report.trouble(&path.display().to_string(), &error),
    };
    if metadata.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(error) => return report.trouble(&path.display().to_string(), &error),
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            // A repository's own store holds compressed objects: scan it with --git instead.
            if child.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            scan_path(rules, &child, report);
        }
        return;
    }
    if !metadata.is_file() {
        return;
    }
    let shown = path.display().to_string();
    match std::fs::File::open(path).and_then(|mut file| scan_reader(rules, &mut file)) {
        Ok(findings) => report.print(
            Place {
                path: Some(&shown),
                ..Place::default()
            },
            &findings,
        ),
        Err(error) => report.trouble(&shown, &error),
    }
}

/// Scans the blobs, commits and tags that `git rev-list --objects <range>` lists.
fn scan_git(rules: &RuleSet, range: &str, report: &mut Report) -> anyhow::Result<()> {
    if range.starts_with('-') {
        bail!("--git takes a revision range, not an option: {range:?}");
    }
    let listed = Command::new("git")
        .args(["rev-list", "--objects", range, "--"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run git rev-list")?;
    if !listed.status.success() {
        bail!("git rev-list --objects {range} failed");
    }
    let list = String::from_utf8_lossy(&listed.stdout).into_owned();
    let objects: Vec<(&str, Option<&str>)> = list
        .lines()
        .filter_map(|line| {
            let (id, path) = match line.split_once(' ') {
                Some((id, path)) => (id, Some(path)),
                None => (line, None),
            };
            (!id.is_empty()).then_some((id, path))
        })
        .collect();

    let mut batch = Command::new("git")
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run git cat-file --batch")?;
    let mut stdin = batch.stdin.take().context("no stdin for git cat-file")?;
    let ids: Vec<String> = objects.iter().map(|(id, _)| (*id).to_owned()).collect();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for id in ids {
            writeln!(stdin, "{id}")?;
        }
        Ok(())
    });
    let stdout = batch.stdout.take().context("no stdout from git cat-file")?;
    let mut reader = BufReader::new(stdout);
    for (id, path) in &objects {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            bail!("git cat-file --batch ended early");
        }
        let fields: Vec<&str> = header.split_whitespace().collect();
        let [object, kind, size] = fields.as_slice() else {
            bail!(
                "git cat-file --batch: unexpected answer {:?} for {id}",
                header.trim()
            );
        };
        let size: u64 = size
            .parse()
            .with_context(|| format!("git cat-file --batch: bad size for {id}"))?;
        let mut content = (&mut reader).take(size);
        if *kind == "tree" {
            std::io::copy(&mut content, &mut std::io::sink())?;
        } else {
            let findings = scan_reader(rules, &mut content)?;
            let place = Place {
                kind: Some(kind),
                object: Some(object),
                path: path.filter(|p| !p.is_empty()),
            };
            report.print(place, &findings);
        }
        let mut newline = [0u8; 1];
        reader.read_exact(&mut newline)?;
    }
    drop(reader);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the writer to git cat-file panicked"))??;
    let status = batch.wait()?;
    if !status.success() {
        bail!("git cat-file --batch failed");
    }
    Ok(())
}
