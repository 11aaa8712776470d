//! `make bench`: the audit store's durable append rate, and the history at a million
//! entries — the first page and filtered pages, through HTTP from an in-process signalbox
//! (the dev cluster must answer; the pages themselves read only SQLite).
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use signalbox::audit::{AuditStore, NewEntry, Outcome, Source};
use signalbox::config::ServeConfig;
use support::kubeconfig;

#[path = "../tests/support/bulk_audit.rs"]
mod bulk_audit;

const APPENDS: usize = 4000;
const WRITERS: usize = 8;
const HISTORY: i64 = 1_000_000;
const PAGE_RUNS: usize = 50;

fn entry(index: usize) -> NewEntry {
    NewEntry {
        actor: format!("user-{}", index % 10),
        groups: vec!["team-reco".into()],
        source: Source::Api,
        action: "route.update".into(),
        namespace: "tutorial".into(),
        kind: "VirtualService".into(),
        name: "recommendation".into(),
        summary: "recommendation: v1 90%→75%, v2 10%→25%".into(),
        before: Some(json!({"spec": {"http": [{"route": [{"weight": 90}, {"weight": 10}]}]}})),
        after: Some(json!({"spec": {"http": [{"route": [{"weight": 75}, {"weight": 25}]}]}})),
        operations: json!([]),
        outcome: Outcome::Applied,
        error: None,
        request_id: Some(format!("req-{index}")),
        reverts: None,
    }
}

/// Durable appends per second with `WRITERS` concurrent writers (each commit is synced).
async fn append_rate(dir: &std::path::Path) -> f64 {
    let store = AuditStore::open(&dir.join("appends.db")).await.unwrap();
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for index in (writer..APPENDS).step_by(WRITERS) {
                    store.record(&entry(index)).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let rate = APPENDS as f64 / started.elapsed().as_secs_f64();
    assert!(store.verify().await.unwrap().is_intact());
    store.close().await;
    rate
}

async fn timings(http: &reqwest::Client, url: &str) -> (Duration, Duration, usize) {
    let mut samples = Vec::with_capacity(PAGE_RUNS);
    let mut size = 0;
    for _ in 0..PAGE_RUNS {
        let started = Instant::now();
        let response = http.get(url).send().await.unwrap();
        assert!(response.status().is_success(), "{url}: {}", response.status());
        size = response.bytes().await.unwrap().len();
        samples.push(started.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1], size)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let rate = append_rate(dir.path()).await;
    println!("durable appends: {rate:.0}/s ({APPENDS} entries, {WRITERS} concurrent writers, synchronous=FULL)");

    let database = dir.path().join("history.db");
    AuditStore::open(&database).await.unwrap().close().await;
    let started = Instant::now();
    bulk_audit::insert_entries(&database, HISTORY).await;
    println!("filled {HISTORY} entries in {:.1} s", started.elapsed().as_secs_f64());

    let config = ServeConfig::local(kubeconfig(), vec!["bench-audit".into()], database);
    let server = signalbox::app::start(config).await.unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::new();
    println!("| page | p50 | max | bytes |");
    println!("| --- | --- | --- | --- |");
    for path in [
        "/audit",
        "/audit?actor=user-3",
        "/audit?namespace=team-1&object=host-7",
        "/audit?action=route.",
        "/audit?outcome=denied",
        "/audit?source=external",
        "/audit?actor=user-3&before=500000",
        "/api/v1/audit?limit=50&actor=user-3&action=workload.scale",
    ] {
        let (p50, max, size) = timings(&http, &format!("{base}{path}")).await;
        println!("| `{path}` | {:.2} ms | {:.2} ms | {size} |", p50.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3);
    }
    let time_range = {
        let now = jiff::Timestamp::now();
        let from = now - jiff::SignedDuration::from_hours(100);
        let to = now - jiff::SignedDuration::from_hours(99);
        format!("/audit?from={}&to={}", from.strftime("%Y-%m-%dT%H:%M"), to.strftime("%Y-%m-%dT%H:%M"))
    };
    let (p50, max, size) = timings(&http, &format!("{base}{time_range}")).await;
    println!(
        "| `/audit?from=…&to=…` (one hour, 100 h ago) | {:.2} ms | {:.2} ms | {size} |",
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    server.shutdown().await.unwrap();
}
