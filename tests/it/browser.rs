//! In a real headless Chromium: a person deploys and scales the tutorial from the Deploy
//! page and sees it become Ready without reloading, walks the routing steps with a preview
//! before each, and hostile text in cluster objects renders as text. Without a browser: every
//! page is rendered on the server and carries no inline script.
use crate::support;

use std::time::Duration;

use regex::Regex;

use fantoccini::Locator;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::json;
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::browser::Browser;
use support::console::Console;

const READY_WITHIN: Duration = Duration::from_secs(30);
/// Pods becoming ready go through the controller manager, the scheduler, istiod's injection
/// webhook and kwok; with every browser test running at once on two cores that has taken
/// more than 30 s (a CI run of stop 12).
const PODS_READY_WITHIN: Duration = Duration::from_secs(90);

/// Waits until the Deploy page shows `expected` (such as "1/1 ready") for `workload`. A
/// timeout also says what the cluster held, so a slow cluster and a stale page differ.
async fn wait_until_ready(browser: &Browser, ns: &TestNamespace, workload: &str, expected: &str) {
    let css = format!("#state-{workload}");
    if let Err(timed_out) = browser.try_wait_for_text(&css, expected, PODS_READY_WITHIN).await {
        panic!("{timed_out}\n{}", support::workload_report(ns, workload).await);
    }
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(name).await.unwrap()?;
    deployment.spec?.replicas
}

/// recommendation v1 and v2 deployed, with a subset each and all traffic to v1.
async fn deploy_recommendation_v1_and_v2(console: &Console) {
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [{"route": {"version-v1": 100}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Each step on the routing page: its button, what the preview says the change is (after the
/// API server's dry run), then Apply and what the page says the routing is afterwards.
async fn preview_and_apply(browser: &Browser, steps: &[(&str, &str, &str)]) {
    for (button, change, summary) in steps {
        browser.click(button).await;
        let previewed = browser.wait_for_text("#preview-change", change, READY_WITHIN).await;
        assert!(browser.text("#preview").await.contains("dry run accepted"), "{previewed}");
        browser.screenshot("routing-preview").await;
        browser.click("#apply").await;
        browser.wait_for_text("#route-notice", "applied", READY_WITHIN).await;
        browser.wait_for_text("#policy-summary", summary, READY_WITHIN).await;
    }
}

/// A value the page keeps only while it is not reloaded.
/// A canary start as a user takes it: Preview shows the dry run's verdict and the bars after
/// the start, the rule that carries the canary marked with it (`marked`), before anything
/// changes; then Start.
async fn preview_and_start_canary(browser: &Browser, marked: &str) {
    browser.click("#canary-preview-button").await;
    let preview = browser.wait_for_text("#canary-preview", "dry run accepted", READY_WITHIN).await;
    let after = browser.text("#canary-bars-after").await;
    assert!(after.contains(marked), "the canary marked on the rule it moves: {after}");
    assert!(!browser.text("#canary-bars-before").await.contains("canary"), "no canary before: {preview}");
    let state = match browser.client.find(Locator::Css("#canary-state")).await {
        Ok(state) => state.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    assert_ne!(state, "progressing", "nothing started by a preview");
    browser.click("#canary-start").await;
}

async fn mark_page(browser: &Browser) {
    browser.client.execute("window.signalboxTestMarker = 'still here'; return true;", vec![]).await.unwrap();
}

async fn page_was_not_reloaded(browser: &Browser) -> bool {
    let marker = browser.client.execute("return window.signalboxTestMarker || null;", vec![]).await.unwrap();
    marker == json!("still here")
}

/// Fails when the page logged a script error, a CSP violation or a failed load.
async fn assert_console_clean(browser: &Browser, page: &str) {
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "the browser console on the {page} page shows errors: {errors:#?}");
}

#[tokio::test]
async fn deploy_and_scale_from_the_deploy_page_without_reloading() {
    let ns = TestNamespace::unborn("ui").await;
    let console = Console::start(&ns.name).await;
    let browser = Browser::start().await;

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    assert!(browser.text("main").await.contains("Nothing runs in"));
    assert!(browser.text("header .actor").await.starts_with("local:"), "the local user is named in the header");
    assert_console_clean(&browser, "empty overview").await;
    browser.screenshot("overview-empty").await;

    browser.click("nav.mainnav a[href$='/deploy']").await;
    browser.wait_for_text("h1", "Deploy the Istio tutorial", READY_WITHIN).await;
    mark_page(&browser).await;
    browser.click("form[action$='/deploy/namespace'] button").await;
    browser.wait_for_text("#workloads", "sidecar injection on", READY_WITHIN).await;

    browser.click("#actions-recommendation-v2 button").await;
    wait_until_ready(&browser, &ns, "recommendation-v2", "1/1 ready").await;
    assert_eq!(replicas(&ns, "recommendation-v2").await, Some(1));

    browser.fill("#replicas-recommendation-v2", "2").await;
    browser.click("#workload-recommendation-v2 td:nth-child(4) button").await;
    wait_until_ready(&browser, &ns, "recommendation-v2", "2/2 ready").await;
    assert_eq!(replicas(&ns, "recommendation-v2").await, Some(2));
    assert!(page_was_not_reloaded(&browser).await, "htmx updated the page in place");
    browser.screenshot("deploy").await;

    assert_console_clean(&browser, "deploy").await;
    browser.screenshot("deploy").await;

    for (invalid, message) in [("abc", "must be a whole number, e.g. 2"), ("-1", "must be a whole number from 0 to 20")]
    {
        browser.fill("#replicas-recommendation-v2", invalid).await;
        browser.click("#workload-recommendation-v2 td:nth-child(4) button").await;
        // The message sits in the workload's own row, right under its replicas field.
        browser.wait_for_text("#workload-recommendation-v2 #error-recommendation-v2", message, READY_WITHIN).await;
        let field = browser.client.find(Locator::Css("#replicas-recommendation-v2")).await.unwrap();
        assert_eq!(field.attr("aria-invalid").await.unwrap().as_deref(), Some("true"), "{invalid}");
        assert_eq!(field.prop("value").await.unwrap().as_deref(), Some(invalid), "what was typed stays");
        assert_eq!(replicas(&ns, "recommendation-v2").await, Some(2), "{invalid} changes nothing");
    }
    browser.screenshot("deploy-invalid-replicas").await;
    let refusals = browser.console_errors().await;
    assert!(refusals.iter().all(|e| e.contains("/scale") && e.contains("422")), "only the refusals: {refusals:#?}");
    assert!(page_was_not_reloaded(&browser).await, "errors are shown in place too");

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    let services = browser.wait_for_text("#services table", "2/2", READY_WITHIN).await;
    assert!(services.contains("recommendation") && services.contains("v2"), "{services}");
    assert_console_clean(&browser, "overview").await;
    browser.screenshot("overview").await;

    browser.goto(&console.url("/audit")).await;
    let rows = browser.wait_for_text("#audit-rows", "workload.scale", READY_WITHIN).await;
    assert!(rows.contains("workload.deploy") && rows.contains("namespace.create"), "{rows}");
    assert!(rows.contains("scale recommendation-v2: 1 → 2 replicas"), "{rows}");
    assert_eq!(rows.matches("applied").count(), 3, "{rows}");
    // Times in the reader's own zone and how long ago, UTC on hover (static/app.js).
    let time = browser.client.find(Locator::Css("#audit-rows time")).await.unwrap();
    let (shown, utc) = (time.text().await.unwrap(), time.attr("title").await.unwrap().unwrap_or_default());
    assert!(shown.ends_with("just now") || shown.ends_with(" min ago"), "{shown}");
    assert!(utc.ends_with(" UTC") && !shown.contains('Z'), "{shown} / {utc}");
    assert_console_clean(&browser, "audit").await;
    browser.screenshot("audit").await;
    // Newest first: the refused scale to -1 (every attempted change is audited; "abc" never
    // became a change), then the three changes that were applied.
    let audit = console.audit().await;
    let entries: Vec<_> =
        audit.iter().map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        entries,
        [
            ("workload.scale", "failed"),
            ("workload.scale", "applied"),
            ("workload.deploy", "applied"),
            ("namespace.create", "applied")
        ]
    );
    assert!(audit[0]["error"].as_str().unwrap().contains("from 0 to 20"), "{}", audit[0]);
    for entry in &audit {
        let actor = entry["actor"].as_str().unwrap();
        assert!(actor.starts_with("local:"), "{entry}");
        assert!(rows.contains(actor), "the audit page names the actor: {rows}");
    }

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
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let browser = Browser::start().await;
    let page = console.url(&format!("/ns/{}/routes/recommendation", ns.name));
    browser.goto(&page).await;
    browser.wait_for_text("#define-subsets", "v1, v2", READY_WITHIN).await;

    let steps = [
        ("#define-subsets", "subset version-v1 added", "no routing rules"),
        ("#all-preview", "add: everyone → v1", "everyone: v1"),
        ("#preset-90-10", "send 90% to v1 (was 100%)", "v1 90% · v2 10%"),
        ("#preset-75-25", "send 75% to v1 (was 90%)", "v1 75% · v2 25%"),
        ("#preset-0-100", "", "everyone: v2"),
    ];
    preview_and_apply(&browser, &steps).await;

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

/// The same walkthrough on the Gateway API from the routing page: per-version Services, a
/// new HTTPRoute, 90/10, the Firefox rule (the route tester says why it wins), then a
/// VirtualService host migrated to an HTTPRoute; each step previewed before it applies.
#[tokio::test]
async fn the_gateway_api_walkthrough_in_the_browser() {
    let ns = TestNamespace::new("uigamma").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2", "preference"]).await;
    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#version-services-preview", "v1, v2", READY_WITHIN).await;

    let steps = [
        ("#version-services-preview", "per-version Services recommendation-v1, recommendation-v2", "no routing policy"),
        ("#http-route-preview", "add: everyone → v1", "everyone: v1"),
        ("#preset-90-10", "send 90% to v1 (was 100%)", "v1 90% · v2 10%"),
        ("#header-preview", "recommendation", "Firefox users → v2"),
    ];
    preview_and_apply(&browser, &steps).await;
    browser.wait_for_text("#routing-api", "HTTPRoute", READY_WITHIN).await;
    assert_eq!(text_content(&browser, "#live-hr-name").await.as_deref(), Some("recommendation"));
    browser.click("#test-firefox").await;
    let firefox = browser.wait_for_text("#route-test-result", "Matches rule 1", READY_WITHIN).await;
    assert!(firefox.contains("rule 1 wins over rule 2: more header matches"), "{firefox}");
    assert_console_clean(&browser, "gateway api routing").await;
    browser.screenshot("routing-http-route").await;

    // A canary on the HTTPRoute, from its page: 10 → 25, then aborted.
    browser.goto(&console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).await;
    browser.fill("#canary-steps", "10, 25, 100").await;
    preview_and_start_canary(&browser, "canary v2 10%, step 1/3").await;
    browser.wait_for_text("#canary-split", "v1 90% · v2 10%", READY_WITHIN).await;
    browser.click("#canary-promote").await;
    browser.wait_for_text("#canary-split", "v1 75% · v2 25%", READY_WITHIN).await;
    browser.click("#canary-abort").await;
    browser.wait_for_text("#canary-state", "aborted", READY_WITHIN).await;
    let (_, routed) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(routed["kind"], "HTTPRoute");
    assert_eq!(routed["rules"][1]["route"]["recommendation-v1"], 100, "{routed}");

    // preference, routed by a VirtualService, moves to an HTTPRoute.
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}}, "rules": [{"route": {"version-v1": 100}, "timeout": "2s"}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/preference"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.goto(&console.url(&format!("/ns/{}/routes/preference", ns.name))).await;
    browser.click("#migrate-preview").await;
    let preview =
        browser.wait_for_text("#preview-change", "migrated from VirtualService preference", READY_WITHIN).await;
    assert!(preview.contains("HTTPRoute preference"), "{preview}");
    browser.click("#apply").await;
    browser.wait_for_text("#route-notice", "applied", READY_WITHIN).await;
    browser.wait_for_text("#routing-api", "HTTPRoute", READY_WITHIN).await;
    let (_, migrated) = console.get_json(&console.api("/routes/preference")).await;
    assert_eq!(migrated["rules"][0]["route"], json!({"preference-v1": 100}), "{migrated}");
    assert_eq!(migrated["rules"][0]["timeout"], "2s");
    let actions: Vec<String> =
        console.audit().await.iter().take(5).map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["route.migrate", "route.update", "canary.abort", "canary.promote", "canary.start"]);
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn hostile_text_in_cluster_objects_is_shown_as_text_and_never_runs() {
    let ns = TestNamespace::new("xss").await;
    let console = Console::start(&ns.name).await;
    let hostile = "<img src=x onerror=alert(1)><script>alert(2)</script>";
    let api = ns.objects(Kind::VirtualService);
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
    let images = browser.client.find_all(Locator::Css("main img")).await.unwrap();
    assert!(images.is_empty(), "no element was injected");
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn the_tutorial_canary_from_the_browser_then_an_aborted_one() {
    let ns = TestNamespace::new("uicanary").await;
    let console = Console::start(&ns.name).await;
    deploy_recommendation_v1_and_v2(&console).await;

    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).await;
    browser.fill("#canary-steps", "10, 25, 100").await;
    preview_and_start_canary(&browser, "canary v2 10%, step 1/3").await;
    browser.wait_for_text("#canary-split", "v1 90% · v2 10%", READY_WITHIN).await;
    browser.click("#canary-promote").await;
    browser.wait_for_text("#canary-split", "v1 75% · v2 25%", READY_WITHIN).await;
    // The running canary is marked on the rule it moves and on the graph's edges.
    let canary_page = console.url(&format!("/ns/{}/canaries/recommendation", ns.name));
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    let mark = browser.wait_for_text("#rule-bars-1 .mark-canary", "canary v2 25%, step 2/3", READY_WITHIN).await;
    assert!(!mark.is_empty());
    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    wait_for_text_content(&browser, "#edge-recommendation-v2 .mark-canary", "canary v2 25%").await;
    browser.goto(&canary_page).await;
    browser.click("#canary-promote-full").await;
    browser.wait_for_text("#canary-split", "v1 0% · v2 100%", READY_WITHIN).await;
    // At 100% there is nothing left to promote: Finish is the main button.
    let finish = browser.client.find(Locator::Css("#canary-finish")).await.unwrap();
    assert!(finish.attr("class").await.unwrap().unwrap_or_default().contains("primary"), "Finish leads at 100%");
    browser.screenshot("canary").await;
    browser.click("#canary-finish").await;
    browser.wait_for_text("#canary-state", "finished", READY_WITHIN).await;
    let history = browser.text("#canary-history").await;
    assert_eq!(history.matches("canary.").count(), 4, "{history}");

    browser.fill("#canary-steps", "20, 100").await;
    preview_and_start_canary(&browser, "canary v2 20%, step 1/2").await;
    browser.wait_for_text("#canary-split", "v1 80% · v2 20%", READY_WITHIN).await;
    browser.click("#canary-abort").await;
    browser.wait_for_text("#canary-state", "aborted", READY_WITHIN).await;
    browser.wait_for_text("#canary-split", "v1 100% · v2 0%", READY_WITHIN).await;
    browser.close().await;
    console.stop().await;
}

/// A team opts a canary into auto-advance from the start form; signalbox then promotes it
/// on Prometheus's numbers and the page's history says who did and why.
#[tokio::test]
async fn a_canary_started_with_auto_advance_in_the_browser_promotes_itself() {
    let ns = TestNamespace::new("uiauto").await;
    let exporter = support::prometheus::Exporter::start(&ns.name, "recommendation").await;
    exporter.set("v1", support::prometheus::Traffic::healthy(50.0, 40.0));
    exporter.set("v2", support::prometheus::Traffic::healthy(50.0, 80.0));
    let prometheus = support::prometheus::PrometheusServer::start(exporter.addr).await;
    let url = prometheus.url.clone();
    let console = Console::start_with(&ns.name, |c| {
        c.prometheus_url = Some(url);
        c.istiod_url = Some(support::sidecars::istiod_monitoring_url());
        c.analysis_interval_seconds = 1;
    })
    .await;
    deploy_recommendation_v1_and_v2(&console).await;

    let browser = Browser::start().await;
    let page = console.url(&format!("/ns/{}/canaries/recommendation", ns.name));
    browser.goto(&page).await;
    browser.fill("#canary-steps", "50, 100").await;
    browser.click("#canary-auto").await;
    browser.fill("#canary-min-requests", "5").await;
    browser.fill("#canary-dwell", "2").await;
    browser.fill("#canary-window", "5").await;
    preview_and_start_canary(&browser, "step 1/").await;
    let analysis = browser.wait_for_text("#canary-analysis", "Auto-advance on", READY_WITHIN).await;
    assert!(analysis.contains("after 2 s") && analysis.contains("at least 5 requests"), "{analysis}");

    support::eventually(Duration::from_secs(60), "the canary finished by auto-advance", || async {
        let (_, canary) = console.get_json(&console.api("/canaries/recommendation")).await;
        (canary["state"] == "finished").then_some(())
    })
    .await;
    browser.goto(&page).await;
    let history = browser.text("#canary-history").await;
    assert_eq!(history.matches("system:signalbox").count(), 2, "a promote and a finish: {history}");
    assert!(history.contains("automatic: v2: every threshold held"), "{history}");
    browser.close().await;
    console.stop().await;
}

#[tokio::test]
async fn hostile_text_in_the_url_is_echoed_as_text_and_never_runs() {
    let ns = TestNamespace::new("xssurl").await;
    let console = Console::start(&ns.name).await;
    let browser = Browser::start().await;
    let hostile = r#""><img src=x onerror=alert(1)><script>alert(2)</script>"#;
    let encoded: String = hostile.bytes().map(|b| format!("%{b:02X}")).collect();

    // The error page quotes the path segment it could not read.
    browser.goto(&console.url(&format!("/audit/{encoded}"))).await;
    let message = browser.wait_for_text("main", "Cannot parse", READY_WITHIN).await;
    assert!(message.contains(hostile), "shown literally: {message}");
    assert!(!browser.has_dialog().await, "no script ran");
    assert!(browser.client.find_all(Locator::Css("main img, main script")).await.unwrap().is_empty());
    browser.screenshot("error-page-hostile-path").await;

    // The audit filter puts the query back into an attribute, which must not be broken out of.
    browser.goto(&console.url(&format!("/audit?actor={encoded}"))).await;
    let actor = browser.client.find(Locator::Css("#audit-filters input[name=actor]")).await.unwrap();
    assert_eq!(actor.prop("value").await.unwrap().as_deref(), Some(hostile));
    assert!(!browser.has_dialog().await, "no script ran");
    assert!(browser.client.find_all(Locator::Css("main img, main script")).await.unwrap().is_empty());
    browser.close().await;
    console.stop().await;
}

/// Every `<script>` element: its attributes and its content.
fn script_tags(html: &str) -> Vec<(String, String)> {
    let script = Regex::new(r"(?is)<script\b([^>]*)>(.*?)</script\s*>").unwrap();
    script.captures_iter(html).map(|c| (c[1].to_owned(), c[2].to_owned())).collect()
}

#[tokio::test]
async fn pages_render_on_the_server_and_carry_no_inline_script() {
    let ns = TestNamespace::new("nojs").await;
    let console = Console::start(&ns.name).await;
    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A client without JavaScript gets the services table in the first response.
    let overview = console.url(&format!("/ns/{}", ns.name));
    let html = support::eventually(READY_WITHIN, "the overview to list recommendation", || async {
        let html = console.http.get(&overview).header("accept", "text/html").send().await.ok()?.text().await.ok()?;
        html.contains("v1").then_some(html)
    })
    .await;
    assert!(html.contains(r#"<table class="table services" id="service-table">"#), "{html}");
    assert!(html.contains("<strong>recommendation</strong>"), "{html}");

    let inline_handler = Regex::new(r#"(?i)<[a-z][^>]*\son[a-z]+\s*="#).unwrap();
    let audit_id = console.audit().await[0]["id"].to_string();
    let pages = [
        ("/".to_string(), StatusCode::OK), // redirects to the first managed namespace
        (format!("/ns/{}", ns.name), StatusCode::OK),
        (format!("/ns/{}/deploy", ns.name), StatusCode::OK),
        (format!("/ns/{}/routes", ns.name), StatusCode::OK),
        (format!("/ns/{}/routes/recommendation", ns.name), StatusCode::OK),
        (format!("/ns/{}/canaries/recommendation", ns.name), StatusCode::OK),
        ("/audit".to_string(), StatusCode::OK),
        (format!("/audit/{audit_id}"), StatusCode::OK),
        ("/ns/not-managed-here".to_string(), StatusCode::NOT_FOUND),
        ("/no/such/page".to_string(), StatusCode::NOT_FOUND),
    ];
    for (path, expected) in pages {
        let response = console.http.get(console.url(&path)).header("accept", "text/html").send().await.unwrap();
        let status = response.status();
        let csp = response.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_owned());
        let html = response.text().await.unwrap();
        assert_eq!(status, expected, "{path}: {html}");
        let csp = csp.unwrap_or_else(|| panic!("{path} has no Content-Security-Policy"));
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        let scripts = script_tags(&html);
        assert!(!scripts.is_empty(), "{path} loads htmx from /static");
        for (attributes, content) in scripts {
            assert!(content.trim().is_empty(), "{path} has an inline script: {content}");
            assert!(attributes.contains("src=\"/static/"), "{path} loads a script from elsewhere: {attributes}");
        }
        assert!(!inline_handler.is_match(&html), "{path} has an inline event handler");
    }
    console.stop().await;
}

/// After Apply the routing page follows the change to the proxies (real istiod, simulated
/// sidecars), htmx polling the panel until it settles: "reached 3/3 proxies", then a proxy that rejects it, named.
#[tokio::test]
async fn the_routing_page_shows_when_the_proxies_have_the_change() {
    use support::sidecars::{SimulatedSidecars, connected, istiod_monitoring_url, pod_with_sidecar};
    let ns = TestNamespace::new("uisync").await;
    let console = Console::start_with(&ns.name, |config| config.istiod_url = Some(istiod_monitoring_url())).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#define-subsets", "v1, v2", READY_WITHIN).await;

    browser.click("#define-subsets").await;
    browser.wait_for_text("#preview-change", "subset version-v1 added", READY_WITHIN).await;
    browser.click("#apply").await;
    let reached = browser.wait_for_text("#proxy-sync-summary", "reached 3/3 proxies in", READY_WITHIN).await;
    assert!(Regex::new(r"in \d+\.\d s$").unwrap().is_match(&reached), "{reached}");
    assert_eq!(browser.text("#proxy-sync").await.matches("synced").count(), 3);
    browser.screenshot("routing-propagation").await;

    pod_with_sidecar(&ns, "picky", "customer", "nack").await;
    connected(&console.http, &ns.name, 4).await;
    browser.click("#all-preview").await;
    browser.wait_for_text("#preview-change", "add: everyone → v1", READY_WITHIN).await;
    browser.click("#apply").await;
    // The NACK can come back before istiod has pushed to the others ("1/4; not sent yet: …"):
    // wait for the settled state, three synced and picky rejecting.
    let rejected = browser.wait_for_text("#proxy-sync-summary", "3/4; rejected by picky.", READY_WITHIN).await;
    assert!(rejected.starts_with("reaching proxies: 3/4"), "{rejected}");
    assert!(browser.text("#proxy-sync").await.contains("simulated sidecar picky."), "istiod's NACK message is shown");
    assert_console_clean(&browser, "routing with propagation").await;
    browser.close().await;
    console.stop().await;
}

/// The overview's "changed outside signalbox" badge lights for a kubectl change only, never
/// for signalbox's own routing change (made here in the browser, before the outside one:
/// outside changes are judged in the order seen, so once the second lights the first was
/// judged too).
#[tokio::test]
async fn the_outside_change_badge_is_for_outside_changes_only() {
    let ns = TestNamespace::new("uibadge").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["preference", "recommendation-v1", "recommendation-v2"]).await;
    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#define-subsets", "v1, v2", READY_WITHIN).await;
    browser.click("#define-subsets").await;
    browser.wait_for_text("#preview-change", "subset version-v1 added", READY_WITHIN).await;
    browser.click("#apply").await;
    browser.wait_for_text("#route-notice", "applied", READY_WITHIN).await;

    let api = ns.objects(Kind::VirtualService);
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "preference"},
        "spec": {"hosts": ["preference"], "http": [{"route": [{"destination": {"host": "preference"}}], "timeout": "2s"}]}});
    api.patch("preference", &PatchParams::apply("kubectl"), &Patch::Apply(&vs)).await.unwrap();

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    let row = |app: &str| format!("#services td.routing a[href$='/routes/{app}'] ~ .badge");
    browser.wait_for_text("#services", "changed outside signalbox", READY_WITHIN).await;
    assert!(browser.client.find(Locator::Css(&row("preference"))).await.is_ok(), "the kubectl change is flagged");
    assert!(
        browser.client.find(Locator::Css(&row("recommendation"))).await.is_err(),
        "signalbox's own routing change is not flagged: {}",
        browser.text("#services").await
    );
    browser.close().await;
    console.stop().await;
}

/// A refused canary form shows its message in its own slot, not a whole page inside the
/// form: an invalid start (steps that are not numbers) and a conflicting promote (someone
/// promoted since the page was loaded).
#[tokio::test]
async fn refused_canary_forms_answer_in_their_own_error_slot() {
    let ns = TestNamespace::new("uicanaryerr").await;
    let console = Console::start(&ns.name).await;
    deploy_recommendation_v1_and_v2(&console).await;
    let browser = Browser::start().await;
    let page = console.url(&format!("/ns/{}/canaries/recommendation", ns.name));
    browser.goto(&page).await;
    browser.fill("#canary-steps", "10, lots").await;
    browser.click("#canary-preview-button").await;
    let error = browser.wait_for_text("#canary-preview-slot", "lots", READY_WITHIN).await;
    assert!(!error.contains("History"), "only the message, not a page: {error}");
    assert_eq!(browser.client.find_all(Locator::Css("h1")).await.unwrap().len(), 1, "one page, not two");

    let canary = console.api("/canaries/recommendation");
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 50, 100]});
    let (status, answer) = console.send_json(Method::POST, &canary, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    browser.goto(&page).await;
    browser.wait_for_text("#canary-state", "progressing", READY_WITHIN).await;
    let (status, answer) = console.send_json(Method::POST, &format!("{canary}/promote?step=0"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "someone else promotes first: {answer}");
    browser.click("#canary-promote").await;
    let conflict = browser.wait_for_text("#canary-promote-error", "step", READY_WITHIN).await;
    assert!(!conflict.contains("History"), "only the message, not a page: {conflict}");
    assert_eq!(browser.client.find_all(Locator::Css("h1")).await.unwrap().len(), 1, "one page, not two");
    let (_, state) = console.get_json(&canary).await;
    assert_eq!(state["step"], 1, "the stale promote did not move the canary again: {state}");
    browser.close().await;
    console.stop().await;
}

async fn one_page(browser: &Browser) -> bool {
    browser.client.find_all(Locator::Css("h1")).await.unwrap().len() == 1
}

/// The deploy, routing and audit pages' forms each answer a conflicting and an invalid
/// submission where the form is: never a page inside the page, never only a global banner.
#[tokio::test]
async fn refused_deploy_routing_and_audit_forms_answer_in_their_own_slots() {
    let ns = TestNamespace::new("uiformerr").await;
    let console = Console::start(&ns.name).await;
    deploy_recommendation_v1_and_v2(&console).await;
    let browser = Browser::start().await;

    // Deploy, conflicting: someone removes v2 after the page was loaded.
    browser.goto(&console.url(&format!("/ns/{}/deploy", ns.name))).await;
    wait_until_ready(&browser, &ns, "recommendation-v2", "ready").await;
    mark_page(&browser).await;
    let (status, body) = console.send_json(Method::DELETE, &console.api("/workloads/recommendation-v2"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.fill("#replicas-recommendation-v2", "3").await;
    browser.click("#workload-recommendation-v2 td:nth-child(4) button").await;
    browser.wait_for_text("#workload-recommendation-v2 #error-recommendation-v2", "not deployed", READY_WITHIN).await;
    assert!(page_was_not_reloaded(&browser).await && one_page(&browser).await);
    assert_eq!(replicas(&ns, "recommendation-v2").await, None, "the stale form changed nothing");
    console.deploy(&["recommendation-v2"]).await;

    // Routing, invalid: weights that do not add up to 100, at the split form.
    let routes = console.url(&format!("/ns/{}/routes/recommendation", ns.name));
    browser.goto(&routes).await;
    browser.fill("#weight-version-v1", "60").await;
    browser.fill("#weight-version-v2", "30").await;
    browser.click("#split-preview").await;
    browser.wait_for_text("#split-form .field-error", "100", READY_WITHIN).await;
    assert!(one_page(&browser).await);
    // Routing, conflicting: someone else changes the routing between preview and apply.
    browser.click("#preset-75-25").await;
    browser.wait_for_text("#preview-change", "75%", READY_WITHIN).await;
    let ninety_ten = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                            "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(ninety_ten)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.click("#apply").await;
    browser.wait_for_text("#route-conflict", "changed since you previewed", READY_WITHIN).await;
    assert!(one_page(&browser).await);
    let (_, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(policy["rules"][0]["route"]["version-v1"], 90, "the stale apply changed nothing: {policy}");

    // Audit, invalid: a time filter that is not a time, at its field.
    let response = console.http.get(console.url("/audit?from=yesterday")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    browser.goto(&console.url("/audit?from=yesterday")).await;
    browser.wait_for_text("#filter-from-error", "UTC time", READY_WITHIN).await;
    assert!(one_page(&browser).await);
    // Audit, conflicting: reverting the first routing change after the routing changed since.
    let first_route = console.audit().await.into_iter().rev().find(|e| e["action"] == "route.update").unwrap();
    browser.goto(&console.url(&format!("/audit/{}", first_route["id"]))).await;
    browser.click("#revert-preview-button").await;
    browser.wait_for_text("#revert-conflict", "changed since", READY_WITHIN).await;
    assert!(one_page(&browser).await);
    let (_, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(policy["rules"][0]["route"]["version-v1"], 90, "a preview changes nothing: {policy}");
    browser.close().await;
    console.stop().await;
}

/// An element's text as the DOM holds it (SVG text included, whether or not it is drawn).
async fn text_content(browser: &Browser, css: &str) -> Option<String> {
    browser.client.find(Locator::Css(css)).await.ok()?.prop("textContent").await.ok()?
}

async fn wait_for_text_content(browser: &Browser, css: &str, expected: &str) -> String {
    support::eventually(READY_WITHIN, &format!("{css} to hold {expected:?}"), || async {
        text_content(browser, css).await.filter(|text| text.contains(expected))
    })
    .await
}

/// The label lines drawn on a graph edge.
async fn label_lines(browser: &Browser, edge: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for text in browser.client.find_all(Locator::Css(&format!("{edge} text"))).await.unwrap_or_default() {
        lines.push(text.prop("textContent").await.ok().flatten().unwrap_or_default());
    }
    lines
}

async fn attribute(browser: &Browser, css: &str, name: &str) -> String {
    let element = browser.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    element.attr(name).await.unwrap().unwrap_or_else(|| panic!("{css} has no {name}"))
}

/// The service graph's accessible name: the element its `aria-labelledby` names, its `<title>`.
async fn graph_words(browser: &Browser) -> String {
    let id = attribute(browser, "svg#service-graph", "aria-labelledby").await;
    text_content(browser, &format!("svg#service-graph > title#{id}")).await.unwrap_or_else(|| panic!("no title #{id}"))
}

fn split(v1: u32, v2: u32) -> serde_json::Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]})
}

/// The overview draws the tutorial as an SVG graph whose edge labels and words follow the
/// live weights without a reload; the routing page draws each rule as a bar, and its
/// preview the bars before and after the change.
#[tokio::test]
async fn the_service_graph_and_the_rule_bars_follow_the_live_weights() {
    let ns = TestNamespace::new("uigraph").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["customer", "preference", "recommendation-v1", "recommendation-v2"]).await;
    // Without routing, each version gets its share of the ready pods.
    let scale = console.api("/workloads/recommendation-v2");
    let (status, body) = console.send_json(Method::PUT, &scale, Some(json!({"replicas": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    wait_for_text_content(&browser, "#edge-recommendation-v2", "round-robin 2/3 (67%)").await;
    wait_for_text_content(&browser, "#edge-recommendation-v1", "round-robin 1/3 (33%)").await;
    let routes = console.api("/routes/recommendation");
    let (status, body) = console.send_json(Method::PUT, &routes, Some(split(90, 10))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_text_content(&browser, "#edge-recommendation-v1", "90%").await;
    assert_eq!(text_content(&browser, "#edge-recommendation-v2 text").await.as_deref(), Some("10%"));
    assert_eq!(attribute(&browser, "svg#service-graph", "role").await, "img");
    let words = graph_words(&browser).await;
    assert!(words.contains("customer calls preference. preference calls recommendation"), "{words}");
    assert!(words.contains("everyone: v1 90% · v2 10%"), "the weights in words: {words}");
    for call in ["#call-customer-v1-preference", "#call-preference-v1-recommendation"] {
        assert!(browser.client.find(Locator::Css(call)).await.is_ok(), "{call} is drawn");
    }
    assert_console_clean(&browser, "overview with the graph").await;
    browser.screenshot("overview-graph").await;

    mark_page(&browser).await;
    let (status, body) = console.send_json(Method::PUT, &routes, Some(split(75, 25))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_text_content(&browser, "#edge-recommendation-v1", "75%").await;
    assert_eq!(text_content(&browser, "#edge-recommendation-v2 text").await.as_deref(), Some("25%"));
    let words = graph_words(&browser).await;
    assert!(words.contains("everyone: v1 75% · v2 25%"), "{words}");
    assert!(page_was_not_reloaded(&browser).await, "the graph follows the cluster in place");

    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    let rule = browser.wait_for_text("#rule-bars-1", "v1 75% · v2 25%", READY_WITHIN).await;
    assert!(rule.contains("Rule 1") && rule.contains("everyone"), "{rule}");
    assert_eq!(attribute(&browser, "#rule-bars-1 svg", "aria-label").await, "rule 1, everyone: v1 75%, v2 25%");
    let widths: Vec<String> = {
        let rects = browser.client.find_all(Locator::Css("#rule-bars-1 rect")).await.unwrap();
        let mut widths = Vec::new();
        for rect in rects {
            widths.push(rect.attr("width").await.unwrap().unwrap());
        }
        widths
    };
    assert_eq!(widths, ["450", "150"], "drawn in proportion, 600 wide");

    browser.click("#header-preview").await;
    let before = browser.wait_for_text("#preview-bars-before", "v1 75% · v2 25%", READY_WITHIN).await;
    assert!(!before.contains("Firefox"), "{before}");
    let after = browser.text("#preview-bars-after").await;
    assert!(after.contains("Firefox users") && after.contains("v2 100%") && after.contains("everyone else"), "{after}");
    assert_eq!(attribute(&browser, "#preview-bars-after-1 svg", "aria-label").await, "rule 1, Firefox users: v2 100%");
    browser.screenshot("routing-preview-bars").await;
    browser.click("#apply").await;
    browser.wait_for_text("#rule-bars-1", "Firefox users", READY_WITHIN).await;
    assert_console_clean(&browser, "routing with bars").await;

    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    wait_for_text_content(&browser, "#edge-recommendation-v2", "Firefox users: 100%").await;
    browser.screenshot("overview-graph-firefox").await;
    let v1 = text_content(&browser, "#edge-recommendation-v1").await.unwrap();
    assert!(v1.contains("everyone else: 100%") && !v1.contains("Firefox"), "{v1}");

    // Timeouts, retries and faults are marked on the rule's bar and on the edges they reach.
    let mut settled = split(75, 25);
    settled["rules"] = json!([
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100},
         "fault": {"abort": {"httpStatus": 503, "percentage": 10}}},
        {"route": {"version-v1": 75, "version-v2": 25}, "timeout": "1s", "retries": {"attempts": 3}}]);
    let (status, body) = console.send_json(Method::PUT, &routes, Some(settled)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for_text_content(&browser, "#edge-recommendation-v1 .mark-timeout", "timeout 1s").await;
    let v1 = label_lines(&browser, "#edge-recommendation-v1").await;
    assert_eq!(v1, ["everyone else: 75%", "timeout 1s", "3 retries"], "no fault where none is injected");
    let v2 = label_lines(&browser, "#edge-recommendation-v2").await;
    assert!(v2.contains(&"10% fail with 503".to_owned()) && v2.contains(&"timeout 1s".to_owned()), "{v2:?}");
    browser.screenshot("overview-graph-marks").await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#rule-bars-1 .mark-abort", "10% fail with 503", READY_WITHIN).await;
    let marks = browser.text("#rule-bars-2 figcaption").await;
    assert!(marks.contains("timeout 1s") && marks.contains("3 retries") && !marks.contains("503"), "{marks}");
    assert_eq!(
        attribute(&browser, "#rule-bars-2 svg", "aria-label").await,
        "rule 2, everyone else: v1 75%, v2 25%; timeout 1s, 3 retries"
    );
    browser.screenshot("routing-marks").await;
    // Each rule's settings form starts from what the rule has; typing one setting keeps the rest.
    let field = |form: &str, name: &str| format!("#resilience-form-{form} input[name={name}]");
    assert_eq!(attribute(&browser, &field("1", "timeout"), "value").await, "1s");
    assert_eq!(attribute(&browser, &field("1", "retry_attempts"), "value").await, "3");
    assert_eq!(attribute(&browser, &field("0", "abort_status"), "value").await, "503");
    assert_eq!(attribute(&browser, &field("0", "abort_percent"), "value").await, "10");
    browser.fill(&field("1", "delay"), "2s").await;
    browser.click("#resilience-preview-1").await;
    let change = browser.wait_for_text("#preview-change", "delay", READY_WITHIN).await;
    assert!(!change.contains("timeout") && !change.contains("retries"), "only the delay changes: {change}");
    let after = browser.text("#preview-bars-after-2").await;
    assert!(after.contains("timeout 1s") && after.contains("3 retries") && after.contains("delayed 2s"), "{after}");
    // The CSP allows no inline styles: the pictures are styled by classes only.
    let inline_style = Regex::new(r"(?i)<[a-z][^>]*\sstyle\s*=").unwrap();
    for path in [format!("/ns/{}", ns.name), format!("/ns/{}/routes/recommendation", ns.name)] {
        let html = console.page(&path).await;
        assert!(!inline_style.is_match(&html), "{path} has an inline style");
    }
    browser.close().await;
    console.stop().await;
}

/// With Prometheus, the graph's edges carry the traffic Istio observed too: what reached
/// each version, and what each calling Deployment sent, errors included.
#[tokio::test]
async fn the_service_graph_shows_observed_rates_with_prometheus() {
    let ns = TestNamespace::new("uigraphprom").await;
    let exporter = support::prometheus::Exporter::start(&ns.name, "recommendation").await;
    exporter.set_source_workload("preference-v1");
    exporter.set("v1", support::prometheus::Traffic { requests_per_second: 8.0, error_ratio: 0.25, latency_ms: 40.0 });
    let prometheus = support::prometheus::PrometheusServer::start(exporter.addr).await;
    let url = prometheus.url.clone();
    let console = Console::start_with(&ns.name, |c| c.prometheus_url = Some(url)).await;
    console.deploy(&["customer", "preference", "recommendation-v1"]).await;

    let browser = Browser::start().await;
    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    // A rate needs two scrapes; until then the edge says 0.0/s.
    let measured = Regex::new(r"observed [1-9]\d*\.\d/s, \d+% err").unwrap();
    let v1 = support::eventually(READY_WITHIN, "the observed rate of recommendation v1", || async {
        let lines = label_lines(&browser, "#edge-recommendation-v1").await;
        lines.last().is_some_and(|last| measured.is_match(last)).then_some(lines)
    })
    .await;
    assert_eq!(v1[0], "round-robin", "what is configured comes first: {v1:?}");
    let call = label_lines(&browser, "#call-preference-v1-recommendation").await;
    assert!(Regex::new(r"^[1-9]\d*\.\d/s$").unwrap().is_match(&call[0]), "{call:?}");
    assert!(Regex::new(r"^\d+% err$").unwrap().is_match(&call[1]), "{call:?}");
    let words = graph_words(&browser).await;
    assert!(words.contains("Observed over the last minute:"), "{words}");
    assert!(words.contains("preference-v1 calls recommendation: observed "), "{words}");
    assert_console_clean(&browser, "overview with observed rates").await;
    browser.screenshot("overview-graph-observed").await;
    browser.close().await;
    console.stop().await;
}

/// Every page with its picture, from a namespace the walkthrough button deployed: the deploy
/// preview and its one change, the graph, the bars, the routing change's audit entry with
/// its bars before and after, the canary's step strip and sparklines; each SVG is an image
/// whose words say the live state. `make screenshots` runs this test for its screenshots.
#[tokio::test]
async fn every_page_shows_its_picture_of_the_live_state() {
    let ns = TestNamespace::unborn("uipics").await;
    // Istio's metrics of recommendation from a real Prometheus: the graph's observed rates
    // and the canary's sparklines are drawn too.
    let exporter = support::prometheus::Exporter::start(&ns.name, "recommendation").await;
    exporter.set_source_workload("preference-v1");
    exporter.set("v1", support::prometheus::Traffic::healthy(9.0, 40.0));
    exporter.set("v2", support::prometheus::Traffic::healthy(3.0, 80.0));
    let prometheus = support::prometheus::PrometheusServer::start(exporter.addr).await;
    let url = prometheus.url.clone();
    // As `make run` starts it on the dev cluster: no Kiali or Jaeger to link to.
    let console = Console::start_with(&ns.name, |c| {
        c.prometheus_url = Some(url);
        c.kiali_url = None;
        c.jaeger_url = None;
    })
    .await;
    let browser = Browser::start().await;

    browser.goto(&console.url(&format!("/ns/{}/deploy", ns.name))).await;
    browser.click("#walkthrough-button").await;
    let preview = browser.wait_for_text("#walkthrough-preview", "dry run accepted", READY_WITHIN).await;
    assert!(preview.contains("Deployment recommendation-v2") && !preview.contains("recommendation-v3"), "{preview}");
    // What will be created leads; the long diff is folded, so Deploy is on the first screen.
    let confirm = browser.client.find(Locator::Css("#walkthrough-confirm")).await.unwrap();
    let (_, top, _, height) = confirm.rectangle().await.unwrap();
    assert!(top + height < 900.0, "Deploy is visible without scrolling: at {top} px");
    let folded = browser.client.find(Locator::Css("#walkthrough-diff-details")).await.unwrap();
    assert_eq!(folded.attr("open").await.unwrap(), None, "the diff starts folded");
    browser.screenshot("deploy-walkthrough-preview").await;
    browser.click("#walkthrough-confirm").await;
    wait_until_ready(&browser, &ns, "recommendation-v2", "1/1 ready").await;
    wait_until_ready(&browser, &ns, "customer", "1/1 ready").await;
    assert_console_clean(&browser, "deploy").await;
    browser.screenshot("deploy").await;
    let deploys: Vec<_> = console.audit().await.into_iter().filter(|e| e["action"] == "tutorial.deploy").collect();
    assert_eq!(deploys.len(), 1, "the walkthrough is one audited change");

    let routes = console.api("/routes/recommendation");
    let mut settled = split(75, 25);
    settled["rules"][0]["timeout"] = json!("1s");
    settled["rules"][0]["retries"] = json!({"attempts": 3});
    for policy in [split(90, 10), settled] {
        let (status, body) = console.send_json(Method::PUT, &routes, Some(policy)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    wait_for_text_content(&browser, "#edge-recommendation-v1", "75%").await;
    wait_for_text_content(&browser, "#edge-recommendation-v1 .mark-timeout", "timeout 1s").await;
    browser.screenshot("overview").await;
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#rule-bars-1", "v1 75% · v2 25%", READY_WITHIN).await;
    browser.wait_for_text("#rule-bars-1 .mark-retries", "3 retries", READY_WITHIN).await;
    browser.screenshot("routing").await;

    let audit = console.audit().await;
    let reweight = audit.iter().find(|e| e["action"].as_str().unwrap().starts_with("route")).expect("a routing entry");
    browser.goto(&console.url(&format!("/audit/{}", reweight["id"]))).await;
    let before = "#audit-bars-before-1 svg";
    assert_eq!(attribute(&browser, before, "role").await, "img");
    assert_eq!(attribute(&browser, before, "aria-label").await, "rule 1, everyone: v1 90%, v2 10%");
    let after = "rule 1, everyone: v1 75%, v2 25%; timeout 1s, 3 retries";
    assert_eq!(attribute(&browser, "#audit-bars-after-1 svg", "aria-label").await, after);
    assert_eq!(text_content(&browser, "#audit-bars-after-1 svg > title").await.as_deref(), Some(after));
    assert_console_clean(&browser, "audit entry").await;
    browser.screenshot("audit-entry").await;
    let deploy_entry = format!("/audit/{}", deploys[0]["id"]);
    assert!(!console.page(&deploy_entry).await.contains("audit-bars"), "a deploy is no routing change: no bars");

    let canaries = console.api("/canaries/recommendation");
    let start = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 25, 100]});
    let (status, body) = console.send_json(Method::POST, &canaries, Some(start)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = console.send_json(Method::POST, &format!("{canaries}/promote"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.goto(&console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).await;
    let strip = "#canary-steps-picture svg";
    assert_eq!(attribute(&browser, strip, "role").await, "img");
    let words = attribute(&browser, strip, "aria-label").await;
    assert_eq!(words, "canary steps 10%, 25%, 100%: step 2 of 3, v2 gets 25% (progressing)");
    assert_eq!(text_content(&browser, &format!("{strip} > title")).await, Some(words));
    let current = browser.client.find(Locator::Css("#canary-steps-picture rect.step-current + text")).await.unwrap();
    assert_eq!(current.text().await.unwrap(), "25%", "the current step is marked");
    let success = "#canary-sparkline-1 svg";
    let words = support::eventually(READY_WITHIN, "the canary's success rate measured", || async {
        browser.goto(&console.url(&format!("/ns/{}/canaries/recommendation", ns.name))).await;
        let words = browser.client.find(Locator::Css(success)).await.ok()?.attr("aria-label").await.ok()??;
        words.contains("now 100.00%").then_some(words)
    })
    .await;
    assert_eq!(words, "v2 success rate, last 5 min: now 100.00%, lowest 100.00%; minimum 99.00%");
    assert_eq!(attribute(&browser, success, "role").await, "img");
    assert_eq!(text_content(&browser, &format!("{success} > title")).await, Some(words));
    let p99 = attribute(&browser, "#canary-sparkline-2 svg", "aria-label").await;
    assert!(p99.starts_with("v2 p99 latency, last 5 min: ") && p99.ends_with("; maximum 500.0 ms"), "{p99}");
    assert_console_clean(&browser, "canary").await;
    browser.screenshot("canary").await;
    // The running canary, marked on the rule it moves and on the graph's edges.
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#rule-bars-1 .mark-canary", "canary v2 25%, step 2/3", READY_WITHIN).await;
    browser.screenshot("routing-canary").await;
    browser.goto(&console.url(&format!("/ns/{}", ns.name))).await;
    wait_for_text_content(&browser, "#edge-recommendation-v1 .mark-canary", "canary v2 25%").await;
    browser.screenshot("overview-canary").await;

    let inline_style = Regex::new(r"(?i)<[a-z][^>]*\sstyle\s*=").unwrap();
    for path in [format!("/ns/{}/canaries/recommendation", ns.name), format!("/audit/{}", reweight["id"])] {
        assert!(!inline_style.is_match(&console.page(&path).await), "{path} has an inline style");
    }
    browser.close().await;
    console.stop().await;
    drop(prometheus);
}

/// A running canary's annotation is one long line in the VirtualService's YAML: the page
/// must stay as wide as a 1,400 px window, the DestinationRule beside it in view, the long
/// line scrolling inside its own box.
#[tokio::test]
async fn a_running_canary_does_not_make_the_routing_page_wider_than_the_window() {
    let ns = TestNamespace::new("uiwide").await;
    let console = Console::start(&ns.name).await;
    deploy_recommendation_v1_and_v2(&console).await;
    let body = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 25, 50, 75, 100]});
    let (status, started) = console.send_json(Method::POST, &console.api("/canaries/recommendation"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{started}");

    let browser = Browser::start().await;
    browser.client.set_window_size(1400, 900).await.unwrap();
    browser.goto(&console.url(&format!("/ns/{}/routes/recommendation", ns.name))).await;
    browser.wait_for_text("#live-vs", "signalbox.io/canary", READY_WITHIN).await;
    let measured = browser
        .client
        .execute(
            "const dr = document.getElementById('live-dr').getBoundingClientRect();
             return [document.documentElement.scrollWidth, window.innerWidth, dr.left, dr.right, dr.width];",
            vec![],
        )
        .await
        .unwrap();
    let numbers: Vec<f64> = measured.as_array().unwrap().iter().map(|n| n.as_f64().unwrap()).collect();
    let [scroll_width, inner_width, dr_left, dr_right, dr_width] = numbers[..] else { panic!("{measured}") };
    assert!(inner_width >= 1300.0, "the window is about 1,400 px wide: {inner_width}");
    assert!(scroll_width <= inner_width, "the page is {scroll_width} px wide in a {inner_width} px window");
    assert!(
        dr_left >= 0.0 && dr_right <= inner_width && dr_width > 200.0,
        "the DestinationRule is in view: {measured}"
    );
    browser.screenshot("routing-with-canary-1400").await;
    browser.close().await;
    console.stop().await;
}
