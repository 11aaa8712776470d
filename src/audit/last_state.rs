//! The last state the audit log recorded for each object: what startup compares the live
//! cluster with, so changes made while signalbox was down are recorded once.
use std::collections::HashMap;

use serde_json::Value;

use super::{AuditError, AuditStore};

impl AuditStore {
    /// For each object of `kind` in `namespace` with an applied entry that recorded its state
    /// — one that wrote it (its operations name it, whatever object the entry is filed
    /// under: a routing change writes its DestinationRule and its VirtualService) or an
    /// external one filed under it — the state after the newest such entry: the object, or
    /// None when that entry deleted it. Objects changed only as part of another object's
    /// change without being among its operations are not tracked here.
    pub async fn last_states(&self, namespace: &str, kind: &str) -> Result<HashMap<String, Option<Value>>, AuditError> {
        // The entries' join as the code writes it, not the file's `audit_view` (`schema.rs`).
        // Proposals' entries (`proposal.*`) record plans and decisions, not what was written.
        // A refused attempt's operations may be a truncated excerpt, not JSON: only applied
        // entries are read, and only valid operations are looked into.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(concat!(
            "SELECT newest.name, v.after_doc FROM ",
            super::entries!(),
            " v JOIN (SELECT name, MAX(id) AS id FROM (",
            "   SELECT a.name AS name, a.id AS id FROM ",
            super::entries!(),
            "   a WHERE a.namespace = ?1 AND a.kind = ?2 AND a.outcome = 'applied' AND a.action NOT LIKE 'proposal.%' ",
            "     AND CASE WHEN json_valid(a.operations) AND json_type(a.operations) = 'array' \
                   THEN json_array_length(a.operations) = 0 ELSE 1 END ",
            "   UNION ALL ",
            "   SELECT CASE WHEN op.type = 'object' THEN json_extract(op.value, '$.name') END AS name, w.id AS id FROM ",
            super::entries!(),
            "   w, json_each(CASE WHEN json_valid(w.operations) AND json_type(w.operations) = 'array' \
                        THEN w.operations ELSE '[]' END) op ",
            "   WHERE w.namespace = ?1 AND w.outcome = 'applied' AND w.action NOT LIKE 'proposal.%' \
                AND w.operations LIKE '%' || ?2 || '%' \
              AND CASE WHEN op.type = 'object' THEN json_extract(op.value, '$.kind') END = ?2",
            " ) GROUP BY name) newest ON newest.id = v.id"
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
/// An object without `kind` counts as of `kind`: an outside change's documents come from a
/// watch's listing, whose items lack it (reading one as "not there" made the next start
/// report the object as created).
fn object_in(document: Value, kind: &str, name: &str) -> Option<Value> {
    let is_it =
        |object: &Value| (object["kind"] == kind || object["kind"].is_null()) && object["metadata"]["name"] == name;
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
        let listed = json!({"metadata": {"name": "reco"}, "spec": {}});
        assert_eq!(object_in(listed.clone(), "Service", "reco"), Some(listed), "a listed item has no kind");
    }

    fn routing_change(after: Value, operations: Value) -> crate::audit::NewEntry {
        crate::audit::NewEntry {
            actor: "alice".into(),
            groups: vec![],
            source: crate::audit::Source::Api,
            action: "route.update".into(),
            namespace: "t".into(),
            kind: "VirtualService".into(),
            name: "reco".into(),
            summary: "route".into(),
            before: None,
            after: Some(after),
            operations,
            outcome: crate::audit::Outcome::Applied,
            error: None,
            request_id: None,
            reverts: None,
        }
    }

    #[tokio::test]
    async fn an_object_written_as_part_of_another_objects_change_has_a_last_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&dir.path().join("audit.db")).await.unwrap();
        let dr =
            |subsets: u32| json!({"kind": "DestinationRule", "metadata": {"name": "reco-dr"}, "spec": {"n": subsets}});
        let vs = json!({"kind": "VirtualService", "metadata": {"name": "reco"}});
        let op = |kind: &str, name: &str, apply: Value| json!({"kind": kind, "namespace": "t", "name": name, "apply": apply});
        let first = json!({"kind": "List", "items": [dr(1), vs.clone()]});
        let ops = json!([op("DestinationRule", "reco-dr", dr(1)), op("VirtualService", "reco", vs.clone())]);
        store.record(&routing_change(first, ops)).await.unwrap();
        let second = json!({"kind": "List", "items": [dr(2), vs.clone()]});
        let ops = json!([
            op("DestinationRule", "reco-dr", dr(2)),
            op("VirtualService", "reco", vs.clone()),
            op("DestinationRule", "gone", Value::Null)
        ]);
        store.record(&routing_change(second, ops)).await.unwrap();
        let mut refused = routing_change(Value::Null, json!([{"excerpt": "[{\"kind\": \"Dest", "truncated": true}]));
        refused.outcome = crate::audit::Outcome::Denied;
        store.record(&refused).await.unwrap();

        let states = store.last_states("t", "DestinationRule").await.unwrap();
        assert_eq!(states.get("reco-dr"), Some(&Some(dr(2))), "the newest change that wrote it: {states:?}");
        assert_eq!(states.get("gone"), Some(&None), "deleted by its last change");
        assert_eq!(store.last_states("t", "VirtualService").await.unwrap().get("reco"), Some(&Some(vs)));
        assert!(store.last_states("other", "DestinationRule").await.unwrap().is_empty());
    }
}
