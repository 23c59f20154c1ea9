//! Helpers shared by the end-to-end test files: work trees driven by the real git client, the
//! reviewer's browser session on the approval pages, and readings of what reached the upstream.
//!
//! Each test file is its own test binary and uses only some of these, hence the `dead_code`
//! allowance below.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gitgate_integration::{Git, GitOutput, HttpResponse, RepoOptions, Stack, TokenOptions};
use gitgate_integration::{Outcome, UpstreamRequest, workspace_root};
use tempfile::TempDir;

/// The text of the gateway's 401 body (`local_reply_config` in `envoy/gitgate-local.yaml`).
pub const TOKEN_NEEDED: &str = "gitgate: a token is needed to use this repository";

/// The person the agents of these tests act for.
pub const PERSON: &str = "alice";

/// The protected branch of the built-in policy.
pub const MAIN: &str = "refs/heads/main";

/// How long the upstream may take to notice a push the gateway broke off.
const ABORT_NOTICED: Duration = Duration::from_secs(10);

/// Envoy's `clock_skew_seconds` when a JWT provider does not set it (jwt_authn proto docs).
const ENVOY_DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;

/// An agent's token acting for [`PERSON`].
pub fn agent_token(stack: &Stack, agent: &str) -> String {
    stack
        .token(agent, &TokenOptions::agent_for(PERSON))
        .expect("mint an agent token")
}

/// Creates a repository with the sample commit on `main` under a fresh name, and returns it.
pub fn new_repo(stack: &Stack, prefix: &str) -> String {
    new_repo_with(stack, prefix, RepoOptions::default())
}

/// Creates a repository as `options` say under a fresh name, and returns the name.
pub fn new_repo_with(stack: &Stack, prefix: &str, options: RepoOptions) -> String {
    let name = stack.unique_repo_name(prefix);
    stack
        .create_repo(&name, options)
        .expect("create a repository");
    name
}

/// A clone made by the real git client, in a directory removed on drop.
pub struct WorkTree<'a> {
    stack: &'a Stack,
    /// Kept for its `Drop`, which removes the clone.
    _dir: TempDir,
    /// The clone's work tree.
    pub path: PathBuf,
}

impl<'a> WorkTree<'a> {
    /// Clones `url` (through the gateway) sending `token` as a Bearer header.
    pub fn clone(stack: &'a Stack, url: &str, token: &str) -> WorkTree<'a> {
        let work = WorkTree::empty_dir(stack);
        stack
            .git()
            .arg("clone")
            .arg(url)
            .arg(&work.path)
            .bearer(token)
            .success()
            .expect("clone through the gateway");
        work
    }

    /// Clones `url` with no credentials at all (a direct clone from the upstream).
    pub fn clone_direct(stack: &'a Stack, url: &str) -> WorkTree<'a> {
        let work = WorkTree::empty_dir(stack);
        stack
            .git()
            .arg("clone")
            .arg(url)
            .arg(&work.path)
            .success()
            .expect("clone from the upstream");
        work
    }

    /// A directory for a clone that does not exist yet (its parent does).
    pub fn empty_dir(stack: &'a Stack) -> WorkTree<'a> {
        let dir = stack.temp_dir().expect("scratch directory");
        let path = dir.path().join("work");
        WorkTree {
            stack,
            _dir: dir,
            path,
        }
    }

    /// A git command running in the work tree.
    pub fn git(&self) -> Git {
        self.stack.git().current_dir(&self.path)
    }

    /// Writes `name` with `contents`, commits it on the current branch, and returns the new
    /// commit id.
    pub fn commit_file(&self, name: &str, contents: &[u8]) -> String {
        let file = self.path.join(name);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).expect("create the file's directory");
        }
        std::fs::write(&file, contents).expect("write a file to commit");
        self.git()
            .args(["add", "--", name])
            .success()
            .expect("git add");
        self.git()
            .args(["commit", "--quiet", "-m", &format!("Change {name}")])
            .success()
            .expect("git commit");
        self.head()
    }

    /// The id `HEAD` points to.
    pub fn head(&self) -> String {
        self.rev_parse("HEAD").expect("HEAD exists")
    }

    /// What `rev` names in the clone, or `None` if it names nothing.
    pub fn rev_parse(&self, rev: &str) -> Option<String> {
        let out = self
            .git()
            .args(["rev-parse", "--verify", "--quiet", rev])
            .output()
            .expect("git rev-parse");
        out.ok().then(|| out.trimmed().to_owned())
    }

    /// Every ref of the clone with its id, one `<id> <ref>` per line, sorted by name.
    pub fn refs(&self) -> String {
        self.git()
            .args(["for-each-ref", "--format=%(objectname) %(refname)"])
            .success()
            .expect("git for-each-ref")
            .stdout
    }

    /// Runs `git push <args>` through the gateway with `token` as a Bearer header.
    pub fn push(&self, token: &str, args: &[&str]) -> GitOutput {
        self.git()
            .arg("push")
            .args(args)
            .bearer(token)
            .output()
            .expect("run git push")
    }
}

/// Runs git against the upstream's bare repository `repo` (plumbing, for checks).
pub fn upstream_git(stack: &Stack, repo: &str, args: &[&str]) -> GitOutput {
    stack
        .git()
        .arg("--git-dir")
        .arg(stack.upstream_repo(repo))
        .args(args)
        .output()
        .expect("run git on the upstream repository")
}

/// What `refname` points to upstream.
pub fn upstream_ref(stack: &Stack, repo: &str, refname: &str) -> Option<String> {
    stack
        .upstream_ref(repo, refname)
        .expect("read an upstream ref")
}

/// The `pre-receive` marker lines of `repo`.
pub fn hook_lines(stack: &Stack, repo: &str) -> Vec<String> {
    stack
        .pre_receive_lines(repo)
        .expect("read the pre-receive marker")
}

/// Replaces the `pre-receive` hook of `repo` with one that still records the marker line and
/// then runs `extra` (POSIX shell), e.g. to record push options or to sleep.
pub fn install_pre_receive(stack: &Stack, repo: &str, extra: &str) {
    let hook = stack.upstream_repo(repo).join("hooks").join("pre-receive");
    let script = format!("#!/bin/sh\ncat >> ./gitgate-pre-receive.log\n{extra}\n");
    std::fs::write(&hook, script).expect("write the pre-receive hook");
}

/// Every request for `repo` the upstream served, oldest first.
pub fn requests_for(stack: &Stack, repo: &str) -> Vec<UpstreamRequest> {
    let prefix = format!("/{repo}/");
    stack
        .upstream_requests()
        .expect("read the upstream request log")
        .into_iter()
        .filter(|r| r.path.starts_with(&prefix))
        .collect()
}

/// Whether a request came through Envoy (which gives every request an `x-request-id`) rather
/// than straight from a git client.
pub fn via_gateway(request: &UpstreamRequest) -> bool {
    request.header("x-request-id").is_some()
}

/// Whether a request is git's probe before a chunked push: a body of only `0000`
/// (git-smart-http.md §2), which the gate lets through.
pub fn is_probe(request: &UpstreamRequest) -> bool {
    request.header("content-length") == Some("4") && request.request_bytes == 4
}

/// Asserts that no push of `repo` went through whole. The gate streams a push upstream while
/// it waits for the verdict but withholds the pack's last bytes, and on a refusal breaks the
/// upstream request off: receive-pack never sees a complete pack. The upstream logs a broken-off
/// request once it notices, so this waits (a while) for that entry first.
pub fn assert_no_push_completed(stack: &Stack, repo: &str) {
    let path = format!("/{repo}/git-receive-pack");
    let pushes: Vec<_> = stack
        .wait_upstream_requests(ABORT_NOTICED, |all| {
            all.iter().any(|r| r.path == path && !is_probe(r))
        })
        .map(|all| {
            all.into_iter()
                .filter(|r| r.path == path && !is_probe(r))
                .collect()
        })
        .unwrap_or_default();
    for push in &pushes {
        assert_ne!(
            push.outcome,
            Outcome::Complete,
            "a push went through: {push:#?}"
        );
        if let Some(length) = push.header("content-length") {
            let length: u64 = length.parse().unwrap();
            assert!(
                push.request_bytes < length,
                "the whole body went upstream: {push:#?}"
            );
        }
    }
}

/// The receive-pack POSTs for `repo` that came through the gateway.
pub fn gateway_pushes(stack: &Stack, repo: &str) -> Vec<UpstreamRequest> {
    requests_for(stack, repo)
        .into_iter()
        .filter(|r| via_gateway(r) && r.is_receive_pack())
        .collect()
}

/// The ticket id from a held push's output: the reason ends in `(ticket T-...)`.
pub fn ticket_of(stderr: &str) -> String {
    let start = stderr
        .find("(ticket T-")
        .unwrap_or_else(|| panic!("no ticket in git's output:\n{stderr}"))
        + "(ticket ".len();
    let rest = &stderr[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// Asserts that git exited with status 1, the status of a push with refused refs.
pub fn assert_refused_push(out: &GitOutput) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "git push should exit 1\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("error: failed to push some refs"),
        "{}",
        out.stderr
    );
}

/// Asserts that `text` contains `needle`, showing `text` otherwise.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(
        text.contains(needle),
        "expected to find {needle:?} in:\n{text}"
    );
}

/// Asserts that `text` does not contain `needle`, showing `text` otherwise.
#[track_caller]
pub fn assert_lacks(text: &str, needle: &str) {
    assert!(
        !text.contains(needle),
        "did not expect {needle:?} in:\n{text}"
    );
}

/// Writes `len` random bytes to `path`; random data does not compress, so its size on the wire
/// is its size on disk.
pub fn write_random(path: &Path, len: u64) {
    let mut source = std::fs::File::open("/dev/urandom")
        .expect("open /dev/urandom")
        .take(len);
    let mut file = std::fs::File::create(path).expect("create a random file");
    let copied = std::io::copy(&mut source, &mut file).expect("write random bytes");
    assert_eq!(copied, len);
}

/// How long after its `exp` the shipped Envoy configuration still accepts a token: the JWT
/// provider's `clock_skew_seconds`, or Envoy's default when the file does not set it.
pub fn accepted_clock_skew_seconds() -> u64 {
    let config = std::fs::read_to_string(workspace_root().join("envoy/gitgate-local.yaml"))
        .expect("read the shipped Envoy configuration");
    config
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix("clock_skew_seconds:"))
        .map(|value| {
            value
                .trim()
                .parse()
                .expect("clock_skew_seconds is a number")
        })
        .unwrap_or(ENVOY_DEFAULT_CLOCK_SKEW_SECONDS)
}

/// A line of `/proc/<pid>/status`, e.g. `VmHWM` (peak resident memory) in kB.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// A reviewer signed in to the approval pages, as a browser would be: it keeps the session
/// cookie and echoes the page's CSRF token in every form.
pub struct Reviewer<'a> {
    stack: &'a Stack,
    /// The reviewer's subject.
    pub subject: String,
    /// `name=value` of the session cookie.
    cookie: String,
}

impl<'a> Reviewer<'a> {
    /// Mints a reviewer token for `subject` and signs in with the one-click link
    /// (`GET /login?token=...`), which answers the "Signed in" page and sets the cookie.
    pub fn sign_in(stack: &'a Stack, subject: &str) -> Reviewer<'a> {
        Reviewer::sign_in_as(stack, subject, &TokenOptions::reviewer())
    }

    /// Signs in as [`Reviewer::sign_in`] does, with a token minted with `options` (for example
    /// a reviewer who is also in the `security` group).
    pub fn sign_in_as(stack: &'a Stack, subject: &str, options: &TokenOptions) -> Reviewer<'a> {
        let token = stack
            .token(subject, options)
            .expect("mint a reviewer token");
        let url = stack.service_url(&format!("/login?token={token}&next=/"));
        let page = stack
            .http("GET", &url, &[], Vec::new())
            .expect("open the sign-in link");
        assert_eq!(page.status, 200, "{}", page.text());
        assert_contains(&page.text(), "Signed in");
        assert_contains(&page.text(), "Continue");
        let cookie = page
            .headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .filter_map(|(_, value)| value.split(';').next())
            .find(|pair| pair.starts_with("gitgate_session="))
            .unwrap_or_else(|| panic!("no session cookie in {:?}", page.headers))
            .to_owned();
        Reviewer {
            stack,
            subject: subject.to_owned(),
            cookie,
        }
    }

    /// `GET path` with the session cookie.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.stack
            .http(
                "GET",
                &self.stack.service_url(path),
                &[("cookie", &self.cookie)],
                Vec::new(),
            )
            .expect("GET a reviewer page")
    }

    /// The ticket's page.
    pub fn ticket_page(&self, ticket: &str) -> HttpResponse {
        let page = self.get(&format!("/tickets/{ticket}"));
        assert_eq!(page.status, 200, "{}", page.text());
        page
    }

    /// The ticket's status as its page shows it (`pending`, `approved`, `denied`).
    pub fn ticket_status(&self, ticket: &str) -> String {
        let text = self.ticket_page(ticket).text();
        let start = text
            .find("Status: <strong>")
            .unwrap_or_else(|| panic!("no status on the ticket page:\n{text}"))
            + "Status: <strong>".len();
        let end = text[start..].find('<').expect("status ends") + start;
        text[start..end].to_owned()
    }

    /// Presses "Approve" on the ticket's page.
    pub fn approve(&self, ticket: &str) -> HttpResponse {
        self.submit(ticket, "approve", &[])
    }

    /// Presses "Deny" on the ticket's page with `reason`.
    pub fn deny(&self, ticket: &str, reason: &str) -> HttpResponse {
        self.submit(ticket, "deny", &[("reason", reason)])
    }

    fn submit(&self, ticket: &str, action: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let page = self.ticket_page(ticket).text();
        let csrf = csrf_field(&page);
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        let url = self
            .stack
            .service_url(&format!("/tickets/{ticket}/{action}"));
        self.stack
            .http(
                "POST",
                &url,
                &[
                    ("cookie", &self.cookie),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
                form_encode(&form).into_bytes(),
            )
            .expect("POST a decision form")
    }
}

/// The value of the hidden `csrf` field of a page.
fn csrf_field(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no csrf field on the page:\n{page}"))
        + marker.len();
    let end = page[start..].find('"').expect("csrf value ends") + start;
    page[start..end].to_owned()
}

/// `application/x-www-form-urlencoded` encoding of `fields`.
fn form_encode(fields: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        let mut out = String::new();
        for byte in text.bytes() {
            match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(byte));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
        out
    };
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A token with exactly `claims` (plus `iss`, `aud`, `iat`, `exp` and a `jti` when absent),
/// signed with the stack's dev issuer key, for claims `gitgate dev token` does not mint (an
/// RFC 8693 `act`, for one).
pub fn sign_token(stack: &Stack, claims: serde_json::Value) -> String {
    let pem = std::fs::read(stack.dev_issuer_dir().join("signing-key.pem"))
        .expect("read the dev issuer's signing key");
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).expect("an Ed25519 key");
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch");
    let now = since_epoch.as_secs();
    let mut claims = claims;
    let object = claims.as_object_mut().expect("claims are an object");
    for (name, value) in [
        ("iss", serde_json::json!("gitgate-dev")),
        ("aud", serde_json::json!("gitgate")),
        ("iat", serde_json::json!(now)),
        ("exp", serde_json::json!(now + 900)),
        (
            "jti",
            serde_json::json!(format!("signed-{}", since_epoch.as_nanos())),
        ),
    ] {
        object.entry(name).or_insert(value);
    }
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    jsonwebtoken::encode(&header, &claims, &key).expect("sign a token")
}

/// The ticket of the newest held update of `repo` on the reviewer's queue page, if any.
pub fn queued_ticket(reviewer: &Reviewer, repo: &str) -> Option<String> {
    let page = reviewer.get("/").text();
    let cell = format!("<td>{repo}</td>");
    page.split("<tr>")
        .find(|row| row.contains(&cell))
        .and_then(|row| {
            let start = row.find("href=\"/tickets/")? + "href=\"/tickets/".len();
            let end = row[start..].find('"')? + start;
            Some(row[start..end].to_owned())
        })
}
