//! The HTTP application: shared state and the router that merges each feature's routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::get;
use axum_extra::extract::cookie::Key;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::clock::Clock;
use crate::issuer::TokenVerifier;
use crate::oidc::OidcClient;
use crate::policy::Policy;
use crate::store::Store;
use crate::webhooks::Webhooks;
use crate::{holds, issuer, oidc, pages, session, verdicts};

/// The default lifetime of an approval.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest a `POST /v1/holds/wait` is kept open, whatever the filter asks.
pub const DEFAULT_HOLD_WAIT_MAX: Duration = Duration::from_secs(300);

/// How often a hold wait reads its tickets from the store.
pub const HOLD_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How long a reviewer session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The base URL reviewers reach the pages at, without a trailing `/`.
    pub public_url: String,
    /// How long an approval lets a re-push through.
    pub approval_ttl: Duration,
    /// How long a reviewer session lasts.
    pub session_ttl: Duration,
    /// The cap on a hold wait's `wait_ms`.
    pub hold_wait_max: Duration,
    /// How often a hold wait reads the store.
    pub hold_poll: Duration,
    /// The capacity of the audit record's read queue, in events; reads beyond it are dropped
    /// and counted.
    pub audit_read_queue: usize,
}

impl Settings {
    /// Settings with the default lifetimes for a service reachable at `public_url`.
    pub fn new(public_url: &str) -> Self {
        Settings {
            public_url: public_url.trim_end_matches('/').to_owned(),
            approval_ttl: DEFAULT_APPROVAL_TTL,
            session_ttl: SESSION_TTL,
            hold_wait_max: DEFAULT_HOLD_WAIT_MAX,
            hold_poll: HOLD_POLL_INTERVAL,
            audit_read_queue: crate::audit::DEFAULT_READ_QUEUE,
        }
    }

    /// True when the pages are served over HTTPS, so cookies get the `Secure` attribute.
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Everything a handler needs, shared by all requests. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    store: Store,
    policy: Policy,
    verifier: TokenVerifier,
    cookie_key: Key,
    clock: Clock,
    audit: crate::audit::ReadQueue,
    oidc: std::sync::OnceLock<OidcClient>,
    webhooks: std::sync::OnceLock<Webhooks>,
    filter_token: std::sync::OnceLock<crate::filter_auth::FilterToken>,
}

impl AppState {
    /// Builds the state. The cookie key signs reviewer sessions; sessions do not survive a
    /// change of key.
    pub fn new(
        settings: Settings,
        store: Store,
        policy: Policy,
        verifier: TokenVerifier,
        cookie_key: Key,
        clock: Clock,
    ) -> Self {
        let audit = crate::audit::ReadQueue::new(store.clone(), settings.audit_read_queue);
        let inner = Inner {
            settings,
            store,
            policy,
            verifier,
            cookie_key,
            clock,
            audit,
            oidc: std::sync::OnceLock::new(),
            webhooks: std::sync::OnceLock::new(),
            filter_token: std::sync::OnceLock::new(),
        };
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The compiled policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The reviewer token verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Sets the reviewers' OpenID Connect client (once, while the state is built).
    pub fn with_oidc(self, oidc: OidcClient) -> Self {
        // OK to ignore: a second client for the same state is a programming slip; the first
        // one stays.
        let _ = self.inner.oidc.set(oidc);
        self
    }

    /// The reviewers' OpenID Connect client, when sign-in through a provider is set up.
    pub fn oidc(&self) -> Option<&OidcClient> {
        self.inner.oidc.get()
    }

    /// Sets the webhook notifications (once, while the state is built).
    pub fn with_webhooks(self, webhooks: Webhooks) -> Self {
        // OK to ignore: as for `with_oidc`.
        let _ = self.inner.webhooks.set(webhooks);
        self
    }

    /// The webhook notifications, when any are configured.
    pub fn webhooks(&self) -> Option<&Webhooks> {
        self.inner.webhooks.get()
    }

    /// Sets the token the filter API requires (once, while the state is built); without one
    /// that API is open.
    pub fn with_filter_token(self, token: crate::filter_auth::FilterToken) -> Self {
        // OK to ignore: as for `with_oidc`.
        let _ = self.inner.filter_token.set(token);
        self
    }

    /// The token the filter API requires, when one is set.
    pub fn filter_token(&self) -> Option<&crate::filter_auth::FilterToken> {
        self.inner.filter_token.get()
    }

    /// The audit record's read queue.
    pub fn audit(&self) -> &crate::audit::ReadQueue {
        &self.inner.audit
    }
}

impl FromRef<AppState> for Key {
    fn from_ref(state: &AppState) -> Key {
        state.inner.cookie_key.clone()
    }
}

/// The whole service as a router: the verdict API, the reviewer pages, sign-in and `/healthz`.
pub fn app(state: AppState) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            // The path only: a query string may carry a sign-in token.
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = %request_id,
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO))
        .on_failure(DefaultOnFailure::new().level(Level::WARN));

    // The filter's endpoints, behind its token when one is set; nothing else is.
    let filter_api = Router::new()
        .merge(verdicts::router())
        .merge(holds::router())
        .merge(crate::audit::events_router());
    let filter_api = crate::filter_auth::protect(filter_api, state.filter_token().cloned());

    Router::new()
        .route("/healthz", get(healthz))
        .merge(filter_api)
        .merge(crate::audit::router())
        .merge(session::router())
        .merge(oidc::router())
        .merge(issuer::provider::router())
        .merge(pages::router())
        .with_state(state)
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::CACHE_CONTROL, "no-store"))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .layer(trace)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

async fn healthz() -> &'static str {
    "ok"
}
