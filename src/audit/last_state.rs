//! The last state the audit log recorded for each object: what startup compares the live
//! cluster with, so changes made while signalbox was down are recorded once.
use std::collections::HashMap;

use serde_json::Value;

use super::{AuditError, AuditStore};

impl AuditStore {
    /// For each object of `kind` in `namespace` with an applied entry filed under it (its
    /// own changes and external ones), the state after the newest such entry: the object,
    /// or None when that entry deleted it. Objects changed only as part of another
    /// object's change (a workload's Service) are not tracked here.
    pub async fn last_states(&self, namespace: &str, kind: &str) -> Result<HashMap<String, Option<Value>>, AuditError> {
        // The entries' join as the code writes it, not the file's `audit_view` (`schema.rs`).
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(concat!(
            "SELECT v.name, v.after_doc FROM ",
            super::entries!(),
            " v JOIN (SELECT name, MAX(id) AS id FROM ",
            super::entries!(),
            " WHERE namespace = ?1 AND kind = ?2 AND outcome = 'applied' GROUP BY name) newest ON newest.id = v.id"
        ))
        .bind(namespace)
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, after)| {
                let document = after.and_then(|text| serde_json::from_str::<Value>(&text).ok());
                let state = document.and_then(|doc| object_in(doc, kind, &name));
                (name, state)
            })
            .collect())
    }
}

/// The object `kind`/`name` in a document: the document itself, or an item of a `v1/List`.
fn object_in(document: Value, kind: &str, name: &str) -> Option<Value> {
    let is_it = |object: &Value| object["kind"] == kind && object["metadata"]["name"] == name;
    if document["kind"] == "List" {
        document["items"].as_array()?.iter().find(|item| is_it(item)).cloned()
    } else {
        is_it(&document).then_some(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_found_alone_or_in_a_list() {
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "reco-v1"}});
        let list = json!({"kind": "List", "items": [{"kind": "Service", "metadata": {"name": "reco"}}, deployment]});
        assert_eq!(object_in(list.clone(), "Deployment", "reco-v1"), Some(deployment.clone()));
        assert_eq!(object_in(list, "Deployment", "other"), None);
        assert_eq!(object_in(deployment.clone(), "Deployment", "reco-v1"), Some(deployment));
    }
}
