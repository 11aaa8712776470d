//! The request id that the response header, the logs and the audit log share: a client's
//! `X-Request-Id` when it is one short visible token, else a fresh UUID. Without this check a
//! client chose what every refused attempt stores (an anonymous request with a 50 KB id
//! stored all of it).
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The longest client-chosen request id that is kept.
pub const MAX_REQUEST_ID_BYTES: usize = 64;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Keeps one acceptable `X-Request-Id` as sent; replaces a missing, repeated, long or
/// otherwise unacceptable one with a fresh UUID before anything reads it.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    let kept = match (sent.next(), sent.next()) {
        (Some(one), None) => is_acceptable(one.as_bytes()),
        _ => false,
    };
    if !kept {
        headers.remove(&X_REQUEST_ID);
        headers.insert(X_REQUEST_ID, fresh());
    }
    next.run(request).await
}

/// At most [`MAX_REQUEST_ID_BYTES`] visible ASCII characters (`!` to `~`), at least one.
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&id.len()) && id.iter().all(|byte| (0x21..=0x7e).contains(byte))
}

fn fresh() -> HeaderValue {
    let id = uuid::Uuid::new_v4().to_string();
    // A UUID's text is always a valid header value.
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_kept() {
        assert!(is_acceptable(b"req-42"));
        assert!(is_acceptable(b"!~"));
        assert!(is_acceptable("a".repeat(MAX_REQUEST_ID_BYTES).as_bytes()));
        assert!(!is_acceptable("a".repeat(MAX_REQUEST_ID_BYTES + 1).as_bytes()));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"two words"));
        assert!(!is_acceptable(b"tab\there"));
        assert!(!is_acceptable("caf\u{e9}".as_bytes()));
        assert!(is_acceptable(fresh().as_bytes()));
    }
}
