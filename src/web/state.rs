//! What every handler can reach.
use std::sync::Arc;

use axum::extract::FromRef;

use crate::audit::AuditStore;
use crate::change::ChangePath;
use crate::change::reads::Reads;
use crate::change::rollout::Rollouts;
use crate::cluster::Cluster;
use crate::metrics::Metrics;

use super::csrf::CsrfTokens;
use super::host::AllowedHosts;
use super::identity::IdentityPolicy;
use super::links::Links;

/// Wiring: what handlers reach, behind one `Arc`. Every middleware and `State` extractor
/// clones the state once per request; cloning the fields themselves (kube clients with
/// their buffers, the authorizer's maps, the pools) was a measurable share of each request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares. Domain reads live in [`Reads`], canary steps in
/// [`Rollouts`], every change goes through the [`ChangePath`].
pub struct Shared {
    pub cluster: Cluster,
    pub reads: Reads,
    pub changes: ChangePath,
    pub rollouts: Rollouts,
    /// The routing use case: what the routing page and API plan, preview and apply.
    pub routing: crate::routing::Routing,
    pub audit: AuditStore,
    /// Where the audit chain is anchored outside the database, when configured.
    pub anchor: Option<crate::audit_anchor::AuditAnchor>,
    pub metrics: Arc<Metrics>,
    pub identity: Arc<IdentityPolicy>,
    /// The Host names requests may be addressed to.
    pub allowed_hosts: Arc<AllowedHosts>,
    pub csrf: Arc<CsrfTokens>,
    pub links: Arc<Links>,
    /// Istio's metrics, when `--prometheus-url` is set.
    pub prometheus: Option<Arc<crate::traffic::Prometheus>>,
    /// The service graph's observed rates, when there is a Prometheus.
    pub observed_edges: Option<Arc<crate::traffic::ObservedEdges>>,
    /// The overview's service graph, drawn once per distinct picture.
    pub graphs: crate::pictures::drawn::DrawnGraphs,
    /// The overview's services, derived once per change of the watch caches.
    pub service_facts: super::pages::overview::memo::ServiceFactsMemo,
    /// Each host's routing page, derived once per change of the watch caches.
    pub routes_views: super::pages::kept_views::KeptRoutesViews,
    /// The audit history's rows, rendered once per page of entries.
    pub audit_rows: super::pages::kept_views::KeptAuditRows,
    /// The overview's services partial, rendered once per distinct content.
    pub rendered_services: super::pages::overview::memo::RenderedServices,
}

impl AppState {
    /// What a workload change of `actor` is built from: the namespace as the API server has
    /// it when they may deploy there (`app`: the workload's host; None: namespace-wide),
    /// else the caches — the change path refuses them anyway, and a refused request should
    /// not cost the API server a LIST. When the API server does not answer, the caches too:
    /// the change path's own reads then fail, and the attempt is audited as failed.
    pub async fn workload_state(
        &self,
        actor: &crate::authz::Actor,
        namespace: &str,
        app: Option<&str>,
    ) -> crate::change::workloads::NamespaceState {
        let may_deploy = self.changes.authorizer().allows(actor, crate::authz::Permission::Deploy, namespace, app);
        let live = if may_deploy { self.reads.live_namespace_state(namespace).await.ok() } else { None };
        live.unwrap_or_else(|| self.reads.namespace_state(namespace))
    }

    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    pub fn managed_namespaces(&self) -> Arc<Vec<String>> {
        self.changes.authorizer().managed_namespaces()
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

// The guards take only the part of the state they need, so that their modules need not know
// `AppState` (which knows them).
impl FromRef<AppState> for Arc<IdentityPolicy> {
    fn from_ref(state: &AppState) -> Self {
        state.identity.clone()
    }
}

impl FromRef<AppState> for Arc<AllowedHosts> {
    fn from_ref(state: &AppState) -> Self {
        state.allowed_hosts.clone()
    }
}

impl FromRef<AppState> for Arc<CsrfTokens> {
    fn from_ref(state: &AppState) -> Self {
        state.csrf.clone()
    }
}
