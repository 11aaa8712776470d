//! The analysis rules, each at its boundaries.
use super::*;

fn thresholds() -> Thresholds {
    Thresholds { min_success_percent: 99.0, max_p99_ms: 500.0, min_requests: 20, ..Thresholds::default() }
}

fn healthy() -> VersionTraffic {
    VersionTraffic {
        version: "v2".into(),
        share_percent: 10.0,
        requests_per_second: 1.0,
        success_percent: Some(100.0),
        p99_ms: Some(48.7),
        requests: 60,
    }
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).unwrap()
}

fn round(traffic: &VersionTraffic, healthy_since: Option<Timestamp>, now: Timestamp) -> Decision {
    decide(&thresholds(), Ok(Some(traffic)), healthy_since, now)
}

fn unreachable() -> TrafficError {
    TrafficError::Unreachable { url: "http://prometheus:9090".into(), reason: "Connection refused".into() }
}

#[test]
fn a_healthy_canary_waits_out_the_dwell_then_is_promoted() {
    let first = round(&healthy(), None, at(0));
    assert_eq!(first.healthy_since, Some(at(0)), "the healthy run starts now");
    assert!(matches!(&first.verdict, Verdict::Wait(r) if r.contains("healthy for 0 s of the 60 s dwell")), "{first:?}");

    let almost = round(&healthy(), first.healthy_since, at(59));
    assert!(matches!(almost.verdict, Verdict::Wait(_)), "59 s is not 60 s: {almost:?}");
    assert_eq!(almost.healthy_since, Some(at(0)), "the run continues");

    let exactly = round(&healthy(), almost.healthy_since, at(60));
    let Verdict::Promote(reason) = &exactly.verdict else { panic!("{exactly:?}") };
    assert_eq!(
        reason,
        "v2: every threshold held for 60 s (dwell 60 s; 60 requests, success rate 100.00%, p99 48.7 ms)"
    );
    assert_eq!(exactly.healthy_since, None, "the next step earns its own dwell");
}

#[test]
fn a_zero_dwell_promotes_on_the_first_healthy_round() {
    let t = Thresholds { dwell: Duration::ZERO, ..thresholds() };
    assert!(matches!(decide(&t, Ok(Some(&healthy())), None, at(0)).verdict, Verdict::Promote(_)));
}

#[test]
fn success_below_the_minimum_aborts_at_once_with_the_measured_value() {
    let failing = VersionTraffic { success_percent: Some(98.99), ..healthy() };
    let decision = round(&failing, Some(at(0)), at(600));
    assert_eq!(
        decision.verdict,
        Verdict::Abort(
            "v2: success rate 98.99% is below the minimum 99% (60 requests, success rate 98.99%, p99 48.7 ms)".into()
        )
    );
    assert_eq!(decision.healthy_since, None);
}

#[test]
fn thresholds_hold_at_their_boundaries() {
    let edge = VersionTraffic { success_percent: Some(99.0), p99_ms: Some(500.0), requests: 20, ..healthy() };
    let decision = round(&edge, Some(at(0)), at(60));
    assert!(matches!(decision.verdict, Verdict::Promote(_)), "{decision:?}");
}

#[test]
fn p99_above_the_maximum_aborts() {
    let slow = VersionTraffic { p99_ms: Some(500.1), ..healthy() };
    let Verdict::Abort(reason) = round(&slow, None, at(0)).verdict else { panic!() };
    assert!(reason.starts_with("v2: p99 latency 500.1 ms is above the maximum 500 ms ("), "{reason}");
    let beyond = VersionTraffic { p99_ms: Some(f64::INFINITY), ..healthy() };
    assert!(matches!(round(&beyond, None, at(0)).verdict, Verdict::Abort(_)));
}

#[test]
fn every_failed_threshold_is_named() {
    let broken = VersionTraffic { success_percent: Some(50.0), p99_ms: Some(900.0), ..healthy() };
    let Verdict::Abort(reason) = round(&broken, None, at(0)).verdict else { panic!() };
    assert!(reason.contains("success rate 50.00% is below the minimum 99%; p99 latency 900.0 ms is above"), "{reason}");
}

#[test]
fn too_few_requests_waits_even_when_failing_and_restarts_the_dwell() {
    let few = VersionTraffic { requests: 19, success_percent: Some(0.0), ..healthy() };
    let decision = round(&few, Some(at(0)), at(120));
    assert_eq!(
        decision.verdict,
        Verdict::Wait("v2: too few requests to judge, 20 needed (19 requests, success rate 0.00%, p99 48.7 ms)".into())
    );
    assert_eq!(decision.healthy_since, None);
}

#[test]
fn an_idle_or_absent_canary_waits() {
    let idle =
        VersionTraffic { requests: 0, requests_per_second: 0.0, success_percent: None, p99_ms: None, ..healthy() };
    assert!(matches!(round(&idle, None, at(0)).verdict, Verdict::Wait(r) if r.contains("success rate unknown")));
    let absent = decide(&thresholds(), Ok(None), Some(at(0)), at(600));
    assert_eq!(absent.verdict, Verdict::Wait("the canary has received no requests yet; 20 needed to judge".into()));
    assert_eq!(absent.healthy_since, None);
    // Even a (refused) threshold of 0 requests cannot judge a canary without requests.
    let zero = Thresholds { min_requests: 0, ..thresholds() };
    assert!(matches!(decide(&zero, Ok(Some(&idle)), None, at(0)).verdict, Verdict::Wait(_)));
}

#[test]
fn prometheus_unreachable_never_promotes_nor_aborts() {
    let error = unreachable();
    let decision = decide(&thresholds(), Err(&error), Some(at(0)), at(3600));
    assert_eq!(
        decision.verdict,
        Verdict::Wait(
            "no automatic step: Prometheus at http://prometheus:9090 is unreachable: Connection refused".into()
        )
    );
    assert_eq!(decision.healthy_since, None, "after an outage the dwell starts again");
    let bad = TrafficError::BadAnswer { url: "http://p".into(), reason: "HTTP 200, not Prometheus JSON".into() };
    assert!(matches!(decide(&thresholds(), Err(&bad), Some(at(0)), at(3600)).verdict, Verdict::Wait(_)));
}

#[test]
fn an_unknown_p99_with_enough_requests_waits() {
    let unknown = VersionTraffic { p99_ms: None, ..healthy() };
    let decision = round(&unknown, Some(at(0)), at(600));
    assert!(matches!(&decision.verdict, Verdict::Wait(r) if r.contains("p99 latency unknown")), "{decision:?}");
    assert_eq!(decision.healthy_since, None);
}

#[test]
fn an_interrupted_healthy_run_starts_over() {
    let started = round(&healthy(), None, at(0)).healthy_since;
    let failing_round = round(&healthy(), started, at(30));
    let outage = decide(&thresholds(), Err(&unreachable()), failing_round.healthy_since, at(40));
    let again = round(&healthy(), outage.healthy_since, at(50));
    assert_eq!(again.healthy_since, Some(at(50)));
    assert!(matches!(round(&healthy(), again.healthy_since, at(100)).verdict, Verdict::Wait(_)), "only 50 s held");
    assert!(matches!(round(&healthy(), again.healthy_since, at(110)).verdict, Verdict::Promote(_)));
}

#[test]
fn a_healthy_since_in_the_future_counts_from_now() {
    let decision = round(&healthy(), Some(at(1000)), at(0));
    assert_eq!(decision.healthy_since, Some(at(0)));
    assert!(matches!(decision.verdict, Verdict::Wait(_)));
}

#[test]
fn thresholds_are_checked_and_serialise_with_seconds() {
    assert!(Thresholds::default().problems().is_empty());
    let bad = Thresholds {
        min_success_percent: 101.0,
        max_p99_ms: f64::NAN,
        min_requests: 0,
        dwell: Duration::ZERO,
        window: Duration::ZERO,
    };
    let fields: Vec<_> = bad.problems().into_iter().map(|(field, _)| field).collect();
    assert_eq!(fields, ["minSuccessPercent", "maxP99Ms", "minRequests", "windowSeconds"]);
    let json = serde_json::to_value(thresholds()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"minSuccessPercent": 99.0, "maxP99Ms": 500.0, "minRequests": 20, "dwellSeconds": 60,
                           "windowSeconds": 60})
    );
    assert_eq!(serde_json::from_value::<Thresholds>(json).unwrap(), thresholds());
    // Omitted fields take the defaults; unknown ones are refused, not ignored.
    let partial: Thresholds = serde_json::from_value(serde_json::json!({"dwellSeconds": 5})).unwrap();
    assert_eq!(partial, Thresholds { dwell: Duration::from_secs(5), ..Thresholds::default() });
    assert!(serde_json::from_value::<Thresholds>(serde_json::json!({"dwell": 5})).is_err());
    let verdict = serde_json::to_value(Verdict::Abort("v2: …".into())).unwrap();
    assert_eq!(verdict, serde_json::json!({"verdict": "abort", "reason": "v2: …"}));
}

#[test]
fn a_step_is_judged_only_on_a_full_window_after_every_proxy_has_it() {
    let (bound, window) = (Duration::from_secs(60), Duration::from_secs(5));
    let reached = StepReach::Reached(at(10));
    let waiting = judged_from(&reached, at(0), at(14), bound, window).unwrap_err();
    assert!(waiting.reason().contains("a full 5 s window of its own metrics"), "{waiting:?}");
    assert_eq!(judged_from(&reached, at(0), at(15), bound, window), Ok(JudgedFrom { from: at(10), note: None }));

    let pending = StepReach::Pending("reached 3/5 proxies".into());
    let waiting = judged_from(&pending, at(0), at(59), bound, window).unwrap_err();
    assert!(waiting.reason().contains("has not reached every proxy (reached 3/5 proxies)"), "{waiting:?}");
    assert!(judged_from(&pending, at(0), at(64), bound, window).is_err(), "then a full window after the bound");
    let judged = judged_from(&pending, at(0), at(65), bound, window).unwrap();
    assert_eq!(judged.from, at(60));
    assert_eq!(judged.note.as_deref(), Some("not every proxy confirmed the step within 60 s (reached 3/5 proxies)"));
    let unknown = StepReach::Unknown("istiod is not configured".into());
    assert!(judged_from(&unknown, at(0), at(30), bound, window).is_err(), "not known is not reached");
}
