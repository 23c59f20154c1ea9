//! A real OpenID provider for the tests: the npm package `oidc-provider`, run by Node from
//! `integration/node/oidc-provider.mjs` on a free port.
//!
//! Agents get JWT access tokens for the gateway with the client-credentials grant: the token's
//! `sub` is the person the agent acts for and `act.sub` the agent (RFC 8693 section 4.1), with
//! `groups`, a session id `sid` and `jti`. Reviewers sign in with the authorization code flow
//! and PKCE as client [`REVIEWER_CLIENT_ID`]; the provider's login step asks for no password and
//! signs in the request's `login_hint`, or the name given as `?login=<name>` on the interaction
//! page (`GET /interaction/<uid>?login=bob`, for a test that follows the redirects itself), or
//! the name typed into that page's one-field form (field `login`, for a browser), then grants
//! the scopes `openid profile groups` without a consent page. The ID token carries `name`,
//! `groups` and `roles` of the [`OidcUser`].
//!
//! Node is `node` on the PATH, or `GITGATE_NODE`; the npm package comes from
//! `integration/node/node_modules` (`cargo xtask test` runs `npm ci` there when it is missing or
//! older than the lock file). Node 20 makes `oidc-provider` print an "unsupported runtime"
//! warning, which is harmless here.
//!
//! ```no_run
//! use gitgate_integration::oidc::{AgentClient, OidcOptions, OidcProvider};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let provider = OidcProvider::start(dir.path(), &OidcOptions::default(), "http://127.0.0.1:1")
//!     .unwrap();
//! let agent = provider.register_agent(&AgentClient::acting_for("agent-7", "alice")).unwrap();
//! let token = provider.agent_token(&agent).unwrap();
//! provider.rotate_keys().unwrap();
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};
use crate::http;
use crate::paths::workspace_root;
use crate::process::{self, ManagedProcess};

/// The provider script, relative to the workspace root.
pub const SCRIPT: &str = "integration/node/oidc-provider.mjs";

/// The directory of the npm test peers (`npm ci` there installs them).
pub const NODE_DIR: &str = "integration/node";

/// The audience of agents' tokens: the gateway, as in the shipped jwt_authn configuration.
pub const AUDIENCE: &str = "gitgate";

/// The resource indicator (RFC 8707) of the gateway at the provider.
pub const RESOURCE: &str = "urn:gitgate:gateway";

/// The reviewer pages' client (authorization code flow with PKCE).
pub const REVIEWER_CLIENT_ID: &str = "gitgate-reviewer";

/// The scope agents ask for.
const AGENT_SCOPE: &str = "git";

/// Time the provider gets to start listening; Node loads the package first.
const STARTUP: Duration = Duration::from_secs(60);

/// How to start the provider.
#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// How long jwt_authn keeps the provider's key set before fetching it again
    /// (`remote_jwks.cache_duration`). Short in tests, so a rotation is seen quickly.
    pub jwks_cache_duration: Duration,
    /// Lifetime of the tokens the provider issues.
    pub token_ttl: Duration,
    /// Users who can sign in with groups or roles; any other name signs in too, with none.
    pub users: Vec<OidcUser>,
    /// The reviewer client's redirect URIs, as paths below the approval service's URL.
    pub reviewer_redirect_paths: Vec<String>,
}

impl Default for OidcOptions {
    fn default() -> Self {
        OidcOptions {
            jwks_cache_duration: Duration::from_secs(2),
            token_ttl: Duration::from_secs(600),
            // The reviewers of the tests, the people agents act for among them: being a
            // reviewer does not let them approve their own agents' changes.
            users: ["bob", "alice", "carol"]
                .into_iter()
                .map(OidcUser::reviewer)
                .collect(),
            reviewer_redirect_paths: vec![REVIEWER_CALLBACK_PATH.into()],
        }
    }
}

/// The approval service's sign-in callback (its `oidc::CALLBACK_PATH`).
pub const REVIEWER_CALLBACK_PATH: &str = "/login/oidc/callback";

/// A user of the provider and the claims of their ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcUser {
    /// The login name, which is also `sub` and `name`.
    pub name: String,
    /// The `groups` claim.
    pub groups: Vec<String>,
    /// The `roles` claim.
    pub roles: Vec<String>,
}

impl OidcUser {
    /// A reviewer: group `reviewers`, role `reviewer`.
    pub fn reviewer(name: &str) -> Self {
        OidcUser {
            name: name.to_owned(),
            groups: vec!["reviewers".into()],
            roles: vec!["reviewer".into()],
        }
    }
}

/// An agent to register at the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentClient {
    /// The client id, which becomes `act.sub` (or `sub` when it acts for nobody).
    pub client_id: String,
    /// The person it acts for: the token's `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// Its `groups` claim.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Its `sid` claim, one per agent run; the provider makes one up when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl AgentClient {
    /// An agent acting for `person`.
    pub fn acting_for(client_id: &str, person: &str) -> Self {
        AgentClient {
            client_id: client_id.to_owned(),
            acting_for: Some(person.to_owned()),
            ..Default::default()
        }
    }

    /// An agent acting for nobody: its own `sub`, no `act` claim.
    pub fn on_its_own(client_id: &str) -> Self {
        AgentClient {
            client_id: client_id.to_owned(),
            ..Default::default()
        }
    }

    /// Sets the session id.
    pub fn session(mut self, session: &str) -> Self {
        self.session = Some(session.to_owned());
        self
    }

    /// Adds a group.
    pub fn group(mut self, group: &str) -> Self {
        self.groups.push(group.to_owned());
        self
    }
}

/// A registered agent's client credentials.
#[derive(Clone, Deserialize)]
pub struct AgentCredentials {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    client_secret: String,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The provider's signing keys after a rotation or a retirement.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeySet {
    /// The key new tokens are signed with.
    pub kid: String,
    /// Every key id the provider publishes, newest first.
    pub published: Vec<String>,
}

/// What the provider script reads from its config file.
#[derive(Serialize)]
struct ScriptConfig<'a> {
    issuer: &'a str,
    port: u16,
    resource: &'a str,
    audience: &'a str,
    token_ttl_seconds: u64,
    cookie_key: String,
    reviewer: ReviewerConfig<'a>,
    users: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct ReviewerConfig<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    redirect_uris: Vec<String>,
}

/// A running provider, stopped when dropped.
#[derive(Debug)]
pub struct OidcProvider {
    process: Mutex<Option<ManagedProcess>>,
    port: u16,
    issuer: String,
    log: PathBuf,
    /// Guards the admin endpoints of the script (a fresh random value per start).
    admin_token: String,
    reviewer_secret: String,
    options: OidcOptions,
}

impl OidcProvider {
    /// Starts the provider with its files in `dir`; `service_url` is the approval service's
    /// URL, below which the reviewer client's redirect URIs lie.
    pub fn start(dir: &Path, options: &OidcOptions, service_url: &str) -> Result<OidcProvider> {
        let root = workspace_root();
        let script = root.join(SCRIPT);
        let node_modules = root.join(NODE_DIR).join("node_modules/oidc-provider");
        if !node_modules.is_dir() {
            return Err(HarnessError::Missing {
                what: "the npm package oidc-provider",
                path: node_modules,
                hint: "run `cargo xtask test` (it runs `npm ci` in integration/node), or `npm ci` there",
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| HarnessError::io("create", dir, e))?;
        let port = free_port()?;
        let issuer = format!("http://127.0.0.1:{port}");
        let admin_token = random_hex(24)?;
        let reviewer_secret = random_hex(24)?;
        let users = options
            .users
            .iter()
            .map(|user| {
                let claims = serde_json::json!({ "groups": user.groups, "roles": user.roles });
                (user.name.clone(), claims)
            })
            .collect();
        let config = ScriptConfig {
            issuer: &issuer,
            port,
            resource: RESOURCE,
            audience: AUDIENCE,
            token_ttl_seconds: options.token_ttl.as_secs().max(1),
            cookie_key: random_hex(32)?,
            reviewer: ReviewerConfig {
                client_id: REVIEWER_CLIENT_ID,
                client_secret: &reviewer_secret,
                redirect_uris: options
                    .reviewer_redirect_paths
                    .iter()
                    .map(|path| format!("{}{path}", service_url.trim_end_matches('/')))
                    .collect(),
            },
            users,
        };
        let config_path = dir.join("oidc-provider.json");
        let text = serde_json::to_vec_pretty(&config)
            .map_err(|e| HarnessError::Unexpected(format!("cannot encode the config: {e}")))?;
        write_private(&config_path, &text)?;

        let log = dir.join("oidc-provider.log");
        let node = std::env::var_os("GITGATE_NODE")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "node".into());
        let mut command = Command::new(node);
        command
            .current_dir(root.join(NODE_DIR))
            .arg(&script)
            .arg(&config_path)
            .env("GITGATE_OIDC_ADMIN_TOKEN", &admin_token);
        let process = ManagedProcess::spawn("oidc provider", command, &log)?;
        let provider = OidcProvider {
            process: Mutex::new(Some(process)),
            port,
            issuer,
            log,
            admin_token,
            reviewer_secret,
            options: options.clone(),
        };
        let discovery = provider.url("/.well-known/openid-configuration");
        process::wait_ready(
            "oidc provider",
            &provider.log,
            STARTUP,
            || provider.check_running(),
            || {
                http::request_with_timeout("GET", &discovery, &[], Vec::new(), STARTUP)
                    .is_ok_and(|r| r.status == 200)
            },
        )?;
        Ok(provider)
    }

    fn check_running(&self) -> Result<()> {
        let mut slot = self.process.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(process) => process.check_running(),
            None => Err(HarnessError::Exited {
                component: "oidc provider",
                status: "stopped".into(),
                log_tail: process::log_tail(&self.log),
            }),
        }
    }

    /// Stops the provider; safe to call twice.
    pub fn stop(&self) {
        let mut slot = self.process.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut process) = slot.take() {
            process.stop();
        }
    }

    /// The issuer URL (`iss` of its tokens), `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its key set's URL.
    pub fn jwks_uri(&self) -> String {
        self.url("/jwks")
    }

    /// A URL of the provider; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The options it was started with.
    pub fn options(&self) -> &OidcOptions {
        &self.options
    }

    /// Its output.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The reviewer client's secret (client id [`REVIEWER_CLIENT_ID`]).
    pub fn reviewer_client_secret(&self) -> &str {
        &self.reviewer_secret
    }

    /// The jwt_authn view of this provider, for [`crate::envoy::remote_jwks_edits`].
    pub fn remote_jwks(&self) -> crate::envoy::RemoteJwks {
        crate::envoy::RemoteJwks {
            issuer: self.issuer.clone(),
            audience: AUDIENCE.to_owned(),
            jwks_uri: self.jwks_uri(),
            port: self.port,
            cache_duration: self.options.jwks_cache_duration,
        }
    }

    /// Registers an agent client and returns its client credentials.
    pub fn register_agent(&self, agent: &AgentClient) -> Result<AgentCredentials> {
        self.admin(
            "/admin/agents",
            serde_json::to_value(agent).unwrap_or_default(),
        )
    }

    /// An access token for the gateway, from the client-credentials grant.
    pub fn agent_token(&self, agent: &AgentCredentials) -> Result<String> {
        let body = form_encode(&[
            ("grant_type", "client_credentials"),
            ("client_id", &agent.client_id),
            ("client_secret", &agent.client_secret),
            ("scope", AGENT_SCOPE),
        ]);
        let url = self.url("/token");
        let response = http::request(
            "POST",
            &url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body.into_bytes(),
        )?;
        if response.status != 200 {
            return Err(HarnessError::Unexpected(format!(
                "the provider refused a token for {}: {} {}",
                agent.client_id,
                response.status,
                response.text()
            )));
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
        }
        let token: TokenResponse = serde_json::from_slice(&response.body).map_err(|e| {
            HarnessError::Unexpected(format!("the token response is not JSON: {e}"))
        })?;
        Ok(token.access_token)
    }

    /// Adds a new signing key in front of the published ones: new tokens are signed with it,
    /// and the older keys stay published.
    pub fn rotate_keys(&self) -> Result<KeySet> {
        self.admin("/admin/rotate", serde_json::json!({}))
    }

    /// Stops publishing every key but the newest.
    pub fn retire_old_keys(&self) -> Result<KeySet> {
        self.admin("/admin/retire", serde_json::json!({}))
    }

    /// A token shaped like `agent`'s real ones (issuer, audience, claims) but signed with a key
    /// the provider never published.
    pub fn unpublished_key_token(&self, agent: &AgentCredentials) -> Result<String> {
        #[derive(Deserialize)]
        struct Forged {
            token: String,
        }
        let forged: Forged = self.admin(
            "/admin/unpublished-token",
            serde_json::json!({ "client_id": agent.client_id }),
        )?;
        Ok(forged.token)
    }

    /// Signs `user` in at the provider as a browser would, from the provider's authorization
    /// URL (the `Location` the approval service's sign-in answers with) to the client's
    /// callback: follows the redirects, keeping the provider's cookies, and names `user` on the
    /// login page. Returns the callback URL with its `code` and `state`, for the test to open
    /// at the service (with the service's own cookie).
    pub fn follow_login(&self, authorize_url: &str, user: &str) -> Result<String> {
        let mut cookies: Vec<(String, String)> = Vec::new();
        let mut url = authorize_url.to_owned();
        // /auth -> /interaction/<uid> -> /auth/<uid> -> callback, with a few hops to spare.
        for _ in 0..8 {
            if !url.starts_with(&self.issuer) {
                return Ok(url);
            }
            if url.contains("/interaction/") && !url.contains("login=") {
                let separator = if url.contains('?') { '&' } else { '?' };
                url = format!("{url}{separator}{}", form_encode(&[("login", user)]));
            }
            let cookie_header = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut headers = Vec::new();
            if !cookie_header.is_empty() {
                headers.push(("cookie", cookie_header.as_str()));
            }
            let response = http::request("GET", &url, &headers, Vec::new())?;
            for (name, value) in &response.headers {
                if name != "set-cookie" {
                    continue;
                }
                let pair = value.split(';').next().unwrap_or("");
                if let Some((name, value)) = pair.split_once('=') {
                    cookies.retain(|(kept, _)| kept != name);
                    cookies.push((name.to_owned(), value.to_owned()));
                }
            }
            let Some(location) = response.header("location") else {
                return Err(HarnessError::Unexpected(format!(
                    "the provider answered {} without a redirect at {url}: {}",
                    response.status,
                    response.text()
                )));
            };
            url = if location.starts_with('/') {
                self.url(location)
            } else {
                location.to_owned()
            };
        }
        Err(HarnessError::Unexpected(format!(
            "the sign-in at the provider did not reach the client; last at {url}"
        )))
    }

    /// Exchanges an authorization `code` for the reviewer client's tokens (what the approval
    /// service does at its callback); returns the token response, `id_token` included.
    pub fn reviewer_tokens(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<serde_json::Value> {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{REVIEWER_CLIENT_ID}:{}", self.reviewer_secret));
        let body = form_encode(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
        ]);
        let response = http::request(
            "POST",
            &self.url("/token"),
            &[
                ("authorization", &format!("Basic {basic}")),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.into_bytes(),
        )?;
        if response.status != 200 {
            return Err(HarnessError::Unexpected(format!(
                "the provider refused the code: {} {}",
                response.status,
                response.text()
            )));
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| HarnessError::Unexpected(format!("the token response is not JSON: {e}")))
    }

    /// The provider's authorization URL for the reviewer client: code flow, PKCE S256 with
    /// `pkce`'s challenge, the scopes `openid profile groups`.
    pub fn reviewer_authorize_url(&self, redirect_uri: &str, pkce: &Pkce, state: &str) -> String {
        let query = form_encode(&[
            ("client_id", REVIEWER_CLIENT_ID),
            ("response_type", "code"),
            ("scope", "openid profile groups"),
            ("redirect_uri", redirect_uri),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", state),
            ("nonce", state),
        ]);
        self.url(&format!("/auth?{query}"))
    }

    fn admin<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<T> {
        let url = self.url(path);
        let bearer = format!("Bearer {}", self.admin_token);
        let response = http::request(
            "POST",
            &url,
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_string().into_bytes(),
        )?;
        if response.status != 200 {
            return Err(HarnessError::Unexpected(format!(
                "POST {path} at the provider: {} {}",
                response.status,
                response.text()
            )));
        }
        serde_json::from_slice(&response.body).map_err(|e| {
            HarnessError::Unexpected(format!("POST {path}: not the JSON expected: {e}"))
        })
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A PKCE pair (RFC 7636): a random verifier and its S256 challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// The `code_verifier`, sent with the code.
    pub verifier: String,
    /// The `code_challenge`, base64url of SHA-256 of the verifier, sent with the request.
    pub challenge: String,
}

impl Pkce {
    /// A fresh pair.
    pub fn new() -> Result<Pkce> {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        // 32 random bytes make a 64-character verifier, within RFC 7636's 43..=128.
        let verifier = random_hex(32)?;
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&verifier));
        Ok(Pkce {
            verifier,
            challenge,
        })
    }
}

/// The value of `name` in the query of `url`, percent-decoded.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The claims of a JWT, decoded without checking its signature: for tests that look at what
/// the provider issued.
pub fn unverified_claims(token: &str) -> Result<serde_json::Value> {
    use base64::Engine as _;
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| HarnessError::Unexpected("not a JWT: no payload".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| HarnessError::Unexpected(format!("not a JWT payload: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| HarnessError::Unexpected(format!("not a JWT payload: {e}")))
}

/// The `kid` of a JWT's header, decoded without checking the signature.
pub fn unverified_kid(token: &str) -> Result<String> {
    use base64::Engine as _;
    let header = token
        .split('.')
        .next()
        .ok_or_else(|| HarnessError::Unexpected("not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|e| HarnessError::Unexpected(format!("not a JWT header: {e}")))?;
    let header: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| HarnessError::Unexpected(format!("not a JWT header: {e}")))?;
    header["kid"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| HarnessError::Unexpected("the JWT header has no kid".into()))
}

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| HarnessError::io("bind", "127.0.0.1:0", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| HarnessError::io("inspect", "127.0.0.1:0", e))?
        .port())
}

/// `len` random bytes from the kernel, hex-encoded.
fn random_hex(len: usize) -> Result<String> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut bytes = vec![0u8; len];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|e| HarnessError::io("read", path, e))?;
    Ok(hex::encode(bytes))
}

/// Writes `bytes` to `path` readable by its owner only: the config holds the reviewer secret.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|e| HarnessError::io("write", path, e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_clients_serialize_to_what_the_script_reads() {
        let agent = AgentClient::acting_for("agent-7", "alice")
            .group("dev")
            .session("run-1");
        let json = serde_json::to_value(&agent).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "client_id": "agent-7", "acting_for": "alice", "groups": ["dev"], "session": "run-1"
            })
        );
        let alone = serde_json::to_value(AgentClient::on_its_own("bot")).unwrap();
        assert_eq!(alone, serde_json::json!({ "client_id": "bot" }));
    }

    #[test]
    fn form_fields_are_percent_encoded() {
        assert_eq!(
            form_encode(&[("a b", "c&d=e"), ("x", "~ok")]),
            "a%20b=c%26d%3De&x=~ok"
        );
    }

    #[test]
    fn claims_of_a_jwt_are_read_without_its_signature() {
        // {"alg":"none","kid":"k1"} . {"sub":"alice","act":{"sub":"agent-7"}} . (no signature)
        let token = "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.\
                     eyJzdWIiOiJhbGljZSIsImFjdCI6eyJzdWIiOiJhZ2VudC03In19.";
        let claims = unverified_claims(token).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["act"]["sub"], "agent-7");
        assert_eq!(unverified_kid(token).unwrap(), "k1");
        assert!(unverified_claims("no-dots").is_err());
    }

    #[test]
    fn query_parameters_are_found_and_decoded() {
        let url = "http://h/cb?code=a%2Fb&state=x+y&iss=http%3A%2F%2F127.0.0.1";
        assert_eq!(query_param(url, "code").as_deref(), Some("a/b"));
        assert_eq!(query_param(url, "state").as_deref(), Some("x y"));
        assert_eq!(query_param(url, "iss").as_deref(), Some("http://127.0.0.1"));
        assert_eq!(query_param(url, "none"), None);
        assert_eq!(query_param("http://h/cb%", "x"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn a_pkce_challenge_is_the_s256_of_its_verifier() {
        let pkce = Pkce::new().unwrap();
        assert_eq!(pkce.verifier.len(), 64);
        assert_eq!(pkce.challenge.len(), 43);
        assert_ne!(Pkce::new().unwrap().verifier, pkce.verifier);
    }

    #[test]
    fn credentials_are_not_debug_printed() {
        let creds = AgentCredentials {
            client_id: "agent-7".into(),
            client_secret: "s3cr3t-value".into(),
        };
        assert!(!format!("{creds:?}").contains("s3cr3t"));
    }
}
