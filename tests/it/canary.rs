//! Canaries through the API against the real API server: the tutorial's 10 → 25 → 100 and
//! finish, an abort, concurrent promotes, and who may do what under a team file.
use crate::support;

use kube::api::Api;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::console::Console;

async fn deploy_two_versions(console: &Console, headers: &[(&str, &str)]) {
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let mut request = console.http.put(console.api(&format!("/workloads/{workload}"))).json(&json!({}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    }
}

fn firefox_then_v1() -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 100}, "timeout": "3s"}
    ]})
}

/// A console over a fresh namespace with two recommendation versions, routed by
/// [`firefox_then_v1`].
async fn routed_console(prefix: &str) -> (TestNamespace, Console) {
    let ns = TestNamespace::new(prefix).await;
    let console = Console::start(&ns.name).await;
    deploy_two_versions(&console, &[]).await;
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(firefox_then_v1())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (ns, console)
}

async fn live_vs(ns: &TestNamespace) -> Value {
    let api = ns.objects(Kind::VirtualService);
    serde_json::to_value(api.get("recommendation").await.unwrap()).unwrap()
}

/// What a write to the VirtualService would move: its spec's generation and its annotations
/// (a canary's state). Not its resourceVersion: istiod's analysis writes its status.
fn written(vs: &Value) -> (Value, Value) {
    (vs["metadata"]["generation"].clone(), vs["metadata"]["annotations"].clone())
}

fn default_weights(vs: &Value) -> Vec<(String, i64)> {
    vs["spec"]["http"][1]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["destination"]["subset"].as_str().unwrap().to_owned(), r["weight"].as_i64().unwrap_or(100)))
        .collect()
}

async fn post(console: &Console, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    console
        .send_json(
            Method::POST,
            &console.api(&format!("/canaries/recommendation{path}")),
            Some(body.unwrap_or(json!({}))),
        )
        .await
}

#[tokio::test]
async fn the_tutorial_canary_10_25_100_then_finish_keeps_the_header_rule() {
    let ns = TestNamespace::new("canary").await;
    let console = Console::start(&ns.name).await;
    deploy_two_versions(&console, &[]).await;
    let (status, _) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(firefox_then_v1())).await;
    assert_eq!(status, StatusCode::OK);

    let (status, started) =
        post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 25, 100]}))).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!((started["weight"].as_u64(), started["state"].as_str()), (Some(10), Some("progressing")));
    let vs = live_vs(&ns).await;
    assert_eq!(default_weights(&vs), [("version-v1".into(), 90), ("version-v2".into(), 10)]);
    assert!(
        vs["metadata"]["annotations"]["signalbox.io/canary"].as_str().unwrap().contains("\"step\":0"),
        "kubectl users can see the plan"
    );

    for expected in [25, 100] {
        let (status, promoted) = post(&console, "/promote", None).await;
        assert_eq!(status, StatusCode::OK, "{promoted}");
        assert_eq!(promoted["weight"].as_u64(), Some(expected));
    }
    let (status, _) = post(&console, "/promote", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing beyond 100%");
    let (status, finished) = post(&console, "/finish", None).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(finished["state"], "finished");

    let vs = live_vs(&ns).await;
    assert_eq!(default_weights(&vs), [("version-v2".into(), 100)]);
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["headers"]["baggage-user-agent"]["regex"], ".*Firefox.*",
        "header rule kept"
    );
    assert_eq!(vs["spec"]["http"][1]["timeout"], "3s", "rule settings kept");
    let (_, got) = console.get_json(&console.api("/canaries/recommendation")).await;
    assert_eq!(
        got,
        json!({"host": "recommendation", "stable": "version-v1", "canary": "version-v2", "steps": [10, 25, 100], "step": 2, "weight": 100, "state": "finished", "analysis": null})
    );
    let actions: Vec<String> =
        console.audit().await.iter().take(4).map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["canary.finish", "canary.promote", "canary.promote", "canary.start"]);
    console.stop().await;
}

#[tokio::test]
async fn abort_sends_all_traffic_to_stable_and_keeps_the_canary_deployed() {
    let ns = TestNamespace::new("abort").await;
    let console = Console::start(&ns.name).await;
    deploy_two_versions(&console, &[]).await;
    console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(firefox_then_v1())).await;
    post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2"}))).await;
    let (_, promoted) = post(&console, "/promote", None).await;
    assert_eq!(promoted["weight"], 25, "default plan 10, 25, 50, 75, 100");
    let (status, aborted) = post(&console, "/abort", None).await;
    assert_eq!(status, StatusCode::OK, "{aborted}");
    assert_eq!((aborted["state"].as_str(), aborted["weight"].as_u64()), (Some("aborted"), Some(0)));
    assert_eq!(default_weights(&live_vs(&ns).await), [("version-v1".into(), 100)]);
    let (_, workloads) = console.get_json(&console.api("/workloads")).await;
    assert!(workloads.as_array().unwrap().iter().any(|w| w["name"] == "recommendation-v2"), "canary still deployed");
    let (status, _) = post(&console, "/promote", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "an aborted canary does not move");
    console.stop().await;
}

/// Finishing with `scaleDown=true` leaves the new version alone at 100% and the old one
/// at 0 replicas, as a second audited change.
#[tokio::test]
async fn finish_with_scale_down_scales_the_old_version_to_zero() {
    let ns = TestNamespace::new("scaledown").await;
    let console = Console::start(&ns.name).await;
    deploy_two_versions(&console, &[]).await;
    console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(firefox_then_v1())).await;
    post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2", "steps": [50, 100]}))).await;
    let (status, finished) = post(&console, "/finish?scaleDown=true", None).await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(finished["state"], "finished");

    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let replicas = |name| {
        let deployments = deployments.clone();
        async move { deployments.get(name).await.unwrap().spec.unwrap().replicas }
    };
    assert_eq!(replicas("recommendation-v1").await, Some(0), "the old stable version is scaled down");
    assert_eq!(replicas("recommendation-v2").await, Some(1), "the new one keeps running");
    assert_eq!(default_weights(&live_vs(&ns).await), [("version-v2".into(), 100)]);
    let audit = console.audit().await;
    let actions: Vec<_> = audit.iter().take(2).map(|e| (e["action"].as_str(), e["outcome"].as_str())).collect();
    assert_eq!(actions, [(Some("canary.scale-down"), Some("applied")), (Some("canary.finish"), Some("applied"))]);
    console.stop().await;
}

#[tokio::test]
async fn concurrent_promotes_move_the_canary_exactly_one_step() {
    let ns = TestNamespace::new("race").await;
    let console = Console::start(&ns.name).await;
    deploy_two_versions(&console, &[]).await;
    console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(firefox_then_v1())).await;
    post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 25, 50, 100]}))).await;
    // Two people promote from the step their page shows (step 0).
    let (first, second) =
        tokio::join!(post(&console, "/promote?step=0", None), post(&console, "/promote?step=0", None));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{first:?} {second:?}");
    let conflict = if first.0 == StatusCode::CONFLICT { &first.1 } else { &second.1 };
    assert_eq!(conflict["canary"]["weight"], 25, "the 409 carries the new state: {conflict}");
    let (_, now) = console.get_json(&console.api("/canaries/recommendation")).await;
    assert_eq!(now["weight"], 25);
    console.stop().await;
}

/// A console behind a trusted proxy (127.0.0.1) with `teams` (YAML, `{ns}` replaced by the
/// namespace) as its team file, and recommendation v1/v2 deployed by a platform admin.
async fn console_with_teams(ns: &TestNamespace, teams: &str) -> Console {
    let console = Console::start_with_teams(&ns.name, teams, ("carol", "admins")).await;
    deploy_two_versions(&console, &[("x-forwarded-user", "carol"), ("x-forwarded-groups", "admins")]).await;
    console
}

#[tokio::test]
async fn teams_decide_who_may_deploy_route_and_run_canaries() {
    let ns = TestNamespace::new("teams").await;
    let teams = "teams:
  - name: recommendation
    members: {users: [alice]}
    namespaces: [{ns}]
    hosts: [recommendation]
    actions: [route, canary]
  - name: web
    members: {users: [bob]}
    namespaces: [{ns}]
    hosts: [preference]
    actions: [deploy, route, canary]
  - name: platform
    members: {groups: [admins]}
    namespaces: ['*']
    actions: [admin]
";
    let console = console_with_teams(&ns, teams).await;

    let as_user = |user: Option<(&'static str, &'static str)>, method: Method, path: String, body: Value| {
        let mut request = console.http.request(method, console.api(&path)).json(&body);
        if let Some((name, groups)) = user {
            request = request.header("x-forwarded-user", name).header("x-forwarded-groups", groups);
        }
        async move { request.send().await.unwrap().status() }
    };
    let owner = Some(("alice", ""));
    let other_team = Some(("bob", ""));
    let admin = Some(("carol", "admins"));
    let start = json!({"stable": "version-v1", "canary": "version-v2"});
    let route = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [{"route": {"version-v1": 100}}]});
    let expectations = [
        (owner, Method::PUT, "/routes/recommendation", route.clone(), StatusCode::OK),
        (owner, Method::POST, "/canaries/recommendation", start.clone(), StatusCode::OK),
        (owner, Method::POST, "/canaries/recommendation/abort", json!({}), StatusCode::OK),
        (owner, Method::PUT, "/workloads/recommendation-v1", json!({}), StatusCode::FORBIDDEN),
        (other_team, Method::PUT, "/routes/recommendation", route.clone(), StatusCode::FORBIDDEN),
        (other_team, Method::POST, "/canaries/recommendation", start.clone(), StatusCode::FORBIDDEN),
        (other_team, Method::PUT, "/workloads/recommendation-v1", json!({}), StatusCode::FORBIDDEN),
        (other_team, Method::PUT, "/workloads/preference", json!({}), StatusCode::OK),
        // The walkthrough may create the namespace and writes every tutorial host: whole namespace only.
        (other_team, Method::PUT, "/tutorial", json!({}), StatusCode::FORBIDDEN),
        (admin, Method::PUT, "/routes/recommendation", route.clone(), StatusCode::OK),
        (admin, Method::POST, "/canaries/recommendation", start.clone(), StatusCode::OK),
        (admin, Method::PUT, "/workloads/recommendation-v1", json!({}), StatusCode::OK),
        (None, Method::POST, "/canaries/recommendation/promote", json!({}), StatusCode::UNAUTHORIZED),
        (None, Method::PUT, "/routes/recommendation", route.clone(), StatusCode::UNAUTHORIZED),
        (None, Method::PUT, "/workloads/recommendation-v1", json!({}), StatusCode::UNAUTHORIZED),
    ];
    for (user, method, path, body, expected) in expectations {
        let status = as_user(user, method.clone(), path.to_string(), body).await;
        assert_eq!(status, expected, "{user:?} {method} {path}");
    }
    let audit = console.audit().await;
    let denied: Vec<&str> =
        audit.iter().filter(|e| e["outcome"] == "denied").map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(denied.iter().filter(|a| **a == "bob").count(), 4);
    assert_eq!(denied.iter().filter(|a| **a == "anonymous").count(), 3, "{denied:?}");
    assert_eq!(denied.iter().filter(|a| **a == "alice").count(), 1, "{denied:?}");
    let (_, page) = console.get_as(Some(("alice", "")), &format!("/ns/{}/deploy", ns.name)).await;
    assert!(!page.contains("Scale</button>"), "alice may not deploy, so no Scale buttons are shown");
    console.stop().await;
}

#[tokio::test]
async fn an_edited_team_file_takes_effect_without_a_restart() {
    let ns = TestNamespace::new("reload").await;
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    let team_file = |actions: &str| {
        format!(
            "teams:\n  - name: web\n    members: {{users: [bob]}}\n    namespaces: [{}]\n    actions: [{actions}]\n",
            ns.name
        )
    };
    std::fs::write(&teams, team_file("view")).unwrap();
    let console = Console::start_with(&ns.name, |config| {
        config.teams = Some(teams.clone());
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let deploy = || async {
        let request = console.http.put(console.api("/workloads/recommendation-v1")).header("x-forwarded-user", "bob");
        request.json(&json!({})).send().await.unwrap().status()
    };
    assert_eq!(deploy().await, StatusCode::FORBIDDEN);
    // A ConfigMap update replaces the file; the reloader notices within a few seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(&teams, team_file("deploy")).unwrap();
    support::eventually(std::time::Duration::from_secs(10), "the new team file to apply", || async {
        (deploy().await == StatusCode::OK).then_some(())
    })
    .await;
    console.stop().await;
}

/// Route fields signalbox keeps verbatim but Istio acts on — mirrors to another host, a
/// redirect to another authority, a delegate — are authorized as writes to what they reach:
/// a team limited to one host cannot send or copy traffic elsewhere through them.
#[tokio::test]
async fn fields_that_reach_other_hosts_need_permission_for_those_hosts() {
    let ns = TestNamespace::new("reach").await;
    let teams = "teams:
  - name: recommendation
    members: {users: [alice]}
    namespaces: [{ns}]
    hosts: [recommendation]
    actions: [route]
  - name: routing
    members: {users: [dora]}
    namespaces: [{ns}]
    actions: [route]
  - name: platform
    members: {groups: [admins]}
    namespaces: ['*']
    actions: [admin]
";
    let console = console_with_teams(&ns, teams).await;
    let put = |user: &'static str, rule: Value| {
        let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                          "rules": [rule]});
        let request =
            console.http.put(console.api("/routes/recommendation")).header("x-forwarded-user", user).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let own_mirror = json!({"route": {"version-v1": 100},
        "mirrors": [{"destination": {"host": format!("recommendation.{}.svc.cluster.local", ns.name), "subset": "version-v2"}}]});
    let (status, answer) = put("alice", own_mirror).await;
    assert_eq!(status, StatusCode::OK, "mirroring to her own host is hers to do: {answer}");

    let foreign_mirror = json!({"route": {"version-v1": 100},
        "mirrors": [{"destination": {"host": "preference"}}]});
    let (status, answer) = put("alice", foreign_mirror.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("preference") && error.contains("rules[0].mirrors[0].destination.host"), "{error}");
    let delegate = json!({"delegate": {"name": "shared-routes"}});
    let (status, answer) = put("alice", delegate).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a delegate hands routing to any VirtualService: {answer}");
    let (_, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert!(
        policy["rules"][0].get("mirrors").unwrap()[0]["destination"]["host"]
            .as_str()
            .unwrap()
            .starts_with("recommendation")
    );

    let (status, answer) = put("dora", foreign_mirror).await;
    assert_eq!(status, StatusCode::OK, "a namespace-wide routing team may mirror to preference: {answer}");
    let denied =
        console.audit().await.into_iter().filter(|e| e["outcome"] == "denied" && e["actor"] == "alice").count();
    assert_eq!(denied, 2, "both refusals are audited");
    console.stop().await;
}

/// A canary start whose steps are not numbers is refused next to the field and audited as a
/// failed `canary.start`, as invalid scaling is; nothing is written.
#[tokio::test]
async fn an_unreadable_canary_start_is_refused_and_audited() {
    let (ns, console) = routed_console("canary-bad").await;
    let before = live_vs(&ns).await;
    let start = format!("/ns/{}/canaries/recommendation", ns.name);
    let fields = [("stable", "version-v1"), ("canary", "version-v2"), ("steps", "10, oops, 100")];
    let (status, html) = console.post_form(&start, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("oops&#34; is not a whole number"), "the message next to the form: {html}");
    let entries = console.audit().await;
    let entry = &entries[0];
    assert_eq!(
        (entry["action"].as_str(), entry["outcome"].as_str()),
        (Some("canary.start"), Some("failed")),
        "{entry}"
    );
    assert!(entry["error"].as_str().unwrap().contains("oops"), "{entry}");
    assert_eq!(written(&live_vs(&ns).await), written(&before), "the VirtualService is as it was");
    console.stop().await;
}

/// A canary start is previewed like every other change, also without JavaScript: the page
/// shows the API server's dry-run verdict, the bars before and after with the canary marked,
/// and a Start button that sends exactly what was typed; nothing changes or is audited.
#[tokio::test]
async fn a_canary_start_is_previewed_with_its_dry_run_before_anything_changes() {
    let (ns, console) = routed_console("canary-preview").await;
    let before = live_vs(&ns).await;
    let audited = console.audit().await.len();
    let path = format!("/ns/{}/canaries/recommendation", ns.name);
    let typed = [("stable", "version-v1"), ("canary", "version-v2"), ("steps", "20, 60"), ("preview", "1")];
    let (status, html) = console.post_form(&path, &typed).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("dry run accepted"), "{html}");
    assert!(html.contains("recommendation: canary v2 progressing (v1 80% · v2 20%)"), "the summary: {html}");
    let after = &html[html.find("id=\"canary-bars-after\"").expect("bars after")..];
    assert!(after.contains("canary v2 20%, step 1/3"), "the rule the canary moves is marked: {after}");
    assert!(after.contains("Firefox users"), "the header rule stays: {after}");
    assert!(html.contains(r#"<input type="hidden" name="steps" value="20, 60">"#), "what was typed is sent again");
    assert!(html.contains(r#"id="canary-start">Start</button>"#), "{html}");
    assert_eq!(written(&live_vs(&ns).await), written(&before), "the VirtualService is as it was");
    assert_eq!(console.audit().await.len(), audited, "a preview is not audited");

    let start: Vec<(&str, &str)> = typed.iter().copied().filter(|(name, _)| *name != "preview").collect();
    let (status, html) = console.post_form(&path, &start).await;
    assert!(status.is_success() || status.is_redirection(), "{status}: {html}");
    let annotation = live_vs(&ns).await["metadata"]["annotations"]["signalbox.io/canary"].clone();
    assert!(annotation.as_str().is_some_and(|a| a.contains("[20,60,100]")), "{annotation}");

    let (status, html) = console.post_form(&path, &typed).await;
    assert_eq!(status, StatusCode::CONFLICT, "a running canary cannot be started again: {html}");
    console.stop().await;
}

/// The API previews a start with `?dryRun=true`, as it previews a routing change.
#[tokio::test]
async fn the_api_previews_a_canary_start_with_dry_run() {
    let (ns, console) = routed_console("canary-dryrun").await;
    let before = live_vs(&ns).await;
    let audited = console.audit().await.len();
    let start = json!({"stable": "version-v1", "canary": "version-v2", "steps": [30, 100]});
    let (status, body) = post(&console, "?dryRun=true", Some(start)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["weight"].as_u64(), body["state"].as_str()), (Some(30), Some("progressing")), "{body}");
    assert!(body["summary"].as_str().unwrap().contains("v1 70% · v2 30%"), "{body}");
    assert!(body["diff"].as_str().unwrap().contains("signalbox.io/canary"), "{body}");
    let vs = body["objects"].as_array().unwrap().iter().find(|o| o["kind"] == "VirtualService").unwrap();
    assert_eq!(vs["spec"]["http"][0]["match"][0]["headers"]["baggage-user-agent"]["regex"], ".*Firefox.*");
    assert_eq!(written(&live_vs(&ns).await), written(&before), "the VirtualService is as it was");
    assert_eq!(console.audit().await.len(), audited, "a dry run is not audited");
    let (status, body) = post(&console, "?dryRun=true", Some(json!({"stable": "version-v1", "canary": "v9"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "canary", "{body}");
    console.stop().await;
}

/// Without `--prometheus-url` nothing could judge an auto-advance canary: the start form's
/// box is unticked and disabled and says why, and a form that ticks it anyway is refused.
#[tokio::test]
async fn without_prometheus_the_start_form_offers_no_auto_advance() {
    let (ns, console) = routed_console("canary-noprom").await;
    let path = format!("/ns/{}/canaries/recommendation", ns.name);
    let html = console.page(&path).await;
    let checkbox = regex::Regex::new(r#"<input type="checkbox" name="auto_advance"[^>]*>"#).unwrap();
    let checkbox = checkbox.find(&html).expect("the auto-advance box").as_str();
    assert!(checkbox.contains(" disabled") && !checkbox.contains("checked"), "{checkbox}");
    assert!(html.contains("id=\"canary-auto-unavailable\"") && html.contains("--prometheus-url"), "{html}");

    let fields = [("stable", "version-v1"), ("canary", "version-v2"), ("steps", "50, 100"), ("auto_advance", "on")];
    let (status, html) = console.post_form(&path, &fields).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("auto-advance needs Istio&#39;s metrics") || html.contains("auto-advance needs Istio"),
        "{html}"
    );
    assert!(live_vs(&ns).await["metadata"]["annotations"]["signalbox.io/canary"].is_null(), "nothing started");
    console.stop().await;
}

/// After the canary's start is reverted the host has no canary, and the page says so in
/// words that agree with the history under it: not "No canary has run".
#[tokio::test]
async fn after_a_revert_the_canary_page_says_the_last_canary_was_reverted() {
    let (ns, console) = routed_console("canary-reverted").await;
    let path = format!("/ns/{}/canaries/recommendation", ns.name);
    assert!(console.page(&path).await.contains("No canary has run for recommendation."));

    let (status, started) =
        post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2", "steps": [50, 100]}))).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let revert = console.url(&format!("/api/v1/audit/{}/revert", started["auditId"]));
    let (status, reverted) = console.send_json(Method::POST, &revert, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{reverted}");

    let html = support::eventually(std::time::Duration::from_secs(10), "the page without the canary", || async {
        let html = console.page(&path).await;
        html.contains("id=\"no-canary\"").then_some(html)
    })
    .await;
    assert!(!html.contains("No canary has run"), "{html}");
    let expected = format!(
        "No canary is running for recommendation: the last one was reverted by {}",
        reverted_actor(&console, &reverted).await
    );
    assert!(html.contains(&expected), "{expected}\n{html}");
    assert!(html.contains(&format!("audit #{}", reverted["auditId"])), "{html}");
    assert!(html.contains("<code>canary.start</code>"), "the history still shows the start: {html}");
    console.stop().await;
}

async fn reverted_actor(console: &Console, reverted: &Value) -> String {
    let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{}", reverted["auditId"]))).await;
    entry["actor"].as_str().unwrap().to_owned()
}

/// Canary in the main navigation: the namespace's services and each one's canary in words,
/// from the watch caches, each a link to its canary page.
#[tokio::test]
async fn the_canaries_page_lists_each_service_and_its_canary() {
    let (ns, console) = routed_console("canaries").await;
    let page = format!("/ns/{}/canaries", ns.name);
    let listed = console.page(&page).await;
    assert!(listed.contains(&format!(r#"href="/ns/{}/canaries/recommendation""#, ns.name)), "{listed}");
    assert!(listed.contains("no canary"), "{listed}");
    assert!(listed.contains(&format!(r#"href="/ns/{}/canaries" class="active""#, ns.name)), "in the navigation");
    post(&console, "", Some(json!({"stable": "version-v1", "canary": "version-v2"}))).await;
    post(&console, "/promote", None).await;
    support::eventually(std::time::Duration::from_secs(10), "the canary on the canaries page", || async {
        let listed = console.page(&page).await;
        listed.contains("version-v2 at 25% (step 2 of 5), progressing").then_some(())
    })
    .await;
    console.stop().await;
}
