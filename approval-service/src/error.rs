//! The service's error enum and its one mapping to HTTP responses.
//!
//! The verdict API answers errors as JSON `{"error": "..."}`; the reviewer pages answer them as
//! an HTML page. Which one is decided by the variant, here and nowhere else.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::issuer::TokenError;
use crate::store::{StoreError, TicketStatus};
use crate::templates;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The verdict request is not valid JSON of the protocol's shape, or breaks a rule of it.
    #[error("invalid verdict request: {message}")]
    BadVerdictRequest {
        /// What is wrong, naming the field.
        message: String,
    },
    /// The store failed while deciding a push; the filter then fails closed.
    #[error("the verdict store failed: {0}")]
    VerdictStore(StoreError),
    /// A reviewer page was asked for without a valid session.
    #[error("sign-in required")]
    SignInRequired {
        /// Where to return after signing in (a local path).
        next: String,
    },
    /// A token was presented at sign-in and refused.
    #[error("sign-in refused: {0}")]
    SignInRefused(TokenError),
    /// The identity provider cannot be reached or answered something unusable.
    #[error("sign-in is unavailable: {message}")]
    SignInUnavailable {
        /// What failed (never a code, token or secret).
        message: String,
    },
    /// A form's CSRF token is missing or does not belong to the session.
    #[error("the form's CSRF token is missing or wrong")]
    CsrfRejected,
    /// A form field is missing or out of bounds.
    #[error("bad form: {message}")]
    BadForm {
        /// What is wrong, naming the field.
        message: String,
    },
    /// The reviewer pushed the update, or it was pushed on their behalf.
    #[error("separation of duties: {message}")]
    SeparationOfDuties {
        /// Which rule the reviewer would break.
        message: String,
    },
    /// The reviewer is not in the ticket's approver group.
    #[error("reviewer is not in the approver group {group}")]
    NotApprover {
        /// The ticket's approver group.
        group: String,
    },
    /// No ticket has this id.
    #[error("no ticket {id}")]
    TicketNotFound {
        /// The id asked for.
        id: String,
    },
    /// The ticket was decided already.
    #[error("ticket {id} is already {}", status.as_str())]
    TicketAlreadyDecided {
        /// The ticket.
        id: String,
        /// Its status.
        status: TicketStatus,
    },
    /// The store failed while serving a page.
    #[error("the store failed: {0}")]
    PageStore(StoreError),
    /// A page template failed to render.
    #[error("a page failed to render: {0}")]
    Render(#[from] minijinja::Error),
    /// The event batch is not valid JSON of the protocol's shape, or breaks a rule of it.
    #[error("invalid event batch: {message}")]
    BadEventBatch {
        /// What is wrong, naming the field.
        message: String,
    },
    /// An audit query's parameter is malformed.
    #[error("invalid audit query: {message}")]
    BadAuditQuery {
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// The audit store failed; the filter retries write events.
    #[error("the audit store failed: {0}")]
    AuditStore(StoreError),
    /// The audit API was asked without a reviewer session or reviewer token.
    #[error("the audit record needs a reviewer session or a reviewer bearer token")]
    AuditUnauthorized,
    /// The audit API has nothing under this name.
    #[error("{what}")]
    AuditNotFound {
        /// What was not found.
        what: String,
    },
    /// A filter API request without the filter's token, or with another one.
    #[error("filter token {}", refusal.as_str())]
    FilterUnauthorized {
        /// Missing or wrong; never the value presented.
        refusal: crate::filter_auth::Refusal,
    },
    /// The audit page of a session that has no record.
    #[error("no audit session {session:?}")]
    AuditSessionNotFound {
        /// The session asked for.
        session: String,
    },
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadVerdictRequest { .. } | AppError::BadForm { .. } => {
                StatusCode::BAD_REQUEST
            }
            AppError::BadEventBatch { .. } | AppError::BadAuditQuery { .. } => {
                StatusCode::BAD_REQUEST
            }
            AppError::AuditStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::AuditUnauthorized => StatusCode::UNAUTHORIZED,
            AppError::FilterUnauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::AuditNotFound { .. } | AppError::AuditSessionNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            AppError::VerdictStore(_) | AppError::PageStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            AppError::SignInRefused(TokenError::NotReviewer | TokenError::NotAPerson)
            | AppError::CsrfRejected
            | AppError::SeparationOfDuties { .. }
            | AppError::NotApprover { .. } => StatusCode::FORBIDDEN,
            AppError::SignInRefused(_) => StatusCode::UNAUTHORIZED,
            AppError::SignInUnavailable { .. } => StatusCode::BAD_GATEWAY,
            AppError::TicketNotFound { .. } => StatusCode::NOT_FOUND,
            AppError::TicketAlreadyDecided { .. } => StatusCode::CONFLICT,
            AppError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page title and the sentence shown to the reviewer.
    fn page_text(&self) -> (&'static str, String) {
        match self {
            AppError::SignInRefused(TokenError::NotReviewer) => (
                "Not a reviewer",
                "This token is valid but does not carry the role reviewer, so it cannot sign in \
                 to the reviewer pages."
                    .to_owned(),
            ),
            AppError::SignInRefused(TokenError::NotAPerson) => (
                "Not a person",
                "This token is an agent's, or delegated to one (an act or act_for claim). \
                 Reviews are people's own decisions: sign in with your own token."
                    .to_owned(),
            ),
            AppError::SignInRefused(reason) => (
                "Sign-in refused",
                format!("The token was not accepted: {reason}."),
            ),
            AppError::SignInUnavailable { .. } => (
                "Sign-in unavailable",
                "The identity provider cannot be reached right now. Try again shortly.".to_owned(),
            ),
            AppError::CsrfRejected => (
                "Form refused",
                "The form did not carry this session's CSRF token. Reload the page and try again."
                    .to_owned(),
            ),
            AppError::BadForm { message } => ("Form incomplete", format!("{message}.")),
            AppError::SeparationOfDuties { message } => {
                ("Separation of duties", format!("{message}."))
            }
            AppError::NotApprover { group } => (
                "Not an approver",
                format!("Deciding this ticket needs membership in the group {group}."),
            ),
            AppError::TicketNotFound { id } => {
                ("No such ticket", format!("There is no ticket {id}."))
            }
            AppError::TicketAlreadyDecided { id, status } => (
                "Already decided",
                format!("Ticket {id} is already {}.", status.as_str()),
            ),
            AppError::PageStore(_) | AppError::VerdictStore(_) => (
                "Store unavailable",
                "The ticket store cannot be reached right now. Try again shortly.".to_owned(),
            ),
            AppError::Render(_) => ("Page error", "This page failed to render.".to_owned()),
            AppError::BadVerdictRequest { message } => ("Bad request", message.clone()),
            AppError::SignInRequired { .. } => ("Sign in", "Please sign in.".to_owned()),
            AppError::AuditSessionNotFound { session } => (
                "No such session",
                format!("The audit record has no session {session}."),
            ),
            AppError::BadEventBatch { message } | AppError::BadAuditQuery { message } => {
                ("Bad request", message.clone())
            }
            AppError::AuditStore(_) => (
                "Store unavailable",
                "The audit store cannot be reached right now. Try again shortly.".to_owned(),
            ),
            AppError::AuditUnauthorized => ("Sign in", "Please sign in.".to_owned()),
            AppError::FilterUnauthorized { .. } => (
                "Unauthorized",
                "This endpoint is for the gitgate filter.".to_owned(),
            ),
            AppError::AuditNotFound { what } => ("Not found", format!("{what}.")),
        }
    }
}

/// Maps a form that does not decode to [`AppError::BadForm`]. The decoder's own text is not
/// kept: it may quote submitted values, and the sign-in form carries a token.
pub fn unreadable_form(_: axum::extract::rejection::FormRejection) -> AppError {
    AppError::BadForm {
        message: "the form could not be read".to_owned(),
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            AppError::VerdictStore(error)
            | AppError::PageStore(error)
            | AppError::AuditStore(error) => {
                tracing::error!(%error, "store failure");
            }
            AppError::Render(error) => tracing::error!(%error, "template failure"),
            other => tracing::info!(error = %other, "request refused"),
        }
        match self {
            AppError::BadVerdictRequest { message } => {
                (status, Json(serde_json::json!({ "error": message }))).into_response()
            }
            AppError::VerdictStore(_) => {
                let body = serde_json::json!({ "error": "the verdict store is unavailable" });
                (status, Json(body)).into_response()
            }
            AppError::BadEventBatch { message } | AppError::BadAuditQuery { message } => {
                (status, Json(serde_json::json!({ "error": message }))).into_response()
            }
            AppError::AuditStore(_) => {
                let body = serde_json::json!({ "error": "the audit store is unavailable" });
                (status, Json(body)).into_response()
            }
            AppError::AuditUnauthorized => {
                let body = serde_json::json!({ "error": "a reviewer session or token is needed" });
                (status, Json(body)).into_response()
            }
            AppError::AuditNotFound { what } => {
                (status, Json(serde_json::json!({ "error": what }))).into_response()
            }
            AppError::FilterUnauthorized { refusal } => {
                let message = format!(
                    "the {} header is {}: this endpoint is for the gitgate filter",
                    crate::filter_auth::HEADER,
                    refusal.as_str()
                );
                (status, Json(serde_json::json!({ "error": message }))).into_response()
            }
            AppError::SignInRequired { next } => {
                let target = format!("/login?next={}", templates::url_encode(&next));
                Redirect::to(&target).into_response()
            }
            other => {
                let (title, message) = other.page_text();
                match templates::error_page(status.as_u16(), title, &message) {
                    Ok(html) => (status, templates::html(html)).into_response(),
                    Err(_) => {
                        let text = format!("{title}: {message}\n");
                        (
                            status,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            text,
                        )
                            .into_response()
                    }
                }
            }
        }
    }
}
