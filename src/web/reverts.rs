//! Building a revert for the API and the page alike.
use crate::audit::Source;
use crate::authz::Actor;
use crate::change::Change;
use crate::change::revert::{self, RevertRefused};

use super::error::AppError;
use super::state::AppState;

/// The change reverting entry `id`, read against the live objects.
pub async fn build(
    state: &AppState,
    actor: &Actor,
    source: Source,
    request_id: Option<String>,
    id: i64,
    force: bool,
) -> Result<Change, AppError> {
    let entry = state.visible_entry(actor, id).await?;
    let mut live = Vec::new();
    for target in revert::targets(&entry) {
        live.push(state.cluster.objects.get(&target).await?);
    }
    revert::revert(&entry, &live, actor, source, request_id, force).map_err(|refused| match refused {
        RevertRefused::ChangedSince(_) => AppError::Conflict(refused.to_string()),
        RevertRefused::NotApplied(_) => AppError::invalid("id", refused.to_string()),
    })
}
