//! The overview: services, versions, readiness, routing and where to look next.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use crate::authz::Actor;
use crate::change::routes::{LiveRouting, NamespaceRouting};
use crate::cluster::NamespaceCache;
use crate::gateway_api::HTTPRoute;
use crate::inventory;
use crate::istio::{DestinationRule, VirtualService};
use crate::pictures::graph::{Routing, ServiceInput};
use crate::policy;

use super::super::error::AppError;
use super::super::extract::ManagedNamespace;
use super::super::identity::Identity;
use super::super::layout::Layout;
use super::super::state::AppState;
use super::render;

const ONE_HOUR_MS: i64 = 60 * 60 * 1000;

/// What the overview shows of one service whoever views it, derived from the watch caches
/// and the configured links alone, so views of an unchanged namespace share it.
pub struct ServiceFacts {
    /// The app, its versions and its routing (as a policy for the graph, and in words).
    pub service: ServiceInput,
    pub has_service: bool,
    pub kiali: Option<String>,
    pub jaeger: Option<String>,
}

/// A service as one view shows it.
pub struct ServiceRow {
    pub facts: Arc<ServiceFacts>,
    /// The routing changed outside signalbox within the last hour.
    pub changed_outside: bool,
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
    state
        .service_facts
        .of(state, cache, namespace)
        .iter()
        .filter(|facts| scope.host(namespace, &facts.service.app))
        .map(|facts| ServiceRow {
            changed_outside: state.cluster.external.routing_changed_recently(
                namespace,
                &facts.service.app,
                ONE_HOUR_MS,
            ),
            facts: facts.clone(),
        })
        .collect()
}

/// The [`ServiceFacts`] of each managed namespace, kept with the cached objects they were
/// derived from. The watch caches hand out the same `Arc` for an object until it changes
/// (and a new one after any change, a relist included), so the same objects, in the same
/// order, mean the same facts: nothing to invalidate, and a view right after a change sees
/// it (BENCHMARKS.md, issue 15 §3: deriving them took half of the overview's CPU at 150
/// Deployments).
#[derive(Default)]
pub struct ServiceFactsMemo {
    namespaces: Mutex<HashMap<String, Arc<Derived>>>,
}

struct Derived {
    from: Snapshot,
    facts: Arc<[Arc<ServiceFacts>]>,
}

/// The cached objects the facts are derived from.
struct Snapshot {
    deployments: Vec<Arc<Deployment>>,
    services: Vec<Arc<Service>>,
    virtual_services: Vec<Arc<VirtualService>>,
    destination_rules: Vec<Arc<DestinationRule>>,
    http_routes: Vec<Arc<HTTPRoute>>,
}

impl Snapshot {
    fn of(cache: &NamespaceCache) -> Self {
        Snapshot {
            deployments: cache.deployments.state(),
            services: cache.services.state(),
            virtual_services: cache.virtual_services.state(),
            destination_rules: cache.destination_rules.state(),
            http_routes: cache.http_routes.state(),
        }
    }

    fn same_objects(&self, other: &Snapshot) -> bool {
        fn same<K>(a: &[Arc<K>], b: &[Arc<K>]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b))
        }
        same(&self.deployments, &other.deployments)
            && same(&self.services, &other.services)
            && same(&self.virtual_services, &other.virtual_services)
            && same(&self.destination_rules, &other.destination_rules)
            && same(&self.http_routes, &other.http_routes)
    }
}

impl ServiceFactsMemo {
    /// Every service of `namespace`, sorted by app.
    fn of(&self, state: &AppState, cache: &NamespaceCache, namespace: &str) -> Arc<[Arc<ServiceFacts>]> {
        let now = Snapshot::of(cache);
        let kept = self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(namespace).cloned();
        if let Some(kept) = kept.filter(|kept| kept.from.same_objects(&now)) {
            return kept.facts.clone();
        }
        let facts: Arc<[Arc<ServiceFacts>]> = inventory::services(&now.deployments, &now.services)
            .into_iter()
            .map(|service| {
                let (routing, summary) = routing_of(&now, namespace, &service.app);
                Arc::new(ServiceFacts {
                    kiali: state.links.kiali_service(namespace, &service.app),
                    jaeger: state.links.jaeger_traces(namespace, &service.app),
                    has_service: service.has_service,
                    service: ServiceInput { app: service.app, versions: service.versions, routing, summary },
                })
            })
            .collect();
        let derived = Arc::new(Derived { from: now, facts: facts.clone() });
        self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(namespace.to_owned(), derived);
        facts
    }
}

/// The services as a picture: built from the rows (and so from the watch caches) and the
/// last observed rates, never waiting for a read; drawn again only when they changed.
fn service_graph(state: &AppState, namespace: &str, rows: &[ServiceRow]) -> Result<Arc<str>, AppError> {
    let services: Vec<&ServiceInput> = rows.iter().map(|row| &row.facts.service).collect();
    let observed = state.observed_edges.as_ref().and_then(|edges| edges.get(namespace));
    Ok(state.graphs.svg(namespace, &services, observed.as_ref())?)
}

/// How traffic to `host` is routed: the policy for the graph, and one line of words.
fn routing_of(objects: &Snapshot, namespace: &str, host: &str) -> (Routing, String) {
    let objects = NamespaceRouting {
        virtual_services: objects.virtual_services.iter().map(AsRef::as_ref).collect(),
        destination_rules: objects.destination_rules.iter().map(AsRef::as_ref).collect(),
        http_routes: objects.http_routes.iter().map(AsRef::as_ref).collect(),
        services: objects.services.iter().map(AsRef::as_ref).collect(),
    };
    let live = LiveRouting::lookup(namespace, host, objects);
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
