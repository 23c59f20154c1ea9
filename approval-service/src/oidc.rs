//! Reviewer sign-in through OpenID Connect: the authorization code flow with PKCE.
//!
//! `GET /login/oidc` starts it: a fresh `state`, `nonce` and PKCE verifier go into a signed,
//! short-lived cookie (`SameSite=Lax`, so it comes back on the identity provider's redirect),
//! and the browser is sent to the provider. `GET /login/oidc/callback` finishes it: the `state`
//! must match the cookie's (this is what stops login CSRF: a code obtained by someone else
//! cannot be planted in another browser), the code is exchanged with the verifier, and the ID
//! token is verified by `openidconnect` (signature against the provider's JWKS, issuer,
//! audience, expiry, nonce). Subject, groups and roles come from configurable claims; the
//! reviewer role is required. The session is then the same signed cookie as for any sign-in.
//!
//! The provider is either the configured issuer (the test provider, a company IdP) or, when
//! none is configured, the development issuer in this service ([`crate::issuer::provider`]),
//! whose requests are answered in process so that one instance needs no HTTP round trip to
//! itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::sync::RwLock;

use crate::app::AppState;
use crate::error::AppError;
use crate::issuer::provider::{DEV_CLIENT_ID, DevProvider, basic_client_id};
use crate::session::{self, Reviewer};
use crate::templates;

/// Where the provider sends the browser back to, below the public URL.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";

/// Where a sign-in starts.
pub const START_PATH: &str = "/login/oidc";

/// The cookie that carries `state`, `nonce` and the PKCE verifier across the provider's pages.
pub const FLOW_COOKIE: &str = "gitgate_oidc";

/// How long a started sign-in may take at the provider.
const FLOW_SECONDS: i64 = 600;

/// How long discovery (metadata and keys) is kept before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The `oidc` section of the service config; every field may be left out. Without `issuer`
/// the development issuer in this service is the provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery is read from below it).
    pub issuer: Option<String>,
    /// The client id registered for the reviewer pages.
    pub client_id: Option<String>,
    /// The client secret, when the provider gave one (PKCE is used either way). Also read from
    /// `GITGATE_OIDC_CLIENT_SECRET`.
    pub client_secret: Option<String>,
    /// Scopes besides `openid`; default `profile` and `groups`.
    pub scopes: Option<Vec<String>>,
    /// The claim that names the reviewer; default `sub`.
    pub subject_claim: Option<String>,
    /// The claim with the reviewer's groups (a list or a space-separated string; a dotted
    /// path reaches into objects, e.g. `realm_access.roles`); default `groups`.
    pub groups_claim: Option<String>,
    /// The claim with the reviewer's roles; default `roles`.
    pub roles_claim: Option<String>,
    /// The role a reviewer needs; default `reviewer`.
    pub reviewer_role: Option<String>,
    /// The provider's name on the sign-in button.
    pub display_name: Option<String>,
    /// Keep the pasted-token sign-in (a development aid) although a provider is configured.
    pub allow_token_sign_in: Option<bool>,
}

/// The resolved sign-in settings.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer URL; `None` for the development issuer.
    pub issuer: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret, if any.
    pub client_secret: Option<String>,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// Claim names.
    pub subject_claim: String,
    /// Claim names.
    pub groups_claim: String,
    /// Claim names.
    pub roles_claim: String,
    /// The role a reviewer needs.
    pub reviewer_role: String,
    /// The name on the button.
    pub display_name: String,
    /// Whether `/login` also takes a pasted dev token.
    pub token_sign_in: bool,
}

impl OidcSettings {
    /// Fills in the defaults. The pasted-token sign-in stays on only with the development
    /// issuer, unless asked for.
    pub fn resolve(config: OidcConfig) -> Self {
        let dev = config.issuer.is_none();
        OidcSettings {
            client_id: config.client_id.unwrap_or_else(|| DEV_CLIENT_ID.to_owned()),
            client_secret: config
                .client_secret
                .or_else(|| std::env::var("GITGATE_OIDC_CLIENT_SECRET").ok())
                .filter(|s| !s.is_empty()),
            scopes: config
                .scopes
                .unwrap_or_else(|| vec!["profile".into(), "groups".into()]),
            subject_claim: config.subject_claim.unwrap_or_else(|| "sub".into()),
            groups_claim: config.groups_claim.unwrap_or_else(|| "groups".into()),
            roles_claim: config.roles_claim.unwrap_or_else(|| "roles".into()),
            reviewer_role: config
                .reviewer_role
                .unwrap_or_else(|| crate::issuer::REVIEWER_ROLE.into()),
            display_name: config.display_name.unwrap_or_else(|| {
                if dev {
                    "the development issuer".into()
                } else {
                    "single sign-on".into()
                }
            }),
            token_sign_in: config.allow_token_sign_in.unwrap_or(dev),
            issuer: config.issuer,
        }
    }

    /// True when the development issuer is the provider.
    pub fn is_dev(&self) -> bool {
        self.issuer.is_none()
    }
}

/// A request to the provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// The HTTP client for the provider: `reqwest` without redirects (following them would let a
/// provider's answer steer the service to other hosts), or the development issuer in process.
#[derive(Clone)]
struct ProviderHttp {
    client: openidconnect::reqwest::Client,
    dev: Option<Arc<DevProvider>>,
}

impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            match &self.dev {
                Some(dev) => Ok(dev_answer(dev, &request)),
                None => self
                    .client
                    .call(request)
                    .await
                    .map_err(|e| HttpError(e.to_string())),
            }
        })
    }
}

/// The development issuer's answer to a request the client would send it over HTTP.
fn dev_answer(dev: &DevProvider, request: &HttpRequest) -> HttpResponse {
    let path = request.uri().path().to_owned();
    let json = |status: u16, body: Value| {
        let mut response = HttpResponse::new(body.to_string().into_bytes());
        *response.status_mut() =
            openidconnect::http::StatusCode::from_u16(status).unwrap_or_default();
        response.headers_mut().insert(
            openidconnect::http::header::CONTENT_TYPE,
            openidconnect::http::HeaderValue::from_static("application/json"),
        );
        response
    };
    if path.ends_with("/.well-known/openid-configuration") {
        json(200, dev.metadata())
    } else if path.ends_with("/jwks") {
        json(200, serde_json::to_value(dev.jwks()).unwrap_or_default())
    } else if path.ends_with("/token") {
        let form = form_urlencoded::parse(request.body())
            .into_owned()
            .collect();
        let mut headers = axum::http::HeaderMap::new();
        if let Some(value) = request
            .headers()
            .get(openidconnect::http::header::AUTHORIZATION)
            .and_then(|v| axum::http::HeaderValue::from_bytes(v.as_bytes()).ok())
        {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
        match dev.exchange(&form, basic_client_id(&headers).as_deref(), now_s) {
            Ok(answer) => json(200, answer),
            Err(e) => json(
                400,
                serde_json::json!({ "error": e.error, "error_description": e.description }),
            ),
        }
    } else {
        json(404, serde_json::json!({ "error": "not_found" }))
    }
}

/// The reviewer pages' OpenID Connect client.
pub struct OidcClient {
    settings: OidcSettings,
    issuer_url: String,
    redirect_url: String,
    http: ProviderHttp,
    discovered: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer_url)
            .field("client_id", &self.settings.client_id)
            .finish_non_exhaustive()
    }
}

/// What a sign-in carries from its start to its callback.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

impl OidcClient {
    /// A client for the configured provider, or for `dev` when none is configured.
    pub fn new(
        settings: OidcSettings,
        public_url: &str,
        dev: Option<Arc<DevProvider>>,
    ) -> Result<Self, String> {
        let client = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let (issuer_url, dev) = match (&settings.issuer, dev) {
            (Some(issuer), _) => (issuer.clone(), None),
            (None, Some(dev)) => (dev.issuer_url().to_owned(), Some(dev)),
            (None, None) => return Err("no issuer configured and no development issuer".into()),
        };
        Ok(OidcClient {
            redirect_url: format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/')),
            settings,
            issuer_url,
            http: ProviderHttp { client, dev },
            discovered: RwLock::new(None),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The development issuer, when it is the provider.
    pub fn dev_provider(&self) -> Option<&DevProvider> {
        self.http.dev.as_deref()
    }

    /// The provider's metadata and keys, read once an hour (and again after a failure).
    async fn metadata(&self) -> Result<CoreProviderMetadata, AppError> {
        if let Some((metadata, at)) = self.discovered.read().await.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(metadata.clone());
        }
        let issuer = IssuerUrl::new(self.issuer_url.clone()).map_err(|e| provider_error(&e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| provider_error(&e))?;
        *self.discovered.write().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    async fn client(
        &self,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        AppError,
    > {
        let metadata = self.metadata().await?;
        let redirect =
            RedirectUrl::new(self.redirect_url.clone()).map_err(|e| provider_error(&e))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider URL to send the browser to, and the flow to keep in the cookie.
    async fn begin(&self, next: String) -> Result<(String, Flow), AppError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let flow = Flow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            next,
        };
        Ok((url.to_string(), flow))
    }

    /// Exchanges the code and reads the reviewer from the verified ID token.
    async fn finish(&self, code: String, flow: &Flow) -> Result<Reviewer, AppError> {
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| provider_error(&e))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| refused(&format!("the code exchange failed: {}", describe(&e))))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| refused("the provider answered no ID token"))?;
        // Asymmetric algorithms only: an HMAC token would be signed with the client secret.
        let verifier = client.id_token_verifier().set_allowed_algs([
            CoreJwsSigningAlgorithm::EdDsa,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        ]);
        id_token
            .claims(&verifier, &Nonce::new(flow.nonce.clone()))
            .map_err(|e| refused(&format!("the ID token is not valid: {e}")))?;
        // Verified above; the custom claims are read from the same payload.
        let compact = id_token.to_string();
        let payload = compact
            .split('.')
            .nth(1)
            .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .ok_or_else(|| refused("the ID token payload does not parse"))?;
        reviewer_from_claims(&self.settings, &payload)
    }
}

/// The reviewer an ID token's claims describe, or why it may not sign in.
pub fn reviewer_from_claims(settings: &OidcSettings, claims: &Value) -> Result<Reviewer, AppError> {
    let name = |value: Option<&Value>| {
        value
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty() && !s.chars().any(char::is_control))
            .map(str::to_owned)
    };
    let subject = name(claim_at(claims, &settings.subject_claim))
        .ok_or_else(|| refused(&format!("the claim {} is missing", settings.subject_claim)))?;
    // A review is a person's own decision: an agent's token, or one delegated to an actor
    // (RFC 8693 `act`), never signs in as a reviewer.
    if claims.get("act").is_some() || claims.get("agent").and_then(Value::as_bool) == Some(true) {
        return Err(AppError::SignInRefused(
            crate::issuer::TokenError::NotAPerson,
        ));
    }
    let acting_for = None;
    let roles = claim_strings(claims, &settings.roles_claim);
    if !roles.iter().any(|r| r == &settings.reviewer_role) {
        return Err(AppError::SignInRefused(
            crate::issuer::TokenError::NotReviewer,
        ));
    }
    Ok(Reviewer {
        subject,
        groups: claim_strings(claims, &settings.groups_claim),
        acting_for,
    })
}

/// The value at a claim name, or else at a dotted path into objects.
fn claim_at<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    // A claim named with dots (some providers use URLs as names) wins over a path.
    if let Some(direct) = claims.get(path) {
        return Some(direct);
    }
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

/// The strings of a list claim: a list of strings, or one string of space-separated names.
fn claim_strings(claims: &Value, path: &str) -> Vec<String> {
    match claim_at(claims, path) {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn describe<E: std::error::Error>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn provider_error<E: std::fmt::Display>(error: &E) -> AppError {
    AppError::SignInUnavailable {
        message: error.to_string(),
    }
}

fn refused(message: &str) -> AppError {
    AppError::SignInRefused(crate::issuer::TokenError::Invalid(message.to_owned()))
}

/// The sign-in routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(START_PATH, get(start))
        .route(CALLBACK_PATH, get(callback))
}

#[derive(Debug, Deserialize)]
struct StartQuery {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Query(query): Query<StartQuery>,
) -> Result<Response, AppError> {
    let oidc = state.oidc().ok_or_else(|| AppError::SignInUnavailable {
        message: "no identity provider is configured".into(),
    })?;
    let next = session::safe_next(query.next.as_deref());
    let (url, flow) = oidc.begin(next).await?;
    // OK because a struct of strings always serialises.
    let value = serde_json::to_string(&flow).unwrap_or_default();
    let cookie = Cookie::build((FLOW_COOKIE, value))
        .path(START_PATH)
        .http_only(true)
        // Lax: the provider's redirect back is a cross-site top-level navigation.
        .same_site(SameSite::Lax)
        .secure(state.settings().is_https())
        .max_age(time::Duration::seconds(FLOW_SECONDS))
        .build();
    Ok((jar.add(cookie), Redirect::to(&url)).into_response())
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let oidc = state.oidc().ok_or_else(|| AppError::SignInUnavailable {
        message: "no identity provider is configured".into(),
    })?;
    let flow: Flow = jar
        .get(FLOW_COOKIE)
        .and_then(|c| serde_json::from_str(c.value()).ok())
        .ok_or_else(|| refused("this sign-in was not started in this browser, or took too long"))?;
    let jar = jar.remove(Cookie::build(FLOW_COOKIE).path(START_PATH));
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(flow.state.as_bytes())));
    if !state_ok {
        return Err(refused(
            "the sign-in answer does not belong to this browser",
        ));
    }
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return Err(refused(&format!(
            "the identity provider said {error} {detail}"
        )));
    }
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| refused("the identity provider sent no code"))?;
    let reviewer = oidc.finish(code, &flow).await?;
    let (jar, session) = session::start_session(&state, jar, reviewer, "oidc");
    // A page, not a redirect: the session cookie is SameSite=Strict, and a browser does not
    // send it on a redirect within a navigation that began at the provider's site.
    let page = templates::render(
        "signed_in.html",
        minijinja::context! {
            title => "Signed in", reviewer => session.subject, csrf => session.csrf,
            next => flow.next, refresh => true,
        },
    )?;
    Ok((jar, templates::html(page)).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings() -> OidcSettings {
        OidcSettings::resolve(OidcConfig {
            issuer: Some("https://idp.example".into()),
            groups_claim: Some("realm_access.groups".into()),
            ..OidcConfig::default()
        })
    }

    #[test]
    fn groups_and_roles_come_from_the_configured_claims() {
        let claims = json!({
            "sub": "bob", "roles": "reviewer admin",
            "realm_access": { "groups": ["reviewers", "security"] }
        });
        let reviewer = reviewer_from_claims(&settings(), &claims).expect("a reviewer");
        assert_eq!(reviewer.subject, "bob");
        assert_eq!(reviewer.groups, vec!["reviewers", "security"]);
    }

    #[test]
    fn a_delegated_or_agent_token_cannot_sign_in_as_a_reviewer() {
        for claims in [
            json!({ "sub": "alice", "act": { "sub": "agent-9" }, "roles": ["reviewer"] }),
            json!({ "sub": "agent-9", "agent": true, "roles": ["reviewer"] }),
        ] {
            assert!(
                matches!(
                    reviewer_from_claims(&settings(), &claims),
                    Err(AppError::SignInRefused(
                        crate::issuer::TokenError::NotAPerson
                    ))
                ),
                "{claims}"
            );
        }
    }

    #[test]
    fn a_token_without_the_reviewer_role_cannot_sign_in() {
        let claims = json!({ "sub": "bob", "roles": ["developer"] });
        assert!(matches!(
            reviewer_from_claims(&settings(), &claims),
            Err(AppError::SignInRefused(
                crate::issuer::TokenError::NotReviewer
            ))
        ));
    }

    #[test]
    fn a_configured_provider_turns_the_pasted_token_sign_in_off() {
        assert!(!settings().token_sign_in);
        assert!(OidcSettings::resolve(OidcConfig::default()).token_sign_in);
    }
}
