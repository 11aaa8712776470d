//! Liveness, readiness and metrics.
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::state::AppState;

/// The process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the watch caches are synced and the audit database takes writes. Reads kept
/// verdicts only: a probe costs no database work and takes no lock (`audit::writability`).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let caches = state.cluster.caches.is_synced();
    let database = state.audit.writability();
    let body = format!(
        "caches: {}\ndatabase: {}\n",
        if caches { "synced" } else { "syncing" },
        match &database {
            Ok(()) => "writable".to_owned(),
            Err(error) => format!("not writable: {error}"),
        }
    );
    let status = if caches && database.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, body)
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let caches = &state.cluster.caches;
    let figures = crate::metrics::CacheFigures {
        age_seconds: caches.age_seconds(),
        watches: caches.watches(),
        managed_namespaces: caches.managed.names().len(),
    };
    let text = state.metrics.render(figures);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}
