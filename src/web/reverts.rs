//! Building a revert for the API and the page alike.
use crate::change::revert::{self, RevertRefused};
use crate::change::{Change, Origin};

use super::error::AppError;
use super::state::AppState;

/// The change reverting entry `id`, read against the live objects.
pub async fn build(state: &AppState, origin: &Origin, id: i64, force: bool) -> Result<Change, AppError> {
    let entry = state.visible_entry(&origin.actor, id).await?;
    let mut live = Vec::new();
    for target in revert::targets(&entry) {
        live.push(state.cluster.objects.get(&target).await?);
    }
    let deployments = namespace_deployments(state, &entry.namespace).await?;
    revert::revert(&entry, &live, &deployments, origin, force).map_err(|refused| match refused {
        RevertRefused::ChangedSince(_) => AppError::Conflict(refused.to_string()),
        RevertRefused::NotApplied(_) => AppError::invalid("id", refused.to_string()),
    })
}

/// The namespace's Deployments as the API server has them now (not the cache): which of
/// them use a Service decides whether a revert may delete it.
async fn namespace_deployments(state: &AppState, namespace: &str) -> Result<Vec<serde_json::Value>, AppError> {
    // A revert in a namespace no longer managed is refused by the change path anyway.
    if !state.changes.authorizer().is_managed(namespace) {
        return Ok(Vec::new());
    }
    let deployments = state.cluster.objects.list::<k8s_openapi::api::apps::v1::Deployment>(namespace).await?;
    Ok(deployments.iter().filter_map(|d| serde_json::to_value(d).ok()).collect())
}
