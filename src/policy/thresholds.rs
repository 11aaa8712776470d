//! When a canary step counts as healthy: the thresholds a canary's analysis judges by, as
//! a value (the analysis itself, which reads Prometheus, is `traffic`'s).
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// When a canary step counts as healthy. Omitted fields take the [`Default`] values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest acceptable share of non-5xx responses, in percent (e.g. 99).
    pub min_success_percent: f64,
    /// Highest acceptable 99th percentile latency, in milliseconds.
    pub max_p99_ms: f64,
    /// Requests the canary must have received in the window before it is judged at all.
    pub min_requests: u64,
    /// How long every threshold must hold on one step before the next step.
    #[serde(rename = "dwellSeconds", with = "seconds")]
    pub dwell: Duration,
    /// The span of traffic each round judges (Prometheus `rate(...[window])`).
    #[serde(rename = "windowSeconds", with = "seconds")]
    pub window: Duration,
}

impl Default for Thresholds {
    /// 99% success, p99 ≤ 500 ms, 20 requests, 60 s per step over a one-minute window:
    /// strict enough to catch a broken version, low enough in requests for the tutorial's
    /// modest traffic at 10%.
    fn default() -> Self {
        Thresholds {
            min_success_percent: 99.0,
            max_p99_ms: 500.0,
            min_requests: 20,
            dwell: Duration::from_secs(60),
            window: Duration::from_secs(60),
        }
    }
}

impl Thresholds {
    /// What is wrong with these thresholds, as (field, message) pairs; empty when usable.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..=100.0).contains(&self.min_success_percent) {
            problems.push(("minSuccessPercent", "must be a percentage from 0 to 100".to_owned()));
        }
        if !(self.max_p99_ms.is_finite() && self.max_p99_ms > 0.0) {
            problems.push(("maxP99Ms", "must be a positive number of milliseconds".to_owned()));
        }
        if self.min_requests == 0 {
            problems.push(("minRequests", "must be at least 1: a canary without requests cannot be judged".to_owned()));
        }
        if self.window < Duration::from_secs(1) || self.window > Duration::from_secs(24 * 3600) {
            problems.push(("windowSeconds", "must be from 1 second to 1 day".to_owned()));
        }
        if self.dwell > Duration::from_secs(7 * 24 * 3600) {
            problems.push(("dwellSeconds", "must be at most a week".to_owned()));
        }
        problems
    }
}

/// `Duration` as whole seconds in JSON (`"dwellSeconds": 60`).
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}
