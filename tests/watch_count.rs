//! The console opens one watch per kind and namespace it reads, as the API server counts
//! them (its `apiserver_longrunning_requests{verb="WATCH"}` gauge): the watch that fills a
//! cache also feeds the outside-change detection, so none is opened twice.
//!
//! Readers of a host's routing do not make the console LIST the namespace's objects on every
//! request (`apiserver_request_total{verb="LIST"}`).
//!
//! The API server's figures count every client of the dev cluster, so this test binary
//! holds only these tests (cargo runs test binaries one after another), one at a time, and
//! compares the counts before and after; the cluster's own components (controllers, istiod)
//! keep theirs open meanwhile.
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

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

/// The tests of this binary take turns: each counts what every client asks of the API server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn the_console_opens_one_watch_per_kind_and_namespace() {
    let _turn = ONE_AT_A_TIME.lock().await;
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
    let opened = watches_settle_at(&ns, &before, &expected).await;
    println!(
        "watches the console opened (managing one namespace): {opened:?}, {} in all",
        opened.values().sum::<i64>()
    );
    assert_eq!(opened, expected, "one watch per kind and namespace");
    console.stop().await;
}

/// Waits until the console's watches (added to `before`) are `expected`; returns what it saw.
async fn watches_settle_at(ns: &TestNamespace, before: &WatchCounts, expected: &WatchCounts) -> WatchCounts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut opened = added(before, &settled_watches(ns).await);
    while &opened != expected && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        opened = added(before, &settled_watches(ns).await);
    }
    opened
}

/// With `--namespace-selector` each kind is watched once, cluster-wide: seven watches for
/// three namespaces, and still seven after five more are labelled while it runs.
#[tokio::test]
async fn a_selector_console_opens_one_watch_per_kind_whatever_the_namespaces() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let group = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut namespaces = Vec::new();
    for _ in 0..8 {
        namespaces.push(TestNamespace::new("watchsel").await);
    }
    let label = |ns: &TestNamespace| {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(ns.client.clone());
        let (name, patch) = (ns.name.clone(), json!({"metadata": {"labels": {"signalbox-test/watches": group}}}));
        async move { api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch)).await.unwrap() }
    };
    for ns in &namespaces[..3] {
        label(ns).await;
    }
    let before = settled_watches(&namespaces[0]).await;
    let console = Console::start_with(&namespaces[0].name, |config| {
        config.namespaces = Vec::new();
        config.namespace_selector = Some(format!("signalbox-test/watches={group}"));
    })
    .await;
    let expected: WatchCounts =
        ["deployments", "services", "virtualservices", "destinationrules", "gateways", "httproutes", "namespaces"]
            .into_iter()
            .map(|resource| (resource.to_owned(), 1))
            .collect();
    let opened = watches_settle_at(&namespaces[0], &before, &expected).await;
    assert_eq!(opened, expected, "one cluster-wide watch per kind for three namespaces");
    for ns in &namespaces[3..] {
        label(ns).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, listed) = console.get_json(&console.url("/api/v1/namespaces")).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        if listed["namespaces"].as_array().map_or(0, Vec::len) == 8 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the labelled namespaces joined: {listed}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opened = watches_settle_at(&namespaces[0], &before, &expected).await;
    println!("watches of a selector console over 8 namespaces: {opened:?}");
    assert_eq!(opened, expected, "none more for five namespaces labelled while it runs");
    console.stop().await;
}

/// LISTs of VirtualServices the API server has answered so far, to every client.
async fn virtual_service_lists(ns: &TestNamespace) -> f64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let metrics = ns.client.request_text(request).await.expect("the API server's /metrics");
    metrics
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| line.contains(r#"verb="LIST""#) && line.contains(r#"resource="virtualservices""#))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The routing page shown after a change (`?change=`, which anyone who may view the host can
/// open again and again) is served from the watch caches once they hold the console's own
/// writes: twenty views make no LIST of the namespace's VirtualServices (each made one
/// before). The page right after a change still shows it.
#[tokio::test]
async fn the_page_after_a_change_is_served_from_the_caches() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let ns = TestNamespace::new("lists").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let routes = console.api("/routes/recommendation");
    let mut last_change = 0;
    for v1 in [90, 75, 50] {
        let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                          "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]});
        let (status, answer) = console.send_json(Method::PUT, &routes, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        last_change = answer["auditId"].as_i64().unwrap();
        let page = format!("/ns/{}/routes/recommendation?change={last_change}", ns.name);
        let html = console.page(&page).await;
        assert!(html.contains(&format!("id=\"weight-version-v1\" inputmode=\"numeric\" value=\"{v1}\"")), "{html}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the caches take the last write's echo
    let before = virtual_service_lists(&ns).await;
    let page = format!("/ns/{}/routes/recommendation?change={last_change}", ns.name);
    for _ in 0..20 {
        assert!(console.page(&page).await.contains("value=\"50\""), "the routing page after the change");
    }
    let listed = virtual_service_lists(&ns).await - before;
    println!("LISTs of VirtualServices during 20 views: {listed}");
    assert!(listed <= 2.0, "{listed} LISTs for 20 views (the cluster's own components may make one or two)");
    console.stop().await;
}
