//! A real Prometheus (the Debian package's `/usr/bin/prometheus`) scraping a small test
//! exporter that serves Istio's request metrics for one host, with traffic the test sets.
//!
//! The exporter plays the destination sidecars of the host's versions: a background task
//! adds requests at each version's rate, with its error ratio and latency, to
//! `istio_requests_total` and `istio_request_duration_milliseconds` — the same names and
//! labels Istio uses, so signalbox's queries run unchanged.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::task::JoinHandle;

/// Istio's default buckets for `istio_request_duration_milliseconds`.
pub const ISTIO_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// How the exporter's traffic to one version looks.
#[derive(Clone, Copy, Debug)]
pub struct Traffic {
    pub requests_per_second: f64,
    /// Share of requests answered 503, from 0 to 1.
    pub error_ratio: f64,
    /// Every request of this version takes this long.
    pub latency_ms: f64,
}

impl Traffic {
    pub fn healthy(requests_per_second: f64, latency_ms: f64) -> Self {
        Traffic { requests_per_second, error_ratio: 0.0, latency_ms }
    }
}

/// Counters of one version and response code.
#[derive(Default)]
struct Series {
    requests: u64,
    /// Cumulative counts per bucket of [`ISTIO_BUCKETS_MS`] (the `+Inf` bucket is `requests`).
    buckets: [u64; ISTIO_BUCKETS_MS.len()],
    duration_sum_ms: f64,
}

#[derive(Default)]
struct VersionState {
    traffic: Option<Traffic>,
    /// Fractions of a request (and of an error) not yet counted, so low rates stay exact.
    pending_requests: f64,
    pending_errors: f64,
    ok: Series,
    failed: Series,
}

struct ExporterState {
    namespace: String,
    host: String,
    /// The Deployment the requests come from, as Istio's `source_workload` names it.
    source_workload: String,
    versions: BTreeMap<String, VersionState>,
}

/// The test exporter: `GET /metrics` on a loopback port.
pub struct Exporter {
    pub addr: SocketAddr,
    state: Arc<Mutex<ExporterState>>,
    tasks: Vec<JoinHandle<()>>,
}

/// How often the exporter adds requests.
const TICK: Duration = Duration::from_millis(100);

impl Exporter {
    /// Serves the metrics of `host` in `namespace`; no version has traffic until [`Exporter::set`].
    pub async fn start(namespace: &str, host: &str) -> Self {
        let state = Arc::new(Mutex::new(ExporterState {
            namespace: namespace.into(),
            host: host.into(),
            source_workload: "unknown".into(),
            versions: BTreeMap::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the exporter");
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/metrics", get(metrics)).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let ticking = state.clone();
        let traffic = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                interval.tick().await;
                add_requests(&mut ticking.lock().unwrap(), TICK.as_secs_f64());
            }
        });
        Exporter { addr, state, tasks: vec![server, traffic] }
    }

    /// Reports the requests as sent by the Deployment `workload` (Istio says `unknown` until then).
    pub fn set_source_workload(&self, workload: &str) {
        self.state.lock().unwrap().source_workload = workload.into();
    }

    /// From now on, `version` receives `traffic` (counters keep their totals).
    pub fn set(&self, version: &str, traffic: Traffic) {
        self.state.lock().unwrap().versions.entry(version.into()).or_default().traffic = Some(traffic);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn add_requests(state: &mut ExporterState, seconds: f64) {
    for version in state.versions.values_mut() {
        let Some(traffic) = version.traffic else { continue };
        version.pending_requests += traffic.requests_per_second * seconds;
        let requests = version.pending_requests.floor();
        version.pending_requests -= requests;
        version.pending_errors += requests * traffic.error_ratio;
        let errors = version.pending_errors.floor().min(requests);
        version.pending_errors -= errors;
        observe(&mut version.failed, errors as u64, traffic.latency_ms);
        observe(&mut version.ok, (requests - errors) as u64, traffic.latency_ms);
    }
}

fn observe(series: &mut Series, requests: u64, latency_ms: f64) {
    series.requests += requests;
    series.duration_sum_ms += requests as f64 * latency_ms;
    for (count, le) in series.buckets.iter_mut().zip(ISTIO_BUCKETS_MS) {
        if latency_ms <= le {
            *count += requests;
        }
    }
}

async fn metrics(State(state): State<Arc<Mutex<ExporterState>>>) -> String {
    let state = state.lock().unwrap();
    let mut text = String::new();
    text.push_str("# TYPE istio_requests_total counter\n");
    for (version, code, series) in all_series(&state) {
        let labels = labels(&state, version, code);
        let _ = writeln!(text, "istio_requests_total{{{labels}}} {}", series.requests);
    }
    text.push_str("# TYPE istio_request_duration_milliseconds histogram\n");
    for (version, code, series) in all_series(&state) {
        let labels = labels(&state, version, code);
        for (count, le) in series.buckets.iter().zip(ISTIO_BUCKETS_MS) {
            let _ = writeln!(text, "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {count}");
        }
        let requests = series.requests;
        let _ = writeln!(text, "istio_request_duration_milliseconds_bucket{{{labels},le=\"+Inf\"}} {requests}");
        let _ = writeln!(text, "istio_request_duration_milliseconds_sum{{{labels}}} {}", series.duration_sum_ms);
        let _ = writeln!(text, "istio_request_duration_milliseconds_count{{{labels}}} {requests}");
    }
    text
}

fn all_series(state: &ExporterState) -> impl Iterator<Item = (&str, &str, &Series)> {
    state
        .versions
        .iter()
        .flat_map(|(version, v)| [(version.as_str(), "200", &v.ok), (version.as_str(), "503", &v.failed)])
}

fn labels(state: &ExporterState, version: &str, code: &str) -> String {
    format!(
        "reporter=\"destination\",source_workload=\"{}\",destination_service_namespace=\"{}\",\
         destination_service_name=\"{}\",destination_version=\"{version}\",response_code=\"{code}\"",
        state.source_workload, state.namespace, state.host
    )
}

/// A Prometheus process on a free loopback port, scraping one target every second, with its
/// storage in a temporary directory; killed on drop.
pub struct PrometheusServer {
    pub url: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

const PROMETHEUS: &str = "/usr/bin/prometheus";

impl PrometheusServer {
    /// Starts Prometheus scraping `target` and returns once it is ready and has scraped it.
    pub async fn start(target: SocketAddr) -> Self {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: run scripts/install-deps.sh (Debian package prometheus)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = PrometheusServer { url: format!("http://127.0.0.1:{port}"), child: Some(child), dir };
        server.wait_until_scraped().await;
        server
    }

    /// Kills Prometheus now (the test can then see signalbox's view of an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("prometheus.log")
    }

    async fn wait_until_scraped(&self) {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let up = format!("{}/api/v1/query?query=up%7Bjob%3D%22exporter%22%7D%20%3D%3D%201", self.url);
        loop {
            let ready = http.get(format!("{}/-/ready", self.url)).send().await.is_ok_and(|r| r.status().is_success());
            if ready {
                let answer = http.get(&up).send().await.ok();
                let body = match answer {
                    Some(answer) => answer.text().await.unwrap_or_default(),
                    None => String::new(),
                };
                if body.contains("\"value\"") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape the exporter within 20 s; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
    }
}
