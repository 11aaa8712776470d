//! `/readyz` answers anyone who reaches the port, without identity (the kubelet probes it).
//! The attacker here is any client on the network path to the console: it floods `/readyz`
//! while operators change workloads through the API. What must not happen: probes taking
//! SQLite's write lock one after another (each change's audit entry then queues behind
//! them), changes failing or slowing down markedly, or work piling up per probe.
use crate::support;

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestNamespace;
use support::console::Console;

/// Clients flooding at once, and requests each (2,000 in all), loopback only.
const FLOODERS: usize = 8;
const PROBES_EACH: usize = 250;
/// The flood ends by this time whatever happens.
const FLOOD_FOR_AT_MOST: Duration = Duration::from_secs(30);
/// Workload changes timed without and with the flood.
const CHANGES: usize = 9;

/// Scales recommendation-v1 between 1 and 2 replicas `CHANGES` times; each must succeed.
async fn timed_changes(console: &Console) -> Vec<Duration> {
    let mut times = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        let replicas = 1 + (n % 2);
        let started = Instant::now();
        let (status, body) = console
            .send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), Some(json!({"replicas": replicas})))
            .await;
        times.push(started.elapsed());
        assert_eq!(status, StatusCode::OK, "change {n}: {body}");
    }
    times
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn a_readiness_flood_neither_takes_the_write_lock_nor_slows_changes() {
    let ns = TestNamespace::new("readyz-flood").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1"]).await;
    let quiet = median(timed_changes(&console).await);

    let audit = console.server.state.audit.clone();
    let probes_before = audit.writability_probes();
    let flood_started = Instant::now();
    let url = console.url("/readyz");
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                let mut ready = 0;
                for _ in 0..PROBES_EACH {
                    if flood_started.elapsed() > FLOOD_FOR_AT_MOST {
                        break;
                    }
                    // Some answers may be dropped midway: the attacker does not wait for them.
                    if let Ok(response) = http.get(&url).send().await {
                        ready += usize::from(response.status() == StatusCode::OK);
                    }
                }
                ready
            })
        })
        .collect();
    let flooded = median(timed_changes(&console).await);
    let mut ready = 0;
    for flooder in flooders {
        ready += flooder.await.unwrap();
    }
    let flood_took = flood_started.elapsed();
    let probes = audit.writability_probes() - probes_before;

    assert!(ready >= FLOODERS * PROBES_EACH * 9 / 10, "the flood was answered, ready: {ready} in {flood_took:?}");
    // One background probe per 5 s at most, not one per request.
    let allowed = flood_took.as_secs() / 5 + 2;
    assert!(probes <= allowed, "{probes} write-lock probes during a flood of {flood_took:?} (at most {allowed})");
    assert!(
        flooded <= quiet * 5 + Duration::from_millis(250),
        "changes slowed by the flood: median {flooded:?} against {quiet:?} without it"
    );
    let ready = console.page("/readyz").await;
    assert!(ready.contains("database: writable"), "{ready}");
    console.stop().await;
}
