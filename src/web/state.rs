//! What every handler can reach.
use std::sync::Arc;

use crate::audit::AuditStore;
use crate::change::ChangePath;
use crate::cluster::Cluster;
use crate::metrics::Metrics;

use super::csrf::CsrfTokens;
use super::identity::IdentityPolicy;
use super::links::Links;

#[derive(Clone)]
pub struct AppState {
    pub cluster: Cluster,
    pub changes: ChangePath,
    pub audit: AuditStore,
    pub metrics: Arc<Metrics>,
    pub identity: Arc<IdentityPolicy>,
    pub csrf: Arc<CsrfTokens>,
    pub links: Arc<Links>,
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
