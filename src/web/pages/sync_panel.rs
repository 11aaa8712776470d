//! The data of the panel the routing and canary pages show after a change ("reaching
//! proxies: 9/12 … reached 12/12 in 0.4 s"); `proxy_sync` reads it and serves it alone.
use crate::propagation::{ProxyReport, SyncView};

/// The panel's data: the host's last change on its way to the proxies.
#[derive(Clone)]
pub struct SyncPanel {
    pub view: SyncView,
    /// Where htmx reads the panel again while it is not settled.
    pub url: String,
}

impl SyncPanel {
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
