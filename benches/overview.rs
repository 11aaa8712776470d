//! `make bench`: the overview of a namespace with 50 services × 3 versions, served from the
//! watch cache by a release build of signalbox, under load from this process on loopback.
//! Prints requests/s, p50/p99 latency at a fixed 500 requests/s and idle RSS.
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use signalbox::cluster::Kind;
use support::{client, fixed_rate, percentile, rss_mib, start_release};

const SERVICES: usize = 50;
const VERSIONS: usize = 3;
const RATE_PER_SECOND: u64 = 500;
const FIXED_RATE_SECONDS: u64 = 10;
const SATURATION_SECONDS: u64 = 5;
const SATURATION_CONNECTIONS: usize = 16;
const PORT: u16 = 18089;

/// 50 services, each with a Service and 3 versioned Deployments.
async fn populate(client: &kube::Client, namespace: &str) {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap())
        .await;
    let apply = PatchParams::apply("bench");
    let deployments: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &Kind::Deployment.api_resource());
    let services: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &Kind::Service.api_resource());
    for service in 0..SERVICES {
        let app = format!("svc-{service:02}");
        let object = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app},
                            "spec": {"ports": [{"port": 8080}], "selector": {"app": app}}});
        services.patch(&app, &apply, &Patch::Apply(&object)).await.unwrap();
        for version in 1..=VERSIONS {
            let name = format!("{app}-v{version}");
            let labels = json!({"app": app, "version": format!("v{version}")});
            let object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": "example/app:1"}]}}}});
            deployments.patch(&name, &apply, &Patch::Apply(&object)).await.unwrap();
        }
    }
}

async fn saturation(http: &reqwest::Client, url: &str) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(SATURATION_SECONDS);
    let counts: Vec<_> = (0..SATURATION_CONNECTIONS)
        .map(|_| {
            let (http, url) = (http.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if let Ok(response) = http.get(&url).send().await {
                        let _ = response.bytes().await;
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for count in counts {
        total += count.await.unwrap();
    }
    total as f64 / SATURATION_SECONDS as f64
}

#[tokio::main]
async fn main() {
    let namespace = "bench-overview";
    let client = client().await;
    populate(&client, namespace).await;
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_release(PORT, &["--namespace", namespace], &dir.path().join("audit.db"));
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    let ready = format!("http://127.0.0.1:{PORT}/readyz");
    let started = Instant::now();
    while !matches!(http.get(&ready).send().await, Ok(r) if r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(30), "signalbox did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("http://127.0.0.1:{PORT}/ns/{namespace}");
    let page = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.matches("class=\"chip state-").count() >= SERVICES * VERSIONS, "overview lists every version");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_mib(server.id());

    let (latencies, errors) = fixed_rate(&http, &url, RATE_PER_SECOND, FIXED_RATE_SECONDS).await;
    let busy_rss = rss_mib(server.id());
    let throughput = saturation(&http, &url).await;
    let _ = server.kill();
    let _ = server.wait();

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("overview of {SERVICES} services x {VERSIONS} versions ({} bytes)", page.len());
    println!(
        "fixed rate      {RATE_PER_SECOND} req/s for {FIXED_RATE_SECONDS} s: {} requests, {errors} errors",
        latencies.len()
    );
    println!(
        "latency         p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "saturation      {throughput:.0} req/s with {SATURATION_CONNECTIONS} connections for {SATURATION_SECONDS} s"
    );
    println!("rss             idle {idle_rss:.1} MiB   after load {busy_rss:.1} MiB");
}
