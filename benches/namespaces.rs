//! Many namespaces, one console (issue "Many namespaces"): 200, then 1,000 namespaces, each
//! with 3 Services, 4 Deployments with running pods, 1 VirtualService and 1 DestinationRule,
//! selected by a label. For each size, a release build of signalbox started with
//! `--namespace-selector` is measured: time to ready, RSS, the watches the API server
//! serves it (from the API server's own gauge), the overview and the namespaces page at 50
//! requests/s, and how soon a namespace labelled while it runs is listed. At 1,000, the same
//! pages again with a team file of 1,000 teams, for a user of one and for the platform team.
//!
//! `cargo bench --bench namespaces` against the dev cluster (`make bench` runs it); the
//! namespaces stay, labelled `signalbox-bench=on`, so a second run skips the setup.
#[path = "support/mod.rs"]
mod support;

use std::process::Child;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::{client, fixed_rate, percentile, rss_mib, start_release};

const SIZES: [usize; 2] = [200, 1000];
const LABEL: &str = "signalbox-bench";
const PORT: u16 = 18091;
const RATE: u64 = 50;
const SECONDS: u64 = 10;
/// Simulated nodes with room for every benchmark pod (the dev cluster's two hold 110 each).
const NODES: usize = 5;
const PODS_PER_NODE: usize = 1000;

fn namespace_name(index: usize) -> String {
    format!("bench-ns-{index:04}")
}

async fn add_nodes(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    for index in 0..NODES {
        let name = format!("bench-node-{index}");
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "1000", "memory": "4Ti", "pods": PODS_PER_NODE.to_string()},
                       "capacity": {"cpu": "1000", "memory": "4Ti", "pods": PODS_PER_NODE.to_string()}}});
        nodes.patch(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&node)).await.unwrap();
        nodes.patch_status(&name, &PatchParams::apply("bench").force(), &Patch::Apply(&node)).await.unwrap();
    }
}

/// The objects of one namespace: the tutorial's three services, four versions, and the
/// recommendation routing (90/10).
fn objects(namespace: &str) -> Vec<(Kind, String, Value)> {
    let mut objects = Vec::new();
    for app in ["customer", "preference", "recommendation"] {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": {"app": app}},
                             "spec": {"ports": [{"name": "http", "port": 8080}], "selector": {"app": app}}});
        objects.push((Kind::Service, app.to_owned(), service));
    }
    for (app, version) in [("customer", "v1"), ("preference", "v1"), ("recommendation", "v1"), ("recommendation", "v2")]
    {
        let name = format!("{app}-{version}");
        let labels = json!({"app": app, "version": version});
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": app, "version": version, LABEL: "on"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": app, "image": "example/app:1"}]}}}});
        objects.push((Kind::Deployment, name, deployment));
    }
    let host = format!("recommendation.{namespace}.svc.cluster.local");
    let rule = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "recommendation"},
        "spec": {"host": host, "subsets": [{"name": "version-v1", "labels": {"version": "v1"}},
                                            {"name": "version-v2", "labels": {"version": "v2"}}]}});
    objects.push((Kind::DestinationRule, "recommendation".to_owned(), rule));
    let service = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "recommendation"},
        "spec": {"hosts": [host], "http": [{"route": [
            {"destination": {"host": host, "subset": "version-v1"}, "weight": 90},
            {"destination": {"host": host, "subset": "version-v2"}, "weight": 10}]}]}});
    objects.push((Kind::VirtualService, "recommendation".to_owned(), service));
    objects
}

/// Namespace `index` with its objects; labelled for the selector when `labelled`.
async fn populate(client: &kube::Client, index: usize, labelled: bool) {
    let name = namespace_name(index);
    let labels = if labelled { json!({LABEL: "on"}) } else { json!({}) };
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
    let apply = PatchParams::apply("bench").force();
    Api::<Namespace>::all(client.clone()).patch(&name, &apply, &Patch::Apply(&namespace)).await.unwrap();
    for (kind, object_name, object) in objects(&name) {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &name, &kind.api_resource());
        api.patch(&object_name, &apply, &Patch::Apply(&object)).await.unwrap();
    }
}

async fn populate_up_to(client: &kube::Client, count: usize) {
    let started = Instant::now();
    // A run before may have labelled more: exactly `count` are selected.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for namespace in namespaces.list(&ListParams::default().labels(&format!("{LABEL}=on"))).await.unwrap() {
        let name = namespace.metadata.name.unwrap_or_default();
        let index: usize = name.trim_start_matches("bench-ns-").parse().unwrap_or(0);
        if index >= count {
            let unlabel = json!({"metadata": {"labels": {LABEL: null}}});
            namespaces.patch(&name, &PatchParams::default(), &Patch::Merge(&unlabel)).await.unwrap();
        }
    }
    futures::stream::iter(0..count).for_each_concurrent(16, |index| populate(client, index, true)).await;
    println!("setup           {count} namespaces applied in {:.1} s", started.elapsed().as_secs_f64());
    let deployments: Api<Deployment> = Api::all(client.clone());
    let wanted = count * 4;
    loop {
        let list = deployments.list(&ListParams::default().labels(&format!("{LABEL}=on"))).await.unwrap();
        let ready = list.items.iter().filter(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1)).count();
        if ready >= wanted {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "only {ready} of {wanted} Deployments ready");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!("setup           {wanted} Deployments ready after {:.1} s", started.elapsed().as_secs_f64());
}

/// The kinds signalbox watches, as the API server names their resources.
const WATCHED: [&str; 7] =
    ["namespaces", "deployments", "services", "virtualservices", "destinationrules", "gateways", "httproutes"];

/// The API server's open watches of the kinds signalbox watches (its
/// `apiserver_longrunning_requests` gauge; istiod's analysis opens watches of other kinds
/// at its own pace), once the figure holds still for a second.
async fn open_watches(client: &kube::Client) -> u64 {
    let read = || async {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = client.request_text(request).await.unwrap();
        text.lines()
            .filter(|line| line.starts_with("apiserver_longrunning_requests{") && line.contains("verb=\"WATCH\""))
            .filter(|line| WATCHED.iter().any(|resource| line.contains(&format!("resource=\"{resource}\""))))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let mut last = read().await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// The console under test, stopped however the measurement ends (a failed assertion too).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn measure(client: &kube::Client, count: usize, http: &reqwest::Client) {
    let before = open_watches(client).await;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let server =
        Running(start_release(PORT, &["--namespace-selector", &format!("{LABEL}=on")], &dir.path().join("audit.db")));
    let base = format!("http://127.0.0.1:{PORT}");
    while !matches!(http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(120), "signalbox did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready = started.elapsed();
    let listed: Value = http.get(format!("{base}/api/v1/namespaces")).send().await.unwrap().json().await.unwrap();
    let listed = listed["namespaces"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(listed, count, "every labelled namespace is managed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watches = open_watches(client).await.saturating_sub(before);
    let idle_rss = rss_mib(server.0.id());

    let overview = format!("{base}/ns/{}", namespace_name(count / 2));
    let page = http.get(&overview).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("recommendation"), "the overview lists the namespace's services");
    let (overview_latencies, overview_errors) = fixed_rate(http, &overview, RATE, SECONDS).await;
    let (list_latencies, list_errors) = fixed_rate(http, &format!("{base}/namespaces"), RATE, SECONDS).await;
    let busy_rss = rss_mib(server.0.id());

    // A namespace labelled while signalbox runs.
    let newcomer = namespace_name(count);
    populate(client, count, false).await;
    let label = json!({"metadata": {"labels": {LABEL: "on"}}});
    let labelled = Instant::now();
    Api::<Namespace>::all(client.clone())
        .patch(&newcomer, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let visible = loop {
        let url = format!("{base}/api/v1/namespaces?q={newcomer}");
        let found: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        if found["namespaces"][0]["services"] == 3 {
            break labelled.elapsed();
        }
        assert!(labelled.elapsed() < Duration::from_secs(30), "the labelled namespace never showed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let unlabel = json!({"metadata": {"labels": {LABEL: null}}});
    Api::<Namespace>::all(client.clone())
        .patch(&newcomer, &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    drop(server);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("namespaces      {count} selected by {LABEL}=on");
    println!("ready           {:.2} s after start", ready.as_secs_f64());
    println!("watches         {watches} opened on the API server");
    println!("rss             ready {idle_rss:.1} MiB   after load {busy_rss:.1} MiB");
    for (name, latencies, errors) in
        [("overview", &overview_latencies, overview_errors), ("namespaces page", &list_latencies, list_errors)]
    {
        println!(
            "{name:<15} {RATE} req/s for {SECONDS} s: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   {errors} errors",
            ms(percentile(latencies, 0.5)),
            ms(percentile(latencies, 0.99)),
            ms(*latencies.last().unwrap())
        );
    }
    println!("labelled        listed {:.0} ms after the label was set", ms(visible));
    println!();
}

/// A team file of `count` teams, one a namespace (`user-<i>` in `bench-ns-<i>`), and a
/// platform team seeing every namespace (`pat`).
fn team_file(count: usize) -> String {
    let mut file = String::from(
        "teams:\n  - name: platform\n    members: {users: [pat]}\n    namespaces: ['*']\n    actions: [view]\n",
    );
    for index in 0..count {
        let (user, namespace) = (format!("user-{index}"), namespace_name(index));
        file.push_str(&format!(
            "  - name: team-{index}\n    members: {{users: [{user}]}}\n    namespaces: [{namespace}]\n    actions: [view, route]\n"
        ));
    }
    file
}

/// The namespaces page and an overview with `--teams` (a team file of `count` teams), for a
/// user of one team and for the platform team, who sees every namespace.
async fn measure_teams(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    std::fs::write(&teams, team_file(count)).unwrap();
    let selector = format!("{LABEL}=on");
    let arguments =
        ["--namespace-selector", &selector, "--teams", teams.to_str().unwrap(), "--trusted-proxy", "127.0.0.1/32"];
    let server = Running(start_release(PORT, &arguments, &dir.path().join("audit.db")));
    let base = format!("http://127.0.0.1:{PORT}");
    let anonymous = reqwest::Client::new();
    let started = Instant::now();
    while !matches!(anonymous.get(format!("{base}/readyz")).send().await, Ok(r) if r.status().is_success()) {
        assert!(started.elapsed() < Duration::from_secs(120), "signalbox did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let one = namespace_name(count / 2);
    for (user, sees) in [(format!("user-{}", count / 2), 1), ("pat".to_owned(), count)] {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-user", user.parse().unwrap());
        let http = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(64).build().unwrap();
        let listed: Value = http.get(format!("{base}/api/v1/namespaces")).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["namespaces"].as_array().map(Vec::len), Some(sees), "{user} sees their namespaces");
        for (page, url) in [("namespaces page", format!("{base}/namespaces")), ("overview", format!("{base}/ns/{one}"))]
        {
            let (latencies, errors) = fixed_rate(&http, &url, RATE, SECONDS).await;
            println!(
                "teams: {user:<9} {page:<15} ({sees} visible) p50 {:.2} ms   p99 {:.2} ms   {errors} errors",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99)),
            );
        }
    }
    println!("teams: rss      {:.1} MiB with a team file of {count} teams", rss_mib(server.0.id()));
}

#[tokio::main]
async fn main() {
    let client = client().await;
    add_nodes(&client).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();
    for count in SIZES {
        populate_up_to(&client, count).await;
        measure(&client, count, &http).await;
    }
    measure_teams(SIZES[SIZES.len() - 1]).await;
}
