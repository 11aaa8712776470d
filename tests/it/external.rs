//! Changes made with kubectl behind the console's back are audited as `external`, attributed
//! to their field manager, flagged on the overview, and revertible; signalbox's own changes
//! are not mistaken for them.
use crate::support;

use std::time::Duration;

use kube::api::{DeleteParams, Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::console::Console;
use support::{TestNamespace, eventually};

#[tokio::test]
async fn kubectl_changes_are_audited_as_external_with_their_field_manager() {
    let ns = TestNamespace::new("ext").await;
    let console = Console::start(&ns.name).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
    }
    let split = |v1: u32| {
        json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                                  "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]})
    };
    let (status, _) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90))).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(console.external_entries().await.is_empty(), "signalbox's own changes are not external");

    // What `kubectl edit` does: an update under kubectl's field manager.
    let patch = json!({"spec": {"http": [{"route": [
        {"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 50},
        {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 50}]}]}});
    let params = PatchParams { field_manager: Some("kubectl-edit".into()), ..PatchParams::default() };
    ns.objects(Kind::VirtualService).patch("recommendation", &params, &Patch::Merge(&patch)).await.unwrap();

    let entry = eventually(Duration::from_secs(10), "an external entry", || async {
        console.external_entries().await.into_iter().find(|e| e["kind"] == "VirtualService")
    })
    .await;
    assert_eq!(
        (entry["actor"].as_str(), entry["action"].as_str()),
        (Some("field manager kubectl-edit (unverified)"), Some("external.update"))
    );
    assert!(entry["summary"].as_str().unwrap().contains("field manager kubectl-edit (unverified), Update"), "{entry}");
    assert_eq!(entry["before"]["spec"]["http"][0]["route"][0]["weight"], 90);
    assert_eq!(entry["after"]["spec"]["http"][0]["route"][0]["weight"], 50);
    let overview = console.page(&format!("/ns/{}/partials/services", ns.name)).await;
    assert!(overview.contains("changed outside signalbox"), "{overview}");

    let id = entry["id"].as_i64().unwrap();
    let (status, answer) =
        console.send_json(Method::POST, &console.url(&format!("/api/v1/audit/{id}/revert")), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(
        policy["rules"][0]["route"],
        json!({"version-v1": 90, "version-v2": 10}),
        "reverted to before the kubectl edit: {answer} {:#?}",
        console
            .audit()
            .await
            .iter()
            .take(3)
            .map(|e| (
                e["action"].clone(),
                e["before"]["spec"].clone(),
                e["after"]["spec"].clone(),
                e["operations"].clone()
            ))
            .collect::<Vec<_>>()
    );

    ns.objects(Kind::VirtualService).delete("recommendation", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(10), "the external deletion", || async {
        console.external_entries().await.into_iter().find(|e| e["action"] == "external.delete")
    })
    .await;
    assert!(console.external_entries().await.iter().all(|e| e["outcome"] == "applied"));
    let (_, chain) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(chain["first_mismatch"], Value::Null);
    console.stop().await;
}
