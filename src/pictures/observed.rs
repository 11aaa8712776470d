//! Observed traffic per edge of the service graph, from Istio's request counter as the
//! destination sidecars report it (`istio_requests_total` by source workload and
//! destination service and version).
use std::collections::BTreeMap;

use crate::istio::Sample;

/// Requests and failed (5xx) requests per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    pub requests: f64,
    pub errors: f64,
}

impl Rate {
    /// `4.2/s`, or `4.2/s, 5% err` when some failed.
    pub fn label(&self) -> String {
        let requests = format!("{:.1}/s", self.requests);
        if self.errors > 0.0 && self.requests > 0.0 {
            let percent = (self.errors / self.requests * 100.0).round();
            format!("{requests}, {percent}% err")
        } else {
            requests
        }
    }

    fn add(&mut self, other: Rate) {
        self.requests += other.requests;
        self.errors += other.errors;
    }
}

/// Observed rates keyed by (source workload, destination service, destination version).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    edges: BTreeMap<(String, String, String), Rate>,
}

impl Observed {
    /// From the answers of [`crate::traffic::promql::edge_request_rate`] and
    /// [`crate::traffic::promql::edge_error_rate`] at the same instant. Samples without a
    /// finite value (no requests in the window) count as none.
    pub fn from_samples(requests: &[Sample], errors: &[Sample]) -> Observed {
        let mut observed = Observed::default();
        for (samples, is_error) in [(requests, false), (errors, true)] {
            for sample in samples.iter().filter(|s| s.value.is_finite()) {
                let label = |name: &str| sample.labels.get(name).cloned().unwrap_or_default();
                let key = (label("source_workload"), label("destination_service_name"), label("destination_version"));
                let rate = if is_error {
                    Rate { requests: 0.0, errors: sample.value }
                } else {
                    Rate { requests: sample.value, errors: 0.0 }
                };
                observed.edges.entry(key).or_default().add(rate);
            }
        }
        observed
    }

    /// Everything that reached `version` of `service`, from any source.
    pub fn to_version(&self, service: &str, version: &str) -> Rate {
        self.sum(|(_, s, v)| s == service && v == version)
    }

    /// What `source_workload` (a Deployment) sent to `service`, over all its versions.
    pub fn call(&self, source_workload: &str, service: &str) -> Rate {
        self.sum(|(source, s, _)| source == source_workload && s == service)
    }

    fn sum(&self, keep: impl Fn(&(String, String, String)) -> bool) -> Rate {
        let mut total = Rate::default();
        self.edges.iter().filter(|(key, _)| keep(key)).for_each(|(_, rate)| total.add(*rate));
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(source: &str, service: &str, version: &str, value: f64) -> Sample {
        let labels =
            [("source_workload", source), ("destination_service_name", service), ("destination_version", version)];
        Sample { labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
    }

    #[test]
    fn rates_sum_per_version_and_per_call() {
        let requests = [
            sample("preference-v1", "recommendation", "v1", 9.0),
            sample("preference-v1", "recommendation", "v2", 1.0),
            sample("unknown", "recommendation", "v2", 2.0),
            sample("customer", "preference", "v1", f64::NAN),
        ];
        let errors = [sample("preference-v1", "recommendation", "v2", 0.5)];
        let observed = Observed::from_samples(&requests, &errors);
        assert_eq!(observed.to_version("recommendation", "v2"), Rate { requests: 3.0, errors: 0.5 });
        assert_eq!(observed.call("preference-v1", "recommendation"), Rate { requests: 10.0, errors: 0.5 });
        assert_eq!(observed.call("customer", "preference"), Rate::default(), "NaN is no traffic");
        assert_eq!(observed.to_version("recommendation", "v2").label(), "3.0/s, 17% err");
        assert_eq!(observed.to_version("recommendation", "v1").label(), "9.0/s");
        assert_eq!(Rate::default().label(), "0.0/s");
    }
}
