//! Hardening, bounded in time and loopback only: load from 50 concurrent clients, hostile
//! input (generated JSON, form bodies and path segments), a client sending its headers a
//! byte at a time, and oversized bodies. The API server outage is in tests/it/outage.rs.
use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestNamespace;
use support::console::Console;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WORKLOADS: [&str; 5] = ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"];
const CLIENTS: usize = 50;
/// What the simulated users look at; `{ns}` is their namespace.
const PAGES: [&str; 5] =
    ["/ns/{ns}", "/ns/{ns}/deploy", "/ns/{ns}/routes/recommendation", "/audit", "/api/v1/namespaces/{ns}/workloads"];
const LOAD_DURATION: Duration = Duration::from_secs(30);
/// The hosts whose routing the simulated users change.
const HOSTS: [&str; 3] = ["customer", "preference", "recommendation"];

/// A routing policy for `host` that differs from step to step: recommendation's split between
/// v1, v2 and v3, the others' timeout.
fn route_policy(host: &str, step: usize) -> Value {
    if host == "recommendation" {
        let v1 = 10 + (step % 4) as u32 * 10;
        json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"},
                           "version-v3": {"version": "v3"}},
               "rules": [{"route": {"version-v1": v1, "version-v2": 50, "version-v3": 50 - v1}}]})
    } else {
        json!({"subsets": {"version-v1": {"version": "v1"}},
               "rules": [{"route": {"version-v1": 100}, "timeout": format!("{}s", 1 + step % 7)}]})
    }
}

async fn deploy_tutorial(console: &Console) {
    for workload in WORKLOADS {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{workload}: {body}");
    }
}

/// What one simulated user saw.
#[derive(Default)]
struct ClientReport {
    /// (page index, latency) of every successful page view.
    page_latencies: Vec<(usize, Duration)>,
    applied_audit_ids: Vec<i64>,
    conflicts: usize,
    unexpected: Vec<String>,
}

async fn one_client(console: &Console, client: usize, until: Instant) -> ClientReport {
    let mut report = ClientReport::default();
    let pages = PAGES.map(|path| console.url(&path.replace("{ns}", &console.namespace)));
    let mut step = client;
    while Instant::now() < until {
        step += 1;
        // Nine page views to one change, each client on its own rhythm.
        if !step.is_multiple_of(10) {
            let page = step % pages.len();
            let url = &pages[page];
            let started = Instant::now();
            match console.http.get(url).send().await {
                Ok(response) if response.status() == StatusCode::OK => {
                    let _ = response.bytes().await;
                    report.page_latencies.push((page, started.elapsed()));
                }
                Ok(response) => report.unexpected.push(format!("GET {url}: {}", response.status())),
                Err(error) => report.unexpected.push(format!("GET {url}: {error}")),
            }
            continue;
        }
        let (what, url, body) = if (step / 10).is_multiple_of(2) {
            let workload = WORKLOADS[(client + step) % WORKLOADS.len()];
            let replicas = 1 + (step / 10) % 3;
            (workload, console.api(&format!("/workloads/{workload}")), json!({"replicas": replicas}))
        } else {
            let host = HOSTS[(client + step) % HOSTS.len()];
            (host, console.api(&format!("/routes/{host}")), route_policy(host, step))
        };
        let (status, body) = console.send_json(Method::PUT, &url, Some(body)).await;
        match status {
            StatusCode::OK => report.applied_audit_ids.push(body["auditId"].as_i64().expect("an audit id")),
            StatusCode::CONFLICT => report.conflicts += 1,
            other => report.unexpected.push(format!("PUT {what}: {other} {body}")),
        }
    }
    report
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 * fraction).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_clients_mixing_pages_and_changes_see_no_errors_and_every_change_is_audited_once() {
    let namespace = TestNamespace::new("load").await;
    let console = Console::start(&namespace.name).await;
    deploy_tutorial(&console).await;

    let until = Instant::now() + LOAD_DURATION;
    let reports = futures::future::join_all((0..CLIENTS).map(|client| one_client(&console, client, until))).await;

    let unexpected: Vec<_> = reports.iter().flat_map(|r| r.unexpected.iter()).collect();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        unexpected.len(),
        &unexpected[..3.min(unexpected.len())]
    );
    let applied: Vec<i64> = reports.iter().flat_map(|r| r.applied_audit_ids.iter().copied()).collect();
    let distinct: BTreeSet<i64> = applied.iter().copied().collect();
    assert_eq!(distinct.len(), applied.len(), "no audit id answered twice");
    assert!(applied.len() >= CLIENTS, "every client changed something: {} changes", applied.len());

    let audit = console.audit().await;
    let own: Vec<&Value> = audit.iter().filter(|e| e["source"] != "external").collect();
    let scales: BTreeSet<i64> = own
        .iter()
        .filter(|e| e["outcome"] == "applied" && e["id"].as_i64().is_some_and(|id| distinct.contains(&id)))
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(scales, distinct, "every 200 has its applied audit entry");
    let conflicts: usize = reports.iter().map(|r| r.conflicts).sum();
    let applied_entries = own.iter().filter(|e| e["outcome"] == "applied").count();
    assert_eq!(applied_entries, WORKLOADS.len() + applied.len(), "no applied entry without its 200, none twice");
    assert!(own.len() <= applied_entries + conflicts, "any other entry is a refused conflict");

    let mut latencies: Vec<Duration> = reports.iter().flat_map(|r| r.page_latencies.iter().map(|(_, d)| *d)).collect();
    latencies.sort();
    println!(
        "load: {CLIENTS} clients for {LOAD_DURATION:?}: {} page views (p50 {:?}, p99 {:?}, max {:?}), {} changes, {} conflicts",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().unwrap(),
        applied.len(),
        conflicts
    );
    for (index, url) in PAGES.iter().enumerate() {
        let mut one: Vec<Duration> = reports
            .iter()
            .flat_map(|r| r.page_latencies.iter().filter(|(p, _)| *p == index).map(|(_, d)| *d))
            .collect();
        one.sort();
        println!("  {url}: {} views, p50 {:?}, p99 {:?}", one.len(), percentile(&one, 0.5), percentile(&one, 0.99));
    }
    console.stop().await;
}

/// JSON of any shape, with the field names the API reads so that generated bodies get past
/// the first level of parsing, and values chosen to hurt: huge and negative numbers, markup,
/// control characters, deep nesting.
fn hostile_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("replicas".to_owned()),
        Just("subsets".to_owned()),
        Just("rules".to_owned()),
        Just("route".to_owned()),
        Just("match".to_owned()),
        Just("headers".to_owned()),
        Just("timeout".to_owned()),
        Just("retries".to_owned()),
        Just("path".to_owned()),
        Just("version".to_owned()),
        Just("version-v1".to_owned()),
        Just("steps".to_owned()),
        "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-5i64..105).prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        Just(json!("<script>alert(1)</script>")),
        Just(json!("1e309")),
        "\\PC{0,40}".prop_map(Value::from),
        "[\\x00-\\x1f\"\\\\]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A path segment with anything in it, percent-encoded as a client would send it.
fn hostile_segment() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{1,30}", "[a-z0-9-]{1,80}", Just("..".to_owned()), Just("%2e%2e".to_owned())]
        .prop_map(|s| if s.starts_with('%') { s } else { form_urlencoded::byte_serialize(s.as_bytes()).collect() })
}

fn samples<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, count: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..count).map(|_| strategy.new_tree(&mut runner).expect("a sample").current()).collect()
}

#[tokio::test]
async fn hostile_json_forms_and_paths_never_get_a_server_error() {
    // A namespace that does not exist: generated bodies that happen to be valid create it.
    let namespace = TestNamespace::unborn("hostile").await;
    let console = Console::start(&namespace.name).await;
    let ns = namespace.name.clone();
    let mut failures = Vec::new();
    let mut check = |what: String, status: StatusCode| {
        if status.is_server_error() {
            failures.push(format!("{status} for {what}"));
        }
    };

    let json_targets = [
        (Method::PUT, console.api("/workloads/recommendation-v2?dryRun=true")),
        (Method::PUT, console.api("/routes/recommendation?dryRun=true")),
        (Method::POST, console.api("/routes/recommendation/test")),
        (Method::POST, console.api("/canaries/recommendation")),
        (Method::POST, console.url("/api/v1/audit/1/revert?dryRun=true")),
    ];
    for body in samples(hostile_json(), 60) {
        for (method, url) in &json_targets {
            let response = console.http.request(method.clone(), url).json(&body).send().await.unwrap();
            check(format!("{method} {url} {body}"), response.status());
        }
    }
    for bytes in samples(proptest::collection::vec(any::<u8>(), 0..200), 30) {
        let (method, url) = &json_targets[bytes.len() % json_targets.len()];
        let response = console
            .http
            .request(method.clone(), url)
            .header("content-type", "application/json")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        check(format!("{method} {url} with raw bytes {bytes:?}"), response.status());
    }

    // Forms as a same-origin browser sends them, with a valid CSRF token, so they reach the
    // handlers.
    let token = console.server.state.csrf.token_for(&format!("local:{}", whoami::username()));
    let form_targets = [
        format!("/ns/{ns}/deploy/recommendation-v2/scale"),
        format!("/ns/{ns}/routes/recommendation/preview"),
        format!("/ns/{ns}/routes/recommendation/test"),
        format!("/ns/{ns}/canaries/recommendation"),
        "/audit/1/revert/preview".to_owned(),
    ];
    let fields = proptest::collection::vec(("[a-z_.\\[\\]0-9]{1,16}", "\\PC{0,30}"), 0..8);
    for (index, pairs) in samples(fields, 60).into_iter().enumerate() {
        let mut form = form_urlencoded::Serializer::new(format!("csrf_token={token}&"));
        for (name, value) in &pairs {
            form.append_pair(name, value);
        }
        let url = console.url(&form_targets[index % form_targets.len()]);
        let response = console
            .http
            .post(&url)
            .header("origin", &console.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .unwrap();
        check(format!("POST {url} {pairs:?}"), response.status());
    }

    for (first, second) in samples((hostile_segment(), hostile_segment()), 80) {
        for path in [
            format!("/ns/{first}"),
            format!("/ns/{ns}/routes/{first}"),
            format!("/ns/{ns}/canaries/{first}"),
            format!("/api/v1/namespaces/{first}/workloads/{second}"),
            format!("/api/v1/namespaces/{ns}/routes/{first}"),
            format!("/audit/{first}"),
            format!("/api/v1/audit/{first}"),
            format!("/static/{first}"),
        ] {
            let response = console.http.get(console.url(&path)).send().await.unwrap();
            check(format!("GET {path}"), response.status());
        }
    }

    assert!(
        failures.is_empty(),
        "{} server errors, e.g.:\n{}",
        failures.len(),
        failures[..5.min(failures.len())].join("\n")
    );
    // Still serving after all that: nothing panicked a worker into a broken state.
    let (status, _) = console.get_json(&console.api("/workloads")).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}

#[tokio::test]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off() {
    let console = Console::start("slow-client").await;
    let mut stream = tokio::net::TcpStream::connect(console.server.addr()).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut_off = None;
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = Some(started.elapsed());
            break;
        }
        // Closed by the server? A read returns end of stream (or an error) at once.
        let mut buffer = [0u8; 256];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
            assert!(!matches!(read, Ok(n) if n > 0), "no answer to a request that never finished its headers");
            cut_off = Some(started.elapsed());
            break;
        }
    }
    let cut_off = cut_off.expect("the server closed the connection before the headers were complete");
    let limit = signalbox::web::HEADER_READ_TIMEOUT;
    assert!(cut_off >= limit - Duration::from_secs(1) && cut_off <= limit + Duration::from_secs(2), "{cut_off:?}");

    // A client that sends its request promptly on the same server is served.
    let (status, _) = console.get_json(&console.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let namespace = TestNamespace::new("oversized").await;
    let console = Console::start(&namespace.name).await;
    let big = "x".repeat(signalbox::web::BODY_LIMIT_BYTES + 1);

    let json_body = json!({"replicas": 1, "padding": big});
    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/customer"), Some(json_body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // Without a Content-Length (chunked) the limit applies while the body streams in.
    let mut stream = tokio::net::TcpStream::connect(console.server.addr()).await.unwrap();
    let head = format!(
        "PUT /api/v1/namespaces/{}/workloads/customer HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        namespace.name
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
    for _ in 0..40 {
        // The server may answer and close before the whole body is sent.
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await.unwrap().unwrap();
    let status_line = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    let token = console.server.state.csrf.token_for(&format!("local:{}", whoami::username()));
    let response = console
        .http
        .post(console.url(&format!("/ns/{}/deploy/customer/scale", namespace.name)))
        .header("origin", &console.base)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&replicas=1&padding={big}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(console.audit().await.is_empty(), "nothing was attempted");
    console.stop().await;
}

/// Reads until the server closes the connection; how long that took (None: still open).
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 256];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_send_nothing_or_half_an_http2_preface_are_closed_after_the_header_timeout() {
    let console = Console::start("idle-client").await;
    let limit = signalbox::web::HEADER_READ_TIMEOUT;
    let mut silent = tokio::net::TcpStream::connect(console.server.addr()).await.unwrap();
    let mut preface = tokio::net::TcpStream::connect(console.server.addr()).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let (silent, preface) = tokio::join!(
        closed_within(&mut silent, limit + Duration::from_secs(3)),
        closed_within(&mut preface, limit + Duration::from_secs(3))
    );
    for (what, closed) in [("silent", silent), ("partial preface", preface)] {
        let closed = closed.unwrap_or_else(|| panic!("{what}: still open after {:?}", limit + Duration::from_secs(3)));
        assert!(closed >= limit - Duration::from_secs(1), "{what}: closed early, after {closed:?}");
    }
    let (status, _) = console.get_json(&console.url("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
    console.stop().await;
}

/// TCP_NODELAY: without it a response written in pieces (a static file, compressed: headers,
/// then body chunks) waits on Nagle's algorithm for the client's delayed ACK, about 40 ms, on
/// a third of the requests over one kept-alive connection (measured: 35 of 100). The client
/// cannot read the server's socket options, so this looks at the latency, with a generous
/// bound for a loaded machine: few requests may take as long as a delayed ACK.
#[tokio::test]
async fn responses_on_one_kept_alive_connection_do_not_wait_for_delayed_acks() {
    let console = Console::start("nodelay").await;
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let url = console.url("/static/app.css");
    let fetch = || async {
        let started = Instant::now();
        // As a browser asks for it: compressed, so the body goes out in several writes.
        let response = client.get(&url).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.bytes().await.unwrap();
        started.elapsed()
    };
    fetch().await; // opens the connection
    let mut times = Vec::new();
    for _ in 0..100 {
        times.push(fetch().await);
    }
    let slow = times.iter().filter(|time| **time >= Duration::from_millis(35)).count();
    println!("/static/app.css, 100 times on one connection: {slow} took 35 ms or more");
    assert!(slow < 10, "{slow} of 100 requests waited as long as a delayed ACK: {times:?}");
    console.stop().await;
}

/// A newcomer's team file with a typo stops the start with one line naming the file, the
/// field and the line, even with `RUST_BACKTRACE=1` set (as `make run` shells often have),
/// not a stack backtrace.
#[test]
fn a_bad_team_file_stops_the_start_with_one_line_naming_file_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    std::fs::write(&teams, "teams:\n  - {name: a, members: {users: [x]}, namespaces: [t], actions: [fly]}\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .env("RUST_BACKTRACE", "1")
        .args(["--listen", "127.0.0.1:0", "--namespace", "t", "--teams"])
        .arg(&teams)
        .arg("--database")
        .arg(dir.path().join("audit.db"))
        .arg("--kubeconfig")
        .arg(crate::support::kubeconfig_path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("signalbox: reading the team file ") && line.contains(&teams.display().to_string()),
        "{line}"
    );
    assert!(line.contains("teams[0].actions[0]") && line.contains("line 2"), "{line}");
}
