//! Where a policy sends traffic beyond its own host, through route fields it keeps verbatim
//! but Istio acts on: `mirrors` to another host, `redirect` to another authority, `delegate`
//! to another VirtualService. Each is authorized as a write to what it reaches, so a team
//! limited to one host cannot route (or copy) traffic to another through them.
use serde_json::Value;

use super::from_istio::refers_to_host;
use super::model::RoutingPolicy;

/// Something a rule reaches beyond the policy's host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// The field that reaches it, e.g. `rules[0].mirrors[1].destination.host`.
    pub field: String,
    pub namespace: String,
    /// The host reached; None: anything in the namespace (a delegate, an outside authority),
    /// which only a namespace-wide permission covers.
    pub host: Option<String>,
}

/// Everything `policy`'s rules in `namespace` reach beyond its own host.
pub fn reaches(policy: &RoutingPolicy, namespace: &str) -> Vec<Reach> {
    let mut found = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        let base = format!("rules[{index}]");
        for (position, mirror) in rule.other.get("mirrors").and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            if let Some(host) = mirror["destination"]["host"].as_str() {
                let field = format!("{base}.mirrors[{position}].destination.host");
                found.extend(reach_host(&field, host, &policy.host, namespace));
            }
        }
        if let Some(authority) = rule.other.get("redirect").and_then(|r| r["authority"].as_str()) {
            let host = authority.rsplit_once(':').map_or(authority, |(host, _port)| host);
            found.extend(reach_host(&format!("{base}.redirect.authority"), host, &policy.host, namespace));
        }
        if let Some(delegate) = rule.other.get("delegate") {
            let delegate_namespace = delegate["namespace"].as_str().unwrap_or(namespace);
            found.push(Reach {
                field: format!("{base}.delegate"),
                namespace: delegate_namespace.to_owned(),
                host: None,
            });
        }
    }
    found
}

/// What `host`, named in `field`, reaches: nothing when it is the policy's own host; a
/// Service of a namespace when it names one (`name`, `name.ns`, `name.ns.svc[.cluster.local]`);
/// otherwise the whole namespace (an authority outside the mesh's names).
fn reach_host(field: &str, host: &str, own_host: &str, namespace: &str) -> Option<Reach> {
    if refers_to_host(host, own_host, Some(namespace)) {
        return None;
    }
    let (name, host_namespace) = match service_namespace(host) {
        Some(other) => (host.split('.').next().map(str::to_owned), other.to_owned()),
        None if !host.contains('.') => (Some(host.to_owned()), namespace.to_owned()),
        None => (None, namespace.to_owned()),
    };
    Some(Reach { field: field.to_owned(), namespace: host_namespace, host: name })
}

/// The namespace in `name.ns`, `name.ns.svc` or `name.ns.svc.cluster.local`.
fn service_namespace(host: &str) -> Option<&str> {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [_, ns] | [_, ns, "svc"] | [_, ns, "svc", "cluster", "local"] if !ns.is_empty() => Some(ns),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: Value) -> RoutingPolicy {
        serde_json::from_value(json!({"host": "recommendation", "subsets": {"version-v1": {"version": "v1"}},
            "rules": rules}))
        .unwrap()
    }

    fn reach(field: &str, namespace: &str, host: Option<&str>) -> Reach {
        Reach { field: field.into(), namespace: namespace.into(), host: host.map(String::from) }
    }

    #[test]
    fn mirrors_redirects_and_delegates_reach_beyond_the_host() {
        let found = reaches(
            &policy(json!([
                {"route": {"version-v1": 100}, "mirrors": [
                    {"destination": {"host": "recommendation"}},
                    {"destination": {"host": "preference.tutorial.svc.cluster.local"}},
                    {"destination": {"host": "billing.payments"}}]},
                {"route": {"version-v1": 100}, "redirect": {"authority": "evil.example.com:8443"}},
                {"delegate": {"name": "shared-routes", "namespace": "platform"}}
            ])),
            "tutorial",
        );
        assert_eq!(
            found,
            vec![
                reach("rules[0].mirrors[1].destination.host", "tutorial", Some("preference")),
                reach("rules[0].mirrors[2].destination.host", "payments", Some("billing")),
                reach("rules[1].redirect.authority", "tutorial", None),
                reach("rules[2].delegate", "platform", None),
            ]
        );
    }

    #[test]
    fn the_own_host_in_any_form_reaches_nothing_more() {
        let rules = json!([{"route": {"version-v1": 100}, "mirrors": [
            {"destination": {"host": "recommendation.tutorial.svc"}}],
            "redirect": {"authority": "recommendation"}}]);
        assert_eq!(reaches(&policy(rules), "tutorial"), vec![]);
        let other_namespace = json!([{"route": {"version-v1": 100}, "mirrors": [
            {"destination": {"host": "recommendation.staging"}}]}]);
        assert_eq!(
            reaches(&policy(other_namespace), "tutorial"),
            vec![reach("rules[0].mirrors[0].destination.host", "staging", Some("recommendation"))]
        );
    }
}
