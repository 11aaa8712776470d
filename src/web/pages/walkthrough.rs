//! The deploy page's one-click walkthrough: customer, preference and recommendation v1 and
//! v2 as one change, previewed (the API server's dry run) before it is confirmed.
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::change::workloads;

use super::render;
use super::route_view::DiffLine;
use crate::web::error::AppError;
use crate::web::extract::{Asked, ManagedNamespace};
use crate::web::layout::Layout;
use crate::web::state::AppState;

#[derive(Template)]
#[template(path = "deploy_walkthrough.html")]
struct WalkthroughPreview {
    layout: Layout,
    namespace: String,
    summary: String,
    /// `Kind name` of every object the change writes.
    objects: Vec<String>,
    diff: Vec<DiffLine>,
    /// Why the dry run refused the change; then there is nothing to confirm.
    error: Option<String>,
}

/// `POST /ns/{ns}/deploy/walkthrough/preview`: what deploying the set would write, dry-run.
pub async fn preview(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let current = state.workload_state(&origin.actor, &namespace, None).await;
    let change = workloads::deploy_walkthrough(&origin, &namespace, &current);
    let objects = change.operations.iter().map(|op| format!("{} {}", op.target().kind, op.target().name)).collect();
    let (status, diff, error) = match state.changes.preview(&change).await {
        Ok(preview) => (StatusCode::OK, DiffLine::parse(&preview.diff()), None),
        Err(error) => {
            let error = AppError::from(error);
            (error.status(), Vec::new(), Some(error.to_string()))
        }
    };
    let page = WalkthroughPreview {
        layout: Layout::new(&state, &origin.actor, Some(&namespace)),
        namespace,
        summary: change.summary,
        objects,
        diff,
        error,
    };
    let mut response = render(&page)?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /ns/{ns}/deploy/walkthrough`: applies the set (dry run, audit, apply) and returns
/// to the deploy page with the change's notice.
pub async fn apply(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let current = state.workload_state(&origin.actor, &namespace, None).await;
    let change = workloads::deploy_walkthrough(&origin, &namespace, &current);
    let applied = state.changes.execute(change).await.map_err(AppError::from)?;
    Ok(Redirect::to(&format!("/ns/{namespace}/deploy?change={}", applied.audit_id)).into_response())
}
