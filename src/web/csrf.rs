//! CSRF defence for every state-changing request.
//!
//! A browser request (it carries `Origin` or `Sec-Fetch-Site`) must be same-origin and carry
//! the actor's token, in the `X-CSRF-Token` header (htmx) or the `csrf_token` form field
//! (plain forms). A request with neither header comes from a non-browser client and is allowed
//! for methods and bodies a cross-site page cannot send without a CORS preflight (which
//! signalbox never grants): anything but POST, a JSON POST, or a POST without a body (no
//! Content-Type, no Content-Length or 0), like `curl -X POST "$C/promote?step=0"`: a
//! cross-site form always sends a body type, and a body-less cross-site `fetch` carries
//! `Origin`, so it is judged as a browser's.
use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::BODY_LIMIT_BYTES;
use super::error::AppError;
use super::identity::IdentityPolicy;
use super::identity::actor_of;

pub const TOKEN_HEADER: &str = "x-csrf-token";
pub const TOKEN_FIELD: &str = "csrf_token";

/// Issues and checks per-actor tokens, keyed by a secret that lives as long as the process.
pub struct CsrfTokens {
    secret: [u8; 32],
}

impl Default for CsrfTokens {
    fn default() -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self { secret }
    }
}

impl CsrfTokens {
    pub fn token_for(&self, actor: &str) -> String {
        hex::encode(self.mac(actor).finalize().into_bytes())
    }

    fn is_valid(&self, actor: &str, token: &str) -> bool {
        hex::decode(token).is_ok_and(|bytes| self.mac(actor).verify_slice(&bytes).is_ok())
    }

    fn mac(&self, actor: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(actor.as_bytes());
        mac
    }
}

pub async fn guard(
    State(tokens): State<Arc<CsrfTokens>>,
    State(identity): State<Arc<IdentityPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    if !is_browser(headers) {
        if parts.method != Method::POST || is_json(headers) {
            return next.run(Request::from_parts(parts, body)).await;
        }
        if declares_no_body(headers) {
            return pass_if_empty(parts, body, next).await;
        }
        return refuse("a POST without Origin must be JSON (Content-Type: application/json) or have no body");
    }
    if !is_same_origin(headers) {
        return refuse("cross-site request refused");
    }
    let actor = actor_of(&parts, &identity).name;
    if let Some(token) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return if tokens.is_valid(&actor, token) {
            next.run(Request::from_parts(parts, body)).await
        } else {
            refuse("the CSRF token is not valid; reload the page")
        };
    }
    // A plain form: the token is a field of the body, so read it (bounded) and pass it on.
    let Ok(bytes) = to_bytes(body, BODY_LIMIT_BYTES).await else {
        return AppError::PayloadTooLarge.into_response();
    };
    let form_token = form_urlencoded::parse(&bytes).find(|(key, _)| key == TOKEN_FIELD).map(|(_, v)| v);
    match form_token {
        Some(token) if tokens.is_valid(&actor, &token) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Some(_) => refuse("the CSRF token is not valid; reload the page"),
        None => refuse("the CSRF token is missing; reload the page"),
    }
}

/// Passes a request that declared no body on, after checking it sent none: a body the
/// headers did not announce (one a browser could have typed) is not let through unseen.
async fn pass_if_empty(parts: axum::http::request::Parts, body: Body, next: Next) -> Response {
    match to_bytes(body, 0).await {
        Ok(_) => next.run(Request::from_parts(parts, Body::empty())).await,
        Err(_) => refuse("a POST without Origin must be JSON (Content-Type: application/json) or have no body"),
    }
}

/// No Content-Type, and a Content-Length of 0 or none (and no chunked body).
fn declares_no_body(headers: &HeaderMap) -> bool {
    let length_zero_or_absent = headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
    !headers.contains_key(header::CONTENT_TYPE)
        && !headers.contains_key(header::TRANSFER_ENCODING)
        && length_zero_or_absent
}

fn refuse(message: &str) -> Response {
    AppError::Forbidden(message.to_owned()).into_response()
}

fn is_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN) || headers.contains_key("sec-fetch-site")
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

fn is_same_origin(headers: &HeaderMap) -> bool {
    let fetch_site_ok = headers.get("sec-fetch-site").map(|v| v.as_bytes() == b"same-origin").unwrap_or(true);
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let origin = origin.to_str().unwrap_or_default();
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            !host.is_empty() && authority == Some(host)
        }
    };
    fetch_site_ok && origin_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn tokens_are_bound_to_the_actor() {
        let tokens = CsrfTokens::default();
        let token = tokens.token_for("alice");
        assert!(tokens.is_valid("alice", &token));
        assert!(!tokens.is_valid("bob", &token));
        assert!(!tokens.is_valid("alice", "not-hex"));
        assert!(!CsrfTokens::default().is_valid("alice", &token));
    }

    #[test]
    fn only_a_request_without_type_or_length_declares_no_body() {
        assert!(declares_no_body(&headers(&[])));
        assert!(declares_no_body(&headers(&[("content-length", "0")])));
        assert!(!declares_no_body(&headers(&[("content-length", "3")])));
        assert!(!declares_no_body(&headers(&[("content-type", "text/plain")])));
        assert!(!declares_no_body(&headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "0")
        ])));
        assert!(!declares_no_body(&headers(&[("transfer-encoding", "chunked")])));
    }

    #[test]
    fn same_origin_needs_matching_origin_and_fetch_site() {
        assert!(is_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])));
        assert!(is_same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!is_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])));
        assert!(!is_same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_same_origin(&headers(&[("origin", "null"), ("host", "a")])));
    }
}
