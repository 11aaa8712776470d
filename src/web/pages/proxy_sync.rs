//! "Reaching proxies: 9/12 … reached 12/12 in 0.4 s": the panel the routing and canary
//! pages show after a change, re-polled by htmx until every proxy has it or rejected it.
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::render;
pub use super::sync_panel::SyncPanel;
use crate::authz::Actor;
use crate::web::error::AppError;
use crate::web::extract::ManagedHost;
use crate::web::identity::Identity;
use crate::web::state::AppState;

/// The host's last change on its way to the proxies, as istiod says now and `actor` may see.
pub async fn panel(state: &AppState, actor: &Actor, namespace: &str, host: &str) -> SyncPanel {
    let view = state.sync_for(actor, namespace, state.changes.propagation().status(namespace, host).await);
    SyncPanel { view, url: format!("/ns/{namespace}/routes/{host}/sync") }
}

#[derive(Template)]
#[template(path = "partials/proxy_sync.html")]
struct SyncPartial {
    sync: SyncPanel,
}

/// `GET /ns/{ns}/routes/{host}/sync`: the panel alone (htmx polls it).
pub async fn partial(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Response, AppError> {
    render(&SyncPartial { sync: panel(&state, &actor, &namespace, &host).await })
}
