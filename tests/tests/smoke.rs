//! Smoke test of the whole stack: the real git client reads a repository through Envoy, the
//! gitgate filter and the approval service with a valid token, and is turned away without one.

use gitgate_integration::{Stack, TokenOptions};

/// The text of the gateway's 401 body (see `local_reply_config` in `envoy/gitgate-local.yaml`).
const TOKEN_NEEDED: &str = "a token is needed";

#[test]
fn git_reads_through_the_gateway_with_a_token_and_is_challenged_without_one() {
    let stack = Stack::start().unwrap();
    let url = stack.gateway_url("demo.git");
    let main = stack
        .upstream_ref("demo.git", "refs/heads/main")
        .unwrap()
        .unwrap();
    let token = stack
        .token("agent-smoke", &TokenOptions::agent_for("alice"))
        .unwrap();

    // A token sent as a Bearer header.
    let listed = stack
        .git()
        .args(["ls-remote", &url])
        .bearer(&token)
        .success()
        .unwrap();
    assert!(
        listed.stdout.contains(&format!("{main}\trefs/heads/main")),
        "{}",
        listed.stdout
    );

    // The same token as the Basic password from a credential helper, after the 401 challenge.
    let scratch = stack.temp_dir().unwrap();
    let clone = scratch.path().join("demo");
    stack
        .git()
        .arg("clone")
        .arg(&url)
        .arg(&clone)
        .credential("agent-smoke", &token)
        .success()
        .unwrap();
    let head = stack
        .git()
        .current_dir(&clone)
        .args(["rev-parse", "HEAD"])
        .success()
        .unwrap();
    assert_eq!(head.trimmed(), main);

    // The token stayed at the gateway; the upstream saw only its own credential, injected.
    let requests = stack.upstream_requests().unwrap();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.authorization.sha256.len(), 1, "{request:?}");
        assert!(
            request
                .authorization
                .had_value(stack.upstream_authorization()),
            "{request:?}"
        );
        assert!(!request.mentions(&token), "{request:?}");
    }

    // Without a token: a Basic challenge with a text body saying what is needed.
    let refs = format!("{url}/info/refs?service=git-upload-pack");
    let challenge = stack.http("GET", &refs, &[], Vec::new()).unwrap();
    assert_eq!(challenge.status, 401);
    assert_eq!(
        challenge.header("www-authenticate"),
        Some("Basic realm=\"gitgate\"")
    );
    assert!(
        challenge
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );
    assert!(
        challenge.text().contains(TOKEN_NEEDED),
        "{}",
        challenge.text()
    );

    // git with nothing to offer fails; git offering a password that is no token shows the text.
    stack.git().args(["ls-remote", &url]).failure().unwrap();
    let refused = stack
        .git()
        .args(["ls-remote", &url])
        .credential("agent-smoke", "not-a-token")
        .failure();
    let refused = refused.unwrap();
    assert!(refused.stderr.contains(TOKEN_NEEDED), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Authentication failed"),
        "{}",
        refused.stderr
    );
}
