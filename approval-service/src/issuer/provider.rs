//! The development issuer as an OpenID Connect provider, for the reviewer sign-in on a
//! developer's machine: discovery, the JWKS, an authorization endpoint that is a plain form
//! (pick a user, groups and roles; no password: it is marked as development on every page)
//! and a token endpoint that checks PKCE (S256, RFC 7636 section 4.6) and answers an ID token
//! signed with the same Ed25519 key as the agent tokens.
//!
//! It serves one client, the service's own pages, with one redirect URI. Authorization codes
//! live in memory for [`CODE_TTL`] and are used once, so a development setup signs reviewers
//! in through the instance that showed the form (one instance is what development runs).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{DevIssuer, REVIEWER_ROLE, REVIEWERS_GROUP};
use crate::app::AppState;
use crate::templates;

/// Where the provider lives below the service's public URL; its issuer is that URL.
pub const DEV_OIDC_PATH: &str = "/dev/oidc";

/// The one client it knows: the service's reviewer pages.
pub const DEV_CLIENT_ID: &str = "gitgate-pages";

/// How long an authorization code may wait for its exchange.
pub const CODE_TTL: Duration = Duration::from_secs(120);

/// How long an ID token it issues is valid.
const ID_TOKEN_SECONDS: i64 = 300;

/// The authorization form's CSRF cookie.
const FORM_COOKIE: &str = "gitgate_dev_idp";

/// The most codes kept at once; older ones are dropped first.
const MAX_CODES: usize = 1000;

/// RFC 7636 section 4.1: a verifier has 43 to 128 characters.
const VERIFIER_LEN: std::ops::RangeInclusive<usize> = 43..=128;

/// The claim names its ID tokens use for groups and roles: the names the client reads.
#[derive(Debug, Clone)]
pub struct ClaimNames {
    /// Where the groups go, for example `groups`.
    pub groups: String,
    /// Where the roles go, for example `roles`.
    pub roles: String,
}

/// An authorization granted on the form, waiting for its code to be exchanged.
#[derive(Debug, Clone)]
struct Grant {
    subject: String,
    groups: Vec<String>,
    roles: Vec<String>,
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
    issued: Instant,
    auth_time: i64,
}

/// The development OpenID Connect provider.
pub struct DevProvider {
    issuer_url: String,
    redirect_uri: String,
    encoding_key: EncodingKey,
    kid: String,
    jwks: JwkSet,
    claims: ClaimNames,
    codes: Mutex<HashMap<String, Grant>>,
    secure_cookies: bool,
}

impl std::fmt::Debug for DevProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevProvider")
            .field("issuer_url", &self.issuer_url)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A token endpoint error, RFC 6749 section 5.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEndpointError {
    /// `invalid_request`, `invalid_grant`, `invalid_client` or `unsupported_grant_type`.
    pub error: &'static str,
    /// Why, for the developer.
    pub description: String,
}

impl DevProvider {
    /// A provider at `{public_url}/dev/oidc` signing with `issuer`'s key, whose one client
    /// returns to `redirect_uri`.
    pub fn new(
        issuer: &DevIssuer,
        public_url: &str,
        redirect_uri: &str,
        claims: ClaimNames,
    ) -> Self {
        DevProvider {
            issuer_url: format!("{}{DEV_OIDC_PATH}", public_url.trim_end_matches('/')),
            redirect_uri: redirect_uri.to_owned(),
            encoding_key: issuer.encoding_key.clone(),
            kid: issuer.kid.clone(),
            jwks: issuer.jwks.clone(),
            claims,
            codes: Mutex::new(HashMap::new()),
            secure_cookies: public_url.starts_with("https://"),
        }
    }

    /// The issuer URL, as discovery and the ID tokens name it.
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// The discovery document (OpenID Connect Discovery 1.0 section 3).
    pub fn metadata(&self) -> Value {
        let base = &self.issuer_url;
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "scopes_supported": ["openid", "profile", "groups"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce",
                                 self.claims.groups, self.claims.roles],
        })
    }

    /// The public keys, as `jwks.json` holds them.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// Exchanges an authorization code (the token endpoint's work, without HTTP).
    ///
    /// `form` is the decoded request body; `basic_user` the client id of an HTTP Basic
    /// `Authorization` header, when one was sent. Answers the token response JSON.
    pub fn exchange(
        &self,
        form: &HashMap<String, String>,
        basic_user: Option<&str>,
        now_s: i64,
    ) -> Result<Value, TokenEndpointError> {
        let field = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let fail = |error: &'static str, description: &str| TokenEndpointError {
            error,
            description: description.to_owned(),
        };
        if field("grant_type") != Some("authorization_code") {
            return Err(fail("unsupported_grant_type", "only authorization_code"));
        }
        let client = field("client_id").or(basic_user);
        if client != Some(DEV_CLIENT_ID) {
            return Err(fail("invalid_client", "unknown client"));
        }
        let code = field("code").ok_or_else(|| fail("invalid_request", "code is missing"))?;
        // Used once: taken out before anything else is checked.
        let grant = self
            .codes
            .lock()
            .ok()
            .and_then(|mut codes| codes.remove(code))
            .ok_or_else(|| fail("invalid_grant", "unknown or used code"))?;
        if grant.issued.elapsed() > CODE_TTL {
            return Err(fail("invalid_grant", "the code has expired"));
        }
        if field("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(fail("invalid_grant", "redirect_uri does not match"));
        }
        let verifier = field("code_verifier")
            .ok_or_else(|| fail("invalid_grant", "code_verifier is missing (PKCE)"))?;
        if !VERIFIER_LEN.contains(&verifier.len()) {
            return Err(fail("invalid_grant", "code_verifier has the wrong length"));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !bool::from(computed.as_bytes().ct_eq(grant.challenge.as_bytes())) {
            return Err(fail("invalid_grant", "code_verifier does not match (PKCE)"));
        }

        let mut claims = json!({
            "iss": self.issuer_url,
            "sub": grant.subject,
            "aud": DEV_CLIENT_ID,
            "iat": now_s,
            "exp": now_s.saturating_add(ID_TOKEN_SECONDS),
            "auth_time": grant.auth_time,
            "name": grant.subject,
        });
        if let Some(map) = claims.as_object_mut() {
            if let Some(nonce) = &grant.nonce {
                map.insert("nonce".into(), json!(nonce));
            }
            map.insert(self.claims.groups.clone(), json!(grant.groups));
            map.insert(self.claims.roles.clone(), json!(grant.roles));
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let id_token = jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|_| fail("server_error", "cannot sign the ID token"))?;
        Ok(json!({
            "access_token": random_token(),
            "token_type": "Bearer",
            "expires_in": ID_TOKEN_SECONDS,
            "id_token": id_token,
            "scope": "openid profile groups",
        }))
    }

    fn grant(&self, code: &str, grant: Grant) {
        if let Ok(mut codes) = self.codes.lock() {
            codes.retain(|_, g| g.issued.elapsed() <= CODE_TTL);
            if codes.len() >= MAX_CODES
                && let Some(oldest) = codes
                    .iter()
                    .min_by_key(|(_, g)| g.issued)
                    .map(|(c, _)| c.clone())
            {
                codes.remove(&oldest);
            }
            codes.insert(code.to_owned(), grant);
        }
    }
}

/// The provider's routes, below [`DEV_OIDC_PATH`]; present only while the development issuer
/// is the reviewers' identity provider.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            &format!("{DEV_OIDC_PATH}/.well-known/openid-configuration"),
            get(discovery),
        )
        .route(&format!("{DEV_OIDC_PATH}/jwks"), get(jwks))
        .route(
            &format!("{DEV_OIDC_PATH}/authorize"),
            get(show_authorize).post(submit_authorize),
        )
        .route(
            &format!("{DEV_OIDC_PATH}/token"),
            axum::routing::post(token),
        )
}

fn provider(state: &AppState) -> Option<&DevProvider> {
    state.oidc().and_then(|oidc| oidc.dev_provider())
}

/// The answer when the development issuer is not the provider here.
fn not_served() -> Response {
    (StatusCode::NOT_FOUND, "no development issuer here\n").into_response()
}

async fn discovery(State(state): State<AppState>) -> Response {
    match provider(&state) {
        Some(p) => axum::Json(p.metadata()).into_response(),
        None => not_served(),
    }
}

async fn jwks(State(state): State<AppState>) -> Response {
    match provider(&state) {
        Some(p) => axum::Json(p.jwks().clone()).into_response(),
        None => not_served(),
    }
}

/// The parameters of an authorization request (OpenID Connect Core section 3.1.2.1).
#[derive(Debug, Clone, Default, Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

impl AuthorizeQuery {
    /// Checks the request against the one registered client; the message is shown on the page
    /// (never redirected to an unchecked URI).
    fn check(&self, provider: &DevProvider) -> Result<(), String> {
        if self.client_id.as_deref() != Some(DEV_CLIENT_ID) {
            return Err(format!("unknown client; the one client is {DEV_CLIENT_ID}"));
        }
        if self.redirect_uri.as_deref() != Some(provider.redirect_uri.as_str()) {
            return Err(format!("redirect_uri must be {}", provider.redirect_uri));
        }
        if self.response_type.as_deref() != Some("code") {
            return Err("response_type must be code".into());
        }
        if !self
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|scope| scope == "openid"))
        {
            return Err("scope must include openid".into());
        }
        if self.code_challenge_method.as_deref() != Some("S256")
            || self.code_challenge.as_deref().is_none_or(|c| c.len() != 43)
        {
            return Err("PKCE is required: code_challenge with code_challenge_method S256".into());
        }
        Ok(())
    }
}

async fn show_authorize(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<AuthorizeQuery>,
) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    if let Err(problem) = query.check(provider) {
        return refused(&problem);
    }
    let csrf = random_token();
    let cookie = Cookie::build((FORM_COOKIE, csrf.clone()))
        .path(DEV_OIDC_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(provider.secure_cookies)
        .max_age(time::Duration::minutes(15))
        .build();
    let page = templates::render(
        "dev_authorize.html",
        minijinja::context! {
            title => "Development sign-in", csrf => csrf, q => minijinja::context! {
                client_id => query.client_id, redirect_uri => query.redirect_uri,
                scope => query.scope, state => query.state, nonce => query.nonce,
                code_challenge => query.code_challenge,
                code_challenge_method => query.code_challenge_method,
            },
            groups => [REVIEWERS_GROUP, "security", "release-managers"],
            reviewer_role => REVIEWER_ROLE,
        },
    );
    match page {
        Ok(html) => (jar.add(cookie), templates::html(html)).into_response(),
        Err(_) => refused("the page failed to render"),
    }
}

async fn submit_authorize(State(state): State<AppState>, jar: CookieJar, body: Bytes) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    // Read by hand: the group checkboxes repeat one name.
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut groups: Vec<String> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    for (name, value) in form_urlencoded::parse(&body) {
        match name.as_ref() {
            "group" => groups.push(value.into_owned()),
            "role" => roles.push(value.into_owned()),
            _ => {
                fields.insert(name.into_owned(), value.into_owned());
            }
        }
    }
    let expected = jar.get(FORM_COOKIE).map(|c| c.value().to_owned());
    let presented = fields.get("csrf");
    let csrf_ok = matches!((&expected, presented), (Some(e), Some(p))
        if bool::from(e.as_bytes().ct_eq(p.as_bytes())));
    if !csrf_ok {
        return refused("the form did not carry its CSRF token; reload it and try again");
    }
    let get = |name: &str| fields.get(name).cloned().filter(|v| !v.is_empty());
    let query = AuthorizeQuery {
        response_type: Some("code".into()),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        nonce: get("nonce"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
    };
    if let Err(problem) = query.check(provider) {
        return refused(&problem);
    }
    let subject = get("user").map(|u| u.trim().to_owned()).unwrap_or_default();
    if subject.is_empty() || subject.len() > 100 || subject.chars().any(char::is_control) {
        return refused("pick a user name of 1 to 100 characters");
    }
    for extra in get("extra_groups").unwrap_or_default().split([',', ' ']) {
        let extra = extra.trim();
        if !extra.is_empty() && !extra.chars().any(char::is_control) {
            groups.push(extra.to_owned());
        }
    }
    groups.dedup();
    let code = random_token();
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
    provider.grant(
        &code,
        Grant {
            subject: subject.clone(),
            groups,
            roles,
            nonce: query.nonce.clone(),
            challenge: query.code_challenge.clone().unwrap_or_default(),
            redirect_uri: provider.redirect_uri.clone(),
            issued: Instant::now(),
            auth_time: now_s,
        },
    );
    tracing::info!(user = %subject, "development issuer: sign-in granted");
    let mut target = format!(
        "{}?code={}",
        provider.redirect_uri,
        templates::url_encode(&code)
    );
    if let Some(state) = &query.state {
        target.push_str("&state=");
        target.push_str(&templates::url_encode(state));
    }
    let jar = jar.remove(Cookie::build(FORM_COOKIE).path(DEV_OIDC_PATH));
    (jar, Redirect::to(&target)).into_response()
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(provider) = provider(&state) else {
        return not_served();
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let basic_user = basic_client_id(&headers);
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
    match provider.exchange(&form, basic_user.as_deref(), now_s) {
        Ok(answer) => axum::Json(answer).into_response(),
        Err(e) => {
            tracing::info!(error = e.error, why = %e.description, "development issuer: token refused");
            let body = json!({ "error": e.error, "error_description": e.description });
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        }
    }
}

/// The user part of an HTTP Basic `Authorization` header (RFC 6749 section 2.3.1).
pub fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next()?;
    Some(
        form_urlencoded::parse(format!("u={user}").as_bytes())
            .next()?
            .1
            .into_owned(),
    )
}

fn refused(problem: &str) -> Response {
    let page = templates::error_page(400, "Development sign-in refused", &format!("{problem}."));
    match page {
        Ok(html) => (StatusCode::BAD_REQUEST, templates::html(html)).into_response(),
        Err(_) => (StatusCode::BAD_REQUEST, format!("{problem}\n")).into_response(),
    }
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> (tempfile::TempDir, DevProvider) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let issuer = DevIssuer::ensure(dir.path()).expect("issuer");
        let claims = ClaimNames {
            groups: "groups".into(),
            roles: "roles".into(),
        };
        let provider = DevProvider::new(
            &issuer,
            "http://gitgate.test",
            "http://gitgate.test/login/oidc/callback",
            claims,
        );
        (dir, provider)
    }

    fn granted(provider: &DevProvider, verifier: &str) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        provider.grant(
            "the-code",
            Grant {
                subject: "bob".into(),
                groups: vec!["reviewers".into()],
                roles: vec!["reviewer".into()],
                nonce: Some("n-1".into()),
                challenge,
                redirect_uri: provider.redirect_uri.clone(),
                issued: Instant::now(),
                auth_time: 0,
            },
        );
        "the-code".into()
    }

    fn exchange_form(code: &str, verifier: &str) -> HashMap<String, String> {
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", DEV_CLIENT_ID),
            ("redirect_uri", "http://gitgate.test/login/oidc/callback"),
            ("code_verifier", verifier),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn a_code_is_exchanged_once_and_only_with_its_pkce_verifier() {
        let (_dir, provider) = provider();
        let verifier = "v".repeat(50);
        let code = granted(&provider, &verifier);
        let wrong = provider.exchange(&exchange_form(&code, &"w".repeat(50)), None, 0);
        assert_eq!(wrong.map_err(|e| e.error), Err("invalid_grant"));
        // The failed attempt used the code up.
        let code = granted(&provider, &verifier);
        let answer = provider
            .exchange(&exchange_form(&code, &verifier), None, 1_000)
            .expect("exchanged");
        assert!(
            answer["id_token"]
                .as_str()
                .is_some_and(|t| t.split('.').count() == 3)
        );
        let again = provider.exchange(&exchange_form(&code, &verifier), None, 1_000);
        assert_eq!(again.map_err(|e| e.error), Err("invalid_grant"));
    }

    #[test]
    fn the_discovery_document_names_the_endpoints_under_the_issuer() {
        let (_dir, provider) = provider();
        let metadata = provider.metadata();
        assert_eq!(metadata["issuer"], "http://gitgate.test/dev/oidc");
        assert_eq!(
            metadata["token_endpoint"],
            "http://gitgate.test/dev/oidc/token"
        );
        assert_eq!(
            metadata["code_challenge_methods_supported"],
            json!(["S256"])
        );
    }

    #[test]
    fn basic_authorization_names_the_client() {
        let mut headers = HeaderMap::new();
        let value = format!("Basic {}", STANDARD.encode("gitgate-pages:"));
        headers.insert(header::AUTHORIZATION, value.parse().expect("a header"));
        assert_eq!(basic_client_id(&headers).as_deref(), Some(DEV_CLIENT_ID));
    }
}
