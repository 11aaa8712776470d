//! Whose object each operation of a change writes. Every operation is authorized for the
//! object it would create, overwrite or delete — not only for the host the change is about —
//! so a change (a revert above all, which replays whatever an entry touched) cannot reach
//! another host's objects or the namespace itself through a permission for one host.
use serde::Deserialize;
use serde_json::Value;

use crate::authz::{Actor, Authorizer, Denial, Permission};
use crate::cluster::{Kind, ObjectRef, Operation};
use crate::gateway_api::ParentReference;
use crate::policy::{FilterTarget, backend_target, filter_targets};
use crate::tutorial::Workload;

/// Who must permit writing one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// The whole namespace: only a team not limited to hosts may write it.
    Namespace,
    /// A host (Service) of the namespace.
    Host(String),
    /// Whoever owns the Service of this name in the namespace, which the object sends
    /// traffic to (an HTTPRoute's backend or mirror): known only from the Service itself, as
    /// a per-version Service (`recommendation-v2`) belongs to the app it selects. Resolved by
    /// [`authorize`] from the Services [`services_to_read`] names.
    Service(String),
}

/// Checks every operation of a change, given the live objects (in operation order) and the
/// live Services of [`services_to_read`]: each needs `permission` for the owners of the
/// object it writes and of the object it replaces or deletes. The first refusal names the
/// object.
pub fn authorize(
    authorizer: &Authorizer,
    actor: &Actor,
    permission: Permission,
    operations: &[Operation],
    live: &[Option<Value>],
    services: &[Value],
) -> Result<(), Denial> {
    for (index, operation) in operations.iter().enumerate() {
        let target = operation.target();
        let namespace = target.namespace.as_deref().unwrap_or(&target.name);
        for owner in owners(operation, live.get(index).and_then(Option::as_ref)) {
            let owner = resolved(owner, namespace, services);
            let host = match &owner {
                Owner::Namespace => None,
                Owner::Host(host) | Owner::Service(host) => Some(host.as_str()),
            };
            match authorizer.check(actor, permission, namespace, host) {
                Ok(()) => {}
                Err(Denial::Forbidden { .. }) => return Err(forbidden(actor, permission, operation, &owner)),
                Err(other) => return Err(other),
            }
        }
    }
    Ok(())
}

fn forbidden(actor: &Actor, permission: Permission, operation: &Operation, owner: &Owner) -> Denial {
    let target = operation.target();
    let verb = match operation {
        Operation::Delete { .. } => "delete",
        Operation::Apply { .. } | Operation::Create { .. } => "write",
    };
    let why = match owner {
        Owner::Namespace if target.kind == Kind::Namespace => {
            format!("the namespace itself needs {permission:?} on the whole namespace, not on one host")
        }
        Owner::Namespace => format!("it belongs to no one host, so it needs {permission:?} on the whole namespace"),
        Owner::Host(host) | Owner::Service(host) => {
            format!("it belongs to (or sends traffic to) host {host}, so it needs {permission:?} on {host}")
        }
    };
    Denial::Operation { actor: actor.name.clone(), action: format!("{verb} {target}"), reason: why }
}

/// `owner` with a Service resolved to the owner of the live Service of that name among
/// `services` (the app it selects when it is named after it); a Service that does not
/// exist is judged by its name.
fn resolved(owner: Owner, namespace: &str, services: &[Value]) -> Owner {
    let Owner::Service(name) = owner else { return owner };
    let live = services.iter().find(|service| {
        service["metadata"]["name"] == *name
            && service["metadata"]["namespace"].as_str().is_none_or(|ns| ns == namespace)
    });
    let target = ObjectRef::namespaced(Kind::Service, namespace, &name);
    let owners = live.map(|service| owners_of(&target, service)).unwrap_or_else(|| owners_by_name(&target));
    owners.into_iter().next().unwrap_or(Owner::Namespace)
}

/// The Services whose owners decide who may write `operations` (given the live objects, in
/// operation order): those the HTTPRoutes written or replaced send traffic to.
pub fn services_to_read(operations: &[Operation], live: &[Option<Value>]) -> Vec<ObjectRef> {
    let mut found: Vec<ObjectRef> = Vec::new();
    for (index, operation) in operations.iter().enumerate() {
        let target = operation.target();
        let Some(namespace) = target.namespace.as_deref().filter(|_| target.kind == Kind::HTTPRoute) else {
            continue;
        };
        for owner in owners(operation, live.get(index).and_then(Option::as_ref)) {
            if let Owner::Service(name) = owner {
                let service = ObjectRef::namespaced(Kind::Service, namespace, &name);
                if !found.contains(&service) {
                    found.push(service);
                }
            }
        }
    }
    found
}

/// The owners of what `operation` writes and of the live object it replaces or deletes; an
/// operation on an object that is neither written nor live is judged by its name.
pub fn owners(operation: &Operation, live: Option<&Value>) -> Vec<Owner> {
    let target = operation.target();
    let objects: Vec<&Value> = operation.object().into_iter().chain(live).collect();
    let found: Vec<Owner> = if objects.is_empty() {
        owners_by_name(target)
    } else {
        objects.into_iter().flat_map(|object| owners_of(target, object)).collect()
    };
    let mut unique = Vec::with_capacity(found.len());
    for owner in found {
        if !unique.contains(&owner) {
            unique.push(owner);
        }
    }
    unique
}

/// The owners of `object`, as `target` names it.
fn owners_of(target: &ObjectRef, object: &Value) -> Vec<Owner> {
    let namespace = target.namespace.as_deref().unwrap_or_default();
    match target.kind {
        Kind::Namespace => vec![Owner::Namespace],
        // A per-version Service (`recommendation-v1`) belongs to the app it selects.
        Kind::Service => {
            let app = object["spec"]["selector"]["app"].as_str().filter(|app| target.name.starts_with(app));
            vec![Owner::Host(app.unwrap_or(&target.name).to_owned())]
        }
        Kind::ServiceAccount => vec![Owner::Host(app_label(object).unwrap_or(&target.name).to_owned())],
        Kind::Deployment => deployment_owners(target, object),
        Kind::Gateway => owners_by_name(target),
        Kind::DestinationRule => {
            let host = object["spec"]["host"].as_str().and_then(|h| service_name(h, namespace));
            vec![host.map_or(Owner::Namespace, Owner::Host)]
        }
        Kind::VirtualService => virtual_service_owners(object, namespace),
        Kind::HTTPRoute => http_route_owners(object, namespace),
    }
}

/// An HTTPRoute belongs to the Services of this namespace it attaches to (the hosts it
/// routes). Any other parent — a Gateway above all, which serves other hosts too — makes it
/// the whole namespace's as well, and so does a route with no parent. It also belongs to
/// what its rules send traffic to: each backend's and mirror's Service ([`Owner::Service`]),
/// a redirect's or rewrite's host name (the namespace when that is no Service of it), the
/// namespace for an `ExtensionRef`, a backend elsewhere or a filter signalbox cannot judge.
fn http_route_owners(object: &Value, namespace: &str) -> Vec<Owner> {
    let spec = &object["spec"];
    let parents = spec["parentRefs"].as_array().into_iter().flatten();
    let mut owners: Vec<Owner> = parents
        .map(|parent| match ParentReference::deserialize(parent) {
            Ok(parent) if !parent.is_gateway() && parent.is_service(&parent.name, namespace, namespace) => {
                Owner::Host(parent.name)
            }
            _ => Owner::Namespace,
        })
        .collect();
    if owners.is_empty() {
        owners.push(Owner::Namespace);
    }
    for rule in spec["rules"].as_array().into_iter().flatten() {
        let mut targets = Vec::new();
        for backend in rule["backendRefs"].as_array().into_iter().flatten() {
            targets.push(backend_target("backendRefs", backend, namespace));
            let filters = backend["filters"].as_array().into_iter().flatten();
            targets.extend(filters.flat_map(|filter| filter_targets("filters", filter, namespace)));
        }
        let filters = rule["filters"].as_array().into_iter().flatten();
        targets.extend(filters.flat_map(|filter| filter_targets("filters", filter, namespace)));
        owners.extend(targets.into_iter().map(|target| match target {
            FilterTarget::Service { name, .. } => Owner::Service(name),
            FilterTarget::Hostname { hostname, .. } => {
                service_name(&hostname, namespace).map_or(Owner::Namespace, Owner::Host)
            }
            FilterTarget::Namespace { .. } | FilterTarget::Unjudged { .. } => Owner::Namespace,
        }));
    }
    owners
}

/// An object absent both before and after (deleting it deletes nothing): what an object of
/// that name would need, namespace-wide when its name says nothing.
fn owners_by_name(target: &ObjectRef) -> Vec<Owner> {
    let tutorial_app = |matches: &dyn Fn(Workload) -> bool| {
        Workload::ALL.into_iter().find(|w| matches(*w)).map(|w| Owner::Host(w.app().to_owned()))
    };
    let owner = match target.kind {
        Kind::Namespace => Some(Owner::Namespace),
        Kind::Deployment => tutorial_app(&|w| w.deployment_name() == target.name),
        // The tutorial's ingress belongs to the workload it leads to (customer).
        Kind::Gateway => {
            tutorial_app(&|w| w.ingress().is_some_and(|[gateway, _]| gateway["metadata"]["name"] == *target.name))
        }
        Kind::Service | Kind::ServiceAccount | Kind::VirtualService | Kind::DestinationRule | Kind::HTTPRoute => {
            Some(Owner::Host(target.name.clone()))
        }
    };
    vec![owner.unwrap_or(Owner::Namespace)]
}

/// A Deployment serves the app its pods (and itself) are labelled with.
fn deployment_owners(target: &ObjectRef, object: &Value) -> Vec<Owner> {
    let apps: Vec<Owner> = [app_label(object), object["spec"]["template"]["metadata"]["labels"]["app"].as_str()]
        .into_iter()
        .flatten()
        .map(|app| Owner::Host(app.to_owned()))
        .collect();
    if apps.is_empty() { owners_by_name(target) } else { apps }
}

/// A VirtualService routes the Services its `spec.hosts` name, and copies or hands traffic
/// to what its mirrors, redirects and delegates reach (as a routing change's `reaches`).
/// One for other names too (a gateway's `*`, an outside host name) or for none (a delegate)
/// also decides where that traffic goes: it belongs to the hosts its rules send traffic to as
/// well, and to the whole namespace when it sends traffic beyond them.
fn virtual_service_owners(object: &Value, namespace: &str) -> Vec<Owner> {
    let spec = &object["spec"];
    let hosts: Vec<&str> = spec["hosts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut owners: Vec<Owner> = hosts.iter().filter_map(|h| service_name(h, namespace)).map(Owner::Host).collect();
    if hosts.is_empty() || owners.len() < hosts.len() {
        owners.extend(traffic_owners(spec, namespace));
    } else {
        owners.extend(reach_owners(spec, namespace));
    }
    owners
}

/// What a VirtualService's HTTP rules reach beyond their routes: a mirror's Service, a
/// redirect's authority, a delegate (the whole namespace). Services of other namespaces are
/// left to the change's `reaches`, which authorizes them where they live.
fn reach_owners(spec: &Value, namespace: &str) -> Vec<Owner> {
    let mut owners = Vec::new();
    for rule in spec["http"].as_array().into_iter().flatten() {
        let mirrors = rule["mirrors"].as_array().into_iter().flatten().map(|m| &m["destination"]["host"]);
        let authority = rule["redirect"]["authority"].as_str().map(|a| a.rsplit_once(':').map_or(a, |(host, _)| host));
        let reached = mirrors.chain([&rule["mirror"]["host"]]).filter_map(Value::as_str).chain(authority);
        for host in reached {
            match service_name(host, namespace) {
                Some(name) => owners.push(Owner::Host(name)),
                None if names_other_namespace(host) => {}
                None => owners.push(Owner::Namespace),
            }
        }
        if rule.get("delegate").is_some() {
            owners.push(Owner::Namespace);
        }
    }
    owners
}

/// `name.ns`, `name.ns.svc` or `name.ns.svc.cluster.local` (of any namespace).
fn names_other_namespace(host: &str) -> bool {
    let parts: Vec<&str> = host.split('.').collect();
    matches!(parts.as_slice(), [name, ns] | [name, ns, "svc"] | [name, ns, "svc", "cluster", "local"]
        if !name.is_empty() && !ns.is_empty() && !name.contains('*'))
}

/// Where a VirtualService's rules send traffic: every `host` a route or mirror names, and
/// the whole namespace for anything that is not a Service of it.
fn traffic_owners(spec: &Value, namespace: &str) -> Vec<Owner> {
    let mut hosts = Vec::new();
    let mut beyond = false;
    for protocol in ["http", "tcp", "tls"] {
        for rule in spec[protocol].as_array().into_iter().flatten() {
            beyond |= rule.get("delegate").is_some() || rule.get("redirect").is_some();
            collect_hosts(rule, &mut hosts);
        }
    }
    let mut owners: Vec<Owner> = Vec::new();
    for host in hosts {
        match service_name(&host, namespace) {
            Some(name) => owners.push(Owner::Host(name)),
            None => beyond = true,
        }
    }
    if beyond || owners.is_empty() {
        owners.push(Owner::Namespace);
    }
    owners
}

fn collect_hosts(value: &Value, hosts: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("host", Value::String(host)) => hosts.push(host.clone()),
                    _ => collect_hosts(inner, hosts),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_hosts(item, hosts)),
        _ => {}
    }
}

/// The Service of `namespace` that `host` names (`name`, `name.ns`, `name.ns.svc`,
/// `name.ns.svc.cluster.local`); None for wildcards, outside names and other namespaces.
fn service_name(host: &str, namespace: &str) -> Option<String> {
    let mut parts = host.split('.');
    let name = parts.next().filter(|n| !n.is_empty() && !n.contains('*'))?;
    let rest: Vec<&str> = parts.collect();
    match rest.as_slice() {
        [] => Some(name.to_owned()),
        [ns] | [ns, "svc"] | [ns, "svc", "cluster", "local"] if *ns == namespace => Some(name.to_owned()),
        _ => None,
    }
}

fn app_label(object: &Value) -> Option<&str> {
    object["metadata"]["labels"]["app"].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Teams;
    use serde_json::json;

    fn host(name: &str) -> Owner {
        Owner::Host(name.into())
    }

    fn apply(kind: Kind, name: &str, object: Value) -> Operation {
        let target = match kind {
            Kind::Namespace => ObjectRef::cluster_scoped(kind, name),
            _ => ObjectRef::namespaced(kind, "t", name),
        };
        Operation::Apply { target, object }
    }

    fn delete(kind: Kind, name: &str) -> Operation {
        Operation::Delete { target: ObjectRef::namespaced(kind, "t", name) }
    }

    #[test]
    fn workload_objects_belong_to_their_app_and_the_namespace_to_no_host() {
        let objects = Workload::RecommendationV2.objects(1);
        let kinds = [Kind::ServiceAccount, Kind::Service, Kind::Deployment];
        for (kind, object) in kinds.into_iter().zip(objects) {
            let name = object["metadata"]["name"].as_str().unwrap().to_owned();
            assert_eq!(owners(&apply(kind, &name, object), None), [host("recommendation")], "{kind:?}");
        }
        let namespace = apply(Kind::Namespace, "t", crate::tutorial::namespace("t"));
        assert_eq!(owners(&namespace, None), [Owner::Namespace]);
        let [gateway, ingress] = Workload::Customer.ingress().unwrap();
        assert_eq!(owners(&apply(Kind::Gateway, "customer-gateway", gateway), None), [host("customer")]);
        assert_eq!(owners(&apply(Kind::VirtualService, "customer-gateway", ingress), None), [host("customer")]);
    }

    #[test]
    fn what_an_operation_replaces_or_deletes_counts_as_much_as_what_it_writes() {
        let relabelled =
            json!({"kind": "Deployment", "metadata": {"name": "preference-v1", "labels": {"app": "recommendation"}}});
        let live = json!({"kind": "Deployment", "metadata": {"name": "preference-v1", "labels": {"app": "preference"}},
                          "spec": {"template": {"metadata": {"labels": {"app": "preference"}}}}});
        let operation = apply(Kind::Deployment, "preference-v1", relabelled);
        assert_eq!(owners(&operation, Some(&live)), [host("recommendation"), host("preference")]);
        let dr = json!({"kind": "DestinationRule", "metadata": {"name": "reco-dr"}, "spec": {"host": "recommendation.t.svc.cluster.local"}});
        assert_eq!(
            owners(&delete(Kind::DestinationRule, "reco-dr"), Some(&dr)),
            [host("recommendation")],
            "by what it routes, not its name"
        );
        assert_eq!(owners(&delete(Kind::Deployment, "unknown"), None), [Owner::Namespace]);
        assert_eq!(owners(&delete(Kind::Service, "preference"), None), [host("preference")]);
    }

    #[test]
    fn an_http_route_belongs_to_its_services_and_an_ingress_route_to_the_namespace() {
        let mesh = json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "recommendation"}]}});
        assert_eq!(owners(&apply(Kind::HTTPRoute, "reco-mesh", mesh), None), [host("recommendation")]);
        let ingress = json!({"spec": {"parentRefs": [{"name": "public", "namespace": "istio-system"}],
                                      "rules": [{"backendRefs": [{"name": "recommendation-v1", "port": 8080}]}]}});
        assert_eq!(
            owners(&apply(Kind::HTTPRoute, "reco-public", ingress), None),
            [Owner::Namespace, Owner::Service("recommendation-v1".into())]
        );
        let version = json!({"spec": {"selector": {"app": "recommendation", "version": "v2"}}});
        assert_eq!(
            owners(&apply(Kind::Service, "recommendation-v2", version), None),
            [host("recommendation")],
            "a per-version Service belongs to its app"
        );
    }

    #[test]
    fn a_virtual_service_belongs_to_every_host_it_routes() {
        let shared = json!({"spec": {"hosts": ["recommendation", "preference.t.svc.cluster.local"]}});
        assert_eq!(
            owners(&apply(Kind::VirtualService, "reco-routes", shared), None),
            [host("recommendation"), host("preference")]
        );
        let other_namespace = json!({"spec": {"hosts": ["reviews.other"], "http": [{"route": [{"destination": {"host": "reviews.other"}}]}]}});
        assert_eq!(owners(&apply(Kind::VirtualService, "x", other_namespace), None), [Owner::Namespace]);
        let delegate = json!({"spec": {"http": [{"route": [{"destination": {"host": "preference"}}]}]}});
        assert_eq!(owners(&apply(Kind::VirtualService, "d", delegate), None), [host("preference")]);
        let redirect = json!({"spec": {"hosts": ["*"], "http": [{"redirect": {"authority": "evil.example"}}]}});
        assert_eq!(owners(&apply(Kind::VirtualService, "r", redirect), None), [Owner::Namespace]);
        let reaching = json!({"spec": {"hosts": ["recommendation"], "http": [
            {"route": [{"destination": {"host": "recommendation"}}], "mirrors": [{"destination": {"host": "preference"}}]},
            {"redirect": {"authority": "customer:8080"}},
            {"route": [{"destination": {"host": "recommendation"}}], "mirror": {"host": "reviews.other.svc"}},
            {"delegate": {"name": "shared-routes"}}]}});
        assert_eq!(
            owners(&apply(Kind::VirtualService, "reco", reaching), None),
            [host("recommendation"), host("preference"), host("customer"), Owner::Namespace],
            "what its mirrors, redirects and delegates reach; another namespace's Service is authorized there"
        );
    }

    fn authorizer() -> Authorizer {
        let teams: Teams = serde_yaml_ng::from_str(
            "teams: [{name: reco, members: {users: [alice]}, namespaces: [t], hosts: [recommendation], actions: [deploy, route]},
                     {name: web, members: {users: [bob]}, namespaces: [t], actions: [deploy]}]",
        )
        .unwrap();
        Authorizer::with_teams(vec!["t".into()], teams)
    }

    #[test]
    fn each_operation_needs_its_objects_owner() {
        let (authz, alice) = (authorizer(), Actor::user("alice", vec![]));
        let own: Vec<Operation> = Workload::RecommendationV1
            .objects(1)
            .into_iter()
            .zip([Kind::ServiceAccount, Kind::Service, Kind::Deployment])
            .map(|(object, kind)| {
                let name = object["metadata"]["name"].as_str().unwrap().to_owned();
                apply(kind, &name, object)
            })
            .collect();
        assert_eq!(authorize(&authz, &alice, Permission::Deploy, &own, &[None, None, None], &[]), Ok(()));

        let with_namespace = [apply(Kind::Namespace, "t", crate::tutorial::namespace("t"))];
        let denial = authorize(&authz, &alice, Permission::Deploy, &with_namespace, &[None], &[]).unwrap_err();
        assert!(denial.to_string().contains("write Namespace t"), "{denial}");
        assert!(
            authorize(&authorizer(), &Actor::user("bob", vec![]), Permission::Deploy, &with_namespace, &[None], &[])
                .is_ok()
        );

        let shared =
            [apply(Kind::VirtualService, "reco-routes", json!({"spec": {"hosts": ["recommendation", "preference"]}}))];
        let denial = authorize(&authz, &alice, Permission::Route, &shared, &[None], &[]).unwrap_err();
        assert!(
            denial.to_string().contains("VirtualService t/reco-routes") && denial.to_string().contains("preference"),
            "{denial}"
        );
    }

    fn mesh_route(rule: Value) -> Operation {
        let parent = json!({"group": "", "kind": "Service", "name": "recommendation", "port": 8080});
        apply(Kind::HTTPRoute, "reco-mesh", json!({"spec": {"parentRefs": [parent], "rules": [rule]}}))
    }

    fn version_service(name: &str, app: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "t"}, "spec": {"selector": {"app": app, "version": "v1"}}})
    }

    #[test]
    fn an_http_route_with_a_gateway_parent_needs_the_whole_namespace() {
        let both = json!({"spec": {"parentRefs": [
            {"group": "", "kind": "Service", "name": "recommendation"},
            {"name": "public", "namespace": "istio-system"}]}});
        let operation = apply(Kind::HTTPRoute, "reco-mesh", both);
        assert_eq!(owners(&operation, None), [host("recommendation"), Owner::Namespace]);
        let (authz, alice) = (authorizer(), Actor::user("alice", vec![]));
        let denial = authorize(&authz, &alice, Permission::Route, &[operation], &[None], &[]).unwrap_err();
        assert!(denial.to_string().contains("HTTPRoute t/reco-mesh"), "{denial}");
        let explicit = json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "recommendation"},
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public"}]}});
        assert!(owners(&apply(Kind::HTTPRoute, "r", explicit), None).contains(&Owner::Namespace));
        let elsewhere = json!({"spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "namespace": "other"}]}});
        assert_eq!(owners(&apply(Kind::HTTPRoute, "r", elsewhere), None), [Owner::Namespace]);
    }

    #[test]
    fn an_http_route_belongs_to_what_its_filters_send_traffic_to() {
        let filter = |filter: Value| {
            mesh_route(json!({"filters": [filter], "backendRefs": [{"name": "recommendation", "port": 8080}]}))
        };
        let cases = [
            (
                json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "preference", "port": 8080}}}),
                Owner::Service("preference".into()),
            ),
            (
                json!({"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "billing", "namespace": "payments", "port": 8080}}}),
                Owner::Namespace,
            ),
            (
                json!({"type": "RequestRedirect", "requestRedirect": {"hostname": "preference.t.svc.cluster.local"}}),
                host("preference"),
            ),
            (json!({"type": "URLRewrite", "urlRewrite": {"hostname": "evil.example.com"}}), Owner::Namespace),
            (
                json!({"type": "ExtensionRef", "extensionRef": {"group": "x.io", "kind": "Lua", "name": "l"}}),
                Owner::Namespace,
            ),
            (json!({"type": "ExternalAuth", "externalAuth": {"backendRef": {"name": "auth"}}}), Owner::Namespace),
        ];
        for (written, reached) in cases {
            let found = owners(&filter(written.clone()), None);
            assert!(found.contains(&reached), "{written}: {found:?}");
        }
        let headers =
            json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "a", "value": "b"}]}});
        assert_eq!(owners(&filter(headers), None), [host("recommendation"), Owner::Service("recommendation".into())]);
    }

    #[test]
    fn a_backend_or_mirror_service_belongs_to_the_app_it_selects() {
        let (authz, alice) = (authorizer(), Actor::user("alice", vec![]));
        let mirror = |name: &str| {
            mesh_route(json!({"backendRefs": [{"name": "recommendation-v1", "port": 8080}],
                "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": name, "port": 8080}}}]}))
        };
        let own = [mirror("recommendation-v2")];
        let services = [
            version_service("recommendation-v1", "recommendation"),
            version_service("recommendation-v2", "recommendation"),
        ];
        assert_eq!(
            services_to_read(&own, &[None]),
            [
                ObjectRef::namespaced(Kind::Service, "t", "recommendation-v1"),
                ObjectRef::namespaced(Kind::Service, "t", "recommendation-v2")
            ]
        );
        assert_eq!(authorize(&authz, &alice, Permission::Route, &own, &[None], &services), Ok(()));
        let missing = authorize(&authz, &alice, Permission::Route, &own, &[None], &services[..1]).unwrap_err();
        assert!(
            missing.to_string().contains("recommendation-v2"),
            "a Service that is not there is judged by its name: {missing}"
        );
        let elsewhere = [mirror("preference-v1")];
        let services = [services[0].clone(), version_service("preference-v1", "preference")];
        let denial = authorize(&authz, &alice, Permission::Route, &elsewhere, &[None], &services).unwrap_err();
        assert!(denial.to_string().contains("host preference"), "{denial}");
    }
}
