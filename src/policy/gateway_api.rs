//! The routing policy of a host routed by a Gateway API HTTPRoute (mesh/GAMMA: its
//! `parentRefs` name the host's Service).
//!
//! HTTPRoute has no subsets: versions are per-version Services (`recommendation-v1`
//! selecting `app=recommendation,version=v1`) named as `backendRefs`. In the policy each
//! per-version Service is a subset of that name whose labels are its selector without `app`,
//! and the host's own Service is [`ALL_PODS`]; so the JSON model, the editor, canaries and
//! the audit read the same for both APIs.
use std::borrow::Borrow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use super::model::{ALL_PODS, Match, Mirror, Retries, RoutingPolicy, Rule, Share, StringMatch, Subset, Weight};
use super::validate::{FieldError, Severity};
use crate::gateway_api::{
    BackendObjectRef, HTTPBackendRef, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, HTTPRouteSpec,
    HTTPRouteTimeouts, NamedMatch, ParentReference, RequestMirror, TypedMatch,
};
use crate::istio::{OrderedMap, Unmodelled};

const MIRROR: &str = "RequestMirror";

/// Rule fields the policy keeps verbatim that the Gateway API's standard channel has.
const KNOWN_RULE_FIELDS: [&str; 4] = ["name", "filters", "timeouts", "sessionPersistence"];

/// A Service that selects one version of the host: a subset of an HTTPRoute's policy.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionService {
    pub name: String,
    /// Its selector without `app`, e.g. `version: v1`.
    pub labels: BTreeMap<String, String>,
    /// Its first port: backendRefs to a Service need one.
    pub port: Option<i32>,
}

/// The per-version Services of `host` among `services`: those selecting `app=<host>` and
/// something more. The host's own Service (selecting only the app) is not one.
pub fn version_services<S: Borrow<Service>>(host: &str, services: &[S]) -> Vec<VersionService> {
    let mut found: Vec<VersionService> = services
        .iter()
        .map(Borrow::borrow)
        .filter_map(|service| {
            let spec = service.spec.as_ref()?;
            let mut labels = spec.selector.clone()?;
            (labels.remove("app")? == host && !labels.is_empty()).then_some(())?;
            let port = spec.ports.iter().flatten().next().map(|p| p.port);
            Some(VersionService { name: service.metadata.name.clone()?, labels, port })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// The port of the host's own Service, which backendRefs to it and new parentRefs carry.
pub fn service_port<S: Borrow<Service>>(host: &str, services: &[S]) -> Option<i32> {
    let service = services.iter().map(Borrow::borrow).find(|s| s.metadata.name.as_deref() == Some(host))?;
    service.spec.as_ref()?.ports.iter().flatten().next().map(|p| p.port)
}

impl RoutingPolicy {
    /// The policy an HTTPRoute expresses for `host`. Relative weights (Gateway API's default
    /// is 1 each) are read as percentages; what the policy does not model stays in `other`.
    pub fn from_http_route(host: &str, route: &HTTPRoute, versions: &[VersionService]) -> RoutingPolicy {
        let subsets = versions.iter().map(|v| Subset { name: v.name.clone(), labels: v.labels.clone() }).collect();
        let rules = route.spec.rules.iter().flatten().map(|rule| rule_from(host, rule)).collect();
        RoutingPolicy { host: host.to_owned(), subsets, rules }
    }

    /// The HTTPRoute expressing this policy: `live` edited in place (parentRefs, hostnames,
    /// rule names, other filters and backend fields kept), or a new mesh route named after
    /// the host attached to its Service. Check [`inexpressible`] first: what the Gateway API
    /// cannot say is left out here.
    pub fn to_http_route(&self, namespace: &str, live: Option<&HTTPRoute>, port: Option<i32>) -> HTTPRoute {
        let mut route = live.cloned().unwrap_or_else(|| new_route(&self.host, namespace, port));
        let live_rules = route.spec.rules.take().unwrap_or_default();
        let rules = self.rules.iter().enumerate().map(|(i, rule)| {
            let backends = live_rules.get(i).and_then(|r| r.backend_refs.clone()).unwrap_or_default();
            rule_to(&self.host, rule, &backends, port)
        });
        route.spec.rules = Some(rules.collect());
        route.metadata.resource_version = None;
        route.metadata.managed_fields = None;
        route.status = None;
        route
    }
}

fn new_route(host: &str, namespace: &str, port: Option<i32>) -> HTTPRoute {
    let mut parent = ParentReference {
        group: Some(String::new()),
        kind: Some("Service".into()),
        name: host.to_owned(),
        ..Default::default()
    };
    if let Some(port) = port {
        parent.other.insert("port".into(), port.into());
    }
    let spec = HTTPRouteSpec { parent_refs: Some(vec![parent]), ..Default::default() };
    let mut route = HTTPRoute::new(host, spec);
    route.metadata.namespace = Some(namespace.to_owned());
    route
}

/// What of `policy` an HTTPRoute cannot express, by field path: fault injection, retries
/// (in the standard channel; `retries_allowed` for the experimental one, which retries on
/// status codes, without a per-try timeout), prefix matches on headers, query parameters or
/// the method, fractional mirror percentages, match fields signalbox keeps but does not
/// model, and filters whose reach it cannot judge ([`super::unjudged_filters`]).
pub fn inexpressible(policy: &RoutingPolicy, retries_allowed: bool) -> Vec<FieldError> {
    let mut problems = super::reach::unjudged_filters(policy);
    let mut refuse = |field: String, message: &str| {
        problems.push(FieldError { field, message: message.to_owned(), severity: Severity::Error })
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        for key in rule.other.keys().filter(|k| !KNOWN_RULE_FIELDS.contains(&k.as_str())) {
            refuse(format!("rules[{i}].{key}"), "is not a field of an HTTPRoute rule");
        }
        if rule.fault.is_some() {
            refuse(format!("rules[{i}].fault"), "HTTPRoute has no fault injection; use a VirtualService for this host");
        }
        match &rule.retries {
            Some(_) if !retries_allowed => refuse(
                format!("rules[{i}].retries"),
                "HTTPRoute has no retries in the Gateway API standard channel installed here",
            ),
            Some(retries) => {
                if retries.per_try_timeout.is_some() {
                    refuse(format!("rules[{i}].retries.perTryTimeout"), "HTTPRoute retries have no per-try timeout");
                }
                if retries.attempts.is_some_and(|a| a < 1) {
                    refuse(format!("rules[{i}].retries.attempts"), "HTTPRoute retries at least once");
                }
                if status_codes(retries.retry_on.as_deref()).is_none() {
                    refuse(
                        format!("rules[{i}].retries.retryOn"),
                        "HTTPRoute retries on HTTP status codes only, e.g. 503,504",
                    );
                }
            }
            None => {}
        }
        if rule.mirror.as_ref().and_then(|m| m.percentage).is_some_and(|p| p.fract() != 0.0) {
            refuse(format!("rules[{i}].mirror.percentage"), "HTTPRoute mirrors a whole percentage (0-100)");
        }
        for (j, condition) in rule.matches.iter().flatten().enumerate() {
            let at = format!("rules[{i}].match[{j}]");
            if let Some(key) = condition.other.keys().next() {
                refuse(format!("{at}.{key}"), "HTTPRoute has no such match condition");
            }
            if matches!(condition.method, Some(StringMatch::Prefix(_) | StringMatch::Regex(_))) {
                refuse(format!("{at}.method"), "HTTPRoute matches a method exactly");
            }
            let named = [("headers", &condition.headers), ("queryParams", &condition.query_params)];
            for (field, conditions) in named {
                for (name, value) in conditions.iter().flat_map(|c| c.iter()) {
                    if matches!(value, StringMatch::Prefix(_)) {
                        refuse(
                            format!("{at}.{field}.{name}"),
                            "HTTPRoute matches these exactly or by regex, not by prefix",
                        );
                    }
                }
            }
        }
    }
    problems
}

/// The policy of a VirtualService host as an HTTPRoute would carry it: each subset becomes
/// the per-version Service selecting the same labels, an existing one (`versions`) where
/// there is one, else `<host>-<version>` (or `<host>-<subset>` for other labels). Returns the
/// policy and the Services to create. Check [`inexpressible`] on the input first.
pub fn migrated(policy: &RoutingPolicy, versions: &[VersionService]) -> (RoutingPolicy, Vec<VersionService>) {
    let mut to_create = Vec::new();
    let renamed: BTreeMap<&str, String> = policy
        .subsets
        .iter()
        .map(|subset| {
            let existing = versions.iter().find(|v| v.labels == subset.labels);
            let name = existing.map(|v| v.name.clone()).unwrap_or_else(|| {
                let suffix = match (subset.labels.len(), subset.labels.get("version")) {
                    (1, Some(version)) => version.clone(),
                    _ => subset.name.clone(),
                };
                let service = VersionService {
                    name: format!("{}-{suffix}", policy.host),
                    labels: subset.labels.clone(),
                    port: None,
                };
                to_create.push(service.clone());
                service.name
            });
            (subset.name.as_str(), name)
        })
        .collect();
    let rename = |subset: &str| renamed.get(subset).cloned().unwrap_or_else(|| subset.to_owned());
    let mut migrated = policy.clone();
    for subset in &mut migrated.subsets {
        subset.name = rename(&subset.name);
    }
    for rule in &mut migrated.rules {
        for share in &mut rule.route {
            share.subset = rename(&share.subset);
        }
        if let Some(mirror) = &mut rule.mirror {
            mirror.subset = rename(&mirror.subset);
        }
    }
    (migrated, to_create)
}

/// `retryOn` as the status codes an HTTPRoute retries on; None when it names anything else.
fn status_codes(retry_on: Option<&str>) -> Option<Vec<u16>> {
    let Some(text) = retry_on.filter(|t| !t.trim().is_empty()) else { return Some(Vec::new()) };
    text.split(',').map(|code| code.trim().parse::<u16>().ok().filter(|c| (100..600).contains(c))).collect()
}

/// An experimental channel `retry` as the policy's retries (codes as `retryOn`).
fn retries_from(retry: Value) -> Retries {
    let codes: Vec<String> =
        retry["codes"].as_array().into_iter().flatten().filter_map(Value::as_u64).map(|c| c.to_string()).collect();
    let mut other = Unmodelled::new();
    if let Some(backoff) = retry.get("backoff") {
        other.insert("backoff".into(), backoff.clone());
    }
    Retries {
        attempts: retry["attempts"].as_i64().and_then(|a| i32::try_from(a).ok()),
        per_try_timeout: None,
        retry_on: (!codes.is_empty()).then(|| codes.join(",")),
        other,
    }
}

fn retry_to(retries: &Retries) -> Value {
    let mut retry = serde_json::Map::new();
    if let Some(attempts) = retries.attempts {
        retry.insert("attempts".into(), attempts.into());
    }
    let codes = status_codes(retries.retry_on.as_deref()).unwrap_or_default();
    if !codes.is_empty() {
        retry.insert("codes".into(), codes.into());
    }
    retry.extend(retries.other.clone());
    Value::Object(retry)
}

fn rule_from(host: &str, rule: &HTTPRouteRule) -> Rule {
    let mut other = rule.other.clone();
    let retries = other.remove("retry").map(retries_from);
    let (mirrors, filters): (Vec<&HTTPRouteFilter>, Vec<&HTTPRouteFilter>) =
        rule.filters.iter().flatten().partition(|f| f.kind == MIRROR && f.request_mirror.is_some());
    if !filters.is_empty() {
        other.insert("filters".into(), serde_json::to_value(filters).unwrap_or(Value::Null));
    }
    let mirror = mirrors
        .first()
        .and_then(|f| f.request_mirror.as_ref())
        .map(|m| Mirror { subset: subset_of(host, &m.backend_ref.name), percentage: m.percent.map(|p| p as f64) });
    if let Some(backend) = rule.timeouts.as_ref().and_then(|t| t.backend_request.clone()) {
        other.insert("timeouts".into(), serde_json::json!({ "backendRequest": backend }));
    }
    Rule {
        matches: matches_from(rule.matches.as_deref()),
        route: shares_from(host, rule.backend_refs.as_deref().unwrap_or_default()),
        timeout: rule.timeouts.as_ref().and_then(|t| t.request.clone()),
        retries,
        fault: None,
        mirror,
        other,
    }
}

/// A rule whose only match is the API server's default (`PathPrefix /`) matches everything.
fn matches_from(matches: Option<&[HTTPRouteMatch]>) -> Option<Vec<Match>> {
    let matches = matches.filter(|m| !m.is_empty())?;
    let everything = HTTPRouteMatch {
        path: Some(TypedMatch { kind: Some("PathPrefix".into()), value: Some("/".into()) }),
        ..Default::default()
    };
    if matches.len() == 1 && matches[0] == everything {
        return None;
    }
    Some(matches.iter().map(match_from).collect())
}

fn match_from(condition: &HTTPRouteMatch) -> Match {
    let uri = condition.path.as_ref().and_then(|path| {
        let value = path.value.clone().unwrap_or_else(|| "/".into());
        match path.kind.as_deref().unwrap_or("PathPrefix") {
            "Exact" => Some(StringMatch::Exact(value)),
            "RegularExpression" => Some(StringMatch::Regex(value)),
            _ if value == "/" => None,
            _ => Some(StringMatch::Prefix(value)),
        }
    });
    Match {
        uri,
        method: condition.method.clone().map(StringMatch::Exact),
        headers: named_from(condition.headers.as_deref(), true),
        query_params: named_from(condition.query_params.as_deref(), false),
        other: condition.other.clone(),
    }
}

fn named_from(conditions: Option<&[NamedMatch]>, lowercase: bool) -> Option<OrderedMap<StringMatch>> {
    let conditions = conditions.filter(|c| !c.is_empty())?;
    let named = conditions.iter().map(|condition| {
        // Header names are case-insensitive; the policy writes them in lowercase.
        let name = if lowercase { condition.name.to_ascii_lowercase() } else { condition.name.clone() };
        let value = match condition.kind.as_deref() {
            Some("RegularExpression") => StringMatch::Regex(condition.value.clone()),
            _ => StringMatch::Exact(condition.value.clone()),
        };
        (name, value)
    });
    Some(named.collect())
}

/// Relative weights as percentages: 1 and 1 (the default) read as 50/50, 90 and 10 as is.
fn shares_from(host: &str, backends: &[HTTPBackendRef]) -> Vec<Share> {
    let weights: Vec<i64> = backends.iter().map(|b| b.weight.unwrap_or(1).max(0)).collect();
    let total: i64 = weights.iter().sum();
    backends
        .iter()
        .zip(&weights)
        .map(|(backend, weight)| {
            let percent = if total == 100 || total == 0 { *weight } else { (weight * 100 + total / 2) / total };
            Share { subset: subset_of(host, &backend.name), weight: Weight::from(percent as u32) }
        })
        .collect()
}

fn subset_of(host: &str, service: &str) -> String {
    if service == host { ALL_PODS.to_owned() } else { service.to_owned() }
}

fn service_of(host: &str, subset: &str) -> String {
    if subset == ALL_PODS { host.to_owned() } else { subset.to_owned() }
}

fn rule_to(host: &str, rule: &Rule, live_backends: &[HTTPBackendRef], port: Option<i32>) -> HTTPRouteRule {
    let mut other = rule.other.clone();
    if let Some(retries) = &rule.retries {
        other.insert("retry".into(), retry_to(retries));
    }
    let mut filters: Vec<HTTPRouteFilter> =
        other.remove("filters").and_then(|f| serde_json::from_value(f).ok()).unwrap_or_default();
    // A port the existing backends carry is copied to new ones; else the host Service's.
    let port = live_backends.iter().find_map(|b| b.port).or(port.map(i64::from));
    if let Some(mirror) = &rule.mirror {
        let backend_ref = BackendObjectRef { name: service_of(host, &mirror.subset), port, other: Unmodelled::new() };
        let request_mirror =
            RequestMirror { backend_ref, percent: mirror.percentage.map(|p| p as i64), other: Unmodelled::new() };
        filters.push(HTTPRouteFilter {
            kind: MIRROR.into(),
            request_mirror: Some(request_mirror),
            ..Default::default()
        });
    }
    let backend_request = other.remove("timeouts").and_then(|t| t["backendRequest"].as_str().map(String::from));
    let timeouts = (rule.timeout.is_some() || backend_request.is_some())
        .then(|| HTTPRouteTimeouts { request: rule.timeout.clone(), backend_request });
    let backends = rule.route.iter().map(|share| {
        let name = service_of(host, &share.subset);
        let live = live_backends.iter().find(|b| b.name == name).cloned();
        let weight = share.weight.percent().map(i64::from);
        HTTPBackendRef { weight, ..live.unwrap_or(HTTPBackendRef { name, port, ..Default::default() }) }
    });
    HTTPRouteRule {
        matches: rule.matches.as_ref().map(|matches| matches.iter().map(match_to).collect()),
        filters: (!filters.is_empty()).then_some(filters),
        backend_refs: Some(backends.collect()),
        timeouts,
        other,
    }
}

fn match_to(condition: &Match) -> HTTPRouteMatch {
    let path = condition.uri.as_ref().map(|uri| {
        let (kind, value) = match uri {
            StringMatch::Exact(v) => ("Exact", v),
            StringMatch::Prefix(v) => ("PathPrefix", v),
            StringMatch::Regex(v) => ("RegularExpression", v),
        };
        TypedMatch { kind: Some(kind.into()), value: Some(value.clone()) }
    });
    HTTPRouteMatch {
        path,
        headers: named_to(condition.headers.as_ref()),
        query_params: named_to(condition.query_params.as_ref()),
        method: condition.method.as_ref().map(|m| text_of(m).to_owned()),
        other: condition.other.clone(),
    }
}

fn named_to(conditions: Option<&OrderedMap<StringMatch>>) -> Option<Vec<NamedMatch>> {
    let conditions = conditions?;
    let named = conditions.iter().map(|(name, value)| NamedMatch {
        kind: Some(if matches!(value, StringMatch::Regex(_)) { "RegularExpression" } else { "Exact" }.into()),
        name: name.clone(),
        value: text_of(value).to_owned(),
    });
    Some(named.collect())
}

fn text_of(condition: &StringMatch) -> &str {
    match condition {
        StringMatch::Exact(v) | StringMatch::Prefix(v) | StringMatch::Regex(v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Fault;
    use serde_json::json;

    fn route(spec: Value) -> HTTPRoute {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "reco-mesh", "namespace": "t", "resourceVersion": "7", "generation": 2},
            "spec": spec
        }))
        .unwrap()
    }

    fn versions() -> Vec<VersionService> {
        ["v1", "v2"]
            .iter()
            .map(|v| VersionService {
                name: format!("recommendation-{v}"),
                labels: [("version".to_string(), v.to_string())].into(),
                port: Some(8080),
            })
            .collect()
    }

    fn tutorial_route() -> HTTPRoute {
        route(json!({
            "parentRefs": [{"group": "", "kind": "Service", "name": "recommendation", "port": 8080}],
            "hostnames": ["recommendation.t.svc.cluster.local"],
            "rules": [
                {"name": "firefox",
                 "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                              "headers": [{"type": "RegularExpression", "name": "User-Agent", "value": ".*Firefox.*"}]}],
                 "backendRefs": [{"name": "recommendation-v2", "port": 8080}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "b"}]}}],
                 "backendRefs": [{"name": "recommendation-v1", "port": 8080, "weight": 90},
                                 {"name": "recommendation-v2", "port": 8080, "weight": 10}],
                 "timeouts": {"request": "2s", "backendRequest": "1s"}}
            ]
        }))
    }

    #[test]
    fn an_http_route_reads_as_the_policy_with_per_version_services_as_subsets() {
        let policy = RoutingPolicy::from_http_route("recommendation", &tutorial_route(), &versions());
        let body = serde_json::to_value(&policy).unwrap();
        assert_eq!(
            body["subsets"],
            json!({"recommendation-v1": {"version": "v1"}, "recommendation-v2": {"version": "v2"}})
        );
        assert_eq!(body["rules"][0]["match"], json!([{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}]));
        assert_eq!(body["rules"][0]["route"], json!({"recommendation-v2": 100}), "one backend gets everything");
        assert_eq!(body["rules"][0]["name"], "firefox", "unmodelled rule fields are kept");
        assert!(body["rules"][1].get("match").is_none(), "the default PathPrefix / matches everything");
        assert_eq!(body["rules"][1]["route"], json!({"recommendation-v1": 90, "recommendation-v2": 10}));
        assert_eq!(body["rules"][1]["timeout"], "2s");
        assert_eq!(body["rules"][1]["timeouts"], json!({"backendRequest": "1s"}));
        assert_eq!(body["rules"][1]["filters"][0]["type"], "RequestHeaderModifier");
    }

    #[test]
    fn relative_weights_read_as_percentages() {
        let equal = route(json!({"rules": [{"backendRefs": [{"name": "a"}, {"name": "b"}]}]}));
        let policy = RoutingPolicy::from_http_route("h", &equal, &[]);
        assert_eq!(policy.rules[0].route, vec![Share::new("a", 50), Share::new("b", 50)]);
    }

    #[test]
    fn an_edit_keeps_everything_around_the_rules() {
        let live = tutorial_route();
        let mut policy = RoutingPolicy::from_http_route("recommendation", &live, &versions());
        policy.rules[1].route = vec![Share::new("recommendation-v1", 75), Share::new("recommendation-v2", 25)];
        let written = serde_json::to_value(policy.to_http_route("t", Some(&live), Some(8080))).unwrap();
        let original = serde_json::to_value(&live).unwrap();
        assert_eq!(written["metadata"]["name"], "reco-mesh");
        assert_eq!(written["spec"]["parentRefs"], original["spec"]["parentRefs"]);
        assert_eq!(written["spec"]["hostnames"], original["spec"]["hostnames"]);
        assert_eq!(written["spec"]["rules"][0]["name"], "firefox");
        let rule = &written["spec"]["rules"][1];
        assert_eq!(
            rule["backendRefs"],
            json!([{"name": "recommendation-v1", "port": 8080, "weight": 75},
                   {"name": "recommendation-v2", "port": 8080, "weight": 25}])
        );
        assert_eq!(rule["filters"], original["spec"]["rules"][1]["filters"]);
        assert_eq!(rule["timeouts"], json!({"request": "2s", "backendRequest": "1s"}));
        assert_eq!(written["metadata"].get("resourceVersion"), None);
    }

    #[test]
    fn a_new_route_attaches_to_the_host_service_and_mirrors_with_a_port() {
        let mut policy = RoutingPolicy::new("recommendation");
        let mut rule = Rule::weighted(&[("recommendation-v1", 100)]);
        rule.mirror = Some(Mirror { subset: "recommendation-v2".into(), percentage: Some(10.0) });
        rule.matches = Some(vec![Match { uri: Some(StringMatch::Prefix("/api".into())), ..Default::default() }]);
        policy.rules.push(rule);
        let written = serde_json::to_value(policy.to_http_route("t", None, Some(8080))).unwrap();
        assert_eq!(
            written["spec"]["parentRefs"],
            json!([{"group": "", "kind": "Service", "name": "recommendation", "port": 8080}])
        );
        let rule = &written["spec"]["rules"][0];
        assert_eq!(rule["matches"], json!([{"path": {"type": "PathPrefix", "value": "/api"}}]));
        assert_eq!(rule["backendRefs"], json!([{"name": "recommendation-v1", "port": 8080, "weight": 100}]));
        assert_eq!(
            rule["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "recommendation-v2", "port": 8080}, "percent": 10}}])
        );
    }

    #[test]
    fn what_the_gateway_api_cannot_say_is_named_by_field() {
        let mut policy = RoutingPolicy::new("recommendation");
        let mut rule = Rule::weighted(&[("recommendation-v1", 100)]);
        rule.fault = Some(Fault::default());
        rule.retries = Some(Default::default());
        let headers = OrderedMap(vec![("x-user".to_string(), StringMatch::Prefix("a".into()))]);
        rule.matches = Some(vec![Match { headers: Some(headers), ..Default::default() }]);
        policy.rules.push(rule);
        let fields: Vec<String> = inexpressible(&policy, false).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["rules[0].fault", "rules[0].retries", "rules[0].match[0].headers.x-user"]);
        assert!(inexpressible(&RoutingPolicy::new("recommendation"), false).is_empty());
    }

    #[test]
    fn a_virtual_service_policy_migrates_onto_per_version_services() {
        let policy: RoutingPolicy = serde_json::from_value(json!({"host": "recommendation",
            "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
            "rules": [{"match": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
                      {"route": {"version-v1": 90, "version-v2": 10}, "mirror": {"subset": "version-v2"}}]}))
        .unwrap();
        let existing = &versions()[..1];
        let (migrated, to_create) = migrated(&policy, existing);
        let body = serde_json::to_value(&migrated).unwrap();
        assert_eq!(body["rules"][1]["route"], json!({"recommendation-v1": 90, "recommendation-v2": 10}));
        assert_eq!(body["rules"][0]["route"], json!({"recommendation-v2": 100}));
        assert_eq!(body["rules"][1]["mirror"]["subset"], "recommendation-v2");
        let names: Vec<&str> = to_create.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["recommendation-v2"], "recommendation-v1 exists already");
    }

    #[test]
    fn the_experimental_channel_retries_on_status_codes_only() {
        let mut policy = RoutingPolicy::new("recommendation");
        let mut rule = Rule::weighted(&[("recommendation-v1", 100)]);
        rule.retries = Some(Retries { attempts: Some(3), retry_on: Some("503, 504".into()), ..Default::default() });
        policy.rules.push(rule.clone());
        assert!(inexpressible(&policy, true).is_empty());
        let written = policy.to_http_route("t", None, Some(8080));
        let body = serde_json::to_value(&written).unwrap();
        assert_eq!(body["spec"]["rules"][0]["retry"], json!({"attempts": 3, "codes": [503, 504]}));
        let read = RoutingPolicy::from_http_route("recommendation", &written, &versions());
        let retries = read.rules[0].retries.clone().unwrap();
        assert_eq!((retries.attempts, retries.retry_on.as_deref()), (Some(3), Some("503,504")));

        rule.retries = Some(Retries {
            attempts: Some(0),
            per_try_timeout: Some("1s".into()),
            retry_on: Some("5xx".into()),
            ..Default::default()
        });
        policy.rules[0] = rule;
        let fields: Vec<String> = inexpressible(&policy, true).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["rules[0].retries.perTryTimeout", "rules[0].retries.attempts", "rules[0].retries.retryOn"]);
    }

    #[test]
    fn per_version_services_are_those_selecting_the_app_and_more() {
        let service = |name: &str, selector: Value| -> Service {
            serde_json::from_value(
                json!({"metadata": {"name": name}, "spec": {"selector": selector, "ports": [{"port": 8080}]}}),
            )
            .unwrap()
        };
        let services = [
            service("recommendation", json!({"app": "recommendation"})),
            service("recommendation-v2", json!({"app": "recommendation", "version": "v2"})),
            service("preference-v1", json!({"app": "preference", "version": "v1"})),
        ];
        let found = version_services("recommendation", &services);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].name.as_str(), found[0].port), ("recommendation-v2", Some(8080)));
        assert_eq!(service_port("recommendation", &services), Some(8080));
    }
}
