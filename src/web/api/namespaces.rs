//! `GET /api/v1/namespaces`: the managed namespaces the actor may view, each with what is in
//! it, from the watch caches (and istiod's sync status, when it is known).
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::authz::Actor;
use crate::change::canary;
use crate::inventory::runs_in_pod_of;
use crate::pictures::graph::Routing;
use crate::web::error::AppError;
use crate::web::identity::Identity;
use crate::web::pages::overview::service_rows;
use crate::web::state::AppState;

pub async fn list(State(state): State<AppState>, Identity(actor): Identity) -> Result<Json<Value>, AppError> {
    let scope = state.view_scope(&actor);
    let visible = state.managed_namespaces().iter().filter(|namespace| scope.namespace(namespace));
    let counted = visible.map(|namespace| counts(&state, &actor, namespace));
    Ok(Json(json!({"namespaces": futures::future::join_all(counted).await})))
}

/// The services the actor may view in `namespace`, how many are routed, how many run a
/// canary, and how many of their proxies have what istiod last sent them.
async fn counts(state: &AppState, actor: &Actor, namespace: &str) -> Value {
    let rows = service_rows(state, actor, namespace);
    let routed = rows.iter().filter(|row| !matches!(row.facts.service.routing, Routing::None)).count();
    let canaries = rows
        .iter()
        .filter(|row| {
            let live = state.reads.cached_routing(namespace, &row.facts.service.app);
            canary::current(&live).is_some_and(|canary| canary.is_active())
        })
        .count();
    let proxies = match state.changes.propagation().istiod() {
        Some(istiod) => match istiod.snapshot(namespace).await {
            Ok(snapshot) => {
                // Only the proxies of the services the actor may view.
                let deployments = rows.iter().flat_map(|row| row.facts.service.versions.iter().map(|v| &v.deployment));
                let deployments: Vec<&String> = deployments.collect();
                let visible = |name: &str| deployments.iter().any(|deployment| runs_in_pod_of(name, deployment));
                let ours: Vec<_> = snapshot.values().filter(|sync| visible(&sync.name)).collect();
                let synced = ours.iter().filter(|sync| sync.has_what_was_sent()).count();
                json!({"synced": synced, "total": ours.len()})
            }
            Err(error) => json!({"unavailable": error.to_string()}),
        },
        None => Value::Null,
    };
    json!({"name": namespace, "services": rows.len(), "routedHosts": routed, "canariesInProgress": canaries,
           "proxies": proxies})
}
