//! The route tester against Envoy: generated VirtualServices (every match field Istio
//! compiles, in random combinations) are written as another client would, the `customer`
//! sidecar's route table is read from istiod over a real ADS stream, and for a set of
//! requests the route Envoy would take (tests/support/envoy.rs, written from Envoy's
//! documentation) is compared with the tester's answer for the same request sent from
//! `customer`; and the console's own reading of that table (the routing page's "what a
//! sidecar has") is held against it, with its prediction of which rule each route comes
//! from. The tutorial's VirtualServices for recommendation first, then generated ones;
//! deterministic (proptest's fixed-seed runner) and bounded: 24 requests each.
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use signalbox::policy::ALL_PODS;
use support::TestNamespace;
use support::console::Console;
use support::envoy;
use support::fixtures::fixture_documents;
use support::sidecars::{SimulatedSidecars, connected, istiod_monitoring_url};
use support::xds::{ProxyPod, routes_for, running_pod, virtual_host};

const POLICIES: usize = 16;
const REQUESTS: usize = 24;

// istiod's webhook refuses the regex `*` (which its translation would make a presence
// match) in `headers` and `queryParams`, so no VirtualService holds one.
fn one_of(values: Vec<Value>) -> BoxedStrategy<Value> {
    prop::sample::select(values).boxed()
}

fn maybe(strategy: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop::option::weighted(0.3, strategy).boxed()
}

/// One `HTTPMatchRequest`; `for_every_caller`: none of the conditions that keep a route
/// from some proxies (so the VirtualService always has a route for `customer`).
fn match_entry(namespace: String, for_every_caller: bool) -> BoxedStrategy<Value> {
    let uri = one_of(vec![
        json!({"exact": "/"}),
        json!({"exact": "/api"}),
        json!({"exact": "/Admin/users"}),
        json!({"prefix": "/api"}),
        json!({"prefix": "/Admin"}),
        json!({"prefix": "/v1"}),
        json!({"regex": "/api/.*"}),
        json!({"regex": "/v[0-9]+"}),
    ]);
    let method = one_of(vec![json!({"exact": "GET"}), json!({"exact": "POST"}), json!({"regex": "GET|PUT"})]);
    let headers = one_of(vec![
        json!({"x-user": {"exact": "bob"}}),
        json!({"x-user": {"prefix": "al"}}),
        json!({"x-user": {"regex": "b.b"}}),
        json!({"baggage-user-agent": {"regex": ".*Firefox.*"}}),
        json!({"baggage-user-agent": {"prefix": "Mozilla"}, "x-user": {"exact": "alice"}}),
    ]);
    let without = one_of(vec![
        json!({"x-user": {"exact": "bob"}}),
        json!({"x-user": {}}),
        json!({"x-canary": {"exact": "yes"}}),
        json!({"x-canary": {}}),
    ]);
    let query =
        one_of(vec![json!({"v": {"exact": "1"}}), json!({"v": {"regex": "[0-9]+"}}), json!({"v": {"prefix": "a"}})]);
    let scheme = one_of(vec![json!({"exact": "http"}), json!({"exact": "https"})]);
    let authority = one_of(vec![json!({"prefix": "recommendation"}), json!({"exact": "shop.example"})]);
    let source_labels =
        one_of(vec![json!({"app": "customer"}), json!({"app": "preference"}), json!({"version": "v1"})]);
    let source_namespace = one_of(vec![json!(namespace), json!("elsewhere")]);
    let port = one_of(vec![json!(8080), json!(9090)]);
    let gateways = one_of(vec![json!(["mesh"]), json!(["istio-system/ingress"])]);
    let plain = (maybe(uri), any::<bool>(), maybe(method), maybe(headers), maybe(without), maybe(query));
    let more =
        (maybe(scheme), maybe(authority), maybe(source_labels), maybe(source_namespace), maybe(port), maybe(gateways));
    (plain, more, any::<bool>())
        .prop_map(move |((uri, ignore_case, method, headers, without, query), more, named)| {
            let (scheme, authority, labels, source_namespace, port, gateways) = more;
            let mut entry = serde_json::Map::new();
            let mut put = |field: &str, value: Option<Value>| {
                if let Some(value) = value {
                    entry.insert(field.to_owned(), value);
                }
            };
            put("uri", uri);
            put("ignoreUriCase", ignore_case.then(|| json!(true)));
            put("method", method);
            put("headers", headers);
            put("withoutHeaders", without);
            put("queryParams", query);
            put("scheme", scheme);
            put("authority", authority);
            put("name", named.then(|| json!("m")));
            if !for_every_caller {
                put("sourceLabels", labels);
                put("sourceNamespace", source_namespace);
                put("port", port);
                put("gateways", gateways);
            }
            Value::Object(entry)
        })
        .boxed()
}

/// A VirtualService's `http` rules, each named `p<policy>r<rule>` (how a route in Envoy's
/// table is told apart): up to two match entries each, or none (a catch-all).
fn rules(namespace: String, policy: usize) -> BoxedStrategy<Vec<Value>> {
    let route = one_of(vec![
        json!([{"destination": {"host": "recommendation", "subset": "version-v1"}}]),
        json!([{"destination": {"host": "recommendation", "subset": "version-v2"}}]),
        json!([{"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 90},
               {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 10}]),
    ]);
    let rule = move |index: usize| {
        let entries = prop::collection::vec(match_entry(namespace.clone(), index == 0), 0..=2);
        (entries, route.clone()).prop_map(move |(entries, route)| {
            let mut rule = json!({"name": format!("p{policy}r{index}"), "route": route});
            if !entries.is_empty() {
                rule["match"] = json!(entries);
            }
            rule
        })
    };
    (1..=4usize).prop_flat_map(move |count| (0..count).map(&rule).collect::<Vec<_>>()).boxed()
}

fn request() -> BoxedStrategy<(String, String, BTreeMap<String, String>)> {
    let path = prop::sample::select(vec![
        "/",
        "/api",
        "/api/v1",
        "/ADMIN/users",
        "/admin/users",
        "/Admin/users",
        "/v1",
        "/v22",
        "/api/x?v=1",
        "/?v=abc",
        "/?v=7",
    ]);
    let method = prop::sample::select(vec!["GET", "POST", "PUT"]);
    let header = prop::sample::select(vec![
        ("x-user", "bob"),
        ("x-user", "alice"),
        ("X-User", ""),
        ("baggage-user-agent", "Mozilla/5.0 Firefox/128.0"),
        ("baggage-user-agent", "Mozilla/5.0 Safari/605"),
        ("x-canary", "yes"),
        ("x-canary", "no"),
    ]);
    (path, method, prop::collection::vec(header, 0..=3))
        .prop_map(|(path, method, headers)| {
            let headers = headers.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            (path.to_owned(), method.to_owned(), headers)
        })
        .boxed()
}

/// The `http` rules of every tutorial VirtualService for recommendation (the walkthrough's
/// files and the others).
fn tutorial_virtual_services() -> Vec<Vec<Value>> {
    let dir = support::fixtures::fixtures_dir().join("istio-tutorial/istiofiles");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("virtual-service-recommendation") && name.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the tutorial's files: {files:?}");
    let documents = files.iter().flat_map(|file| fixture_documents(&format!("istio-tutorial/istiofiles/{file}")));
    let for_recommendation =
        documents.filter(|d| d["kind"] == "VirtualService" && d["spec"]["hosts"] == json!(["recommendation"]));
    for_recommendation.map(|d| d["spec"]["http"].as_array().cloned().unwrap_or_default()).collect()
}

/// The rules with the names that tell their routes apart in Envoy's table.
fn named(http: &[Value], policy: usize) -> Vec<Value> {
    let name = |(index, rule): (usize, &Value)| {
        let mut rule = rule.clone();
        rule["name"] = json!(format!("p{policy}r{index}"));
        rule
    };
    http.iter().enumerate().map(name).collect()
}

/// `outbound|8080|version-v2|recommendation.<ns>.svc.cluster.local` → `version-v2`; no subset
/// (every pod of the Service) is what the tester calls [`ALL_PODS`].
fn subset_of(cluster: &str) -> String {
    match cluster.split('|').nth(2).unwrap_or_default() {
        "" => ALL_PODS.to_owned(),
        subset => subset.to_owned(),
    }
}

/// A route's answer: the rule it was compiled from and its destinations with their weights.
type Answer = Option<(usize, BTreeMap<String, u64>)>;

/// The virtual host for `domain` in the `customer` sidecar's route table for port 8080 (istiod
/// also lists the host under other ports' tables, without the routes that match on 8080),
/// once the names of its routes satisfy `ready`.
async fn sidecar_table(customer: &ProxyPod, domain: &str, what: &str, ready: impl Fn(&[&str]) -> bool) -> Value {
    support::eventually(Duration::from_secs(30), what, || async {
        let configs = routes_for(customer).await.ok()?;
        let table = configs.iter().find(|config| config["name"] == "8080")?;
        let host = virtual_host(std::slice::from_ref(table), domain)?;
        let names: Vec<&str> = host["routes"].as_array()?.iter().filter_map(|r| r["name"].as_str()).collect();
        ready(&names).then(|| host.clone())
    })
    .await
}

/// Envoy's answer: the route `sent` takes, its rule read from its name (`p<policy>r<rule>`
/// after `marker`), its clusters named by `destination`.
fn envoy_answer(host: &Value, sent: &envoy::Request, marker: &str, destination: fn(&str) -> String) -> Answer {
    envoy::route_for(host, sent).map(|(index, clusters)| {
        let name = host["routes"][index]["name"].as_str().unwrap_or_default();
        let rule: usize = name.trim_start_matches(marker).split('.').next().unwrap().parse().unwrap();
        (rule, clusters.iter().map(|(cluster, weight)| (destination(cluster), *weight)).collect())
    })
}

/// The tester's answer to `question`, and all it said.
async fn tester_answer(console: &Console, question: &Value) -> (Answer, Value) {
    let tester = console.api("/routes/recommendation/test");
    let (status, tested) = console.send_json(Method::POST, &tester, Some(question.clone())).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    let answer = tested["rule"].as_u64().map(|rule| {
        let shares = tested["shares"].as_object().unwrap();
        (rule as usize, shares.iter().map(|(s, w)| (s.clone(), w.as_u64().unwrap())).collect())
    });
    (answer, tested)
}

#[tokio::test]
async fn the_route_tester_answers_every_generated_request_as_envoys_routes_do() {
    let ns = TestNamespace::new("envoy").await;
    let console = Console::start_with(&ns.name, |config| config.istiod_url = Some(istiod_monitoring_url())).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let customer = running_pod(&ns, "customer").await;
    let _sidecars = SimulatedSidecars::start(&ns.name);
    connected(&console.http, &ns.name, 3).await;
    let console_table = console.api("/routes/recommendation/envoy?source=customer");
    let domain = format!("recommendation.{}.svc.cluster.local", ns.name);
    let subsets = json!({"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}});
    let body = json!({"subsets": subsets, "rules": [{"route": {"version-v1": 100}}]});
    let (status, answer) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let mut runner = TestRunner::deterministic();
    let virtual_services = ns.objects(Kind::VirtualService);
    let mut compared = 0;
    let fixtures = tutorial_virtual_services();
    for policy in 0..fixtures.len() + POLICIES {
        let http = match fixtures.get(policy) {
            Some(http) => named(http, policy),
            None => rules(ns.name.clone(), policy).new_tree(&mut runner).unwrap().current(),
        };
        let object = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "recommendation"}, "spec": {"hosts": ["recommendation"], "http": http}});
        let apply = PatchParams::apply("generated-client").force();
        virtual_services.patch("recommendation", &apply, &Patch::Apply(&object)).await.unwrap_or_else(|error| {
            panic!(
                "istiod refused generated policy {policy}: {error}\n{}",
                serde_json::to_string_pretty(&http).unwrap()
            )
        });
        let marker = format!("p{policy}r");
        let what = format!("policy {policy} in the sidecar");
        let host = sidecar_table(&customer, &domain, &what, |names| names.iter().any(|n| n.starts_with(&marker))).await;
        // The routing page's table of the same sidecar, with the console's prediction of it.
        let routes = host["routes"].as_array().unwrap().len();
        let view = support::eventually(
            Duration::from_secs(30),
            &format!("policy {policy} in the console's table"),
            || async {
                let (status, view) = console.get_json(&console_table).await;
                let names = view["table"]["routes"]
                    .as_array()?
                    .iter()
                    .filter(|r| r["name"].as_str().is_some_and(|n| n.starts_with(&marker)));
                (status == StatusCode::OK && names.count() == routes).then_some(view)
            },
        )
        .await;
        let predicted: Vec<usize> = host["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["name"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&marker)
                    .split('.')
                    .next()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
                    + 1
            })
            .collect();
        assert_eq!(
            view["difference"],
            Value::Null,
            "policy {policy}: {}",
            serde_json::to_string_pretty(&http).unwrap()
        );
        assert_eq!(view["rules"], json!(predicted), "policy {policy}: the rule of each route");
        for _ in 0..REQUESTS {
            let (path, method, headers) = request().new_tree(&mut runner).unwrap().current();
            let authority = "recommendation:8080";
            let sent = envoy::Request {
                path: path.clone(),
                method: method.clone(),
                authority: authority.into(),
                scheme: "http".into(),
                headers: headers.clone(),
            };
            let mut asked_headers = headers.clone();
            asked_headers.insert("host".into(), authority.into());
            let question = json!({"path": path, "method": method, "headers": asked_headers, "port": 8080,
                                  "source": {"workload": "customer"}});
            let (tester_answer, tested) = tester_answer(&console, &question).await;
            let envoy_answer = envoy_answer(&host, &sent, &marker, subset_of);
            let context = || {
                format!(
                    "policy {policy}:\n{}\nrequest {question}\ntester {tested}\nEnvoy's routes:\n{}",
                    serde_json::to_string_pretty(&http).unwrap(),
                    serde_json::to_string_pretty(&host["routes"]).unwrap()
                )
            };
            assert_eq!(tester_answer, envoy_answer, "{}", context());
            if envoy_answer.is_none() {
                assert_eq!(tested["noRoute"], true, "Envoy answers 404: {}", context());
            }
            compared += 1;
        }
    }
    assert_eq!(compared, (fixtures.len() + POLICIES) * REQUESTS);
    console.stop().await;
}

/// One HTTPRoute match: a path (exact, prefix or regex), maybe a method, headers, query
/// parameters; the API server fills in what is left out.
fn gateway_match() -> BoxedStrategy<Value> {
    let path = one_of(vec![
        json!({"type": "Exact", "value": "/api"}),
        json!({"type": "Exact", "value": "/api/v1"}),
        json!({"type": "PathPrefix", "value": "/"}),
        json!({"type": "PathPrefix", "value": "/api"}),
        json!({"type": "PathPrefix", "value": "/api/"}),
        json!({"type": "PathPrefix", "value": "/v1"}),
        json!({"type": "RegularExpression", "value": "/api/.*"}),
        json!({"type": "RegularExpression", "value": "/a.*"}),
    ]);
    let method = one_of(vec![json!("GET"), json!("POST")]);
    let headers = one_of(vec![
        json!([{"type": "Exact", "name": "x-user", "value": "bob"}]),
        json!([{"type": "RegularExpression", "name": "baggage-user-agent", "value": ".*Firefox.*"}]),
        json!([{"type": "Exact", "name": "x-user", "value": "alice"}, {"type": "Exact", "name": "x-canary", "value": "yes"}]),
    ]);
    let query = one_of(vec![
        json!([{"type": "Exact", "name": "v", "value": "1"}]),
        json!([{"type": "RegularExpression", "name": "v", "value": "[0-9]+"}]),
    ]);
    (maybe(path), maybe(method), maybe(headers), maybe(query))
        .prop_map(|(path, method, headers, query)| {
            let mut entry = serde_json::Map::new();
            for (field, value) in [("path", path), ("method", method), ("headers", headers), ("queryParams", query)] {
                if let Some(value) = value {
                    entry.insert(field.to_owned(), value);
                }
            }
            Value::Object(entry)
        })
        .boxed()
}

/// An HTTPRoute's rules, each named `p<policy>r<rule>` (rules numbered from `first`),
/// sending to the per-version Services.
fn gateway_rules(policy: usize, first: usize) -> BoxedStrategy<Vec<Value>> {
    let backends = one_of(vec![
        json!([{"name": "recommendation-v1", "port": 8080}]),
        json!([{"name": "recommendation-v2", "port": 8080}]),
        json!([{"name": "recommendation-v1", "port": 8080, "weight": 90}, {"name": "recommendation-v2", "port": 8080, "weight": 10}]),
    ]);
    let rule = move |index: usize| {
        (prop::collection::vec(gateway_match(), 0..=2), backends.clone()).prop_map(move |(matches, backends)| {
            let mut rule = json!({"name": format!("p{policy}r{}", first + index), "backendRefs": backends});
            if !matches.is_empty() {
                rule["matches"] = json!(matches);
            }
            rule
        })
    };
    (1..=4usize).prop_flat_map(move |count| (0..count).map(&rule).collect::<Vec<_>>()).boxed()
}

/// `outbound|8080||recommendation-v2.<ns>.svc.cluster.local` → `recommendation-v2`.
fn service_of(cluster: &str) -> String {
    cluster.split('|').nth(3).and_then(|host| host.split('.').next()).unwrap_or_default().to_owned()
}

/// The same for a mesh HTTPRoute (attached to the host's Service, per-version Services as
/// backends): Envoy's route table against the tester's Gateway API precedence.
/// A namespace with the tutorial's customer and two recommendation versions, each with its
/// per-version Service; a console on it, the customer's sidecar, and the host's name.
async fn gateway_api_namespace(prefix: &str) -> (TestNamespace, Console, ProxyPod, String) {
    use k8s_openapi::api::core::v1::Service;
    let ns = TestNamespace::new(prefix).await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let services = kube::api::Api::<Service>::namespaced(ns.client.clone(), &ns.name);
    for version in ["v1", "v2"] {
        let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("recommendation-{version}")},
            "spec": {"selector": {"app": "recommendation", "version": version}, "ports": [{"name": "http", "port": 8080}]}});
        services
            .patch(&format!("recommendation-{version}"), &PatchParams::apply("test"), &Patch::Apply(&service))
            .await
            .unwrap();
    }
    let customer = running_pod(&ns, "customer").await;
    let domain = format!("recommendation.{}.svc.cluster.local", ns.name);
    (ns, console, customer, domain)
}

/// A mesh HTTPRoute named `name` with `rules`, applied by another client.
async fn apply_mesh_route(ns: &TestNamespace, name: &str, rules: &[Value]) {
    let object = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "recommendation", "port": 8080}], "rules": rules}});
    ns.objects(Kind::HTTPRoute)
        .patch(name, &PatchParams::apply("generated-client").force(), &Patch::Apply(&object))
        .await
        .unwrap_or_else(|error| {
            panic!(
                "the API server refused generated HTTPRoute {name}: {error}\n{}",
                serde_json::to_string_pretty(rules).unwrap()
            )
        });
}

/// `count` generated requests from `customer`, each answered by Envoy's `host` table and by
/// the tester, which must agree; `what` names the policy in a failure.
async fn compare_requests(console: &Console, host: &Value, marker: &str, runner: &mut TestRunner, what: &str) -> usize {
    for _ in 0..REQUESTS {
        let (path, method, headers) = request().new_tree(runner).unwrap().current();
        let sent = envoy::Request {
            path: path.clone(),
            method: method.clone(),
            authority: "recommendation:8080".into(),
            scheme: "http".into(),
            headers: headers.clone(),
        };
        let question = json!({"path": path, "method": method, "headers": headers, "source": {"workload": "customer"}});
        let (tester_answer, tested) = tester_answer(console, &question).await;
        let envoy_answer = envoy_answer(host, &sent, marker, service_of);
        assert_eq!(
            tester_answer,
            envoy_answer,
            "{what}\nrequest {question}\ntester {tested}\nEnvoy's routes:\n{}",
            serde_json::to_string_pretty(&host["routes"]).unwrap()
        );
        if envoy_answer.is_none() {
            assert_eq!(tested["noRoute"], true, "Envoy answers 404: {tested}");
        }
    }
    REQUESTS
}

/// Several mesh HTTPRoutes for one host, as istiod merges them into one route table: matches
/// equally specific are tied by the oldest route first, then by namespace and name.
/// `reco-z` is created a second before `reco-a`, so the oldest-first rule is what puts its
/// rules first (by name alone they would come second); the tester merges them the same way.
#[tokio::test]
async fn the_route_tester_answers_as_envoys_routes_do_across_several_http_routes() {
    let (ns, console, customer, domain) = gateway_api_namespace("envoygws").await;
    let mut runner = TestRunner::deterministic();
    let mut compared = 0;
    for policy in 0..POLICIES / 2 {
        let older = gateway_rules(policy, 0).new_tree(&mut runner).unwrap().current();
        let newer = gateway_rules(policy, older.len()).new_tree(&mut runner).unwrap().current();
        apply_mesh_route(&ns, "reco-z", &older).await;
        if policy == 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await; // creation times have seconds
        }
        apply_mesh_route(&ns, "reco-a", &newer).await;
        // Only this policy's rules, and the same table a second later: istiod has both
        // routes (it drops the routes a catch-all shadows, so not every rule shows).
        let marker = format!("p{policy}r");
        let ours = |names: &[&str]| names.iter().all(|name| name.starts_with(&marker));
        let what = format!("HTTPRoutes {policy} in the sidecar");
        let mut host = sidecar_table(&customer, &domain, &what, ours).await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = sidecar_table(&customer, &domain, &what, ours).await;
            if again == host {
                break;
            }
            host = again;
        }
        let what = format!(
            "HTTPRoutes {policy}: reco-z (older)\n{}\nreco-a\n{}",
            serde_json::to_string_pretty(&older).unwrap(),
            serde_json::to_string_pretty(&newer).unwrap()
        );
        compared += compare_requests(&console, &host, &marker, &mut runner, &what).await;
    }
    assert_eq!(compared, POLICIES / 2 * REQUESTS);
    // The page offers the tester too, though it edits neither route.
    let page = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(page.contains("id=\"routing-ambiguous\"") && page.contains("id=\"route-tester\""), "{page}");
    console.stop().await;
}

#[tokio::test]
async fn the_route_tester_answers_every_generated_request_as_envoys_routes_do_for_an_http_route() {
    let (ns, console, customer, domain) = gateway_api_namespace("envoygw").await;
    let mut runner = TestRunner::deterministic();
    let mut compared = 0;
    for policy in 0..POLICIES {
        let rules = gateway_rules(policy, 0).new_tree(&mut runner).unwrap().current();
        apply_mesh_route(&ns, "reco-mesh", &rules).await;
        let marker = format!("p{policy}r");
        let what = format!("HTTPRoute {policy} in the sidecar");
        let host = sidecar_table(&customer, &domain, &what, |names| names.iter().all(|n| n.starts_with(&marker))).await;
        // The console reads the HTTPRoute from the API server for each test, as it is now.
        let what = format!("HTTPRoute {policy}:\n{}", serde_json::to_string_pretty(&rules).unwrap());
        compared += compare_requests(&console, &host, &marker, &mut runner, &what).await;
    }
    assert_eq!(compared, POLICIES * REQUESTS);
    console.stop().await;
}
