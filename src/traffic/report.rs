//! What traffic a host's versions actually got over a window: shares, rates, success and
//! latency per `destination_version`, assembled from three PromQL answers.
//!
//! **Versions without traffic.** Istio creates a version's series at its first request, so
//! a version that never received one is *absent* from the report (look it up with
//! [`TrafficReport::version`], which answers `None`). A version that received requests
//! before the window but none in it is *present with zeros*: share, rate and requests are
//! 0, and success rate and p99 are `None` (there is nothing to measure, and 0% or 0 ms
//! would be false).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::prometheus::{Prometheus, Sample, TrafficError};
use super::promql;

/// One version's traffic over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionTraffic {
    /// The `destination_version` label (the pods' `version` label), e.g. `v2`.
    pub version: String,
    /// This version's percentage of the host's requests (0–100).
    pub share_percent: f64,
    pub requests_per_second: f64,
    /// Percentage of requests answered without a 5xx; `None` without requests.
    pub success_percent: Option<f64>,
    /// 99th percentile latency in milliseconds; `None` without requests. May be `+Inf` when
    /// it lies beyond the histogram's last finite bucket (serialised as `null`).
    pub p99_ms: Option<f64>,
    /// Requests in the window (rate × window, rounded: Prometheus extrapolates to the
    /// window's edges, so this is an estimate, not an exact count).
    pub requests: u64,
}

/// Per-version traffic of one host, sorted by version.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficReport {
    pub namespace: String,
    pub host: String,
    #[serde(rename = "windowSeconds", serialize_with = "as_seconds")]
    pub window: Duration,
    pub versions: Vec<VersionTraffic>,
}

impl TrafficReport {
    /// The version labelled `version`, if it ever received a request.
    pub fn version(&self, version: &str) -> Option<&VersionTraffic> {
        self.versions.iter().find(|traffic| traffic.version == version)
    }

    /// Requests per second to the host, all versions together.
    pub fn total_requests_per_second(&self) -> f64 {
        self.versions.iter().map(|traffic| traffic.requests_per_second).sum()
    }
}

impl Prometheus {
    /// What `host` in `namespace` received per version over the last `window` (Istio's
    /// destination-side metrics; see [`promql`] for the queries). The three queries run
    /// concurrently, evaluated at the same instant, each bounded by the client's timeout.
    pub async fn observe(&self, namespace: &str, host: &str, window: Duration) -> Result<TrafficReport, TrafficError> {
        let now = SystemTime::now();
        let queries = [
            promql::request_rate(namespace, host, window),
            promql::server_error_rate(namespace, host, window),
            promql::p99_latency_ms(namespace, host, window),
        ];
        let (rates, errors, p99s) = tokio::try_join!(
            self.query_at(&queries[0], now),
            self.query_at(&queries[1], now),
            self.query_at(&queries[2], now),
        )?;
        Ok(assemble(namespace, host, window, &rates, &errors, &p99s))
    }
}

/// The report from the three answers (pure, so that every odd answer can be tested).
pub fn assemble(
    namespace: &str,
    host: &str,
    window: Duration,
    rates: &[Sample],
    errors: &[Sample],
    p99s: &[Sample],
) -> TrafficReport {
    let rates = by_version(rates);
    let errors = by_version(errors);
    let p99s = by_version(p99s);
    // Rates are never negative or NaN in a sane answer; if one is, it counts as no traffic
    // rather than poisoning every share.
    let rates: BTreeMap<&str, f64> =
        rates.into_iter().map(|(v, r)| (v, if r.is_finite() && r > 0.0 { r } else { 0.0 })).collect();
    let total: f64 = rates.values().sum();
    let versions = rates
        .iter()
        .map(|(&version, &rate)| {
            let failed = errors.get(version).copied().filter(|e| e.is_finite() && *e > 0.0).unwrap_or(0.0);
            let success_percent = (rate > 0.0).then(|| (100.0 * (1.0 - failed / rate)).clamp(0.0, 100.0));
            let p99_ms = p99s.get(version).copied().filter(|p| rate > 0.0 && !p.is_nan() && *p >= 0.0);
            VersionTraffic {
                version: version.to_owned(),
                share_percent: if total > 0.0 { 100.0 * rate / total } else { 0.0 },
                requests_per_second: rate,
                success_percent,
                p99_ms,
                // `as` saturates; the value is finite and non-negative here anyway.
                requests: (rate * window.as_secs_f64()).round() as u64,
            }
        })
        .collect();
    TrafficReport { namespace: namespace.to_owned(), host: host.to_owned(), window, versions }
}

/// Values keyed by `destination_version`. Istio writes `unknown` when it cannot tell; a
/// missing label is treated the same. Duplicate versions cannot come from `sum by`, but if
/// they did, they are added up.
fn by_version(samples: &[Sample]) -> BTreeMap<&str, f64> {
    let mut values = BTreeMap::new();
    for sample in samples {
        let version = sample.labels.get(promql::VERSION_LABEL).map_or("unknown", String::as_str);
        *values.entry(version).or_insert(0.0) += sample.value;
    }
    values
}

fn as_seconds<S: serde::Serializer>(window: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(window.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn samples(values: &[(&str, f64)]) -> Vec<Sample> {
        values
            .iter()
            .map(|(version, value)| Sample {
                labels: [("destination_version".to_string(), version.to_string())].into_iter().collect(),
                value: *value,
            })
            .collect()
    }

    fn report(rates: &[(&str, f64)], errors: &[(&str, f64)], p99s: &[(&str, f64)]) -> TrafficReport {
        assemble("tutorial", "recommendation", WINDOW, &samples(rates), &samples(errors), &samples(p99s))
    }

    #[test]
    fn a_90_10_split_with_errors_on_the_canary() {
        let report = report(&[("v1", 9.0), ("v2", 1.0)], &[("v2", 0.25)], &[("v1", 48.5), ("v2", 120.0)]);
        let v1 = report.version("v1").unwrap();
        assert_eq!((v1.share_percent, v1.requests_per_second, v1.success_percent), (90.0, 9.0, Some(100.0)));
        assert_eq!((v1.p99_ms, v1.requests), (Some(48.5), 540));
        let v2 = report.version("v2").unwrap();
        assert_eq!((v2.share_percent, v2.success_percent, v2.p99_ms, v2.requests), (10.0, Some(75.0), Some(120.0), 60));
        assert_eq!(report.total_requests_per_second(), 10.0);
        assert_eq!(report.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["v1", "v2"]);
    }

    #[test]
    fn a_version_that_never_got_a_request_is_absent() {
        let report = report(&[("v1", 5.0)], &[], &[("v1", 10.0)]);
        assert_eq!(report.version("v2"), None);
        assert_eq!(report.version("v1").unwrap().share_percent, 100.0);
    }

    #[test]
    fn a_version_idle_in_the_window_has_zeros_and_no_success_or_latency() {
        let report = report(&[("v1", 5.0), ("v2", 0.0)], &[("v2", 0.0)], &[("v1", 10.0), ("v2", f64::NAN)]);
        let v2 = report.version("v2").unwrap();
        assert_eq!((v2.share_percent, v2.requests_per_second, v2.requests), (0.0, 0.0, 0));
        assert_eq!((v2.success_percent, v2.p99_ms), (None, None));
    }

    #[test]
    fn no_traffic_at_all_gives_zero_shares_not_nan() {
        let idle = report(&[("v1", 0.0), ("v2", 0.0)], &[], &[]);
        assert!(idle.versions.iter().all(|v| v.share_percent == 0.0));
        assert_eq!(idle.total_requests_per_second(), 0.0);
        assert!(report(&[], &[], &[]).versions.is_empty());
    }

    #[test]
    fn odd_values_are_contained() {
        // More errors than requests (answers from different scrapes), NaN and negative rates,
        // an infinite p99 and a version label missing.
        let odd = report(&[("v1", 2.0), ("v2", f64::NAN), ("v3", -1.0)], &[("v1", 3.0)], &[("v1", f64::INFINITY)]);
        let v1 = odd.version("v1").unwrap();
        assert_eq!((v1.success_percent, v1.p99_ms, v1.share_percent), (Some(0.0), Some(f64::INFINITY), 100.0));
        assert_eq!(odd.version("v2").unwrap().requests_per_second, 0.0);
        assert_eq!(odd.version("v3").unwrap().requests, 0);
        let unlabelled = [Sample { labels: BTreeMap::new(), value: 1.0 }];
        let report = assemble("ns", "h", WINDOW, &unlabelled, &[], &[]);
        assert_eq!(report.versions[0].version, "unknown");
    }

    #[test]
    fn the_report_serialises_for_the_page_and_api() {
        let json = serde_json::to_value(report(&[("v1", 1.0)], &[], &[("v1", 5.0)])).unwrap();
        assert_eq!(json["windowSeconds"], 60);
        assert_eq!(json["versions"][0]["sharePercent"], 100.0);
        assert_eq!(json["versions"][0]["p99Ms"], 5.0);
        assert_eq!(json["versions"][0]["successPercent"], 100.0);
    }
}
