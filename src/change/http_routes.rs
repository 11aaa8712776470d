//! Changes that only a host routed by a Gateway API HTTPRoute needs: its per-version
//! Services, what an HTTPRoute cannot say, and the migration from a VirtualService.
use super::Action;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::authz::Permission;
use crate::cluster::{Kind, ObjectRef, Operation};
use crate::policy::{self, Removal};
use crate::problem::FieldProblem;

use super::routes::{LiveRouting, RouteRequest, RoutingApi, to_json};
use super::{Change, Origin};

/// A change creating a per-version Service (`<host>-<version>`, selecting the app and the
/// version, with the host Service's ports) for each deployed version of `host` that has
/// none: what an HTTPRoute names as its backends. `Err` when there is nothing to create.
pub fn create_version_services(
    origin: &Origin,
    namespace: &str,
    host: &str,
    live: &LiveRouting,
    deployed: &[crate::inventory::VersionSummary],
    host_service: Option<&Value>,
) -> Result<Change, String> {
    let missing: Vec<&str> = deployed
        .iter()
        .filter(|v| v.app == host && !v.version.is_empty())
        .map(|v| v.version.as_str())
        .filter(|version| !live.versions.iter().any(|s| s.labels.get("version").is_some_and(|v| v == version)))
        .collect();
    if missing.is_empty() {
        return Err(format!("every deployed version of {host} has its Service already"));
    }
    let ports = host_ports(host_service, namespace, host)?;
    let names: Vec<String> = missing.iter().map(|version| format!("{host}-{version}")).collect();
    let summary = format!("{host}: per-version Services {}", names.join(", "));
    let subject = ObjectRef::namespaced(Kind::Service, namespace, host);
    let mut change = Change::new(origin, Action::RouteVersionServices, Permission::Route, namespace, subject, summary);
    change.host = Some(host.to_owned());
    for (name, version) in names.iter().zip(missing) {
        let labels = [("version".to_owned(), version.to_owned())].into();
        change.operations.push(version_service(namespace, host, name, &labels, &ports));
    }
    Ok(change)
}

/// The change moving a host from its VirtualService to an equivalent HTTPRoute, as Istio's
/// ambient migration guide asks: the per-version Services its subsets need, the HTTPRoute,
/// and the VirtualService removed (or this host taken out of one that routes others). The
/// DestinationRule stays: its traffic policy applies to the Services' traffic still. What
/// the Gateway API cannot say is in the change's problems (422, each with its field).
/// `Err` (409) when the host is not routed by one VirtualService alone.
pub fn migrate(request: &RouteRequest, host: &str, host_service: Option<&Value>) -> Result<Change, String> {
    let live = request.live;
    if let Some(reason) = live.ambiguity() {
        return Err(reason.to_owned());
    }
    let Some(vs) = live.virtual_service.as_ref().filter(|_| live.api == RoutingApi::VirtualService) else {
        return Err(format!("{host} is not routed by a VirtualService; there is nothing to migrate"));
    };
    let policy = live.policy(host).map_err(|e| e.to_string())?;
    let (migrated, to_create) = policy::gateway_api::migrated(&policy, &live.versions);
    let vs_name = vs.metadata.name.clone().unwrap_or_else(|| host.to_owned());
    let summary = format!("{host}: migrated from VirtualService {vs_name} to HTTPRoute {host}");
    let subject = ObjectRef::namespaced(Kind::HTTPRoute, request.namespace, host);
    let mut change =
        Change::new(request.origin, Action::RouteMigrate, Permission::Route, request.namespace, subject, summary);
    change.host = Some(host.to_owned());
    change.problems = policy::gateway_api::inexpressible(&policy, request.context.gateway_api_retries)
        .into_iter()
        .map(|e| FieldProblem::new(e.field, e.message))
        .collect();
    change.reaches = policy::reaches(&migrated, request.namespace);
    if !change.problems.is_empty() {
        return Ok(change);
    }
    let ports = host_ports(host_service, request.namespace, host)?;
    for service in &to_create {
        change.operations.push(version_service(request.namespace, host, &service.name, &service.labels, &ports));
    }
    let route = migrated.to_http_route(request.namespace, None, live.port);
    let target = ObjectRef::namespaced(Kind::HTTPRoute, request.namespace, host);
    change.operations.push(Operation::Create { target, object: to_json(&route) });
    let vs_target = ObjectRef::namespaced(Kind::VirtualService, request.namespace, &vs_name);
    match policy::lookup::remove_host(vs, host, request.namespace) {
        Removal::Delete => change.operations.push(Operation::Delete { target: vs_target }),
        Removal::DropHost(kept) => {
            change.operations.push(Operation::Apply { target: vs_target, object: to_json(&kept) })
        }
        Removal::Refused(why) => return Err(why),
    }
    Ok(change)
}

fn version_service(
    namespace: &str,
    host: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    ports: &Value,
) -> Operation {
    let mut selector = serde_json::json!({"app": host});
    for (key, value) in labels {
        selector[key] = value.clone().into();
    }
    let object = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": selector},
        "spec": {"selector": selector, "ports": ports}
    });
    Operation::Create { target: ObjectRef::namespaced(Kind::Service, namespace, name), object }
}

/// The host Service's ports, which every per-version Service copies.
fn host_ports(host_service: Option<&Value>, namespace: &str, host: &str) -> Result<Value, String> {
    host_service
        .map(service_ports)
        .ok_or_else(|| format!("{host} has no Service in {namespace} to copy the ports from"))
}

/// A Service's ports as one writes them (no nodePort: the new Services are ClusterIP).
fn service_ports(service: &Value) -> Value {
    let ports = service["spec"]["ports"].as_array().into_iter().flatten();
    let fields = ["name", "port", "protocol", "targetPort", "appProtocol"];
    let written = ports.map(|port| {
        let kept = fields.iter().filter_map(|f| Some((f.to_string(), port.get(*f)?.clone())));
        Value::Object(kept.collect())
    });
    Value::Array(written.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;
    use crate::change::routes::NamespaceRouting;
    use crate::inventory::VersionSummary;
    use crate::istio::VirtualService;
    use crate::policy::ValidationContext;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn origin() -> Origin {
        Origin { actor: Actor::user("alice", vec![]), source: Source::Api, request_id: None, emergency: None }
    }

    fn service(name: &str, selector: Value) -> Service {
        let ports =
            [{ json!({"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080, "nodePort": 30001}) }];
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"selector": selector, "ports": ports}}))
            .unwrap()
    }

    fn deployed(version: &str) -> VersionSummary {
        VersionSummary {
            name: format!("recommendation-{version}"),
            deployment: format!("recommendation-{version}"),
            app: "recommendation".into(),
            version: version.into(),
            desired: 1,
            ready: 1,
        }
    }

    #[test]
    fn only_versions_without_a_service_get_one_with_the_host_services_ports() {
        let services = [
            service("recommendation", json!({"app": "recommendation"})),
            service("recommendation-v1", json!({"app": "recommendation", "version": "v1"})),
        ];
        let objects = NamespaceRouting { services: services.iter().collect(), ..Default::default() };
        let live = LiveRouting::lookup("t", "recommendation", objects);
        let host = serde_json::to_value(&services[0]).unwrap();
        let versions = [deployed("v1"), deployed("v2")];
        let change = create_version_services(&origin(), "t", "recommendation", &live, &versions, Some(&host)).unwrap();
        assert_eq!(change.summary, "recommendation: per-version Services recommendation-v2");
        let object = change.operations[0].object().unwrap();
        assert_eq!(object["spec"]["selector"], json!({"app": "recommendation", "version": "v2"}));
        assert_eq!(
            object["spec"]["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}])
        );
        let refused = create_version_services(&origin(), "t", "recommendation", &live, &versions[..1], Some(&host));
        assert!(refused.unwrap_err().contains("has its Service already"));
        assert!(create_version_services(&origin(), "t", "recommendation", &live, &versions, None).is_err());
    }

    fn live_vs(rule: Value) -> LiveRouting {
        let vs: VirtualService = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reco", "namespace": "t"},
            "spec": {"hosts": ["recommendation"], "http": [rule]}
        }))
        .unwrap();
        let services = [service("recommendation", json!({"app": "recommendation"}))];
        let objects =
            NamespaceRouting { virtual_services: vec![&vs], services: services.iter().collect(), ..Default::default() };
        LiveRouting::lookup("t", "recommendation", objects)
    }

    fn migrate_from(live: &LiveRouting) -> Result<Change, String> {
        let origin = origin();
        let context = ValidationContext::default();
        let request = RouteRequest { origin: &origin, namespace: "t", live, expected: None, context: &context };
        let host = json!({"spec": {"ports": [{"port": 8080}]}});
        migrate(&request, "recommendation", Some(&host))
    }

    #[test]
    fn a_migration_creates_services_and_the_route_then_removes_the_virtual_service() {
        let live = live_vs(json!({"route": [{"destination": {"host": "recommendation"}}], "timeout": "2s"}));
        let change = migrate_from(&live).unwrap();
        assert!(change.problems.is_empty(), "{:?}", change.problems);
        let planned: Vec<String> = change.operations.iter().map(|op| op.target().to_string()).collect();
        assert_eq!(planned, ["HTTPRoute t/recommendation", "VirtualService t/reco"]);
        assert!(matches!(change.operations[1], Operation::Delete { .. }));
        assert_eq!(change.operations[0].object().unwrap()["spec"]["rules"][0]["timeouts"]["request"], "2s");
    }

    #[test]
    fn a_migration_names_what_the_gateway_api_cannot_say_and_plans_nothing() {
        let fault = json!({"abort": {"httpStatus": 503, "percentage": {"value": 10}}});
        let live = live_vs(json!({"route": [{"destination": {"host": "recommendation"}}], "fault": fault}));
        let change = migrate_from(&live).unwrap();
        let fields: Vec<&str> = change.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["rules[0].fault"]);
        assert!(change.operations.is_empty());
        assert!(migrate_from(&LiveRouting::default()).unwrap_err().contains("nothing to migrate"));
    }
}
