//! The web layer: one router, thin handlers, extractors, the error type and templates.
mod api;
mod audit_query;
mod csrf;
mod error;
mod extract;
mod host;
mod htmx;
mod identity;
mod layout;
mod links;
mod observed;
mod ops;
mod pages;
mod reverts;
mod route_test;
mod serve;
mod state;
mod static_files;
mod view;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use csrf::CsrfTokens;
pub use error::AppError;
pub use host::AllowedHosts;
pub use identity::IdentityPolicy;
pub use links::Links;
pub use observed::ObservedEdges;
pub use serve::{HEADER_READ_TIMEOUT, serve};
pub use state::{AppState, Shared};
pub use static_files::StaticFiles;

/// The largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;
/// How long one request may take, API server round trips included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every route of signalbox, in one place.
pub fn router(state: AppState, static_files: StaticFiles) -> Router {
    let pages = Router::new()
        .route("/", get(pages::home))
        .route("/ns/{ns}", get(pages::overview::page))
        .route("/ns/{ns}/partials/services", get(pages::overview::services))
        .route("/ns/{ns}/deploy", get(pages::deploy::page))
        .route("/ns/{ns}/partials/workload-status", get(pages::deploy::status))
        .route("/ns/{ns}/deploy/namespace", post(pages::deploy::create_namespace))
        .route("/ns/{ns}/deploy/reset", post(pages::deploy::reset))
        .route("/ns/{ns}/deploy/walkthrough", post(pages::walkthrough::apply))
        .route("/ns/{ns}/deploy/walkthrough/preview", post(pages::walkthrough::preview))
        .route("/ns/{ns}/deploy/{workload}", post(pages::deploy::deploy))
        .route("/ns/{ns}/deploy/{workload}/scale", post(pages::deploy::scale))
        .route("/ns/{ns}/deploy/{workload}/remove", post(pages::deploy::remove))
        .route("/ns/{ns}/routes", get(pages::routes::index))
        .route("/ns/{ns}/routes/{host}", get(pages::routes::page))
        .route("/ns/{ns}/routes/{host}/preview", post(pages::routes::preview))
        .route("/ns/{ns}/routes/{host}/apply", post(pages::routes::apply))
        .route("/ns/{ns}/routes/{host}/test", post(pages::routes::test))
        .route("/ns/{ns}/routes/{host}/sync", get(pages::proxy_sync::partial))
        .route("/ns/{ns}/canaries/{host}", get(pages::canary::page).post(pages::canary::start))
        .route("/ns/{ns}/canaries/{host}/{step}", post(pages::canary::step))
        .route("/audit", get(pages::audit::page))
        .route("/audit/{id}", get(pages::audit::entry))
        .route("/audit/{id}/revert/preview", post(pages::audit::revert_preview))
        .route("/audit/{id}/revert", post(pages::audit::revert))
        .route("/partials/audit", get(pages::audit::rows))
        .route("/partials/banner", get(pages::banner));

    let api = Router::new()
        .route("/api/v1/namespaces/{ns}/workloads", get(api::workloads::list))
        .route("/api/v1/namespaces/{ns}/workloads/{name}", put(api::workloads::put).delete(api::workloads::remove))
        .route("/api/v1/namespaces/{ns}/tutorial", put(api::workloads::walkthrough).delete(api::workloads::reset))
        .route(
            "/api/v1/namespaces/{ns}/routes/{host}",
            get(api::routes::get).put(api::routes::put).delete(api::routes::remove),
        )
        .route("/api/v1/namespaces/{ns}/routes/{host}/test", post(api::routes::test))
        .route("/api/v1/namespaces/{ns}/routes/{host}/version-services", post(api::routes::create_version_services))
        .route("/api/v1/namespaces/{ns}/routes/{host}/migrate", post(api::routes::migrate))
        .route("/api/v1/namespaces/{ns}/routes/{host}/sync", get(api::routes::sync))
        .route("/api/v1/namespaces/{ns}/canaries/{host}", get(api::canaries::get).post(api::canaries::start))
        .route("/api/v1/namespaces/{ns}/canaries/{host}/{step}", post(api::canaries::step))
        .route("/api/v1/audit", get(api::audit::list))
        .route("/api/v1/audit/verify", get(api::audit::verify))
        .route("/api/v1/audit/export", get(api::audit_export::export))
        .route("/api/v1/audit/{id}", get(api::audit::one))
        .route("/api/v1/audit/{id}/revert", post(api::audit::revert));

    let operations = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));

    let static_files = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .service(static_files);

    Router::new()
        .merge(pages)
        .merge(api)
        .merge(operations)
        .route_layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .nest_service("/static", static_files)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), view::sign_in_guard))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::guard))
        // Inside the error pages, so a refused identity gets a readable 400.
        .layer(middleware::from_fn_with_state(state.clone(), identity::guard))
        .layer(middleware::from_fn_with_state(state.clone(), error::render_errors))
        // Outside the error pages: a refused Host gets a plain 421 and no page or token.
        .layer(middleware::from_fn_with_state(state.clone(), host::guard))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(security_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(security_header(header::REFERRER_POLICY, "same-origin"))
                .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
                .layer(CompressionLayer::new())
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
                .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
        )
        .with_state(state)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

fn request_span(request: &Request) -> tracing::Span {
    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.observe_request(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> AppError {
    AppError::NotFound("no such page".into())
}
