//! Rendering a [`RoutingPolicy`] into VirtualService and DestinationRule objects, merged into
//! the live ones so everything the policy does not model is kept as it was.
//!
//! Positions: the live routes that belong to the policy are replaced in place, rule by rule;
//! extra rules go after the last of them (or at the end); routes the policy does not own
//! keep their positions.
//!
//! Weights: a rule sending 100% to one subset is written without `weight` (Istio's default),
//! unless the live route in the same position wrote `weight: 100` explicitly; this keeps both
//! tutorial styles byte-for-byte stable. Several destinations always get explicit weights.
use super::from_istio::{RouteClass, classify, refers_to_host};
use super::model::{ALL_PODS, Fault, Match, Retries, RoutingPolicy, Rule, Share, StringMatch};
use crate::istio::{
    Destination, DestinationRule, DestinationRuleSpec, DestinationSubset, FaultAbort, FaultDelay, HttpFaultInjection,
    HttpMatchRequest, HttpRetry, HttpRoute, HttpRouteDestination, OrderedMap, Percent, PortSelector,
    StringMatch as IstioMatch, Unmodelled, VirtualService, VirtualServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

/// Route keys the rule always renders itself; stray copies in `other` are dropped.
const RENDERED_ROUTE_KEYS: [&str; 5] = ["match", "route", "timeout", "retries", "fault"];

impl RoutingPolicy {
    /// Renders the desired VirtualService and DestinationRule for server-side apply in
    /// `namespace`, keeping everything unmodelled from `live_vs`/`live_dr`.
    ///
    /// Expects a policy that passed [`super::validate`]; an invalid weight renders as 0.
    pub fn to_istio(
        &self,
        namespace: &str,
        live_vs: Option<&VirtualService>,
        live_dr: Option<&DestinationRule>,
    ) -> (VirtualService, DestinationRule) {
        (self.render_virtual_service(namespace, live_vs), self.render_destination_rule(namespace, live_dr))
    }

    fn render_virtual_service(&self, namespace: &str, live: Option<&VirtualService>) -> VirtualService {
        let mut vs = live.cloned().unwrap_or_else(|| {
            let spec = VirtualServiceSpec { hosts: Some(vec![self.host.clone()]), ..VirtualServiceSpec::default() };
            VirtualService::new(&self.host, spec)
        });
        prepare_metadata(&mut vs.metadata, namespace, &self.host);
        vs.status = None; // istiod's to write, never sent back
        let live_routes = live.and_then(|vs| vs.spec.http.clone());
        let live_routes = live_routes.as_deref().unwrap_or_default();
        let hosts = vs.spec.hosts.as_deref().unwrap_or_default();
        let destinations = LiveDestinations::new(live_routes, hosts, &self.host, namespace);
        let merged = self.merge_routes(live_routes, &destinations, namespace);
        let had_http = live.is_some_and(|vs| vs.spec.http.is_some());
        vs.spec.http = if merged.is_empty() && !had_http { None } else { Some(merged) };
        vs
    }

    fn merge_routes(
        &self,
        live_routes: &[HttpRoute],
        destinations: &LiveDestinations,
        namespace: &str,
    ) -> Vec<HttpRoute> {
        let owned: Vec<bool> = live_routes
            .iter()
            .map(|r| matches!(classify(r, &self.host, Some(namespace)), RouteClass::Policy(_)))
            .collect();
        let last_owned = owned.iter().rposition(|o| *o);
        let mut rules = self.rules.iter().enumerate();
        let mut slots = live_routes.iter().zip(&owned).filter(|(_, o)| **o).map(|(r, _)| r);
        let mut merged = Vec::new();
        for (index, route) in live_routes.iter().enumerate() {
            if !owned[index] {
                merged.push(route.clone());
                continue;
            }
            let slot = slots.next();
            if let Some((_, rule)) = rules.next() {
                merged.push(render_rule(rule, slot, destinations));
            }
            if Some(index) == last_owned {
                merged.extend(rules.by_ref().map(|(_, rule)| render_rule(rule, None, destinations)));
            }
        }
        merged.extend(rules.map(|(_, rule)| render_rule(rule, None, destinations)));
        merged
    }

    fn render_destination_rule(&self, namespace: &str, live: Option<&DestinationRule>) -> DestinationRule {
        let mut dr = live.cloned().unwrap_or_else(|| {
            let spec = DestinationRuleSpec { host: Some(self.host.clone()), ..DestinationRuleSpec::default() };
            DestinationRule::new(&self.host, spec)
        });
        prepare_metadata(&mut dr.metadata, namespace, &self.host);
        dr.status = None;
        if dr.spec.host.is_none() {
            dr.spec.host = Some(self.host.clone());
        }
        let live_subsets = dr.spec.subsets.take();
        let subsets: Vec<DestinationSubset> = self
            .subsets
            .iter()
            .map(|subset| {
                let live = live_subsets.iter().flatten().find(|s| s.name == subset.name);
                let mut rendered = live.cloned().unwrap_or_default();
                rendered.name = subset.name.clone();
                let had_labels = live.is_some_and(|s| s.labels.is_some());
                rendered.labels = (had_labels || !subset.labels.is_empty()).then(|| subset.labels.clone());
                rendered
            })
            .collect();
        dr.spec.subsets = if subsets.is_empty() && live_subsets.is_none() { None } else { Some(subsets) };
        dr
    }
}

/// Names the object after the host unless it exists, and clears server-owned fields that
/// must not be sent with server-side apply.
pub(super) fn prepare_metadata(metadata: &mut ObjectMeta, namespace: &str, host: &str) {
    if metadata.name.is_none() {
        metadata.name = Some(host.to_string());
    }
    metadata.namespace = Some(namespace.to_string());
    metadata.resource_version = None;
    metadata.managed_fields = None;
    metadata.uid = None;
    metadata.creation_timestamp = None;
    metadata.generation = None;
    metadata.deletion_timestamp = None;
    metadata.deletion_grace_period_seconds = None;
}

/// What the live objects say about destinations the policy does not model: the host
/// spelling (short or FQDN), ports and per-destination extras such as header manipulation.
/// New destinations are written the way the existing ones are, so an edit does not mix
/// spellings or drop to the Service's default port.
struct LiveDestinations {
    /// The host as the live routes spell it, else as the VirtualService's `hosts` spell it,
    /// else the policy's host.
    host: String,
    /// The port the live destinations of this host carry (the first one), for new ones.
    port: Option<PortSelector>,
    by_subset: Vec<(String, HttpRouteDestination)>,
}

impl LiveDestinations {
    fn new(live_routes: &[HttpRoute], hosts: &[String], host: &str, namespace: &str) -> Self {
        let mut by_subset: Vec<(String, HttpRouteDestination)> = Vec::new();
        let mut host_spelling = None;
        let mut port = None;
        let owned = |r: &&HttpRoute| matches!(classify(r, host, Some(namespace)), RouteClass::Policy(_));
        for route in live_routes.iter().filter(owned) {
            for destination in route.route.iter().flatten() {
                host_spelling.get_or_insert_with(|| destination.destination.host.clone());
                if port.is_none() {
                    port = destination.destination.port.clone();
                }
                let subset = destination.destination.subset.clone().unwrap_or_else(|| ALL_PODS.to_string());
                if !by_subset.iter().any(|(s, _)| *s == subset) {
                    by_subset.push((subset, destination.clone()));
                }
            }
        }
        let named_in_hosts = || hosts.iter().find(|h| refers_to_host(h, host, Some(namespace))).cloned();
        let host = host_spelling
            .filter(|h| refers_to_host(h, host, Some(namespace)))
            .or_else(named_in_hosts)
            .unwrap_or_else(|| host.to_string());
        LiveDestinations { host, port, by_subset }
    }

    fn render(&self, share: &Share, explicit_weight: bool) -> HttpRouteDestination {
        let live = self.by_subset.iter().find(|(s, _)| *s == share.subset).map(|(_, d)| d);
        let destination = Destination {
            host: self.host.clone(),
            subset: (share.subset != ALL_PODS).then(|| share.subset.clone()),
            port: match live {
                Some(live) => live.destination.port.clone(),
                None => self.port.clone(),
            },
            other: live.map(|d| d.destination.other.clone()).unwrap_or_default(),
        };
        let weight = share.weight.0.as_i64().and_then(|w| i32::try_from(w).ok()).unwrap_or(0);
        HttpRouteDestination {
            destination,
            weight: explicit_weight.then_some(weight),
            other: live.map(|d| d.other.clone()).unwrap_or_default(),
        }
    }
}

fn render_rule(rule: &Rule, slot: Option<&HttpRoute>, destinations: &LiveDestinations) -> HttpRoute {
    let mut other = rule.other.clone();
    for key in RENDERED_ROUTE_KEYS {
        other.remove(key);
    }
    let name = take_typed(&mut other, "name");
    let rewrite = take_typed(&mut other, "rewrite");
    let (mirror, mirror_percentage) = match &rule.mirror {
        Some(mirror) => {
            other.remove("mirror");
            other.remove("mirrorPercentage");
            let destination = Destination {
                host: destinations.host.clone(),
                subset: (mirror.subset != ALL_PODS).then(|| mirror.subset.clone()),
                ..Destination::default()
            };
            (Some(destination), mirror.percentage.map(Percent::of))
        }
        None => (take_typed(&mut other, "mirror"), take_typed(&mut other, "mirrorPercentage")),
    };
    HttpRoute {
        name,
        matches: rule.matches.as_ref().map(|m| m.iter().map(match_to_istio).collect()),
        route: Some(render_shares(&rule.route, slot, destinations)),
        timeout: rule.timeout.clone(),
        retries: rule.retries.as_ref().map(retries_to_istio),
        fault: rule.fault.as_ref().map(fault_to_istio),
        mirror,
        mirror_percentage,
        rewrite,
        other,
    }
}

fn render_shares(
    shares: &[Share],
    slot: Option<&HttpRoute>,
    destinations: &LiveDestinations,
) -> Vec<HttpRouteDestination> {
    let explicit = match shares {
        [only] => slot_has_explicit_weight(slot, &only.subset),
        _ => true,
    };
    shares.iter().map(|share| destinations.render(share, explicit)).collect()
}

/// Whether the live route in this position sent all traffic to `subset` with an explicit weight.
fn slot_has_explicit_weight(slot: Option<&HttpRoute>, subset: &str) -> bool {
    let Some(live) = slot.and_then(|r| r.route.as_deref()) else {
        return false;
    };
    match live {
        [only] => only.weight.is_some() && only.destination.subset.as_deref().unwrap_or(ALL_PODS) == subset,
        _ => false,
    }
}

/// Moves `other[key]` into a typed field when it has the right shape; otherwise it stays
/// in `other` and is rendered verbatim (the API server's dry run reports it).
fn take_typed<T: DeserializeOwned>(other: &mut Unmodelled, key: &str) -> Option<T> {
    let typed = serde_json::from_value(other.get(key)?.clone()).ok()?;
    other.remove(key);
    Some(typed)
}

fn match_to_istio(entry: &Match) -> HttpMatchRequest {
    HttpMatchRequest {
        uri: entry.uri.as_ref().map(string_match_to_istio),
        method: entry.method.as_ref().map(string_match_to_istio),
        headers: entry.headers.as_ref().map(map_to_istio),
        query_params: entry.query_params.as_ref().map(map_to_istio),
        other: entry.other.clone(),
    }
}

fn map_to_istio(map: &OrderedMap<StringMatch>) -> OrderedMap<IstioMatch> {
    map.iter().map(|(key, m)| (key.clone(), string_match_to_istio(m))).collect()
}

fn string_match_to_istio(m: &StringMatch) -> IstioMatch {
    let mut rendered = IstioMatch::default();
    match m {
        StringMatch::Exact(v) => rendered.exact = Some(v.clone()),
        StringMatch::Prefix(v) => rendered.prefix = Some(v.clone()),
        StringMatch::Regex(v) => rendered.regex = Some(v.clone()),
    }
    rendered
}

fn retries_to_istio(retries: &Retries) -> HttpRetry {
    HttpRetry {
        attempts: retries.attempts,
        per_try_timeout: retries.per_try_timeout.clone(),
        retry_on: retries.retry_on.clone(),
        other: retries.other.clone(),
    }
}

fn fault_to_istio(fault: &Fault) -> HttpFaultInjection {
    HttpFaultInjection {
        delay: fault.delay.as_ref().map(|d| FaultDelay {
            fixed_delay: d.fixed_delay.clone(),
            percentage: d.percentage.map(Percent::of),
            other: d.other.clone(),
        }),
        abort: fault.abort.as_ref().map(|a| FaultAbort {
            http_status: a.http_status,
            percentage: a.percentage.map(Percent::of),
            other: a.other.clone(),
        }),
        other: fault.other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{IstioObject, parse_yaml};
    use crate::policy::Subset;

    const LIVE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: recommendation
  namespace: tutorial
  resourceVersion: "42"
  labels: {team: a}
  annotations: {note: keep}
spec:
  hosts: [recommendation]
  exportTo: ["."]
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: recommendation, subset: version-v2}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: 5xx}
  - route: [{destination: {host: legacy}}]
  - corsPolicy: {allowOrigins: [{exact: "https://a.example"}]}
    headers: {request: {set: {x-from: signalbox}}}
    route:
    - destination: {host: recommendation, subset: version-v1, port: {number: 8080}}
      weight: 90
    - destination: {host: recommendation, subset: version-v2}
      weight: 10
  tcp: [{route: [{destination: {host: recommendation}}]}]
"#;

    fn live() -> VirtualService {
        match parse_yaml(LIVE) {
            Ok(IstioObject::VirtualService(vs)) => vs,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn changing_weights_keeps_everything_else() {
        let live = live();
        let mut policy = RoutingPolicy::from_istio("recommendation", Some(&live), None).unwrap();
        assert_eq!(policy.rules.len(), 2);
        policy.rules[1].route = vec![Share::new("version-v1", 75), Share::new("version-v2", 25)];
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);

        let mut expected = serde_json::to_value(&live).unwrap();
        expected["spec"]["http"][2]["route"][0]["weight"] = 75.into();
        expected["spec"]["http"][2]["route"][1]["weight"] = 25.into();
        expected["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        assert_eq!(serde_json::to_value(&vs).unwrap(), expected);
    }

    #[test]
    fn unchanged_policy_renders_live_object() {
        let live = live();
        let policy = RoutingPolicy::from_istio("recommendation", Some(&live), None).unwrap();
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        assert_eq!(vs.spec, live.spec);
        assert_eq!(vs.metadata.resource_version, None);
    }

    #[test]
    fn extra_rules_go_after_the_last_owned_route_and_removed_ones_vanish() {
        let live = live();
        let mut policy = RoutingPolicy::from_istio("recommendation", Some(&live), None).unwrap();
        policy.rules.push(Rule::weighted(&[("version-v1", 100)]));
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        let http = vs.spec.http.unwrap();
        assert_eq!(http.len(), 4);
        assert_eq!(http[1].route.as_ref().unwrap()[0].destination.host, "legacy");
        assert_eq!(http[3].route.as_ref().unwrap()[0].weight, None);

        policy.rules.remove(0);
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        let http = vs.spec.http.unwrap();
        // Rules fill the owned positions in order, so the CORS rule moves up into slot 0.
        assert_eq!(http.len(), 3);
        assert!(http[0].other.contains_key("corsPolicy"));
        assert_eq!(http[1].route.as_ref().unwrap()[0].destination.host, "legacy");
    }

    #[test]
    fn new_objects_are_named_after_the_host() {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets.push(Subset::version("version-v1", "v1"));
        policy.rules.push(Rule::weighted(&[("version-v1", 100)]));
        let (vs, dr) = policy.to_istio("tutorial", None, None);
        assert_eq!(vs.metadata.name.as_deref(), Some("recommendation"));
        assert_eq!(vs.metadata.namespace.as_deref(), Some("tutorial"));
        assert_eq!(vs.spec.hosts, Some(vec!["recommendation".to_string()]));
        assert_eq!(dr.metadata.name.as_deref(), Some("recommendation"));
        assert_eq!(dr.spec.host.as_deref(), Some("recommendation"));
        let value = serde_json::to_value(&dr).unwrap();
        assert_eq!(value["apiVersion"], "networking.istio.io/v1");
        assert_eq!(value["spec"]["subsets"][0]["labels"]["version"], "v1");
    }

    #[test]
    fn subset_traffic_policy_survives_relabelling() {
        let dr = match parse_yaml(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: recommendation}\nspec:\n  host: recommendation\n  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets:\n  - {name: version-v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}\n",
        ) {
            Ok(IstioObject::DestinationRule(dr)) => dr,
            other => panic!("{other:?}"),
        };
        let mut policy = RoutingPolicy::from_istio("recommendation", None, Some(&dr)).unwrap();
        policy.subsets[0].labels.insert("track".into(), "stable".into());
        policy.subsets.push(Subset::version("version-v2", "v2"));
        let (_, rendered) = policy.to_istio("tutorial", None, Some(&dr));
        assert_eq!(rendered.spec.traffic_policy, dr.spec.traffic_policy);
        let subsets = rendered.spec.subsets.unwrap();
        assert_eq!(subsets[0].traffic_policy, dr.spec.subsets.as_ref().unwrap()[0].traffic_policy);
        assert_eq!(subsets[0].labels.as_ref().unwrap()["track"], "stable");
        assert_eq!(subsets[1].name, "version-v2");
    }

    #[test]
    fn mirror_renders_with_percentage() {
        let mut policy = RoutingPolicy::new("recommendation");
        let mut rule = Rule::weighted(&[("version-v1", 100)]);
        rule.mirror = Some(crate::policy::Mirror { subset: "version-v2".into(), percentage: Some(50.0) });
        policy.rules.push(rule);
        let (vs, _) = policy.to_istio("tutorial", None, None);
        let value = serde_json::to_value(&vs.spec.http.unwrap()[0]).unwrap();
        assert_eq!(value["mirror"], serde_json::json!({"host": "recommendation", "subset": "version-v2"}));
        assert_eq!(value["mirrorPercentage"], serde_json::json!({"value": 50}));
    }

    fn parsed(yaml: &str) -> VirtualService {
        match parse_yaml(yaml) {
            Ok(IstioObject::VirtualService(vs)) => vs,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn new_destinations_take_the_spelling_and_port_of_the_existing_ones() {
        let live = parsed(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reco-routes, namespace: tutorial}\nspec:\n  hosts: [recommendation.tutorial.svc.cluster.local, preference]\n  gateways: [mesh, istio-system/ingressgateway]\n  exportTo: [.]\n  http:\n  - name: default\n    route: [{destination: {host: recommendation.tutorial.svc.cluster.local, subset: version-v1, port: {number: 8080}}}]\n",
        );
        let mut policy = RoutingPolicy::from_istio("recommendation", Some(&live), None).unwrap();
        policy.rules[0].route = vec![Share::new("version-v1", 90), Share::new("version-v2", 10)];
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        let value = serde_json::to_value(&vs).unwrap();
        let added = &value["spec"]["http"][0]["route"][1];
        assert_eq!(added["destination"]["host"], "recommendation.tutorial.svc.cluster.local", "FQDN stays FQDN");
        assert_eq!(added["destination"]["port"]["number"], 8080, "the others carry a port");
        assert_eq!(value["spec"]["http"][0]["name"], "default");
        assert_eq!(value["metadata"]["name"], "reco-routes");
        assert_eq!(vs.spec.hosts, live.spec.hosts);
        assert_eq!(vs.spec.gateways, live.spec.gateways);
        assert_eq!(value["spec"]["exportTo"], serde_json::json!(["."]));
    }

    #[test]
    fn without_routes_new_destinations_are_spelled_as_the_hosts_name_the_host() {
        let live = parsed(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reco-routes, namespace: tutorial}\nspec:\n  hosts: [preference, recommendation.tutorial.svc.cluster.local]\n",
        );
        let mut policy = RoutingPolicy::new("recommendation");
        policy.rules.push(Rule::weighted(&[("version-v1", 100)]));
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        let route = &vs.spec.http.unwrap()[0];
        let destination = &route.route.as_ref().unwrap()[0].destination;
        assert_eq!(destination.host, "recommendation.tutorial.svc.cluster.local");
        assert_eq!(destination.port, None, "no port to copy");
    }

    #[test]
    fn routes_to_the_same_name_in_another_namespace_are_not_the_policys() {
        let live = parsed(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: tutorial}\nspec:\n  hosts: [recommendation]\n  http:\n  - route: [{destination: {host: recommendation.staging.svc.cluster.local}}]\n  - route: [{destination: {host: recommendation}}]\n",
        );
        let mut policy = RoutingPolicy::from_istio("recommendation", Some(&live), None).unwrap();
        assert_eq!(policy.rules.len(), 1);
        policy.rules[0].timeout = Some("2s".into());
        let (vs, _) = policy.to_istio("tutorial", Some(&live), None);
        let http = vs.spec.http.unwrap();
        assert_eq!(http[0], live.spec.http.as_ref().unwrap()[0], "staging's route is kept as it was");
        assert_eq!(http[1].timeout.as_deref(), Some("2s"));
    }
}
