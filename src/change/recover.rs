//! Startup: resolve entries left `pending` by a crash between the audit write and the apply.
use crate::audit::{AuditStore, Entry, Outcome};
use crate::cluster::{Objects, Operation};

use super::Documents;

const NOT_APPLIED: &str =
    "signalbox stopped before this change was applied; the cluster does not hold its planned state";

/// Compares each pending entry's operations with the cluster and records what happened.
pub async fn resolve_pending(audit: &AuditStore, objects: &Objects) -> anyhow::Result<usize> {
    let pending = audit.pending().await?;
    for entry in &pending {
        let operations = operations_of(entry);
        let mut live = Vec::with_capacity(operations.len());
        for operation in &operations {
            live.push(objects.get(operation.target()).await?);
        }
        let applied = !operations.is_empty()
            && operations.iter().zip(&live).all(|(operation, live)| operation.is_reflected_in(live.as_ref()));
        let (outcome, after, error) = if applied {
            (Outcome::Applied, Some(Documents::new(live).to_document()), None)
        } else {
            (Outcome::Failed, None, Some(NOT_APPLIED))
        };
        tracing::info!(audit_id = entry.id, outcome = outcome.as_str(), "resolved a pending change");
        audit.resolve(entry.id, outcome, after.as_ref(), error).await?;
    }
    Ok(pending.len())
}

fn operations_of(entry: &Entry) -> Vec<Operation> {
    entry
        .operations
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Operation::from_record)
        .collect()
}
