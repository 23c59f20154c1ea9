//! `gitgate scan`, run as a process: exit statuses, one JSON object per finding, and never a
//! secret's value in what it prints.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A fake GitHub classic token made from `seed` (the format is real, the token never issued).
fn fake_token(seed: u64) -> String {
    gitgate_scan::fake::github_classic(&mut gitgate_scan::fake::FakeRng::new(seed))
}

fn gitgate(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gitgate"))
        .arg("scan")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gitgate scan");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("gitgate scan ends")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "C O Mitter")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .stdout(Stdio::null())
        .status()
        .expect("run git");
    assert!(status.success(), "git {args:?}");
}

#[test]
fn files_with_secrets_exit_1_with_one_json_line_each_and_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let token = fake_token(1);
    std::fs::write(dir.path().join("clean.txt"), "nothing here\n").unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/app.env"),
        format!("user = deploy\nGITHUB_TOKEN={token}\n"),
    )
    .unwrap();

    let clean = gitgate(dir.path(), &["clean.txt"], None);
    assert_eq!(clean.status.code(), Some(0));
    assert!(clean.stdout.is_empty());

    let out = gitgate(dir.path(), &["."], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let found = lines(&out);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["rule"], "github-pat-classic");
    assert_eq!(found[0]["path"], "./config/app.env");
    assert_eq!(found[0]["line"], 2);
    assert_eq!(found[0]["column"], 14);
    assert_eq!(found[0]["fingerprint"].as_str().map(str::len), Some(32));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(&token), "the value is never printed");
}

#[test]
fn standard_input_is_scanned_without_paths() {
    let dir = tempfile::tempdir().unwrap();
    let token = fake_token(2);
    let out = gitgate(dir.path(), &[], Some(&format!("export T={token}\n")));
    assert_eq!(out.status.code(), Some(1));
    let found = lines(&out);
    assert_eq!(found[0]["path"], "-");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));

    let out = gitgate(dir.path(), &[], Some("hello\n"));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unreadable_inputs_and_bad_configurations_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = gitgate(dir.path(), &["missing.txt"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.txt"));

    std::fs::write(
        dir.path().join("gate.yaml"),
        "secrets:\n  rules:\n    disable: [no-such-rule]\n",
    )
    .unwrap();
    let out = gitgate(dir.path(), &["--config", "gate.yaml", "-"], Some(""));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secrets.rules") && stderr.contains("no-such-rule"),
        "{stderr}"
    );
}

#[test]
fn the_filter_configuration_gives_the_rules_and_the_fingerprint_key() {
    let dir = tempfile::tempdir().unwrap();
    let token = fake_token(3);
    let input = format!("GITHUB_TOKEN={token}\n");
    let plain = lines(&gitgate(dir.path(), &[], Some(&input)));

    std::fs::write(
        dir.path().join("keyed.yaml"),
        "approval: { cluster: gitgate_approval }\n\
         scan:\n  fingerprint_key: a deployment key of some length\n",
    )
    .unwrap();
    let keyed = lines(&gitgate(
        dir.path(),
        &["--config", "keyed.yaml"],
        Some(&input),
    ));
    assert_eq!(keyed.len(), 1);
    assert_ne!(keyed[0]["fingerprint"], plain[0]["fingerprint"]);

    std::fs::write(
        dir.path().join("off.yaml"),
        "secrets:\n  rules:\n    disable: [github-pat-classic, generic-secret-unquoted]\n",
    )
    .unwrap();
    let off = gitgate(dir.path(), &["--config", "off.yaml"], Some(&input));
    assert_eq!(off.status.code(), Some(0), "{off:?}");
}

#[test]
fn a_revision_range_scans_blobs_and_commit_messages() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let in_file = fake_token(4);
    let in_message = fake_token(5);
    git(repo, &["init", "--quiet", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "first"]);
    std::fs::write(repo.join("app.env"), format!("A=1\nTOKEN={in_file}\n")).unwrap();
    git(repo, &["add", "."]);
    git(
        repo,
        &[
            "commit",
            "--quiet",
            "-m",
            &format!("Add it\n\nwith {in_message}"),
        ],
    );

    let out = gitgate(repo, &["--git", "HEAD~1..HEAD"], None);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let found = lines(&out);
    assert_eq!(found.len(), 2, "{found:?}");
    let blob = found
        .iter()
        .find(|f| f["kind"] == "blob")
        .expect("the blob");
    assert_eq!(blob["path"], "app.env");
    assert_eq!(blob["line"], 2);
    assert_eq!(blob["object"].as_str().map(str::len), Some(40));
    let commit = found
        .iter()
        .find(|f| f["kind"] == "commit")
        .expect("the commit");
    assert!(commit["path"].is_null());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(&in_file) && !stdout.contains(&in_message));

    let before = gitgate(repo, &["--git", "HEAD~1"], None);
    assert_eq!(before.status.code(), Some(0), "{before:?}");
    let bad = gitgate(repo, &["--git", "no-such-rev"], None);
    assert_eq!(bad.status.code(), Some(2));
}
