//! A crash between the audit write and the apply leaves a `pending` entry; startup resolves
//! it by comparing the entry's operations with the cluster.
use crate::support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use signalbox::audit::{AuditStore, NewEntry, Outcome, Source};
use signalbox::cluster::{Kind, ObjectRef, Operation};
use signalbox::tutorial::Workload;
use support::console::Console;
use support::{TestNamespace, eventually};

fn pending_deploy(namespace: &str, workload: Workload) -> NewEntry {
    let mut object = workload.deployment(1);
    object["metadata"]["namespace"] = json!(namespace);
    let operation = Operation::Apply {
        target: ObjectRef::namespaced(Kind::Deployment, namespace, workload.deployment_name()),
        object,
    };
    NewEntry {
        actor: "local:someone".into(),
        groups: vec![],
        source: Source::Ui,
        action: "workload.deploy".into(),
        namespace: namespace.into(),
        kind: "Deployment".into(),
        name: workload.deployment_name().into(),
        summary: format!("deploy {}", workload.name()),
        before: None,
        after: None,
        operations: Value::Array(vec![operation.to_record()]),
        outcome: Outcome::Pending,
        error: None,
        request_id: None,
        reverts: None,
    }
}

#[tokio::test]
async fn startup_resolves_pending_entries_by_comparing_with_the_cluster() {
    let ns = TestNamespace::new("crash").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = AuditStore::open(&database).await.unwrap();
    let reached = store.record(&pending_deploy(&ns.name, Workload::RecommendationV1)).await.unwrap();
    let lost = store.record(&pending_deploy(&ns.name, Workload::RecommendationV2)).await.unwrap();
    store.close().await;

    // The first change reached the cluster before the crash; the second did not.
    let mut applied = Workload::RecommendationV1.deployment(1);
    applied["metadata"]["namespace"] = json!(ns.name);
    let api = ns.objects(Kind::Deployment);
    api.patch("recommendation-v1", &PatchParams::apply("signalbox"), &Patch::Apply(&applied)).await.unwrap();

    let console = Console::start_with(&ns.name, |config| config.database = database.clone()).await;
    let entries = eventually(Duration::from_secs(10), "both pending entries resolved", || async {
        let entries = console.audit().await;
        entries.iter().all(|e| e["outcome"] != "pending").then_some(entries)
    })
    .await;
    let outcome = |id: i64| entries.iter().find(|e| e["id"] == id).unwrap()["outcome"].clone();
    assert_eq!(outcome(reached), "applied");
    assert_eq!(outcome(lost), "failed");
    let failed = entries.iter().find(|e| e["id"] == lost).unwrap();
    assert!(failed["error"].as_str().unwrap().contains("stopped before this change was applied"));
    let resolved = entries.iter().find(|e| e["id"] == reached).unwrap();
    assert_eq!(resolved["after"]["spec"]["replicas"], 1, "the live state is recorded as after");
    console.stop().await;
}
