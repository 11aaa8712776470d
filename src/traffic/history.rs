//! A version's success rate and p99 latency over the last minutes, as the canary analysis
//! measures them (the same queries, evaluated at every step of a range).
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::prometheus::{Prometheus, RangeSeries, TrafficError};
use super::promql;

/// How many points a history has at most: enough for a small picture's shape.
const POINTS: u32 = 60;

/// `(unix seconds, value)` points of one version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionHistory {
    /// Success rate in percent, at the points where the version had requests.
    pub success_percent: Vec<(f64, f64)>,
    /// p99 latency in milliseconds, where it is known.
    pub p99_ms: Vec<(f64, f64)>,
}

impl Prometheus {
    /// `version` of `host` over the `span` until now, each point measured over `window` like
    /// the analysis does.
    pub async fn history(
        &self,
        namespace: &str,
        host: &str,
        version: &str,
        window: Duration,
        span: Duration,
    ) -> Result<VersionHistory, TrafficError> {
        let end = SystemTime::now();
        let start = end - span;
        let step = (span / POINTS).max(Duration::from_secs(1));
        let queries = [
            promql::request_rate(namespace, host, window),
            promql::server_error_rate(namespace, host, window),
            promql::p99_latency_ms(namespace, host, window),
        ];
        let (rates, errors, p99s) = tokio::try_join!(
            self.query_range(&queries[0], start, end, step),
            self.query_range(&queries[1], start, end, step),
            self.query_range(&queries[2], start, end, step),
        )?;
        Ok(assemble(version, &rates, &errors, &p99s))
    }
}

/// One version's points from the three answers (pure): success where it had requests
/// (no error series means no errors), p99 where it is a number.
pub fn assemble(version: &str, rates: &[RangeSeries], errors: &[RangeSeries], p99s: &[RangeSeries]) -> VersionHistory {
    let of = |series: &[RangeSeries]| -> Vec<(f64, f64)> {
        let found = series.iter().find(|s| s.labels.get(promql::VERSION_LABEL).map(String::as_str) == Some(version));
        found.map(|s| s.points.clone()).unwrap_or_default()
    };
    let errors: BTreeMap<u64, f64> = of(errors).into_iter().map(|(time, rate)| (time.to_bits(), rate)).collect();
    let success_percent = of(rates)
        .into_iter()
        .filter(|(_, rate)| rate.is_finite() && *rate > 0.0)
        .map(|(time, rate)| {
            let failed = errors.get(&time.to_bits()).copied().filter(|e| e.is_finite()).unwrap_or(0.0);
            (time, (100.0 * (1.0 - failed / rate)).clamp(0.0, 100.0))
        })
        .collect();
    let p99_ms = of(p99s).into_iter().filter(|(_, p99)| p99.is_finite()).collect();
    VersionHistory { success_percent, p99_ms }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(version: &str, points: &[(f64, f64)]) -> RangeSeries {
        RangeSeries { labels: [(promql::VERSION_LABEL.to_owned(), version.to_owned())].into(), points: points.to_vec() }
    }

    #[test]
    fn success_is_one_minus_errors_over_requests_where_there_were_requests() {
        let rates = [series("v2", &[(1.0, 10.0), (2.0, 0.0), (3.0, 10.0)]), series("v1", &[(1.0, 90.0)])];
        let errors = [series("v2", &[(3.0, 1.0)])];
        let p99s = [series("v2", &[(1.0, 48.0), (2.0, f64::NAN), (3.0, 52.0)])];
        let history = assemble("v2", &rates, &errors, &p99s);
        assert_eq!(history.success_percent, [(1.0, 100.0), (3.0, 90.0)]);
        assert_eq!(history.p99_ms, [(1.0, 48.0), (3.0, 52.0)]);
        assert_eq!(assemble("v3", &rates, &errors, &p99s), VersionHistory::default());
    }
}
