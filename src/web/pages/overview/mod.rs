//! The overview: services, versions, readiness, routing and where to look next.
pub mod memo;
mod spliced;

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::authz::{Actor, ViewScope};
use crate::inventory;
use crate::pictures::graph::ServiceInput;

use crate::web::error::AppError;
use crate::web::extract::ManagedNamespace;
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::links::Answer;
use crate::web::state::AppState;

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
#[derive(Clone)]
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
    /// Nothing answered at the ingress address (or it has none: a node port only).
    ingress_silent: bool,
    /// What the namespace's gateway-bound VirtualServices route in from the ingress.
    ingress_paths: Vec<String>,
    kiali_graph: Option<String>,
    missing_links: Vec<&'static str>,
    /// Where the services partial goes: it is kept, and sent rather than copied.
    services: &'static str,
}

#[derive(Template)]
#[template(path = "partials/services.html")]
struct ServicesPartial<'a> {
    namespace: &'a str,
    services: &'a [ServiceRow],
    /// The service graph's SVG, drawn once per distinct picture.
    graph: &'a str,
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
    let services = services_html(&state, &actor, &namespace)?;
    let mut missing_links = Vec::new();
    if !state.links.has_kiali() {
        missing_links.push("--kiali-url");
    }
    if !state.links.has_jaeger() {
        missing_links.push("--jaeger-url");
    }
    let ingress_url = inventory::ingress_url(gateway.as_deref());
    let ingress_silent = ingress_url
        .as_deref()
        .is_some_and(|url| url.contains('<') || state.links.ingress_answer(url) == Answer::Silent);
    let page = OverviewPage {
        layout: Layout::new(&state, &actor, Some(&namespace)),
        namespace_exists: namespace_object.is_some(),
        injection: inventory::sidecar_injection(namespace_object.as_deref()),
        ingress_url,
        ingress_silent,
        ingress_paths: caches
            .namespace(&namespace)
            .map(|cache| inventory::ingress_paths(&cache.virtual_services.state()))
            .unwrap_or_default(),
        kiali_graph: state.links.kiali_graph(&namespace),
        missing_links,
        services: spliced::HOLE,
        namespace,
    };
    spliced::response(page.render()?, services)
}

/// The services table alone, polled by the page.
pub async fn services(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let html = services_html(&state, &actor, &namespace)?;
    Ok(Html(Bytes::from_owner(spliced::Shared(html))).into_response())
}

/// The services partial (graph and table) as `actor` sees `namespace`.
fn services_html(state: &AppState, actor: &Actor, namespace: &str) -> Result<Arc<str>, AppError> {
    let rows = service_rows(state, actor, namespace);
    let observed = state.observed_edges.as_ref().and_then(|edges| edges.get(namespace));
    state.rendered_services.html(namespace, rows, observed, |services, observed| {
        let inputs: Vec<&ServiceInput> = services.iter().map(|row| &row.facts.service).collect();
        let graph = state.graphs.svg(namespace, &inputs, observed)?;
        Ok(ServicesPartial { namespace, services, graph: &graph }.render()?)
    })
}

/// The namespace's services the actor may view.
/// Each service `actor` may view in `namespace` and `words` of it: what the routing and
/// canary indexes list.
pub fn hosts_in_words(
    state: &AppState,
    actor: &Actor,
    namespace: &str,
    words: impl Fn(&ServiceRow) -> String,
) -> Vec<(String, String)> {
    let rows = service_rows(state, actor, namespace);
    rows.iter().map(|row| (row.facts.service.app.clone(), words(row))).collect()
}

pub fn service_rows(state: &AppState, actor: &Actor, namespace: &str) -> Vec<ServiceRow> {
    service_rows_in(state, &state.view_scope(actor), namespace)
}

/// [`service_rows`] for what `scope` may view: a list of many namespaces decides the scope once.
pub fn service_rows_in(state: &AppState, scope: &ViewScope, namespace: &str) -> Vec<ServiceRow> {
    let Some(cache) = state.cluster.caches.namespace(namespace) else {
        return Vec::new();
    };
    let changed_outside = state.cluster.external.routing_changed_recently(namespace, ONE_HOUR_MS);
    let facts = state.service_facts.of(&state.links, &cache, namespace);
    let mut rows = Vec::with_capacity(facts.len());
    for facts in facts.iter().filter(|facts| scope.host(namespace, &facts.service.app)) {
        let changed_outside = changed_outside.contains(&facts.service.app);
        rows.push(ServiceRow { facts: facts.clone(), changed_outside });
    }
    rows
}
