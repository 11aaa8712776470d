//! The dev cluster is a real Kubernetes API server with Istio's real CRD schemas.
use crate::support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::fixtures::fixture_documents;
use support::{TestNamespace, eventually};

fn virtual_services_at(ns: &TestNamespace, version: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", version, "VirtualService"));
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource)
}

/// The tutorial's 90/10 VirtualService as written (v1alpha3).
fn tutorial_file_90_10() -> Value {
    fixture_documents("istio-tutorial/istiofiles/virtual-service-recommendation-v1_and_v2.yml").remove(0)
}

/// The same object as `networking.istio.io/v1`, the version signalbox writes.
fn tutorial_90_10() -> Value {
    let mut object = tutorial_file_90_10();
    object["apiVersion"] = json!("networking.istio.io/v1");
    object
}

fn weights(object: &Value) -> Vec<i64> {
    object["spec"]["http"][0]["route"].as_array().unwrap().iter().map(|r| r["weight"].as_i64().unwrap()).collect()
}

fn api_message(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API server refusal, got {other}"),
    }
}

#[tokio::test]
async fn a_tutorial_virtual_service_is_stored_as_v1alpha3_and_read_back_as_v1() {
    let ns = TestNamespace::new("crd").await;
    let object: DynamicObject = serde_json::from_value(tutorial_file_90_10()).unwrap();
    virtual_services_at(&ns, "v1alpha3").create(&PostParams::default(), &object).await.expect("created");
    let stored = serde_json::to_value(ns.objects(Kind::VirtualService).get("recommendation").await.unwrap()).unwrap();
    assert_eq!(stored["apiVersion"], "networking.istio.io/v1");
    assert_eq!(weights(&stored), [90, 10]);
    assert_eq!(stored["spec"]["http"][0]["route"][1]["destination"]["subset"], "version-v2");
}

#[tokio::test]
async fn the_crd_schema_refuses_a_string_weight_and_strict_validation_an_unknown_field() {
    let ns = TestNamespace::new("crd").await;
    let api = ns.objects(Kind::VirtualService);

    let mut string_weight = tutorial_90_10();
    string_weight["spec"]["http"][0]["route"][0]["weight"] = json!("ninety");
    let object: DynamicObject = serde_json::from_value(string_weight).unwrap();
    let (code, message) = api_message(api.create(&PostParams::default(), &object).await.unwrap_err());
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.http[0].route[0].weight"), "{message}");
    assert!(message.contains("integer"), "{message}");

    let mut unknown_field = tutorial_90_10();
    unknown_field["spec"]["http"][0]["bogusField"] = json!(true);
    let url = format!("/apis/networking.istio.io/v1/namespaces/{}/virtualservices?fieldValidation=Strict", ns.name);
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&unknown_field).unwrap())
        .unwrap();
    let (code, message) = api_message(ns.client.request::<Value>(request).await.unwrap_err());
    assert_eq!(code, 400, "{message}");
    assert!(message.contains(r#"unknown field "spec.http[0].bogusField""#), "{message}");
    assert!(api.get_opt("recommendation").await.unwrap().is_none());
}

#[tokio::test]
async fn two_field_managers_conflict_unless_forced() {
    let ns = TestNamespace::new("crd").await;
    let api = ns.objects(Kind::VirtualService);
    let ninety_ten = tutorial_90_10();
    api.patch("recommendation", &PatchParams::apply("team-a"), &Patch::Apply(&ninety_ten)).await.unwrap();

    let mut seventy_five = ninety_ten.clone();
    seventy_five["spec"]["http"][0]["route"][0]["weight"] = json!(75);
    seventy_five["spec"]["http"][0]["route"][1]["weight"] = json!(25);
    let error =
        api.patch("recommendation", &PatchParams::apply("team-b"), &Patch::Apply(&seventy_five)).await.unwrap_err();
    let (code, message) = api_message(error);
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("team-a"), "the conflict names the other manager: {message}");

    let forced = api.patch("recommendation", &PatchParams::apply("team-b").force(), &Patch::Apply(&seventy_five)).await;
    assert_eq!(weights(&serde_json::to_value(forced.unwrap()).unwrap()), [75, 25]);
}

#[tokio::test]
async fn a_dry_run_answers_with_the_object_but_stores_nothing() {
    let ns = TestNamespace::new("crd").await;
    let api = ns.objects(Kind::VirtualService);
    let mut params = PatchParams::apply("signalbox");
    params.dry_run = true;
    let answered = api.patch("recommendation", &params, &Patch::Apply(&tutorial_90_10())).await.unwrap();
    assert_eq!(weights(&serde_json::to_value(answered).unwrap()), [90, 10]);
    assert!(api.get_opt("recommendation").await.unwrap().is_none(), "a dry run must not persist");
}

#[tokio::test]
async fn a_tutorial_deployment_gets_ready_pods_on_the_simulated_nodes() {
    let ns = TestNamespace::new("kwok").await;
    let documents = fixture_documents("istio-tutorial/recommendation/kubernetes/Deployment.yml");
    let deployment: Deployment = serde_json::from_value(documents[1].clone()).unwrap();
    let sa: k8s_openapi::api::core::v1::ServiceAccount = serde_json::from_value(documents[0].clone()).unwrap();
    Api::namespaced(ns.client.clone(), &ns.name).create(&PostParams::default(), &sa).await.unwrap();
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let pod = eventually(Duration::from_secs(30), "a Running and Ready pod", || async {
        let list = pods.list(&ListParams::default().labels("app=recommendation,version=v1")).await.ok()?;
        list.items.into_iter().find(|pod| {
            let status = pod.status.as_ref();
            let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            running && ready
        })
    })
    .await;
    let node = pod.spec.and_then(|s| s.node_name).unwrap_or_default();
    assert!(node.starts_with("kwok-node-"), "scheduled on a simulated node, got {node:?}");
    let ready = eventually(Duration::from_secs(30), "the Deployment to report 1 ready replica", || async {
        let d = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get("recommendation-v1").await.ok()?;
        d.status.and_then(|s| s.ready_replicas).filter(|&r| r == 1)
    })
    .await;
    assert_eq!(ready, 1);
}

/// The Kubernetes version the dev cluster pins (`deploy/devcluster/go.mod`).
fn pinned_kubernetes_version() -> String {
    let go_mod = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/devcluster/go.mod")).unwrap();
    let pin = go_mod.lines().find_map(|line| line.trim().strip_prefix("k8s.io/kubernetes "));
    pin.expect("go.mod requires k8s.io/kubernetes").trim().to_owned()
}

/// Clients that check the server's version (kubectl's skew warning, Helm, operators) get the
/// pinned release, not the `v0.0.0-master+$Format:%H$` of an unstamped build.
#[tokio::test]
async fn the_dev_cluster_says_the_kubernetes_version_it_was_built_from() {
    let pinned = pinned_kubernetes_version();
    let client = support::client().await;
    let server = client.apiserver_version().await.unwrap();
    assert_eq!(server.git_version, pinned);
    let (major, minor) = (pinned[1..].split('.').next().unwrap(), pinned.split('.').nth(1).unwrap());
    assert_eq!((server.major.as_str(), server.minor.as_str()), (major, minor));

    let output = std::process::Command::new(support::kubectl_path())
        .args(["version", "-o", "json", "--kubeconfig"])
        .arg(support::kubeconfig_path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let versions: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(versions["clientVersion"]["gitVersion"], json!(pinned), "{versions}");
    assert_eq!(versions["serverVersion"]["gitVersion"], json!(pinned), "{versions}");
}

/// What a change planned from the caches relies on: a write carrying a version the object
/// has left is refused, leaving the other writer's object as it was.
#[tokio::test]
async fn a_write_carrying_a_version_the_object_left_is_refused() {
    use signalbox::cluster::{ObjectRef, Objects, Operation};
    let ns = TestNamespace::new("precondition").await;
    let objects = Objects::new(ns.client.clone());
    let target = ObjectRef::namespaced(Kind::VirtualService, &ns.name, "recommendation");
    let created = objects.run(&Operation::Apply { target: target.clone(), object: tutorial_90_10() }, false).await;
    let created = created.unwrap().unwrap();
    let version = created["metadata"]["resourceVersion"].as_str().unwrap().to_owned();

    // Someone else moves the object on; a write still carrying the old version is refused.
    let mut theirs = tutorial_90_10();
    theirs["spec"]["http"][0]["route"][0]["weight"] = json!(50);
    theirs["spec"]["http"][0]["route"][1]["weight"] = json!(50);
    let api = ns.objects(Kind::VirtualService);
    api.patch("recommendation", &PatchParams::apply("someone-else").force(), &Patch::Apply(&theirs)).await.unwrap();
    let mut stale = tutorial_90_10();
    stale["spec"]["http"][0]["route"][0]["weight"] = json!(75);
    stale["spec"]["http"][0]["route"][1]["weight"] = json!(25);
    stale["metadata"]["resourceVersion"] = json!(version);
    let refused = objects.run(&Operation::Apply { target, object: stale }, false).await.unwrap_err();
    assert_eq!(refused.status_code(), 409, "{refused}");
    let kept = serde_json::to_value(api.get("recommendation").await.unwrap()).unwrap();
    assert_eq!(weights(&kept), [50, 50]);
}
