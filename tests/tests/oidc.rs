//! Tokens from a real OpenID provider (`oidc-provider` under Node, started by the harness):
//! agents get client-credentials JWTs that say whom they act for in the RFC 8693 shape, and
//! jwt_authn checks them against the provider's key set, fetched over HTTP (`remote_jwks`).
//!
//! The gate reads the actor (`act.sub`) as the subject and the token's `sub` as the person it
//! acts for; the approval service records that pair for the verdict, and neither the agent nor
//! the person may approve the agent's held change. The upstream sees only its own credential,
//! injected by Envoy after the gate, never the agent's token; a request without a valid token
//! never reaches it. Keys rotated at the provider are taken once jwt_authn's cached key set has
//! expired (jwt_authn does not refetch on an unknown `kid`, envoyproxy/envoy#39643).

mod support;

use std::time::{Duration, Instant};

use gitgate_integration::oidc::{self, AgentClient, AgentCredentials, OidcOptions, OidcProvider};
use gitgate_integration::{IdentityProvider, Stack, StackOptions, TokenOptions};
use support::{
    MAIN, Reviewer, WorkTree, assert_contains, assert_refused_push, hook_lines, new_repo,
    requests_for, ticket_of, upstream_ref,
};

/// The person the agents of these tests act for.
const PERSON: &str = "carol";

fn stack() -> &'static Stack {
    Stack::shared_with(StackOptions::with_oidc)
}

fn provider(stack: &Stack) -> &OidcProvider {
    stack.oidc().expect("the stack runs an OpenID provider")
}

/// Registers `agent` acting for [`PERSON`] in session `session`, and returns its credentials.
fn agent(stack: &Stack, agent: &str, session: &str) -> AgentCredentials {
    provider(stack)
        .register_agent(
            &AgentClient::acting_for(agent, PERSON)
                .session(session)
                .group("agents"),
        )
        .expect("register an agent client")
}

fn token(stack: &Stack, agent: &AgentCredentials) -> String {
    provider(stack)
        .agent_token(agent)
        .expect("a client-credentials token")
}

/// Whether `git ls-remote` of `repo` through the gateway works with `token`.
fn lists_refs(stack: &Stack, repo: &str, token: &str) -> bool {
    stack
        .git()
        .args(["ls-remote", &stack.gateway_url(repo)])
        .bearer(token)
        .output()
        .expect("run git ls-remote")
        .ok()
}

/// The status of `info/refs` through the gateway with `token` as a Bearer header.
fn info_refs_status(stack: &Stack, repo: &str, token: &str) -> u16 {
    let url = format!(
        "{}/info/refs?service=git-receive-pack",
        stack.gateway_url(repo)
    );
    stack
        .http(
            "GET",
            &url,
            &[("authorization", &format!("Bearer {token}"))],
            Vec::new(),
        )
        .expect("GET info/refs")
        .status
}

#[test]
fn the_provider_issues_agents_rfc_8693_tokens_for_the_gateway() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let creds = agent(stack, "agent-claims", "run-claims");
    let token = token(stack, &creds);
    let claims = oidc::unverified_claims(&token).unwrap();

    assert_eq!(claims["iss"], provider(stack).issuer());
    assert_eq!(claims["aud"], oidc::AUDIENCE);
    assert_eq!(claims["sub"], PERSON);
    assert_eq!(claims["act"], serde_json::json!({ "sub": "agent-claims" }));
    assert_eq!(claims["client_id"], "agent-claims");
    assert_eq!(claims["groups"], serde_json::json!(["agents"]));
    assert_eq!(claims["sid"], "run-claims");
    assert!(
        claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()),
        "{claims}"
    );
    // Each token is a token of its own, in the same session.
    let again = oidc::unverified_claims(&self::token(stack, &creds)).unwrap();
    assert_ne!(again["jti"], claims["jti"]);
    assert_eq!(again["sid"], "run-claims");
}

#[test]
fn an_agent_acting_for_a_person_pushes_and_the_upstream_sees_only_its_own_credential() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "oidc-push");
    let token = token(stack, &agent(stack, "agent-oidc-push", "run-push"));

    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    work.git()
        .args(["checkout", "--quiet", "-b", "agent/fix"])
        .success()
        .unwrap();
    let pushed = work.commit_file("fix.txt", b"from an agent with a provider token\n");
    let out = work.push(&token, &["origin", "agent/fix"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(
        upstream_ref(stack, &repo, "refs/heads/agent/fix"),
        Some(pushed)
    );

    let requests = requests_for(stack, &repo);
    assert!(
        requests.iter().any(|r| r.is_receive_pack()),
        "{requests:#?}"
    );
    for request in &requests {
        assert_eq!(request.status, 200, "{request:#?}");
        assert_eq!(request.authorization.sha256.len(), 1, "{request:#?}");
        assert!(
            request
                .authorization
                .had_value(stack.upstream_authorization()),
            "{request:#?}"
        );
        assert!(!request.authorization.had_value(&format!("Bearer {token}")));
        assert!(!request.mentions(&token), "{request:#?}");
    }
}

#[test]
fn a_held_push_is_recorded_for_the_agent_and_the_person_and_neither_may_approve_it() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "oidc-held");
    let agent_id = "agent-oidc-held";
    let token = token(stack, &agent(stack, agent_id, "run-held"));
    let work = WorkTree::clone(stack, &stack.gateway_url(&repo), &token);
    let old = work.head();
    let new = work.commit_file("held.txt", b"needs a review\n");

    let out = work.push(&token, &["origin", "main"]);
    assert_refused_push(&out);
    assert_contains(&out.stderr, "(gitgate:hold:protected-ref ");
    let ticket = ticket_of(&out.stderr);

    // What the service recorded: the agent as the subject, acting for the person.
    let bob = Reviewer::sign_in(stack, "bob");
    let page = bob.ticket_page(&ticket).text();
    assert_contains(
        &page,
        &format!("<dd>{agent_id} <span class=\"tag\">agent</span></dd>"),
    );
    assert_contains(&page, &format!("<dt>Acting for</dt><dd>{PERSON}</dd>"));

    // Separation of duties: neither the person nor the agent may approve it.
    for who in [PERSON, agent_id] {
        let reviewer = Reviewer::sign_in_as(stack, who, &TokenOptions::reviewer());
        let refused = reviewer.approve(&ticket);
        assert_eq!(refused.status, 403, "{who}: {}", refused.text());
        assert_contains(&refused.text(), "Separation of duties");
        assert_eq!(reviewer.ticket_status(&ticket), "pending", "{who}");
    }
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(old.clone()));

    // Another reviewer may, and the same push then goes through.
    assert_eq!(bob.approve(&ticket).status, 303);
    let out = work.push(&token, &["origin", "main"]);
    assert!(out.ok(), "{}", out.stderr);
    assert_eq!(upstream_ref(stack, &repo, MAIN), Some(new.clone()));
    assert_eq!(
        hook_lines(stack, &repo),
        [format!("{old} {new} refs/heads/main")]
    );
}

#[test]
fn without_a_valid_provider_token_nothing_reaches_the_upstream() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let repo = new_repo(stack, "oidc-refused");
    let creds = agent(stack, "agent-oidc-refused", "run-refused");
    let genuine = token(stack, &creds);
    let unpublished = provider(stack).unpublished_key_token(&creds).unwrap();
    let mut tampered = genuine.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    // A well-formed token of another issuer (the dev issuer, which this stack does not trust).
    let other_issuer = stack
        .token("agent-dev", &TokenOptions::agent_for(PERSON))
        .unwrap();

    for (what, bad) in [
        ("a key the provider never published", &unpublished),
        ("a tampered signature", &tampered),
        ("another issuer", &other_issuer),
        ("no token at all", &String::new()),
    ] {
        assert_eq!(info_refs_status(stack, &repo, bad), 401, "{what}");
        assert!(!lists_refs(stack, &repo, bad), "{what}");
    }
    let seen = requests_for(stack, &repo);
    assert!(seen.is_empty(), "reached the upstream: {seen:#?}");

    assert!(lists_refs(stack, &repo, &genuine));
}

#[test]
fn a_key_rotated_at_the_provider_is_taken_once_the_cached_key_set_expires() {
    // A stack of its own: retiring keys would refuse the other tests' tokens. Its key set is
    // cached for 5 s, long enough to see a fresh cache refuse the new key.
    let cache = Duration::from_secs(5);
    let stack = &Stack::start_with(StackOptions {
        identity_provider: IdentityProvider::Oidc(OidcOptions {
            jwks_cache_duration: cache,
            ..OidcOptions::default()
        }),
        ..StackOptions::default()
    })
    .unwrap();
    let provider = provider(stack);
    let repo = new_repo(stack, "oidc-rotation");
    let creds = agent(stack, "agent-oidc-rotation", "run-rotation");
    let before = token(stack, &creds);
    // This request makes jwt_authn fetch the key set (nothing is cached yet).
    let fetched = Instant::now();
    assert_eq!(info_refs_status(stack, &repo, &before), 200);

    let rotated = provider.rotate_keys().unwrap();
    let after = token(stack, &creds);
    assert_eq!(oidc::unverified_kid(&after).unwrap(), rotated.kid);
    assert_ne!(oidc::unverified_kid(&before).unwrap(), rotated.kid);

    // While the cached set is fresh, jwt_authn refuses a kid it does not know: it does not
    // fetch the set again for it (envoyproxy/envoy#39643).
    let first = info_refs_status(stack, &repo, &after);
    if fetched.elapsed() < cache {
        assert_eq!(first, 401, "a new key was taken from a fresh cache");
    }
    // Once the set has expired, the next request fetches it, and the new key is taken.
    let deadline = fetched + cache + Duration::from_secs(20);
    while info_refs_status(stack, &repo, &after) != 200 {
        assert!(
            Instant::now() < deadline,
            "a token of the new key was still refused {:?} after the key set was fetched",
            fetched.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "new key: first answer {first}, accepted {:?} after the key set was fetched",
        fetched.elapsed()
    );
    assert!(lists_refs(stack, &repo, &after));
    // The old key is still published, so its tokens stay good until they expire.
    assert!(lists_refs(stack, &repo, &before));

    // Once the provider stops publishing it, its tokens are refused (after the cache expires).
    provider.retire_old_keys().unwrap();
    let retired = Instant::now();
    while info_refs_status(stack, &repo, &before) != 401 {
        assert!(
            retired.elapsed() < cache + Duration::from_secs(20),
            "a retired key's token was still accepted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "retired key refused {:?} after the retirement",
        retired.elapsed()
    );
    assert!(lists_refs(stack, &repo, &after));
    let unpublished = provider.unpublished_key_token(&creds).unwrap();
    assert_eq!(info_refs_status(stack, &repo, &unpublished), 401);
}

#[test]
fn a_reviewer_signs_in_at_the_provider_with_the_code_flow_and_pkce() {
    let stack = stack();
    let _logs = stack.logs_on_failure();
    let provider = provider(stack);
    let redirect = stack.service_url(oidc::REVIEWER_CALLBACK_PATH);
    let pkce = oidc::Pkce::new().unwrap();

    let authorize = provider.reviewer_authorize_url(&redirect, &pkce, "state-bob");
    let callback = provider.follow_login(&authorize, "bob").unwrap();
    assert!(callback.starts_with(&redirect), "{callback}");
    assert_eq!(
        oidc::query_param(&callback, "state").as_deref(),
        Some("state-bob")
    );
    let code = oidc::query_param(&callback, "code").expect("a code in the callback");

    let tokens = provider
        .reviewer_tokens(&code, &pkce.verifier, &redirect)
        .unwrap();
    let id = oidc::unverified_claims(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id["iss"], provider.issuer());
    assert_eq!(id["aud"], oidc::REVIEWER_CLIENT_ID);
    assert_eq!(id["sub"], "bob");
    assert_eq!(id["nonce"], "state-bob");
    assert_eq!(id["roles"], serde_json::json!(["reviewer"]));
    assert_eq!(id["groups"], serde_json::json!(["reviewers"]));

    // The code is good once, and only with its verifier.
    assert!(
        provider
            .reviewer_tokens(&code, &pkce.verifier, &redirect)
            .is_err()
    );
    let again = provider
        .follow_login(
            &provider.reviewer_authorize_url(&redirect, &pkce, "s2"),
            "bob",
        )
        .unwrap();
    let other = oidc::Pkce::new().unwrap();
    let code = oidc::query_param(&again, "code").unwrap();
    assert!(
        provider
            .reviewer_tokens(&code, &other.verifier, &redirect)
            .is_err()
    );
}
