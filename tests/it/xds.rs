//! What Envoy gets: the tutorial walkthrough done through signalbox's API, and after each
//! step the route configuration the real istiod pushes to the `customer` sidecar over a real
//! ADS stream (tests/support/xds.rs), compared field by field with what the step asked for.
use crate::support;

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestNamespace;
use support::console::Console;
use support::xds::{ProxyPod, eventually_routed, running_pod};

struct Walkthrough {
    ns: TestNamespace,
    console: Console,
    customer: ProxyPod,
    domain: String,
}

impl Walkthrough {
    async fn start() -> Self {
        let ns = TestNamespace::new("xds").await;
        let console = Console::start(&ns.name).await;
        console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
        let customer = running_pod(&ns, "customer").await;
        let domain = format!("recommendation.{}.svc.cluster.local", ns.name);
        Self { ns, console, customer, domain }
    }

    fn cluster(&self, subset: &str) -> String {
        format!("outbound|8080|{subset}|{}", self.domain)
    }

    /// Applies `rules` (with both subsets) through the API.
    async fn apply(&self, rules: Value) {
        let body =
            json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": rules});
        let (status, answer) =
            self.console.send_json(Method::PUT, &self.console.api("/routes/recommendation"), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    /// Waits until the sidecar's catch-all route for recommendation satisfies `check`.
    async fn catch_all<T>(&self, what: &str, check: impl Fn(&Value) -> Option<T>) -> T {
        eventually_routed(&self.customer, &self.domain, what, |host| check(routes(host).last()?)).await
    }
}

fn routes(host: &Value) -> Vec<&Value> {
    host["routes"].as_array().map(|routes| routes.iter().collect()).unwrap_or_default()
}

/// A route's destinations and their weights: one cluster counts as 100.
fn weights(route: &Value) -> BTreeMap<String, u64> {
    let action = &route["route"];
    if let Some(cluster) = action["cluster"].as_str() {
        return BTreeMap::from([(cluster.to_owned(), 100)]);
    }
    action["weightedClusters"]["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c["weight"].as_u64().unwrap_or(0)))
        .collect()
}

/// An Envoy FractionalPercent as a percentage.
fn percent(fraction: &Value) -> f64 {
    let numerator = fraction["numerator"].as_f64().unwrap_or(0.0);
    match fraction["denominator"].as_str() {
        Some("TEN_THOUSAND") => numerator / 100.0,
        Some("MILLION") => numerator / 10_000.0,
        _ => numerator,
    }
}

#[tokio::test]
async fn every_walkthrough_step_reaches_the_customer_sidecar() {
    let walk = Walkthrough::start().await;
    let (v1, v2) = (walk.cluster("version-v1"), walk.cluster("version-v2"));

    for split in [vec![(&v1, 100)], vec![(&v1, 90), (&v2, 10)], vec![(&v1, 75), (&v2, 25)], vec![(&v2, 100)]] {
        let route: serde_json::Map<String, Value> = split
            .iter()
            .map(|(cluster, weight)| (cluster.split('|').nth(2).unwrap().to_owned(), json!(weight)))
            .collect();
        walk.apply(json!([{"route": route}])).await;
        let expected: BTreeMap<String, u64> = split.iter().map(|(c, w)| ((*c).clone(), *w as u64)).collect();
        walk.catch_all(&format!("the split {expected:?}"), |route| (weights(route) == expected).then_some(())).await;
    }

    walk.apply(json!([
        {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
        {"route": {"version-v1": 100}}
    ]))
    .await;
    eventually_routed(&walk.customer, &walk.domain, "the Firefox header route", |host| {
        let [firefox, rest] = routes(host)[..] else { return None };
        let header = &firefox["match"]["headers"][0];
        let matched = header["name"] == "baggage-user-agent"
            && header["stringMatch"]["safeRegex"]["regex"] == ".*Firefox.*"
            && weights(firefox) == BTreeMap::from([(v2.clone(), 100)])
            && weights(rest) == BTreeMap::from([(v1.clone(), 100)])
            && rest["match"]["headers"].is_null();
        matched.then_some(())
    })
    .await;

    walk.apply(json!([{"route": {"version-v1": 100}, "timeout": "1s"}])).await;
    walk.catch_all("a 1s route timeout", |route| (route["route"]["timeout"] == "1s").then_some(())).await;

    walk.apply(json!([{"route": {"version-v2": 100},
        "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure"}}]))
        .await;
    walk.catch_all("the retry policy", |route| {
        let retry = &route["route"]["retryPolicy"];
        let matched = retry["numRetries"] == 3
            && retry["perTryTimeout"] == "2s"
            && retry["retryOn"].as_str().is_some_and(|on| on.contains("5xx") && on.contains("connect-failure"));
        matched.then_some(())
    })
    .await;

    walk.apply(json!([{"route": {"version-v1": 100}, "fault": {
        "delay": {"fixedDelay": "7s", "percentage": 50}, "abort": {"httpStatus": 503, "percentage": 10}}}]))
        .await;
    walk.catch_all("the fault filter config (delay and abort)", |route| {
        let fault = &route["typedPerFilterConfig"]["envoy.filters.http.fault"];
        let matched = fault["delay"]["fixedDelay"] == "7s"
            && percent(&fault["delay"]["percentage"]) == 50.0
            && fault["abort"]["httpStatus"] == 503
            && percent(&fault["abort"]["percentage"]) == 10.0;
        matched.then_some(())
    })
    .await;

    walk.apply(json!([{"route": {"version-v1": 100}, "mirror": {"subset": "version-v2", "percentage": 100}}])).await;
    walk.catch_all("the request mirror policy", |route| {
        let mirror = &route["route"]["requestMirrorPolicies"][0];
        let fraction = &mirror["runtimeFraction"]["defaultValue"];
        let matched = mirror["cluster"] == v2.as_str()
            && (fraction.is_null() || percent(fraction) == 100.0)
            && weights(route) == BTreeMap::from([(v1.clone(), 100)]);
        matched.then_some(())
    })
    .await;

    walk.console.stop().await;
    drop(walk.ns);
}
