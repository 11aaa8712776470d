//! When the proxies have a change, against the real istiod with simulated sidecars: every
//! proxy ACKs, one NACKs, one never answers, none is connected, istiod is unreachable.
use crate::support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::console::Console;
use support::sidecars::{SimulatedSidecars, connected, istiod_monitoring_url, pod_with_sidecar};
use support::{TestNamespace, eventually};

async fn console_with_istiod(ns: &TestNamespace) -> Console {
    Console::start_with(&ns.name, |config| config.istiod_url = Some(istiod_monitoring_url())).await
}

fn policy(v1: u32, v2: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]})
}

async fn put_and_wait(console: &Console, body: Value, wait: &str) -> Value {
    let url = console.api(&format!("/routes/recommendation?waitForProxies={wait}"));
    let (status, answer) = console.send_json(Method::PUT, &url, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

fn states(sync: &Value) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = sync["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["name"].as_str().unwrap().split('.').next().unwrap().to_owned(), p["rds"].as_str().unwrap().to_owned())
        })
        .collect();
    states.sort();
    states
}

#[tokio::test]
async fn a_change_reaches_every_proxy_and_the_audit_entry_says_when() {
    let ns = TestNamespace::new("sync").await;
    let console = console_with_istiod(&ns).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;

    // Before any sidecar connects, nobody pretends.
    let answer = put_and_wait(&console, policy(100, 0), "2s").await;
    assert_eq!(answer["sync"]["total"], 0, "{answer}");
    assert_eq!(answer["sync"]["summary"], "no proxies connected", "{answer}");

    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    let answer = put_and_wait(&console, policy(90, 10), "10s").await;
    let sync = &answer["sync"];
    assert_eq!((sync["synced"].as_u64(), sync["total"].as_u64()), (Some(3), Some(3)), "{answer}");
    assert!(sync["proxies"].as_array().unwrap().iter().all(|p| p["rds"] == "synced" && p["error"].is_null()));
    let summary = sync["summary"].as_str().unwrap();
    assert!(summary.starts_with("reached 3/3 proxies in ") && summary.ends_with(" s"), "{summary}");
    assert_eq!(sync["auditId"], answer["auditId"]);

    let (status, read) = console.get_json(&console.api("/routes/recommendation/sync")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((read["synced"].as_u64(), read["total"].as_u64()), (Some(3), Some(3)), "{read}");

    let id = answer["auditId"].as_i64().unwrap();
    let entry = eventually(Duration::from_secs(10), "the propagation follow-up record", || async {
        let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{id}"))).await;
        entry["propagation"].is_string().then_some(entry)
    })
    .await;
    assert!(entry["propagation"].as_str().unwrap().starts_with("reached 3/3 proxies in "), "{entry}");
    let (_, verified) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert!(verified["first_mismatch"].is_null(), "the follow-up record is chained: {verified}");

    // The routing page after Apply shows the same, without JavaScript.
    let html = console.page(&format!("/ns/{}/routes/recommendation?change={id}", ns.name)).await;
    assert!(html.contains("id=\"proxy-sync\"") && html.contains("reached 3/3 proxies in "), "{html}");

    // A canary step is a routing change too: its page shows how far it got.
    let canary = console.api("/canaries/recommendation");
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 50, 100]});
    let (status, started) = console.send_json(Method::POST, &canary, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let page = format!("/ns/{}/canaries/recommendation?change={}", ns.name, started["auditId"]);
    let html = eventually(Duration::from_secs(10), "the canary page showing the proxies reached", || async {
        let html = console.http.get(console.url(&page)).send().await.ok()?.text().await.ok()?;
        html.contains("reached 3/3 proxies").then_some(html)
    })
    .await;
    assert!(html.contains("id=\"proxy-sync\""));
    console.stop().await;
}

#[tokio::test]
async fn stale_and_rejecting_proxies_are_named() {
    let ns = TestNamespace::new("sync-bad").await;
    let console = console_with_istiod(&ns).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    pod_with_sidecar(&ns, "picky", "customer", "nack").await;
    pod_with_sidecar(&ns, "silent", "customer", "ignore").await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 4).await;

    let answer = put_and_wait(&console, policy(75, 25), "3s").await;
    let sync = &answer["sync"];
    assert_eq!((sync["synced"].as_u64(), sync["total"].as_u64()), (Some(2), Some(4)), "{answer}");
    let states = states(sync);
    assert!(states.contains(&("picky".into(), "error".into())), "{states:?}");
    assert!(states.contains(&("silent".into(), "stale".into())), "{states:?}");
    let picky = sync["proxies"].as_array().unwrap().iter().find(|p| p["name"].as_str().unwrap().starts_with("picky"));
    assert!(picky.unwrap()["error"].as_str().unwrap().contains("rejected"), "{answer}");
    let summary = sync["summary"].as_str().unwrap();
    assert!(summary.starts_with("reaching proxies: 2/4"), "{summary}");
    assert!(summary.contains("stale: silent.") && summary.contains("rejected by picky."), "{summary}");

    let id = answer["auditId"].as_i64().unwrap();
    let html = console.page(&format!("/ns/{}/routes/recommendation?change={id}", ns.name)).await;
    assert!(html.contains("reaching proxies: 2/4") && html.contains("hx-get="), "still polling: {html}");
    console.stop().await;
}

#[tokio::test]
async fn an_unreachable_istiod_is_said_plainly() {
    let ns = TestNamespace::new("sync-down").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let console =
        Console::start_with(&ns.name, |config| config.istiod_url = Some(format!("http://127.0.0.1:{port}"))).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let answer = put_and_wait(&console, policy(100, 0), "1s").await;
    assert!(answer["sync"]["unavailable"].as_str().unwrap().contains("unreachable"), "{answer}");
    assert!(answer["sync"]["summary"].as_str().unwrap().starts_with("propagation unknown: istiod at"), "{answer}");
    let (_, read) = console.get_json(&console.api("/routes/recommendation/sync")).await;
    assert_eq!(read["total"], 0);
    assert!(read["unavailable"].is_string(), "{read}");
    console.stop().await;
}

/// A viewer of one host (victor, who may view recommendation only) reads the sync report of
/// its change: the recommendation proxies by name, every other proxy of the namespace only
/// counted, never named (their pod names say which other services run there).
#[tokio::test]
async fn a_viewer_of_one_host_sees_the_proxies_of_other_services_only_counted() {
    let teams = "teams:
  - {name: platform, members: {groups: [admins]}, namespaces: ['*'], actions: [admin]}
  - {name: reco-viewers, members: {users: [victor]}, namespaces: [{ns}], hosts: [recommendation], actions: [view]}
";
    let ns = TestNamespace::new("syncview").await;
    let console = Console::start_with_teams_and(&ns.name, teams, ("carol", "admins"), |config| {
        config.istiod_url = Some(istiod_monitoring_url())
    })
    .await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    let answer = put_and_wait(&console, policy(90, 10), "10s").await;
    assert_eq!(answer["sync"]["total"], 3, "{answer}");
    let admin_names = answer["sync"]["proxies"].to_string();
    assert!(admin_names.contains("customer-"), "the admin sees every proxy: {admin_names}");

    let sync_path = format!("/api/v1/namespaces/{}/routes/recommendation/sync", ns.name);
    let (status, read) = console.get_as(Some(("victor", "")), &sync_path).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let read: Value = serde_json::from_str(&read).unwrap();
    assert_eq!((read["synced"].as_u64(), read["total"].as_u64()), (Some(3), Some(3)), "{read}");
    let names: Vec<&str> = read["proxies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(!read.to_string().contains("customer"), "{read}");
    assert_eq!(names.iter().filter(|name| name.starts_with("recommendation-v")).count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|name| **name == "a proxy of a service you cannot view").count(), 1, "{names:?}");

    let id = answer["auditId"].as_i64().unwrap();
    let path = format!("/ns/{}/routes/recommendation?change={id}", ns.name);
    let (status, html) = console.get_as(Some(("victor", "")), &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"proxy-sync\"") && !html.contains("customer-"), "{html}");
    console.stop().await;
}

/// Finishing a canary already at 100% changes only the VirtualService's annotation: istiod
/// sends the proxies nothing for it, and the sync report says they have it (what they were
/// sent last), not "0/3, not sent" for a minute, and the audit keeps that.
#[tokio::test]
async fn a_canary_finish_that_changes_no_route_has_reached_every_proxy() {
    let ns = TestNamespace::new("sync-finish").await;
    let console = console_with_istiod(&ns).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    put_and_wait(&console, policy(100, 0), "10s").await;

    let canary = console.api("/canaries/recommendation");
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": [50, 100]});
    let (status, started) = console.send_json(Method::POST, &canary, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let (status, promoted) = console.send_json(Method::POST, &format!("{canary}/promote?full=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    // As a person finishes: after the promote's push has reached every proxy (finishing
    // within istiod's debounce would count the promote's push as the finish's).
    eventually(Duration::from_secs(15), "the promote reported as reached", || async {
        let (_, sync) = console.get_json(&console.api("/routes/recommendation/sync")).await;
        (sync["auditId"] == promoted["auditId"] && sync["settled"] == true).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, finished) = console.send_json(Method::POST, &format!("{canary}/finish"), None).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    let id = finished["auditId"].as_i64().unwrap();

    let sync = eventually(Duration::from_secs(15), "the finish reported as reached", || async {
        let (_, sync) = console.get_json(&console.api("/routes/recommendation/sync")).await;
        (sync["auditId"] == id && sync["settled"] == true).then_some(sync)
    })
    .await;
    assert_eq!((sync["synced"].as_u64(), sync["total"].as_u64()), (Some(3), Some(3)), "{sync}");
    assert!(sync["summary"].as_str().unwrap().starts_with("reached 3/3 proxies"), "{sync}");
    let entry = eventually(Duration::from_secs(10), "the finish's propagation record", || async {
        let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{id}"))).await;
        entry["propagation"].is_string().then_some(entry)
    })
    .await;
    assert!(entry["propagation"].as_str().unwrap().starts_with("reached 3/3 proxies"), "{entry}");
    console.stop().await;
}

/// The route table a workload's sidecar has for a host, read from istiod (its config dump
/// for a connected proxy), route by route with the rule each came from; the routing page
/// loads the same. A rule istiod leaves out for this caller (sourceLabels of another app)
/// is what the model predicts too; a rule the console keeps verbatim and does not model (one
/// that routes to another host) makes the table differ, and the page says so.
#[tokio::test]
async fn the_route_table_a_sidecar_has_is_read_from_istiod_and_held_against_the_model() {
    let ns = TestNamespace::new("envoyrt").await;
    let console = console_with_istiod(&ns).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [
        {"match": [{"sourceLabels": {"app": "preference"}}], "route": {"version-v2": 100}},
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 90, "version-v2": 10}}]});
    put_and_wait(&console, body, "10s").await;

    let url = console.api("/routes/recommendation/envoy?source=customer");
    let view = eventually(Duration::from_secs(30), "the new routes in customer's sidecar", || async {
        let (status, view) = console.get_json(&url).await;
        (status == StatusCode::OK && view["table"]["routes"].as_array()?.len() == 2).then_some(view)
    })
    .await;
    assert_eq!(view["workload"], "customer", "{view}");
    assert!(view["proxy"].as_str().unwrap().starts_with("customer-"), "{view}");
    assert_eq!(view["port"], 8080);
    assert_eq!(view["rules"], json!([2, 3]), "rule 1 is for preference only: {view}");
    assert!(view["difference"].is_null(), "{view}");
    let routes = &view["table"]["routes"];
    assert_eq!(routes[0]["conditions"], json!(["header baggage-user-agent matches .*Firefox.*"]));
    assert_eq!(routes[1]["destinations"], json!([["version-v1", 90], ["version-v2", 10]]));
    assert_eq!(routes[1]["from"], format!("VirtualService {}/recommendation", ns.name));

    // The page: its own, and the section the routing page loads.
    let page = console.page(&format!("/ns/{}/routes/recommendation/envoy?source=customer", ns.name)).await;
    assert!(
        page.contains("header baggage-user-agent matches .*Firefox.*")
            && page.contains("version-v1 90%, version-v2 10%"),
        "{page}"
    );
    let routing = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(routing.contains(&format!(r#"hx-get="/ns/{}/routes/recommendation/envoy""#, ns.name)), "{routing}");
    let (status, unknown) = console.get_json(&console.api("/routes/recommendation/envoy?source=nobody")).await;
    assert_eq!((status, &unknown["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("source")), "{unknown}");

    // Someone puts a rule to another host first, which the console keeps as written.
    let to = |host: &str, subset: Option<&str>| json!([{"destination": {"host": host, "subset": subset}}]);
    let theirs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation"},
        "spec": {"hosts": ["recommendation"], "http": [
            {"match": [{"uri": {"prefix": "/legacy"}}], "route": [{"destination": {"host": "customer"}}]},
            {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": to("recommendation", Some("version-v2"))},
            {"route": [{"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 90},
                       {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 10}]}]}});
    let apply = kube::api::PatchParams::apply("someone-else").force();
    ns.objects(signalbox::cluster::Kind::VirtualService)
        .patch("recommendation", &apply, &kube::api::Patch::Apply(&theirs))
        .await
        .unwrap();
    let differs = eventually(Duration::from_secs(30), "the merged routes in customer's sidecar", || async {
        let (_, view) = console.get_json(&url).await;
        view["difference"].as_str().map(str::to_owned)
    })
    .await;
    assert!(differs.contains("predicts 2 route(s) for this sidecar, istiod sent 3"), "{differs}");
    let page = console.page(&format!("/ns/{}/routes/recommendation/envoy?source=customer", ns.name)).await;
    assert!(page.contains("Not what the console predicts"), "{page}");
}
