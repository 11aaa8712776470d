//! Routing that signalbox did not write, in the shapes real clusters have, created directly
//! with kube-rs (and judged by istiod's webhook): it is found by what it routes, edited in
//! place with everything around the edited rules kept, never duplicated, and — when the host's
//! routing is spread over several objects or delegated — shown but not edited.
use crate::support;

use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::console::Console;
use support::{TestNamespace, eventually};

/// Creates an object as another tool would (a plain create, not signalbox's field manager).
async fn create(ns: &TestNamespace, kind: &str, mut object: Value) {
    object["apiVersion"] = json!("networking.istio.io/v1");
    object["kind"] = json!(kind);
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    ns.objects(Kind::parse(kind).unwrap())
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
}

/// Every object of a kind in the namespace, by name (server fields left out).
async fn objects(ns: &TestNamespace, kind: &str) -> Vec<(String, Value)> {
    let list = ns.objects(Kind::parse(kind).unwrap()).list(&Default::default()).await.unwrap();
    let mut objects: Vec<(String, Value)> =
        list.items.into_iter().map(|o| (o.metadata.name.clone().unwrap(), serde_json::to_value(o).unwrap())).collect();
    objects.sort_by(|a, b| a.0.cmp(&b.0));
    objects
}

async fn names(ns: &TestNamespace, kind: &str) -> Vec<String> {
    objects(ns, kind).await.into_iter().map(|(name, _)| name).collect()
}

async fn object(ns: &TestNamespace, kind: &str, name: &str) -> Value {
    serde_json::to_value(ns.objects(Kind::parse(kind).unwrap()).get(name).await.unwrap()).unwrap()
}

async fn console_with_two_versions(prefix: &str) -> (TestNamespace, Console) {
    let ns = TestNamespace::new(prefix).await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    (ns, console)
}

fn routes(console: &Console) -> String {
    console.api("/routes/recommendation")
}

fn subsets_dr(name: &str, host: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"team": "reco"}},
           "spec": {"host": host, "trafficPolicy": {"loadBalancer": {"simple": "LEAST_REQUEST"}},
                    "subsets": [{"name": "version-v1", "labels": {"version": "v1"}},
                                {"name": "version-v2", "labels": {"version": "v2"}}]}})
}

/// The routing page (from the watch caches) once it shows `marker`.
async fn page_showing(console: &Console, marker: &str) -> String {
    let url = console.url(&format!("/ns/{}/routes/recommendation", console.namespace));
    eventually(Duration::from_secs(10), marker, || async {
        let html = console.http.get(&url).send().await.ok()?.text().await.ok()?;
        html.contains(marker).then_some(html)
    })
    .await
}

#[tokio::test]
async fn objects_named_unlike_the_host_with_its_fqdn_are_read_edited_in_place_and_deleted() {
    let (ns, console) = console_with_two_versions("adopt-fqdn").await;
    let fqdn = format!("recommendation.{}.svc.cluster.local", ns.name);
    create(&ns, "DestinationRule", subsets_dr("reco-dr", &fqdn)).await;
    let vs = json!({
        "metadata": {"name": "reco-routes", "labels": {"team": "reco"}, "annotations": {"owner": "reco@example.com"}},
        "spec": {"hosts": [fqdn], "http": [{"name": "split", "route": [
            {"destination": {"host": fqdn, "subset": "version-v1"}, "weight": 90},
            {"destination": {"host": fqdn, "subset": "version-v2"}, "weight": 10}]}]}});
    create(&ns, "VirtualService", vs.clone()).await;

    let (status, mut policy) = console.get_json(&routes(&console)).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["rules"][0]["route"], json!({"version-v1": 90, "version-v2": 10}));
    assert_eq!(policy["subsets"], json!({"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}));

    let (dr_before, vs_before) =
        (object(&ns, "DestinationRule", "reco-dr").await, object(&ns, "VirtualService", "reco-routes").await);
    policy["rules"][0]["route"] = json!({"version-v1": 75, "version-v2": 25});
    let (status, answer) = console.send_json(Method::PUT, &routes(&console), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    assert_eq!(names(&ns, "VirtualService").await, ["reco-routes"], "no second VirtualService");
    assert_eq!(names(&ns, "DestinationRule").await, ["reco-dr"], "no second DestinationRule");
    let vs_after = object(&ns, "VirtualService", "reco-routes").await;
    let mut expected = vs_before["spec"].clone();
    expected["http"][0]["route"][0]["weight"] = json!(75);
    expected["http"][0]["route"][1]["weight"] = json!(25);
    assert_eq!(vs_after["spec"], expected, "only the weights changed");
    assert_eq!(vs_after["metadata"]["labels"], vs_before["metadata"]["labels"]);
    assert_eq!(vs_after["metadata"]["annotations"], vs_before["metadata"]["annotations"]);
    assert_eq!(object(&ns, "DestinationRule", "reco-dr").await["spec"], dr_before["spec"], "the DR is untouched");

    // The page's previews use the same lookup: the planned objects are the ones found.
    let preview = format!("/ns/{}/routes/recommendation/preview", ns.name);
    let fields = [("action", "split"), ("weight.version-v1", "50"), ("weight.version-v2", "50")];
    let (status, html) = console.post_form(&preview, &fields).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let planned = html.split("id=\"preview-objects\">").nth(1).expect("planned objects");
    let planned = &planned[..planned.find("</pre>").unwrap()];
    assert!(planned.contains("name: reco-routes") && planned.contains("name: reco-dr"), "{planned}");
    assert!(!planned.contains("name: recommendation\n"), "{planned}");

    // Canaries and the route tester use the same lookup.
    let (status, canary) = console
        .send_json(
            Method::POST,
            &console.api("/canaries/recommendation"),
            Some(json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 100]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{canary}");
    assert_eq!(names(&ns, "VirtualService").await, ["reco-routes"]);
    let vs_canary = object(&ns, "VirtualService", "reco-routes").await;
    assert!(vs_canary["metadata"]["annotations"]["signalbox.io/canary"].is_string(), "{vs_canary}");
    assert_eq!(vs_canary["spec"]["http"][0]["route"][1]["weight"], 10);
    assert_eq!(vs_canary["spec"]["http"][0]["route"][1]["destination"]["host"], json!(fqdn));
    let (status, tested) =
        console.send_json(Method::POST, &console.api("/routes/recommendation/test"), Some(json!({}))).await;
    assert_eq!((status, &tested["rule"]), (StatusCode::OK, &json!(0)), "{tested}");

    // The page names the objects it edits.
    page_showing(&console, "<code id=\"live-vs-name\">reco-routes</code>").await;

    let (status, answer) = console.send_json(Method::DELETE, &routes(&console), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(names(&ns, "VirtualService").await.is_empty() && names(&ns, "DestinationRule").await.is_empty());
    let (status, answer) = console.get_json(&routes(&console)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().starts_with("recommendation routes nothing in"), "{answer}");
    let (status, answer) = console.send_json(Method::DELETE, &console.api("/routes/ratings"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("ratings"), "{answer}");
    console.stop().await;
}

#[tokio::test]
async fn a_virtual_service_for_several_hosts_keeps_everything_around_the_edited_rules() {
    let (ns, console) = console_with_two_versions("adopt-shared").await;
    create(&ns, "DestinationRule", subsets_dr("reco-dr", "recommendation")).await;
    let vs = json!({
        "metadata": {"name": "shared-routes", "labels": {"team": "reco"},
                     "annotations": {"owner": "reco@example.com"}},
        "spec": {
            "hosts": ["recommendation", "preference"],
            "gateways": ["mesh", "istio-system/ingressgateway"],
            "exportTo": ["."],
            "http": [
                {"name": "preference-api", "match": [{"uri": {"prefix": "/preference"}}],
                 "route": [{"destination": {"host": "preference", "port": {"number": 8080}}}]},
                {"name": "reco-default",
                 "route": [{"destination": {"host": "recommendation", "subset": "version-v1",
                                            "port": {"number": 8080}}}]}]}});
    create(&ns, "VirtualService", vs).await;
    let before = object(&ns, "VirtualService", "shared-routes").await;

    let (status, mut policy) = console.get_json(&routes(&console)).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["rules"], json!([{"name": "reco-default", "route": {"version-v1": 100}}]));
    policy["rules"][0]["route"] = json!({"version-v1": 80, "version-v2": 20});
    let (status, answer) = console.send_json(Method::PUT, &routes(&console), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    assert_eq!(names(&ns, "VirtualService").await, ["shared-routes"]);
    assert_eq!(names(&ns, "DestinationRule").await, ["reco-dr"]);
    let after = object(&ns, "VirtualService", "shared-routes").await;
    for field in ["hosts", "gateways", "exportTo"] {
        assert_eq!(after["spec"][field], before["spec"][field], "spec.{field} kept");
    }
    assert_eq!(after["spec"]["http"][0], before["spec"]["http"][0], "the other host's rule kept");
    assert_eq!(after["metadata"]["labels"], before["metadata"]["labels"]);
    assert_eq!(after["metadata"]["annotations"], before["metadata"]["annotations"]);
    assert_eq!(
        after["spec"]["http"][1],
        json!({"name": "reco-default", "route": [
            {"destination": {"host": "recommendation", "subset": "version-v1", "port": {"number": 8080}}, "weight": 80},
            {"destination": {"host": "recommendation", "subset": "version-v2", "port": {"number": 8080}}, "weight": 20}]}),
        "the new destination is written like the existing one"
    );

    // Its rules send preference's traffic to recommendation too: deleting recommendation's
    // routing would change what preference gets, so it is refused, naming the object.
    let (status, answer) = console.send_json(Method::DELETE, &routes(&console), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("shared-routes") && error.contains("preference"), "{error}");
    assert_eq!(object(&ns, "VirtualService", "shared-routes").await["spec"], after["spec"], "nothing changed");
    assert_eq!(names(&ns, "DestinationRule").await, ["reco-dr"]);

    // Once its rules send traffic only to preference, deleting takes recommendation out of
    // its hosts and keeps the rest.
    let only_preference = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "spec": {"http": [before["spec"]["http"][0].clone()]}});
    ns.objects(Kind::VirtualService)
        .patch("shared-routes", &PatchParams::default(), &Patch::Merge(&only_preference))
        .await
        .unwrap();
    let (status, answer) = console.send_json(Method::DELETE, &routes(&console), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let kept = object(&ns, "VirtualService", "shared-routes").await;
    assert_eq!(kept["spec"]["hosts"], json!(["preference"]));
    assert_eq!(kept["spec"]["gateways"], before["spec"]["gateways"]);
    assert_eq!(kept["spec"]["exportTo"], before["spec"]["exportTo"]);
    assert_eq!(kept["spec"]["http"], json!([before["spec"]["http"][0]]));
    assert_eq!(kept["metadata"]["labels"], before["metadata"]["labels"]);
    assert!(names(&ns, "DestinationRule").await.is_empty(), "recommendation's DestinationRule is deleted");
    let (status, _) = console.get_json(&routes(&console)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Reverting the delete puts recommendation back into the same VirtualService.
    let revert = console.url(&format!("/api/v1/audit/{}/revert", answer["auditId"]));
    let (status, reverted) = console.send_json(Method::POST, &revert, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{reverted}");
    assert_eq!(names(&ns, "VirtualService").await, ["shared-routes"]);
    assert_eq!(object(&ns, "VirtualService", "shared-routes").await["spec"]["hosts"], before["spec"]["hosts"]);
    assert_eq!(names(&ns, "DestinationRule").await, ["reco-dr"]);
    console.stop().await;
}

/// Asserts every write is refused with 409 naming `names`, and nothing changed.
async fn refused_everywhere(ns: &TestNamespace, console: &Console, names_in_message: &[&str]) {
    let virtual_services = objects(ns, "VirtualService").await;
    let named = |answer: &Value| {
        let error = answer["error"].as_str().unwrap_or_default().to_owned();
        assert!(names_in_message.iter().all(|n| error.contains(n)), "{answer}");
    };
    let (status, answer) = console.get_json(&routes(console)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    named(&answer);
    let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                      "rules": [{"route": {"version-v1": 50, "version-v2": 50}}]});
    for url in [format!("{}?dryRun=true", routes(console)), routes(console)] {
        let (status, answer) = console.send_json(Method::PUT, &url, Some(body.clone())).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        named(&answer);
    }
    let (status, answer) = console.send_json(Method::DELETE, &routes(console), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    named(&answer);
    let (status, answer) =
        console.send_json(Method::POST, &console.api("/routes/recommendation/test"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(objects(ns, "VirtualService").await, virtual_services, "nothing was written");
    assert!(names(ns, "DestinationRule").await.is_empty());
}

#[tokio::test]
async fn two_virtual_services_for_one_host_are_shown_and_never_edited() {
    let (ns, console) = console_with_two_versions("adopt-two").await;
    let route = |subset: &str| json!([{"route": [{"destination": {"host": "recommendation", "subset": subset}}]}]);
    create(
        &ns,
        "VirtualService",
        json!({"metadata": {"name": "reco-a"},
        "spec": {"hosts": ["recommendation"], "http": route("version-v1")}}),
    )
    .await;
    let fqdn = format!("recommendation.{}.svc.cluster.local", ns.name);
    create(
        &ns,
        "VirtualService",
        json!({"metadata": {"name": "reco-b"},
        "spec": {"hosts": [fqdn], "gateways": ["istio-system/ingressgateway"], "http": route("version-v2")}}),
    )
    .await;

    refused_everywhere(&ns, &console, &["reco-a", "reco-b"]).await;
    let html = page_showing(&console, "id=\"routing-ambiguous\"").await;
    assert!(html.contains("<code>reco-a</code>") && html.contains("<code>reco-b</code>"), "{html}");
    assert!(html.contains("everyone: version-v2 100%") || html.contains("version-v2"), "what each does");
    assert!(!html.contains("id=\"split-form\""), "no editing forms");
    let overview = console.url(&format!("/ns/{}", ns.name));
    eventually(Duration::from_secs(10), "the overview naming both", || async {
        let html = console.http.get(&overview).send().await.ok()?.text().await.ok()?;
        html.contains("routed by VirtualServices reco-a, reco-b").then_some(())
    })
    .await;
    console.stop().await;
}

#[tokio::test]
async fn delegated_routing_is_shown_and_never_edited() {
    let (ns, console) = console_with_two_versions("adopt-delegate").await;
    create(
        &ns,
        "VirtualService",
        json!({"metadata": {"name": "reco-v1-routes"},
        "spec": {"http": [{"route": [{"destination": {"host": "recommendation", "subset": "version-v1"}}]}]}}),
    )
    .await;
    create(
        &ns,
        "VirtualService",
        json!({"metadata": {"name": "reco-root"},
        "spec": {"hosts": ["recommendation"], "http": [{"delegate": {"name": "reco-v1-routes"}}]}}),
    )
    .await;

    refused_everywhere(&ns, &console, &["reco-root", "reco-v1-routes"]).await;
    let html = page_showing(&console, "id=\"routing-ambiguous\"").await;
    assert!(html.contains("rule 1 delegates to reco-v1-routes"), "{html}");
    assert!(html.contains("delegate VirtualService <code>reco-v1-routes</code>"), "{html}");
    console.stop().await;
}
