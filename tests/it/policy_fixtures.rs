//! Round trips every Istio tutorial routing file through the typed resources and the policy.
//!
//! For each VirtualService/DestinationRule document: (a) parse → serialize gives the same
//! object, (b) extract the host's policy and render it back over the original gives the same
//! object. Anything the policy cannot model is printed as "kept verbatim".
use serde_json::{Map, Value};
use signalbox::istio::{IstioError, IstioObject, parse_value, yaml_documents};
use signalbox::policy::{RoutingPolicy, extract};

use crate::support::fixtures;

const FIXTURES: &str = "istio-tutorial/istiofiles";
const NAMESPACE: &str = "tutorial";

/// Normalizes what JSON/YAML equality should ignore: the apiVersion's version (the three
/// Istio versions share one schema), null fields (absent in Kubernetes) and int/float spelling.
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, v) in map {
                if v.is_null() {
                    continue;
                }
                let v = match (key.as_str(), v.as_str()) {
                    ("apiVersion", Some(api)) => Value::String(api.split('/').next().unwrap_or(api).to_string()),
                    _ => normalized(v),
                };
                out.insert(key.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Number(n) => n.as_f64().map_or(Value::Null, |f| serde_json::json!(f)),
        other => other.clone(),
    }
}

fn with_namespace(original: &Value) -> Value {
    let mut expected = original.clone();
    expected["metadata"]["namespace"] = Value::String(NAMESPACE.to_string());
    expected
}

#[derive(Default)]
struct Counts {
    files: usize,
    virtual_services: usize,
    destination_rules: usize,
    other_kinds: usize,
    kept_verbatim: usize,
}

fn check_document(file: &str, original: Value, counts: &mut Counts) {
    let object = match parse_value(original.clone()) {
        Ok(object) => object,
        Err(IstioError::UnsupportedKind { kind, .. }) => {
            counts.other_kinds += 1;
            println!("{file}: skipped {kind}");
            return;
        }
        Err(e) => panic!("{file}: {e}"),
    };
    let reserialized = object.to_value().expect("serializes");
    assert_eq!(normalized(&reserialized), normalized(&original), "{file}: parse → serialize changed the object");

    let (host, rendered) = match &object {
        IstioObject::VirtualService(vs) => {
            counts.virtual_services += 1;
            let host = vs.spec.hosts.as_ref().and_then(|h| h.first()).cloned().expect("VS has a host");
            let extraction = extract(&host, Some(vs), None).expect("extracts");
            report(file, &extraction.kept_verbatim, counts);
            let (vs, _) = extraction.policy.to_istio(NAMESPACE, Some(vs), None);
            (host, serde_json::to_value(vs).expect("serializes"))
        }
        IstioObject::DestinationRule(dr) => {
            counts.destination_rules += 1;
            let host = dr.spec.host.clone().expect("DR has a host");
            let extraction = extract(&host, None, Some(dr)).expect("extracts");
            report(file, &extraction.kept_verbatim, counts);
            let (_, dr) = extraction.policy.to_istio(NAMESPACE, None, Some(dr));
            (host, serde_json::to_value(dr).expect("serializes"))
        }
        IstioObject::Gateway(_) => {
            counts.other_kinds += 1;
            return;
        }
    };
    assert_eq!(
        normalized(&rendered),
        normalized(&with_namespace(&original)),
        "{file}: from_istio → to_istio changed the object for host {host}"
    );
    let policy = RoutingPolicy::from_istio(&host, None, None).expect("empty policy");
    assert!(policy.rules.is_empty());
}

fn report(file: &str, kept_verbatim: &[String], counts: &mut Counts) {
    if !kept_verbatim.is_empty() {
        counts.kept_verbatim += 1;
        println!("{file}: kept verbatim: {}", kept_verbatim.join("; "));
    }
}

#[test]
fn every_tutorial_routing_file_round_trips() {
    let dir = fixtures::fixtures_dir().join(FIXTURES);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    paths.sort();
    let mut counts = Counts::default();
    for path in &paths {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(path).expect("readable");
        counts.files += 1;
        for document in yaml_documents(&text).unwrap_or_else(|e| panic!("{file}: {e}")) {
            check_document(&file, document, &mut counts);
        }
    }
    println!(
        "{} files: {} VirtualServices, {} DestinationRules round-tripped ({} with parts kept verbatim), {} other documents skipped",
        counts.files, counts.virtual_services, counts.destination_rules, counts.kept_verbatim, counts.other_kinds
    );
    assert!(counts.virtual_services >= 20 && counts.destination_rules >= 8);
}
