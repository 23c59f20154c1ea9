//! Who may use the gateway: a valid token from the dev issuer, as a Bearer header or as the
//! password git's credential helper gives after the gateway's Basic challenge. A missing,
//! expired, forged or tampered token is turned away at `info/refs` with the gateway's text, and
//! such a request never reaches the upstream. The upstream never sees the agent's token: it
//! wants its own credential, which Envoy injects after the gate, and refuses anyone without it.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gitgate_integration::{Binaries, GitOutput, Stack, UpstreamRequest};
use support::{
    MAIN, PERSON, Reviewer, TOKEN_NEEDED, WorkTree, accepted_clock_skew_seconds, agent_token,
    assert_contains, assert_refused_push, new_repo, requests_for, ticket_of, upstream_ref,
};

/// The user name git sends with the token as its Basic password; the gateway ignores it.
const BASIC_USER: &str = "x-token";

/// `git ls-remote <url>` offering `password` through the credential helper.
fn ls_remote_with_password(stack: &Stack, url: &str, password: &str) -> GitOutput {
    stack
        .git()
        .args(["ls-remote", url])
        .credential(BASIC_USER, password)
        .output()
        .unwrap()
}

/// Asserts git was turned away at the gateway with its 401 text, and exited 128.
fn assert_turned_away_with_the_text(out: &GitOutput) {
    assert_eq!(out.status.code(), Some(128), "{}", out.stderr);
    // git prints a text/plain error body of info/refs as `remote:` lines (remote-curl.c).
    assert_contains(&out.stderr, &format!("remote: {TOKEN_NEEDED}"));
    assert_contains(&out.stderr, "fatal: Authentication failed for ");
    assert!(out.stdout.is_empty(), "refs were listed: {}", out.stdout);
}

/// Asserts that the upstream has no request for `repo` at all.
fn assert_never_reached_upstream(stack: &Stack, repo: &str) {
    let seen: Vec<UpstreamRequest> = requests_for(stack, repo);
    assert!(seen.is_empty(), "reached the upstream: {seen:#?}");
}

/// A token for `subject` signed by a dev issuer of its own: well formed, right issuer name and
/// audience, wrong key.
fn forged_token(stack: &Stack, subject: &str) -> String {
    let dir = stack.temp_dir().unwrap();
    let gitgate = Binaries::locate().gitgate;
    let run = |args: &[&str]| {
        let out = Command::new(&gitgate)
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    run(&["dev", "init"]);
    run(&["dev", "token", subject, "--agent", "--for", PERSON])
}

#[test]
fn without_a_token_git_is_challenged_and_never_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "no-token");
    let url = stack.gateway_url(&repo);

    // Nothing to offer: the Basic challenge makes git ask for a user name, which it cannot.
    let bare = stack.git().args(["ls-remote", &url]).output().unwrap();
    assert_eq!(bare.status.code(), Some(128), "{}", bare.stderr);
    assert_contains(
        &bare.stderr,
        "could not read Username for 'http://127.0.0.1:",
    );
    assert!(bare.stdout.is_empty());

    // A credential helper with an empty password: git sends it, and shows the gateway's text.
    assert_turned_away_with_the_text(&ls_remote_with_password(stack, &url, ""));
    // A password that is not a token at all.
    assert_turned_away_with_the_text(&ls_remote_with_password(stack, &url, "hunter2"));

    // The challenge itself, as an HTTP client sees it.
    let challenge = stack
        .http(
            "GET",
            &format!("{url}/info/refs?service=git-receive-pack"),
            &[],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(challenge.status, 401);
    assert_eq!(
        challenge.header("www-authenticate"),
        Some("Basic realm=\"gitgate\"")
    );
    assert_contains(&challenge.text(), TOKEN_NEEDED);

    let clone = WorkTree::empty_dir(stack);
    let out = stack
        .git()
        .arg("clone")
        .arg(&url)
        .arg(&clone.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128), "{}", out.stderr);
    assert_never_reached_upstream(stack, &repo);
}

#[test]
fn a_forged_or_tampered_token_is_refused_at_info_refs_and_never_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "bad-token");
    let url = stack.gateway_url(&repo);

    let forged = forged_token(stack, "agent-forged");
    let genuine = agent_token(stack, "agent-tampered");
    // Flip one character of the signature.
    let mut tampered = genuine.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();

    for bad in [&forged, &tampered] {
        assert_turned_away_with_the_text(&ls_remote_with_password(stack, &url, bad));
        let bearer = stack
            .git()
            .args(["ls-remote", &url])
            .bearer(bad)
            .output()
            .unwrap();
        assert_eq!(bearer.status.code(), Some(128), "{}", bearer.stderr);
        assert!(bearer.stdout.is_empty());
    }
    assert_never_reached_upstream(stack, &repo);

    // The genuine token it was made from works.
    let listed = stack
        .git()
        .args(["ls-remote", &url])
        .bearer(&genuine)
        .success()
        .unwrap();
    assert_contains(&listed.stdout, "\trefs/heads/main");
}

#[test]
fn an_expired_token_is_refused_at_info_refs_and_never_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "expired");
    let url = stack.gateway_url(&repo);
    let token = stack
        .token(
            "bob",
            &gitgate_integration::TokenOptions::person().ttl("1s"),
        )
        .unwrap();
    let minted = Instant::now();

    // jwt_authn accepts a token until `exp` plus the provider's clock skew.
    let skew = accepted_clock_skew_seconds();
    let expired_after = Duration::from_secs(1 + skew + 1);
    eprintln!("waiting {expired_after:?} for the token to expire (clock skew {skew} s)");
    std::thread::sleep(expired_after.saturating_sub(minted.elapsed()));

    assert_turned_away_with_the_text(&ls_remote_with_password(stack, &url, &token));
    let bearer = stack
        .git()
        .args(["ls-remote", &url])
        .bearer(&token)
        .output()
        .unwrap();
    assert_eq!(bearer.status.code(), Some(128), "{}", bearer.stderr);
    assert!(bearer.stdout.is_empty());
    let push_refs = stack
        .http(
            "GET",
            &format!("{url}/info/refs?service=git-receive-pack"),
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(push_refs.status, 401, "{}", push_refs.text());
    assert_never_reached_upstream(stack, &repo);
}

#[test]
fn the_token_works_as_a_bearer_header_and_as_a_basic_password_for_clone_and_push() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "both-ways");
    let url = stack.gateway_url(&repo);
    let token = agent_token(stack, "agent-both-ways");

    // Bearer, sent on every request.
    let bearer = WorkTree::clone(stack, &url, &token);
    bearer
        .git()
        .args(["checkout", "--quiet", "-b", "by-bearer"])
        .success()
        .unwrap();
    let by_bearer = bearer.commit_file("bearer.txt", b"bearer\n");
    let out = bearer.push(&token, &["origin", "by-bearer"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/by-bearer"),
        Some(by_bearer)
    );

    // Basic, answered by the credential helper after the 401 challenge.
    let basic = WorkTree::empty_dir(stack);
    stack
        .git()
        .arg("clone")
        .arg(&url)
        .arg(&basic.path)
        .credential(BASIC_USER, &token)
        .success()
        .unwrap();
    basic
        .git()
        .args(["checkout", "--quiet", "-b", "by-basic"])
        .success()
        .unwrap();
    let by_basic = basic.commit_file("basic.txt", b"basic\n");
    let out = basic
        .git()
        .args(["push", "origin", "by-basic"])
        .credential(BASIC_USER, &token)
        .output()
        .unwrap();
    assert!(out.ok(), "{}", out.stderr);
    assert_contains(&out.stderr, "* [new branch]      by-basic -> by-basic");
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/by-basic"),
        Some(by_basic)
    );
}

#[test]
fn a_push_made_with_the_basic_password_is_held_under_the_tokens_identity() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "basic-held");
    let url = stack.gateway_url(&repo);
    let token = agent_token(stack, "agent-basic-held");
    let work = WorkTree::empty_dir(stack);
    stack
        .git()
        .arg("clone")
        .arg(&url)
        .arg(&work.path)
        .credential(BASIC_USER, &token)
        .success()
        .unwrap();
    let old = work.head();
    work.commit_file("held.txt", b"held under the token's subject\n");

    let out = work
        .git()
        .args(["push", "origin", "main"])
        .credential(BASIC_USER, &token)
        .output()
        .unwrap();
    assert_refused_push(&out);
    assert_contains(
        &out.stderr,
        " ! [remote rejected] main -> main (gitgate:hold:protected-ref ",
    );
    let page = Reviewer::sign_in(stack, "bob")
        .ticket_page(&ticket_of(&out.stderr))
        .text();
    assert_contains(
        &page,
        "<dd>agent-basic-held <span class=\"tag\">agent</span></dd>",
    );
    assert_contains(&page, &format!("<dt>Acting for</dt><dd>{PERSON}</dd>"));
    assert!(
        !page.contains(BASIC_USER),
        "the Basic user name is not an identity:\n{page}"
    );
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old));
}

#[test]
fn the_upstream_never_sees_the_agents_token() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "token-stays");
    let url = stack.gateway_url(&repo);
    let token = agent_token(stack, "agent-token-stays");

    let bearer = WorkTree::clone(stack, &url, &token);
    bearer.commit_file("a.txt", b"a\n");
    assert!(bearer.push(&token, &["origin", "HEAD:refs/heads/a"]).ok());
    let basic = WorkTree::empty_dir(stack);
    stack
        .git()
        .arg("clone")
        .arg(&url)
        .arg(&basic.path)
        .credential(BASIC_USER, &token)
        .success()
        .unwrap();
    basic.commit_file("b.txt", b"b\n");
    let pushed = basic
        .git()
        .args(["push", "origin", "HEAD:refs/heads/b"])
        .credential(BASIC_USER, &token)
        .output()
        .unwrap();
    assert!(pushed.ok(), "{}", pushed.stderr);

    let requests = requests_for(stack, &repo);
    assert!(
        requests.iter().filter(|r| r.is_receive_pack()).count() >= 2,
        "{requests:#?}"
    );
    let basic_value = format!("Basic {}", STANDARD.encode(format!("{BASIC_USER}:{token}")));
    for request in &requests {
        // One Authorization value, the Git server's own, which the gateway injected.
        assert_eq!(request.authorization.sha256.len(), 1, "{request:#?}");
        assert!(
            request
                .authorization
                .had_value(stack.upstream_authorization()),
            "{request:#?}"
        );
        assert!(!request.authorization.had_value(&format!("Bearer {token}")));
        assert!(!request.authorization.had_value(&basic_value));
        assert!(!request.mentions(&token), "{request:#?}");
        assert!(!request.mentions(&basic_value[6..]), "{request:#?}");
    }
    // Envoy's injector counted what it added (it runs after the gate, which never sees it).
    let stats = stack.envoy_stats().unwrap();
    let injected: u64 = stats
        .iter()
        .filter(|(name, _)| name.contains("credential_injector") && name.ends_with(".injected"))
        .map(|(_, count)| count)
        .sum();
    let names: Vec<_> = stats.keys().filter(|n| n.contains("credential")).collect();
    assert!(injected >= requests.len() as u64, "{injected}: {names:?}");
}

#[test]
fn the_upstream_refuses_whoever_comes_without_its_credential() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "direct");
    let refs = format!("{repo}/info/refs?service=git-upload-pack");
    let token = agent_token(stack, "agent-direct");
    let bearer = format!("Bearer {token}");

    // Straight to the Git server: nothing, the agent's token, or a wrong password.
    let wrong = format!("Basic {}", STANDARD.encode("gitgate-gateway:guess"));
    for authorization in [None, Some(bearer.as_str()), Some(wrong.as_str())] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| vec![("authorization", value)])
            .unwrap_or_default();
        let direct = stack
            .http(
                "GET",
                &stack.upstream_url_without_credential(&refs),
                &headers,
                Vec::new(),
            )
            .unwrap();
        assert_eq!(direct.status, 401, "{authorization:?}: {}", direct.text());
        assert_eq!(
            direct.header("www-authenticate"),
            Some("Basic realm=\"gitgate-upstream\"")
        );
    }
    let out = stack
        .git()
        .args(["ls-remote", &stack.upstream_url_without_credential(&repo)])
        .bearer(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // Every refusal reached the upstream (and its log), none got further.
    let refused = requests_for(stack, &repo);
    assert_eq!(refused.len(), 4, "{refused:#?}");
    assert!(refused.iter().all(|r| r.status == 401), "{refused:#?}");

    // With the credential the same request is served, and through the gateway too.
    let served = stack
        .http(
            "GET",
            &stack.upstream_url_without_credential(&refs),
            &[("authorization", stack.upstream_authorization())],
            Vec::new(),
        )
        .unwrap();
    assert_eq!(served.status, 200, "{}", served.text());
    let listed = stack
        .git()
        .args(["ls-remote", &stack.gateway_url(&repo)])
        .bearer(&token)
        .success()
        .unwrap();
    assert_contains(&listed.stdout, "\trefs/heads/main");
}

#[test]
fn a_credential_sent_beside_a_valid_token_never_reaches_the_upstream() {
    let stack = Stack::shared();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "two-headers");
    let token = agent_token(stack, "agent-two-headers");
    let refs = format!(
        "{}/info/refs?service=git-upload-pack",
        stack.gateway_url(&repo)
    );
    let bearer = format!("Bearer {token}");
    let guess = format!("Basic {}", STANDARD.encode("gitgate-gateway:guess"));

    // A client that sends a credential of its own next to its token: the gateway either
    // refuses the request (nothing reaches the Git server) or serves it, and then the Git
    // server sees its own credential alone (the injector overwrites every value).
    let mut served = 0;
    for pair in [[&bearer, &guess], [&guess, &bearer]] {
        let answered = stack
            .http(
                "GET",
                &refs,
                &[("authorization", pair[0]), ("authorization", pair[1])],
                Vec::new(),
            )
            .unwrap();
        assert!([200, 401].contains(&answered.status), "{}", answered.text());
        served += usize::from(answered.status == 200);
        let requests = requests_for(stack, &repo);
        assert_eq!(requests.len(), served, "{requests:#?}");
        for request in &requests {
            let seen = &request.authorization;
            assert_eq!(seen.sha256.len(), 1, "{seen:#?}");
            assert!(seen.had_value(stack.upstream_authorization()));
            assert!(!seen.had_value(&bearer) && !seen.had_value(&guess));
        }
    }
}
