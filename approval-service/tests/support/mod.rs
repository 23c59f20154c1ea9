//! Shared test support: a service on a real database, driven through `oneshot`, and a small
//! browser that keeps cookies and reads CSRF fields from pages.
//!
//! Every test runs against a fresh SQLite file; when `GITGATE_TEST_POSTGRES_URL` names a
//! PostgreSQL server (any database on it; the tests create their own), it runs there as well.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum_extra::extract::cookie::Key;
use gitgate::clock::Clock;
use gitgate::issuer::{DevIssuer, TokenSpec, TokenVerifier};
use gitgate::policy::Policy;
use gitgate::store::Store;
use gitgate::{AppState, Settings, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use tempfile::TempDir;
use tower::ServiceExt;

/// The environment variable naming a PostgreSQL server for the tests.
pub const POSTGRES_ENV: &str = "GITGATE_TEST_POSTGRES_URL";

/// The public URL the test services pretend to be reachable at.
pub const PUBLIC_URL: &str = "http://gitgate.test";

/// An old and a new object id for updates.
pub const OLD: &str = "1111111111111111111111111111111111111111";
pub const NEW: &str = "2222222222222222222222222222222222222222";
pub const NEWER: &str = "3333333333333333333333333333333333333333";
pub const ZERO: &str = "0000000000000000000000000000000000000000";

/// A database for one test.
pub struct TestDatabase {
    /// The URL to connect to.
    pub url: String,
    /// `sqlite` or `postgres`, for assertion messages.
    pub label: &'static str,
    /// Holds the SQLite file's directory.
    _dir: Option<TempDir>,
}

impl TestDatabase {
    /// A fresh SQLite database, and a fresh PostgreSQL database when the server is configured.
    pub async fn all() -> Vec<TestDatabase> {
        let mut databases = vec![Self::sqlite()];
        if let Some(postgres) = Self::postgres().await {
            databases.push(postgres);
        }
        databases
    }

    /// A fresh SQLite file in a temporary directory (in a subdirectory that does not exist
    /// yet, so the store has to create it).
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/state/gitgate.db", dir.path().display());
        TestDatabase {
            url,
            label: "sqlite",
            _dir: Some(dir),
        }
    }

    /// A fresh database on the configured PostgreSQL server, if there is one.
    pub async fn postgres() -> Option<TestDatabase> {
        let server = std::env::var(POSTGRES_ENV)
            .ok()
            .filter(|url| !url.trim().is_empty())?;
        let name = format!("gitgate_test_{}", uuid::Uuid::new_v4().simple());
        let url = with_database_name(&server, &name);
        sqlx::any::install_default_drivers();
        sqlx::Any::create_database(&url)
            .await
            .expect("create a PostgreSQL test database");
        Some(TestDatabase {
            url,
            label: "postgres",
            _dir: None,
        })
    }

    /// Drops a PostgreSQL test database; SQLite files go with their directory.
    pub async fn drop(self) {
        if self.label == "postgres" {
            // OK to ignore: a leftover test database on a throwaway server is harmless.
            let _ = sqlx::Any::force_drop_database(&self.url).await;
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database_name(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// A service on a real store, with a dev issuer, a movable clock and a router.
pub struct TestService {
    pub router: Router,
    pub store: Store,
    pub clock: Clock,
    pub issuer: DevIssuer,
    pub label: &'static str,
    _issuer_dir: TempDir,
    /// The webhook worker, when webhooks are configured; stopped with the service.
    notifier: Option<tokio::task::JoinHandle<()>>,
}

/// How to build a [`TestService`].
pub struct Options {
    pub policy: Option<&'static str>,
    pub approval_ttl: Duration,
    /// The cap on a hold wait; `None` keeps the service default.
    pub hold_wait_max: Option<Duration>,
    /// The `oidc` section; the default is the development issuer.
    pub oidc: gitgate::oidc::OidcConfig,
    /// Webhooks; when any are given the notifier runs.
    pub webhooks: Vec<gitgate::webhooks::WebhookConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            policy: None,
            approval_ttl: Duration::from_secs(24 * 3600),
            hold_wait_max: None,
            oidc: gitgate::oidc::OidcConfig::default(),
            webhooks: Vec::new(),
        }
    }
}

impl TestService {
    /// A service with the embedded default policy.
    pub async fn start(database: &TestDatabase) -> TestService {
        Self::start_with(database, Options::default()).await
    }

    /// A service with the given options.
    pub async fn start_with(database: &TestDatabase, options: Options) -> TestService {
        let policy = match options.policy {
            Some(yaml) => Policy::from_yaml(yaml).expect("the test policy compiles"),
            None => Policy::embedded_default().expect("the default policy compiles"),
        };
        let store = Store::connect(&database.url)
            .await
            .expect("the store connects");
        let issuer_dir = tempfile::tempdir().expect("a temporary directory");
        let issuer = DevIssuer::ensure(issuer_dir.path()).expect("a dev issuer");
        let verifier = TokenVerifier::from_issuer_dir(issuer_dir.path()).expect("a verifier");
        let clock = Clock::system();
        let mut settings = Settings::new(PUBLIC_URL);
        settings.approval_ttl = options.approval_ttl;
        if let Some(max) = options.hold_wait_max {
            settings.hold_wait_max = max;
        }
        let oidc_settings = gitgate::oidc::OidcSettings::resolve(options.oidc);
        let dev = oidc_settings.is_dev().then(|| {
            let claims = gitgate::issuer::provider::ClaimNames {
                groups: oidc_settings.groups_claim.clone(),
                roles: oidc_settings.roles_claim.clone(),
            };
            let callback = format!("{PUBLIC_URL}{}", gitgate::oidc::CALLBACK_PATH);
            std::sync::Arc::new(gitgate::issuer::provider::DevProvider::new(
                &issuer, PUBLIC_URL, &callback, claims,
            ))
        });
        let oidc =
            gitgate::oidc::OidcClient::new(oidc_settings, PUBLIC_URL, dev).expect("an OIDC client");
        let mut state = AppState::new(
            settings,
            store.clone(),
            policy,
            verifier,
            Key::generate(),
            clock.clone(),
        )
        .with_oidc(oidc);
        if let Some(webhooks) =
            gitgate::webhooks::Webhooks::from_config(&options.webhooks).expect("webhooks")
        {
            state = state.with_webhooks(webhooks);
        }
        let notifier = gitgate::webhooks::spawn(state.clone());
        TestService {
            notifier,
            router: app(state),
            store,
            clock,
            issuer,
            label: database.label,
            _issuer_dir: issuer_dir,
        }
    }

    /// Sends one request through the router.
    pub async fn send(&self, request: Request<Body>) -> Response {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Posts a raw body to the verdict endpoint.
    pub async fn post_verdicts_raw(&self, body: impl Into<Body>) -> Response {
        let request = Request::post("/v1/verdicts")
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .expect("a request");
        self.send(request).await
    }

    /// Posts a verdict request and returns the status and the JSON answer.
    pub async fn post_verdicts(&self, request: &Value) -> (StatusCode, Value) {
        let response = self.post_verdicts_raw(request.to_string()).await;
        let json = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }

    /// Posts a verdict request that must succeed and returns its verdicts.
    pub async fn verdicts(&self, request: &Value) -> Vec<Value> {
        let (status, json) = self.post_verdicts(request).await;
        assert_eq!(status, StatusCode::OK, "[{}] {json}", self.label);
        json["verdicts"]
            .as_array()
            .cloned()
            .expect("a verdicts array")
    }

    /// A signed token.
    pub fn token(&self, spec: TokenSpec) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.issuer.mint(&spec, now).expect("a token")
    }

    /// A reviewer token for `subject` (role reviewer, group reviewers).
    pub fn reviewer_token(&self, subject: &str) -> String {
        self.token(TokenSpec {
            subject: subject.into(),
            reviewer: true,
            ttl: Duration::from_secs(900),
            ..TokenSpec::default()
        })
    }

    /// A browser signed in with a reviewer token for `subject`.
    pub async fn reviewer(&self, subject: &str) -> Browser<'_> {
        let mut browser = Browser::new(self);
        let page = browser.sign_in(&self.reviewer_token(subject)).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "[{}] sign-in: {}",
            self.label,
            page.body
        );
        browser
    }

    /// Closes the store.
    pub async fn stop(self) {
        if let Some(notifier) = &self.notifier {
            notifier.abort();
        }
        self.store.close().await;
    }
}

/// A response with its body read.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Response {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
    }

    /// The value of the first hidden `csrf` field on the page.
    pub fn csrf(&self) -> Option<String> {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_owned())
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

/// A cookie-keeping client of the reviewer pages.
pub struct Browser<'a> {
    service: &'a TestService,
    cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    /// A browser with no cookies.
    pub fn new(service: &'a TestService) -> Self {
        Browser {
            service,
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, response: &Response) {
        for cookie in response.set_cookies() {
            let pair = cookie.split(';').next().unwrap_or_default();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let removed = value.is_empty() || cookie.contains("Max-Age=0");
            if removed {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    /// GET a page.
    pub async fn get(&mut self, path: &str) -> Response {
        let request = Request::get(path)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .expect("a request");
        let response = self.service.send(request).await;
        self.keep_cookies(&response);
        response
    }

    /// POST a form.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let request = Request::post(path)
            .header(header::COOKIE, self.cookie_header())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("a request");
        let response = self.service.send(request).await;
        self.keep_cookies(&response);
        response
    }

    /// Signs in through the form, as a person pasting a token would.
    pub async fn sign_in(&mut self, token: &str) -> Response {
        let form = self.get("/login").await;
        let csrf = form.csrf().expect("the sign-in form has a CSRF field");
        self.post(
            "/login",
            &[("token", token), ("csrf", &csrf), ("next", "/")],
        )
        .await
    }

    /// The CSRF token of the ticket page.
    pub async fn csrf_for(&mut self, ticket: &str) -> String {
        let page = self.get(&format!("/tickets/{ticket}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.csrf().expect("the page has a CSRF field")
    }

    /// Approves a ticket through its form.
    pub async fn approve(&mut self, ticket: &str) -> Response {
        let csrf = self.csrf_for(ticket).await;
        self.post(
            &format!("/tickets/{ticket}/approve"),
            &[("csrf", &csrf), ("comment", "fine")],
        )
        .await
    }

    /// Denies a ticket through its form.
    pub async fn deny(&mut self, ticket: &str, reason: &str) -> Response {
        let csrf = self.csrf_for(ticket).await;
        self.post(
            &format!("/tickets/{ticket}/deny"),
            &[("csrf", &csrf), ("reason", reason)],
        )
        .await
    }
}

/// A verdict request with one update.
pub fn push(request_id: &str, subject: &str, refname: &str, old: &str, new: &str) -> Value {
    push_many(
        request_id,
        json!({ "subject": subject }),
        &[(refname, old, new)],
    )
}

/// A verdict request with an agent acting for a person.
pub fn agent_push(request_id: &str, agent: &str, person: &str, refname: &str) -> Value {
    push_many(
        request_id,
        json!({ "subject": agent, "agent": true, "acting_for": person, "token_id": "jti-1" }),
        &[(refname, OLD, NEW)],
    )
}

/// A verdict request with several updates.
pub fn push_many(request_id: &str, identity: Value, updates: &[(&str, &str, &str)]) -> Value {
    let updates: Vec<Value> = updates
        .iter()
        .map(|(refname, old, new)| {
            let operation = match (*old == ZERO, *new == ZERO) {
                (true, _) => "create",
                (_, true) => "delete",
                _ => "update",
            };
            json!({ "ref": refname, "old": old, "new": new, "operation": operation })
        })
        .collect();
    json!({
        "request_id": request_id,
        "repository": "demo.git",
        "identity": identity,
        "atomic": false,
        "object_format": "sha1",
        "push_options": [],
        "updates": updates,
    })
}

/// The ticket id of a hold verdict.
pub fn ticket_of(verdict: &Value) -> String {
    assert_eq!(verdict["decision"], "hold", "{verdict}");
    verdict["ticket"].as_str().expect("a ticket id").to_owned()
}

impl<'a> Browser<'a> {
    /// Signs in through OpenID Connect with the development issuer, as a person would: the
    /// sign-in button, the development page (user and groups), the callback.
    pub async fn sign_in_oidc(&mut self, user: &str, groups: &[&str], reviewer: bool) -> Response {
        let start = self.get("/login/oidc?next=/").await;
        assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
        let to_provider = local_path(start.location().expect("a redirect to the provider"));
        let form = self.get(&to_provider).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        assert!(form.body.contains("Development only"), "{}", form.body);
        let mut fields: Vec<(String, String)> = hidden_fields(&form.body);
        fields.push(("user".into(), user.into()));
        for group in groups {
            fields.push(("group".into(), (*group).into()));
        }
        if reviewer {
            fields.push(("role".into(), "reviewer".into()));
        }
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let granted = self.post("/dev/oidc/authorize", &pairs).await;
        assert_eq!(granted.status, StatusCode::SEE_OTHER, "{}", granted.body);
        let callback = local_path(granted.location().expect("a redirect to the callback"));
        self.get(&callback).await
    }
}

/// The path and query of a URL on the test service.
pub fn local_path(url: &str) -> String {
    url.strip_prefix(PUBLIC_URL).unwrap_or(url).to_owned()
}

/// Every hidden input of a page, as (name, value), HTML entities of values decoded.
pub fn hidden_fields(page: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for part in page.split("<input type=\"hidden\" name=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(value) = rest
            .strip_prefix(" value=\"")
            .and_then(|v| v.split_once('"'))
            .map(|(v, _)| v)
        else {
            continue;
        };
        let value = value
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        fields.push((name.to_owned(), value));
    }
    fields
}
