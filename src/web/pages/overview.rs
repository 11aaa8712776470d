//! The overview: services, versions, readiness, routing and where to look next.
use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::authz::Actor;
use crate::change::routes::LiveRouting;
use crate::cluster::NamespaceCache;
use crate::inventory;
use crate::pictures::graph::{Routing, ServiceInput};
use crate::policy;

use super::super::error::AppError;
use super::super::extract::ManagedNamespace;
use super::super::identity::Identity;
use super::super::layout::Layout;
use super::super::state::AppState;
use super::render;

const ONE_HOUR_MS: i64 = 60 * 60 * 1000;

pub struct ServiceRow {
    /// The app, its versions and its routing (as a policy for the graph, and in words).
    pub service: ServiceInput,
    pub has_service: bool,
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
    /// The service graph's SVG, drawn once per distinct picture.
    graph: Arc<str>,
}

#[derive(Template)]
#[template(path = "partials/services.html")]
struct ServicesPartial {
    namespace: String,
    services: Vec<ServiceRow>,
    /// The service graph's SVG, drawn once per distinct picture.
    graph: Arc<str>,
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
        graph: service_graph(&state, &namespace, &services)?,
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
    render(&ServicesPartial { graph: service_graph(&state, &namespace, &services)?, services, namespace })
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
            let (routing, summary) = routing_of(cache, namespace, &service.app);
            ServiceRow {
                changed_outside: state.cluster.external.routing_changed_recently(namespace, &service.app, ONE_HOUR_MS),
                kiali: state.links.kiali_service(namespace, &service.app),
                jaeger: state.links.jaeger_traces(namespace, &service.app),
                has_service: service.has_service,
                service: ServiceInput { app: service.app, versions: service.versions, routing, summary },
            }
        })
        .collect()
}

/// The services as a picture: built from the rows (and so from the watch caches) and the
/// last observed rates, never waiting for a read; drawn again only when they changed.
fn service_graph(state: &AppState, namespace: &str, rows: &[ServiceRow]) -> Result<Arc<str>, AppError> {
    let services: Vec<&ServiceInput> = rows.iter().map(|row| &row.service).collect();
    let observed = state.observed_edges.as_ref().and_then(|edges| edges.get(namespace));
    Ok(state.graphs.svg(namespace, &services, observed.as_ref())?)
}

/// How traffic to `host` is routed: the policy for the graph, and one line of words.
fn routing_of(cache: &NamespaceCache, namespace: &str, host: &str) -> (Routing, String) {
    let live = LiveRouting::found(host, cache.routing_of(namespace, host));
    if let Some(ambiguous) = &live.ambiguous {
        return (Routing::Unknown, format!("routed by {} (shown, not edited here)", ambiguous.objects.describe()));
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
