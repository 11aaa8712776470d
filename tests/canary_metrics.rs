//! Canary metrics against a real Prometheus scraping a test exporter of Istio's metrics:
//! observed shares, rates, success and latency per version, and the analysis verdicts on them.
mod support;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use signalbox::traffic::{Prometheus, Thresholds, TrafficError, TrafficReport, Verdict, decide};
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
        Thresholds { min_success_percent: 99.0, max_p99_ms: 200.0, min_requests: 20, dwell: Duration::from_secs(3) };
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
    let console = support::console::Console::start_with(&ns.name, |c| c.prometheus_url = Some(url)).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, _) =
            console.send_json(reqwest::Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, reqwest::StatusCode::OK);
    }
    let policy = serde_json::json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                                    "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, _) =
        console.send_json(reqwest::Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, reqwest::StatusCode::OK);

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

    let closed = support::prometheus::free_port();
    let console = support::console::Console::start_with(&ns.name, |c| {
        c.prometheus_url = Some(format!("http://127.0.0.1:{closed}"));
    })
    .await;
    let html = console
        .http
        .get(console.url(&format!("/ns/{}/canaries/recommendation", ns.name)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Prometheus is unreachable"), "{html}");
    console.stop().await;
    drop(server);
}
