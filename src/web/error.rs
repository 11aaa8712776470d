//! The one error type of the web layer. It answers JSON (`{"error", "field", "problems"}`);
//! [`render_errors`] turns any error response into an HTML page or fragment when a browser
//! asked for HTML, so handlers never care which.
use askama::Template;
use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::authz::Denial;
use crate::change::ChangeError;
use crate::cluster::ClusterError;
use crate::problem::{FieldProblem, describe};

use super::identity::actor_of;
use super::layout::Layout;
use super::state::AppState;

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

/// What [`render_errors`] needs to render an error as HTML.
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
            AppError::Conflict(_) => StatusCode::CONFLICT,
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
        let body = json!({
            "error": message,
            "field": problems.first().map(|p| p.field.clone()),
            "problems": problems,
        });
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

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    reason: String,
    details: ErrorDetails,
}

#[derive(Template)]
#[template(path = "partials/flash_error.html")]
struct ErrorFragment {
    details: ErrorDetails,
}

/// Renders error responses for the client that asked: JSON for the API and non-HTML
/// clients, a page for a browser, a fragment (into `#flash`) for htmx.
pub async fn render_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let wants_html = wants_html(&request);
    let is_htmx = super::htmx::Htmx::of(request.headers()).0;
    let (parts, body) = request.into_parts();
    let actor = actor_of(&parts, &state);
    let namespace = parts.uri.path().strip_prefix("/ns/").and_then(|rest| rest.split('/').next()).map(String::from);
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    if status.is_success() || status.is_redirection() || status.is_informational() {
        return response;
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    if content_type.starts_with(b"text/html") || (!wants_html && content_type.starts_with(b"application/json")) {
        return response;
    }
    // Kept on the page or fragment that replaces the JSON answer.
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let details = match response.extensions().get::<ErrorDetails>().cloned() {
        Some(details) => details,
        None => ErrorDetails { message: plain_message(response).await, problems: Vec::new() },
    };
    let mut response = html_or_json_error(&state, &actor, namespace.as_deref(), status, details, wants_html, is_htmx);
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// The error as the client asked for it: JSON, an htmx fragment or a whole page.
fn html_or_json_error(
    state: &AppState,
    actor: &crate::authz::Actor,
    namespace: Option<&str>,
    status: StatusCode,
    details: ErrorDetails,
    wants_html: bool,
    is_htmx: bool,
) -> Response {
    if !wants_html {
        return (status, Json(json!({"error": details.message, "field": null, "problems": []}))).into_response();
    }
    if is_htmx {
        let fragment = ErrorFragment { details };
        let mut response = (status, Html(fragment.render().unwrap_or_default())).into_response();
        super::htmx::retarget(&mut response, "#flash");
        return response;
    }
    let layout = Layout::new(state, actor, namespace);
    let page = ErrorPage {
        layout,
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        details,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => (status, format!("error page failed to render: {error}")).into_response(),
    }
}

fn wants_html(request: &Request) -> bool {
    let headers = request.headers();
    let accepts_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    !request.uri().path().starts_with("/api/") && (accepts_html || super::htmx::Htmx::of(headers).0)
}

async fn plain_message(response: Response) -> String {
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text }
}
