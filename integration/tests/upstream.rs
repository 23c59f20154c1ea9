//! `gitgate-upstream` on its own, driven by the real git client: clone, fetch and push work
//! through git http-backend, in every body shape git produces, and the request log says what
//! arrived without holding credentials.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use gitgate_integration::{Outcome, RepoOptions, UpstreamRequest, UpstreamServer};

fn server() -> UpstreamServer {
    UpstreamServer::start(Path::new(env!("CARGO_BIN_EXE_gitgate-upstream"))).unwrap()
}

/// Clones `repo` into a new directory below `parent` and returns its path.
fn clone(server: &UpstreamServer, repo: &str, parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    server
        .git()
        .arg("clone")
        .arg(server.url(repo))
        .arg(&dir)
        .success()
        .unwrap();
    dir
}

fn commit(server: &UpstreamServer, dir: &Path, file: &str, content: &[u8]) -> String {
    std::fs::write(dir.join(file), content).unwrap();
    server
        .git()
        .current_dir(dir)
        .args(["add", file])
        .success()
        .unwrap();
    server
        .git()
        .current_dir(dir)
        .args(["commit", "-q", "-m", file])
        .success()
        .unwrap();
    server
        .git()
        .current_dir(dir)
        .args(["rev-parse", "HEAD"])
        .success()
        .unwrap()
        .trimmed()
        .into()
}

fn receive_packs(server: &UpstreamServer) -> Vec<UpstreamRequest> {
    server
        .requests()
        .unwrap()
        .into_iter()
        .filter(UpstreamRequest::is_receive_pack)
        .collect()
}

/// Bytes that do not compress, so a pack of them is as large as they are.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[test]
fn a_clone_and_a_push_go_through_git_http_backend() {
    let server = server();
    let scratch = server.temp_dir().unwrap();
    let work = clone(&server, "demo.git", scratch.path(), "demo");
    let before = server
        .read_ref("demo.git", "refs/heads/main")
        .unwrap()
        .unwrap();

    let new = commit(&server, &work, "notes.txt", b"hello\n");
    server
        .git()
        .current_dir(&work)
        .args(["push", "origin", "main", "main:refs/heads/topic"])
        .success()
        .unwrap();

    assert_eq!(
        server.read_ref("demo.git", "refs/heads/main").unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        server.read_ref("demo.git", "refs/heads/topic").unwrap(),
        Some(new.clone())
    );
    let hook = server.pre_receive_lines("demo.git").unwrap();
    assert!(
        hook.contains(&format!("{before} {new} refs/heads/main")),
        "{hook:?}"
    );
    assert_eq!(hook.len(), 2, "{hook:?}");

    let requests = server.requests().unwrap();
    let advert = requests
        .iter()
        .find(|r| r.path == "/demo.git/info/refs" && r.query == "service=git-receive-pack")
        .expect("receive-pack advertisement request");
    assert_eq!(advert.status, 200);
    assert_eq!(
        advert.header("user-agent").map(|ua| ua.starts_with("git/")),
        Some(true),
        "{advert:?}"
    );
    let push = &receive_packs(&server)[0];
    assert_eq!((push.status, push.outcome), (200, Outcome::Complete));
    assert!(push.request_bytes > 100, "{push:?}");
    assert!(push.response_bytes > 0, "{push:?}");
}

#[test]
fn a_chunked_push_without_content_length_arrives_whole() {
    let server = server();
    let scratch = server.temp_dir().unwrap();
    let work = clone(&server, "demo.git", scratch.path(), "demo");
    let new = commit(&server, &work, "big.bin", &noise(300 * 1024));

    // A post buffer smaller than the pack makes git send a probe and then a chunked body.
    let out = server
        .git()
        .current_dir(&work)
        .config("http.postBuffer", "65536")
        .args(["push", "-v", "origin", "main"])
        .success()
        .unwrap();
    assert!(out.stderr.contains("chunked"), "{}", out.stderr);
    assert_eq!(
        server.read_ref("demo.git", "refs/heads/main").unwrap(),
        Some(new)
    );

    let pushes = receive_packs(&server);
    let chunked = pushes
        .iter()
        .find(|r| r.header("transfer-encoding") == Some("chunked"))
        .expect("a chunked receive-pack request");
    assert!(chunked.header("content-length").is_none());
    assert!(chunked.request_bytes > 300 * 1024, "{chunked:?}");
    assert!(
        pushes.iter().any(|r| r.request_bytes == 4),
        "the 4-byte probe: {pushes:?}"
    );
}

#[test]
fn protocol_v2_is_passed_to_git_as_git_protocol() {
    let server = server();
    let out = server
        .git()
        .config("protocol.version", "2")
        .env("GIT_TRACE_PACKET", "1")
        .args(["ls-remote", &server.url("demo.git")])
        .success()
        .unwrap();
    assert!(out.stdout.contains("refs/heads/main"), "{}", out.stdout);
    assert!(out.stderr.contains("version 2"), "{}", out.stderr);
    let requests = server.requests().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r.header("git-protocol") == Some("version=2"))
    );
}

#[test]
fn a_gzip_upload_pack_request_is_inflated_by_git() {
    let server = server();
    let scratch = server.temp_dir().unwrap();
    let work = clone(&server, "demo.git", scratch.path(), "work");
    // Thirty branches on thirty commits: a clone then sends thirty `want` lines, a request over
    // git's 1 KiB limit for gzip.
    for n in 0..30 {
        commit(
            &server,
            &work,
            &format!("f{n}.txt"),
            format!("{n}\n").as_bytes(),
        );
        server
            .git()
            .current_dir(&work)
            .args(["branch", &format!("b{n}")])
            .success()
            .unwrap();
    }
    server
        .git()
        .current_dir(&work)
        .args(["push", "-q", "origin", "--all"])
        .success()
        .unwrap();

    let copy = scratch.path().join("copy");
    server
        .git()
        .config("protocol.version", "0")
        .args(["clone", "-q", "--mirror", &server.url("demo.git")])
        .arg(&copy)
        .success()
        .unwrap();

    let branches = server
        .git()
        .arg("--git-dir")
        .arg(&copy)
        .args(["for-each-ref", "refs/heads"])
        .success()
        .unwrap();
    assert_eq!(branches.stdout.lines().count(), 31, "{}", branches.stdout);
    let requests = server.requests().unwrap();
    let gzipped = requests
        .iter()
        .find(|r| {
            r.path.ends_with("/git-upload-pack") && r.header("content-encoding") == Some("gzip")
        })
        .unwrap_or_else(|| panic!("no gzip upload-pack request in {requests:#?}"));
    assert_eq!(gzipped.status, 200);
}

#[test]
fn sha256_and_empty_repositories_can_be_cloned_and_pushed() {
    let server = server();
    let scratch = server.temp_dir().unwrap();
    server
        .create_repo("sha256.git", RepoOptions::sha256())
        .unwrap();
    server
        .create_repo("empty.git", RepoOptions::empty())
        .unwrap();

    let work = clone(&server, "sha256.git", scratch.path(), "sha256");
    let new = commit(&server, &work, "x.txt", b"x\n");
    assert_eq!(new.len(), 64);
    server
        .git()
        .current_dir(&work)
        .args(["push", "-q", "origin", "main"])
        .success()
        .unwrap();
    assert_eq!(
        server.read_ref("sha256.git", "refs/heads/main").unwrap(),
        Some(new)
    );

    let work = clone(&server, "empty.git", scratch.path(), "empty");
    let new = commit(&server, &work, "first.txt", b"first\n");
    server
        .git()
        .current_dir(&work)
        .args(["push", "-q", "origin", "main"])
        .success()
        .unwrap();
    assert_eq!(
        server.read_ref("empty.git", "refs/heads/main").unwrap(),
        Some(new.clone())
    );
    assert_eq!(
        server.pre_receive_lines("empty.git").unwrap(),
        [format!("{} {new} refs/heads/main", "0".repeat(40))]
    );
}

#[test]
fn the_log_keeps_only_a_hash_of_the_authorization_header() {
    let server = server();
    server
        .git()
        .bearer("sekrit-token-value")
        .args(["ls-remote", &server.url("demo.git")])
        .success()
        .unwrap();
    let requests = server.requests().unwrap();
    let seen = &requests[0];
    assert!(seen.authorization.present);
    assert!(seen.authorization.had_value("Bearer sekrit-token-value"));
    assert!(seen.header("authorization").is_none());
    assert!(!seen.mentions("sekrit"));
    let raw = std::fs::read_to_string(server.repos_dir().join("../requests.jsonl")).unwrap();
    assert!(!raw.contains("sekrit"), "{raw}");

    server
        .git()
        .args(["ls-remote", &server.url("demo.git")])
        .success()
        .unwrap();
    let requests = server.requests().unwrap();
    assert!(!requests.last().unwrap().authorization.present);
}

#[test]
fn a_client_that_hangs_up_mid_body_is_logged_and_the_server_goes_on() {
    let server = server();
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    write!(
        stream,
        "POST /demo.git/git-receive-pack HTTP/1.1\r\nHost: upstream\r\n\
         Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 100000\r\n\r\n\
         00a0partial"
    )
    .unwrap();
    stream.flush().unwrap();
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(20);
    let aborted = loop {
        let found = receive_packs(&server).into_iter().next();
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no log line; output:\n{}",
            server.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(aborted.outcome, Outcome::ClientAborted, "{aborted:?}");
    assert_eq!(aborted.request_bytes, 11);

    server
        .git()
        .args(["ls-remote", &server.url("demo.git")])
        .success()
        .unwrap();
}

#[test]
fn an_unknown_repository_is_a_404() {
    let server = server();
    let out = server
        .git()
        .args(["ls-remote", &server.url("nope.git")])
        .failure()
        .unwrap();
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    let requests = server.requests().unwrap();
    assert_eq!(requests[0].status, 404);
}
