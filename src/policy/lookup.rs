//! Which objects route a host: found by what they route, never by their names, so routing
//! written by hand or by other tools (`reco-routes` for `recommendation`, FQDN hosts,
//! several hosts in one VirtualService) is read and edited where it is.
use serde_json::Value;

use super::from_istio::refers_to_host;
use crate::gateway_api::HTTPRoute;
use crate::istio::{DestinationRule, HttpRoute, VirtualService};

/// The objects of one namespace that route one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostObjects {
    /// VirtualServices whose `spec.hosts` name the host, by name.
    pub virtual_services: Vec<VirtualService>,
    /// Delegate VirtualServices (without hosts): those the ones above delegate to, and those
    /// whose routes send traffic to the host; by name.
    pub delegates: Vec<VirtualService>,
    /// DestinationRules whose `spec.host` names the host, by name.
    pub destination_rules: Vec<DestinationRule>,
    /// Gateway API HTTPRoutes attached to the host's Service (mesh routes), by name.
    pub http_routes: Vec<HTTPRoute>,
    /// HTTPRoutes attached to a Gateway that send traffic to the host (ingress routes).
    pub ingress_routes: Vec<HTTPRoute>,
}

/// Every VirtualService and DestinationRule of `namespace` that routes `host`, out of the
/// namespace's objects. The one lookup reads, writes, deletes, canaries, the route tester,
/// the overview and the watch-fed caches use.
pub fn find<'a>(
    namespace: &str,
    host: &str,
    virtual_services: impl IntoIterator<Item = &'a VirtualService>,
    destination_rules: impl IntoIterator<Item = &'a DestinationRule>,
) -> HostObjects {
    let names_host = |name: &str| refers_to_host(name, host, Some(namespace));
    let all: Vec<&VirtualService> = virtual_services.into_iter().collect();
    let roots: Vec<&VirtualService> =
        all.iter().copied().filter(|vs| vs.spec.hosts.iter().flatten().any(|h| names_host(h))).collect();
    let referenced: Vec<String> = roots.iter().flat_map(|vs| delegate_names(vs, namespace)).collect();
    let delegates = all.iter().copied().filter(|vs| vs.spec.hosts.as_ref().is_none_or(Vec::is_empty)).filter(|vs| {
        let name = vs.metadata.name.as_deref().unwrap_or_default();
        referenced.iter().any(|r| r == name) || routes_to(vs, host, namespace)
    });
    let destination_rules =
        destination_rules.into_iter().filter(|dr| dr.spec.host.as_deref().is_some_and(names_host)).cloned();
    HostObjects {
        virtual_services: by_name(roots.into_iter().cloned().collect(), |vs| &vs.metadata.name),
        delegates: by_name(delegates.cloned().collect(), |vs| &vs.metadata.name),
        destination_rules: by_name(destination_rules.collect(), |dr| &dr.metadata.name),
        http_routes: Vec::new(),
        ingress_routes: Vec::new(),
    }
}

impl HostObjects {
    /// Adds the HTTPRoutes of `namespace` whose parentRefs name the host's Service (mesh
    /// routes), and those attached to a Gateway that send traffic to one of `services` (the
    /// host's Service and its per-version Services: ingress routes).
    pub fn add_http_routes<'a>(
        &mut self,
        namespace: &str,
        host: &str,
        routes: impl IntoIterator<Item = &'a HTTPRoute>,
        services: &[String],
    ) {
        let routes: Vec<&HTTPRoute> = routes.into_iter().collect();
        let attached = routes.iter().filter(|route| route.routes_service(host, namespace)).copied().cloned();
        self.http_routes = by_name(attached.collect(), |route| &route.metadata.name);
        let ingress = routes.iter().filter(|route| route.ingress_to(services)).copied().cloned();
        self.ingress_routes = by_name(ingress.collect(), |route| &route.metadata.name);
    }

    /// The one HTTPRoute to edit for the host: its mesh route, or, when nothing else routes
    /// it, its one ingress route.
    pub fn edited_http_route(&self) -> Option<&HTTPRoute> {
        let only_ingress = self.virtual_services.is_empty() && self.http_routes.is_empty();
        self.http_routes
            .first()
            .or(self.ingress_routes.first().filter(|_| only_ingress && self.ingress_routes.len() == 1))
    }

    /// Nothing routes the host.
    pub fn is_empty(&self) -> bool {
        self.virtual_services.is_empty()
            && self.delegates.is_empty()
            && self.destination_rules.is_empty()
            && self.http_routes.is_empty()
    }

    /// The objects as people name them: `VirtualService a, b; DestinationRule c`.
    pub fn describe(&self) -> String {
        let virtual_services = self.virtual_services.iter().chain(&self.delegates).map(|vs| &vs.metadata.name);
        let parts = [
            describe("VirtualService", &names(virtual_services)),
            describe("DestinationRule", &names(self.destination_rules.iter().map(|dr| &dr.metadata.name))),
            describe("HTTPRoute", &names(self.http_routes.iter().map(|route| &route.metadata.name))),
            describe("ingress HTTPRoute", &names(self.ingress_routes.iter().map(|route| &route.metadata.name))),
        ];
        parts.into_iter().filter(|p| !p.is_empty()).collect::<Vec<_>>().join("; ")
    }

    /// Why these objects cannot be edited as one policy, naming them; `None` when the host
    /// has at most one VirtualService (not delegating) and at most one DestinationRule.
    ///
    /// Istio merges several VirtualServices of a host only on gateways, and delegation
    /// splits one host's rules over objects whose order the root decides: signalbox does
    /// not guess which object an edit belongs in.
    pub fn ambiguity(&self, host: &str) -> Option<String> {
        let delegating: Vec<&VirtualService> = self.virtual_services.iter().filter(|vs| delegates_routes(vs)).collect();
        if !delegating.is_empty() || !self.delegates.is_empty() {
            return Some(format!(
                "{host} is routed through delegation ({}{}); signalbox shows delegated routing but does not edit it: \
                 edit these VirtualServices directly",
                describe("root VirtualService", &names(delegating.iter().copied().map(|vs| &vs.metadata.name))),
                describe("; delegate VirtualService", &names(self.delegates.iter().map(|vs| &vs.metadata.name))),
            ));
        }
        if self.virtual_services.len() > 1 {
            return Some(format!(
                "{host} is routed by {} VirtualServices ({}); Istio merges several only on gateways, so signalbox will \
                 not guess which one to edit: merge them into one, or edit them directly",
                self.virtual_services.len(),
                names(self.virtual_services.iter().map(|vs| &vs.metadata.name)).join(", "),
            ));
        }
        let http_routes = names(self.http_routes.iter().map(|route| &route.metadata.name));
        if !self.virtual_services.is_empty() && !http_routes.is_empty() {
            return Some(format!(
                "{host} is routed by both VirtualService {} and HTTPRoute {}; Istio leaves the behaviour undefined, so \
                 signalbox edits neither: delete one of them",
                names(self.virtual_services.iter().map(|vs| &vs.metadata.name)).join(", "),
                http_routes.join(", "),
            ));
        }
        let ingress = names(self.ingress_routes.iter().map(|route| &route.metadata.name));
        if self.virtual_services.is_empty() && http_routes.is_empty() && ingress.len() > 1 {
            return Some(format!(
                "{host} is routed at the ingress by {} HTTPRoutes ({}); signalbox will not guess which one to edit: \
                 edit them directly",
                ingress.len(),
                ingress.join(", "),
            ));
        }
        if http_routes.len() > 1 {
            return Some(format!(
                "{host} is routed by {} HTTPRoutes ({}); signalbox will not guess which one to edit: merge them into \
                 one, or edit them directly",
                http_routes.len(),
                http_routes.join(", "),
            ));
        }
        if self.destination_rules.len() > 1 {
            return Some(format!(
                "{host} has {} DestinationRules ({}); Istio uses only one of them, so signalbox will not guess which \
                 one to edit: delete all but one, or edit them directly",
                self.destination_rules.len(),
                names(self.destination_rules.iter().map(|dr| &dr.metadata.name)).join(", "),
            ));
        }
        None
    }
}

/// What deleting `host`'s routing does to a VirtualService that names it.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    /// The VirtualService routes only this host: delete it.
    Delete,
    /// It routes other hosts too and none of its rules sends traffic to this host: keep
    /// it, without this host in `spec.hosts`.
    DropHost(Box<VirtualService>),
    /// It routes other hosts with rules that send traffic to this host; the message says why
    /// signalbox will not touch it.
    Refused(String),
}

/// Decides what deleting `host`'s routing does to `vs` (see [`Removal`]).
///
/// A VirtualService's rules apply to all its hosts alike. Rules that send traffic to this
/// host also serve the other hosts, so removing them — or this host's DestinationRule
/// subsets they name — would change what the other hosts get: refused. Rules that send
/// traffic elsewhere stay right for the other hosts, and this host, out of `hosts`, goes
/// back to its own Service.
pub fn remove_host(vs: &VirtualService, host: &str, namespace: &str) -> Removal {
    let names_host = |name: &str| refers_to_host(name, host, Some(namespace));
    let others: Vec<String> = vs.spec.hosts.iter().flatten().filter(|h| !names_host(h)).cloned().collect();
    if others.is_empty() {
        return Removal::Delete;
    }
    let name = vs.metadata.name.as_deref().unwrap_or_default();
    if routes_to(vs, host, namespace) {
        return Removal::Refused(format!(
            "VirtualService {name} routes {host} together with {} using the same rules, and those rules send \
             traffic to {host}: removing {host}'s routing would change what {} get. Edit {name} directly",
            others.join(", "),
            others.join(", "),
        ));
    }
    let mut kept = vs.clone();
    kept.spec.hosts = Some(others);
    kept.status = None;
    super::to_istio::prepare_metadata(&mut kept.metadata, namespace, name);
    Removal::DropHost(Box::new(kept))
}

/// Whether any rule of `vs` (HTTP, TCP or TLS; route or mirror) sends traffic to `host`.
pub fn routes_to(vs: &VirtualService, host: &str, namespace: &str) -> bool {
    let names_host = |name: &str| refers_to_host(name, host, Some(namespace));
    let http = vs.spec.http.iter().flatten().any(|route| {
        route.route.iter().flatten().any(|d| names_host(&d.destination.host))
            || route.mirror.as_ref().is_some_and(|m| names_host(&m.host))
            || route.other.get("mirrors").is_some_and(|m| value_names_host(m, &names_host))
    });
    http || vs.spec.other.values().any(|value| value_names_host(value, &names_host))
}

/// Whether a `destination.host` anywhere in `value` names the host (tcp/tls routes, mirrors).
fn value_names_host(value: &Value, names_host: &impl Fn(&str) -> bool) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, inner)| match (key.as_str(), inner) {
            ("host", Value::String(h)) => names_host(h),
            _ => value_names_host(inner, names_host),
        }),
        Value::Array(items) => items.iter().any(|item| value_names_host(item, names_host)),
        _ => false,
    }
}

/// Whether some HTTP route of `vs` hands its requests to a delegate VirtualService.
fn delegates_routes(vs: &VirtualService) -> bool {
    vs.spec.http.iter().flatten().any(is_delegating)
}

fn is_delegating(route: &HttpRoute) -> bool {
    route.other.contains_key("delegate")
}

/// The delegates `vs` names that live in `namespace` (a delegate without a namespace is in
/// the root's).
fn delegate_names(vs: &VirtualService, namespace: &str) -> Vec<String> {
    let own = vs.metadata.namespace.as_deref().unwrap_or(namespace);
    vs.spec
        .http
        .iter()
        .flatten()
        .filter_map(|route| route.other.get("delegate"))
        .filter(|delegate| delegate.get("namespace").and_then(Value::as_str).unwrap_or(own) == namespace)
        .filter_map(|delegate| delegate.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn by_name<T>(mut objects: Vec<T>, name: impl Fn(&T) -> &Option<String>) -> Vec<T> {
    objects.sort_by(|a, b| name(a).cmp(name(b)));
    objects
}

fn names<'a>(names: impl Iterator<Item = &'a Option<String>>) -> Vec<String> {
    names.map(|n| n.clone().unwrap_or_default()).collect()
}

fn describe(what: &str, names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => format!("{what} {one}"),
        many => format!("{what}s {}", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::istio::{IstioObject, parse_yaml};

    fn vs(name: &str, spec: &str) -> VirtualService {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: tutorial}}\nspec: {spec}\n"
        );
        match parse_yaml(&yaml) {
            Ok(IstioObject::VirtualService(vs)) => vs,
            other => panic!("{other:?}"),
        }
    }

    fn dr(name: &str, host: &str) -> DestinationRule {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: tutorial}}\nspec: {{host: {host}}}\n"
        );
        match parse_yaml(&yaml) {
            Ok(IstioObject::DestinationRule(dr)) => dr,
            other => panic!("{other:?}"),
        }
    }

    fn names_of(objects: &[VirtualService]) -> Vec<&str> {
        objects.iter().map(|vs| vs.metadata.name.as_deref().unwrap()).collect()
    }

    #[test]
    fn objects_are_found_by_the_hosts_they_name_in_any_form_of_this_namespace() {
        let to_reco = "http: [{route: [{destination: {host: recommendation}}]}]";
        let virtual_services = [
            vs("reco-routes", &format!("{{hosts: [recommendation.tutorial.svc.cluster.local], {to_reco}}}")),
            vs("short", "{hosts: [recommendation]}"),
            vs("dotted", "{hosts: [preference, recommendation.tutorial]}"),
            vs("svc", "{hosts: [recommendation.tutorial.svc]}"),
            vs("elsewhere", "{hosts: [recommendation.otherns]}"),
            vs("recommendation", "{hosts: [preference]}"),
            vs("wildcard", "{hosts: ['*'], gateways: [gw], http: [{route: [{destination: {host: recommendation}}]}]}"),
        ];
        let destination_rules = [
            dr("reco-dr", "recommendation.tutorial.svc.cluster.local"),
            dr("recommendation-v9", "recommendation-v9"),
            dr("other-ns", "recommendation.otherns.svc.cluster.local"),
        ];
        let found = find("tutorial", "recommendation", &virtual_services, &destination_rules);
        assert_eq!(names_of(&found.virtual_services), ["dotted", "reco-routes", "short", "svc"]);
        assert!(found.delegates.is_empty());
        assert_eq!(found.destination_rules.len(), 1);
        assert_eq!(found.destination_rules[0].metadata.name.as_deref(), Some("reco-dr"));
        assert!(found.ambiguity("recommendation").unwrap().contains("4 VirtualServices (dotted, reco-routes"));

        let alone = find("tutorial", "recommendation", &virtual_services[..1], &destination_rules);
        assert_eq!(alone.ambiguity("recommendation"), None);
        assert!(find("tutorial", "ratings", &virtual_services, &destination_rules).is_empty());
    }

    #[test]
    fn delegation_is_found_and_never_edited() {
        let virtual_services = [
            vs(
                "reco-root",
                "{hosts: [recommendation], http: [{match: [{uri: {prefix: /v1}}], delegate: {name: reco-v1}}, \
                 {delegate: {name: reco-rest, namespace: tutorial}}]}",
            ),
            vs("reco-v1", "{http: [{route: [{destination: {host: recommendation, subset: version-v1}}]}]}"),
            vs("reco-rest", "{http: [{route: [{destination: {host: other}}]}]}"),
            vs("unrelated-delegate", "{http: [{route: [{destination: {host: other}}]}]}"),
        ];
        let found = find("tutorial", "recommendation", &virtual_services, []);
        assert_eq!(names_of(&found.virtual_services), ["reco-root"]);
        assert_eq!(names_of(&found.delegates), ["reco-rest", "reco-v1"]);
        let why = found.ambiguity("recommendation").unwrap();
        assert!(why.contains("root VirtualService reco-root") && why.contains("reco-rest, reco-v1"), "{why}");

        // A delegate whose root lives elsewhere is still found by where it sends traffic.
        let orphan = find("tutorial", "recommendation", &virtual_services[1..], []);
        assert_eq!(names_of(&orphan.delegates), ["reco-v1"]);
        assert!(orphan.ambiguity("recommendation").unwrap().contains("delegate VirtualService reco-v1"));
    }

    #[test]
    fn two_destination_rules_for_one_host_are_ambiguous() {
        let found = find("tutorial", "recommendation", [], &[dr("a", "recommendation"), dr("b", "recommendation")]);
        assert!(found.ambiguity("recommendation").unwrap().contains("2 DestinationRules (a, b)"));
    }

    #[test]
    fn removing_a_host_deletes_drops_or_refuses() {
        let own = vs("reco", "{hosts: [recommendation, recommendation.tutorial.svc.cluster.local]}");
        assert_eq!(remove_host(&own, "recommendation", "tutorial"), Removal::Delete);

        let elsewhere = vs(
            "shared",
            "{hosts: [recommendation, preference], gateways: [mesh], http: [{route: [{destination: {host: preference}}]}]}",
        );
        let Removal::DropHost(kept) = remove_host(&elsewhere, "recommendation", "tutorial") else { panic!() };
        assert_eq!(kept.spec.hosts, Some(vec!["preference".to_string()]));
        assert_eq!(kept.spec.http, elsewhere.spec.http);
        assert_eq!(kept.spec.gateways, elsewhere.spec.gateways);

        let shared = vs(
            "shared",
            "{hosts: [recommendation, preference], http: [{route: [{destination: {host: recommendation.tutorial.svc.cluster.local}}]}]}",
        );
        let Removal::Refused(why) = remove_host(&shared, "recommendation", "tutorial") else { panic!() };
        assert!(why.contains("VirtualService shared") && why.contains("preference"), "{why}");

        let tcp =
            vs("tcp", "{hosts: [recommendation, preference], tcp: [{route: [{destination: {host: recommendation}}]}]}");
        assert!(matches!(remove_host(&tcp, "recommendation", "tutorial"), Removal::Refused(_)));
        let mirrored = vs(
            "m",
            "{hosts: [recommendation, preference], http: [{route: [{destination: {host: preference}}], mirror: {host: recommendation}}]}",
        );
        assert!(matches!(remove_host(&mirrored, "recommendation", "tutorial"), Removal::Refused(_)));
    }
}
