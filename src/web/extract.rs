//! Extractors that turn bad input into [`AppError`]s with field paths.
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::audit::Source;
use crate::authz::Actor;
use crate::change::workloads::Origin;
use crate::problem::{FieldProblem, check_dns_label};

use super::BODY_LIMIT_BYTES;
use super::error::AppError;
use super::identity::actor_of;
use super::state::AppState;
use super::view::ensure_visible;

/// A JSON body; a malformed one is a 400 (syntax) or 422 (shape) naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, _state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes =
            axum::body::to_bytes(request.into_body(), BODY_LIMIT_BYTES).await.map_err(|_| AppError::PayloadTooLarge)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON, naming the offending field on failure.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let body = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = error.path().to_string();
        let inner = error.into_inner();
        let field = if field == "." { String::new() } else { field };
        let problem = FieldProblem::new(field, inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            AppError::BadRequest(vec![problem])
        } else {
            AppError::Invalid(vec![problem])
        }
    })
}

/// A managed namespace from the path (`{ns}`); others are 404.
pub struct ManagedNamespace(pub String);

impl FromRequestParts<AppState> for ManagedNamespace {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|error| AppError::BadRequest(vec![FieldProblem::new("namespace", error.to_string())]))?;
        let param = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let namespace = param("ns").unwrap_or_default().to_owned();
        check_dns_label("namespace", &namespace).map_err(|problem| AppError::BadRequest(vec![problem]))?;
        if !state.changes.authorizer().is_managed(&namespace) {
            return Err(AppError::NotFound(format!("namespace {namespace} is not managed by this console")));
        }
        // Reads show only what the actor may view; changes are the change path's to refuse
        // (and audit).
        if parts.method.is_safe() {
            let host = param("host").map(String::from).or_else(|| param("workload").and_then(workload_host));
            ensure_visible(state, &actor_of(parts, state), &namespace, host.as_deref())?;
        }
        Ok(ManagedNamespace(namespace))
    }
}

/// The host a workload of the path belongs to (an unknown one is the handler's to refuse).
fn workload_host(name: &str) -> Option<String> {
    crate::tutorial::Workload::parse(name).map(|workload| workload.app().to_owned())
}

/// Whether the request came from htmx (it wants a fragment, not a page).
pub struct Htmx(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Htmx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Htmx(parts.headers.contains_key("hx-request")))
    }
}

/// The request id set by the request-id layer, for the audit log.
pub struct RequestId(pub Option<String>);

impl RequestId {
    /// Who asked for a change, through which door, under this request id.
    pub fn origin(self, actor: Actor, source: Source) -> Origin {
        Origin { actor, source, request_id: self.0 }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(String::from)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        replicas: Option<i32>,
    }

    #[test]
    fn shape_errors_name_the_field() {
        let error = parse_json::<Body>(br#"{"replicas": "two"}"#).unwrap_err();
        assert!(matches!(&error, AppError::Invalid(p) if p[0].field == "replicas"), "{error:?}");
        let error = parse_json::<Body>(br#"{"replicas": -1.5}"#).unwrap_err();
        assert!(matches!(&error, AppError::Invalid(p) if p[0].field == "replicas"), "{error:?}");
    }

    #[test]
    fn syntax_errors_are_bad_requests_and_empty_bodies_are_empty_objects() {
        assert!(matches!(parse_json::<Body>(b"{not json"), Err(AppError::BadRequest(_))));
        assert!(parse_json::<Body>(b"").unwrap().replicas.is_none());
    }
}
