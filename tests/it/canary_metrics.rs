//! Canary metrics against a real Prometheus scraping a test exporter of Istio's metrics:
//! observed shares, rates, success and latency per version, and the analysis verdicts on them.
use crate::support;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use regex::Regex;
use serde_json::{Value, json};
use signalbox::traffic::{Prometheus, Thresholds, TrafficError, TrafficReport, Verdict, decide};
use support::console::Console;
use support::prometheus::{Exporter, PrometheusServer, Traffic};

const NAMESPACE: &str = "tutorial";
const HOST: &str = "recommendation";
/// Short, so that a change of traffic shows within seconds (Prometheus scrapes every second).
const WINDOW: Duration = Duration::from_secs(5);

/// The tutorial's 90/10 split: v1 at 90 req/s in 40 ms, v2 at 10 req/s in 80 ms, no errors.
async fn ninety_ten() -> (Exporter, PrometheusServer, Prometheus) {
    let exporter = Exporter::start(NAMESPACE, HOST).await;
    exporter.set("v1", Traffic::healthy(90.0, 40.0));
    exporter.set("v2", Traffic::healthy(10.0, 80.0));
    let server = PrometheusServer::start(exporter.addr).await;
    let prometheus = Prometheus::new(&server.url).unwrap();
    (exporter, server, prometheus)
}

/// Observes until `done` holds (Prometheus needs a few scrapes for a rate), or fails with
/// the last report after `limit`.
async fn observe_until(
    prometheus: &Prometheus,
    limit: Duration,
    done: impl Fn(&TrafficReport) -> bool,
) -> TrafficReport {
    let deadline = Instant::now() + limit;
    loop {
        let report = prometheus.observe(NAMESPACE, HOST, WINDOW).await.expect("observe");
        if done(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "not reached within {limit:?}; last report: {report:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn near(value: f64, expected: f64, tolerance: f64) -> bool {
    (value - expected).abs() <= tolerance
}

fn split_is_90_10(report: &TrafficReport) -> bool {
    let share = |version| report.version(version).map_or(-1.0, |v| v.share_percent);
    near(share("v1"), 90.0, 3.0)
        && near(share("v2"), 10.0, 3.0)
        && near(report.total_requests_per_second(), 100.0, 15.0)
}

#[tokio::test]
async fn observed_split_rates_success_and_p99_match_the_exporter() {
    let (_exporter, _server, prometheus) = ninety_ten().await;
    let report = observe_until(&prometheus, Duration::from_secs(20), split_is_90_10).await;

    let v1 = report.version("v1").unwrap();
    let v2 = report.version("v2").unwrap();
    assert!(near(v1.requests_per_second, 90.0, 13.5), "{v1:?}");
    assert!(near(v2.requests_per_second, 10.0, 1.5), "{v2:?}");
    assert_eq!((v1.success_percent, v2.success_percent), (Some(100.0), Some(100.0)));
    // histogram_quantile interpolates inside the bucket the latency falls into: 40 ms is in
    // Istio's (25, 50] bucket, 80 ms in (50, 100].
    let (p99_v1, p99_v2) = (v1.p99_ms.unwrap(), v2.p99_ms.unwrap());
    assert!(p99_v1 > 25.0 && p99_v1 <= 50.0, "{v1:?}");
    assert!(p99_v2 > 50.0 && p99_v2 <= 100.0, "{v2:?}");
    // Requests in the window: rate × 5 s.
    assert!(near(v1.requests as f64, 450.0, 70.0), "{v1:?}");
    assert!(near(v2.requests as f64, 50.0, 8.0), "{v2:?}");
    assert_eq!(report.version("v3"), None, "a version without requests is absent");
}

#[tokio::test]
async fn failing_canary_lowers_its_success_rate_and_is_aborted_with_the_measured_value() {
    let (exporter, _server, prometheus) = ninety_ten().await;
    observe_until(&prometheus, Duration::from_secs(20), split_is_90_10).await;

    exporter.set("v2", Traffic { requests_per_second: 10.0, error_ratio: 0.5, latency_ms: 80.0 });
    // Once the window holds only the failing traffic, v2 answers about half its requests.
    let report = observe_until(&prometheus, Duration::from_secs(20), |report| {
        report.version("v2").and_then(|v| v.success_percent).is_some_and(|s| near(s, 50.0, 10.0))
    })
    .await;
    let v1 = report.version("v1").unwrap();
    assert_eq!(v1.success_percent, Some(100.0), "the stable version is unaffected");

    let v2 = report.version("v2").unwrap();
    let thresholds = Thresholds { min_requests: 20, ..Thresholds::default() };
    let decision = decide(&thresholds, Ok(Some(v2)), Some(Timestamp::UNIX_EPOCH), Timestamp::now());
    let Verdict::Abort(reason) = &decision.verdict else { panic!("expected an abort: {decision:?}") };
    let measured = format!("success rate {:.2}% is below the minimum 99%", v2.success_percent.unwrap());
    assert!(reason.contains(&measured), "{reason}");
    assert!(reason.contains(&format!("{} requests", v2.requests)), "{reason}");
}

#[tokio::test]
async fn healthy_canary_is_promoted_after_holding_the_thresholds_for_the_dwell_time() {
    let (_exporter, _server, prometheus) = ninety_ten().await;
    let thresholds =
        Thresholds { max_p99_ms: 200.0, dwell: Duration::from_secs(3), window: WINDOW, ..Thresholds::default() };
    let deadline = Instant::now() + Duration::from_secs(25);
    let mut healthy_since = None;
    let mut first_healthy = None;
    let reason = loop {
        let observed = prometheus.observe(NAMESPACE, HOST, WINDOW).await;
        let now = Timestamp::now();
        let decision = decide(&thresholds, observed.as_ref().map(|report| report.version("v2")), healthy_since, now);
        match decision.verdict {
            Verdict::Promote(reason) => break reason,
            Verdict::Abort(reason) => panic!("a healthy canary was aborted: {reason}"),
            Verdict::Wait(reason) => {
                assert!(Instant::now() < deadline, "not promoted within 25 s; last reason: {reason}");
            }
        }
        healthy_since = decision.healthy_since;
        first_healthy = first_healthy.or(healthy_since);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first_healthy = first_healthy.expect("a healthy run before the promotion");
    assert!(Timestamp::now().duration_since(first_healthy).as_secs() >= 3, "promoted before the dwell time");
    assert!(reason.starts_with("v2: every threshold held for "), "{reason}");
    assert!(reason.contains("success rate 100.00%"), "{reason}");
}

#[tokio::test]
async fn stopped_prometheus_is_unreachable_and_nothing_is_promoted() {
    let (_exporter, mut server, prometheus) = ninety_ten().await;
    observe_until(&prometheus, Duration::from_secs(20), split_is_90_10).await;
    server.stop();

    let error = prometheus.observe(NAMESPACE, HOST, WINDOW).await.expect_err("Prometheus is gone");
    assert!(matches!(&error, TrafficError::Unreachable { url, .. } if *url == server.url), "{error:?}");
    // Healthy for an hour before the outage: still no promotion without numbers.
    let an_hour_ago = Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let decision = decide(&Thresholds::default(), Err(&error), Some(an_hour_ago), Timestamp::now());
    assert!(matches!(&decision.verdict, Verdict::Wait(reason) if reason.contains("unreachable")), "{decision:?}");
    assert_eq!(decision.healthy_since, None);
}

#[tokio::test]
async fn a_silent_prometheus_times_out_within_the_bound() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let prometheus = Prometheus::new(&format!("http://{addr}")).unwrap();
    let started = Instant::now();
    let error = prometheus.observe(NAMESPACE, HOST, WINDOW).await.expect_err("no answer");
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(5), "took {took:?}");
    assert!(
        matches!(&error, TrafficError::Unreachable { reason, .. } if reason == "no answer within 3 s"),
        "{error:?}"
    );
}

#[tokio::test]
async fn prometheus_refusing_a_query_is_a_bad_answer() {
    let (_exporter, server, _) = ninety_ten().await;
    let prometheus = Prometheus::new(&server.url).unwrap();
    let error = prometheus.query("sum(").await.expect_err("a syntax error");
    assert!(matches!(&error, TrafficError::BadAnswer { reason, .. } if reason.contains("bad_data")), "{error:?}");
    // A quote or backslash in a host name stays inside its label value: unescaped, this
    // name would be a syntax error; escaped, it selects a (non-existent) host of that name.
    let report = prometheus.observe(NAMESPACE, r#"re"co\mm"#, WINDOW).await.unwrap();
    assert!(report.versions.is_empty(), "{report:?}");
}

/// The canary page puts the observed split next to the configured one, and says so plainly
/// when Prometheus cannot be reached.
#[tokio::test]
async fn the_canary_page_shows_the_observed_split_or_that_prometheus_is_unreachable() {
    let ns = support::TestNamespace::new("observed").await;
    let exporter = Exporter::start(&ns.name, HOST).await;
    exporter.set("v1", Traffic::healthy(90.0, 40.0));
    exporter.set("v2", Traffic::healthy(10.0, 80.0));
    let server = PrometheusServer::start(exporter.addr).await;
    let url = server.url.clone();
    let console = Console::start_with(&ns.name, |c| c.prometheus_url = Some(url)).await;
    deploy_and_route(&console, 90).await;

    let page = console.url(&format!("/ns/{}/canaries/recommendation", ns.name));
    let share = |html: &str, version: &str| -> Option<f64> {
        let row = html.split(&format!("<tr><td>{version}</td><td>")).nth(1)?;
        row.split('%').next()?.parse().ok()
    };
    support::eventually(Duration::from_secs(30), "the observed 90/10 split on the page", || async {
        let html = console.http.get(&page).send().await.ok()?.text().await.ok()?;
        let (v1, v2) = (share(&html, "v1")?, share(&html, "v2")?);
        (near(v1, 90.0, 3.0) && near(v2, 10.0, 3.0) && html.contains(" req/s")).then_some(())
    })
    .await;
    console.stop().await;

    let closed = support::free_port();
    let console = Console::start_with(&ns.name, |c| {
        c.prometheus_url = Some(format!("http://127.0.0.1:{closed}"));
    })
    .await;
    let html = console.page(&format!("/ns/{}/canaries/recommendation", ns.name)).await;
    assert!(html.contains("Prometheus is unreachable"), "{html}");
    console.stop().await;
    drop(server);
}

/// Deploys recommendation v1 and v2 with subsets for both and `stable_percent` to v1.
async fn deploy_and_route(console: &Console, stable_percent: u32) {
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(reqwest::Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    }
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                        "rules": [{"route": {"version-v1": stable_percent, "version-v2": 100 - stable_percent}}]});
    let (status, body) =
        console.send_json(reqwest::Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
}

/// A step whose routing a proxy has not taken is not promoted, however healthy the metrics:
/// they would describe the previous weights (issue 23 §4). Once every proxy has it, the
/// canary goes on.
#[tokio::test]
async fn an_auto_advance_step_waits_until_every_proxy_has_it() {
    let (ns, _exporter, _prometheus, console) = healthy_and_routed("autoreach").await;
    // A sidecar that refuses every route configuration istiod sends it.
    support::sidecars::pod_with_sidecar(&ns, "picky", "customer", "nack").await;
    let _sidecars = support::sidecars::SimulatedSidecars::start(&ns.name);
    // recommendation v1 and v2, and picky.
    support::sidecars::connected(&console.http, &ns.name, 3).await;
    start_auto_canary(&console, &[50, 100]).await;

    // Well past a full window (5 s) and the dwell (2 s) of healthy metrics: still step 1.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (_, canary) = console.get_json(&console.api("/canaries/recommendation")).await;
    assert_eq!((canary["state"].as_str(), canary["step"].as_u64()), (Some("progressing"), Some(0)), "{canary}");
    assert!(automatic_transitions(&console).await.is_empty(), "nothing promoted while a proxy lacks the step");
    let page = console.page(&format!("/ns/{}/canaries/recommendation", ns.name)).await;
    assert!(page.contains("Step 1 has not reached every proxy yet"), "the page says why it waits: {page}");

    // The refusing proxy goes away: every proxy has the step, and the canary goes on.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    pods.delete("picky", &kube::api::DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    let finished = wait_for_state(&console, "finished", Duration::from_secs(45)).await;
    assert_eq!(finished["weight"], 100);
    console.stop().await;
}

/// The canary page says where the current step stands: when it reached every proxy, from
/// when its metrics judge it, and how much of the dwell it has held.
#[tokio::test]
async fn the_canary_page_shows_when_the_step_reached_the_proxies_and_its_dwell() {
    let (ns, _exporter, _prometheus, console) = healthy_and_routed("autodwell").await;
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": [50, 100],
                      "analysis": {"minSuccessPercent": 99, "maxP99Ms": 500, "minRequests": 5,
                                   "dwellSeconds": 600, "windowSeconds": WINDOW.as_secs()}});
    let (status, body) =
        console.send_json(reqwest::Method::POST, &console.api("/canaries/recommendation"), Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let page = format!("/ns/{}/canaries/recommendation", ns.name);
    let html = support::eventually(Duration::from_secs(30), "the dwell on the page", || async {
        let html = console.page(&page).await;
        html.contains("Healthy so far: dwell ").then_some(html)
    })
    .await;
    let reach = Regex::new(
        r"Step 1 reached every proxy at \d\d:\d\d:\d\d UTC; auto-advance judges it on metrics from \d\d:\d\d:\d\d UTC",
    )
    .unwrap();
    assert!(reach.is_match(&html), "{html}");
    assert!(Regex::new(r"dwell \d+/600 s").unwrap().is_match(&html), "{html}");
    console.stop().await;
}

/// A namespace whose v1 and v2 both answer healthily, all traffic routed to v1, and an
/// auto-advance console over it.
async fn healthy_and_routed(prefix: &str) -> (support::TestNamespace, Exporter, PrometheusServer, Console) {
    let ns = support::TestNamespace::new(prefix).await;
    let exporter = Exporter::start(&ns.name, HOST).await;
    exporter.set("v1", Traffic::healthy(50.0, 40.0));
    exporter.set("v2", Traffic::healthy(50.0, 80.0));
    let prometheus = PrometheusServer::start(exporter.addr).await;
    let console = auto_advance_console(&ns.name, &prometheus).await;
    deploy_and_route(&console, 100).await;
    (ns, exporter, prometheus, console)
}

/// A console that judges auto-advance canaries every second against `prometheus`.
async fn auto_advance_console(namespace: &str, prometheus: &PrometheusServer) -> Console {
    let url = prometheus.url.clone();
    // With istiod: a step is judged once every proxy has it (none here: at once), on a full
    // window of its own metrics.
    Console::start_with(namespace, |c| {
        c.prometheus_url = Some(url);
        c.istiod_url = Some(support::sidecars::istiod_monitoring_url());
        c.analysis_interval_seconds = 1;
    })
    .await
}

/// Starts a canary of v2 with auto-advance: judged over a 5 s window, 2 s dwell per step.
async fn start_auto_canary(console: &Console, steps: &[u32]) {
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": steps,
                      "analysis": {"minSuccessPercent": 99, "maxP99Ms": 500, "minRequests": 5,
                                   "dwellSeconds": 2, "windowSeconds": WINDOW.as_secs()}});
    let (status, body) =
        console.send_json(reqwest::Method::POST, &console.api("/canaries/recommendation"), Some(body)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["analysis"]["dwellSeconds"], 2, "{body}");
}

async fn wait_for_state(console: &Console, state: &str, limit: Duration) -> Value {
    support::eventually(limit, &format!("the canary {state}"), || async {
        let (_, canary) = console.get_json(&console.api("/canaries/recommendation")).await;
        (canary["state"] == state).then_some(canary)
    })
    .await
}

/// The canary transitions signalbox made on its own, oldest first.
async fn automatic_transitions(console: &Console) -> Vec<Value> {
    let mut entries: Vec<Value> = console
        .audit()
        .await
        .into_iter()
        .filter(|e| e["actor"] == "system:signalbox" && e["action"].as_str().is_some_and(|a| a.starts_with("canary.")))
        .collect();
    entries.reverse();
    entries
}

/// Two replicas against one Prometheus: the Lease holder alone promotes a healthy canary
/// step by step and finishes it, each time recording why, and the other never acts.
#[tokio::test]
async fn a_healthy_canary_is_promoted_to_the_end_by_exactly_one_replica() {
    let ns = support::TestNamespace::new("autopromote").await;
    let exporter = Exporter::start(&ns.name, HOST).await;
    exporter.set("v1", Traffic::healthy(50.0, 40.0));
    exporter.set("v2", Traffic::healthy(50.0, 80.0));
    let prometheus = PrometheusServer::start(exporter.addr).await;
    let first = auto_advance_console(&ns.name, &prometheus).await;
    let second = auto_advance_console(&ns.name, &prometheus).await;
    deploy_and_route(&first, 100).await;

    start_auto_canary(&first, &[50, 100]).await;
    let finished = wait_for_state(&first, "finished", Duration::from_secs(60)).await;
    assert_eq!(finished["weight"], 100);

    // The cluster shows the finish as soon as it is applied; its outcome is recorded right after.
    let (by_first, by_second) = support::eventually(Duration::from_secs(10), "outcomes recorded", || async {
        let both = (automatic_transitions(&first).await, automatic_transitions(&second).await);
        let pending = both.0.iter().chain(&both.1).any(|e| e["outcome"] == "pending");
        (!pending).then_some(both)
    })
    .await;
    let (leader, follower) = if by_first.is_empty() { (&by_second, &by_first) } else { (&by_first, &by_second) };
    assert!(follower.is_empty(), "only the Lease holder acts: {follower:#?}");
    let actions: Vec<_> =
        leader.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(actions, [("canary.promote", "applied"), ("canary.finish", "applied")]);
    for entry in leader {
        assert_eq!(entry["source"], "system");
        let summary = entry["summary"].as_str().unwrap();
        assert!(summary.contains("automatic: v2: every threshold held for "), "{summary}");
        assert!(summary.contains("success rate 100.00%"), "{summary}");
    }
    let leases: Api<Lease> = Api::namespaced(ns.client.clone(), &ns.name);
    let holder = |lease: Lease| lease.spec.and_then(|spec| spec.holder_identity);
    let lease = leases.get(signalbox::autopilot::LEASE_NAME).await.expect("the analysis Lease");
    assert!(holder(lease).is_some_and(|h| !h.is_empty()), "held while the replicas run");
    first.stop().await;
    second.stop().await;
    let lease = leases.get(signalbox::autopilot::LEASE_NAME).await.unwrap();
    assert_eq!(holder(lease), None, "released at shutdown, so a new replica need not wait it out");
}

/// A canary whose success rate drops is aborted, all traffic back to stable, with the
/// measured value as the reason; it is not promoted first.
#[tokio::test]
async fn a_canary_whose_success_rate_drops_is_aborted_automatically() {
    let ns = support::TestNamespace::new("autoabort").await;
    let exporter = Exporter::start(&ns.name, HOST).await;
    exporter.set("v1", Traffic::healthy(90.0, 40.0));
    exporter.set("v2", Traffic { requests_per_second: 10.0, error_ratio: 0.3, latency_ms: 80.0 });
    let prometheus = PrometheusServer::start(exporter.addr).await;
    let console = auto_advance_console(&ns.name, &prometheus).await;
    deploy_and_route(&console, 100).await;

    start_auto_canary(&console, &[10, 50, 100]).await;
    let aborted = wait_for_state(&console, "aborted", Duration::from_secs(60)).await;
    assert_eq!((aborted["weight"].as_u64(), aborted["step"].as_u64()), (Some(0), Some(0)), "{aborted}");

    let transitions = automatic_transitions(&console).await;
    assert_eq!(transitions.len(), 1, "one abort and nothing before it: {transitions:#?}");
    assert_eq!(transitions[0]["action"], "canary.abort");
    let summary = transitions[0]["summary"].as_str().unwrap();
    assert!(summary.contains("automatic: v2: success rate "), "{summary}");
    assert!(summary.contains("is below the minimum 99%"), "{summary}");
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"));
    let vs = Api::<DynamicObject>::namespaced_with(ns.client.clone(), &ns.name, &resource).get(HOST).await.unwrap();
    let route = &vs.data["spec"]["http"][0]["route"];
    let subsets: Vec<_> = route.as_array().unwrap().iter().map(|r| &r["destination"]["subset"]).collect();
    assert_eq!(subsets, ["version-v1"], "all traffic back to stable: {route}");
    console.stop().await;
}

/// Without numbers there is no automatic step: with Prometheus unreachable an auto-advance
/// canary stays where it is, and the page says why.
#[tokio::test]
async fn with_prometheus_unreachable_an_auto_advance_canary_is_left_alone() {
    let ns = support::TestNamespace::new("autonone").await;
    let closed = format!("http://127.0.0.1:{}", support::free_port());
    let console = Console::start_with(&ns.name, |c| {
        c.prometheus_url = Some(closed);
        c.analysis_interval_seconds = 1;
    })
    .await;
    deploy_and_route(&console, 100).await;
    start_auto_canary(&console, &[50, 100]).await;

    // Several rounds, each well past the 2 s dwell had the canary been measured healthy.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, canary) = console.get_json(&console.api("/canaries/recommendation")).await;
    assert_eq!((canary["state"].as_str(), canary["step"].as_u64()), (Some("progressing"), Some(0)), "{canary}");
    assert!(automatic_transitions(&console).await.is_empty());
    let html = console.http.get(console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).send().await;
    let html = html.unwrap().text().await.unwrap();
    assert!(html.contains("Prometheus is unreachable"), "{html}");
    console.stop().await;
}

/// The canary page draws the canary version's success rate and p99 over the last minutes
/// against its thresholds, as images whose words give the numbers; a version that starts
/// failing turns its success line into a breach.
#[tokio::test]
async fn the_canary_page_draws_success_and_p99_against_the_thresholds() {
    let ns = support::TestNamespace::new("sparkline").await;
    let exporter = Exporter::start(&ns.name, HOST).await;
    exporter.set("v1", Traffic::healthy(90.0, 40.0));
    exporter.set("v2", Traffic::healthy(10.0, 80.0));
    let server = PrometheusServer::start(exporter.addr).await;
    let url = server.url.clone();
    let console = Console::start_with(&ns.name, |c| c.prometheus_url = Some(url)).await;
    deploy_and_route(&console, 100).await;
    let start = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 50, 100]});
    let (status, body) =
        console.send_json(reqwest::Method::POST, &console.api("/canaries/recommendation"), Some(start)).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");

    let page = format!("/ns/{}/canaries/recommendation", ns.name);
    let healthy = support::eventually(Duration::from_secs(30), "both sparklines with numbers", || async {
        let html = console.page(&page).await;
        (html.contains("v2 success rate, last 5 min: now 100.00%, lowest 100.00%; minimum 99.00%")
            && html.contains("v2 p99 latency, last 5 min: now "))
        .then_some(html)
    })
    .await;
    let svg = Regex::new(r#"<svg [^>]*role="img" aria-label="v2 success rate[^"]*"><title>v2 success rate"#).unwrap();
    assert!(svg.is_match(&healthy), "an image labelled and titled in words: {healthy}");
    // 80 ms lies in Istio's (50, 100] bucket: the p99 is interpolated inside it.
    let p99 =
        Regex::new(r"v2 p99 latency, last 5 min: now (\d+\.\d) ms, highest \d+\.\d ms; maximum 500\.0 ms").unwrap();
    let now: f64 = p99.captures(&healthy).expect("p99 in words")[1].parse().unwrap();
    assert!(now > 50.0 && now <= 100.0, "{now}");
    assert!(healthy.contains("class=\"measure holds\""));

    exporter.set("v2", Traffic { requests_per_second: 10.0, error_ratio: 0.5, latency_ms: 80.0 });
    support::eventually(Duration::from_secs(30), "the success line breaks its threshold", || async {
        let html = console.page(&page).await;
        let success = html.split("id=\"canary-sparkline-1\"").nth(1)?.split("</figure>").next()?.to_owned();
        success.contains("class=\"measure breach\"").then_some(())
    })
    .await;
    console.stop().await;
    drop(server);
}
