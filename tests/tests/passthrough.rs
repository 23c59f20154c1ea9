//! The gateway is transparent to everything it lets through: clones, fetches and ls-remote in
//! every protocol version print what they print against the upstream directly, and allowed
//! pushes of every shape (first branch, tags, deletions, several refs, push options, SHA-256,
//! bodies larger than git's post buffer, hooks slower than Envoy's default route timeout) land
//! upstream as git sent them. Requests that are not smart HTTP pass through untouched.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use gitgate_integration::{GitOutput, Outcome, RepoOptions, Stack};
use support::{
    WorkTree, agent_token, assert_contains, gateway_pushes, hook_lines, install_pre_receive,
    new_repo, new_repo_with, requests_for, upstream_git, upstream_ref, via_gateway, write_random,
};

/// The protocol versions git speaks over HTTP (`-c protocol.version=N`).
const PROTOCOLS: [&str; 3] = ["0", "1", "2"];

/// How many branches the comparison repositories get: enough that a clone's want list is over
/// the 1 KiB above which git gzips upload-pack requests (git-smart-http.md §2).
const MANY_BRANCHES: usize = 60;

/// Envoy's default route timeout, which a push with a slow hook must outlast.
const ENVOY_DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the slow hook sleeps: past [`ENVOY_DEFAULT_ROUTE_TIMEOUT`].
const SLOW_HOOK_SECONDS: u64 = 17;

/// Creates a repository with [`MANY_BRANCHES`] branches of distinct root commits and an
/// annotated tag, pushed straight to the upstream.
fn repo_with_many_branches(stack: &Stack, prefix: &str) -> String {
    let repo = new_repo(stack, prefix);
    let seed = WorkTree::empty_dir(stack);
    stack
        .git()
        .arg("init")
        .arg("--quiet")
        .arg(&seed.path)
        .success()
        .unwrap();
    let mut stream = String::new();
    for n in 0..MANY_BRANCHES {
        let message = format!("branch {n:03}\n");
        write!(
            stream,
            "commit refs/heads/b-{n:03}\n\
             committer Gitgate Test <test@gitgate.invalid> 1700000000 +0000\n\
             data {}\n{message}\n",
            message.len()
        )
        .unwrap();
    }
    write!(
        stream,
        "tag v1.0\nfrom refs/heads/b-000\n\
         tagger Gitgate Test <test@gitgate.invalid> 1700000000 +0000\ndata 8\nrelease\n\n"
    )
    .unwrap();
    seed.git()
        .args(["fast-import", "--quiet"])
        .stdin(stream)
        .success()
        .unwrap();
    seed.git()
        .args(["push", "--quiet", &stack.upstream_url(&repo)])
        .args(["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"])
        .success()
        .unwrap();
    repo
}

/// Replaces the gateway's and the upstream's URL of `repo` with one placeholder, so output that
/// names the remote can be compared. git shortens the URL in `From <url>` by the `.git` suffix,
/// and prints the upstream's URL without its credential.
fn without_urls(stack: &Stack, repo: &str, text: &str) -> String {
    let mut text = text.to_owned();
    for url in [
        stack.gateway_url(repo),
        stack.upstream_url(repo),
        stack.upstream_url_without_credential(repo),
    ] {
        text = text.replace(&url, "<remote>");
        text = text.replace(url.trim_end_matches(".git"), "<remote>");
    }
    text
}

/// Asserts two git runs ended alike and printed the same, URLs aside.
fn assert_same_output(
    stack: &Stack,
    repo: &str,
    what: &str,
    gateway: &GitOutput,
    direct: &GitOutput,
) {
    assert_eq!(gateway.status, direct.status, "{what}: exit status");
    assert_eq!(
        without_urls(stack, repo, &gateway.stdout),
        without_urls(stack, repo, &direct.stdout),
        "{what}: stdout"
    );
    assert_eq!(
        without_urls(stack, repo, &gateway.stderr),
        without_urls(stack, repo, &direct.stderr),
        "{what}: stderr"
    );
}

/// Clones `url` into a fresh work tree, running git in its parent directory so that every
/// clone names the same relative path (`work`) in its output.
fn clone_relative<'a>(
    stack: &'a Stack,
    url: &str,
    protocol: &str,
    token: Option<&str>,
) -> (WorkTree<'a>, GitOutput) {
    let work = WorkTree::empty_dir(stack);
    let parent = work.path.parent().unwrap().to_owned();
    let mut git = stack
        .git()
        .current_dir(parent)
        .config("protocol.version", protocol)
        .args(["clone", url, "work"]);
    if let Some(token) = token {
        git = git.bearer(token);
    }
    let out = git.output().unwrap();
    (work, out)
}

#[test]
fn ls_remote_prints_the_same_refs_as_the_upstream_in_protocols_v0_v1_and_v2() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = repo_with_many_branches(stack, "ls-remote");
    let token = agent_token(stack, "agent-ls-remote");

    for protocol in PROTOCOLS {
        let gateway = stack
            .git()
            .config("protocol.version", protocol)
            .args(["ls-remote", &stack.gateway_url(&repo)])
            .bearer(&token)
            .success()
            .unwrap();
        let direct = stack
            .git()
            .config("protocol.version", protocol)
            .args(["ls-remote", &stack.upstream_url(&repo)])
            .success()
            .unwrap();
        assert_same_output(
            stack,
            &repo,
            &format!("ls-remote v{protocol}"),
            &gateway,
            &direct,
        );
        assert_contains(&gateway.stdout, "\trefs/heads/b-059\n");
        assert_contains(&gateway.stdout, "\trefs/tags/v1.0^{}\n");
    }
}

#[test]
fn clone_through_the_gateway_prints_and_fetches_what_a_direct_clone_does_in_every_protocol() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = repo_with_many_branches(stack, "clone");
    let token = agent_token(stack, "agent-clone");

    for protocol in PROTOCOLS {
        let (through, gateway) =
            clone_relative(stack, &stack.gateway_url(&repo), protocol, Some(&token));
        let (straight, direct) = clone_relative(stack, &stack.upstream_url(&repo), protocol, None);
        let what = format!("clone v{protocol}");
        assert!(gateway.ok(), "{what}: {}", gateway.stderr);
        assert_same_output(stack, &repo, &what, &gateway, &direct);
        assert_eq!(through.refs(), straight.refs(), "{what}: refs");
        assert_contains(&through.refs(), " refs/remotes/origin/b-059\n");
        assert_contains(&through.refs(), " refs/tags/v1.0\n");
        through.git().args(["fsck", "--strict"]).success().unwrap();
    }
}

#[test]
fn fetch_through_the_gateway_gets_and_prints_what_a_direct_fetch_does_in_every_protocol() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = repo_with_many_branches(stack, "fetch");
    let token = agent_token(stack, "agent-fetch");
    let writer = WorkTree::clone_direct(stack, &stack.upstream_url(&repo));

    for protocol in PROTOCOLS {
        let (through, _) = clone_relative(stack, &stack.gateway_url(&repo), protocol, Some(&token));
        let (straight, _) = clone_relative(stack, &stack.upstream_url(&repo), protocol, None);

        // New history upstream: a forced update, a new branch and a new tag.
        writer.commit_file(&format!("v{protocol}.txt"), protocol.as_bytes());
        writer
            .git()
            .args([
                "tag",
                "-a",
                &format!("fetched-v{protocol}"),
                "-m",
                "fetch me",
            ])
            .success()
            .unwrap();
        writer
            .git()
            .args(["push", "--quiet", "--follow-tags", "origin"])
            .args([
                "+HEAD:refs/heads/b-001",
                &format!("HEAD:refs/heads/new-v{protocol}"),
            ])
            .success()
            .unwrap();

        let fetch = |work: &WorkTree, token: Option<&str>| {
            let mut git = work
                .git()
                .config("protocol.version", protocol)
                .args(["fetch", "--tags", "origin"]);
            if let Some(token) = token {
                git = git.bearer(token);
            }
            git.output().unwrap()
        };
        let gateway = fetch(&through, Some(&token));
        let direct = fetch(&straight, None);
        let what = format!("fetch v{protocol}");
        assert!(gateway.ok(), "{what}: {}", gateway.stderr);
        assert_same_output(stack, &repo, &what, &gateway, &direct);
        assert_contains(
            &gateway.stderr,
            &format!("* [new branch]      new-v{protocol}"),
        );
        assert_eq!(through.refs(), straight.refs(), "{what}: refs");
        assert_eq!(
            through.rev_parse("refs/remotes/origin/b-001"),
            Some(writer.head()),
            "{what}"
        );
    }
}

#[test]
fn the_git_protocol_header_reaches_the_upstream_as_git_sent_it() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let token = agent_token(stack, "agent-protocol");

    for (protocol, header) in [
        ("0", None),
        ("1", Some("version=1")),
        ("2", Some("version=2")),
    ] {
        let repo = new_repo(stack, &format!("protocol-v{protocol}"));
        let work = WorkTree::empty_dir(stack);
        stack
            .git()
            .config("protocol.version", protocol)
            .arg("clone")
            .arg(stack.gateway_url(&repo))
            .arg(&work.path)
            .bearer(&token)
            .success()
            .unwrap();
        let requests = requests_for(stack, &repo);
        assert!(requests.len() >= 2, "{requests:#?}");
        for request in &requests {
            assert!(via_gateway(request), "{request:#?}");
            assert_eq!(
                request.header("git-protocol"),
                header,
                "v{protocol}: {request:#?}"
            );
        }
    }
}

#[test]
fn gzip_encoded_upload_pack_requests_reach_the_upstream_compressed_and_are_answered() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let token = agent_token(stack, "agent-gzip");

    for protocol in ["0", "2"] {
        let repo = repo_with_many_branches(stack, &format!("gzip-v{protocol}"));
        let work = WorkTree::empty_dir(stack);
        let clone = stack
            .git()
            .config("protocol.version", protocol)
            .args(["clone", "-v"])
            .arg(stack.gateway_url(&repo))
            .arg(&work.path)
            .bearer(&token)
            .success()
            .unwrap();
        // git says so when it compresses a request body (remote-curl.c).
        assert_contains(&clone.stderr, "POST git-upload-pack (gzip ");

        let gzipped: Vec<_> = requests_for(stack, &repo)
            .into_iter()
            .filter(|r| via_gateway(r) && r.path.ends_with("/git-upload-pack"))
            .filter(|r| r.header("content-encoding") == Some("gzip"))
            .collect();
        assert!(!gzipped.is_empty(), "v{protocol}: no gzip request upstream");
        for request in &gzipped {
            assert_eq!(request.status, 200, "{request:#?}");
            assert_eq!(request.outcome, Outcome::Complete, "{request:#?}");
            assert!(request.request_bytes > 100, "{request:#?}");
        }
        assert_contains(&work.refs(), " refs/remotes/origin/b-059\n");
    }
}

#[test]
fn a_push_larger_than_the_post_buffer_sends_the_probe_then_a_chunked_body_and_lands() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "chunked");
    let token = agent_token(stack, "agent-chunked");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    write_random(&work.path.join("data.bin"), 3 * 1024 * 1024);
    work.git().args(["add", "data.bin"]).success().unwrap();
    work.git()
        .args(["commit", "--quiet", "-m", "Add data"])
        .success()
        .unwrap();
    let head = work.head();

    let out = work
        .git()
        .config("http.postBuffer", "65536")
        .args(["push", "-v", "origin", "HEAD:refs/heads/topic"])
        .bearer(&token)
        .success()
        .unwrap();
    assert_contains(&out.stderr, "POST git-receive-pack (chunked)");
    assert_contains(&out.stderr, "* [new branch]      HEAD -> topic");
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/topic"),
        Some(head.clone())
    );
    assert!(
        hook_lines(stack, &repo)
            .iter()
            .any(|line| line.ends_with(&format!(" {head} refs/heads/topic"))),
        "{:?}",
        hook_lines(stack, &repo)
    );

    let pushes = gateway_pushes(stack, &repo);
    assert_eq!(pushes.len(), 2, "the probe and the push: {pushes:#?}");
    let (probe, push) = (&pushes[0], &pushes[1]);
    assert_eq!(probe.request_bytes, 4, "{probe:#?}");
    assert_eq!(probe.header("content-length"), Some("4"), "{probe:#?}");
    assert_eq!(probe.status, 200, "{probe:#?}");
    assert_eq!(
        push.header("transfer-encoding"),
        Some("chunked"),
        "{push:#?}"
    );
    assert_eq!(push.header("content-length"), None, "{push:#?}");
    assert!(push.request_bytes > 3 * 1024 * 1024, "{push:#?}");
    assert_eq!(push.outcome, Outcome::Complete, "{push:#?}");
}

#[test]
fn an_empty_repository_clones_like_it_does_upstream_and_takes_its_first_branch() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo_with(stack, "empty", RepoOptions::empty());
    let token = agent_token(stack, "agent-empty");

    let mut clones = Vec::new();
    for protocol in PROTOCOLS {
        let (work, gateway) =
            clone_relative(stack, &stack.gateway_url(&repo), protocol, Some(&token));
        let (_, direct) = clone_relative(stack, &stack.upstream_url(&repo), protocol, None);
        let what = format!("empty clone v{protocol}");
        assert!(gateway.ok(), "{what}: {}", gateway.stderr);
        assert_same_output(stack, &repo, &what, &gateway, &direct);
        assert_contains(
            &gateway.stderr,
            "You appear to have cloned an empty repository.",
        );
        clones.push(work);
    }
    let work = clones.pop().unwrap();

    let head = work.commit_file("first.txt", b"the first commit\n");
    let out = work.push(&token, &["origin", "HEAD:refs/heads/first"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      HEAD -> first");
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/first"),
        Some(head.clone())
    );
    let zero = "0".repeat(40);
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{zero} {head} refs/heads/first")]
    );
}

#[test]
fn lightweight_and_annotated_tags_reach_the_upstream_as_they_were_made() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "tags");
    let token = agent_token(stack, "agent-tags");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("tagged.txt", b"tag me\n");
    work.git().args(["tag", "light"]).success().unwrap();
    work.git()
        .args(["tag", "-a", "annotated", "-m", "An annotated tag"])
        .success()
        .unwrap();
    let tag_object = work.rev_parse("refs/tags/annotated").unwrap();
    assert_ne!(tag_object, head);

    let out = work.push(&token, &["origin", "light", "annotated"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new tag]         light -> light");
    assert_contains(&out.stderr, "* [new tag]         annotated -> annotated");

    let kind = |name: &str| upstream_git(stack, &repo, &["cat-file", "-t", name]).stdout;
    assert_eq!(kind("refs/tags/light"), "commit\n");
    assert_eq!(kind("refs/tags/annotated"), "tag\n");
    let annotated = upstream_git(stack, &repo, &["rev-parse", "refs/tags/annotated"]);
    assert_eq!(annotated.trimmed(), tag_object);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/tags/light"),
        Some(head.clone())
    );
    assert_eq!(
        upstream_ref(stack, &repo, "refs/tags/annotated"),
        Some(head)
    );
}

#[test]
fn a_branch_deletion_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "delete");
    let token = agent_token(stack, "agent-delete");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("doomed.txt", b"short-lived\n");
    let created = work.push(&token, &["origin", "HEAD:refs/heads/doomed"]);
    assert!(created.ok(), "{}", created.stderr);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/doomed"),
        Some(head.clone())
    );

    let out = work.push(&token, &["origin", "--delete", "doomed"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "- [deleted]         doomed");
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/doomed"), None);
    assert_eq!(work.rev_parse("refs/remotes/origin/doomed"), None);
    let zero = "0".repeat(40);
    assert_eq!(
        hook_lines(stack, &repo).last(),
        Some(&format!("{head} {zero} refs/heads/doomed"))
    );
}

#[test]
fn several_refs_in_one_push_all_reach_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "several");
    let token = agent_token(stack, "agent-several");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let mut heads = Vec::new();
    for branch in ["one", "two", "three"] {
        work.git()
            .args(["checkout", "--quiet", "-b", branch, "origin/main"])
            .success()
            .unwrap();
        heads.push((
            branch,
            work.commit_file(&format!("{branch}.txt"), branch.as_bytes()),
        ));
    }

    let out = work.push(&token, &["origin", "one", "two", "three"]);
    assert!(out.ok(), "{}", out.stderr);
    let lines = hook_lines(stack, &repo);
    for (branch, head) in &heads {
        assert_contains(
            &out.stderr,
            &format!("* [new branch]      {branch} -> {branch}"),
        );
        assert_eq!(
            upstream_ref(stack, &repo, &format!("refs/heads/{branch}")).as_ref(),
            Some(head)
        );
        assert!(
            lines
                .iter()
                .any(|l| l.ends_with(&format!(" {head} refs/heads/{branch}"))),
            "{lines:?}"
        );
    }
    assert_eq!(
        gateway_pushes(stack, &repo).len(),
        1,
        "one request for three refs"
    );
}

#[test]
fn push_options_reach_the_upstream_hook() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "push-options");
    // githooks(5): receive-pack hands push options to the hooks as GIT_PUSH_OPTION_<n>.
    install_pre_receive(
        stack,
        &repo,
        "i=0\n\
         while [ \"$i\" -lt \"${GIT_PUSH_OPTION_COUNT:-0}\" ]; do\n\
         \teval \"printf '%s\\n' \\\"\\$GIT_PUSH_OPTION_$i\\\"\" >> ./push-options.log\n\
         \ti=$((i + 1))\n\
         done",
    );
    let token = agent_token(stack, "agent-push-options");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("options.txt", b"with options\n");

    let out = work.push(
        &token,
        &[
            "-o",
            "ci.skip",
            "-o",
            "reviewer=carol",
            "origin",
            "HEAD:refs/heads/topic",
        ],
    );
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      HEAD -> topic");
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/topic"), Some(head));
    let seen = std::fs::read_to_string(stack.upstream_repo(&repo).join("push-options.log"))
        .expect("the hook recorded the push options");
    assert_eq!(seen, "ci.skip\nreviewer=carol\n");
}

#[test]
fn a_sha256_repository_clones_and_takes_a_push() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo_with(stack, "sha256", RepoOptions::sha256());
    let token = agent_token(stack, "agent-sha256");
    let main = upstream_ref(stack, &repo, "refs/heads/main").unwrap();
    assert_eq!(main.len(), 64);

    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    assert_eq!(work.head(), main);
    let format = work
        .git()
        .args(["rev-parse", "--show-object-format"])
        .success()
        .unwrap();
    assert_eq!(format.trimmed(), "sha256");
    let head = work.commit_file("wide.txt", b"64 hex digits\n");

    let out = work.push(&token, &["origin", "HEAD:refs/heads/topic"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      HEAD -> topic");
    assert_eq!(head.len(), 64);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/topic"),
        Some(head.clone())
    );
    let zero = "0".repeat(64);
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{zero} {head} refs/heads/topic")]
    );
}

#[test]
fn a_push_whose_hook_outlasts_envoys_default_route_timeout_still_lands() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "slow-hook");
    install_pre_receive(stack, &repo, &format!("sleep {SLOW_HOOK_SECONDS}"));
    let token = agent_token(stack, "agent-slow-hook");
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let head = work.commit_file("slow.txt", b"worth the wait\n");

    let started = Instant::now();
    let out = work.push(&token, &["origin", "HEAD:refs/heads/topic"]);
    let took = started.elapsed();
    assert!(out.ok(), "after {took:?}: {}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      HEAD -> topic");
    assert!(
        took > ENVOY_DEFAULT_ROUTE_TIMEOUT,
        "the hook did not hold the push: {took:?}"
    );
    assert_eq!(upstream_ref(stack, &repo, "refs/heads/topic"), Some(head));
}

#[test]
fn requests_that_are_not_smart_http_pass_through_untouched() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "dumb");
    let token = agent_token(stack, "agent-dumb");
    let bearer = format!("Bearer {token}");

    for path in [
        "/".to_owned(),
        format!("/{repo}/HEAD"),
        format!("/{repo}/info/refs"),
        format!("/{repo}/objects/info/packs"),
        format!("/{repo}/no-such-file"),
        "/no-such-repo.git/info/refs?service=git-upload-pack".to_owned(),
    ] {
        let gateway = stack
            .http(
                "GET",
                &stack.gateway_url(&path),
                &[("authorization", &bearer)],
                Vec::new(),
            )
            .unwrap();
        let direct = stack
            .http(
                "GET",
                &stack.upstream_url_without_credential(&path),
                &[("authorization", stack.upstream_authorization())],
                Vec::new(),
            )
            .unwrap();
        assert_eq!(gateway.status, direct.status, "{path}");
        assert_eq!(
            gateway.header("content-type"),
            direct.header("content-type"),
            "{path}"
        );
        assert_eq!(gateway.body, direct.body, "{path}");
    }

    // A whole clone over the dumb protocol works through the gateway as it does directly.
    let (through, gateway) = {
        let work = WorkTree::empty_dir(stack);
        let out = stack
            .git()
            .current_dir(work.path.parent().unwrap())
            .env("GIT_SMART_HTTP", "0")
            .args(["clone", &stack.gateway_url(&repo), "work"])
            .bearer(&token)
            .output()
            .unwrap();
        (work, out)
    };
    let direct = {
        let work = WorkTree::empty_dir(stack);
        stack
            .git()
            .current_dir(work.path.parent().unwrap())
            .env("GIT_SMART_HTTP", "0")
            .args(["clone", &stack.upstream_url(&repo), "work"])
            .output()
            .unwrap()
    };
    assert!(gateway.ok(), "{}", gateway.stderr);
    assert_same_output(stack, &repo, "dumb clone", &gateway, &direct);
    assert_eq!(
        through.head(),
        upstream_ref(stack, &repo, "refs/heads/main").unwrap()
    );
    let dumb = requests_for(stack, &repo);
    assert!(
        dumb.iter()
            .any(|r| via_gateway(r) && r.path.ends_with("/info/refs") && r.query.is_empty()),
        "no dumb info/refs through the gateway: {dumb:#?}"
    );
}
