//! Reviewer sessions, and the sign-in page.
//!
//! Reviewers sign in through OpenID Connect ([`crate::oidc`]). With the development issuer a
//! pasted reviewer token also works (`/login`'s form, and the one-click `GET /login?token=`
//! link the test harness uses); with a configured provider both are off unless
//! `oidc.allow_token_sign_in` turns them on, because a link that signs a browser in is login
//! CSRF: whoever made the link chooses whose session the reviewer gets.
//!
//! The session cookie is signed with the service's cookie key (configured, so instances share
//! sessions; random per process only in development), `HttpOnly` and `SameSite=Strict`, and
//! holds the reviewer's subject, groups, expiry and a per-session CSRF token that every POST
//! form must echo in its hidden `csrf` field. The token form is protected by a short-lived
//! CSRF cookie of its own, set when the form is shown.

use axum::Form;
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::clock::duration_ms;
use crate::error::{AppError, unreadable_form};
use crate::templates;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gitgate_session";

/// The sign-in form's CSRF cookie.
pub const LOGIN_COOKIE: &str = "gitgate_login";

/// How long the sign-in form's CSRF cookie lives, in seconds.
const LOGIN_COOKIE_SECONDS: i64 = 15 * 60;

/// A signed-in reviewer, as the session cookie records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The reviewer's subject from their token.
    pub subject: String,
    /// The reviewer's groups from their token.
    pub groups: Vec<String>,
    /// The per-session CSRF token every POST form must carry.
    pub csrf: String,
    /// When the session ends, unix milliseconds.
    pub expires_at: i64,
    /// The person the reviewer's token acts for, when it acts for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<String>,
    /// How the reviewer signed in: `oidc` or `token`.
    #[serde(default)]
    pub via: String,
}

/// A reviewer whose identity was checked, about to get a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reviewer {
    /// The subject.
    pub subject: String,
    /// The groups.
    pub groups: Vec<String>,
    /// The person the token acts for, when it does.
    pub acting_for: Option<String>,
}

impl Session {
    /// True when `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| bool::from(p.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// Refuses a form whose CSRF token is missing or wrong.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        if self.csrf_matches(presented) {
            Ok(())
        } else {
            Err(AppError::CsrfRejected)
        }
    }
}

/// Extracts the signed-in reviewer, or sends the browser to the sign-in page.
impl FromRequestParts<AppState> for Session {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let jar =
            SignedCookieJar::<axum_extra::extract::cookie::Key>::from_request_parts(parts, state)
                .await
                .unwrap_or_else(|never| match never {});
        let session = jar
            .get(SESSION_COOKIE)
            .and_then(|cookie| serde_json::from_str::<Session>(cookie.value()).ok())
            .filter(|session| session.expires_at > state.clock().now_ms());
        session.ok_or_else(|| AppError::SignInRequired {
            // After sign-in a GET comes back to where it was; a form post to the queue.
            next: if parts.method == Method::GET {
                parts.uri.path().to_owned()
            } else {
                "/".into()
            },
        })
    }
}

/// The sign-in and sign-out routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(show_login).post(submit_login))
        .route("/logout", post(logout))
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    token: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    token: Option<String>,
    csrf: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn show_login(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    Query(query): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    let token_sign_in = token_sign_in(&state);
    if let Some(token) = query.token.as_deref().filter(|t| !t.trim().is_empty()) {
        if !token_sign_in {
            return Err(AppError::BadForm {
                message: "sign-in links are a development aid and are turned off here; sign in \
                          through the identity provider"
                    .into(),
            });
        }
        // One-click link (development only). The page links onward instead of redirecting: a
        // SameSite=Strict cookie set during a navigation that began on another site is not
        // sent on a redirect within that same navigation.
        let (jar, session) = sign_in(&state, jar, token)?;
        let page = templates::render(
            "signed_in.html",
            minijinja::context! {
                title => "Signed in", reviewer => session.subject, csrf => session.csrf,
                next => next,
            },
        )?;
        return Ok((jar, templates::html(page)).into_response());
    }
    let csrf = random_token();
    let cookie = Cookie::build((LOGIN_COOKIE, csrf.clone()))
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings().is_https())
        .max_age(time::Duration::seconds(LOGIN_COOKIE_SECONDS))
        .build();
    let provider = state.oidc().map(|oidc| {
        minijinja::context! {
            name => oidc.settings().display_name,
            dev => oidc.settings().is_dev(),
            start => format!("{}?next={}", crate::oidc::START_PATH, templates::url_encode(&next)),
        }
    });
    let page = templates::render(
        "login.html",
        minijinja::context! {
            title => "Sign in", csrf => csrf, next => next, provider => provider,
            token_sign_in => token_sign_in,
        },
    )?;
    Ok((jar.add(cookie), templates::html(page)).into_response())
}

/// True when a pasted token may sign in: with the development issuer, or when configured.
fn token_sign_in(state: &AppState) -> bool {
    state
        .oidc()
        .is_none_or(|oidc| oidc.settings().token_sign_in)
}

async fn submit_login(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(unreadable_form)?;
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let csrf_ok = match (expected, form.csrf.as_deref()) {
        (Some(expected), Some(presented)) => {
            bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(AppError::CsrfRejected);
    }
    if !token_sign_in(&state) {
        return Err(AppError::BadForm {
            message: "the token sign-in is turned off here; sign in through the identity \
                      provider"
                .into(),
        });
    }
    let token = form
        .token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| AppError::BadForm {
            message: "paste a reviewer token into the token field".into(),
        })?;
    let (jar, _) = sign_in(&state, jar, token)?;
    let jar = jar.remove(Cookie::build(LOGIN_COOKIE).path("/login"));
    Ok((jar, Redirect::to(&safe_next(form.next.as_deref()))).into_response())
}

async fn logout(
    session: Session,
    jar: SignedCookieJar,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form.map_err(unreadable_form)?;
    session.check_csrf(form.csrf.as_deref())?;
    tracing::info!(reviewer = %session.subject, "reviewer signed out");
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}

/// Verifies a reviewer token and adds the session cookie to `jar`.
fn sign_in(
    state: &AppState,
    jar: SignedCookieJar,
    token: &str,
) -> Result<(SignedCookieJar, Session), AppError> {
    let reviewer = state
        .verifier()
        .verify_reviewer(token)
        .map_err(AppError::SignInRefused)?;
    let reviewer = Reviewer {
        subject: reviewer.subject,
        groups: reviewer.groups,
        acting_for: reviewer.acting_for,
    };
    Ok(start_session(state, jar, reviewer, "token"))
}

/// Starts a session for a reviewer whose identity was checked: adds the signed cookie.
pub(crate) fn start_session(
    state: &AppState,
    jar: SignedCookieJar,
    reviewer: Reviewer,
    via: &str,
) -> (SignedCookieJar, Session) {
    let ttl = state.settings().session_ttl;
    let session = Session {
        subject: reviewer.subject,
        groups: reviewer.groups,
        csrf: random_token(),
        expires_at: state.clock().now_ms().saturating_add(duration_ms(ttl)),
        acting_for: reviewer.acting_for,
        via: via.to_owned(),
    };
    // OK because a struct of strings and an integer always serialises.
    let value = serde_json::to_string(&session).unwrap_or_default();
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings().is_https())
        .max_age(time::Duration::seconds(
            i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .build();
    tracing::info!(reviewer = %session.subject, via, "reviewer signed in");
    (jar.add(cookie), session)
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A local path to return to after sign-in; anything else becomes `/` (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/tickets/T-abc")), "/tickets/T-abc");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let session = Session {
            subject: "bob".into(),
            groups: vec![],
            csrf: "abc".into(),
            expires_at: 0,
            acting_for: None,
            via: "token".into(),
        };
        assert!(session.csrf_matches(Some("abc")));
        assert!(!session.csrf_matches(Some("abd")));
        assert!(!session.csrf_matches(Some("")));
        assert!(!session.csrf_matches(None));
    }
}
