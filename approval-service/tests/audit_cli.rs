//! `gitgate audit` and `gitgate replay` as a person or a test runs them: the real binary on
//! a real SQLite file, and for replay a real upstream repository and the real git.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use support::{TestDatabase, TestService, ZERO};

fn gitgate(database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitgate"))
        .args(args)
        .env("GITGATE_DATABASE", database)
        .env_remove("RUST_LOG")
        .output()
        .expect("gitgate runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn push_event(
    request_id: &str,
    session: &str,
    at: u64,
    update: (&str, &str, &str),
    allowed: bool,
) -> Value {
    let (refname, old, new) = update;
    let operation = match (old == ZERO, new == ZERO) {
        (true, _) => "create",
        (_, true) => "delete",
        _ => "update",
    };
    let (verdict, decision, upstream) = if allowed {
        (
            json!({"decision": "allow"}),
            "forwarded",
            json!([{"ref": refname, "ok": true}]),
        )
    } else {
        (
            json!({"decision": "deny", "code": "gitgate:deny:protected", "reason": "no"}),
            "refused:deny",
            json!([]),
        )
    };
    json!({
        "request_id": request_id, "kind": "write", "started_ms": at, "duration_ms": 9,
        "identity": {"subject": "agent-7", "agent": true, "acting_for": "alice",
                     "token_id": "jti-1", "session": session},
        "repository": "demo.git", "service": "receive-pack", "method": "POST",
        "path": "/demo.git/git-receive-pack",
        "updates": [{"ref": refname, "old": old, "new": new, "operation": operation}],
        "verdicts": [verdict], "decision": decision, "upstream": upstream, "status": 200,
    })
}

async fn post(service: &TestService, events: Vec<Value>) {
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"events": events}).to_string()))
        .expect("a request");
    let response = service.send(request).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT, "{}", response.body);
}

#[tokio::test]
async fn the_audit_commands_answer_in_json_and_verify_fails_on_an_edit() {
    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    let new = "2222222222222222222222222222222222222222";
    post(
        &service,
        vec![
            push_event(
                "r1",
                "cli",
                1_000,
                ("refs/heads/agent/a", support::OLD, new),
                true,
            ),
            push_event(
                "r2",
                "cli",
                2_000,
                ("refs/heads/main", support::OLD, new),
                false,
            ),
        ],
    )
    .await;

    let commit = gitgate(&db.url, &["audit", "commit", new, "--json"]);
    assert!(
        commit.status.success(),
        "{}",
        String::from_utf8_lossy(&commit.stderr)
    );
    let report = json_of(&commit);
    assert_eq!(report["sessions"][0]["session"], "cli", "{report}");
    assert_eq!(report["sessions"][0]["acting_for"], "alice");
    assert_eq!(report["pushes"].as_array().map(Vec::len), Some(2));
    assert_eq!(report["pushes"][1]["updates"][0]["verdict"], "deny");

    let unknown = gitgate(&db.url, &["audit", "commit", "abcdef12", "--json"]);
    assert_eq!(unknown.status.code(), Some(1), "nothing found");
    assert_eq!(json_of(&unknown)["ids"], json!([]));

    let sessions = json_of(&gitgate(
        &db.url,
        &["audit", "sessions", "--person", "alice", "--json"],
    ));
    assert_eq!(sessions[0]["records"], 2, "{sessions}");
    let events = json_of(&gitgate(
        &db.url,
        &[
            "audit",
            "events",
            "--session",
            "cli",
            "--ref",
            "refs/heads/main",
            "--json",
        ],
    ));
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(events[0]["request_id"], "r2");
    let timeline = json_of(&gitgate(&db.url, &["audit", "session", "cli", "--json"]));
    assert_eq!(
        timeline["timeline"][1]["title"],
        "push demo.git: refused:deny"
    );
    let export = gitgate(&db.url, &["audit", "export", "cli"]);
    assert_eq!(String::from_utf8_lossy(&export.stdout).lines().count(), 2);
    let drops = json_of(&gitgate(&db.url, &["audit", "drops", "--json"]));
    assert_eq!(drops, json!({"filter": 0, "service": 0}));
    let text = gitgate(&db.url, &["audit", "session", "cli"]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("refs/heads/main 1111111..2222222 update: deny"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let clean = gitgate(&db.url, &["audit", "verify", "--json"]);
    assert!(clean.status.success());
    assert_eq!(json_of(&clean)["problems"], json!([]));

    sqlx::query(
        "UPDATE audit_records SET record = REPLACE(record, 'refused', 'forwarded') WHERE seq = 2",
    )
    .execute(service.store.pool())
    .await
    .expect("edits a record");
    let failed = gitgate(&db.url, &["audit", "verify", "--session", "cli", "--json"]);
    assert_eq!(failed.status.code(), Some(1));
    let report = json_of(&failed);
    assert_eq!(report["problems"][0]["kind"], "changed", "{report}");
    assert_eq!(report["problems"][0]["seq"], 2);
    let text = gitgate(&db.url, &["audit", "verify"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("changed cli#2"));
    service.stop().await;
}

#[tokio::test]
async fn replay_fetches_the_pushed_commits_by_id_and_shows_each_push_as_a_diff() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let upstream = dir.path().join("upstream.git");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("a work tree");
    git(dir.path(), &["init", "--quiet", "--bare", "upstream.git"]);
    git(&work, &["init", "--quiet", "-b", "main"]);
    std::fs::write(work.join("a.txt"), "one\n").expect("writes");
    git(&work, &["add", "a.txt"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let first = git(&work, &["rev-parse", "HEAD"]);
    git(
        &work,
        &[
            "push",
            "--quiet",
            upstream.to_str().unwrap_or_default(),
            "HEAD:main",
        ],
    );
    std::fs::write(work.join("a.txt"), "two\n").expect("writes");
    git(&work, &["commit", "--quiet", "-am", "second"]);
    let second = git(&work, &["rev-parse", "HEAD"]);
    // The gate forwarded this push.
    git(
        &work,
        &[
            "push",
            "--quiet",
            upstream.to_str().unwrap_or_default(),
            "HEAD:main",
        ],
    );
    std::fs::write(work.join("b.txt"), "held back\n").expect("writes");
    git(&work, &["add", "b.txt"]);
    git(&work, &["commit", "--quiet", "-m", "third"]);
    // Refused: never reached the upstream.
    let third = git(&work, &["rev-parse", "HEAD"]);

    let db = TestDatabase::sqlite();
    let service = TestService::start(&db).await;
    post(
        &service,
        vec![
            push_event(
                "p1",
                "rp",
                1_000,
                ("refs/heads/main", &first, &second),
                true,
            ),
            push_event("p2", "rp", 2_000, ("refs/heads/extra", ZERO, &third), false),
        ],
    )
    .await;

    let into = dir.path().join("scratch.git");
    let output = gitgate(
        &db.url,
        &[
            "replay",
            "rp",
            "--upstream",
            upstream.to_str().unwrap_or_default(),
            "--into",
            into.to_str().unwrap_or_default(),
            "--json",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let replay = json_of(&output);
    let forwarded = &replay["pushes"][0]["updates"][0];
    let diff = forwarded["diff"].as_str().unwrap_or_default();
    assert!(diff.contains("-one") && diff.contains("+two"), "{replay}");
    assert_eq!(forwarded["verdict"], "allow");
    assert_eq!(forwarded["commits"], json!([format!("{second} second")]));
    let refused = &replay["pushes"][1]["updates"][0];
    assert_eq!(refused["missing"], json!([third]), "{replay}");
    assert_eq!(refused["verdict"], "deny");
    assert_eq!(refused["diff"], Value::Null);
    git(&into, &["cat-file", "-e", &format!("{second}^{{commit}}")]);

    // The text form, into a temporary repository this time.
    let text = gitgate(
        &db.url,
        &[
            "replay",
            "rp",
            "--upstream",
            upstream.to_str().unwrap_or_default(),
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("-- refs/heads/main"), "{text}");
    assert!(text.contains("+two"), "{text}");
    assert!(
        text.contains(&format!("not on the upstream: {third}")),
        "{text}"
    );

    // An upstream that cannot be read is an error, not a list of "missing" commits.
    let gone = dir.path().join("no-such-repository.git");
    let failed = gitgate(
        &db.url,
        &[
            "replay",
            "rp",
            "--upstream",
            gone.to_str().unwrap_or_default(),
        ],
    );
    assert!(!failed.status.success(), "a replay from nowhere succeeded");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("ls-remote"), "{stderr}");
    service.stop().await;
}

#[test]
fn a_missing_database_file_is_an_error_not_an_empty_clean_record() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/absent.db", dir.path().display());
    let output = gitgate(&url, &["audit", "verify"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no database at"));
    assert!(!dir.path().join("absent.db").exists());
}

/// A `gitgate serve` process on a free port, stopped with SIGTERM as a service manager would.
struct Served {
    child: std::process::Child,
    address: String,
}

impl Served {
    fn start(database: &str, issuer_dir: &Path) -> Served {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_gitgate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
            .arg("--dev-issuer-dir")
            .arg(issuer_dir)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gitgate serve starts");
        let stdout = child.stdout.take().expect("a stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the listening line");
        let address = line
            .trim()
            .strip_prefix("gitgate: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Served { child, address }
    }

    /// POSTs JSON and returns the status code.
    fn post(&self, path: &str, body: &str) -> u16 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.address).expect("connects");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("reads");
        answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let status = self.child.wait().expect("the service ends");
        assert!(status.success(), "a clean stop: {status}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // OK to ignore: the process has usually ended already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn gitgate_serve_stopped_mid_session_keeps_every_record_and_continues_the_chain() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}/gitgate.db", dir.path().display());
    let issuer = dir.path().join("dev");
    let new = "2222222222222222222222222222222222222222";
    let read = |id: &str, at: u64| {
        json!({
            "request_id": id, "kind": "read", "started_ms": at, "duration_ms": 1,
            "identity": {"subject": "agent-7", "session": "live"}, "repository": "demo.git",
            "service": "upload-pack", "method": "POST", "path": "/demo.git/git-upload-pack",
        })
    };

    let first = Served::start(&url, &issuer);
    let mut events = vec![push_event(
        "w1",
        "live",
        1_000,
        ("refs/heads/a", support::OLD, new),
        true,
    )];
    events.extend((0..20).map(|i| read(&format!("r{i}"), 1_100 + i)));
    assert_eq!(
        first.post("/v1/events", &json!({ "events": events }).to_string()),
        204
    );
    // Stopped at once: the queued reads are stored on the way down.
    first.terminate();

    let second = Served::start(&url, &issuer);
    let more = vec![push_event(
        "w2",
        "live",
        2_000,
        ("refs/heads/b", support::OLD, new),
        true,
    )];
    assert_eq!(
        second.post("/v1/events", &json!({ "events": more }).to_string()),
        204
    );
    second.terminate();

    let timeline = json_of(&gitgate(&url, &["audit", "session", "live", "--json"]));
    assert_eq!(timeline["session"]["records"], 22, "{timeline}");
    let verify = gitgate(&url, &["audit", "verify", "--json"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let drops = json_of(&gitgate(&url, &["audit", "drops", "--json"]));
    assert_eq!(drops["service"], 0);
}
