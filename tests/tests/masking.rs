//! Response masking and fetch scanning, end to end: the real git client and an HTTP client
//! through Envoy and the filter to the test upstream.
//!
//! - A real upstream hook prints a secret: `pre-receive` during a push (git shows it as
//!   `remote:` lines), and `uploadpack.packObjectsHook` during a clone (git honours that only
//!   from the global configuration, which the upstream takes from the repository's
//!   `gitgate-upstream.gitconfig`). git ends as usual and shows the masked tag, never the value.
//! - Recorded GitHub API responses from `@octokit/fixtures`, with secrets planted into a file's
//!   base64 `content` (with its line breaks), a diff, and issue bodies, are served by the
//!   upstream (`/_recorded/<name>`): the client gets valid JSON of the same structure, the
//!   base64 still decodes, and the value appears nowhere; also when the body comes in chunks
//!   of every size that splits the secret, gzip-encoded, or past the JSON depth cap.
//! - A fetch of a repository whose history holds a secret passes with a finding recorded; with
//!   `fetch.on_secret: refuse` for the identity, git fails with the printed refusal and nothing
//!   lands in the clone.
//!
//! Every credential is made at test time in a real format and was never issued.

mod support;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gitgate_integration::{HttpResponse, Stack, StackOptions, workspace_root};
use gitgate_scan::fake;
use serde_json::Value;
use support::{
    WorkTree, agent_token, assert_contains, assert_lacks, install_pre_receive, new_repo,
};

/// The tag a masked GitHub classic token gets (`masking.mask`, defaults).
const GITHUB_MASK: &str = "ghp_****[gitgate:github-pat-classic]";

/// The agent the refusing stack refuses fetches for.
const REFUSED_AGENT: &str = "agent-fetch-refused";

// ---- the stack ------------------------------------------------------------------------------

/// The stack of this test binary: the shipped configuration, plus a fetch policy that refuses
/// fetches of secrets for [`REFUSED_AGENT`] alone (every other identity gets the default,
/// `pass-with-audit`).
fn stack() -> &'static Stack {
    Stack::shared_with(refusing_options)
}

fn refusing_options() -> StackOptions {
    // The gate's configuration opens with its `approval` section.
    let anchor = "                    approval:\n";
    let fetch = format!(
        "                    fetch:\n\
         \x20                     on_secret: refuse\n\
         \x20                     refuse_for:\n\
         \x20                       subjects: [{REFUSED_AGENT}]\n{anchor}"
    );
    StackOptions {
        envoy_edits: vec![(anchor.to_owned(), fetch)],
        ..StackOptions::default()
    }
}

// ---- fake secrets ---------------------------------------------------------------------------

/// A fresh fake GitHub classic token (the format is real, the token never issued).
fn fake_github_token() -> String {
    fake::github_classic(&mut fake::FakeRng::fresh())
}

/// A fresh fake Slack bot token.
fn fake_slack_token() -> String {
    fake::slack_bot(&mut fake::FakeRng::fresh())
}

// ---- recorded responses ---------------------------------------------------------------------

/// The recorded responses of one `@octokit/fixtures` scenario.
fn scenario(name: &str) -> Vec<Value> {
    let path = workspace_root()
        .join("integration/node/node_modules/@octokit/fixtures/scenarios/api.github.com")
        .join(name)
        .join("normalized-fixture.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run npm ci in integration/node)", path.display()));
    match serde_json::from_str(&text).expect("a fixture is JSON") {
        Value::Array(entries) => entries,
        other => panic!("unexpected fixture shape: {other}"),
    }
}

/// Writes `recording` where the upstream serves it as `/_recorded/<name>`; returns the path.
fn record(stack: &Stack, name: &str, recording: &Value) -> String {
    let dir = stack.repos_dir().join("_recorded");
    std::fs::create_dir_all(&dir).expect("create the recordings directory");
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec(recording).expect("encode"),
    )
    .expect("write the recording");
    format!("_recorded/{name}")
}

/// GETs `path` through the gateway with an agent's token.
fn get(stack: &Stack, path: &str, extra: &[(&str, &str)]) -> HttpResponse {
    let token = agent_token(stack, "agent-api-reader");
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    headers.extend_from_slice(extra);
    stack
        .http("GET", &stack.gateway_url(path), &headers, Vec::new())
        .expect("the gateway answers")
}

/// Base64 as GitHub's contents API writes it: 60 characters a line, each ending in `\n`.
fn github_base64(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let mut out = String::new();
    for line in flat.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out
}

fn decode_github_base64(text: &str) -> Vec<u8> {
    let flat: String = text.chars().filter(|c| *c != '\n').collect();
    STANDARD.decode(flat).expect("the content still decodes")
}

/// Asserts that `masked` has the structure of `original`: the same keys, array lengths and
/// types, equal strings and numbers except strings that held a secret, which must not any more.
#[track_caller]
fn assert_same_shape(original: &Value, masked: &Value, secrets: &[&str], at: &str) {
    match (original, masked) {
        (Value::Object(a), Value::Object(b)) => {
            let keys_a: Vec<&String> = a.keys().collect();
            let keys_b: Vec<&String> = b.keys().collect();
            assert_eq!(keys_a, keys_b, "keys at {at}");
            for (key, value) in a {
                assert_same_shape(value, &b[key], secrets, &format!("{at}.{key}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "length at {at}");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert_same_shape(x, y, secrets, &format!("{at}[{i}]"));
            }
        }
        (Value::String(a), Value::String(b)) => {
            let holds = |text: &str| secrets.iter().any(|s| text.contains(s));
            if holds(a) {
                assert!(!holds(b), "a secret survived at {at}");
            } else if a != b {
                // Only a base64 field may change without holding the secret as text: decoded,
                // it held one and must not any more.
                let (was, now) = (decode_github_base64(a), decode_github_base64(b));
                assert!(holds(&String::from_utf8_lossy(&was)), "changed at {at}");
                assert!(
                    !holds(&String::from_utf8_lossy(&now)),
                    "a secret survived at {at}"
                );
            }
        }
        (a, b) => assert_eq!(a, b, "at {at}"),
    }
}

/// A recorded file-contents answer (the file metadata GitHub returns from `create-file`,
/// completed with the base64 `content` the contents API carries).
fn contents_recording(file: &[u8]) -> Value {
    let mut entry = scenario("create-file").remove(0);
    let mut content = entry["response"]["content"].take();
    let fields = content.as_object_mut().expect("the file metadata");
    fields.insert("encoding".into(), Value::from("base64"));
    fields.insert("content".into(), Value::from(github_base64(file)));
    fields.insert("size".into(), Value::from(file.len()));
    entry["status"] = Value::from(200);
    entry["response"] = content;
    entry
}

/// The recorded first page of issues, with `secret` planted into two issue bodies.
fn issues_recording(secret: &str, other: &str) -> Value {
    let mut entry = scenario("paginate-issues").remove(0);
    let issues = entry["response"].as_array_mut().expect("a list of issues");
    issues[0]["body"] = Value::from(format!(
        "Steps to reproduce:\r\n\r\n1. export GITHUB_TOKEN={secret}\r\n2. run \"deploy\"\n"
    ));
    issues[1]["body"] = Value::from(format!("Slack says \\ {other} \"quoted\"\t\u{e9}"));
    entry
}

// ---- hooks ----------------------------------------------------------------------------------

#[test]
fn a_secret_printed_by_a_pre_receive_hook_reaches_the_pusher_masked() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "mask-hook-push");
    let secret = fake_github_token();
    install_pre_receive(
        stack,
        &repo,
        &format!("echo \"deploying with GITHUB_TOKEN={secret} now\" >&2"),
    );
    let token = agent_token(stack, "agent-mask-push");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.commit_file("notes.txt", b"nothing secret\n");

    let out = work.push(&token, &["origin", "HEAD:refs/heads/feature"]);
    println!("{}", out.stderr);
    assert!(out.ok(), "the push lands as usual:\n{}", out.stderr);
    assert_contains(
        &out.stderr,
        &format!("remote: deploying with GITHUB_TOKEN={GITHUB_MASK} now"),
    );
    assert_lacks(&out.stderr, &secret);
    assert_lacks(&out.stdout, &secret);
    assert_lacks(&stack.envoy_log(), &secret);
}

#[test]
fn a_secret_printed_by_the_pack_objects_hook_reaches_the_cloner_masked() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "mask-hook-fetch");
    let secret = fake_slack_token();
    let bare = stack.upstream_repo(&repo);
    let hook = bare.join("hooks").join("pack-objects-hook");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\necho \"pack-objects: SLACK_TOKEN={secret}\" >&2\nexec \"$@\"\n"),
    )
    .expect("write the hook");
    make_executable(&hook);
    std::fs::write(
        bare.join("gitgate-upstream.gitconfig"),
        format!("[uploadpack]\n\tpackObjectsHook = {}\n", hook.display()),
    )
    .expect("write the global configuration");

    let token = agent_token(stack, "agent-mask-clone");
    let work = WorkTree::empty_dir(stack);
    let out = stack
        .git()
        .arg("clone")
        .arg(stack.gateway_url(&repo))
        .arg(&work.path)
        .bearer(&token)
        .output()
        .expect("run git clone");
    println!("{}", out.stderr);
    assert!(out.ok(), "the clone works as usual:\n{}", out.stderr);
    assert_contains(
        &out.stderr,
        "remote: pack-objects: SLACK_TOKEN=xoxb-****[gitgate:slack-bot-token]",
    );
    assert_lacks(&out.stderr, &secret);
    assert!(work.path.join(".git").is_dir());
    assert_lacks(&stack.envoy_log(), &secret);
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).expect("stat").permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).expect("chmod");
}

// ---- recorded GitHub API responses ----------------------------------------------------------

#[test]
fn a_secret_in_a_base64_file_content_is_masked_and_the_content_still_decodes() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let secret = fake_github_token();
    let mut file = String::new();
    for i in 0..40 {
        file.push_str(&format!("setting_{i} = value {i}\n"));
    }
    file.push_str(&format!("github_token = \"{secret}\"\n"));
    file.push_str("last = line\n");
    let recording = contents_recording(file.as_bytes());
    let path = record(stack, "contents-with-secret", &recording);

    let response = get(stack, &path, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_lacks(&response.text(), &secret);
    let masked: Value = serde_json::from_slice(&response.body).expect("valid JSON");
    assert_same_shape(&recording["response"], &masked, &[&secret], "$");
    let content = masked["content"].as_str().expect("content");
    assert!(
        content.lines().all(|l| l.len() <= 60) && content.ends_with('\n'),
        "the line layout is kept:\n{content}"
    );
    let decoded = String::from_utf8(decode_github_base64(content)).expect("text");
    assert_contains(&decoded, &format!("github_token = \"{GITHUB_MASK}\""));
    assert_contains(&decoded, "setting_39 = value 39\n");
    assert_lacks(&decoded, &secret);
    assert_lacks(&stack.envoy_log(), &secret);
}

#[test]
fn secrets_in_issue_bodies_are_masked_and_the_json_keeps_its_structure() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let (secret, other) = (fake_github_token(), fake_slack_token());
    let recording = issues_recording(&secret, &other);
    let path = record(stack, "issues-with-secrets", &recording);

    let response = get(stack, &path, &[]);
    assert_eq!(response.status, 200);
    let text = response.text();
    assert_lacks(&text, &secret);
    assert_lacks(&text, &other);
    let masked: Value = serde_json::from_slice(&response.body).expect("valid JSON");
    assert_same_shape(&recording["response"], &masked, &[&secret, &other], "$");
    assert_eq!(
        masked[0]["body"],
        Value::from(format!(
            "Steps to reproduce:\r\n\r\n1. export GITHUB_TOKEN={GITHUB_MASK}\r\n2. run \"deploy\"\n"
        ))
    );
    assert_contains(
        masked[1]["body"].as_str().unwrap(),
        "[gitgate:slack-bot-token]",
    );
    // The recorded headers the body does not invalidate are kept.
    assert!(
        response
            .header("link")
            .is_some_and(|l| l.contains("rel=\"next\""))
    );
}

#[test]
fn a_secret_in_a_diff_is_masked_in_the_text() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let secret = fake_github_token();
    // The raw-media recording of the contents API, answering with GitHub's diff media type.
    let mut entry = scenario("get-content").remove(1);
    let diff = format!(
        "diff --git a/.env b/.env\nindex 3f3f005..9a1b2c3 100644\n--- a/.env\n+++ b/.env\n\
         @@ -1 +1,2 @@\n user=ci\n+GITHUB_TOKEN={secret}\n"
    );
    entry["response"] = Value::from(diff.clone());
    entry["headers"]["content-type"] = Value::from("application/vnd.github.v3.diff; charset=utf-8");
    let path = record(stack, "diff-with-secret", &entry);

    let response = get(stack, &path, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.text(),
        diff.replace(&secret, GITHUB_MASK),
        "only the secret changed"
    );
}

#[test]
fn a_secret_split_at_every_chunk_boundary_is_still_masked() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let (secret, other) = (fake_github_token(), fake_slack_token());
    let recording = issues_recording(&secret, &other);
    let path = record(stack, "issues-chunked", &recording);
    let whole = get(stack, &path, &[]).body;

    // Text, one byte a frame: a boundary falls inside the secret at every offset.
    let text = format!("before the token\nGITHUB_TOKEN={secret}\nafter it\n");
    let mut entry = scenario("get-content").remove(1);
    entry["response"] = Value::from(text.clone());
    let text_path = record(stack, "text-chunked", &entry);
    let response = get(stack, &format!("{text_path}?chunk=1&pause_ms=1"), &[]);
    assert_eq!(response.text(), text.replace(&secret, GITHUB_MASK));

    // JSON in frames of several sizes, each splitting the secrets somewhere else.
    for chunk in [3, 7, 16, 41, 64, 1000] {
        let response = get(stack, &format!("{path}?chunk={chunk}&pause_ms=1"), &[]);
        assert_eq!(response.status, 200, "chunk {chunk}");
        assert!(
            response
                .header("content-length")
                .is_none_or(|l| l.parse::<usize>().ok() == Some(response.body.len()))
        );
        assert_eq!(response.body, whole, "the same answer in frames of {chunk}");
        assert_lacks(&response.text(), &secret);
        assert_lacks(&response.text(), &other);
    }
}

#[test]
fn a_gzip_answer_is_withheld_with_a_notice_and_a_correct_length() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let (secret, other) = (fake_github_token(), fake_slack_token());
    let mut entry = issues_recording(&secret, &other);
    let plain = serde_json::to_vec(&entry["response"]).expect("encode");
    entry["response"] = Value::from(hex_encode(&gzip(&plain)));
    entry["responseIsBinary"] = Value::from(true);
    entry["headers"]["content-encoding"] = Value::from("gzip");
    let path = record(stack, "issues-gzip", &entry);

    for extra in [&[("accept-encoding", "gzip")][..], &[]] {
        let response = get(stack, &path, extra);
        println!("{:?} {}", response.headers, response.text());
        assert_eq!(response.status, 200);
        assert!(
            response.header("content-encoding").is_none(),
            "{:?}",
            response.headers
        );
        if let Some(length) = response.header("content-length") {
            assert_eq!(length.parse::<usize>().ok(), Some(response.body.len()));
        }
        let notice: Value = serde_json::from_slice(&response.body).expect("a JSON notice");
        assert!(
            notice["message"]
                .as_str()
                .is_some_and(|m| m.contains("gitgate"))
        );
        assert_lacks(&response.text(), &secret);
    }
}

#[test]
fn bodies_past_the_caps_are_masked_as_text_and_never_passed_unmasked() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let secret = fake_github_token();

    // Deeper than masking.json.max_depth (256): the rest is masked as text.
    let deep = format!("{}\"{secret}\"{}", "[".repeat(300), "]".repeat(300));
    let mut entry = scenario("get-root").remove(0);
    entry["response"] = Value::from(deep.clone());
    entry["headers"]["content-type"] = Value::from("application/json");
    let path = record(stack, "too-deep", &entry);
    let response = get(stack, &path, &[]);
    assert_eq!(response.text(), deep.replace(&secret, GITHUB_MASK));

    // Far more than any buffer (8 MB), in 64 KiB frames, with a secret every 512 KiB.
    let mut big = String::with_capacity(8 << 20);
    let mut planted = 0;
    while big.len() < 8 << 20 {
        if big.len() / (512 << 10) >= planted {
            big.push_str(&format!("token = {secret}\n"));
            planted += 1;
        }
        big.push_str("fn filler() { let value = \"not a secret at all\"; }\n");
    }
    let mut entry = scenario("get-content").remove(1);
    entry["response"] = Value::from(big.clone());
    let path = record(stack, "big-text", &entry);
    let response = get(stack, &format!("{path}?chunk=65536&pause_ms=0"), &[]);
    assert_eq!(response.status, 200);
    let text = response.text();
    assert_lacks(&text, &secret);
    assert_eq!(text.matches(GITHUB_MASK).count(), planted);
    assert_eq!(text, big.replace(&secret, GITHUB_MASK));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("feed gzip");
    let out = child.wait_with_output().expect("gzip ends");
    assert!(out.status.success());
    out.stdout
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- fetches of a history with a secret -----------------------------------------------------

/// Commits a file holding a fresh secret to `main` of `repo` straight on the upstream (a push
/// through the gate would be refused for it); returns the secret and the blob id.
fn plant_secret_upstream(stack: &Stack, repo: &str) -> (String, String) {
    let work = WorkTree::clone_direct(stack, &stack.upstream_url(repo));
    let secret = fake_github_token();
    work.commit_file(
        "config/deploy.env",
        format!("user = ci\nGITHUB_TOKEN={secret}\n").as_bytes(),
    );
    let blob = work.rev_parse("HEAD:config/deploy.env").expect("the blob");
    work.git()
        .args(["push", "--quiet", "origin", "HEAD:main"])
        .success()
        .expect("push straight to the upstream");
    (secret, blob)
}

#[test]
fn a_clone_of_a_history_with_a_secret_passes_with_a_finding_recorded() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "mask-fetch-pass");
    let (secret, blob) = plant_secret_upstream(stack, &repo);
    let token = agent_token(stack, "agent-fetch-passes");

    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    assert_eq!(
        work.rev_parse("HEAD:config/deploy.env").as_deref(),
        Some(blob.as_str()),
        "the clone has the object, byte for byte"
    );
    let log = wait_for_log(stack, "fetch: gitgate: secret github-pat-classic");
    assert_contains(
        &log,
        &format!("secret github-pat-classic in blob {blob} line 2 (config/deploy.env in commit"),
    );
    assert_contains(&log, "fetch passed a pack of");
    assert_lacks(&log, &secret);
    let counted = stack
        .envoy_stat("wasmcustom.gitgate_fetch_secret_packs")
        .expect("Envoy's stats");
    assert!(counted >= Some(1), "the fetch is counted: {counted:?}");
}

/// Envoy's log once it holds `needle` (the filter logs at the end of the stream).
fn wait_for_log(stack: &Stack, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = stack.envoy_log();
        if log.contains(needle) || std::time::Instant::now() > deadline {
            assert_contains(&log, needle);
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_fetch_of_a_secret_is_refused_for_the_chosen_identity_and_nothing_lands() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "mask-fetch-refuse");
    let token = agent_token(stack, REFUSED_AGENT);
    // A clone from before the secret: it works, and a later fetch must add nothing.
    let earlier = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let before = earlier.rev_parse("origin/main").expect("origin/main");
    let (secret, blob) = plant_secret_upstream(stack, &repo);

    let fetch = earlier
        .git()
        .args(["fetch", "origin"])
        .bearer(&token)
        .output()
        .expect("run git fetch");
    println!("{}", fetch.stderr);
    assert!(!fetch.ok(), "the fetch fails");
    assert_contains(&fetch.stderr, "remote: gitgate: fetch refused: 1 secret");
    assert_contains(&fetch.stderr, "gitgate:deny:secret-in-fetch");
    assert_contains(&fetch.stderr, &format!("in blob {blob} line 2"));
    assert_lacks(&fetch.stderr, &secret);
    assert_eq!(
        earlier.rev_parse("origin/main").as_deref(),
        Some(before.as_str())
    );
    let present = earlier
        .git()
        .args(["cat-file", "-e", &blob])
        .output()
        .unwrap();
    assert!(!present.ok(), "the secret's blob is not in the clone");

    let fresh = WorkTree::empty_dir(stack);
    let clone = stack
        .git()
        .arg("clone")
        .arg(stack.gateway_url(&repo))
        .arg(&fresh.path)
        .bearer(&token)
        .output()
        .expect("run git clone");
    println!("{}", clone.stderr);
    assert!(!clone.ok(), "the clone fails");
    assert_contains(&clone.stderr, "gitgate:deny:secret-in-fetch");
    assert!(!fresh.path.exists(), "git removed the failed clone");

    // The same over protocol v0 (side-band-64k, no `packfile` section).
    let v0 = WorkTree::empty_dir(stack);
    let clone = stack
        .git()
        .args(["-c", "protocol.version=0", "clone"])
        .arg(stack.gateway_url(&repo))
        .arg(&v0.path)
        .bearer(&token)
        .output()
        .expect("run git clone");
    assert!(!clone.ok(), "the v0 clone fails:\n{}", clone.stderr);
    assert_contains(&clone.stderr, "remote: gitgate: fetch refused: 1 secret");
    assert_contains(&clone.stderr, "gitgate:deny:secret-in-fetch");
    assert_lacks(&clone.stderr, &secret);
    assert!(!v0.path.exists(), "git removed the failed clone");

    // Another identity on the same gate passes, with the finding recorded.
    let other = agent_token(stack, "agent-fetch-other");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &other);
    assert_eq!(
        work.rev_parse("HEAD:config/deploy.env").as_deref(),
        Some(blob.as_str())
    );
    let log = wait_for_log(stack, "fetch passed a pack of");
    assert_contains(&log, "fetch refused for a pack of");
    assert_lacks(&log, &secret);
    assert_lacks(&stack.envoy_log(), &secret);
}
