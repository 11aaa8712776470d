//! `make bench`: how long after a route PUT's answer every in-scope proxy has ACKed the
//! change, with 10 and 100 simulated sidecars connected to the dev cluster's real istiod.
//! Prints p50/p99 over 50 changes each, and istiod's and signalbox's resident memory.
#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use signalbox::config::ServeConfig;
use support::{client, kubeconfig, root};

const CHANGES: usize = 50;

fn devcluster(verb: &str) -> String {
    let output = Command::new(root().join("deploy/devcluster/devcluster")).arg(verb).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn istiod_pid() -> String {
    let state = std::env::var("DEVCLUSTER_STATE").map(PathBuf::from).unwrap_or(root().join("deploy/devcluster/.state"));
    std::fs::read_to_string(state.join("pids/pilot-discovery.pid")).unwrap_or_default().trim().to_owned()
}

async fn create_pods(client: &kube::Client, namespace: &str, count: usize) {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    for index in 0..count {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("client-{index:03}"), "labels": {"app": "client", "version": "v1"}},
            "spec": {"containers": [{"name": "app", "image": "quay.io/rhdevelopers/istio-tutorial-customer:v1.1"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap_or(Value::Null)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(proxies: usize) {
    let client = client().await;
    let namespace = format!("bench-sync-{proxies}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig {
        istiod_url: Some(devcluster("istiod-monitoring")),
        ..ServeConfig::local(kubeconfig(), vec![namespace.clone()], dir.path().join("audit.db"))
    };
    let server = signalbox::app::start(config).await.unwrap();
    let base = format!("http://{}/api/v1/namespaces/{namespace}", server.addr());
    let http = reqwest::Client::new();
    for workload in ["recommendation-v1", "recommendation-v2"] {
        http.put(format!("{base}/workloads/{workload}")).json(&json!({})).send().await.unwrap();
    }
    create_pods(&client, &namespace, proxies - 2).await;
    let mut sidecars: Child = Command::new(root().join("deploy/devcluster/.bin/xds-client"))
        .args(["sidecars", "--xds", &devcluster("istiod-xds"), "--namespace", &namespace, "--kubeconfig"])
        .arg(kubeconfig())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sync_url = format!("{base}/routes/recommendation/sync");
    let deadline = Instant::now() + Duration::from_secs(120);
    while get_json(&http, &sync_url).await["total"].as_u64() != Some(proxies as u64) {
        assert!(Instant::now() < deadline, "{proxies} sidecars did not connect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut times = Vec::with_capacity(CHANGES);
    for change in 0..CHANGES {
        let canary = (change % 9 + 1) * 10;
        let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                          "rules": [{"route": {"version-v1": 100 - canary, "version-v2": canary}}]});
        let answer: Value =
            http.put(format!("{base}/routes/recommendation")).json(&body).send().await.unwrap().json().await.unwrap();
        let answered = Instant::now();
        loop {
            let sync = get_json(&http, &sync_url).await;
            if sync["auditId"] == answer["auditId"]
                && sync["total"].as_u64() == Some(proxies as u64)
                && sync["synced"] == sync["total"]
            {
                break;
            }
            assert!(answered.elapsed() < Duration::from_secs(30), "change {change} never reached every proxy: {sync}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(answered.elapsed());
    }
    times.sort();
    println!(
        "propagation, {proxies:>3} proxies: PUT answer → all ACKed over {CHANGES} changes: p50 {:.0} ms, p99 {:.0} ms; \
         RSS istiod {:.0} MiB, signalbox (bench process) {:.0} MiB",
        percentile(&times, 0.50).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        rss_mib(&istiod_pid()),
        rss_mib("self"),
    );
    let _ = sidecars.kill();
    let _ = sidecars.wait();
    server.shutdown().await.unwrap();
    let _ = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::background()).await;
}

#[tokio::main]
async fn main() {
    for proxies in [10, 100] {
        run(proxies).await;
    }
}
