//! Changes made while signalbox was down are recorded once at startup, as `external`, by
//! comparing the live objects with the last recorded state — and not again on the next start.
use crate::support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::console::Console;
use support::{TestNamespace, eventually};

async fn start(ns: &TestNamespace, database: &std::path::Path) -> Console {
    let database = database.to_owned();
    Console::start_with(&ns.name, move |config| config.database = database).await
}

async fn external(console: &Console) -> Vec<Value> {
    console.audit().await.into_iter().filter(|e| e["source"] == "external").collect()
}

#[tokio::test]
async fn a_change_made_while_down_is_recorded_once_at_startup() {
    let ns = TestNamespace::new("down").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");

    let console = start(&ns, &database).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                        "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    console.stop().await;

    let deployments = ns.objects(Kind::Deployment);
    let params = PatchParams { field_manager: Some("kubectl-scale".into()), ..PatchParams::default() };
    deployments.patch("recommendation-v1", &params, &Patch::Merge(&json!({"spec": {"replicas": 3}}))).await.unwrap();

    let console = start(&ns, &database).await;
    let entry = eventually(Duration::from_secs(10), "the change made while down", || async {
        external(&console).await.into_iter().next()
    })
    .await;
    assert_eq!(
        (entry["kind"].as_str(), entry["name"].as_str(), entry["actor"].as_str()),
        (Some("Deployment"), Some("recommendation-v1"), Some("field manager kubectl-scale (unverified)")),
        "{entry}"
    );
    assert_eq!(
        (entry["before"]["spec"]["replicas"].as_i64(), entry["after"]["spec"]["replicas"].as_i64()),
        (Some(1), Some(3))
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(external(&console).await.len(), 1, "only what changed: {:#?}", external(&console).await);
    console.stop().await;

    let console = start(&ns, &database).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(external(&console).await.len(), 1, "not recorded twice on restart");
    let (_, chain) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(chain["first_mismatch"], Value::Null);
    console.stop().await;
}

/// A routing change is filed under the object it changes, and a restart after a revert
/// finds nothing changed outside signalbox: the sequence — subsets only (the
/// DestinationRule alone), all traffic to v1 (the VirtualService), the revert of that (the
/// VirtualService deleted) — then a change of both objects filed under the VirtualService,
/// whose DestinationRule is still the last recorded state of the DestinationRule.
#[tokio::test]
async fn route_changes_are_filed_under_what_they_change_and_a_restart_finds_no_outside_change() {
    let ns = TestNamespace::new("filed").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let console = start(&ns, &database).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let routes = console.api("/routes/recommendation");
    let put = |body: Value| {
        let (console, routes) = (&console, routes.clone());
        async move {
            let (status, answer) = console.send_json(Method::PUT, &routes, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer["auditId"].as_i64().unwrap()
        }
    };
    let kind_of = |id: i64| {
        let console = &console;
        async move {
            let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{id}"))).await;
            (
                entry["kind"].as_str().unwrap_or_default().to_owned(),
                entry["name"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let subsets = json!({"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}});
    let only_subsets = put(json!({"subsets": subsets})).await;
    assert_eq!(kind_of(only_subsets).await, ("DestinationRule".into(), "recommendation".into()));
    let all_to_v1 = put(json!({"subsets": subsets, "rules": [{"route": {"version-v1": 100}}]})).await;
    assert_eq!(kind_of(all_to_v1).await, ("VirtualService".into(), "recommendation".into()));
    let revert = console.url(&format!("/api/v1/audit/{all_to_v1}/revert"));
    let (status, reverted) = console.send_json(Method::POST, &revert, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{reverted}");
    let reverted = reverted["auditId"].as_i64().unwrap();
    assert_eq!(
        kind_of(reverted).await,
        ("VirtualService".into(), "recommendation".into()),
        "it deleted the VirtualService"
    );
    console.stop().await;

    let console = start(&ns, &database).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(external(&console).await, Vec::<Value>::new(), "nothing changed outside signalbox");
    let both = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"},
                                  "version-v3": {"version": "v3"}},
                      "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, answer) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(both)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{}", answer["auditId"]))).await;
    assert_eq!(entry["kind"], "VirtualService", "both changed: filed under the rules' object");
    console.stop().await;

    let console = start(&ns, &database).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(external(&console).await, Vec::<Value>::new(), "the DestinationRule it wrote is its last state");
    console.stop().await;
}
