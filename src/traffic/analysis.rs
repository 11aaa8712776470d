//! Canary analysis as a pure decision: given the canary version's measured traffic, the
//! thresholds and how long it has been healthy, promote, abort or wait. No I/O and no clock:
//! the caller passes `now` and keeps `healthy_since` between rounds (see [`decide`]).
//!
//! The rules, in order:
//! 1. No numbers (Prometheus unreachable or answering nonsense): **wait**. An outage never
//!    promotes, and never aborts either — a monitoring failure is not a canary failure.
//! 2. Fewer requests than `min_requests` in the window: **wait** — too few to judge.
//! 3. Success rate below the minimum or p99 above the maximum: **abort**, at once.
//! 4. Otherwise healthy: **promote** once every threshold has held for the dwell time
//!    without interruption, else **wait**.
//!
//! Every round that is not healthy (1, 2, or an unknown p99) restarts the dwell, because
//! "held for the dwell time" must be shown, not assumed. Reasons carry the measured values:
//! they become the audit log's summary of an automatic transition.
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

pub use crate::policy::Thresholds;

use super::prometheus::TrafficError;
use super::report::VersionTraffic;

/// What to do with the canary now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    /// Every threshold held for the dwell time: go to the next step.
    Promote(String),
    /// A threshold failed with enough requests to judge: send all traffic back to stable.
    Abort(String),
    /// Not yet, or cannot tell.
    Wait(String),
}

impl Verdict {
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Promote(reason) | Verdict::Abort(reason) | Verdict::Wait(reason) => reason,
        }
    }
}

/// A verdict and the `healthy_since` to pass to the next round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// When the canary's current healthy run began; `None` when this round was not healthy,
    /// and after a promotion (the next step earns its own dwell).
    pub healthy_since: Option<Timestamp>,
}

/// Decides one analysis round for the canary version.
///
/// `canary` is the canary version's traffic from [`super::TrafficReport::version`] (`None`:
/// it received no request yet), or why there are no numbers:
/// `observed.as_ref().map(|report| report.version("v2"))`. `healthy_since` is the previous
/// round's [`Decision::healthy_since`] (`None` at the start of a step).
pub fn decide(
    thresholds: &Thresholds,
    canary: Result<Option<&VersionTraffic>, &TrafficError>,
    healthy_since: Option<Timestamp>,
    now: Timestamp,
) -> Decision {
    let unhealthy = |verdict| Decision { verdict, healthy_since: None };
    let traffic = match canary {
        Err(error) => return unhealthy(Verdict::Wait(format!("no automatic step: {error}"))),
        Ok(None) => {
            return unhealthy(Verdict::Wait(format!(
                "the canary has received no requests yet; {} needed to judge",
                thresholds.min_requests
            )));
        }
        Ok(Some(traffic)) => traffic,
    };
    let measured = measured(traffic);
    if traffic.requests < thresholds.min_requests || traffic.success_percent.is_none() {
        return unhealthy(Verdict::Wait(format!(
            "{}: too few requests to judge, {} needed ({measured})",
            traffic.version, thresholds.min_requests
        )));
    }
    let failures = failures(thresholds, traffic);
    if !failures.is_empty() {
        return unhealthy(Verdict::Abort(format!("{}: {} ({measured})", traffic.version, failures.join("; "))));
    }
    if traffic.p99_ms.is_none() {
        return unhealthy(Verdict::Wait(format!("{}: p99 latency unknown ({measured})", traffic.version)));
    }
    // A healthy_since in the future (a clock step back) counts from now.
    let since = healthy_since.filter(|since| *since <= now).unwrap_or(now);
    let held = Duration::from_millis(u64::try_from(now.as_millisecond() - since.as_millisecond()).unwrap_or(0));
    let dwell = thresholds.dwell.as_secs();
    if held >= thresholds.dwell {
        let reason =
            format!("{}: every threshold held for {} s (dwell {dwell} s; {measured})", traffic.version, held.as_secs());
        Decision { verdict: Verdict::Promote(reason), healthy_since: None }
    } else {
        let reason =
            format!("{}: healthy for {} s of the {dwell} s dwell ({measured})", traffic.version, held.as_secs());
        Decision { verdict: Verdict::Wait(reason), healthy_since: Some(since) }
    }
}

/// Whether the proxies have a canary's current step, as far as signalbox knows.
#[derive(Clone, Debug, PartialEq)]
pub enum StepReach {
    /// Every proxy of the host had it at this time.
    Reached(Timestamp),
    /// Not every proxy has it yet, in words: `reached 3/5 proxies`.
    Pending(String),
    /// Not known, and why (no istiod; a change signalbox did not follow).
    Unknown(String),
}

/// From when a step's own metrics may judge it, and what the verdict should add.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgedFrom {
    /// When the step took effect: every proxy had it, or the wait for them ran out.
    pub from: Timestamp,
    /// Said in the verdict when the proxies did not all confirm the step.
    pub note: Option<String>,
}

/// Whether the step may be judged now, and from when: only once every proxy has it (or
/// `bound` after the step was first seen, saying so), and only on a full `window` of
/// metrics after that — never on metrics that describe the previous weights. A wait is
/// `Err` with its reason.
pub fn judged_from(
    reach: &StepReach,
    step_seen: Timestamp,
    now: Timestamp,
    bound: Duration,
    window: Duration,
) -> Result<JudgedFrom, Verdict> {
    let after = |at: Timestamp, span: Duration| at.checked_add(span).unwrap_or(at);
    let judged = match reach {
        StepReach::Reached(at) => JudgedFrom { from: *at, note: None },
        StepReach::Pending(progress) | StepReach::Unknown(progress) => {
            let given_up = after(step_seen, bound);
            if now < given_up {
                return Err(Verdict::Wait(format!(
                    "the step has not reached every proxy ({progress}); its metrics would describe the previous \
                     weights, so it waits for them (at most {} s)",
                    bound.as_secs()
                )));
            }
            let note = format!("not every proxy confirmed the step within {} s ({progress})", bound.as_secs());
            JudgedFrom { from: given_up, note: Some(note) }
        }
    };
    let full_window = after(judged.from, window);
    if now < full_window {
        return Err(Verdict::Wait(format!(
            "the step took effect at {}; judging needs a full {} s window of its own metrics, from {full_window}",
            judged.from,
            window.as_secs()
        )));
    }
    Ok(judged)
}

/// The thresholds the traffic breaks, each with the measured value and the limit.
/// A threshold holds at its boundary: exactly 99% success with a 99% minimum passes.
fn failures(thresholds: &Thresholds, traffic: &VersionTraffic) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(success) = traffic.success_percent.filter(|s| *s < thresholds.min_success_percent) {
        failures.push(format!(
            "success rate {} is below the minimum {}%",
            percent(success),
            thresholds.min_success_percent
        ));
    }
    if let Some(p99) = traffic.p99_ms.filter(|p| *p > thresholds.max_p99_ms) {
        failures.push(format!("p99 latency {} is above the maximum {} ms", millis(p99), thresholds.max_p99_ms));
    }
    failures
}

/// The measured values, for every reason: "120 requests in 60 s, success rate 97.50%, p99 48.8 ms".
fn measured(traffic: &VersionTraffic) -> String {
    let success = traffic.success_percent.map_or("unknown".to_owned(), percent);
    let p99 = traffic.p99_ms.map_or("unknown".to_owned(), millis);
    format!("{} requests, success rate {success}, p99 {p99}", traffic.requests)
}

/// Two decimals, so that a value just under a whole-number minimum does not print as equal to it.
fn percent(value: f64) -> String {
    format!("{value:.2}%")
}

fn millis(value: f64) -> String {
    if value.is_finite() { format!("{value:.1} ms") } else { "beyond the largest histogram bucket".to_owned() }
}

#[cfg(test)]
mod tests;
