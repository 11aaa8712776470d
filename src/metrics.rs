//! Prometheus metrics: HTTP requests and latency by route, changes by action and outcome,
//! and the age of the watch caches.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DryRunLabels {
    /// `ran`, or `previewed` when an apply took the dry run of its preview.
    pub verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    pub action: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    changes: Family<ChangeLabels, Counter>,
    dry_runs: Family<DryRunLabels, Counter>,
    cache_age: Gauge<f64, AtomicU64>,
    watches: Gauge,
    managed_namespaces: Gauge,
}

/// What the caches report at each scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheFigures {
    /// Seconds since the last watch event (None before the first).
    pub age_seconds: Option<f64>,
    /// Watches held open on the API server.
    pub watches: usize,
    /// Namespaces managed now.
    pub managed_namespaces: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("signalbox");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let changes = Family::<ChangeLabels, Counter>::default();
        let dry_runs = Family::<DryRunLabels, Counter>::default();
        let cache_age = Gauge::<f64, AtomicU64>::default();
        registry.register("http_requests", "HTTP requests by method, route and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route", latency.clone());
        registry.register("changes", "Cluster changes by action and outcome", changes.clone());
        registry.register("change_dry_runs", "Dry runs of changes: ran, or taken from their preview", dry_runs.clone());
        registry.register("cache_age_seconds", "Seconds since the last watch event", cache_age.clone());
        let (watches, managed_namespaces) = (Gauge::default(), Gauge::default());
        registry.register("watches", "Watches held open on the API server", watches.clone());
        registry.register("managed_namespaces", "Namespaces managed now", managed_namespaces.clone());
        Self { registry, requests, latency, changes, dry_runs, cache_age, watches, managed_namespaces }
    }
}

/// The HTTP methods that are labels of their own; any other is `other`, so that a client
/// cannot add a series (and grow the exposition) per method name it makes up.
pub const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// The `method` label of a request's method: one of [`KNOWN_METHODS`], else `other`.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.into_iter().find(|known| *known == method).unwrap_or("other")
}

impl Metrics {
    /// A request that reached a route (`route` is its template, or `unmatched`).
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = RequestLabels { method: method_label(method).to_owned(), route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&RouteLabels { route: route.to_owned() }).observe(seconds);
    }

    /// A request refused for its method before any route saw it: counted once, under
    /// `method="other"`, with no latency series of its own.
    pub fn observe_refused_method(&self, status: u16) {
        let labels = RequestLabels { method: "other".into(), route: "unmatched".into(), status };
        self.requests.get_or_create(&labels).inc();
    }

    pub fn observe_change(&self, action: &str, outcome: &str) {
        let labels = ChangeLabels { action: action.to_owned(), outcome: outcome.to_owned() };
        self.changes.get_or_create(&labels).inc();
    }

    /// A change's dry run: `ran` against the API server, or `previewed` (its preview's).
    pub fn observe_dry_run(&self, verdict: &str) {
        self.dry_runs.get_or_create(&DryRunLabels { verdict: verdict.to_owned() }).inc();
    }

    /// The Prometheus text exposition, with the caches' figures as of now.
    pub fn render(&self, caches: CacheFigures) -> String {
        self.cache_age.set(caches.age_seconds.unwrap_or(f64::NAN));
        self.watches.set(caches.watches as i64);
        self.managed_namespaces.set(caches.managed_namespaces as i64);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_methods_are_labels_of_their_own() {
        let metrics = Metrics::default();
        for method in ["GET", "DELETE", "PATCH"] {
            assert_eq!(method_label(method), method);
        }
        let invented = "X".repeat(10_000);
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label("get"), "other", "methods are case-sensitive");
        metrics.observe_request(&invented, "/", 405, 0.001);
        metrics.observe_refused_method(405);
        let text = metrics.render(CacheFigures::default());
        assert!(!text.contains("XXXX"), "{text}");
        assert!(text.contains(r#"method="other""#), "{text}");
    }
}
