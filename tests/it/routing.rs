//! The routing API against the real API server and Istio's CRD schemas: the tutorial's
//! routing walkthrough, preservation of unmodelled fields, validation, conflicts, the route
//! tester and dry runs.
use crate::support;

use kube::api::{DynamicObject, Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::console::Console;
use support::fixtures::fixture_documents;

const ISTIOFILES: &str = "istio-tutorial/istiofiles";

async fn live_spec(ns: &TestNamespace, kind: &str) -> Option<Value> {
    let object = ns.objects(Kind::parse(kind).unwrap()).get_opt("recommendation").await.unwrap()?;
    Some(normalized(serde_json::to_value(object).unwrap()["spec"].clone()))
}

fn fixture_spec(file: &str) -> Value {
    normalized(fixture_documents(&format!("{ISTIOFILES}/{file}")).remove(0)["spec"].clone())
}

/// Istio semantics: a route's only destination gets 100% whether or not `weight: 100` is written.
fn normalized(mut spec: Value) -> Value {
    for route in spec["http"].as_array_mut().into_iter().flatten() {
        if let Some([only]) = route["route"].as_array_mut().map(Vec::as_mut_slice)
            && only["weight"] == 100
        {
            only.as_object_mut().unwrap().remove("weight");
        }
    }
    spec
}

async fn console_with_two_versions() -> (TestNamespace, Console) {
    let ns = TestNamespace::new("route").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    (ns, console)
}

fn subsets() -> Value {
    json!({"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}})
}

async fn put_policy(console: &Console, body: Value) -> (StatusCode, Value) {
    console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(body)).await
}

/// Applies one step and checks it left exactly one applied audit entry with before/after.
async fn step(console: &Console, body: Value, action: &str) -> Value {
    let before = console.audit().await.len();
    let (status, answer) = match body {
        Value::Null => console.send_json(Method::DELETE, &console.api("/routes/recommendation"), None).await,
        body => put_policy(console, body).await,
    };
    assert_eq!(status, StatusCode::OK, "{answer}");
    let audit = console.audit().await;
    let added: Vec<String> = audit[..audit.len().saturating_sub(before)]
        .iter()
        .map(|e| format!("{} {} {} {} by {}", e["action"], e["kind"], e["name"], e["outcome"], e["actor"]))
        .collect();
    assert_eq!(audit.len(), before + 1, "one audit entry per step; added: {added:?}");
    let entry = audit[0].clone();
    assert_eq!((entry["action"].as_str(), entry["outcome"].as_str()), (Some(action), Some("applied")), "{entry}");
    assert!(entry["actor"].as_str().unwrap().starts_with("local:"));
    assert!(entry.get("before").is_some() && entry.get("after").is_some());
    entry
}

#[tokio::test]
async fn the_tutorial_walkthrough_step_by_step() {
    let (ns, console) = console_with_two_versions().await;

    step(&console, json!({"subsets": subsets(), "rules": []}), "route.update").await;
    assert_eq!(
        live_spec(&ns, "DestinationRule").await.unwrap(),
        fixture_spec("destination-rule-recommendation-v1-v2.yml")
    );
    assert!(live_spec(&ns, "VirtualService").await.is_none(), "subsets alone need no VirtualService");

    let walkthrough = [
        (json!({"version-v1": 100}), "virtual-service-recommendation-v1.yml", "recommendation: add: everyone → v1"),
        (json!({"version-v1": 90, "version-v2": 10}), "virtual-service-recommendation-v1_and_v2.yml", ""),
        (
            json!({"version-v1": 75, "version-v2": 25}),
            "virtual-service-recommendation-v1_and_v2_75_25.yml",
            "send 75% to v1 (was 90%), send 25% to v2 (was 10%)",
        ),
        (json!({"version-v2": 100}), "virtual-service-recommendation-v2.yml", ""),
    ];
    for (route, file, summary_part) in walkthrough {
        let entry = step(&console, json!({"subsets": subsets(), "rules": [{"route": route}]}), "route.update").await;
        assert_eq!(live_spec(&ns, "VirtualService").await.unwrap(), fixture_spec(file), "after {file}");
        assert_eq!(
            live_spec(&ns, "DestinationRule").await.unwrap(),
            fixture_spec("destination-rule-recommendation-v1-v2.yml")
        );
        let summary = entry["summary"].as_str().unwrap();
        assert!(summary.starts_with("recommendation: ") && summary.contains(summary_part), "{summary}");
    }

    step(&console, Value::Null, "route.delete").await;
    assert!(live_spec(&ns, "VirtualService").await.is_none() && live_spec(&ns, "DestinationRule").await.is_none());

    let firefox = json!({"subsets": subsets(), "rules": [
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 100}}
    ]});
    step(&console, firefox, "route.update").await;
    assert_eq!(
        live_spec(&ns, "VirtualService").await.unwrap(),
        fixture_spec("virtual-service-firefox-recommendation-v2.yml")
    );
    let (status, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["rules"][0]["route"], json!({"version-v2": 100}));
    assert!(policy["resourceVersion"]["virtualService"].as_str().is_some());

    step(&console, Value::Null, "route.delete").await;
    let (status, _) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    console.stop().await;
}

#[tokio::test]
async fn fields_the_console_does_not_model_survive_a_weight_change() {
    let (ns, console) = console_with_two_versions().await;
    let dr = fixture_documents(&format!("{ISTIOFILES}/destination-rule-recommendation-v1-v2.yml")).remove(0);
    let mut dr = dr;
    dr["apiVersion"] = json!("networking.istio.io/v1");
    dr["spec"]["trafficPolicy"] = json!({"connectionPool": {"tcp": {"maxConnections": 7}}});
    ns.objects(Kind::DestinationRule)
        .patch("recommendation", &PatchParams::apply("kubectl"), &Patch::Apply(&dr))
        .await
        .unwrap();
    let vs = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation", "labels": {"team": "reco"}, "annotations": {"owner": "reco@example.com"}},
        "spec": {"hosts": ["recommendation"], "http": [
            {"name": "api-prefix", "match": [{"uri": {"prefix": "/api"}}],
             "retries": {"attempts": 3, "perTryTimeout": "2s"},
             "route": [{"destination": {"host": "recommendation", "subset": "version-v1"}}]},
            {"name": "default",
             "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"]},
             "headers": {"request": {"set": {"x-team": "reco"}}},
             "route": [{"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 90},
                       {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 10}]}
        ]}
    });
    ns.objects(Kind::VirtualService)
        .patch("recommendation", &PatchParams::apply("kubectl"), &Patch::Apply(&vs))
        .await
        .unwrap();

    let (status, mut policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    policy["rules"][1]["route"] = json!({"version-v1": 75, "version-v2": 25});
    let (status, answer) = put_policy(&console, policy).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let live = serde_json::to_value(ns.objects(Kind::VirtualService).get("recommendation").await.unwrap()).unwrap();
    let mut expected = vs["spec"].clone();
    expected["http"][1]["route"][0]["weight"] = json!(75);
    expected["http"][1]["route"][1]["weight"] = json!(25);
    assert_eq!(live["spec"], expected, "only the weights changed");
    assert_eq!(live["metadata"]["labels"]["team"], "reco");
    assert_eq!(live["metadata"]["annotations"]["owner"], "reco@example.com");
    let live_dr = serde_json::to_value(ns.objects(Kind::DestinationRule).get("recommendation").await.unwrap()).unwrap();
    assert_eq!(live_dr["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["maxConnections"], 7);
    console.stop().await;
}

#[tokio::test]
async fn invalid_policies_are_refused_with_the_field_and_change_nothing() {
    let (ns, console) = console_with_two_versions().await;
    let rule = |route: Value| json!({"subsets": subsets(), "rules": [{"route": route}]});
    let header_rule = |name: &str, regex: &str| {
        json!({"subsets": subsets(), "rules": [
        {"match": [{"headers": {name: {"regex": regex}}}], "route": {"version-v2": 100}}]})
    };
    let cases = [
        (rule(json!({"version-v1": 90, "version-v2": 9})), "rules[0].route", "100"),
        (rule(json!({"version-v1": 90, "version-v2": 11})), "rules[0].route", "100"),
        (rule(json!({"version-v1": 110, "version-v2": -10})), "rules[0].route.version-v", ""),
        (rule(json!({"version-v1": 89.5, "version-v2": 10.5})), "rules[0].route.version-v", ""),
        (rule(json!({"version-v1": 90, "version-v9": 10})), "rules[0].route.version-v9", "not defined"),
        (header_rule("baggage-user-agent", "(?=Firefox)"), "rules[0].match[0].headers.baggage-user-agent", ""),
        (header_rule("User-Agent", ".*Firefox.*"), "rules[0].match[0].headers.User-Agent", "lowercase"),
        (json!({"subsets": {"<script>": {"version": "v1"}}, "rules": []}), "subsets.<script>", ""),
    ];
    for (body, field, words) in cases {
        let (status, answer) = put_policy(&console, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {answer}");
        let problems = answer["problems"].as_array().unwrap();
        let problem = problems.iter().find(|p| p["field"].as_str().unwrap().starts_with(field));
        let problem = problem.unwrap_or_else(|| panic!("no problem at {field}: {answer}"));
        assert!(problem["message"].as_str().unwrap().contains(words), "{problem}");
    }
    let (status, answer) = put_policy(&console, rule(json!({"version-v1": "ninety"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("invalid type"), "{answer}");

    let (status, answer) = console
        .send_json(
            Method::PUT,
            &console.url(&format!("/api/v1/namespaces/{}/routes/%3Cscript%3E", ns.name)),
            Some(rule(json!({"version-v1": 100}))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["field"], "host");

    let huge = json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 100}, "name": "x".repeat(300 * 1024)}]});
    let (status, _) = put_policy(&console, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    assert!(live_spec(&ns, "VirtualService").await.is_none() && live_spec(&ns, "DestinationRule").await.is_none());
    console.stop().await;
}

#[tokio::test]
async fn two_edits_from_the_same_loaded_state_one_applies_the_other_conflicts() {
    let (_ns, console) = console_with_two_versions().await;
    let (status, _) =
        put_policy(&console, json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]}))
            .await;
    assert_eq!(status, StatusCode::OK);
    let (_, loaded) = console.get_json(&console.api("/routes/recommendation")).await;
    let edit = |v1: u32| {
        let mut body = loaded.clone();
        body["rules"][0]["route"] = json!({"version-v1": v1, "version-v2": 100 - v1});
        body
    };
    let (first, second) = tokio::join!(put_policy(&console, edit(75)), put_policy(&console, edit(50)));
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{first:?} {second:?}");

    let (_, missing_then) = (
        0,
        json!({"subsets": subsets(), "rules": [], "resourceVersion": {"virtualService": null, "destinationRule": null}}),
    );
    let (status, answer) = put_policy(&console, missing_then).await;
    assert_eq!(status, StatusCode::CONFLICT, "it existed already: {answer}");
    console.stop().await;
}

#[tokio::test]
async fn the_route_tester_agrees_with_the_rules_and_dry_runs_change_nothing() {
    let (ns, console) = console_with_two_versions().await;
    let firefox = json!({"subsets": subsets(), "rules": [
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 90, "version-v2": 10}}
    ]});
    let (status, preview) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation?dryRun=true"), Some(firefox.clone())).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let diff = preview["diff"].as_str().unwrap();
    assert!(diff.lines().any(|l| l.starts_with('+') && l.trim_end().ends_with("regex: .*Firefox.*")), "{diff}");
    assert_eq!(preview["objects"].as_array().unwrap().len(), 2);
    assert!(live_spec(&ns, "VirtualService").await.is_none(), "a dry run persists nothing");
    assert_eq!(console.audit().await.len(), 2, "a dry run writes no audit entry (only the two deploys)");

    let (status, _) = put_policy(&console, firefox).await;
    assert_eq!(status, StatusCode::OK);
    let tester = console.api("/routes/recommendation/test");
    let firefox_ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let (_, answer) = console
        .send_json(Method::POST, &tester, Some(json!({"path": "/", "headers": {"baggage-user-agent": firefox_ua}})))
        .await;
    assert_eq!(answer, json!({"rule": 0, "shares": {"version-v2": 100}}));
    let safari_ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
    let (_, answer) = console
        .send_json(Method::POST, &tester, Some(json!({"path": "/", "headers": {"Baggage-User-Agent": safari_ua}})))
        .await;
    assert_eq!(answer, json!({"rule": 1, "shares": {"version-v1": 90, "version-v2": 10}}));
    console.stop().await;
}

/// Istio's own verdict: istiod's validating webhook judges every dry run, and what it refuses
/// reaches the user as a problem at the field it names — here a regex repeat count over RE2's
/// limit of 1000, which Rust's regex engine (signalbox's own check) accepts.
#[tokio::test]
async fn istiods_webhook_refusals_show_istios_message_at_the_field() {
    let (ns, console) = console_with_two_versions().await;
    let over_limit = ".*Firefox/x{1001}";
    let body = json!({"subsets": subsets(), "rules": [
        {"match": [{"headers": {"baggage-user-agent": {"regex": over_limit}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 100}}]});
    for url in [console.api("/routes/recommendation?dryRun=true"), console.api("/routes/recommendation")] {
        let (status, answer) = console.send_json(Method::PUT, &url, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let problem = &answer["problems"][0];
        assert_eq!(problem["field"], "rules[0].match[0].headers.baggage-user-agent", "{answer}");
        let message = problem["message"].as_str().unwrap();
        assert!(message.starts_with("Istio refused this:") && message.contains("repeat count"), "{message}");
    }
    let refusal = &console.audit().await[0];
    assert_eq!((refusal["outcome"].as_str(), refusal["action"].as_str()), (Some("failed"), Some("route.update")));
    assert!(refusal["error"].as_str().unwrap().contains("Istio refused this"), "{refusal}");

    let (status, answer) = put_policy(
        &console,
        json!({"subsets": subsets(), "rules": [
        {"route": {"version-v1": 100}, "redirect": {"uri": "/elsewhere"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["problems"][0]["field"], "rules[0].redirect", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("cannot contain both route and redirect"), "{answer}");
    assert!(live_spec(&ns, "VirtualService").await.is_none(), "nothing Istio refused was written");

    // The page: the header-route form's preview shows Istio's message under the regex field.
    put_policy(&console, json!({"subsets": subsets(), "rules": []})).await;
    let preview = format!("/ns/{}/routes/recommendation/preview", ns.name);
    let (status, html) = console
        .post_form(
            &preview,
            &[
                ("action", "header"),
                ("header", "baggage-user-agent"),
                ("regex", over_limit),
                ("matched_subset", "version-v2"),
                ("other_subset", "version-v1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let regex_error = html.split("id=\"regex-error\">").nth(1).expect("an error under the regex field");
    let regex_error = &regex_error[..regex_error.find("</div>").unwrap()];
    assert!(regex_error.starts_with("Istio refused this:") && regex_error.contains("repeat count"), "{regex_error}");
    console.stop().await;
}

/// Both layers refuse an unknown retry condition: signalbox names the field before any dry
/// run, and istiod's webhook refuses the same object when it is written directly.
#[tokio::test]
async fn retry_conditions_istio_refuses_are_refused_by_both_layers() {
    let (ns, console) = console_with_two_versions().await;
    let (status, answer) = put_policy(
        &console,
        json!({"subsets": subsets(), "rules": [
        {"route": {"version-v1": 100}, "retries": {"attempts": 3, "retryOn": "5xx,not-a-condition"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["field"], "rules[0].retries.retryOn", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("\"not-a-condition\""), "{answer}");

    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation"},
        "spec": {"hosts": ["recommendation"], "http": [{"route": [{"destination": {"host": "recommendation"}}],
            "retries": {"attempts": 3, "retryOn": "5xx,not-a-condition"}}]}}))
    .unwrap();
    let params = kube::api::PostParams { dry_run: true, field_manager: None };
    let refused = ns.objects(Kind::VirtualService).create(&params, &object).await.unwrap_err();
    let refused = refused.to_string();
    assert!(refused.contains("validation.istio.io") && refused.contains("not-a-condition"), "{refused}");
    console.stop().await;
}

mod generated {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    const SUBSETS: [&str; 3] = ["version-v1", "version-v2", "version-v3"];

    /// Weights over 1–3 subsets summing to 100.
    fn route() -> impl Strategy<Value = Value> {
        (1usize..=3, 0u32..=100, 0u32..=100).prop_map(|(count, a, b)| {
            let (low, high) = (a.min(b), a.max(b));
            let weights = match count {
                1 => vec![100],
                2 => vec![low, 100 - low],
                _ => vec![low, high - low, 100 - high],
            };
            let route: serde_json::Map<String, Value> =
                SUBSETS.iter().zip(weights).map(|(subset, weight)| (subset.to_string(), json!(weight))).collect();
            Value::Object(route)
        })
    }

    fn rule() -> impl Strategy<Value = Value> {
        (
            route(),
            proptest::option::of("[a-z][a-z0-9-]{0,8}"),
            proptest::option::of(1u32..30),
            proptest::option::of(0i32..5),
        )
            .prop_map(|(route, header, timeout, retries)| {
                let mut rule = json!({"route": route});
                if let Some(header) = header {
                    rule["match"] = json!([{"headers": {header: {"regex": ".*Firefox.*"}}}]);
                }
                if let Some(seconds) = timeout {
                    rule["timeout"] = json!(format!("{seconds}s"));
                }
                // Istio refuses a per-try timeout on disabled retries (attempts 0).
                match retries {
                    Some(0) => rule["retries"] = json!({"attempts": 0}),
                    Some(attempts) => rule["retries"] = json!({"attempts": attempts, "perTryTimeout": "2s"}),
                    None => {}
                }
                rule
            })
    }

    /// A valid policy always renders objects the real API server accepts (dry run). (That
    /// evaluation shares sum to 100 is a property test of the pure domain: src/policy.)
    #[test]
    fn valid_generated_policies_pass_the_api_servers_dry_run() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (ns, console) = runtime.block_on(console_with_two_versions());
        let subsets =
            json!({"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}, "version-v3": {"version": "v3"}});
        let mut runner = TestRunner::new(Config { cases: 12, failure_persistence: None, ..Config::default() });
        runner
            .run(&proptest::collection::vec(rule(), 1..=3), |rules| {
                let body = json!({"subsets": subsets, "rules": rules});
                let url = console.api("/routes/recommendation?dryRun=true");
                let (status, answer) = runtime.block_on(console.send_json(Method::PUT, &url, Some(body.clone())));
                prop_assert_eq!(status, StatusCode::OK, "{} → {}", body, answer);
                prop_assert_eq!(answer["objects"].as_array().map(Vec::len), Some(2));
                Ok(())
            })
            .unwrap();
        runtime.block_on(async {
            assert!(live_spec(&ns, "VirtualService").await.is_none(), "dry runs persisted nothing");
            console.stop().await;
        });
        drop(ns);
    }
}

/// A weights change is planned from the watch caches; an edit made with kubectl just before
/// it (which the caches may not hold yet) is neither overwritten nor answered with a
/// conflict: the change is planned again from a live read. Repeated, so that some rounds
/// find the caches behind.
#[tokio::test]
async fn an_outside_edit_just_before_a_change_is_kept_whatever_the_caches_hold() {
    let (ns, console) = console_with_two_versions().await;
    let (status, _) =
        put_policy(&console, json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]}))
            .await;
    assert_eq!(status, StatusCode::OK);
    let vs = ns.objects(Kind::VirtualService);
    for round in 0..8 {
        let timeout = format!("{}s", round + 2);
        let mut live = serde_json::to_value(vs.get("recommendation").await.unwrap()).unwrap();
        live["spec"]["http"][0]["timeout"] = json!(timeout);
        let outside = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "recommendation"}, "spec": live["spec"].clone()});
        vs.patch("recommendation", &PatchParams::apply("kubectl").force(), &Patch::Apply(&outside)).await.unwrap();
        let v1 = 80 - round * 5;
        let body = json!({"subsets": subsets(), "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}, "timeout": timeout}]});
        let (status, answer) = put_policy(&console, body).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {answer}");
        let after = serde_json::to_value(vs.get("recommendation").await.unwrap()).unwrap();
        assert_eq!(after["spec"]["http"][0]["timeout"], json!(timeout), "round {round}: {after}");
        assert_eq!(after["spec"]["http"][0]["route"][0]["weight"], json!(v1), "round {round}: {after}");
    }
    let entries = console.audit().await;
    let ours: Vec<_> = entries.iter().filter(|e| e["source"] == "api" && e["action"] == "route.update").collect();
    assert_eq!(ours.len(), 9, "one entry per change, none for a plan made again");
    assert!(ours.iter().all(|e| e["outcome"] == "applied"), "{ours:?}");
    console.stop().await;
}

/// How many dry runs the console counted with this verdict (`ran`, or `previewed` when an
/// apply took its preview's).
async fn dry_runs(console: &Console, verdict: &str) -> u64 {
    let text = console.http.get(console.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let series = format!("signalbox_change_dry_runs_total{{verdict=\"{verdict}\"}} ");
    text.lines().find_map(|line| line.strip_prefix(&series)).map_or(0, |count| count.trim().parse().unwrap())
}

/// The value of a hidden field of the page's Apply form, as the browser would send it.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no field {name}")) + marker.len();
    let value = &html[start..start + html[start..].find('"').unwrap()];
    [("&#34;", "\""), ("&#39;", "'"), ("&#60;", "<"), ("&#62;", ">"), ("&#38;", "&")]
        .iter()
        .fold(value.to_owned(), |value, (entity, text)| value.replace(entity, text))
}

/// Applying exactly what was previewed takes the preview's dry run (through the page and
/// through the API's `dryRun`), and nothing else does: other weights, or the same weights
/// after the VirtualService moved, are dry-run again before they are written.
#[tokio::test]
async fn applying_what_was_previewed_takes_the_previews_dry_run_and_nothing_else_does() {
    let (ns, console) = console_with_two_versions().await;
    let split =
        |v1: u32| json!({"subsets": subsets(), "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]});
    let (status, _) = put_policy(&console, split(90)).await;
    assert_eq!(status, StatusCode::OK);
    let weight = |vs: Value| vs["spec"]["http"][0]["route"][0]["weight"].clone();
    let vs = ns.objects(Kind::VirtualService);
    let live_weight = || async { weight(serde_json::to_value(vs.get("recommendation").await.unwrap()).unwrap()) };

    // The page: Preview, then the Apply form's hidden fields.
    let page = format!("/ns/{}/routes/recommendation", ns.name);
    let fields = [("action", "split"), ("weight.version-v1", "75"), ("weight.version-v2", "25")];
    let (status, html) = console.post_form(&format!("{page}/preview"), &fields).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let apply: Vec<(String, String)> = ["action", "policy", "rv_vs", "rv_dr", "rv_hr"]
        .into_iter()
        .map(|name| (name.to_owned(), hidden_field(&html, name)))
        .collect();
    let apply: Vec<(&str, &str)> = apply.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let (ran, previewed) = (dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await);
    let (status, html) = console.post_form(&format!("{page}/apply"), &apply).await;
    assert!(status.is_success() || status.is_redirection(), "{status}: {html}");
    assert_eq!(live_weight().await, json!(75));
    assert_eq!(dry_runs(&console, "previewed").await, previewed + 1, "the page's apply took its preview's dry run");
    assert_eq!(dry_runs(&console, "ran").await, ran, "and ran none");

    // The API: `dryRun`, then the same body.
    let dry_run = console.api("/routes/recommendation?dryRun=true");
    let (status, answer) = console.send_json(Method::PUT, &dry_run, Some(split(50))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (ran, previewed) = (dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await);
    assert_eq!(put_policy(&console, split(50)).await.0, StatusCode::OK);
    assert_eq!(live_weight().await, json!(50));
    assert_eq!((dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await), (ran, previewed + 1));

    // Other weights than the preview's: dry-run again.
    console.send_json(Method::PUT, &dry_run, Some(split(60))).await;
    let (ran, previewed) = (dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await);
    assert_eq!(put_policy(&console, split(70)).await.0, StatusCode::OK);
    assert_eq!((dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await), (ran + 1, previewed));

    // The previewed weights, but the VirtualService moved since (kubectl added a timeout):
    // the change is planned again on the live object and dry-run again; the timeout stays.
    console.send_json(Method::PUT, &dry_run, Some(split(40))).await;
    let mut live = serde_json::to_value(vs.get("recommendation").await.unwrap()).unwrap();
    live["spec"]["http"][0]["timeout"] = json!("3s");
    let outside = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation"}, "spec": live["spec"].clone()});
    vs.patch("recommendation", &PatchParams::apply("kubectl").force(), &Patch::Apply(&outside)).await.unwrap();
    let (ran, previewed) = (dry_runs(&console, "ran").await, dry_runs(&console, "previewed").await);
    let with_timeout =
        json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 40, "version-v2": 60}, "timeout": "3s"}]});
    let (status, answer) = put_policy(&console, with_timeout).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(dry_runs(&console, "previewed").await, previewed, "the preview saw another object");
    assert!(dry_runs(&console, "ran").await > ran);
    console.stop().await;
}

/// The value a page's input shows, found by its id.
fn input_value(html: &str, id: &str) -> String {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no input {id}"));
    let tag = &html[html[..start].rfind('<').unwrap()..start + html[start..].find('>').unwrap()];
    let value = tag.split("value=\"").nth(1).map_or("", |rest| &rest[..rest.find('"').unwrap()]);
    value.replace("&#46;", ".").replace("&#42;", "*").replace("&#91;", "[")
}

/// A refused form shows what was typed next to its error, not the live values: weights that
/// add up to 99, an empty header name beside the regex typed.
#[tokio::test]
async fn a_refused_form_keeps_what_was_typed() {
    let (ns, console) = console_with_two_versions().await;
    let (status, _) =
        put_policy(&console, json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 100}}]})).await;
    assert_eq!(status, StatusCode::OK);
    let preview = format!("/ns/{}/routes/recommendation/preview", ns.name);
    let split = [("action", "split"), ("weight.version-v1", "50"), ("weight.version-v2", "49")];
    let (status, html) = console.post_form(&preview, &split).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("weights add up to 99"), "{html}");
    assert_eq!(
        (input_value(&html, "weight-version-v1"), input_value(&html, "weight-version-v2")),
        ("50".into(), "49".into())
    );

    let header = [
        ("action", "header"),
        ("header", ""),
        ("regex", "Chrome"),
        ("matched_subset", "version-v1"),
        ("other_subset", "version-v2"),
    ];
    let (status, html) = console.post_form(&preview, &header).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("id=\"header-error\""), "{html}");
    assert_eq!(
        (input_value(&html, "header-name"), input_value(&html, "header-regex")),
        (String::new(), "Chrome".into())
    );
    assert!(
        html.contains("<option value=\"version-v2\" selected>version-v2</option></select></label>\n      <button"),
        "everyone else stays v2"
    );
    console.stop().await;
}

/// The timeouts/retries/faults form is filled in from the rule it edits; entering only an
/// abort keeps the rule's timeout and retries (the preview says only the abort is added), and
/// a setting goes only when its "remove" box is ticked, which the preview says in words.
#[tokio::test]
async fn the_settings_form_starts_from_the_rule_and_removes_only_what_is_ticked() {
    let (ns, console) = console_with_two_versions().await;
    let rule = json!({"route": {"version-v1": 100}, "timeout": "1s", "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx"}});
    let (status, answer) = put_policy(&console, json!({"subsets": subsets(), "rules": [rule]})).await;
    assert_eq!(status, StatusCode::OK);
    let page = format!("/ns/{}/routes/recommendation", ns.name);
    // The page after the change, as the browser is sent to it (it shows the change at once).
    let html = console.page(&format!("{page}?change={}", answer["auditId"])).await;
    let form = &html[html.find("id=\"resilience-form-0\"").expect("the form of rule 1")..];
    assert!(form.contains("name=\"timeout\" placeholder=\"1s\" size=\"6\" value=\"1s\""), "{form}");
    assert!(form.contains("name=\"retry_attempts\" placeholder=\"3\" size=\"4\" value=\"3\""), "{form}");

    // Only the abort typed, as the browser sends the filled form (timeout and retries as shown).
    let abort = [
        ("action", "resilience"),
        ("rule", "0"),
        ("timeout", "1s"),
        ("retry_attempts", "3"),
        ("per_try_timeout", "2s"),
        ("abort_status", "503"),
        ("abort_percent", "10"),
    ];
    let (status, html) = console.post_form(&format!("{page}/preview"), &abort).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("recommendation: add abort 503 for 10%</strong>"), "{html}");
    let apply: Vec<(String, String)> = ["action", "policy", "rv_vs", "rv_dr", "rv_hr"]
        .into_iter()
        .map(|name| (name.to_owned(), hidden_field(&html, name)))
        .collect();
    let apply: Vec<(&str, &str)> = apply.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let (status, _) = console.post_form(&format!("{page}/apply"), &apply).await;
    assert!(status.is_success() || status.is_redirection());
    let live = live_spec(&ns, "VirtualService").await.unwrap();
    let live_rule = &live["http"][0];
    assert_eq!(
        (&live_rule["timeout"], &live_rule["retries"]["attempts"], &live_rule["retries"]["retryOn"]),
        (&json!("1s"), &json!(3), &json!("5xx"))
    );
    assert_eq!(live_rule["fault"]["abort"]["httpStatus"], 503);

    // Emptied fields keep; the ticked box removes.
    let remove = [("action", "resilience"), ("rule", "0"), ("remove", "timeout")];
    let (status, html) = console.post_form(&format!("{page}/preview"), &remove).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("recommendation: timeout 1s → removed</strong>"), "{html}");
    console.stop().await;
}

/// The route tester names a line it cannot read instead of answering for the other headers.
#[tokio::test]
async fn the_route_tester_names_a_line_that_is_not_a_header() {
    let (ns, console) = console_with_two_versions().await;
    put_policy(&console, json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 100}}]})).await;
    let test = format!("/ns/{}/routes/recommendation/test", ns.name);
    let (status, html) = console.post_form(&test, &[("path", "/"), ("headers", "x-team: reco\nFirefox")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("line 2 is not a header (name: value): Firefox"), "{html}");
    assert!(html.contains(">x-team: reco\nFirefox</textarea>"), "what was typed stays: {html}");
    console.stop().await;
}

/// The match fields Istio compiles beyond path, method and headers, on a VirtualService
/// someone else wrote: `sourceLabels` is decided once the request names its caller (and
/// named in `why` until then), `ignoreUriCase` and `withoutHeaders` as Envoy decides them.
#[tokio::test]
async fn the_route_tester_decides_callers_missing_headers_and_uri_case_on_a_virtual_service_written_elsewhere() {
    let (ns, console) = console_with_two_versions().await;
    put_policy(&console, json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 100}}]})).await;
    let to = |subset: &str| json!([{"destination": {"host": "recommendation", "subset": subset}}]);
    let theirs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation"},
        "spec": {"hosts": ["recommendation"], "http": [
            {"match": [{"sourceLabels": {"version": "v2"}}], "route": to("version-v2")},
            {"match": [{"uri": {"prefix": "/Admin"}, "ignoreUriCase": true}], "route": to("version-v2")},
            {"match": [{"withoutHeaders": {"x-stable": {"exact": "yes"}}}], "route": to("version-v2")},
            {"route": to("version-v1")}]}});
    let apply = PatchParams::apply("someone-else").force();
    ns.objects(Kind::VirtualService).patch("recommendation", &apply, &Patch::Apply(&theirs)).await.unwrap();

    let tester = console.api("/routes/recommendation/test");
    let ask = |body: Value| console.send_json(Method::POST, &tester, Some(body));
    let (status, unknown_caller) = ask(json!({"path": "/"})).await;
    assert_eq!(status, StatusCode::OK, "{unknown_caller}");
    assert_eq!(unknown_caller["rule"], 2, "no x-stable header: the withoutHeaders rule: {unknown_caller}");
    let why = unknown_caller["why"].as_str().unwrap();
    assert!(why.starts_with("rule 1 depends on the caller (only version=v2 get this route)"), "{why}");
    let (_, from_v2) = ask(json!({"path": "/", "source": {"workload": "recommendation-v2"}})).await;
    assert_eq!(from_v2, json!({"rule": 0, "shares": {"version-v2": 100}}));
    let (_, by_labels) = ask(json!({"source": {"labels": {"version": "v2", "app": "recommendation"}}})).await;
    assert_eq!(by_labels["rule"], 0, "{by_labels}");
    let v1 = json!({"workload": "recommendation-v1"});
    let (_, admin) = ask(json!({"path": "/ADMIN/users", "source": v1})).await;
    assert_eq!(admin["rule"], 1, "ignoreUriCase: {admin}");
    let (_, stable) = ask(json!({"path": "/", "headers": {"X-Stable": "yes"}, "source": v1})).await;
    assert_eq!(stable, json!({"rule": 3, "shares": {"version-v1": 100}}));
    let (status, nobody) = ask(json!({"source": {"workload": "nobody"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{nobody}");
    assert_eq!(nobody["field"], "source.workload", "{nobody}");
    let (status, both) = ask(json!({"source": {"workload": "recommendation-v1", "labels": {"a": "b"}}})).await;
    assert_eq!((status, &both["field"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!("source")), "{both}");

    // The page asks "as seen from" one of the namespace's workloads.
    let page = format!("/ns/{}/routes/recommendation", ns.name);
    let listed = support::eventually(std::time::Duration::from_secs(10), "the page from the caches", || async {
        Some(console.page(&page).await).filter(|html| html.contains("x-stable"))
    })
    .await;
    assert!(listed.contains(r#"<option value="recommendation-v2">recommendation-v2</option>"#), "{listed}");
    let (status, html) =
        console.post_form(&format!("{page}/test"), &[("path", "/"), ("source", "recommendation-v2")]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Sent from a pod of recommendation-v2") && html.contains("Matches rule 1:"), "{html}");
    let (status, html) = console.post_form(&format!("{page}/test"), &[("path", "/"), ("source", "nobody")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(html.contains("no Deployment nobody in namespace"), "{html}");
    console.stop().await;
}

/// A PUT replaces the whole routing: one that leaves out a live rule and a setting says what
/// it removes, in the preview and in the answer of the write.
#[tokio::test]
async fn a_put_that_leaves_out_live_rules_and_settings_names_what_it_removes() {
    let (_ns, console) = console_with_two_versions().await;
    let walkthrough = json!({"subsets": subsets(), "rules": [
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 90, "version-v2": 10}, "timeout": "1s"}]});
    let (status, answer) = put_policy(&console, walkthrough).await;
    assert_eq!((status, &answer["warnings"]), (StatusCode::OK, &json!([])), "{answer}");
    let split = json!({"subsets": subsets(), "rules": [{"route": {"version-v1": 75, "version-v2": 25}}]});
    for url in [console.api("/routes/recommendation?dryRun=true"), console.api("/routes/recommendation")] {
        let (status, answer) = console.send_json(Method::PUT, &url, Some(split.clone())).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let warnings = answer["warnings"].to_string();
        assert!(warnings.contains("this write removes rule 1 ("), "{warnings}");
        assert!(warnings.contains("the timeout 1s of rule 2"), "{warnings}");
    }
    console.stop().await;
}

/// Istio's analysis (the dev cluster's istiod runs with `PILOT_ENABLE_ANALYSIS=true`): the
/// messages istiod writes into the status of objects signalbox did not write show on the
/// routing page and in the routing GET, linked to Istio's documentation; and istiod's
/// status write, which moves the resourceVersion, does not make an edit of what was read
/// before it a conflict, while a change of the spec by someone else still does.
#[tokio::test]
async fn istios_analysis_shows_on_the_routing_page_and_its_status_writes_are_no_conflict() {
    let ns = TestNamespace::new("analysis").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1"]).await;
    let host = format!("recommendation.{}.svc.cluster.local", ns.name);
    let dr = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "reco-dr"},
        "spec": {"host": host, "subsets": [{"name": "version-v1", "labels": {"version": "v1"}},
                                           {"name": "version-v2", "labels": {"version": "v2"}}]}});
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reco-routes"},
        "spec": {"hosts": [host], "http": [{"route": [
            {"destination": {"host": host, "subset": "version-v1"}, "weight": 90},
            {"destination": {"host": host, "subset": "version-v2"}, "weight": 10}]}]}});
    let apply = PatchParams::apply("kubectl");
    ns.objects(Kind::DestinationRule).patch("reco-dr", &apply, &Patch::Apply(&dr)).await.unwrap();
    ns.objects(Kind::VirtualService).patch("reco-routes", &apply, &Patch::Apply(&vs)).await.unwrap();
    let (status, read) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let dr_version_read = ns.objects(Kind::DestinationRule).get("reco-dr").await.unwrap().metadata.resource_version;

    // No pod is labelled version v2: istiod says so on the DestinationRule (IST0173). It
    // analyses a second after a change, the whole mesh each time: on two cores busy with
    // the other tests, that can take a while.
    let analysed = support::eventually(std::time::Duration::from_secs(60), "istiod's analysis", || async {
        let (_, now) = console.get_json(&console.api("/routes/recommendation")).await;
        let notes = now["analysis"].as_array().cloned().unwrap_or_default();
        notes.into_iter().find(|note| note["code"] == "IST0173")
    })
    .await;
    assert_eq!(analysed["kind"], "DestinationRule", "{analysed}");
    assert_eq!((analysed["object"].as_str(), analysed["level"].as_str()), (Some("reco-dr"), Some("Error")));
    assert_eq!(analysed["name"], "DestinationRuleSubsetNotSelectPods");
    assert!(analysed["documentationUrl"].as_str().unwrap().starts_with("https://istio.io/"), "{analysed}");
    let page = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(
        page.contains("id=\"istio-analysis\"") && page.contains(">IST0173</a> DestinationRuleSubsetNotSelectPods"),
        "{page}"
    );
    assert!(page.contains("href=\"https://istio.io/"), "linked to Istio's documentation");
    let dr_now = ns.objects(Kind::DestinationRule).get("reco-dr").await.unwrap();
    assert_ne!(dr_now.metadata.resource_version, dr_version_read, "istiod's status write moved the resourceVersion");

    // An edit of what was read before istiod's status write is no conflict.
    let mut edit = read.clone();
    edit["rules"][0]["route"] = json!({"version-v1": 100});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(edit)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A spec change by someone else since the read still is.
    let (_, read) = console.get_json(&console.api("/routes/recommendation")).await;
    let mut outside = vs.clone();
    outside["spec"]["http"][0]["timeout"] = json!("3s");
    let force = PatchParams::apply("kubectl").force();
    ns.objects(Kind::VirtualService).patch("reco-routes", &force, &Patch::Apply(&outside)).await.unwrap();
    let mut edit = read.clone();
    edit["rules"][0]["route"] = json!({"version-v1": 50, "version-v2": 50});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(edit)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("VirtualService reco-routes changed since it was read"), "{body}");
    console.stop().await;
}
