//! Request methods: any method is a token a client may make up, so one signalbox does not
//! know is answered `405` before identity, routing or metrics look at the request, and the
//! logs and metrics name it only as `other`.
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::state::AppState;
use crate::metrics::{KNOWN_METHODS, method_label};

const ALLOWED: &str = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";

/// Answers a method outside [`KNOWN_METHODS`] with 405 (and `Allow`) at once; counts it
/// under `method="other"`.
pub async fn refuse_unknown(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if KNOWN_METHODS.contains(&request.method().as_str()) {
        return next.run(request).await;
    }
    state.metrics.observe_refused_method(StatusCode::METHOD_NOT_ALLOWED.as_u16());
    let message = format!("method not allowed: signalbox answers {ALLOWED}\n");
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, HeaderValue::from_static(ALLOWED))], message).into_response()
}

/// How logs name a request's method: a known one as it is, any other as `other`.
pub fn logged(request: &Request) -> &'static str {
    method_label(request.method().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_header_lists_exactly_the_known_methods() {
        assert_eq!(ALLOWED.split(", ").collect::<Vec<_>>(), KNOWN_METHODS);
    }
}
