//! The objects signalbox deploys equal the Istio tutorial's own manifests, file by file.
use serde_json::Value;
use signalbox::tutorial::Workload;

use crate::support::fixtures;

fn documents(relative: &str) -> Vec<Value> {
    fixtures::fixture_documents(&format!("istio-tutorial/{relative}"))
}

/// The tutorial writes Istio objects as v1alpha3; signalbox writes the same schema as v1.
fn with_istio_v1(mut object: Value) -> Value {
    if let Some(api_version) = object.get("apiVersion").and_then(Value::as_str)
        && api_version.starts_with("networking.istio.io/")
    {
        object["apiVersion"] = Value::from("networking.istio.io/v1");
    }
    object
}

fn assert_same(file: &str, expected: Vec<Value>, generated: Vec<Value>) {
    let expected: Vec<Value> = expected.into_iter().map(with_istio_v1).collect();
    assert_eq!(
        expected,
        generated,
        "{file}: generated objects differ from the tutorial's\n expected: {}\n generated: {}",
        serde_json::to_string_pretty(&expected).unwrap(),
        serde_json::to_string_pretty(&generated).unwrap()
    );
}

#[test]
fn deployments_match_the_tutorial_files() {
    let cases = [
        ("customer/kubernetes/Deployment.yml", Workload::Customer, true),
        ("preference/kubernetes/Deployment.yml", Workload::Preference, true),
        ("recommendation/kubernetes/Deployment.yml", Workload::RecommendationV1, true),
        ("recommendation/kubernetes/Deployment-v2.yml", Workload::RecommendationV2, false),
        ("recommendation/kubernetes/Deployment-v3.yml", Workload::RecommendationV3, false),
    ];
    for (file, workload, includes_service_account) in cases {
        let mut generated = vec![workload.deployment(1)];
        if includes_service_account {
            generated.insert(0, workload.service_account());
        }
        assert_same(file, documents(file), generated);
    }
}

#[test]
fn services_match_the_tutorial_files() {
    for (file, workload) in [
        ("customer/kubernetes/Service.yml", Workload::Customer),
        ("preference/kubernetes/Service.yml", Workload::Preference),
        ("recommendation/kubernetes/Service.yml", Workload::RecommendationV1),
    ] {
        assert_same(file, documents(file), vec![workload.service()]);
    }
}

#[test]
fn customer_gateway_matches_the_tutorial_file() {
    let file = "customer/kubernetes/Gateway.yml";
    let ingress = Workload::Customer.ingress().expect("customer has an ingress");
    assert_same(file, documents(file), ingress.to_vec());
}
