//! What every handler can reach.
use std::sync::Arc;

use crate::audit::AuditStore;
use crate::change::ChangePath;
use crate::cluster::Cluster;
use crate::metrics::Metrics;

use super::csrf::CsrfTokens;
use super::host::AllowedHosts;
use super::identity::IdentityPolicy;
use super::links::Links;

#[derive(Clone)]
pub struct AppState {
    pub cluster: Cluster,
    pub changes: ChangePath,
    pub audit: AuditStore,
    /// Where the audit chain is anchored outside the database, when configured.
    pub anchor: Option<crate::cluster::anchor::AuditAnchor>,
    pub metrics: Arc<Metrics>,
    pub identity: Arc<IdentityPolicy>,
    /// The Host names requests may be addressed to.
    pub allowed_hosts: Arc<AllowedHosts>,
    pub csrf: Arc<CsrfTokens>,
    pub links: Arc<Links>,
    /// Istio's metrics, when `--prometheus-url` is set.
    pub prometheus: Option<Arc<crate::traffic::Prometheus>>,
    /// The service graph's observed rates, when there is a Prometheus.
    pub observed_edges: Option<Arc<super::ObservedEdges>>,
}

impl AppState {
    pub fn managed_namespaces(&self) -> &[String] {
        self.changes.authorizer().managed_namespaces()
    }
}

impl AppState {
    /// What the namespace holds, from the caches.
    pub fn namespace_state(&self, namespace: &str) -> crate::change::workloads::NamespaceState {
        crate::change::workloads::NamespaceState {
            exists: self.cluster.caches.namespace_object(namespace).is_some(),
            versions: self.versions(namespace),
        }
    }

    /// Every Deployment version in the namespace, from the caches.
    pub fn versions(&self, namespace: &str) -> Vec<crate::inventory::VersionSummary> {
        self.cluster
            .caches
            .namespace(namespace)
            .map(|cache| crate::inventory::versions(&cache.deployments.state()))
            .unwrap_or_default()
    }
}

impl AppState {
    /// The host's routing objects, read from the API server (not the cache), so that what
    /// a change merges into and the resourceVersions it checks are current. Found by what
    /// they route ([`crate::policy::lookup::find`]), whatever their names.
    pub async fn live_routing(
        &self,
        namespace: &str,
        host: &str,
    ) -> Result<crate::change::routes::LiveRouting, super::AppError> {
        let objects = &self.cluster.objects;
        let (virtual_services, destination_rules) = tokio::try_join!(
            objects.list::<crate::istio::VirtualService>(namespace),
            objects.list::<crate::istio::DestinationRule>(namespace)
        )?;
        let found = crate::policy::lookup::find(namespace, host, &virtual_services, &destination_rules);
        Ok(crate::change::routes::LiveRouting::found(host, found))
    }

    /// The host's routing objects as the watch caches hold them (for pages: no API request).
    pub fn cached_routing(&self, namespace: &str, host: &str) -> crate::change::routes::LiveRouting {
        let found =
            self.cluster.caches.namespace(namespace).map(|cache| cache.routing_of(namespace, host)).unwrap_or_default();
        crate::change::routes::LiveRouting::found(host, found)
    }

    /// What validating a host's policy needs: the namespace's Services and the pod labels
    /// of the host's deployed versions, from the caches.
    pub fn validation_context(&self, namespace: &str, host: &str) -> crate::policy::ValidationContext {
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
        crate::policy::ValidationContext { services, deployed_versions }
    }
}
