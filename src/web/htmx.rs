//! htmx's headers, typed: which requests want a fragment, and how a response sends htmx
//! elsewhere (another page, or an error into another element).
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

const HX_REQUEST: &str = "hx-request";
const HX_REDIRECT: &str = "hx-redirect";
const HX_RETARGET: &str = "hx-retarget";
const HX_RESWAP: &str = "hx-reswap";

/// Whether the request came from htmx (it wants a fragment, not a page).
#[derive(Clone, Copy)]
pub struct Htmx(pub bool);

impl Htmx {
    pub fn of(headers: &HeaderMap) -> Self {
        Htmx(headers.contains_key(HX_REQUEST))
    }

    /// After a form's change: htmx loads `target` (`HX-Redirect`), a plain form is
    /// redirected there (POST/redirect/GET).
    pub fn redirect(self, target: &str) -> Response {
        match self {
            Htmx(true) => match HeaderValue::from_str(target) {
                Ok(value) => (StatusCode::OK, [(HX_REDIRECT, value)]).into_response(),
                Err(_) => Redirect::to(target).into_response(),
            },
            Htmx(false) => Redirect::to(target).into_response(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Htmx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Htmx::of(&parts.headers))
    }
}

/// Puts the response's HTML into `selector`'s content instead of the requesting element's.
pub fn retarget(response: &mut Response, selector: &'static str) {
    response.headers_mut().insert(HX_RETARGET, HeaderValue::from_static(selector));
    response.headers_mut().insert(HX_RESWAP, HeaderValue::from_static("innerHTML"));
}
