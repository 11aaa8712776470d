//! The console opens one watch per kind and namespace it reads, as the API server counts
//! them (its `apiserver_longrunning_requests{verb="WATCH"}` gauge): the watch that fills a
//! cache also feeds the outside-change detection, so none is opened twice.
//!
//! The gauge counts every client of the dev cluster, so this test binary holds this one
//! test (cargo runs test binaries one after another) and compares the counts before and
//! after the console starts; the cluster's own components (controllers, istiod) keep
//! theirs open meanwhile.
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::TestNamespace;
use support::console::Console;

/// Open watches per resource (`virtualservices`, `services`, ...), summed over scopes.
type WatchCounts = BTreeMap<String, i64>;

async fn open_watches(ns: &TestNamespace) -> WatchCounts {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = ns.client.request_text(request).await.expect("the API server's /metrics");
    let mut counts = WatchCounts::new();
    for line in metrics.lines().filter(|line| line.starts_with("apiserver_longrunning_requests{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        if !labels.contains(r#"verb="WATCH""#) {
            continue;
        }
        let resource = labels.split(r#"resource=""#).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("");
        *counts.entry(resource.to_owned()).or_default() += value.parse::<f64>().unwrap_or(0.0) as i64;
    }
    counts
}

/// The counts once they hold still for a second: a component re-opening its watch (they
/// do every few minutes) shows as a brief dip.
async fn settled_watches(ns: &TestNamespace) -> WatchCounts {
    let mut last = open_watches(ns).await;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = open_watches(ns).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the API server's watch counts never held still: {last:?}");
}

fn added(before: &WatchCounts, after: &WatchCounts) -> WatchCounts {
    after
        .iter()
        .map(|(resource, count)| (resource.clone(), count - before.get(resource).copied().unwrap_or(0)))
        .filter(|(_, added)| *added != 0)
        .collect()
}

#[tokio::test]
async fn the_console_opens_one_watch_per_kind_and_namespace() {
    let ns = TestNamespace::new("watches").await;
    let before = settled_watches(&ns).await;
    let console = Console::start(&ns.name).await;

    // In the managed namespace: the six kinds its pages show (their outside changes are
    // detected on the same watches); cluster-wide: Namespaces; in istio-system: Services.
    let expected: WatchCounts = [
        ("deployments", 1),
        ("services", 2),
        ("virtualservices", 1),
        ("destinationrules", 1),
        ("gateways", 1),
        ("httproutes", 1),
        ("namespaces", 1),
    ]
    .into_iter()
    .map(|(resource, count)| (resource.to_owned(), count))
    .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut opened = added(&before, &settled_watches(&ns).await);
    while opened != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        opened = added(&before, &settled_watches(&ns).await);
    }
    println!(
        "watches the console opened (managing one namespace): {opened:?}, {} in all",
        opened.values().sum::<i64>()
    );
    assert_eq!(opened, expected, "one watch per kind and namespace");
    console.stop().await;
}
