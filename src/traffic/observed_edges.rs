//! The service graph's observed rates per namespace, kept for a few seconds and refreshed in
//! the background, so the overview (polled every second) never waits for Prometheus.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Prometheus, TrafficError, promql};
use crate::pictures::observed::Observed;

/// How long a namespace's rates are shown before they are asked for again.
const FRESH_FOR: Duration = Duration::from_secs(5);
/// The window rates are averaged over, as on the canary page.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entry {
    rates: Option<Observed>,
    fetched: Option<Instant>,
    refreshing: bool,
}

pub struct ObservedEdges {
    prometheus: Arc<Prometheus>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl ObservedEdges {
    pub fn new(prometheus: Arc<Prometheus>) -> Arc<Self> {
        Arc::new(ObservedEdges { prometheus, entries: Mutex::default() })
    }

    /// The namespace's last observed rates, without waiting: when they are older than
    /// [`FRESH_FOR`] (or were never read) a background task asks Prometheus again. `None`
    /// until the first answer, and while Prometheus cannot answer.
    pub fn get(self: &Arc<Self>, namespace: &str) -> Option<Observed> {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.entry(namespace.to_owned()).or_default();
        let stale = entry.fetched.is_none_or(|at| at.elapsed() > FRESH_FOR);
        if stale && !entry.refreshing {
            entry.refreshing = true;
            let (this, namespace) = (self.clone(), namespace.to_owned());
            tokio::spawn(async move { this.refresh(&namespace).await });
        }
        entry.rates.clone()
    }

    async fn refresh(&self, namespace: &str) {
        let rates = fetch(&self.prometheus, namespace).await;
        if let Err(error) = &rates {
            tracing::debug!(%namespace, %error, "no observed rates for the service graph");
        }
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = entries.entry(namespace.to_owned()).or_default();
        *entry = Entry { rates: rates.ok(), fetched: Some(Instant::now()), refreshing: false };
    }
}

/// Both queries at the same instant, so they see the same scrapes.
async fn fetch(prometheus: &Prometheus, namespace: &str) -> Result<Observed, TrafficError> {
    let now = SystemTime::now();
    let (requests, errors) = (promql::edge_request_rate(namespace, WINDOW), promql::edge_error_rate(namespace, WINDOW));
    let (requests, errors) = tokio::try_join!(prometheus.query_at(&requests, now), prometheus.query_at(&errors, now))?;
    Ok(Observed::from_samples(&requests, &errors))
}
