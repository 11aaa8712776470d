//! Extracting a host's [`RoutingPolicy`] from live Istio objects.
//!
//! An HTTP route belongs to the policy when every destination is this host and the
//! policy model can express it. Any other route (other hosts, redirects, exotic string
//! matches) is left where it is in the VirtualService and reported as kept verbatim.
use super::model::{
    ALL_PODS, Abort, Delay, Fault, Match, Mirror, Retries, RoutingPolicy, Rule, Share, StringMatch, Subset, Weight,
};
use crate::istio::{
    DestinationRule, HttpFaultInjection, HttpMatchRequest, HttpRoute, OrderedMap, Percent, StringMatch as IstioMatch,
    VirtualService,
};
use serde_json::Number;

/// Why a policy could not be extracted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The DestinationRule given is for another host.
    #[error("the DestinationRule is for host {dr_host:?}, not {host:?}")]
    HostMismatch {
        /// The host asked for.
        host: String,
        /// The host the DestinationRule names.
        dr_host: String,
    },
    /// The host's routing is spread over several objects or delegated; the message names them.
    #[error("{0}")]
    Ambiguous(String),
}

/// A host's policy together with the parts of the objects it keeps verbatim.
#[derive(Clone, Debug, PartialEq)]
pub struct Extraction {
    /// The editable policy.
    pub policy: RoutingPolicy,
    /// Paths (e.g. `spec.http[2]: routes to other hosts`) the policy does not model; they
    /// survive [`RoutingPolicy::to_istio`] unchanged.
    pub kept_verbatim: Vec<String>,
}

/// How one live HTTP route relates to a host's policy.
pub(crate) enum RouteClass {
    /// The route is one of the policy's rules.
    Policy(Box<Rule>),
    /// The route is kept verbatim, for the reason given.
    Foreign(String),
}

impl RoutingPolicy {
    /// Extracts the policy of `host` from its VirtualService and DestinationRule (either may be absent).
    pub fn from_istio(
        host: &str,
        vs: Option<&VirtualService>,
        dr: Option<&DestinationRule>,
    ) -> Result<RoutingPolicy, PolicyError> {
        extract(host, vs, dr).map(|extraction| extraction.policy)
    }
}

/// Like [`RoutingPolicy::from_istio`], also listing what the policy keeps verbatim.
pub fn extract(
    host: &str,
    vs: Option<&VirtualService>,
    dr: Option<&DestinationRule>,
) -> Result<Extraction, PolicyError> {
    let mut kept_verbatim = Vec::new();
    // Objects read from the API server carry their namespace; it decides what `host.<ns>` means.
    let namespace =
        vs.and_then(|vs| vs.metadata.namespace.as_deref()).or(dr.and_then(|dr| dr.metadata.namespace.as_deref()));
    let subsets = match dr {
        Some(dr) => subsets_from_istio(host, namespace, dr, &mut kept_verbatim)?,
        None => Vec::new(),
    };
    let mut rules = Vec::new();
    if let Some(vs) = vs {
        kept_verbatim.extend(vs.spec.other.keys().map(|key| format!("VirtualService spec.{key}")));
        for (index, route) in vs.spec.http.iter().flatten().enumerate() {
            match classify(route, host, namespace) {
                RouteClass::Policy(rule) => {
                    kept_verbatim.extend(unmodelled_in_route(route, index));
                    rules.push(*rule);
                }
                RouteClass::Foreign(reason) => {
                    kept_verbatim.push(format!("VirtualService spec.http[{index}]: {reason}"))
                }
            }
        }
    }
    Ok(Extraction { policy: RoutingPolicy { host: host.to_string(), subsets, rules }, kept_verbatim })
}

/// Whether `name` (a destination host, a VirtualService `hosts` entry or a DestinationRule
/// `host`) names the Service `host` of `namespace`, in a form Istio accepts: the short name
/// (resolved in the object's own namespace) or `host.<ns>[.svc[.cluster.local]]`.
///
/// `host.otherns` is another Service. Without a namespace (an object not placed yet, as in
/// fixtures) any namespace is accepted.
pub fn refers_to_host(name: &str, host: &str, namespace: Option<&str>) -> bool {
    if name == host {
        return true;
    }
    let Some(rest) = name.strip_prefix(host).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    match parts.as_slice() {
        [ns] | [ns, "svc"] | [ns, "svc", "cluster", "local"] => !ns.is_empty() && namespace.is_none_or(|n| n == *ns),
        _ => false,
    }
}

fn subsets_from_istio(
    host: &str,
    namespace: Option<&str>,
    dr: &DestinationRule,
    kept: &mut Vec<String>,
) -> Result<Vec<Subset>, PolicyError> {
    if let Some(dr_host) = &dr.spec.host
        && !refers_to_host(dr_host, host, namespace)
    {
        return Err(PolicyError::HostMismatch { host: host.to_string(), dr_host: dr_host.clone() });
    }
    if dr.spec.traffic_policy.is_some() {
        kept.push("DestinationRule spec.trafficPolicy".to_string());
    }
    kept.extend(dr.spec.other.keys().map(|key| format!("DestinationRule spec.{key}")));
    let mut subsets = Vec::new();
    for (index, subset) in dr.spec.subsets.iter().flatten().enumerate() {
        if subset.traffic_policy.is_some() {
            kept.push(format!("DestinationRule spec.subsets[{index}].trafficPolicy"));
        }
        kept.extend(subset.other.keys().map(|key| format!("DestinationRule spec.subsets[{index}].{key}")));
        subsets.push(Subset { name: subset.name.clone(), labels: subset.labels.clone().unwrap_or_default() });
    }
    Ok(subsets)
}

/// Decides whether `route` is a policy rule for `host` (of `namespace`), converting it if so.
pub(crate) fn classify(route: &HttpRoute, host: &str, namespace: Option<&str>) -> RouteClass {
    let destinations = route.route.as_deref().unwrap_or_default();
    if destinations.is_empty() {
        return RouteClass::Foreign("does not forward (redirect, direct response or delegate)".to_string());
    }
    let ours = destinations.iter().filter(|d| refers_to_host(&d.destination.host, host, namespace)).count();
    if ours == 0 {
        return RouteClass::Foreign("routes to other hosts".to_string());
    }
    if ours < destinations.len() {
        return RouteClass::Foreign("routes to this and other hosts".to_string());
    }
    match rule_from_route(route, host, namespace) {
        Ok(rule) => RouteClass::Policy(Box::new(rule)),
        Err(reason) => RouteClass::Foreign(reason),
    }
}

fn rule_from_route(route: &HttpRoute, host: &str, namespace: Option<&str>) -> Result<Rule, String> {
    let destinations = route.route.as_deref().unwrap_or_default();
    // Istio sends all traffic to a lone destination whatever its weight says is missing.
    let implied_weight = if destinations.len() == 1 { 100 } else { 0 };
    let mut shares: Vec<Share> = Vec::new();
    for destination in destinations {
        let subset = destination.destination.subset.clone().unwrap_or_else(|| ALL_PODS.to_string());
        if shares.iter().any(|s| s.subset == subset) {
            return Err(format!("subset {subset} appears twice in one route"));
        }
        let weight = Weight(Number::from(destination.weight.unwrap_or(implied_weight)));
        shares.push(Share { subset, weight });
    }
    let mut other = route.other.clone();
    insert_value(&mut other, "name", &route.name);
    insert_value(&mut other, "rewrite", &route.rewrite);
    let mirror = mirror_from_route(route, host, namespace, &mut other);
    Ok(Rule {
        matches: route.matches.as_ref().map(|m| m.iter().map(match_from_istio).collect()).transpose()?,
        route: shares,
        timeout: route.timeout.clone(),
        retries: route.retries.as_ref().map(|r| Retries {
            attempts: r.attempts,
            per_try_timeout: r.per_try_timeout.clone(),
            retry_on: r.retry_on.clone(),
            other: r.other.clone(),
        }),
        fault: route.fault.as_ref().map(fault_from_istio).transpose()?,
        mirror,
        other,
    })
}

/// Mirrors to this host become [`Mirror`]; anything else (another host, a port) stays verbatim.
fn mirror_from_route(
    route: &HttpRoute,
    host: &str,
    namespace: Option<&str>,
    other: &mut crate::istio::Unmodelled,
) -> Option<Mirror> {
    let mirror = route.mirror.as_ref()?;
    let percentage = route.mirror_percentage.as_ref().map(percent_value);
    let expressible = refers_to_host(&mirror.host, host, namespace)
        && mirror.port.is_none()
        && mirror.other.is_empty()
        && !matches!(percentage, Some(None));
    if !expressible {
        insert_value(other, "mirror", &route.mirror);
        insert_value(other, "mirrorPercentage", &route.mirror_percentage);
        return None;
    }
    Some(Mirror {
        subset: mirror.subset.clone().unwrap_or_else(|| ALL_PODS.to_string()),
        percentage: percentage.flatten(),
    })
}

fn match_from_istio(entry: &HttpMatchRequest) -> Result<Match, String> {
    Ok(Match {
        uri: entry.uri.as_ref().map(string_match_from_istio).transpose()?,
        method: entry.method.as_ref().map(string_match_from_istio).transpose()?,
        headers: entry.headers.as_ref().map(map_from_istio).transpose()?,
        query_params: entry.query_params.as_ref().map(map_from_istio).transpose()?,
        other: entry.other.clone(),
    })
}

fn map_from_istio(map: &OrderedMap<IstioMatch>) -> Result<OrderedMap<StringMatch>, String> {
    map.iter().map(|(key, m)| Ok((key.clone(), string_match_from_istio(m)?))).collect()
}

fn string_match_from_istio(m: &IstioMatch) -> Result<StringMatch, String> {
    match (&m.exact, &m.prefix, &m.regex) {
        (Some(v), None, None) if m.other.is_empty() => Ok(StringMatch::Exact(v.clone())),
        (None, Some(v), None) if m.other.is_empty() => Ok(StringMatch::Prefix(v.clone())),
        (None, None, Some(v)) if m.other.is_empty() => Ok(StringMatch::Regex(v.clone())),
        _ => Err("has a string match that is not exactly one of exact, prefix, regex".to_string()),
    }
}

fn fault_from_istio(fault: &HttpFaultInjection) -> Result<Fault, String> {
    let unexpressible = || "has a fault percentage the policy cannot express".to_string();
    let delay = match &fault.delay {
        Some(d) => Some(Delay {
            fixed_delay: d.fixed_delay.clone(),
            percentage: d.percentage.as_ref().map(|p| percent_value(p).ok_or_else(unexpressible)).transpose()?,
            other: d.other.clone(),
        }),
        None => None,
    };
    let abort = match &fault.abort {
        Some(a) => Some(Abort {
            http_status: a.http_status,
            percentage: a.percentage.as_ref().map(|p| percent_value(p).ok_or_else(unexpressible)).transpose()?,
            other: a.other.clone(),
        }),
        None => None,
    };
    Ok(Fault { delay, abort, other: fault.other.clone() })
}

/// The value of a `Percent` that holds nothing but a value.
fn percent_value(percent: &Percent) -> Option<f64> {
    percent.value.filter(|_| percent.other.is_empty())
}

fn insert_value<T: serde::Serialize>(other: &mut crate::istio::Unmodelled, key: &str, value: &Option<T>) {
    if let Some(value) = value
        && let Ok(json) = serde_json::to_value(value)
    {
        other.insert(key.to_string(), json);
    }
}

/// Paths inside a policy route that the model carries without understanding them.
fn unmodelled_in_route(route: &HttpRoute, index: usize) -> Vec<String> {
    let base = format!("VirtualService spec.http[{index}]");
    let mut paths: Vec<String> = route.other.keys().map(|key| format!("{base}.{key}")).collect();
    if route.rewrite.is_some() {
        paths.push(format!("{base}.rewrite"));
    }
    for (m, entry) in route.matches.iter().flatten().enumerate() {
        paths.extend(entry.other.keys().map(|key| format!("{base}.match[{m}].{key}")));
    }
    for (d, destination) in route.route.iter().flatten().enumerate() {
        paths.extend(destination.other.keys().map(|key| format!("{base}.route[{d}].{key}")));
        if destination.destination.port.is_some() {
            paths.push(format!("{base}.route[{d}].destination.port"));
        }
    }
    if let Some(fault) = &route.fault {
        paths.extend(fault.other.keys().map(|key| format!("{base}.fault.{key}")));
        let delay = fault.delay.iter().flat_map(|d| d.other.keys()).map(|key| format!("{base}.fault.delay.{key}"));
        paths.extend(delay);
        let abort = fault.abort.iter().flat_map(|a| a.other.keys()).map(|key| format!("{base}.fault.abort.{key}"));
        paths.extend(abort);
    }
    if let Some(retries) = &route.retries {
        paths.extend(retries.other.keys().map(|key| format!("{base}.retries.{key}")));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{IstioObject, parse_yaml};

    pub(crate) fn vs(yaml: &str) -> VirtualService {
        match parse_yaml(yaml) {
            Ok(IstioObject::VirtualService(vs)) => vs,
            other => panic!("not a VirtualService: {other:?}"),
        }
    }

    fn dr(yaml: &str) -> DestinationRule {
        match parse_yaml(yaml) {
            Ok(IstioObject::DestinationRule(dr)) => dr,
            other => panic!("not a DestinationRule: {other:?}"),
        }
    }

    const HEAD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: recommendation}\nspec:\n  hosts: [recommendation]\n";

    #[test]
    fn firefox_rule_and_default() {
        let vs = vs(&format!(
            "{HEAD}  http:\n  - match: [{{headers: {{baggage-user-agent: {{regex: .*Firefox.*}}}}}}]\n    route: [{{destination: {{host: recommendation, subset: version-v2}}}}]\n  - route: [{{destination: {{host: recommendation, subset: version-v1}}}}]\n"
        ));
        let policy = RoutingPolicy::from_istio("recommendation", Some(&vs), None).unwrap();
        assert_eq!(policy.rules.len(), 2);
        let header = policy.rules[0].matches.as_ref().unwrap()[0].headers.as_ref().unwrap().get("baggage-user-agent");
        assert_eq!(header, Some(&StringMatch::Regex(".*Firefox.*".into())));
        assert_eq!(policy.rules[1].route, vec![Share::new("version-v1", 100)]);
    }

    #[test]
    fn weights_and_missing_subset() {
        let vs = vs(&format!(
            "{HEAD}  http:\n  - route:\n    - {{destination: {{host: recommendation.tutorial.svc.cluster.local, subset: version-v1}}, weight: 90}}\n    - {{destination: {{host: recommendation, subset: version-v2}}, weight: 10}}\n  - route: [{{destination: {{host: recommendation}}}}]\n    timeout: 1s\n"
        ));
        let policy = RoutingPolicy::from_istio("recommendation", Some(&vs), None).unwrap();
        assert_eq!(policy.rules[0].route, vec![Share::new("version-v1", 90), Share::new("version-v2", 10)]);
        assert_eq!(policy.rules[1].route, vec![Share::new(ALL_PODS, 100)]);
        assert_eq!(policy.rules[1].timeout.as_deref(), Some("1s"));
    }

    #[test]
    fn other_hosts_and_redirects_are_kept_verbatim() {
        let vs = vs(&format!(
            "{HEAD}  http:\n  - route: [{{destination: {{host: legacy}}}}]\n  - redirect: {{uri: /x}}\n  - route: [{{destination: {{host: recommendation}}}}]\n"
        ));
        let extraction = extract("recommendation", Some(&vs), None).unwrap();
        assert_eq!(extraction.policy.rules.len(), 1);
        assert_eq!(extraction.kept_verbatim.len(), 2);
        assert!(extraction.kept_verbatim[0].contains("spec.http[0]: routes to other hosts"));
    }

    #[test]
    fn mirror_to_other_host_stays_in_other() {
        let vs = vs(&format!(
            "{HEAD}  http:\n  - route: [{{destination: {{host: recommendation}}}}]\n    mirror: {{host: shadow}}\n    mirrorPercentage: {{value: 5}}\n"
        ));
        let rule = &RoutingPolicy::from_istio("recommendation", Some(&vs), None).unwrap().rules[0];
        assert_eq!(rule.mirror, None);
        assert_eq!(rule.other["mirror"]["host"], "shadow");
        assert_eq!(rule.other["mirrorPercentage"]["value"], 5);
    }

    #[test]
    fn subsets_from_destination_rule() {
        let dr = dr(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: recommendation\n  subsets: [{name: version-v1, labels: {version: v1}}]\n",
        );
        let policy = RoutingPolicy::from_istio("recommendation", None, Some(&dr)).unwrap();
        assert_eq!(policy.subsets, vec![Subset::version("version-v1", "v1")]);
        assert!(matches!(RoutingPolicy::from_istio("other", None, Some(&dr)), Err(PolicyError::HostMismatch { .. })));
    }

    #[test]
    fn host_forms() {
        let ns = Some("tutorial");
        for form in ["recommendation", "recommendation.tutorial", "recommendation.tutorial.svc"] {
            assert!(refers_to_host(form, "recommendation", ns), "{form}");
        }
        assert!(refers_to_host("recommendation.tutorial.svc.cluster.local", "recommendation", ns));
        assert!(!refers_to_host("recommendation.otherns", "recommendation", ns), "another namespace's Service");
        assert!(!refers_to_host("recommendation.otherns.svc.cluster.local", "recommendation", ns));
        assert!(refers_to_host("recommendation.otherns", "recommendation", None), "unplaced: any namespace");
        assert!(!refers_to_host("recommendation-v2", "recommendation", ns));
        assert!(!refers_to_host("recommendation.a.b", "recommendation", None));
        assert!(!refers_to_host("recommendation.", "recommendation", None));
        assert!(!refers_to_host("recommendation.tutorial.svc.cluster", "recommendation", ns));
    }

    #[test]
    fn destinations_in_another_namespace_are_not_this_host() {
        let mut vs = vs(&format!(
            "{HEAD}  http:\n  - route: [{{destination: {{host: recommendation.otherns.svc.cluster.local}}}}]\n  - route: [{{destination: {{host: recommendation.tutorial.svc.cluster.local}}}}]\n"
        ));
        vs.metadata.namespace = Some("tutorial".into());
        let extraction = extract("recommendation", Some(&vs), None).unwrap();
        assert_eq!(extraction.policy.rules.len(), 1);
        assert!(extraction.kept_verbatim[0].contains("spec.http[0]: routes to other hosts"), "{extraction:?}");
    }
}
