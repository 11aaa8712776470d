//! A console over several namespaces (issue 24's switcher): `/` opens the list, which shows
//! each namespace with its counts, health and last change, most recently changed first, and
//! narrows as one types; the header names the current namespace and links to the list.
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support;
use support::TestNamespace;
use support::console::Console;

#[tokio::test]
async fn the_namespaces_page_lists_counts_health_and_recent_activity_and_filters() {
    let mut namespaces = Vec::new();
    for prefix in ["nsa", "nsb", "nsc", "nsd"] {
        namespaces.push(TestNamespace::new(prefix).await);
    }
    let names: Vec<String> = namespaces.iter().map(|ns| ns.name.clone()).collect();
    let console = Console::start_with(&names[0], |config| config.namespaces = names.clone()).await;
    let api = |ns: &str, path: &str| console.url(&format!("/api/v1/namespaces/{ns}{path}"));
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &api(&names[2], &format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                        "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, body) = console.send_json(Method::PUT, &api(&names[2], "/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Four namespaces: the home page is the list.
    let home = console.http.get(console.url("/")).send().await.unwrap();
    assert_eq!(home.url().path(), "/namespaces", "redirected to the list");
    let (status, listed) = console.get_json(&console.url("/api/v1/namespaces")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed["namespaces"].as_array().unwrap();
    assert_eq!(listed.len(), 4);
    let first = &listed[0];
    assert_eq!(first["name"], names[2].as_str(), "the namespace changed last comes first: {listed:?}");
    assert_eq!((first["services"].as_u64(), first["routedHosts"].as_u64()), (Some(1), Some(1)), "{first}");
    assert!(first["lastChange"].is_string(), "{first}");
    assert!(matches!(first["health"].as_str(), Some("ok" | "progressing")), "{first}");
    assert_eq!(listed[1]["health"], "empty", "nothing runs there: {listed:?}");
    assert_eq!(listed[1]["lastChange"], serde_json::Value::Null);

    let page = console.page("/namespaces").await;
    assert!(page.contains("4 of 4 namespaces") && page.contains("id=\"namespace-filter\""), "{page}");
    let wanted = &names[3];
    let (status, rows) = console.get_as(None, &format!("/partials/namespaces?q={}", wanted.to_uppercase())).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert!(rows.starts_with("<div id=\"namespace-rows\">") && !rows.contains("<html"), "a fragment: {rows}");
    assert!(rows.contains("1 of 4 namespaces") && rows.contains(&format!("/ns/{wanted}")), "{rows}");
    assert!(!rows.contains(&format!("/ns/{}\"", names[0])), "{rows}");

    // The header names the current namespace and links to the list, not every name.
    let overview = console.page(&format!("/ns/{}", names[1])).await;
    assert!(overview.contains("id=\"current-namespace\"") && overview.contains("All 4 namespaces"), "{overview}");
    assert!(!overview.contains(&format!("href=\"/ns/{}\"", names[3])), "no strip of every namespace");
    console.stop().await;
}

/// Sets `label` on `namespace` (None: removes it), as `kubectl label` would.
async fn label_namespace(namespace: &str, label: (&str, Option<&str>)) {
    use k8s_openapi::api::core::v1::Namespace;
    let api: kube::Api<Namespace> = kube::Api::all(support::client().await);
    let patch = json!({"metadata": {"labels": {label.0: label.1}}});
    api.patch(namespace, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch)).await.expect("label");
}

/// The names `GET /api/v1/namespaces` lists for `user`.
async fn listed_for(console: &Console, user: (&str, &str)) -> Vec<String> {
    let (status, body) = console.get_as(Some(user), "/api/v1/namespaces").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names = body["namespaces"].as_array().unwrap().iter().map(|ns| ns["name"].as_str().unwrap().to_owned());
    let mut names: Vec<String> = names.collect();
    names.sort();
    names
}

/// Waits (5 s at most) until `namespace` is no longer listed for `user`.
async fn left(console: &Console, user: (&str, &str), namespace: &str) {
    support::eventually(std::time::Duration::from_secs(5), &format!("{namespace} to leave"), || async {
        (!listed_for(console, user).await.iter().any(|listed| listed == namespace)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_selector_follows_namespaces_labelled_unlabelled_and_deleted_while_running() {
    use std::time::Duration;
    let group = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let key = "signalbox-test/group";
    let [first, later, doomed] =
        [TestNamespace::new("sela").await, TestNamespace::new("selb").await, TestNamespace::new("selc").await];
    for ns in [&first, &doomed] {
        label_namespace(&ns.name, (key, Some(group))).await;
    }
    // An object someone else wrote in `later` before it is selected.
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ratings", "labels": {"app": "ratings"}},
                         "spec": {"selector": {"app": "ratings"}, "ports": [{"name": "http", "port": 9080}]}});
    let service: kube::api::DynamicObject = serde_json::from_value(service).unwrap();
    let create = kube::api::PostParams { field_manager: Some("kubectl-create".into()), ..Default::default() };
    later.objects(signalbox::cluster::Kind::Service).create(&create, &service).await.expect("a Service");

    let teams = format!(
        "teams:
  - name: platform
    members: {{users: [pat]}}
    namespaces: ['*']
    actions: [admin]
  - name: later-team
    members: {{users: [lee]}}
    namespaces: [{later}]
    actions: [view, deploy, route]
",
        later = later.name
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("teams.yaml");
    std::fs::write(&file, teams).unwrap();
    let selector = format!("{key}={group}");
    let console = Console::start_with(&first.name, |config| {
        config.namespaces = Vec::new();
        config.namespace_selector = Some(selector.clone());
        config.teams = Some(file.clone());
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (pat, lee) = (("pat", ""), ("lee", ""));
    let mut both = vec![first.name.clone(), doomed.name.clone()];
    both.sort();
    assert_eq!(listed_for(&console, pat).await, both, "only the labelled namespaces");
    assert!(listed_for(&console, lee).await.is_empty(), "lee's namespace is not selected yet");
    let (status, page) = console.get_as(Some(pat), &format!("/ns/{}", later.name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains(&format!("labels matching {selector}")), "the 404 says why: {page}");

    // Labelled while running: it joins, with what was already there, within seconds.
    label_namespace(&later.name, (key, Some(group))).await;
    let joined_at = std::time::Instant::now();
    support::eventually(Duration::from_secs(5), "the labelled namespace to be listed", || async {
        listed_for(&console, lee).await.contains(&later.name).then_some(())
    })
    .await;
    assert!(joined_at.elapsed() < Duration::from_secs(3), "visible in {:?}", joined_at.elapsed());
    support::eventually(Duration::from_secs(5), "the Service listed when it joined", || async {
        let (status, body) = console.get_as(Some(lee), &format!("/ns/{}", later.name)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.contains("ratings").then_some(())
    })
    .await;
    // Its cache follows the watch, and changes there reach the audit log.
    let (status, body) = console
        .send_as(lee, Method::PUT, &format!("/api/v1/namespaces/{}/workloads/recommendation-v1", later.name), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "lee deploys in the namespace that joined: {body}");
    support::eventually(Duration::from_secs(10), "the new Deployment in the cache", || async {
        let (_, listed) = console.get_as(Some(lee), &format!("/api/v1/namespaces/{}/workloads", later.name)).await;
        listed.contains("recommendation-v1").then_some(())
    })
    .await;
    let patch = json!({"metadata": {"labels": {"tier": "backend"}}});
    let params = kube::api::PatchParams { field_manager: Some("kubectl-label".into()), ..Default::default() };
    later
        .objects(signalbox::cluster::Kind::Service)
        .patch("ratings", &params, &kube::api::Patch::Merge(patch))
        .await
        .unwrap();
    support::eventually(Duration::from_secs(10), "the outside change recorded", || async {
        let (_, body) = console.get_as(Some(pat), "/api/v1/audit?source=external&limit=50").await;
        (body.contains("kubectl-label") && body.contains(&later.name)).then_some(())
    })
    .await;

    // Unlabelled: it leaves, and its pages and API say why.
    label_namespace(&first.name, (key, None)).await;
    left(&console, pat, &first.name).await;
    let (status, page) = console.get_as(Some(pat), &format!("/ns/{}", first.name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("its labels no longer match"), "{page}");
    let (status, body) = console
        .send_as(pat, Method::PUT, &format!("/api/v1/namespaces/{}/workloads/customer", first.name), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no change where it no longer manages: {body}");
    assert!(body.to_string().contains("no longer match"), "{body}");

    // Deleted: it leaves as soon as it is being deleted.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(support::client().await);
    namespaces.delete(&doomed.name, &kube::api::DeleteParams::default()).await.unwrap();
    left(&console, pat, &doomed.name).await;
    let (status, page) = console.get_as(Some(pat), &format!("/api/v1/namespaces/{}/workloads", doomed.name)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("it was deleted"), "{page}");

    // The same handful of watches whatever joined and left.
    assert_eq!(console.server.state.cluster.caches.watches(), 7);
    console.stop().await;
}
