//! The web layer: one router, thin handlers, extractors, the error type and templates.
mod api;
mod audit_query;
mod csrf;
mod error;
mod error_pages;
mod extract;
mod host;
mod htmx;
mod identity;
mod layout;
mod links;
mod listen;
mod methods;
mod ops;
mod pages;
mod request_id;
mod serve;
mod state;
mod static_files;
mod view;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, post, put};
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
pub use identity::{IdentityPolicy, TrustedProxy};
pub use links::Links;
pub use listen::{Listen, Listener, Peer};
pub use serve::{HEADER_READ_TIMEOUT, serve};
pub use state::{AppState, Shared};
pub use static_files::StaticFiles;

/// The largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;
/// How long one request may take, API server round trips included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One route of the router: its method and path template, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
}

/// The router being built together with the list of what it serves, so that tests can walk
/// every route without a list of their own to keep in step.
struct Routes {
    router: Router<AppState>,
    listed: Vec<RouteSpec>,
}

impl Routes {
    fn new() -> Self {
        Self { router: Router::new(), listed: Vec::new() }
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.listed.push(RouteSpec { method, path });
        // axum merges the method routers of one path.
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, post(handler))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PUT, path, put(handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, delete(handler))
    }
}

/// Every route of signalbox, in one place: pages and their partials, the JSON API, probes.
fn every_route() -> Routes {
    Routes::new()
        .get("/", pages::home)
        .get("/namespaces", pages::namespaces::page)
        .get("/partials/namespaces", pages::namespaces::rows)
        .get("/ns/{ns}", pages::overview::page)
        .get("/ns/{ns}/partials/services", pages::overview::services)
        .get("/ns/{ns}/deploy", pages::deploy::page)
        .get("/ns/{ns}/partials/workload-status", pages::deploy::status)
        .post("/ns/{ns}/deploy/namespace", pages::deploy::create_namespace)
        .post("/ns/{ns}/deploy/reset", pages::deploy::reset)
        .post("/ns/{ns}/deploy/walkthrough", pages::walkthrough::apply)
        .post("/ns/{ns}/deploy/walkthrough/preview", pages::walkthrough::preview)
        .post("/ns/{ns}/deploy/{workload}", pages::deploy::deploy)
        .post("/ns/{ns}/deploy/{workload}/scale", pages::deploy::scale)
        .post("/ns/{ns}/deploy/{workload}/remove", pages::deploy::remove)
        .get("/ns/{ns}/routes", pages::routes::index)
        .get("/ns/{ns}/routes/{host}", pages::routes::page)
        .post("/ns/{ns}/routes/{host}/preview", pages::routes::preview)
        .post("/ns/{ns}/routes/{host}/apply", pages::routes::apply)
        .post("/ns/{ns}/routes/{host}/test", pages::routes::test)
        .get("/ns/{ns}/routes/{host}/sync", pages::proxy_sync::partial)
        .get("/ns/{ns}/routes/{host}/envoy", pages::envoy_routes::page)
        .get("/ns/{ns}/canaries", pages::canary::index)
        .get("/ns/{ns}/canaries/{host}", pages::canary::page)
        .post("/ns/{ns}/canaries/{host}", pages::canary::start)
        .post("/ns/{ns}/canaries/{host}/{step}", pages::canary::step)
        .get("/proposals", pages::proposals::page)
        .post("/proposals/{id}/approve", pages::proposals::approve)
        .post("/proposals/{id}/reject", pages::proposals::reject)
        .get("/audit", pages::audit::page)
        .get("/audit/{id}", pages::audit::entry)
        .post("/audit/{id}/revert/preview", pages::audit::revert_preview)
        .post("/audit/{id}/revert", pages::audit::revert)
        .get("/partials/audit", pages::audit::rows)
        .get("/partials/banner", pages::banner)
        .get("/api/v1/namespaces", pages::namespaces::api)
        .get("/api/v1/proposals", pages::proposals::api_list)
        .post("/api/v1/proposals/{id}/approve", pages::proposals::api_approve)
        .post("/api/v1/proposals/{id}/reject", pages::proposals::api_reject)
        .get("/api/v1/namespaces/{ns}/workloads", api::workloads::list)
        .put("/api/v1/namespaces/{ns}/workloads/{name}", api::workloads::put)
        .delete("/api/v1/namespaces/{ns}/workloads/{name}", api::workloads::remove)
        .put("/api/v1/namespaces/{ns}/tutorial", api::workloads::walkthrough)
        .delete("/api/v1/namespaces/{ns}/tutorial", api::workloads::reset)
        .get("/api/v1/namespaces/{ns}/routes/{host}", api::routes::get)
        .put("/api/v1/namespaces/{ns}/routes/{host}", api::routes::put)
        .delete("/api/v1/namespaces/{ns}/routes/{host}", api::routes::remove)
        .post("/api/v1/namespaces/{ns}/routes/{host}/test", api::routes::test)
        .post("/api/v1/namespaces/{ns}/routes/{host}/version-services", api::routes::create_version_services)
        .post("/api/v1/namespaces/{ns}/routes/{host}/migrate", api::routes::migrate)
        .get("/api/v1/namespaces/{ns}/routes/{host}/sync", api::routes::sync)
        .get("/api/v1/namespaces/{ns}/routes/{host}/envoy", api::routes::envoy)
        .get("/api/v1/namespaces/{ns}/canaries/{host}", api::canaries::get)
        .post("/api/v1/namespaces/{ns}/canaries/{host}", api::canaries::start)
        .post("/api/v1/namespaces/{ns}/canaries/{host}/{step}", api::canaries::step)
        .get("/api/v1/audit", api::audit::list)
        .get("/api/v1/audit/verify", api::audit::verify)
        .get("/api/v1/audit/export", api::audit_export::export)
        .get("/api/v1/audit/{id}", api::audit::one)
        .post("/api/v1/audit/{id}/revert", api::audit::revert)
        .get("/healthz", ops::healthz)
        .get("/readyz", ops::readyz)
        .get("/metrics", ops::metrics)
}

/// Every route the router serves, as it registers them (method and path template).
pub fn routes() -> Vec<RouteSpec> {
    every_route().listed
}

/// The whole application: every route, behind the View gate, CSRF, identity, the Host
/// allow-list and the request limits.
pub fn router(state: AppState, static_files: StaticFiles) -> Router {
    let static_files = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        ))
        .service(static_files);

    every_route()
        .router
        // Innermost, after routing: the View gate reads the path's namespace, host or entry.
        .route_layer(middleware::from_fn_with_state(state.clone(), view::gate))
        .route_layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        .nest_service("/static", static_files)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), view::sign_in_guard))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::guard))
        // Inside the error pages, so a refused identity gets a readable 400.
        .layer(middleware::from_fn_with_state(state.clone(), identity::guard))
        .layer(middleware::from_fn_with_state(state.clone(), error_pages::render_errors))
        // Outside the error pages: a refused Host gets a plain 421 and no page or token.
        .layer(middleware::from_fn_with_state(state.clone(), host::guard))
        .layer(
            ServiceBuilder::new()
                // A client's X-Request-Id only when it is short and visible ASCII, else a UUID.
                .layer(middleware::from_fn(request_id::assign))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(security_header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .layer(security_header(header::REFERRER_POLICY, "same-origin"))
                .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
                // A made-up method gets 405 before any work, and is never a metrics label.
                .layer(middleware::from_fn_with_state(state.clone(), methods::refuse_unknown))
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
    let method = methods::logged(request);
    tracing::info_span!("request", method, path = %request.uri().path(), request_id)
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = crate::metrics::method_label(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.observe_request(method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

async fn not_found() -> AppError {
    AppError::NotFound("no such page".into())
}
