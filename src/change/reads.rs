//! What changes (and the pages that offer them) are built from: a host's routing objects,
//! live from the API server or as the watch caches hold them, the namespace's versions and
//! what validating a policy needs.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use crate::cluster::{Cluster, ClusterError, Kind, ObjectRef};
use crate::gateway_api::HTTPRoute;
use crate::inventory::VersionSummary;
use crate::istio::{DestinationRule, VirtualService};
use crate::policy::{Caller, ValidationContext};

use super::routes::{LiveRouting, NamespaceRouting};
use super::workloads::NamespaceState;

/// A Deployment as the caller of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub deployment: String,
    /// Its pods' `app` label: the service it belongs to.
    pub app: String,
    pub caller: Caller,
}

#[derive(Clone)]
pub struct Reads {
    cluster: Cluster,
}

impl Reads {
    pub fn new(cluster: Cluster) -> Self {
        Self { cluster }
    }

    /// The host's routing objects, read from the API server (not the cache), so that what
    /// a change merges into and the resourceVersions it checks are current. Found by what
    /// they route ([`crate::policy::lookup::find`]), whatever their names.
    pub async fn live_routing(&self, namespace: &str, host: &str) -> Result<LiveRouting, ClusterError> {
        let objects = &self.cluster.objects;
        let (virtual_services, destination_rules, http_routes, services) = tokio::try_join!(
            objects.list::<VirtualService>(namespace),
            objects.list::<DestinationRule>(namespace),
            self.http_routes(namespace),
            objects.list::<Service>(namespace),
        )?;
        let objects = NamespaceRouting {
            virtual_services: virtual_services.iter().collect(),
            destination_rules: destination_rules.iter().collect(),
            http_routes: http_routes.iter().collect(),
            services: services.iter().collect(),
        };
        Ok(LiveRouting::lookup(namespace, host, objects))
    }

    /// The host's own Service as the API server has it (its ports go to per-version Services).
    pub async fn host_service(&self, namespace: &str, host: &str) -> Result<Option<serde_json::Value>, ClusterError> {
        self.cluster.objects.get(&ObjectRef::namespaced(Kind::Service, namespace, host)).await
    }

    /// The namespace's HTTPRoutes; none on a cluster without the Gateway API CRDs.
    async fn http_routes(&self, namespace: &str) -> Result<Vec<HTTPRoute>, ClusterError> {
        match self.cluster.objects.list::<HTTPRoute>(namespace).await {
            Err(ClusterError::Refused { code: 404, .. }) => Ok(Vec::new()),
            listed => listed,
        }
    }

    /// The host's routing objects as the watch caches hold them (for pages: no API request).
    pub fn cached_routing(&self, namespace: &str, host: &str) -> LiveRouting {
        let Some(cache) = self.cluster.caches.namespace(namespace) else {
            return LiveRouting::default();
        };
        let (virtual_services, destination_rules) = (cache.virtual_services.state(), cache.destination_rules.state());
        let (http_routes, services) = (cache.http_routes.state(), cache.services.state());
        let objects = NamespaceRouting {
            virtual_services: virtual_services.iter().map(AsRef::as_ref).collect(),
            destination_rules: destination_rules.iter().map(AsRef::as_ref).collect(),
            http_routes: http_routes.iter().map(AsRef::as_ref).collect(),
            services: services.iter().map(AsRef::as_ref).collect(),
        };
        LiveRouting::lookup(namespace, host, objects)
    }

    /// Whether the caches hold `target` at `version` (None: absent), for the objects a
    /// host's routing is read from. Other kinds are not judged (true): a Deployment's
    /// version moves with every status update its controller makes.
    pub fn cache_holds(&self, target: &ObjectRef, version: Option<&str>) -> bool {
        let Some(namespace) = target.namespace.as_deref() else { return true };
        let Some(cache) = self.cluster.caches.namespace(namespace) else { return false };
        let name = target.name.as_str();
        let cached = match target.kind {
            Kind::VirtualService => version_in(&cache.virtual_services, namespace, name),
            Kind::DestinationRule => version_in(&cache.destination_rules, namespace, name),
            Kind::HTTPRoute => version_in(&cache.http_routes, namespace, name),
            Kind::Service => version_in(&cache.services, namespace, name),
            _ => return true,
        };
        cached.as_deref() == version
    }

    /// What the namespace holds, read from the API server: what a workload change is built
    /// from (deploy or scale, the namespace to create or not), so that a change right after
    /// another is never built from caches that do not hold that one yet.
    pub async fn live_namespace_state(&self, namespace: &str) -> Result<NamespaceState, ClusterError> {
        let objects = &self.cluster.objects;
        let namespace_ref = ObjectRef::cluster_scoped(Kind::Namespace, namespace);
        let (namespace_object, deployments) =
            tokio::try_join!(objects.get(&namespace_ref), objects.list::<Deployment>(namespace))?;
        let deployments: Vec<std::sync::Arc<Deployment>> = deployments.into_iter().map(std::sync::Arc::new).collect();
        Ok(NamespaceState { exists: namespace_object.is_some(), versions: crate::inventory::versions(&deployments) })
    }

    /// What the namespace holds, from the caches.
    pub fn namespace_state(&self, namespace: &str) -> NamespaceState {
        NamespaceState {
            exists: self.cluster.caches.namespace_object(namespace).is_some(),
            versions: self.versions(namespace),
        }
    }

    /// Every Deployment version in the namespace, from the caches.
    pub fn versions(&self, namespace: &str) -> Vec<VersionSummary> {
        self.cluster
            .caches
            .namespace(namespace)
            .map(|cache| crate::inventory::versions(&cache.deployments.state()))
            .unwrap_or_default()
    }

    /// The ports of the Service `host`, from the caches (none: no such Service).
    pub fn service_ports(&self, namespace: &str, host: &str) -> Vec<u16> {
        let Some(cache) = self.cluster.caches.namespace(namespace) else { return Vec::new() };
        let services = cache.services.state();
        let service = services.iter().find(|s| s.metadata.name.as_deref() == Some(host));
        let ports = service.and_then(|s| s.spec.as_ref()).and_then(|spec| spec.ports.as_ref());
        ports.into_iter().flatten().filter_map(|port| u16::try_from(port.port).ok()).collect()
    }

    /// The namespace's Deployments as callers of a service, by name, from the caches: who the
    /// route tester may ask "as seen from" (their pods' labels decide `sourceLabels`).
    pub fn callers(&self, namespace: &str) -> Vec<Workload> {
        let Some(cache) = self.cluster.caches.namespace(namespace) else { return Vec::new() };
        let mut workloads: Vec<Workload> = cache
            .deployments
            .state()
            .iter()
            .map(|deployment| {
                let template = deployment.spec.as_ref().and_then(|spec| spec.template.metadata.as_ref());
                let labels = template.and_then(|metadata| metadata.labels.clone()).unwrap_or_default();
                Workload {
                    deployment: deployment.metadata.name.clone().unwrap_or_default(),
                    app: labels.get("app").cloned().unwrap_or_default(),
                    caller: Caller { namespace: namespace.to_owned(), labels: labels.into_iter().collect() },
                }
            })
            .collect();
        workloads.sort_by(|a, b| a.deployment.cmp(&b.deployment));
        workloads
    }

    /// What validating a host's policy needs: the namespace's Services and the pod labels
    /// of the host's deployed versions, from the caches.
    pub fn validation_context(&self, namespace: &str, host: &str) -> ValidationContext {
        let Some(cache) = self.cluster.caches.namespace(namespace) else {
            return Default::default();
        };
        let services = cache.services.state().iter().filter_map(|s| s.metadata.name.clone()).collect();
        let deployed_versions = cache
            .deployments
            .state()
            .iter()
            .filter_map(|d| d.spec.as_ref()?.template.metadata.as_ref()?.labels.clone())
            .filter(|labels| labels.get("app").is_some_and(|app| app == host))
            .collect();
        let gateway_api_retries = self.cluster.http_route_retries;
        ValidationContext { services, deployed_versions, gateway_api: false, gateway_api_retries }
    }
}

/// The resourceVersion of the object `namespace/name` in `store` (None: not there).
fn version_in<K>(store: &kube::runtime::reflector::Store<K>, namespace: &str, name: &str) -> Option<String>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let found = store.get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))?;
    Some(found.meta().resource_version.clone().unwrap_or_default())
}
