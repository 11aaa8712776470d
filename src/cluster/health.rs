//! Tracks whether the API server answers, so pages can say since when it does not.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::Client;

const PROBE_INTERVAL: Duration = Duration::from_secs(1);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct Health {
    unreachable_since: Arc<Mutex<Option<Timestamp>>>,
}

impl Health {
    /// Probes the API server every second in the background.
    pub fn start(client: Client) -> Self {
        let health = Health::default();
        let probe = health.clone();
        tokio::spawn(async move {
            loop {
                let answered =
                    matches!(tokio::time::timeout(PROBE_TIMEOUT, client.apiserver_version()).await, Ok(Ok(_)));
                probe.observe(answered);
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        });
        health
    }

    fn observe(&self, answered: bool) {
        let mut since = self.unreachable_since.lock().unwrap_or_else(|e| e.into_inner());
        match (answered, since.is_some()) {
            (true, true) => {
                tracing::info!("Kubernetes API server reachable again");
                *since = None;
            }
            (false, false) => {
                tracing::warn!("Kubernetes API server unreachable");
                *since = Some(Timestamp::now());
            }
            _ => {}
        }
    }

    /// When the API server stopped answering, or None while it answers.
    pub fn unreachable_since(&self) -> Option<Timestamp> {
        *self.unreachable_since.lock().unwrap_or_else(|e| e.into_inner())
    }
}
