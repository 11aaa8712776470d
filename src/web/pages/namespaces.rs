//! The namespaces page (`/namespaces`) and `GET /api/v1/namespaces`: every managed
//! namespace the actor may view, with what runs there, a health mark, and when it last
//! changed, most recently changed first. A filter box narrows the list as one types.
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::authz::{Actor, ViewScope};
use crate::change::canary;
use crate::inventory::runs_in_pod_of;
use crate::pictures::graph::Routing;
use crate::propagation::{IstiodUnreachable, Snapshot};
use crate::web::error::AppError;
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::pages::overview::service_rows_in;
use crate::web::state::AppState;

/// One namespace as the list shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSummary {
    pub name: String,
    pub services: usize,
    pub routed_hosts: usize,
    pub canaries_in_progress: usize,
    /// Of the services' sidecars, how many have what istiod last sent them; null without
    /// `--istiod-url`.
    pub proxies: Option<Proxies>,
    /// `ok`, `progressing` (a Deployment short of ready pods), `syncing` (a proxy without
    /// what istiod last sent it), or `empty` (nothing runs there).
    pub health: &'static str,
    /// When the audit log last recorded a change there (RFC 3339), if ever.
    pub last_change: Option<String>,
    #[serde(skip)]
    last_change_ms: i64,
}

/// The sidecars of a namespace's services, as istiod reports them.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Proxies {
    Counted {
        synced: usize,
        total: usize,
    },
    /// istiod did not answer, and why.
    Unavailable {
        unavailable: String,
    },
}

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "namespaces.html")]
struct NamespacesPage<'a> {
    layout: Layout,
    filter: &'a str,
    rows: NamespaceRows<'a>,
}

#[derive(Template)]
#[template(path = "partials/namespace_rows.html")]
struct NamespaceRows<'a> {
    namespaces: &'a [NamespaceSummary],
    /// How many the actor may view before the filter.
    total: usize,
}

/// `GET /namespaces?q=`: the page.
pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let (namespaces, total) = filtered(&state, &actor, &filter.q).await;
    let rows = NamespaceRows { namespaces: &namespaces, total };
    let page = NamespacesPage { layout: Layout::new(&state, &actor, None), filter: filter.q.trim(), rows };
    Ok(Html(page.render()?).into_response())
}

/// `GET /partials/namespaces?q=`: the rows alone, for the filter box.
pub async fn rows(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let (namespaces, total) = filtered(&state, &actor, &filter.q).await;
    Ok(Html(NamespaceRows { namespaces: &namespaces, total }.render()?).into_response())
}

/// `GET /api/v1/namespaces?q=`.
pub async fn api(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(filter): Query<Filter>,
) -> Result<axum::Json<Value>, AppError> {
    let (namespaces, _) = filtered(&state, &actor, &filter.q).await;
    Ok(axum::Json(json!({"namespaces": namespaces})))
}

/// The namespaces the actor may view whose name holds `filter` (case-insensitive), most
/// recently changed first, and how many there are unfiltered. istiod and the audit log are
/// each asked once for all of them, however many there are.
async fn filtered(state: &AppState, actor: &Actor, filter: &str) -> (Vec<NamespaceSummary>, usize) {
    let scope = state.view_scope(actor);
    let managed = state.managed_namespaces();
    let visible: Vec<&String> = managed.iter().filter(|ns| scope.namespace(ns)).collect();
    let wanted = filter.trim().to_lowercase();
    let matching: Vec<String> =
        visible.iter().filter(|ns| ns.to_lowercase().contains(&wanted)).map(|ns| ns.to_string()).collect();
    let proxies = match state.changes.propagation().istiod() {
        Some(istiod) => Some(istiod.snapshots().await),
        None => None,
    };
    let last_changes = state.audit.last_changes_in(&matching).await.unwrap_or_default();
    let mut summaries: Vec<NamespaceSummary> = matching
        .iter()
        .map(|ns| {
            let proxies = proxies.as_ref().map(|all| all.as_ref().map(|by_namespace| by_namespace.get(ns)));
            summary(state, &scope, ns, proxies, last_changes.get(ns).copied().unwrap_or(0))
        })
        .collect();
    summaries.sort_by(|a, b| b.last_change_ms.cmp(&a.last_change_ms).then_with(|| a.name.cmp(&b.name)));
    (summaries, visible.len())
}

/// istiod's sidecars of one namespace: None without istiod, an error when it did not answer.
type ProxiesThere<'a> = Option<Result<Option<&'a Snapshot>, &'a IstiodUnreachable>>;

/// What the actor may view of `namespace`, counted.
fn summary(
    state: &AppState,
    scope: &ViewScope,
    namespace: &str,
    proxies: ProxiesThere<'_>,
    last_change_ms: i64,
) -> NamespaceSummary {
    let rows = service_rows_in(state, scope, namespace);
    let routed = rows.iter().filter(|row| !matches!(row.facts.service.routing, Routing::None)).count();
    let canaries = rows
        .iter()
        .filter(|row| {
            let live = state.reads.cached_routing(namespace, &row.facts.service.app);
            canary::current(&live).is_some_and(|canary| canary.is_active())
        })
        .count();
    let versions: Vec<_> = rows.iter().flat_map(|row| row.facts.service.versions.iter()).collect();
    let (proxies, syncing) = match proxies {
        Some(Ok(snapshot)) => {
            // Only the proxies of the services the actor may view.
            let visible = |name: &str| versions.iter().any(|version| runs_in_pod_of(name, &version.deployment));
            let ours: Vec<_> =
                snapshot.into_iter().flat_map(|s| s.values()).filter(|sync| visible(&sync.name)).collect();
            let synced = ours.iter().filter(|sync| sync.has_what_was_sent()).count();
            (Some(Proxies::Counted { synced, total: ours.len() }), synced < ours.len())
        }
        Some(Err(error)) => (Some(Proxies::Unavailable { unavailable: error.to_string() }), false),
        None => (None, false),
    };
    let health = if versions.is_empty() {
        "empty"
    } else if versions.iter().any(|version| version.ready < version.desired) {
        "progressing"
    } else if syncing {
        "syncing"
    } else {
        "ok"
    };
    let last_change = (last_change_ms > 0)
        .then(|| jiff::Timestamp::from_millisecond(last_change_ms).ok().map(|at| at.to_string()))
        .flatten();
    NamespaceSummary {
        name: namespace.to_owned(),
        services: rows.len(),
        routed_hosts: routed,
        canaries_in_progress: canaries,
        proxies,
        health,
        last_change,
        last_change_ms,
    }
}

impl NamespaceSummary {
    /// `4/4 proxies synced`, or nothing without istiod.
    pub fn proxies_in_words(&self) -> String {
        match &self.proxies {
            Some(Proxies::Counted { synced, total }) => format!("{synced}/{total} proxies synced"),
            Some(Proxies::Unavailable { .. }) => "istiod unavailable".to_owned(),
            None => String::new(),
        }
    }
}
