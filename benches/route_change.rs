//! `make bench`: what the change path costs a weights change, against the least a client can
//! do for it: one server-side-apply PATCH of the same VirtualService. Both go through the dev
//! cluster's real kube-apiserver and istiod's validating webhook. The console's PUT also
//! authorizes, reads the live routing, dry-runs, writes its audit record (fsync'd) and records
//! the outcome. Measured two ways: a PUT on its own (it dry-runs), and a PUT of exactly what a
//! `dryRun=true` PUT just previewed (it takes the preview's dry run, as the page's Apply does
//! after its Preview; the preview is not timed). Median (and p90) of 24 each, interleaved so
//! that all see the same cluster. Target (issue "One road per use case"): a route change at
//! most 2x the PATCH.
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use signalbox::config::ServeConfig;
use support::{client, kubeconfig};

const CHANGES: usize = 24;

fn policy(canary: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": 100 - canary, "version-v2": canary}}]})
}

/// The VirtualService signalbox wrote, with other weights: what a raw client would apply.
fn raw_virtual_service(live: &DynamicObject, canary: u32) -> Value {
    let mut object = serde_json::to_value(live).unwrap();
    let metadata = json!({"name": live.metadata.name, "namespace": live.metadata.namespace});
    object["metadata"] = metadata;
    let routes = object["spec"]["http"][0]["route"].as_array_mut().unwrap();
    routes[0]["weight"] = json!(100 - canary);
    routes[1]["weight"] = json!(canary);
    object
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn p90(times: &[Duration]) -> Duration {
    times[((times.len() as f64 - 1.0) * 0.9).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let client = client().await;
    let namespace = format!("bench-route-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = ServeConfig::local(kubeconfig(), vec![namespace.clone()], dir.path().join("audit.db"));
    let server = signalbox::app::start(config).await.unwrap();
    let base = format!("http://{}/api/v1/namespaces/{namespace}", server.addr());
    let http = reqwest::Client::new();
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let answer = http.put(format!("{base}/workloads/{workload}")).json(&json!({})).send().await.unwrap();
        assert!(answer.status().is_success(), "deploy {workload}");
    }
    let first = http.put(format!("{base}/routes/recommendation")).json(&policy(10)).send().await.unwrap();
    assert!(first.status().is_success(), "the first routing: {}", first.text().await.unwrap());
    let virtual_services =
        Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &Kind::VirtualService.api_resource());
    let live = virtual_services.get("recommendation").await.unwrap();
    let raw_apply = PatchParams::apply("bench-raw-client").force();
    let raw_dry_run = PatchParams { dry_run: true, ..raw_apply.clone() };

    let [mut console, mut previewed, mut raw, mut checked] = std::array::from_fn(|_| Vec::with_capacity(CHANGES));
    for change in 0..CHANGES {
        let canary = (change % 9 + 1) as u32 * 10;
        let put = || async {
            let started = Instant::now();
            let answer = http.put(format!("{base}/routes/recommendation")).json(&policy(canary)).send().await.unwrap();
            assert!(answer.status().is_success(), "change {change}: {}", answer.text().await.unwrap());
            started.elapsed()
        };
        let preview_then_put = || async {
            // Weights neither of the others writes: a change, not a no-op.
            let body = policy(canary + 5);
            let preview = http.put(format!("{base}/routes/recommendation?dryRun=true")).json(&body);
            let answer = preview.send().await.unwrap();
            assert!(answer.status().is_success(), "preview {change}: {}", answer.text().await.unwrap());
            let started = Instant::now();
            let answer = http.put(format!("{base}/routes/recommendation")).json(&body).send();
            let answer = answer.await.unwrap();
            assert!(answer.status().is_success(), "previewed change {change}: {}", answer.text().await.unwrap());
            started.elapsed()
        };
        let patch = || async {
            let object = raw_virtual_service(&live, 100 - canary);
            let started = Instant::now();
            virtual_services.patch("recommendation", &raw_apply, &Patch::Apply(&object)).await.unwrap();
            started.elapsed()
        };
        // What any path that dry-runs before it writes pays at least, without signalbox.
        let checked_patch = || async {
            let object = raw_virtual_service(&live, canary + 5);
            let started = Instant::now();
            virtual_services.patch("recommendation", &raw_dry_run, &Patch::Apply(&object)).await.unwrap();
            virtual_services.patch("recommendation", &raw_apply, &Patch::Apply(&object)).await.unwrap();
            started.elapsed()
        };
        // Apart, so that neither pays for the other's echo (signalbox records the raw PATCH as
        // an outside change).
        let settle = || tokio::time::sleep(Duration::from_millis(200));
        if change % 2 == 0 {
            console.push(put().await);
            settle().await;
            raw.push(patch().await);
            settle().await;
            previewed.push(preview_then_put().await);
            settle().await;
            checked.push(checked_patch().await);
        } else {
            checked.push(checked_patch().await);
            settle().await;
            previewed.push(preview_then_put().await);
            settle().await;
            raw.push(patch().await);
            settle().await;
            console.push(put().await);
        }
        settle().await;
    }
    let raw_median = median(&mut raw);
    println!(
        "raw server-side-apply PATCH (weights, {CHANGES}): median {:.1} ms (p90 {:.1})",
        ms(raw_median),
        ms(p90(&raw))
    );
    let rows = [
        ("raw dry-run PATCH then PATCH, no signalbox", &mut checked),
        ("console PUT", &mut console),
        ("console PUT of what was previewed", &mut previewed),
    ];
    for (what, times) in rows {
        let console_median = median(times);
        println!(
            "route change, {what}: median {:.1} ms (p90 {:.1}); ratio to the raw PATCH {:.2}",
            ms(console_median),
            ms(p90(times)),
            console_median.as_secs_f64() / raw_median.as_secs_f64(),
        );
    }
    println!("target (issue \"One road per use case\"): a route change at most 2x the raw PATCH");
    server.shutdown().await.unwrap();
    let _ = Api::<Namespace>::all(client).delete(&namespace, &DeleteParams::background()).await;
}
