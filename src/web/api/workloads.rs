//! `/api/v1/namespaces/{ns}/workloads` and `/tutorial`.
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::change::workloads;
use crate::change::{Applied, Change};

use super::audit::DryRun;
use crate::web::error::AppError;
use crate::web::extract::{ApiJson, Asked, ManagedNamespace, parse_workload};
use crate::web::identity::Identity;
use crate::web::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadBody {
    replicas: Option<i32>,
}

/// `GET`: every Deployment version in the namespace.
pub async fn list(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Json<serde_json::Value> {
    let scope = state.view_scope(&actor);
    let visible: Vec<_> =
        state.reads.versions(&namespace).into_iter().filter(|v| scope.host(&namespace, &v.app)).collect();
    Json(json!(visible))
}

/// `PUT {"replicas": N}`: deploys the workload, or scales it.
pub async fn put(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<WorkloadBody>,
) -> Result<Response, AppError> {
    let workload = parse_workload(&name)?;
    let current = state.workload_state(&origin.actor, &namespace, Some(workload.app())).await;
    let change = workloads::deploy(&origin, &namespace, workload, body.replicas, &current);
    applied(&state, change).await
}

/// `DELETE`: removes the workload.
pub async fn remove(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let workload = parse_workload(&name)?;
    let current = state.workload_state(&origin.actor, &namespace, Some(workload.app())).await;
    applied(&state, workloads::remove(&origin, &namespace, workload, &current)).await
}

/// `DELETE /tutorial`: removes every tutorial object from the namespace.
pub async fn reset(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    applied(&state, workloads::reset(&origin, &namespace)).await
}

/// `PUT /tutorial`: deploys the walkthrough's set (customer, preference, recommendation v1
/// and v2) as one change; `?dryRun=true` answers its summary and diff without applying.
pub async fn walkthrough(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedNamespace(namespace): ManagedNamespace,
    Query(DryRun { dry_run }): Query<DryRun>,
) -> Result<Response, AppError> {
    let current = state.workload_state(&origin.actor, &namespace, None).await;
    let change = workloads::deploy_walkthrough(&origin, &namespace, &current);
    if dry_run {
        let preview = state.changes.preview(&change).await?;
        let body = json!({"summary": change.summary, "diff": preview.diff(), "objects": preview.after.objects(),
                          "owned": preview.owned});
        return Ok(Json(body).into_response());
    }
    applied(&state, change).await
}

async fn applied(state: &AppState, change: Change) -> Result<Response, AppError> {
    let action = change.action;
    let Applied { audit_id, after } = state.changes.execute(change).await?;
    let body = json!({"auditId": audit_id, "action": action, "objects": after.objects()});
    Ok((StatusCode::OK, Json(body)).into_response())
}
