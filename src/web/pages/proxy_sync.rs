//! "Reaching proxies: 9/12 … reached 12/12 in 0.4 s": the panel the routing and canary
//! pages show after a change, re-polled by htmx until every proxy has it or rejected it.
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::propagation::{ProxyReport, SyncView};

use super::render;
use crate::web::error::AppError;
use crate::web::extract::ManagedHost;
use crate::web::state::AppState;

/// The panel's data: the host's last change on its way to the proxies.
#[derive(Clone)]
pub struct SyncPanel {
    pub view: SyncView,
    /// Where htmx reads the panel again while it is not settled.
    pub url: String,
}

impl SyncPanel {
    pub async fn read(state: &AppState, namespace: &str, host: &str) -> Self {
        let view = state.changes.propagation().status(namespace, host).await;
        Self { view, url: format!("/ns/{namespace}/routes/{host}/sync") }
    }

    /// `synced`, `stale`, `not-sent` or `error`, for the proxy's line and its style.
    pub fn state_of(&self, proxy: &ProxyReport) -> &'static str {
        proxy.state().as_str()
    }

    /// The panel's tone: done, on its way, or a proxy rejected the change / no answer.
    pub fn tone(&self) -> &'static str {
        let view = &self.view;
        if view.unavailable.is_some() || view.report.proxies.iter().any(|p| p.error.is_some()) {
            "warn"
        } else if view.report.complete() {
            "ok"
        } else {
            "pending"
        }
    }
}

#[derive(Template)]
#[template(path = "partials/proxy_sync.html")]
struct SyncPartial {
    sync: SyncPanel,
}

/// `GET /ns/{ns}/routes/{host}/sync`: the panel alone (htmx polls it).
pub async fn partial(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Response, AppError> {
    render(&SyncPartial { sync: SyncPanel::read(&state, &namespace, &host).await })
}
