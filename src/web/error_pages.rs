//! Error answers as the client asked for them: JSON for the API and non-HTML clients, a
//! page for a browser, a fragment (into `#flash`) for htmx.
use askama::Template;
use axum::Json;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::error::ErrorDetails;
use super::htmx;
use super::identity::actor_of;
use super::layout::Layout;
use super::state::AppState;

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
    let is_htmx = htmx::Htmx::of(request.headers()).0;
    let (parts, body) = request.into_parts();
    let actor = actor_of(&parts, &state.identity);
    let namespace = parts.uri.path().strip_prefix("/ns/").and_then(|rest| rest.split('/').next()).map(String::from);
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    // A change held for approval answers 202 with the proposal: for a page, in words too.
    let held = status == StatusCode::ACCEPTED && response.extensions().get::<ErrorDetails>().is_some();
    if (status.is_success() && !held) || status.is_redirection() || status.is_informational() {
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
        htmx::retarget(&mut response, "#flash");
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
    !request.uri().path().starts_with("/api/") && (accepts_html || htmx::Htmx::of(headers).0)
}

async fn plain_message(response: Response) -> String {
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text }
}
