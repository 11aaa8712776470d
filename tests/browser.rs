//! In a real headless Chromium: a person deploys and scales the tutorial from the Deploy
//! page and sees it become Ready without reloading, walks the routing steps with a preview
//! before each, and hostile text in cluster objects renders as text.
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::TestNamespace;
use support::browser::Browser;
use support::console::Console;

const READY_WITHIN: Duration = Duration::from_secs(30);

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(name).await.unwrap()?;
    deployment.spec?.replicas
}

/// A value the page keeps only while it is not reloaded.
async fn mark_page(browser: &Browser) {
    browser.client.execute("window.signalboxTestMarker = 'still here'; return true;", vec![]).await.unwrap();
}

async fn page_was_not_reloaded(browser: &Browser) -> bool {
    let marker = browser.client.execute("return window.signalboxTestMarker || null;", vec![]).await.unwrap();
    marker == json!("still here")
}

#[tokio::test]
async fn deploy_and_scale_from_the_deploy_page_without_reloading() {
    let ns = TestNamespace::unborn("ui").await;
    let console = Console::start(&ns.name).await;
    let browser = Browser::start().await;

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    assert!(browser.text("main").await.contains("Nothing runs in"));
    browser.screenshot("overview-empty").await;

    browser.goto(&console.url(&format!("/ns/{}/deploy", ns.name))).await;
    mark_page(&browser).await;
    browser.click("form[action$='/deploy/namespace'] button").await;
    browser.wait_for_text("#workloads", "sidecar injection on", READY_WITHIN).await;

    browser.click("#actions-recommendation-v2 button").await;
    browser.wait_for_text("#state-recommendation-v2", "1/1 ready", READY_WITHIN).await;
    assert_eq!(replicas(&ns, "recommendation-v2").await, Some(1));

    browser.fill("#replicas-recommendation-v2", "2").await;
    browser.click("#workload-recommendation-v2 td:nth-child(4) button").await;
    browser.wait_for_text("#state-recommendation-v2", "2/2 ready", READY_WITHIN).await;
    assert_eq!(replicas(&ns, "recommendation-v2").await, Some(2));
    assert!(page_was_not_reloaded(&browser).await, "htmx updated the page in place");
    browser.screenshot("deploy").await;

    browser.fill("#replicas-recommendation-v2", "abc").await;
    browser.click("#workload-recommendation-v2 td:nth-child(4) button").await;
    let error = browser.wait_for_text("#error-recommendation-v2", "whole number", READY_WITHIN).await;
    assert!(error.contains("e.g. 2"), "{error}");
    assert_eq!(replicas(&ns, "recommendation-v2").await, Some(2), "invalid input changes nothing");
    browser.screenshot("deploy-invalid-replicas").await;

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    browser.wait_for_text("#services", "2/2", READY_WITHIN).await;
    browser.screenshot("overview").await;

    browser.goto(&console.url("/audit")).await;
    let rows = browser.wait_for_text("#audit-rows", "workload.scale", READY_WITHIN).await;
    assert!(rows.contains("workload.deploy") && rows.contains("namespace.create"), "{rows}");
    assert!(rows.contains("scale recommendation-v2: 1 → 2 replicas"), "{rows}");
    assert_eq!(rows.matches("applied").count(), 3, "{rows}");
    browser.screenshot("audit").await;

    browser.goto(&console.url("/ns/not-managed-here")).await;
    assert!(browser.text("main").await.contains("not managed by this console"));
    browser.screenshot("error-page").await;
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn the_routing_walkthrough_in_the_browser_with_a_preview_before_each_step() {
    let ns = TestNamespace::new("uiroute").await;
    let console = Console::start(&ns.name).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let browser = Browser::start().await;
    let page = console.url(&format!("/ns/{}/routes/recommendation", ns.name));
    browser.goto(&page).await;
    browser.wait_for_text("#define-subsets", "v1, v2", READY_WITHIN).await;

    let steps = [
        ("#define-subsets", "subset version-v1 added", "no routing rules"),
        ("#all-preview", "rule 1 added", "everyone: v1"),
        ("#preset-90-10", "v1 100%→90%", "v1 90% · v2 10%"),
        ("#preset-75-25", "v1 90%→75%", "v1 75% · v2 25%"),
        ("#preset-0-100", "", "everyone: v2"),
    ];
    for (button, change, summary) in steps {
        browser.click(button).await;
        let previewed = browser.wait_for_text("#preview-change", change, READY_WITHIN).await;
        assert!(browser.text("#preview").await.contains("dry run accepted"), "{previewed}");
        browser.screenshot("routing-preview").await;
        browser.click("#apply").await;
        browser.wait_for_text("#route-notice", "applied", READY_WITHIN).await;
        browser.wait_for_text("#policy-summary", summary, READY_WITHIN).await;
    }

    browser.click("#header-preview").await;
    browser.wait_for_text("#preview-change", "recommendation", READY_WITHIN).await;
    browser.click("#apply").await;
    let summary = browser.wait_for_text("#policy-summary", "Firefox users → v2", READY_WITHIN).await;
    assert!(summary.contains("everyone else: v1"), "{summary}");
    browser.screenshot("routing").await;

    browser.click("#test-firefox").await;
    let firefox = browser.wait_for_text("#route-test-result", "Matches rule 1", READY_WITHIN).await;
    assert!(firefox.contains("version-v2") && firefox.contains("100%") && !firefox.contains("version-v1"), "{firefox}");
    browser.click("#test-safari").await;
    let safari = browser.wait_for_text("#route-test-result", "Matches rule 2", READY_WITHIN).await;
    assert!(safari.contains("version-v1") && !safari.contains("version-v2"), "{safari}");

    browser.click("#delete-preview").await;
    browser.wait_for_text("#preview-change", "routing removed", READY_WITHIN).await;
    browser.click("#apply").await;
    browser.wait_for_text("#policy-summary", "round-robin", READY_WITHIN).await;

    let audit = console.audit().await;
    let routing_entries = audit.iter().filter(|e| e["action"].as_str().unwrap().starts_with("route.")).count();
    assert_eq!(routing_entries, 7, "one audit entry per applied step");
    assert!(audit.iter().all(|e| e["outcome"] == "applied"));
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn hostile_text_in_cluster_objects_is_shown_as_text_and_never_runs() {
    let ns = TestNamespace::new("xss").await;
    let console = Console::start(&ns.name).await;
    let hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"));
    let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let vs = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation", "annotations": {"note": hostile}},
        "spec": {"hosts": ["recommendation"], "http": [{"name": hostile, "route": [{"destination": {"host": "recommendation"}}]}]}
    });
    api.patch("recommendation", &PatchParams::apply("kubectl"), &Patch::Apply(&vs)).await.unwrap();

    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    let yaml = browser.wait_for_text("#live-vs", "onerror", READY_WITHIN).await;
    assert!(yaml.contains(hostile), "shown literally: {yaml}");
    assert!(!browser.has_dialog().await, "no script ran");
    let images = browser.client.find_all(fantoccini::Locator::Css("main img")).await.unwrap();
    assert!(images.is_empty(), "no element was injected");
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn the_tutorial_canary_from_the_browser_then_an_aborted_one() {
    let ns = TestNamespace::new("uicanary").await;
    let console = Console::start(&ns.name).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [{"route": {"version-v1": 100}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).await;
    browser.fill("#canary-steps", "10, 25, 100").await;
    browser.click("#canary-start").await;
    browser.wait_for_text("#canary-split", "v1 90% · v2 10%", READY_WITHIN).await;
    browser.click("#canary-promote").await;
    browser.wait_for_text("#canary-split", "v1 75% · v2 25%", READY_WITHIN).await;
    browser.click("#canary-promote-full").await;
    browser.wait_for_text("#canary-split", "v1 0% · v2 100%", READY_WITHIN).await;
    browser.screenshot("canary").await;
    browser.click("#canary-finish").await;
    browser.wait_for_text("#canary-state", "finished", READY_WITHIN).await;
    let history = browser.text("#canary-history").await;
    assert_eq!(history.matches("canary.").count(), 4, "{history}");

    browser.fill("#canary-steps", "20, 100").await;
    browser.click("#canary-start").await;
    browser.wait_for_text("#canary-split", "v1 80% · v2 20%", READY_WITHIN).await;
    browser.click("#canary-abort").await;
    browser.wait_for_text("#canary-state", "aborted", READY_WITHIN).await;
    browser.wait_for_text("#canary-split", "v1 100% · v2 0%", READY_WITHIN).await;
    browser.close().await;
    console.stop().await;
}
