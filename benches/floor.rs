//! `make bench`: throughput of each kind of page as a share of `/healthz` (the "floor": what
//! the server, its middleware and loopback give a response that does no work), measured one
//! after the other with `wrk -t1 -c16 -d8s` against an in-process signalbox (release build).
//! The managed namespace holds the tutorial (routed 90/10 to recommendation v1/v2) and
//! filler services up to 150 Deployments; the audit log holds 10,000 chained entries.
//!
//! There is no switch to leave the service graph out of the overview, so its cost is
//! measured apart: the CPU time the server spends per overview under load, against the
//! time a view of the unchanged namespace spends on the graph in this process (finding the
//! kept drawing), and the time to lay out and draw it afresh (once per change).
#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use signalbox::audit::{AuditStore, NewEntry, Outcome, Source};
use signalbox::config::ServeConfig;
use signalbox::pictures::drawn::DrawnGraphs;
use signalbox::pictures::graph::{self, Routing, ServiceGraph, ServiceInput};
use signalbox::policy::{self, RoutingPolicy};
use support::{client, kubeconfig};

const NAMESPACE: &str = "bench-floor";
/// Deployments in the namespace: the tutorial's five and filler up to this many.
const DEPLOYMENTS: usize = 150;
const TUTORIAL: [&str; 5] = ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"];
const AUDIT_ENTRIES: usize = 10_000;
const WRK: [&str; 4] = ["-t1", "-c16", "-d8s", "--latency"];
/// The export is a few MB per request: fewer connections, so each one's latency says how
/// long one export takes rather than how long it queues.
const WRK_EXPORT: [&str; 4] = ["-t1", "-c4", "-d8s", "--latency"];
const GRAPH_RUNS: u32 = 5000;

/// Fills the new audit log through the store (so its hash chain verifies, as the history
/// page checks): mixed actors, sources, actions and outcomes.
async fn fill_audit(database: &std::path::Path) {
    let store = AuditStore::open(database).await.unwrap();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (writer..AUDIT_ENTRIES).step_by(8) {
                    let v1 = 100 - (i % 10) * 10;
                    let entry = NewEntry {
                        actor: format!("user-{}", i % 10),
                        groups: vec!["team-reco".into()],
                        source: [Source::Ui, Source::Api][i % 2],
                        action: ["route.update", "workload.scale"][i % 2].into(),
                        namespace: NAMESPACE.into(),
                        kind: ["VirtualService", "Deployment"][i % 2].into(),
                        name: ["recommendation", "recommendation-v2"][i % 2].into(),
                        summary: format!("recommendation: v1 {v1}%, v2 {}%", 100 - v1),
                        before: Some(json!({"spec": {"http": [{"route": [{"weight": 100}]}]}})),
                        after: Some(json!({"spec": {"http": [{"route": [{"weight": v1}, {"weight": 100 - v1}]}]}})),
                        operations: json!([]),
                        outcome: if i % 50 == 0 { Outcome::Denied } else { Outcome::Applied },
                        error: None,
                        request_id: Some(format!("req-{i}")),
                        reverts: None,
                    };
                    store.record(&entry).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    store.close().await;
}

/// Filler services of three versions each (`svc-00-v1` …), as many Deployments as make
/// [`DEPLOYMENTS`] with the tutorial's.
async fn add_filler(client: &kube::Client) {
    let apply = PatchParams::apply("bench");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    for i in 0..DEPLOYMENTS - TUTORIAL.len() {
        let app = format!("svc-{:02}", i / 3);
        if i % 3 == 0 {
            let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app},
                                 "spec": {"ports": [{"port": 8080}], "selector": {"app": app}}});
            services.patch(&app, &apply, &Patch::Apply(&service)).await.unwrap();
        }
        let labels = json!({"app": app, "version": format!("v{}", i % 3 + 1)});
        let name = format!("{app}-v{}", i % 3 + 1);
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}});
        deployments.patch(&name, &apply, &Patch::Apply(&deployment)).await.unwrap();
    }
}

fn split() -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]})
}

struct Run {
    requests_per_second: f64,
    average: String,
    p99: String,
    non_2xx: u64,
    transfer: String,
}

/// One `wrk` run; its summary lines parsed.
fn wrk(args: &[&str], url: &str) -> Run {
    let output = Command::new("wrk").args(args).arg(url).output().expect("wrk (scripts/install-deps.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk {url}: {text}{}", String::from_utf8_lossy(&output.stderr));
    let field = |prefix: &str, index: usize| {
        text.lines()
            .find(|line| line.trim_start().starts_with(prefix))
            .and_then(|line| line.split_whitespace().nth(index))
            .unwrap_or("?")
            .to_owned()
    };
    Run {
        requests_per_second: field("Requests/sec:", 1).parse().unwrap_or(0.0),
        average: field("Latency", 1),
        p99: field("99%", 1),
        non_2xx: field("Non-2xx", 4).parse().unwrap_or(0),
        transfer: field("Transfer/sec:", 1),
    }
}

/// User plus system CPU time of this process (the server's, while only `wrk` runs).
fn cpu_time() -> Duration {
    cpu_time_of("/proc/self/stat")
}

/// The same for the calling thread: on a shared machine, wall time would count the time
/// other processes hold the cores.
fn thread_cpu_time() -> Duration {
    cpu_time_of("/proc/thread-self/stat")
}

fn cpu_time_of(stat: &str) -> Duration {
    let stat = std::fs::read_to_string(stat).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10) // CLK_TCK is 100 on Linux
}

#[derive(Template)]
#[template(path = "partials/service_graph.html")]
struct GraphPicture<'a> {
    graph: &'a ServiceGraph,
}

/// Every `K` in the bench's namespace, shared as the watch caches hold them.
async fn list_in_namespace<K>(client: &kube::Client) -> Vec<Arc<K>>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let objects = Api::<K>::namespaced(client.clone(), NAMESPACE).list(&ListParams::default()).await.unwrap();
    objects.items.into_iter().map(Arc::new).collect()
}

/// The overview's graph of the namespace as the console builds it (the versions from the
/// inventory, the routing of recommendation as set above, none elsewhere), laid out and
/// drawn `GRAPH_RUNS` times: the average CPU time of each, and the SVG's size.
async fn graph_cost(client: &kube::Client) -> GraphCost {
    let deployments: Vec<Arc<Deployment>> = list_in_namespace(client).await;
    let services: Vec<Arc<Service>> = list_in_namespace(client).await;
    let mut recommendation: RoutingPolicy = serde_json::from_value(split()).unwrap();
    recommendation.host = "recommendation".into();
    let inputs: Vec<ServiceInput> = signalbox::inventory::services(&deployments, &services)
        .into_iter()
        .map(|service| {
            let (routing, summary) = match service.app.as_str() {
                "recommendation" => (Routing::Policy(recommendation.clone()), policy::summary(&recommendation)),
                _ => (Routing::None, "no routing policy: round-robin over all pods".to_owned()),
            };
            ServiceInput { app: service.app, versions: service.versions, routing, summary, canary: None }
        })
        .collect();
    // No await in the loops below, so the task stays on one thread.
    let started = thread_cpu_time();
    for _ in 0..GRAPH_RUNS {
        std::hint::black_box(graph::graph(NAMESPACE, &inputs, None));
    }
    let layout = (thread_cpu_time() - started) / GRAPH_RUNS;
    let graph = graph::graph(NAMESPACE, &inputs, None);
    let started = thread_cpu_time();
    let mut bytes = 0;
    for _ in 0..GRAPH_RUNS {
        bytes = GraphPicture { graph: &graph }.render().unwrap().len();
    }
    let draw = (thread_cpu_time() - started) / GRAPH_RUNS;
    // What rendering the services partial again pays when the graph's inputs did not change
    // (a view of the unchanged namespace reuses the whole partial and pays nothing for it).
    let drawn = DrawnGraphs::default();
    let services: Vec<&ServiceInput> = inputs.iter().collect();
    drawn.svg(NAMESPACE, &services, None).unwrap();
    let started = thread_cpu_time();
    for _ in 0..GRAPH_RUNS {
        std::hint::black_box(drawn.svg(NAMESPACE, &services, None).unwrap());
    }
    let kept = (thread_cpu_time() - started) / GRAPH_RUNS;
    GraphCost { layout, draw, kept, bytes, words: graph.words.len() }
}

struct GraphCost {
    layout: Duration,
    draw: Duration,
    /// Finding the kept drawing of unchanged inputs ([`DrawnGraphs::svg`]).
    kept: Duration,
    bytes: usize,
    /// The graph in words (its `<title>`).
    words: usize,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main]
async fn main() {
    let client = client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap())
        .await;
    add_filler(&client).await;

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let database = dir.path().join("audit.db");
    fill_audit(&database).await;
    let config = ServeConfig {
        kiali_url: Some("http://kiali.example:20001/kiali".into()),
        jaeger_url: Some("http://jaeger.example/jaeger".into()),
        ..ServeConfig::local(kubeconfig(), vec![NAMESPACE.into()], database)
    };
    let server = signalbox::app::start(config).await.unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::new();
    let started = Instant::now();
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "signalbox did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The tutorial through the console, as a user deploys it (idempotent on a second run).
    let api = format!("{base}/api/v1/namespaces/{NAMESPACE}");
    for workload in TUTORIAL {
        let response = http.put(format!("{api}/workloads/{workload}")).send().await.unwrap();
        assert!(response.status().is_success(), "deploying {workload}: {}", response.text().await.unwrap());
    }
    let response = http.put(format!("{api}/routes/recommendation")).json(&split()).send().await.unwrap();
    assert!(response.status().is_success(), "routing recommendation: {}", response.text().await.unwrap());
    // Wait until the watch caches hold every Deployment and the route.
    let overview = format!("{base}/ns/{NAMESPACE}");
    loop {
        let page = http.get(&overview).send().await.unwrap().text().await.unwrap();
        if page.matches("class=\"chip state-").count() >= DEPLOYMENTS && page.contains("v1 90%") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the overview never showed every Deployment");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let pages = [
        ("/healthz", "`/healthz` (floor)", &WRK),
        ("/ns/bench-floor", "overview, 150 Deployments", &WRK),
        ("/ns/bench-floor/routes/recommendation", "routing page (recommendation, 90/10)", &WRK),
        ("/ns/bench-floor/canaries/recommendation", "canary page (recommendation, 90/10, no canary)", &WRK),
        ("/audit", "`/audit` (first 50 of 10,000)", &WRK),
        ("/static/app.css", "`/static/app.css`", &WRK),
        ("/api/v1/audit/export?format=ndjson", "NDJSON export, 10,000 entries", &WRK_EXPORT),
    ];
    println!("load average before: {}", load_average());
    println!("| page | wrk | bytes | req/s | average | p99 | transfer/s | share of floor |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut floor = 0.0;
    let mut overview_cpu = Duration::ZERO;
    for (path, label, args) in pages {
        let url = format!("{base}{path}");
        let response = http.get(&url).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        let body = response.bytes().await.unwrap();
        let bytes = body.len();
        // What was measured, for a reviewer to read: target/tmp/floor/<path>.
        let dump = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("floor")
            .join(path.trim_start_matches('/').replace('/', "_"));
        std::fs::create_dir_all(dump.parent().unwrap()).unwrap();
        std::fs::write(&dump, &body).unwrap();
        let cpu_before = cpu_time();
        let run = wrk(args, &url);
        assert_eq!(run.non_2xx, 0, "{path}: answers other than 2xx or 3xx");
        if path == "/healthz" {
            floor = run.requests_per_second;
        }
        if path == "/ns/bench-floor" {
            // The server's CPU per overview: the bench process does nothing else meanwhile.
            overview_cpu = (cpu_time() - cpu_before).div_f64(run.requests_per_second * 8.0);
        }
        println!(
            "| {label} | `wrk {}` | {bytes} | {:.0} | {} | {} | {} | {:.2} |",
            args.join(" "),
            run.requests_per_second,
            run.average,
            run.p99,
            run.transfer,
            run.requests_per_second / floor
        );
    }
    println!("load average after: {}", load_average());

    let cost = graph_cost(&client).await;
    let per_view = cost.kept.as_secs_f64();
    println!(
        "service graph: {:.0} µs CPU to lay out, {:.0} µs to draw ({} bytes of SVG, {} of them the words), paid once \
         per change of its inputs; a view of the unchanged namespace reuses the rendered partial and pays nothing for \
         it, and rendering the partial again with unchanged graph inputs finds the kept drawing in {:.1} µs. The server \
         spends {:.0} µs CPU per overview under load, so the graph costs at most {:.1}% of the overview's throughput \
         ({:.0}% if drawn on every view)",
        cost.layout.as_secs_f64() * 1e6,
        cost.draw.as_secs_f64() * 1e6,
        cost.bytes,
        cost.words,
        per_view * 1e6,
        overview_cpu.as_secs_f64() * 1e6,
        per_view / overview_cpu.as_secs_f64() * 100.0,
        (cost.layout + cost.draw).as_secs_f64() / overview_cpu.as_secs_f64() * 100.0
    );
    server.shutdown().await.unwrap();
}
