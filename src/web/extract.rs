//! Extractors that turn bad input into [`AppError`]s with field paths.
use std::sync::Arc;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::audit::Source;
use crate::change::Origin;
use crate::problem::{FieldProblem, check_dns_label};

use super::BODY_LIMIT_BYTES;
use super::error::AppError;
use super::identity::{IdentityPolicy, actor_of};
use super::state::AppState;

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

/// A managed namespace from the path (`{ns}`); others are 404. Whether the actor may view
/// it (or the path's host) is the View gate's to say ([`super::view::gate`]).
pub struct ManagedNamespace(pub String);

/// A managed namespace and a host from the path (`{ns}`, `{host}`): the host must be a DNS
/// label (400 naming `host`).
pub struct ManagedHost {
    pub namespace: String,
    pub host: String,
}

impl FromRequestParts<AppState> for ManagedNamespace {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        let namespace = managed_namespace(state, &params)?;
        host_param(&params)?;
        Ok(ManagedNamespace(namespace))
    }
}

impl FromRequestParts<AppState> for ManagedHost {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params = path_params(parts, state).await?;
        let namespace = managed_namespace(state, &params)?;
        let host = host_param(&params)?.ok_or_else(|| AppError::invalid("host", "the path names no host"))?;
        Ok(ManagedHost { namespace, host })
    }
}

async fn path_params(parts: &mut Parts, state: &AppState) -> Result<Vec<(String, String)>, AppError> {
    let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
        .await
        .map_err(|error| AppError::BadRequest(vec![FieldProblem::new("namespace", error.to_string())]))?;
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn managed_namespace(state: &AppState, params: &[(String, String)]) -> Result<String, AppError> {
    let namespace = param(params, "ns").unwrap_or_default().to_owned();
    check_dns_label("namespace", &namespace).map_err(|problem| AppError::BadRequest(vec![problem]))?;
    if !state.changes.authorizer().is_managed(&namespace) {
        return Err(AppError::NotFound(state.changes.authorizer().why_unmanaged(&namespace)));
    }
    Ok(namespace)
}

fn host_param(params: &[(String, String)]) -> Result<Option<String>, AppError> {
    let Some(host) = param(params, "host") else { return Ok(None) };
    check_dns_label("host", host).map_err(|problem| AppError::BadRequest(vec![problem]))?;
    Ok(Some(host.to_owned()))
}

/// A tutorial workload by name; another name is a 404 listing the known ones.
pub fn parse_workload(name: &str) -> Result<crate::tutorial::Workload, AppError> {
    use crate::tutorial::Workload;
    Workload::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Workload::ALL.iter().map(|w| w.name()).collect();
        AppError::NotFound(format!("{name} is not a tutorial workload; one of {}", known.join(", ")))
    })
}

pub use super::htmx::Htmx;

/// Longer emergency reasons are cut: the reason is a line in the audit, not a report.
const EMERGENCY_CHARS: usize = 200;

/// The reason an admin gives for changing a frozen namespace: `?emergency=<reason>` (the
/// API) or the `X-Signalbox-Emergency` header (the pages' field, sent by app.js).
fn emergency(parts: &Parts) -> Option<String> {
    let from_query = parts.uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "emergency")
            .map(|(_, value)| value.into_owned())
    });
    let from_header = || parts.headers.get("x-signalbox-emergency").and_then(|v| v.to_str().ok()).map(String::from);
    let reason = one_line(&from_query.or_else(from_header)?, EMERGENCY_CHARS);
    (!reason.is_empty()).then_some(reason)
}

/// A reason someone typed, as one line for the audit log: trimmed, without control
/// characters (line breaks included), at most `max_chars` long.
pub fn one_line(text: &str, max_chars: usize) -> String {
    text.trim().chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

/// Who asks for a change, through which door (the JSON API under `/api/`, else the pages),
/// under the request id the request-id layer set (for the audit log).
pub struct Asked(pub Origin);

impl<S: Send + Sync> FromRequestParts<S> for Asked
where
    Arc<IdentityPolicy>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let actor = actor_of(parts, &Arc::<IdentityPolicy>::from_ref(state));
        let source = if parts.uri.path().starts_with("/api/") { Source::Api } else { Source::Ui };
        let request_id = parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(String::from);
        Ok(Asked(Origin { actor, source, request_id, emergency: emergency(parts) }))
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
