//! What every benchmark needs of the dev cluster: its admin kubeconfig and a client.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The checkout's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The admin kubeconfig of the dev cluster (`make bench` starts it), or `SIGNALBOX_TEST_KUBECONFIG`.
pub fn kubeconfig() -> PathBuf {
    std::env::var_os("SIGNALBOX_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("deploy/devcluster/.state/admin.kubeconfig"))
}

/// A client for the dev cluster.
pub async fn client() -> kube::Client {
    let file = Kubeconfig::read_from(kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The resident memory of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// GETs `url` at `rate` requests/s for `seconds`, open loop (requests leave on schedule
/// whether or not earlier ones have finished): sorted latencies and the count of failures.
pub async fn fixed_rate(http: &reqwest::Client, url: &str, rate: u64, seconds: u64) -> (Vec<Duration>, usize) {
    let total = rate * seconds;
    let interval = Duration::from_micros(1_000_000 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let (http, url) = (http.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match http.get(&url).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latency, ok) = task.await.unwrap();
        latencies.push(latency);
        errors += usize::from(!ok);
    }
    latencies.sort();
    (latencies, errors)
}

/// The release build of signalbox on 127.0.0.1:`port`, choosing its namespaces with
/// `namespaces` (e.g. `["--namespace", "x"]`), its audit log in `database`.
pub fn start_release(port: u16, namespaces: &[&str], database: &Path) -> Child {
    Command::new(root().join("target/release/signalbox"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(namespaces)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .arg("--database")
        .arg(database)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("target/release/signalbox (run `cargo build --release` first)")
}
