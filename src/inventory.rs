//! What runs in a namespace, summarised from cached objects for pages and the API. Pure.
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use serde::Serialize;

use crate::tutorial::Workload;

/// Whether the proxy `<pod>.<namespace>` runs in a pod of `deployment`: the pod's name is the
/// Deployment's with two more segments (the ReplicaSet's hash and the pod's own suffix).
pub fn runs_in_pod_of(proxy: &str, deployment: &str) -> bool {
    let pod = proxy.split('.').next().unwrap_or_default();
    pod.strip_prefix(deployment)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.split('-').count() == 2 && rest.split('-').all(|part| !part.is_empty()))
}

/// One version of a service: a Deployment labelled `app` and `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionSummary {
    /// The tutorial workload name where it is one (`preference`), else the Deployment's name.
    pub name: String,
    pub deployment: String,
    pub app: String,
    pub version: String,
    #[serde(rename = "replicas")]
    pub desired: i32,
    pub ready: i32,
}

impl VersionSummary {
    /// `ready`, `progressing` or `stopped`: the status colour on pages.
    pub fn state(&self) -> &'static str {
        match (self.desired, self.ready) {
            (0, _) => "stopped",
            (desired, ready) if ready >= desired => "ready",
            _ => "progressing",
        }
    }

    /// The Deployment's name when it is not the usual `<app>-<version>`: pages name it then.
    pub fn unusual_deployment(&self) -> Option<&str> {
        let usual = self.deployment.strip_prefix(self.app.as_str()).and_then(|rest| rest.strip_prefix('-'));
        (usual != Some(self.version.as_str())).then_some(self.deployment.as_str())
    }
}

/// A service (by `app` label) and its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSummary {
    pub app: String,
    /// Whether a Kubernetes Service of that name exists.
    pub has_service: bool,
    pub versions: Vec<VersionSummary>,
}

/// The versions of every Deployment, sorted by app and version.
pub fn versions(deployments: &[Arc<Deployment>]) -> Vec<VersionSummary> {
    let mut versions: Vec<VersionSummary> = deployments.iter().map(|d| version_of(d)).collect();
    versions.sort_by(|a, b| (&a.app, &a.version, &a.deployment).cmp(&(&b.app, &b.version, &b.deployment)));
    versions
}

fn version_of(deployment: &Deployment) -> VersionSummary {
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let label = |key: &str| deployment.metadata.labels.as_ref().and_then(|labels| labels.get(key)).cloned();
    let app = label("app").unwrap_or_else(|| name.clone());
    let version = label("version").unwrap_or_else(|| "-".into());
    let workload = Workload::ALL.into_iter().find(|w| w.deployment_name() == name && w.app() == app);
    VersionSummary {
        name: workload.map(|w| w.name().to_owned()).unwrap_or_else(|| name.clone()),
        deployment: name,
        app,
        version,
        desired: deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready: deployment.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
    }
}

/// Services grouped by `app`, including Services with no Deployment yet.
pub fn services(deployments: &[Arc<Deployment>], services: &[Arc<Service>]) -> Vec<ServiceSummary> {
    let service_names: Vec<String> = services.iter().filter_map(|s| s.metadata.name.clone()).collect();
    let mut by_app: BTreeMap<String, Vec<VersionSummary>> = BTreeMap::new();
    for version in versions(deployments) {
        by_app.entry(version.app.clone()).or_default().push(version);
    }
    for name in &service_names {
        by_app.entry(name.clone()).or_default();
    }
    by_app
        .into_iter()
        .map(|(app, versions)| ServiceSummary { has_service: service_names.contains(&app), app, versions })
        .collect()
}

/// Whether Istio injects sidecars into the namespace's new pods.
pub fn sidecar_injection(namespace: Option<&Namespace>) -> bool {
    namespace
        .and_then(|ns| ns.metadata.labels.as_ref())
        .and_then(|labels| labels.get("istio-injection"))
        .is_some_and(|value| value == "enabled")
}

/// The ingress gateway's external URL: its load balancer address, else its node port.
/// The paths the namespace's VirtualServices bound to a gateway (not only `mesh`) send into
/// it: what the ingress can be asked for here (the tutorial's `customer-gateway` gives
/// `/customer`). Exact paths and prefixes, in order, without repeats.
pub fn ingress_paths(virtual_services: &[Arc<crate::istio::VirtualService>]) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for vs in virtual_services {
        let gateways = vs.spec.gateways.iter().flatten();
        if !gateways.into_iter().any(|gateway| gateway != "mesh") {
            continue;
        }
        let entries = vs.spec.http.iter().flatten().flat_map(|rule| rule.matches.iter().flatten());
        for uri in entries.filter_map(|entry| entry.uri.as_ref()) {
            if let Some(path) = uri.exact.as_ref().or(uri.prefix.as_ref()).filter(|path| path.starts_with('/'))
                && !paths.contains(path)
            {
                paths.push(path.clone());
            }
        }
    }
    paths
}

pub fn ingress_url(gateway: Option<&Service>) -> Option<String> {
    let gateway = gateway?;
    let http_port = gateway
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == 80 || p.name.as_deref().is_some_and(|n| n.starts_with("http")))?;
    let ingress = gateway.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    let address = ingress.and_then(|list| list.first()).and_then(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    match (address, http_port.node_port) {
        (Some(address), _) if http_port.port == 80 => Some(format!("http://{address}")),
        (Some(address), _) => Some(format!("http://{address}:{}", http_port.port)),
        (None, Some(node_port)) => Some(format!("http://<node-address>:{node_port}")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ingress_paths_are_those_of_virtual_services_bound_to_a_gateway() {
        let vs = |gateways: serde_json::Value, uri: serde_json::Value| -> Arc<crate::istio::VirtualService> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"hosts": ["*"],
                "gateways": gateways, "http": [{"match": [{"uri": uri}], "route": []}]}}))
                .unwrap(),
            )
        };
        let tutorial = vs(json!(["customer-gateway"]), json!({"prefix": "/customer"}));
        let mesh_only = vs(json!(["mesh"]), json!({"prefix": "/internal"}));
        let exact = vs(json!(["mesh", "shop/gateway"]), json!({"exact": "/shop"}));
        let regex = vs(json!(["shop/gateway"]), json!({"regex": "/r.*"}));
        assert_eq!(ingress_paths(&[tutorial.clone(), mesh_only, exact, regex, tutorial]), ["/customer", "/shop"]);
        assert!(ingress_paths(&[]).is_empty());
    }

    fn deployment(name: &str, app: &str, version: &str, desired: i32, ready: i32) -> Arc<Deployment> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": app, "version": version}},
                "spec": {"replicas": desired, "selector": {}, "template": {}},
                "status": {"readyReplicas": ready}
            }))
            .unwrap(),
        )
    }

    fn service(name: &str) -> Arc<Service> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}})).unwrap())
    }

    #[test]
    fn versions_group_under_their_app() {
        let deployments = [
            deployment("recommendation-v2", "recommendation", "v2", 2, 1),
            deployment("recommendation-v1", "recommendation", "v1", 1, 1),
            deployment("preference-v1", "preference", "v1", 1, 0),
        ];
        let summary = services(&deployments, &[service("recommendation"), service("customer")]);
        let apps: Vec<&str> = summary.iter().map(|s| s.app.as_str()).collect();
        assert_eq!(apps, ["customer", "preference", "recommendation"]);
        let recommendation = &summary[2];
        assert!(recommendation.has_service);
        assert_eq!(recommendation.versions[0].version, "v1");
        assert_eq!(recommendation.versions[1].state(), "progressing");
        assert_eq!(summary[1].versions[0].name, "preference", "tutorial workload name");
        assert!(!summary[1].has_service);
        assert!(summary[0].versions.is_empty());
    }

    #[test]
    fn only_an_unusual_deployment_name_is_worth_naming() {
        let name = |name, app, version| {
            version_of(&deployment(name, app, version, 1, 1)).unusual_deployment().map(str::to_owned)
        };
        assert_eq!(name("reviews-v2", "reviews", "v2"), None);
        assert_eq!(name("reviews-canary", "reviews", "v2").as_deref(), Some("reviews-canary"));
        assert_eq!(name("reviews-v2", "review", "s-v2").as_deref(), Some("reviews-v2"), "not split elsewhere");
    }

    #[test]
    fn version_states() {
        let v = |desired, ready| version_of(&deployment("d", "a", "v1", desired, ready));
        assert_eq!(v(1, 1).state(), "ready");
        assert_eq!(v(2, 1).state(), "progressing");
        assert_eq!(v(0, 0).state(), "stopped");
    }

    #[test]
    fn ingress_url_prefers_the_load_balancer_address() {
        let gateway: Service = serde_json::from_value(json!({
            "spec": {"ports": [{"name": "http2", "port": 80, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}
        }))
        .unwrap();
        assert_eq!(ingress_url(Some(&gateway)).unwrap(), "http://127.0.0.1");
        let node_port_only: Service =
            serde_json::from_value(json!({"spec": {"ports": [{"name": "http2", "port": 80, "nodePort": 30080}]}}))
                .unwrap();
        assert_eq!(ingress_url(Some(&node_port_only)).unwrap(), "http://<node-address>:30080");
        assert_eq!(ingress_url(None), None);
    }

    #[test]
    fn injection_follows_the_namespace_label() {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": "t", "labels": {"istio-injection": "enabled"}}}))
                .unwrap();
        assert!(sidecar_injection(Some(&ns)));
        assert!(!sidecar_injection(None));
    }
}
