//! A page around kept HTML, sent without copying the kept part.
//!
//! The overview's services partial is most of its bytes (tens of KB at 150 Deployments)
//! and is kept between views; writing it into each page's `String` copied it and allocated a
//! buffer that large per view (BENCHMARKS.md, issue 15 §3). The page is rendered with
//! [`HOLE`] where the part goes and sent as three chunks: before, the shared part, after.
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::web::error::AppError;

/// Marks where the kept part goes. Rendered data cannot contain it: templates escape `<`.
pub const HOLE: &str = "<!--kept-part-->";

/// Kept HTML as a response body chunk, shared rather than copied.
pub struct Shared(pub Arc<str>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The response of `page` with `part` in place of its [`HOLE`].
pub fn response(mut page: String, part: Arc<str>) -> Result<Response, AppError> {
    let at = page.find(HOLE).ok_or_else(|| AppError::Internal("the page has no place for its kept part".into()))?;
    let after = Bytes::from(page.split_off(at + HOLE.len()));
    page.truncate(at);
    let chunks = [Bytes::from(page), Bytes::from_owner(Shared(part)), after];
    let body = Body::from_stream(futures::stream::iter(chunks.map(Ok::<_, Infallible>)));
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_part_is_sent_in_place_of_the_hole() {
        let response = response(format!("<p>a</p>{HOLE}<p>c</p>"), Arc::from("<p>b</p>")).unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&body[..], b"<p>a</p><p>b</p><p>c</p>");
    }

    #[test]
    fn a_page_without_a_hole_is_an_internal_error() {
        assert!(matches!(response("<p>a</p>".into(), Arc::from("b")), Err(AppError::Internal(_))));
    }
}
