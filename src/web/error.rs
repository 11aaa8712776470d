//! The one error type of the web layer. It answers JSON (`{"error", "field", "problems"}`);
//! [`super::error_pages::render_errors`] turns any error response into an HTML page or
//! fragment when a browser asked for HTML, so handlers never care which.
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::authz::Denial;
use crate::change::ChangeError;
use crate::cluster::ClusterError;
use crate::problem::{FieldProblem, describe};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    #[error("{}", describe(.0))]
    BadRequest(Vec<FieldProblem>),
    #[error("{}", describe(.0))]
    Invalid(Vec<FieldProblem>),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The change is held for a second person's approval (202), as this proposal.
    #[error("{message}")]
    Accepted { message: String, proposal_id: i64 },
    /// The change would overwrite an object a GitOps tool owns (409, naming the owner).
    #[error("{message}")]
    Owned { message: String, owner: crate::change::gitops::GitOwner },
    /// A change freeze holds the namespace (423 Locked).
    #[error("{0}")]
    Locked(String),
    #[error("the request body is larger than the limit")]
    PayloadTooLarge,
    #[error("{0}")]
    Unavailable(String),
    /// Too many refused attempts lately; the client may try again after this many seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_seconds: u64 },
    /// The request's Host is not one of the console's names (DNS rebinding): answered as
    /// plain text and nothing else, before identity, pages or tokens are looked at.
    #[error("{0}")]
    MisdirectedRequest(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What [`super::error_pages::render_errors`] needs to render an error as HTML.
#[derive(Debug, Clone)]
pub struct ErrorDetails {
    pub message: String,
    pub problems: Vec<FieldProblem>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) | AppError::Owned { .. } => StatusCode::CONFLICT,
            AppError::Locked(_) => StatusCode::LOCKED,
            AppError::Accepted { .. } => StatusCode::ACCEPTED,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn problems(&self) -> &[FieldProblem] {
        match self {
            AppError::BadRequest(problems) | AppError::Invalid(problems) => problems,
            _ => &[],
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(vec![FieldProblem::new(field, message)])
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        if let AppError::MisdirectedRequest(message) = self {
            return (StatusCode::MISDIRECTED_REQUEST, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message)
                .into_response();
        }
        let retry_after = match &self {
            AppError::TooManyRequests { retry_after_seconds, .. } => Some(*retry_after_seconds),
            _ => None,
        };
        let message = self.to_string();
        let problems = self.problems().to_vec();
        let mut body = json!({
            "error": message,
            "field": problems.first().map(|p| p.field.clone()),
            "problems": problems,
        });
        if let AppError::Owned { owner, .. } = &self {
            body["owner"] = json!(owner);
        }
        if let AppError::Accepted { proposal_id, .. } = &self {
            body = json!({"proposalId": proposal_id, "status": "awaiting approval", "message": message});
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorDetails { message, problems });
        response
    }
}

impl From<ChangeError> for AppError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::Denied(Denial::Unauthenticated) => {
                AppError::Unauthenticated(Denial::Unauthenticated.to_string())
            }
            ChangeError::Denied(
                denial @ (Denial::Forbidden { .. } | Denial::Reaches { .. } | Denial::Operation { .. }),
            ) => AppError::Forbidden(denial.to_string()),
            ChangeError::Denied(denial @ Denial::Unmanaged(_)) => AppError::NotFound(denial.to_string()),
            ChangeError::Invalid(problems) => AppError::Invalid(problems),
            ChangeError::Cluster(error) => error.into(),
            ChangeError::AuditUnavailable(_) => AppError::Unavailable(error.to_string()),
            ChangeError::Stale(_) => AppError::Conflict(error.to_string()),
            ChangeError::Frozen { .. } => AppError::Locked(error.to_string()),
            ChangeError::Held(ref held) => {
                AppError::Accepted { message: error.to_string(), proposal_id: held.proposal_id }
            }
            ChangeError::Owned(owned) => AppError::Owned { message: owned.message(), owner: owned.owner },
            ChangeError::TooManyRefusals(wait) => AppError::TooManyRequests {
                message: error.to_string(),
                // Whole seconds, rounded up: a client waiting this long finds a token.
                retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u64,
            },
        }
    }
}

impl From<crate::change::rollout::RolloutError> for AppError {
    fn from(error: crate::change::rollout::RolloutError) -> Self {
        use crate::change::rollout::RolloutError;
        match error {
            RolloutError::Invalid(problems) => AppError::Invalid(problems),
            RolloutError::Conflict(message) => AppError::Conflict(message),
            RolloutError::NotFound(message) => AppError::NotFound(message),
            RolloutError::Policy(error) => error.into(),
            RolloutError::Cluster(error) => error.into(),
            RolloutError::Change(error) => error.into(),
        }
    }
}

impl From<crate::change::revert::RevertError> for AppError {
    fn from(error: crate::change::revert::RevertError) -> Self {
        use crate::change::revert::{RevertError, RevertRefused};
        match error {
            RevertError::Refused(refused @ RevertRefused::ChangedSince(_)) => AppError::Conflict(refused.to_string()),
            RevertError::Refused(refused @ (RevertRefused::NotApplied(_) | RevertRefused::NotStored(_))) => {
                AppError::invalid("id", refused.to_string())
            }
            RevertError::Cluster(error) => error.into(),
        }
    }
}

impl From<crate::routing::RoutingError> for AppError {
    fn from(error: crate::routing::RoutingError) -> Self {
        use crate::routing::RoutingError;
        match error {
            RoutingError::Change(error) => error.into(),
            RoutingError::Conflict(message) => AppError::Conflict(message),
            RoutingError::NotFound(message) => AppError::NotFound(message),
            RoutingError::Invalid(problems) => AppError::Invalid(problems),
            RoutingError::Cluster(error) => error.into(),
            RoutingError::Unavailable(message) => AppError::Unavailable(message),
        }
    }
}

impl From<crate::policy::PolicyError> for AppError {
    /// Live routing signalbox cannot take as one policy is a state conflict, not bad input.
    fn from(error: crate::policy::PolicyError) -> Self {
        match error {
            crate::policy::PolicyError::Ambiguous(reason) => AppError::Conflict(reason),
            other => AppError::Conflict(format!("the live routing is not understood: {other}")),
        }
    }
}

impl From<ClusterError> for AppError {
    fn from(error: ClusterError) -> Self {
        let message = error.to_string();
        match error.status_code() {
            409 => {
                AppError::Conflict(format!("the object changed since it was read; reload and try again ({message})"))
            }
            404 => AppError::NotFound(message),
            400 | 422 => {
                AppError::Invalid(vec![FieldProblem::new("", format!("the API server refused the change: {message}"))])
            }
            401 | 403 => AppError::Forbidden(format!("the API server refused signalbox: {message}")),
            _ => AppError::Unavailable(message),
        }
    }
}

impl From<crate::audit::AuditError> for AppError {
    fn from(error: crate::audit::AuditError) -> Self {
        AppError::Unavailable(error.to_string())
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Internal(format!("template: {error}"))
    }
}
