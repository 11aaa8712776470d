//! The bars of a routing change recorded in the audit log: its VirtualService and
//! DestinationRule before and after, each side read back into a routing policy.
use serde_json::Value;

use crate::istio::{DestinationRule, VirtualService};
use crate::policy::RoutingPolicy;
use crate::policy::canary::{ANNOTATION, Canary};

use super::bars::BarSet;

/// Bars before and after, when both documents hold only routing objects (a deploy that
/// also writes the customer's gateway VirtualService is not a routing change) and each side
/// reads as a policy signalbox models. None otherwise: the YAML diff alone says it.
pub fn before_after(id: &str, before: Option<&Value>, after: Option<&Value>) -> Option<[BarSet; 2]> {
    let (before, after) = (objects(before), objects(after));
    let all = || before.iter().chain(after.iter());
    if all().next().is_none() || !all().all(is_routing_object) {
        return None;
    }
    let host = all().find_map(host_of)?;
    let side = |side: &str, heading: &str, objects: &[Value]| {
        let read = policy(&host, objects)?;
        let (policy, canary) = read.as_ref().map(|(p, c)| (Some(p), c.as_ref())).unwrap_or_default();
        Some(BarSet::of(&format!("{id}-{side}"), heading, policy, canary))
    };
    Some([side("before", "Before", &before)?, side("after", "After", &after)?])
}

/// The objects of a document: itself, or a List's items.
fn objects(document: Option<&Value>) -> Vec<Value> {
    match document {
        None | Some(Value::Null) => Vec::new(),
        Some(list) if list["kind"] == "List" => list["items"].as_array().cloned().unwrap_or_default(),
        Some(object) => vec![object.clone()],
    }
}

fn is_routing_object(object: &Value) -> bool {
    matches!(object["kind"].as_str(), Some("VirtualService" | "DestinationRule"))
}

/// The host the objects route: the DestinationRule's, else the VirtualService's first.
fn host_of(object: &Value) -> Option<String> {
    let host = object["spec"]["host"].as_str().or_else(|| object["spec"]["hosts"][0].as_str())?;
    Some(host.to_owned())
}

/// One side's policy and the canary its VirtualService records: Some(None) when it has no
/// routing objects (round-robin), None when its objects do not read as a policy.
fn policy(host: &str, objects: &[Value]) -> Option<Option<(RoutingPolicy, Option<Canary>)>> {
    let find = |kind: &str| objects.iter().find(|o| o["kind"] == kind).cloned();
    let vs: Option<VirtualService> = find("VirtualService").map(serde_json::from_value).transpose().ok()?;
    let dr: Option<DestinationRule> = find("DestinationRule").map(serde_json::from_value).transpose().ok()?;
    if vs.is_none() && dr.is_none() {
        return Some(None);
    }
    let canary = vs
        .as_ref()
        .and_then(|vs| vs.metadata.annotations.as_ref()?.get(ANNOTATION).map(|a| Canary::from_annotation(a)))
        .flatten();
    RoutingPolicy::from_istio(host, vs.as_ref(), dr.as_ref()).ok().map(|policy| Some((policy, canary)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dr() -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "recommendation"},
               "spec": {"host": "recommendation", "subsets": [
                   {"name": "version-v1", "labels": {"version": "v1"}},
                   {"name": "version-v2", "labels": {"version": "v2"}}]}})
    }

    fn vs(v1: u32, v2: u32) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "recommendation"},
               "spec": {"hosts": ["recommendation"], "http": [{"route": [
                   {"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": v1},
                   {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": v2}]}]}})
    }

    fn list(items: Vec<Value>) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": items})
    }

    #[test]
    fn a_weight_change_has_bars_before_and_after() {
        let [before, after] =
            before_after("audit-bars", Some(&list(vec![dr(), vs(90, 10)])), Some(&list(vec![dr(), vs(75, 25)])))
                .expect("a routing change");
        assert_eq!(before.id, "audit-bars-before");
        assert_eq!(before.bars[0].words, "rule 1, everyone: v1 90%, v2 10%");
        assert_eq!(after.bars[0].words, "rule 1, everyone: v1 75%, v2 25%");
    }

    #[test]
    fn a_canary_step_marks_the_rule_with_the_canary_its_virtual_service_records() {
        let mut stepped = vs(75, 25);
        let canary =
            r#"{"stable":"version-v1","canary":"version-v2","steps":[10,25,100],"step":1,"state":"progressing"}"#;
        stepped["metadata"]["annotations"] = json!({ANNOTATION: canary});
        let [before, after] =
            before_after("b", Some(&list(vec![dr(), vs(90, 10)])), Some(&list(vec![dr(), stepped]))).unwrap();
        assert!(before.bars[0].marks.is_empty());
        assert_eq!(after.bars[0].marks[0].text, "canary v2 25%, step 2/3");
    }

    #[test]
    fn first_routing_starts_from_no_rules() {
        let [before, after] = before_after("b", None, Some(&list(vec![dr(), vs(100, 0)]))).unwrap();
        assert!(before.bars.is_empty());
        assert_eq!(after.bars.len(), 1);
    }

    #[test]
    fn changes_that_are_not_only_routing_have_no_bars() {
        let deployment = json!({"kind": "Deployment", "metadata": {"name": "customer"}});
        assert!(before_after("b", None, Some(&list(vec![deployment, vs(100, 0)]))).is_none());
        assert!(before_after("b", None, None).is_none());
    }
}
