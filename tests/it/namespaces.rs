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
