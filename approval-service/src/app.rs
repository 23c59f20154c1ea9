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
use crate::policy::Policy;
use crate::store::Store;
use crate::{pages, session, verdicts};

/// The default lifetime of an approval.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(24 * 3600);

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
}

impl Settings {
    /// Settings with the default lifetimes for a service reachable at `public_url`.
    pub fn new(public_url: &str) -> Self {
        Settings {
            public_url: public_url.trim_end_matches('/').to_owned(),
            approval_ttl: DEFAULT_APPROVAL_TTL,
            session_ttl: SESSION_TTL,
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
        let inner = Inner {
            settings,
            store,
            policy,
            verifier,
            cookie_key,
            clock,
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

    Router::new()
        .route("/healthz", get(healthz))
        .merge(verdicts::router())
        .merge(session::router())
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
