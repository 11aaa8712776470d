//! The network between signalbox and the API server drops every connection, and changes
//! are made behind signalbox's back while it is cut off. When the network returns, the
//! watches resume: the console's caches and pages show every change, and each is recorded
//! once as an `external` audit entry — none lost in the gap, none recorded twice.
//! signalbox reaches the dev cluster's real API server through a byte relay
//! (tests/support/forwarder.rs) that the test cuts and reopens.
use crate::support;

use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use signalbox::tutorial::Workload;
use support::console::Console;
use support::forwarder::{Forwarder, api_server_of};
use support::{TestNamespace, eventually, kubeconfig_path};

/// How long the network stays cut: several watch retries are turned away meanwhile.
const OUTAGE: Duration = Duration::from_secs(5);

fn params(manager: &str) -> PatchParams {
    PatchParams { field_manager: Some(manager.into()), ..PatchParams::default() }
}

/// Three outside changes, made straight to the API server: the route split, a new
/// Deployment, and a scale.
async fn change_behind_its_back(ns: &TestNamespace) {
    let patch = json!({"spec": {"http": [{"route": [
        {"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 50},
        {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 50}]}]}});
    ns.objects(Kind::VirtualService)
        .patch("recommendation", &params("kubectl-edit"), &Patch::Merge(&patch))
        .await
        .unwrap();

    let mut deployment = Workload::RecommendationV3.deployment(1);
    deployment["metadata"]["namespace"] = json!(ns.name);
    let deployment: DynamicObject = serde_json::from_value(deployment).unwrap();
    let create = PostParams { field_manager: Some("kubectl-create".into()), ..PostParams::default() };
    ns.objects(Kind::Deployment).create(&create, &deployment).await.unwrap();

    let scale = json!({"spec": {"replicas": 3}});
    ns.objects(Kind::Deployment)
        .patch("recommendation-v1", &params("kubectl-scale"), &Patch::Merge(&scale))
        .await
        .unwrap();
}

/// (kind, name, actor, action) of each external entry.
fn described(entries: &[Value]) -> Vec<(String, String, String, String)> {
    let mut described: Vec<_> = entries
        .iter()
        .map(|e| {
            let text = |field: &str| e[field].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("name"), text("actor"), text("action"))
        })
        .collect();
    described.sort();
    described
}

#[tokio::test]
async fn after_a_dropped_connection_the_watches_resume_and_miss_nothing() {
    let ns = TestNamespace::new("resume").await;
    let forwarder = Forwarder::start(api_server_of(&kubeconfig_path())).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("through-forwarder.kubeconfig");
    forwarder.kubeconfig(&kubeconfig_path(), &kubeconfig);
    let console = Console::start_with(&ns.name, |config| config.kubeconfig = Some(kubeconfig.clone())).await;

    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let split = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                       "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let services = console.url(&format!("/ns/{}/partials/services", ns.name));
    eventually(Duration::from_secs(10), "the cache to show the 90/10 split", || async {
        let html = console.http.get(&services).send().await.ok()?.text().await.ok()?;
        html.contains("v1 90%").then_some(())
    })
    .await;
    // Past the window in which the echo of signalbox's own writes is checked.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(console.external_entries().await.is_empty(), "nothing external yet");

    let cut = forwarder.cut();
    println!("cut {cut} connections");
    assert!(cut >= 1, "the watches were cut");
    change_behind_its_back(&ns).await;
    tokio::time::sleep(OUTAGE).await;
    let html = console.http.get(&services).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("v1 90%"), "cut off, the cache has not seen the outside changes: {html}");
    assert!(console.external_entries().await.is_empty(), "nor has the audit log");
    forwarder.reopen();
    let reopened = std::time::Instant::now();

    eventually(Duration::from_secs(30), "the cache to show every outside change", || async {
        let html = console.http.get(&services).send().await.ok()?.text().await.ok()?;
        let workloads = console.get_json(&console.api("/workloads")).await.1;
        let replicas =
            |name: &str| workloads.as_array()?.iter().find(|w| w["name"] == name).and_then(|w| w["replicas"].as_i64());
        (html.contains("v1 50%")
            && replicas("recommendation-v3") == Some(1)
            && replicas("recommendation-v1") == Some(3))
        .then_some(())
    })
    .await;
    println!("caches caught up {:?} after the network returned", reopened.elapsed());
    // The badge follows once the change is known not to be signalbox's own (after the grace
    // in which its own writes' echoes are recognised).
    eventually(Duration::from_secs(5), "the overview to flag the outside change", || async {
        let html = console.http.get(&services).send().await.ok()?.text().await.ok()?;
        html.contains("changed outside signalbox").then_some(())
    })
    .await;

    let expected = vec![
        (
            "Deployment".into(),
            "recommendation-v1".into(),
            "field manager kubectl-scale (unverified)".into(),
            "external.update".into(),
        ),
        (
            "Deployment".into(),
            "recommendation-v3".into(),
            "field manager kubectl-create (unverified)".into(),
            "external.create".into(),
        ),
        (
            "VirtualService".into(),
            "recommendation".into(),
            "field manager kubectl-edit (unverified)".into(),
            "external.update".into(),
        ),
    ];
    eventually(Duration::from_secs(15), "the outside changes audited", || async {
        (described(&console.external_entries().await).len() >= expected.len()).then_some(())
    })
    .await;
    // Long enough for a duplicate (a re-listing, a replayed event) to show up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let external = console.external_entries().await;
    assert_eq!(described(&external), expected, "each outside change exactly once: {external:#?}");
    let route = external.iter().find(|e| e["kind"] == "VirtualService").unwrap();
    assert_eq!(route["before"]["spec"]["http"][0]["route"][0]["weight"], 90);
    assert_eq!(route["after"]["spec"]["http"][0]["route"][0]["weight"], 50);
    let (_, chain) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(chain["first_mismatch"], Value::Null, "{chain}");
    console.stop().await;
}
