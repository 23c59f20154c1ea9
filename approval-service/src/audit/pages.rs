//! The audit pages: the sessions list and a session's timeline, for signed-in reviewers.
//!
//! The templates are this module's own, rendered in an environment of their own that also
//! holds the shared `base.html` layout, so the reviewer pages' environment stays untouched.

use std::sync::LazyLock;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Error, Output, Value};

use super::api::{self, Filters};
use super::{store, verify, view};
use crate::app::AppState;
use crate::error::AppError;
use crate::session::Session;
use crate::templates;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    (
        "audit_sessions.html",
        include_str!("../../templates/audit_sessions.html"),
    ),
    (
        "audit_session.html",
        include_str!("../../templates/audit_session.html"),
    ),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_formatter(html_formatter);
    env.add_filter("urlencode", |value: String| templates::path_segment(&value));
    for (name, source) in TEMPLATES {
        // A template that does not compile is a build defect, caught by the unit test below;
        // rendering then reports the error instead of panicking.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "template does not compile");
        }
    }
    env
});

/// HTML escaping as the reviewer pages do it (quotes included, `/` left alone so ref names
/// stay readable).
fn html_formatter(out: &mut Output, state: &minijinja::State, value: &Value) -> Result<(), Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(text)) if !value.is_safe() => {
            for c in text.chars() {
                let piece = match c {
                    '&' => "&amp;",
                    '<' => "&lt;",
                    '>' => "&gt;",
                    '"' => "&quot;",
                    '\'' => "&#x27;",
                    other => {
                        out.write_str(other.encode_utf8(&mut [0; 4]))
                            .map_err(Error::from)?;
                        continue;
                    }
                };
                out.write_str(piece).map_err(Error::from)?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

fn render<S: serde::Serialize>(name: &str, context: S) -> Result<String, minijinja::Error> {
    ENVIRONMENT
        .get_template(name)?
        .render(Value::from_serialize(context))
}

/// How many sessions the list shows.
const PAGE_SESSIONS: i64 = 200;

pub(super) async fn sessions_page(
    State(state): State<AppState>,
    session: Session,
    Query(filters): Query<Filters>,
) -> Result<Response, AppError> {
    let mut query = filters.query().map_err(|error| AppError::BadForm {
        message: error.to_string(),
    })?;
    query.limit = Some(PAGE_SESSIONS);
    let heads = store::sessions(state.store().pool(), &query)
        .await
        .map_err(AppError::PageStore)?;
    let sessions: Vec<view::SessionView> = heads.iter().map(view::SessionView::new).collect();
    let drops = api::drops_view(&state).await?;
    let page = render(
        "audit_sessions.html",
        minijinja::context! {
            title => "Audit sessions", reviewer => session.subject, csrf => session.csrf,
            sessions => sessions, drops => drops, filters => minijinja::context! {
                subject => filters.subject, person => filters.person, agent => filters.agent,
                repository => filters.repository, refname => filters.refname,
                commit => filters.commit, since => filters.since, until => filters.until,
            },
        },
    )?;
    Ok(templates::html(page).into_response())
}

pub(super) async fn session_page(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let pool = state.store().pool();
    let Some(timeline) = view::session_timeline(pool, &name)
        .await
        .map_err(AppError::PageStore)?
    else {
        return Err(AppError::AuditSessionNotFound { session: name });
    };
    let report = verify::verify(pool, Some(&name))
        .await
        .map_err(AppError::PageStore)?;
    let page = render(
        "audit_session.html",
        minijinja::context! {
            title => format!("Session {name}"), reviewer => session.subject,
            csrf => session.csrf, s => timeline.session, steps => timeline.timeline,
            problems => report.problems,
        },
    )?;
    Ok(templates::html(page).into_response())
}

pub(super) async fn export_page(
    State(state): State<AppState>,
    _session: Session,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    api::export(&state, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_audit_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(
                ENVIRONMENT.get_template(name).is_ok(),
                "{name} does not compile"
            );
        }
    }

    #[test]
    fn session_names_are_encoded_as_one_path_segment() {
        assert_eq!(templates::path_segment("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(templates::path_segment("sid-1.x_y~"), "sid-1.x_y~");
    }
}
