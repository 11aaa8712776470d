//! The overview: services, versions, readiness, routing and where to look next.
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::authz::Actor;
use crate::change::routes::LiveRouting;
use crate::cluster::NamespaceCache;
use crate::inventory::{self, VersionSummary};
use crate::pictures::graph::{self, Routing, ServiceGraph, ServiceInput};
use crate::policy;

use super::super::error::AppError;
use super::super::extract::ManagedNamespace;
use super::super::identity::Identity;
use super::super::layout::Layout;
use super::super::state::AppState;
use super::render;

const ONE_HOUR_MS: i64 = 60 * 60 * 1000;

pub struct ServiceRow {
    pub app: String,
    pub has_service: bool,
    pub versions: Vec<VersionSummary>,
    pub routing: String,
    /// The same routing for the service graph.
    pub routing_model: Routing,
    /// The routing changed outside signalbox within the last hour.
    pub changed_outside: bool,
    pub kiali: Option<String>,
    pub jaeger: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    namespace: String,
    namespace_exists: bool,
    injection: bool,
    ingress_url: Option<String>,
    kiali_graph: Option<String>,
    missing_links: Vec<&'static str>,
    services: Vec<ServiceRow>,
    graph: ServiceGraph,
}

#[derive(Template)]
#[template(path = "partials/services.html")]
struct ServicesPartial {
    namespace: String,
    services: Vec<ServiceRow>,
    graph: ServiceGraph,
}

pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let caches = &state.cluster.caches;
    let namespace_object = caches.namespace_object(&namespace);
    let gateway = caches.istio_system_services.state().into_iter().find(|service| {
        service.metadata.labels.as_ref().and_then(|l| l.get("istio")).is_some_and(|v| v == "ingressgateway")
    });
    let services = service_rows(&state, &actor, &namespace);
    let mut missing_links = Vec::new();
    if !state.links.has_kiali() {
        missing_links.push("--kiali-url");
    }
    if !state.links.has_jaeger() {
        missing_links.push("--jaeger-url");
    }
    render(&OverviewPage {
        layout: Layout::new(&state, &actor, Some(&namespace)),
        namespace_exists: namespace_object.is_some(),
        injection: inventory::sidecar_injection(namespace_object.as_deref()),
        ingress_url: inventory::ingress_url(gateway.as_deref()),
        kiali_graph: state.links.kiali_graph(&namespace),
        missing_links,
        graph: service_graph(&state, &namespace, &services),
        services,
        namespace,
    })
}

/// The services table alone, polled by the page.
pub async fn services(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let services = service_rows(&state, &actor, &namespace);
    render(&ServicesPartial { graph: service_graph(&state, &namespace, &services), services, namespace })
}

/// The namespace's services the actor may view.
pub fn service_rows(state: &AppState, actor: &Actor, namespace: &str) -> Vec<ServiceRow> {
    let Some(cache) = state.cluster.caches.namespace(namespace) else {
        return Vec::new();
    };
    let scope = state.view_scope(actor);
    inventory::services(&cache.deployments.state(), &cache.services.state())
        .into_iter()
        .filter(|service| scope.host(namespace, &service.app))
        .map(|service| {
            let (routing_model, routing) = routing_of(cache, namespace, &service.app);
            ServiceRow {
                routing,
                routing_model,
                changed_outside: state.cluster.external.routing_changed_recently(namespace, &service.app, ONE_HOUR_MS),
                kiali: state.links.kiali_service(namespace, &service.app),
                jaeger: state.links.jaeger_traces(namespace, &service.app),
                app: service.app,
                has_service: service.has_service,
                versions: service.versions,
            }
        })
        .collect()
}

/// The services as a picture: built from the rows (and so from the watch caches) and the
/// last observed rates, never waiting for a read.
fn service_graph(state: &AppState, namespace: &str, rows: &[ServiceRow]) -> ServiceGraph {
    let services: Vec<ServiceInput> = rows
        .iter()
        .map(|row| ServiceInput {
            app: row.app.clone(),
            versions: row.versions.clone(),
            routing: row.routing_model.clone(),
            summary: row.routing.clone(),
        })
        .collect();
    let observed = state.observed_edges.as_ref().and_then(|edges| edges.get(namespace));
    graph::graph(namespace, &services, observed.as_ref())
}

/// How traffic to `host` is routed: the policy for the graph, and one line of words.
fn routing_of(cache: &NamespaceCache, namespace: &str, host: &str) -> (Routing, String) {
    let live = LiveRouting::found(host, cache.routing_of(namespace, host));
    if let Some(ambiguous) = &live.ambiguous {
        let objects = &ambiguous.objects;
        if !objects.virtual_services.is_empty() && !objects.http_routes.is_empty() {
            let warning =
                format!("warning: routed by both {}; Istio leaves the behaviour undefined", objects.describe());
            return (Routing::Unknown, warning);
        }
        return (Routing::Unknown, format!("routed by {} (shown, not edited here)", objects.describe()));
    }
    if !live.exists() {
        return (Routing::None, "no routing policy: round-robin over all pods".to_owned());
    }
    match live.policy(host) {
        Ok(policy) => {
            let words = policy::summary(&policy);
            (Routing::Policy(policy), words)
        }
        Err(error) => (Routing::Unknown, format!("routing policy not understood: {error}")),
    }
}
