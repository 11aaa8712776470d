//! Where a policy sends traffic beyond its own host, through route fields it keeps verbatim
//! but Istio (or the Gateway API) acts on: `mirrors` to another host, `redirect` to another
//! authority, `delegate` to another VirtualService, and an HTTPRoute rule's `filters`
//! (`RequestMirror` to another backend, `RequestRedirect` and `URLRewrite` to another host
//! name, `ExtensionRef`). Each is authorized as a write to what it reaches, so a team limited
//! to one host cannot route (or copy) traffic to another through them. A filter whose reach
//! signalbox cannot judge is refused ([`unjudged_filters`]), never written unjudged.
use serde_json::Value;

use super::from_istio::refers_to_host;
use super::model::RoutingPolicy;
use super::validate::{FieldError, Severity};

/// The Gateway API filter types signalbox judges, each with the field holding its settings.
const JUDGED_FILTERS: [(&str, &str); 6] = [
    ("RequestHeaderModifier", "requestHeaderModifier"),
    ("ResponseHeaderModifier", "responseHeaderModifier"),
    ("RequestMirror", "requestMirror"),
    ("RequestRedirect", "requestRedirect"),
    ("URLRewrite", "urlRewrite"),
    ("ExtensionRef", "extensionRef"),
];

/// What one Gateway API filter, or backend reference, sends traffic to (beyond headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterTarget {
    /// A Service of the route's namespace, by name (a mirror's or a rule's backend).
    Service { field: String, name: String },
    /// Anything in a namespace: an `extensionRef` (the route's namespace), a backend in
    /// another namespace.
    Namespace { field: String, namespace: String },
    /// A host name a redirect or rewrite sends requests to.
    Hostname { field: String, hostname: String },
    /// Something signalbox cannot judge: refused with why.
    Unjudged { field: String, why: String },
}

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
        let filters = rule.other.get("filters").and_then(Value::as_array).into_iter().flatten();
        let backends = rule.other.get("backendRefs").and_then(Value::as_array).into_iter().flatten();
        let targets = filters
            .enumerate()
            .flat_map(|(position, filter)| filter_targets(&format!("{base}.filters[{position}]"), filter, namespace))
            .chain(backends.enumerate().map(|(position, backend)| {
                backend_target(&format!("{base}.backendRefs[{position}]"), backend, namespace)
            }));
        found.extend(targets.filter_map(|target| target_reach(target, policy, namespace)));
    }
    found
}

/// What a filter's or backend's target reaches beyond the policy's host: nothing for the
/// host's own Service and its versions (the policy's subsets: an HTTPRoute's are per-version
/// Services, checked against the cluster by validation), nothing for what cannot be judged
/// (that is refused by [`unjudged_filters`]).
fn target_reach(target: FilterTarget, policy: &RoutingPolicy, namespace: &str) -> Option<Reach> {
    match target {
        FilterTarget::Service { field, name } => {
            let own = name == policy.host || policy.subsets.iter().any(|subset| subset.name == name);
            (!own).then(|| Reach { field, namespace: namespace.to_owned(), host: Some(name) })
        }
        FilterTarget::Namespace { field, namespace } => Some(Reach { field, namespace, host: None }),
        FilterTarget::Hostname { field, hostname } => reach_host(&field, &hostname, &policy.host, namespace),
        FilterTarget::Unjudged { .. } => None,
    }
}

/// Where the Gateway API `filter` at `field` (`rules[0].filters[1]`) of a route in
/// `namespace` sends traffic: a `RequestMirror`'s backend, a `RequestRedirect`'s or
/// `URLRewrite`'s host name, anything in the namespace for an `ExtensionRef`; header
/// modifiers send it nowhere else. Any other type, a field that does not belong to the type,
/// or a backend that is not a Service is [`FilterTarget::Unjudged`].
pub fn filter_targets(field: &str, filter: &Value, namespace: &str) -> Vec<FilterTarget> {
    let unjudged = |field: String, why: String| vec![FilterTarget::Unjudged { field, why }];
    let Some(object) = filter.as_object() else {
        return unjudged(field.to_owned(), "a filter is an object with a type".into());
    };
    let known: Vec<&str> = JUDGED_FILTERS.iter().map(|(kind, _)| *kind).collect();
    let (kind, settings) = match object.get("type").and_then(Value::as_str) {
        Some(kind) => match JUDGED_FILTERS.iter().find(|(judged, _)| *judged == kind) {
            Some(&(kind, settings)) => (kind, settings),
            None => {
                let named = if kind.len() <= 64 { format!("a {kind} filter") } else { "this filter type".into() };
                let why = format!(
                    "signalbox cannot tell where {named} sends traffic, so it does not write one; it writes {}",
                    known.join(", ")
                );
                return unjudged(format!("{field}.type"), why);
            }
        },
        None => {
            return unjudged(format!("{field}.type"), format!("a filter needs a type: one of {}", known.join(", ")));
        }
    };
    if !object.contains_key(settings) {
        return unjudged(format!("{field}.{settings}"), format!("a {kind} filter needs {settings}"));
    }
    let mut found = Vec::new();
    for (key, value) in object {
        let at = format!("{field}.{key}");
        match key.as_str() {
            "type" => {}
            key if key != settings => {
                found.push(FilterTarget::Unjudged { field: at, why: format!("does not belong to a {kind} filter") })
            }
            "requestHeaderModifier" | "responseHeaderModifier" => {}
            "requestMirror" => found.push(backend_target(&format!("{at}.backendRef"), &value["backendRef"], namespace)),
            "requestRedirect" | "urlRewrite" => match value.get("hostname") {
                None => {}
                Some(Value::String(hostname)) => {
                    found.push(FilterTarget::Hostname { field: format!("{at}.hostname"), hostname: hostname.clone() })
                }
                Some(_) => found.push(FilterTarget::Unjudged {
                    field: format!("{at}.hostname"),
                    why: "must be a host name".into(),
                }),
            },
            _ => found.push(FilterTarget::Namespace { field: at, namespace: namespace.to_owned() }),
        }
    }
    found
}

/// Where a backend reference (`{group, kind, namespace, name}`, a rule's backend or a
/// mirror's) at `field` sends traffic: a Service of `namespace`, anything in another
/// namespace, or, when it names no Service, [`FilterTarget::Unjudged`].
pub fn backend_target(field: &str, backend: &Value, namespace: &str) -> FilterTarget {
    let unjudged =
        |suffix: &str, why: &str| FilterTarget::Unjudged { field: format!("{field}{suffix}"), why: why.into() };
    if !backend.is_object() {
        return unjudged("", "a backend reference names a Service and its port");
    }
    // A field as written: its default when absent, None when it is not a string.
    fn text<'a>(backend: &'a Value, key: &str, default: &'a str) -> Option<&'a str> {
        match backend.get(key) {
            None => Some(default),
            Some(value) => value.as_str(),
        }
    }
    let text = |key: &str, default: &'static str| text(backend, key, default);
    if text("group", "") != Some("") {
        return unjudged(".group", "signalbox judges traffic to Services only (group \"\")");
    }
    if text("kind", "Service") != Some("Service") {
        return unjudged(".kind", "signalbox judges traffic to Services only (kind Service)");
    }
    let Some(name) = backend.get("name").and_then(Value::as_str).filter(|name| !name.is_empty()) else {
        return unjudged(".name", "names the Service that gets the traffic");
    };
    match text("namespace", "") {
        Some("") => FilterTarget::Service { field: field.to_owned(), name: name.to_owned() },
        Some(other) if other == namespace => FilterTarget::Service { field: field.to_owned(), name: name.to_owned() },
        Some(other) => FilterTarget::Namespace { field: format!("{field}.namespace"), namespace: other.to_owned() },
        None => unjudged(".namespace", "must be a namespace name"),
    }
}

/// The `filters` of `policy`'s rules that signalbox cannot judge (see [`filter_targets`]),
/// each at its field: an HTTPRoute with one is refused, not written.
pub fn unjudged_filters(policy: &RoutingPolicy) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let mut refuse = |field: String, message: String| {
        problems.push(FieldError { field, message, severity: Severity::Error });
    };
    for (index, rule) in policy.rules.iter().enumerate() {
        let base = format!("rules[{index}].filters");
        let Some(filters) = rule.other.get("filters") else { continue };
        let Some(filters) = filters.as_array() else {
            refuse(base, "must be a list of filters".into());
            continue;
        };
        for (position, filter) in filters.iter().enumerate() {
            // What cannot be judged does not depend on the namespace.
            for target in filter_targets(&format!("{base}[{position}]"), filter, "") {
                if let FilterTarget::Unjudged { field, why } = target {
                    refuse(field, why);
                }
            }
        }
    }
    problems
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

    fn http_route_policy(filters: Value) -> RoutingPolicy {
        serde_json::from_value(json!({"host": "recommendation",
            "subsets": {"recommendation-v1": {"version": "v1"}, "recommendation-v2": {"version": "v2"}},
            "rules": [{"route": {"recommendation-v1": 100}, "filters": filters}]}))
        .unwrap()
    }

    fn mirror(backend: Value) -> Value {
        json!({"type": "RequestMirror", "requestMirror": {"backendRef": backend}})
    }

    #[test]
    fn http_route_filters_reach_where_they_send_traffic() {
        let filters = json!([
            mirror(json!({"name": "preference", "port": 8080})),
            mirror(json!({"name": "recommendation-v2", "port": 8080})),
            mirror(json!({"name": "recommendation", "port": 8080, "namespace": "tutorial"})),
            mirror(json!({"name": "billing", "namespace": "payments", "port": 8080})),
            {"type": "RequestRedirect", "requestRedirect": {"hostname": "evil.example.com", "statusCode": 302}},
            {"type": "RequestRedirect", "requestRedirect": {"hostname": "preference.tutorial.svc.cluster.local"}},
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https"}},
            {"type": "URLRewrite", "urlRewrite": {"hostname": "recommendation"}},
            {"type": "URLRewrite", "urlRewrite": {"hostname": "customer"}},
            {"type": "ExtensionRef", "extensionRef": {"group": "networking.istio.io", "kind": "EnvoyFilter", "name": "x"}},
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}}
        ]);
        let policy = http_route_policy(filters);
        assert_eq!(
            reaches(&policy, "tutorial"),
            vec![
                reach("rules[0].filters[0].requestMirror.backendRef", "tutorial", Some("preference")),
                reach("rules[0].filters[3].requestMirror.backendRef.namespace", "payments", None),
                reach("rules[0].filters[4].requestRedirect.hostname", "tutorial", None),
                reach("rules[0].filters[5].requestRedirect.hostname", "tutorial", Some("preference")),
                reach("rules[0].filters[8].urlRewrite.hostname", "tutorial", Some("customer")),
                reach("rules[0].filters[9].extensionRef", "tutorial", None),
            ]
        );
        assert_eq!(unjudged_filters(&policy), vec![], "every one of them is judged");
    }

    #[test]
    fn backend_refs_kept_verbatim_reach_other_services() {
        let mut policy = http_route_policy(json!([]));
        policy.rules[0].other.insert(
            "backendRefs".into(),
            json!([{"name": "recommendation-v1", "port": 8080}, {"name": "preference-v1", "port": 8080}]),
        );
        assert_eq!(
            reaches(&policy, "tutorial"),
            vec![reach("rules[0].backendRefs[1]", "tutorial", Some("preference-v1"))]
        );
    }

    #[test]
    fn filters_that_cannot_be_judged_are_refused_at_their_field() {
        let filters = json!([
            {"type": "CORS", "cors": {"allowOrigins": ["*"]}},
            {"requestMirror": {"backendRef": {"name": "preference"}}},
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {}, "requestMirror": {"backendRef": {"name": "preference"}}},
            {"type": "RequestMirror"},
            mirror(json!({"group": "multicluster.x-k8s.io", "kind": "ServiceImport", "name": "preference"})),
            mirror(json!({"kind": "Pod", "name": "preference"})),
            mirror(json!({"port": 8080})),
            {"type": "URLRewrite", "urlRewrite": {"hostname": 7}},
            "RequestMirror",
            {"type": "X".repeat(10_000)}
        ]);
        let policy = http_route_policy(filters);
        let fields: Vec<String> = unjudged_filters(&policy).into_iter().map(|problem| problem.field).collect();
        assert_eq!(
            fields,
            [
                "rules[0].filters[0].type",
                "rules[0].filters[1].type",
                "rules[0].filters[2].requestMirror",
                "rules[0].filters[3].requestMirror",
                "rules[0].filters[4].requestMirror.backendRef.group",
                "rules[0].filters[5].requestMirror.backendRef.kind",
                "rules[0].filters[6].requestMirror.backendRef.name",
                "rules[0].filters[7].urlRewrite.hostname",
                "rules[0].filters[8]",
                "rules[0].filters[9].type",
            ]
        );
        assert!(unjudged_filters(&policy).iter().all(|problem| problem.message.len() < 300), "no echo of a long type");
        assert_eq!(reaches(&policy, "tutorial"), vec![], "what cannot be judged is refused, not reached");
        let mut not_a_list = http_route_policy(json!([]));
        not_a_list.rules[0].other.insert("filters".into(), json!({"type": "RequestMirror"}));
        assert_eq!(unjudged_filters(&not_a_list)[0].field, "rules[0].filters");
    }
}
