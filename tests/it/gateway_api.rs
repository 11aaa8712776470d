//! A host routed by a Gateway API HTTPRoute (mesh/GAMMA: attached to the host's Service,
//! versions as per-version Services), made as a user would with kubectl and named unlike the
//! host: read as the same policy, edited in place through the routing API, refused with the
//! field for what the Gateway API cannot say, accepted by the real istiod (its status) and
//! pushed to the sidecars as weighted per-version clusters; audited and reverted.
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::console::Console;
use support::private_cluster::PrivateCluster;
use support::xds::{eventually_routed, running_pod};

async fn create_version_services(ns: &TestNamespace) {
    let services = Api::<Service>::namespaced(ns.client.clone(), &ns.name);
    for version in ["v1", "v2"] {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("recommendation-{version}")},
            "spec": {"selector": {"app": "recommendation", "version": version},
                     "ports": [{"name": "http", "port": 8080}]}
        }))
        .unwrap();
        services.create(&PostParams::default(), &service).await.unwrap();
    }
}

/// A mesh HTTPRoute as someone wrote it by hand: another name, a hostname, a header filter
/// signalbox does not model, all traffic to v1.
async fn create_route(ns: &TestNamespace) {
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "reco-mesh", "labels": {"team": "reco"}},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "recommendation", "port": 8080}],
            "rules": [{
                "name": "main",
                "filters": [{"type": "RequestHeaderModifier",
                             "requestHeaderModifier": {"set": [{"name": "x-routed-by", "value": "gamma"}]}}],
                "backendRefs": [{"name": "recommendation-v1", "port": 8080}]
            }]
        }
    }))
    .unwrap();
    ns.objects(Kind::HTTPRoute).create(&PostParams::default(), &route).await.unwrap();
}

/// The weights of the sidecar's catch-all route for recommendation, by cluster.
fn weights(host: &Value) -> Option<BTreeMap<String, u64>> {
    let route = host["routes"].as_array()?.last()?;
    if let Some(cluster) = route["route"]["cluster"].as_str() {
        return Some(BTreeMap::from([(cluster.to_owned(), 100)]));
    }
    let clusters = route["route"]["weightedClusters"]["clusters"].as_array()?;
    clusters.iter().map(|c| Some((c["name"].as_str()?.to_owned(), c["weight"].as_u64()?))).collect()
}

#[tokio::test]
async fn an_http_route_is_read_edited_in_place_refused_for_what_it_cannot_say_and_reverted() {
    let ns = TestNamespace::new("gamma").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    create_version_services(&ns).await;
    create_route(&ns).await;
    let routes = console.api("/routes/recommendation");

    let (status, policy) =
        support::eventually(Duration::from_secs(10), "the HTTPRoute read as the host's routing", || async {
            let (status, body) = console.get_json(&routes).await;
            (status == StatusCode::OK).then_some((status, body))
        })
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["kind"], "HTTPRoute");
    assert_eq!(
        policy["subsets"],
        json!({"recommendation-v1": {"version": "v1"}, "recommendation-v2": {"version": "v2"}})
    );
    assert_eq!(policy["rules"][0]["route"], json!({"recommendation-v1": 100}));

    // 90/10, in place.
    let mut desired = policy.clone();
    desired["rules"][0]["route"] = json!({"recommendation-v1": 90, "recommendation-v2": 10});
    let (status, body) = console.send_json(Method::PUT, &routes, Some(desired.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let written = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.unwrap();
    let spec = &written.data["spec"];
    assert_eq!(spec["parentRefs"], json!([{"group": "", "kind": "Service", "name": "recommendation", "port": 8080}]));
    assert_eq!(spec["rules"][0]["name"], "main");
    assert_eq!(spec["rules"][0]["filters"][0]["requestHeaderModifier"]["set"][0]["value"], "gamma");
    assert_eq!(
        spec["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "recommendation-v1", "port": 8080, "weight": 90},
               {"group": "", "kind": "Service", "name": "recommendation-v2", "port": 8080, "weight": 10}])
    );
    assert_eq!(written.metadata.labels.as_ref().unwrap()["team"], "reco");
    assert!(
        console.get_json(&console.api("/routes/recommendation")).await.1["resourceVersion"]["virtualService"].is_null(),
        "no VirtualService was created beside the HTTPRoute"
    );

    // istiod accepts it, for the current generation.
    let generation = written.metadata.generation;
    support::eventually(Duration::from_secs(30), "istiod's Accepted condition for this generation", || async {
        let route = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.ok()?;
        let parents = route.data["status"]["parents"].as_array()?.clone();
        let accepted = parents.iter().flat_map(|p| p["conditions"].as_array().cloned().unwrap_or_default()).any(|c| {
            c["type"] == "Accepted" && c["status"] == "True" && c["observedGeneration"].as_i64() == generation
        });
        accepted.then_some(())
    })
    .await;

    // The routing page names the HTTPRoute and shows istiod's verdict on it.
    let page = support::eventually(Duration::from_secs(10), "the page showing the HTTPRoute's status", || async {
        let page = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
        page.contains("Accepted=True").then_some(page)
    })
    .await;
    assert!(page.contains("<code id=\"live-hr-name\">reco-mesh</code>"), "{page}");
    assert!(page.contains("id=\"routing-api\">HTTPRoute<"), "{page}");
    assert!(page.contains("id=\"gateway-api-limits\""), "the page says what an HTTPRoute cannot do");
    assert!(!page.contains("name=\"abort_status\""), "and offers no fault injection");
    // Its forms plan the edit into the HTTPRoute.
    let preview = format!("/ns/{}/routes/recommendation/preview", ns.name);
    let fields = [("action", "split"), ("weight.recommendation-v1", "50"), ("weight.recommendation-v2", "50")];
    let (status, html) = console.post_form(&preview, &fields).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let planned = html.split("id=\"preview-objects\">").nth(1).expect("planned objects");
    let planned = &planned[..planned.find("</pre>").unwrap()];
    assert!(planned.contains("kind: HTTPRoute") && planned.contains("name: reco-mesh"), "{planned}");
    assert!(planned.contains("weight: 50") && !planned.contains("VirtualService"), "{planned}");

    // The sidecar gets the per-version clusters with their weights.
    let customer = running_pod(&ns, "customer").await;
    let domain = format!("recommendation.{}.svc.cluster.local", ns.name);
    let cluster = |version: &str| format!("outbound|8080||recommendation-{version}.{}.svc.cluster.local", ns.name);
    let expected = BTreeMap::from([(cluster("v1"), 90), (cluster("v2"), 10)]);
    eventually_routed(&customer, &domain, "90/10 over the per-version Services", |host| {
        weights(host).filter(|w| *w == expected)
    })
    .await;

    // An edit made from the read before is stale (its spec generation moved), though istiod's
    // status writes alone do not make it so.
    let (status, body) = console.send_json(Method::PUT, &routes, Some(desired.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("HTTPRoute reco-mesh changed since"), "{body}");
    desired.as_object_mut().unwrap().remove("resourceVersion");

    // What the Gateway API cannot say: 422 naming the field, nothing written.
    for (field, value) in
        [("fault", json!({"abort": {"httpStatus": 503, "percentage": 50}})), ("retries", json!({"attempts": 3}))]
    {
        let mut refused = desired.clone();
        refused["rules"][0][field] = value;
        let (status, body) = console.send_json(Method::PUT, &routes, Some(refused)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains(&format!("rules[0].{field}")), "{body}");
    }
    let mut missing = desired.clone();
    missing["subsets"]["recommendation-v3"] = json!({"version": "v3"});
    missing["rules"][0]["route"] = json!({"recommendation-v1": 90, "recommendation-v3": 10});
    let (status, body) = console.send_json(Method::PUT, &routes, Some(missing)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("subsets.recommendation-v3"), "{body}");

    // Audited under the HTTPRoute, and reverted to all traffic to v1.
    let audit = console.audit().await;
    let entry =
        audit.iter().find(|e| e["action"] == "route.update" && e["outcome"] == "applied").expect("the 90/10 entry");
    assert_eq!(entry["kind"], "HTTPRoute", "{entry}");
    let revert = console.url(&format!("/api/v1/audit/{}/revert", entry["id"]));
    let (status, body) = console.send_json(Method::POST, &revert, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, after) = console.get_json(&routes).await;
    assert_eq!(after["rules"][0]["route"], json!({"recommendation-v1": 100}));
    assert_eq!(after["rules"][0]["name"], "main");

    // A VirtualService for the same host too: Istio's behaviour is undefined, nothing is edited.
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                    "metadata": {"name": "legacy"}, "spec": {"hosts": ["recommendation"],
                    "http": [{"route": [{"destination": {"host": "recommendation"}}]}]}});
    let vs_api = ns.objects(Kind::VirtualService);
    vs_api.create(&PostParams::default(), &serde_json::from_value(vs).unwrap()).await.unwrap();
    let (status, body) = console.send_json(Method::PUT, &routes, Some(desired)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body.to_string();
    assert!(message.contains("VirtualService legacy") && message.contains("HTTPRoute reco-mesh"), "{message}");
    // The routing page and the overview warn about it.
    let undefined = "Istio leaves the behaviour undefined";
    assert!(console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await.contains(undefined));
    let overview = support::eventually(Duration::from_secs(10), "the overview's warning", || async {
        Some(console.page(&format!("/ns/{}", ns.name)).await).filter(|page| page.contains(undefined))
    })
    .await;
    assert!(overview.contains("VirtualService legacy; HTTPRoute reco-mesh"), "{overview}");
    console.stop().await;
}

/// The tutorial walkthrough on the Gateway API, as a newcomer does it through the API: the
/// console creates the per-version Services (previewed, audited), a new HTTPRoute sends all
/// traffic to v1, then 90/10 and a Firefox rule to v2; a canary 10 → 25 → abort runs on it,
/// its state on the HTTPRoute's annotation.
#[tokio::test]
async fn the_walkthrough_and_a_canary_on_an_http_route() {
    let ns = TestNamespace::new("gammawalk").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;

    let versions = console.api("/routes/recommendation/version-services");
    let (status, preview) = console.send_json(Method::POST, &format!("{versions}?dryRun=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert!(preview["summary"].as_str().unwrap().contains("recommendation-v1, recommendation-v2"), "{preview}");
    assert!(
        Api::<Service>::namespaced(ns.client.clone(), &ns.name).get_opt("recommendation-v1").await.unwrap().is_none()
    );
    let (status, created) = console.send_json(Method::POST, &versions, None).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let v2 = Api::<Service>::namespaced(ns.client.clone(), &ns.name).get("recommendation-v2").await.unwrap();
    let selector = v2.spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(selector.get("version").map(String::as_str), Some("v2"));
    assert_eq!(v2.spec.unwrap().ports.unwrap()[0].port, 8080);
    let (status, again) = console.send_json(Method::POST, &versions, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "nothing left to create: {again}");

    let routes = console.api("/routes/recommendation");
    let subsets = json!({"recommendation-v1": {"version": "v1"}, "recommendation-v2": {"version": "v2"}});
    let steps = [
        json!([{"route": {"recommendation-v1": 100}}]),
        json!([{"route": {"recommendation-v1": 90, "recommendation-v2": 10}}]),
        json!([{"match": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}], "route": {"recommendation-v2": 100}},
               {"route": {"recommendation-v1": 100}}]),
    ];
    for rules in steps {
        let body = json!({"kind": "HTTPRoute", "subsets": subsets, "rules": rules});
        let (status, answer) = console.send_json(Method::PUT, &routes, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, policy) = console.get_json(&routes).await;
    assert_eq!(policy["kind"], "HTTPRoute");
    // The route tester follows the Gateway API's precedence, and says why.
    let firefox = json!({"headers": {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Firefox/128.0"}});
    let (status, tested) = console.send_json(Method::POST, &format!("{routes}/test"), Some(firefox)).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert_eq!(tested["rule"], 0);
    assert_eq!(tested["why"], "rule 1 wins over rule 2: more header matches (1 against 0)");
    let route = ns.objects(Kind::HTTPRoute).get("recommendation").await.expect("a new HTTPRoute named after the host");
    assert_eq!(route.data["spec"]["parentRefs"][0]["name"], "recommendation");
    assert_eq!(route.data["spec"]["rules"][0]["matches"][0]["headers"][0]["value"], ".*Firefox.*");

    let canaries = console.api("/canaries/recommendation");
    let start = json!({"stable": "recommendation-v1", "canary": "recommendation-v2", "steps": [10, 25, 100]});
    let (status, started) = console.send_json(Method::POST, &canaries, Some(start)).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let (status, promoted) = console.send_json(Method::POST, &format!("{canaries}/promote"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["weight"], 25);
    let route = ns.objects(Kind::HTTPRoute).get("recommendation").await.unwrap();
    let annotation = route.metadata.annotations.as_ref().and_then(|a| a.get("signalbox.io/canary")).cloned();
    assert!(annotation.is_some_and(|a| a.contains("\"step\":1")), "the canary's state is on the HTTPRoute");
    let default_rule = &route.data["spec"]["rules"][1]["backendRefs"];
    assert_eq!(
        (default_rule[0]["weight"].as_i64(), default_rule[1]["weight"].as_i64()),
        (Some(75), Some(25)),
        "{default_rule}"
    );
    assert_eq!(route.data["spec"]["rules"][0]["backendRefs"][0]["name"], "recommendation-v2", "the Firefox rule stays");

    let (status, aborted) = console.send_json(Method::POST, &format!("{canaries}/abort"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{aborted}");
    let (_, policy) = console.get_json(&routes).await;
    assert_eq!(policy["rules"][1]["route"], json!({"recommendation-v1": 100}));
    let actions: Vec<String> =
        console.audit().await.iter().take(3).map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["canary.abort", "canary.promote", "canary.start"]);

    let (status, removed) = console.send_json(Method::DELETE, &routes, None).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert!(ns.objects(Kind::HTTPRoute).get_opt("recommendation").await.unwrap().is_none(), "the HTTPRoute is deleted");
    let (status, _) = console.get_json(&routes).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    console.stop().await;
}

/// Moving a VirtualService host to an HTTPRoute, as Istio's ambient migration guide asks:
/// refused with each field the Gateway API cannot say, previewed without a change, then one
/// audited change (per-version Services, the HTTPRoute, the VirtualService gone, the
/// DestinationRule kept) that the sidecars get, and that a revert undoes.
#[tokio::test]
async fn a_virtual_service_host_migrates_to_an_http_route_and_back() {
    let ns = TestNamespace::new("migrate").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["customer", "recommendation-v1", "recommendation-v2"]).await;
    let routes = console.api("/routes/recommendation");
    let migrate = console.api("/routes/recommendation/migrate");
    let policy = |fault: Option<Value>| {
        let mut default = json!({"route": {"version-v1": 90, "version-v2": 10}, "timeout": "3s"});
        if let Some(fault) = fault {
            default["fault"] = fault;
        }
        json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": [
            {"match": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
            default
        ]})
    };
    let delay = json!({"delay": {"fixedDelay": "7s", "percentage": 50}});
    let (status, body) = console.send_json(Method::PUT, &routes, Some(policy(Some(delay)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, refused) = console.send_json(Method::POST, &migrate, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["problems"][0]["field"], "rules[1].fault", "{refused}");

    let (status, body) = console.send_json(Method::PUT, &routes, Some(policy(None))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, preview) = console.send_json(Method::POST, &format!("{migrate}?dryRun=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let kinds: Vec<&str> = preview["objects"].as_array().unwrap().iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["Service", "Service", "HTTPRoute"], "{preview}");
    assert_eq!(console.get_json(&routes).await.1["kind"], "VirtualService", "a preview changes nothing");

    let (status, migrated) = console.send_json(Method::POST, &migrate, None).await;
    assert_eq!(status, StatusCode::OK, "{migrated}");
    let (_, now) = console.get_json(&routes).await;
    assert_eq!(now["kind"], "HTTPRoute", "{now}");
    assert_eq!(now["rules"][0]["route"], json!({"recommendation-v2": 100}));
    assert_eq!(now["rules"][1]["route"], json!({"recommendation-v1": 90, "recommendation-v2": 10}));
    assert_eq!(now["rules"][1]["timeout"], "3s");
    assert!(now["resourceVersion"]["destinationRule"].is_string(), "the DestinationRule stays: {now}");
    assert!(now["resourceVersion"]["virtualService"].is_null(), "the VirtualService is gone: {now}");
    let customer = running_pod(&ns, "customer").await;
    let domain = format!("recommendation.{}.svc.cluster.local", ns.name);
    let cluster = |version: &str| format!("outbound|8080||recommendation-{version}.{}.svc.cluster.local", ns.name);
    let expected = BTreeMap::from([(cluster("v1"), 90), (cluster("v2"), 10)]);
    eventually_routed(&customer, &domain, "the migrated 90/10", |host| weights(host).filter(|w| *w == expected)).await;

    let audit = console.audit().await;
    let entry = audit.iter().find(|e| e["action"] == "route.migrate").expect("the migration's entry");
    assert_eq!(entry["outcome"], "applied");
    let revert = console.url(&format!("/api/v1/audit/{}/revert", entry["id"]));
    let (status, body) = console.send_json(Method::POST, &revert, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, back) = console.get_json(&routes).await;
    assert_eq!(back["kind"], "VirtualService", "{back}");
    assert_eq!(back["rules"][1]["route"], json!({"version-v1": 90, "version-v2": 10}));
    assert!(
        ns.objects(Kind::HTTPRoute).get_opt("recommendation").await.unwrap().is_none(),
        "the HTTPRoute is gone again"
    );
    console.stop().await;
}

/// An ingress HTTPRoute (attached to a Gateway, not to the Service) that sends traffic to
/// the host's versions: edited in place when it is the host's only routing, its Gateway and
/// hostnames kept; once a mesh route exists, that one is edited and the page shows the
/// ingress route beside it, untouched.
#[tokio::test]
async fn an_ingress_http_route_is_edited_when_nothing_else_routes_the_host() {
    let ns = TestNamespace::new("gammaingress").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    create_version_services(&ns).await;
    let ingress: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "reco-public"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "istio-system"}],
            "hostnames": ["reco.example.com"],
            "rules": [{"backendRefs": [{"name": "recommendation-v1", "port": 8080}]}]
        }
    }))
    .unwrap();
    ns.objects(Kind::HTTPRoute).create(&PostParams::default(), &ingress).await.unwrap();
    let routes = console.api("/routes/recommendation");

    let (status, policy) = console.get_json(&routes).await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(
        (policy["kind"].as_str(), &policy["rules"][0]["route"]),
        (Some("HTTPRoute"), &json!({"recommendation-v1": 100}))
    );
    let mut desired = policy.clone();
    desired["rules"][0]["route"] = json!({"recommendation-v1": 75, "recommendation-v2": 25});
    let (status, body) = console.send_json(Method::PUT, &routes, Some(desired)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let written = ns.objects(Kind::HTTPRoute).get("reco-public").await.unwrap();
    assert_eq!(written.data["spec"]["parentRefs"][0]["name"], "public");
    assert_eq!(written.data["spec"]["parentRefs"][0]["namespace"], "istio-system");
    assert_eq!(written.data["spec"]["hostnames"], json!(["reco.example.com"]));
    assert_eq!(written.data["spec"]["rules"][0]["backendRefs"][1]["weight"], 25);
    let page = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(page.contains("ingress, Gateway istio-system/public"), "{page}");

    // A mesh route for the host: that one is edited now, the ingress route is shown beside it.
    create_route(&ns).await;
    let (_, mesh) = console.get_json(&routes).await;
    assert_eq!(mesh["rules"][0]["route"], json!({"recommendation-v1": 100}), "the mesh route's policy: {mesh}");
    let page = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(page.contains("<code id=\"live-hr-name\">reco-mesh</code>"), "{page}");
    assert!(page.contains("Also routed at the ingress, not edited here: HTTPRoute <code>reco-public</code>"), "{page}");
    console.stop().await;
}

/// Team permissions hold for HTTPRoutes as for VirtualServices: a mesh route belongs to the
/// team owning its host, and only that team (or a namespace-wide one) edits it, runs its
/// canary or creates its per-version Services; an ingress route, whose Gateway serves other
/// hosts too, needs a namespace-wide team even from the host's owners.
#[tokio::test]
async fn only_the_owning_team_edits_an_http_route() {
    let ns = TestNamespace::new("gammateams").await;
    let teams = "teams:
  - name: recommendation
    members: {users: [alice]}
    namespaces: [{ns}]
    hosts: [recommendation, preference]
    actions: [route, canary]
  - name: web
    members: {users: [bob]}
    namespaces: [{ns}]
    hosts: [customer]
    actions: [deploy, route, canary]
  - name: platform
    members: {groups: [admins]}
    namespaces: ['*']
    actions: [admin]
";
    let console = Console::start_with_teams(&ns.name, teams, ("carol", "admins")).await;
    console.deploy(&["preference", "recommendation-v1", "recommendation-v2"]).await;
    create_version_services(&ns).await;
    create_route(&ns).await;
    let as_user = |user: &str, method: Method, path: &str, body: Value| {
        let request = console.http.request(method, console.api(path)).json(&body).header("x-forwarded-user", user);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!((status, policy["kind"].as_str()), (StatusCode::OK, Some("HTTPRoute")), "{policy}");
    let mut split = policy.clone();
    split["rules"][0]["route"] = json!({"recommendation-v1": 90, "recommendation-v2": 10});
    let canary = json!({"stable": "recommendation-v1", "canary": "recommendation-v2"});

    for (method, path, body) in [
        (Method::PUT, "/routes/recommendation", split.clone()),
        (Method::POST, "/canaries/recommendation", canary.clone()),
        (Method::POST, "/canaries/recommendation/promote", json!({})),
        (Method::POST, "/routes/recommendation/version-services", json!({})),
        (Method::DELETE, "/routes/recommendation", json!({})),
    ] {
        let (status, body) = as_user("bob", method.clone(), path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bob (web) {method} {path}: {body}");
    }
    let untouched = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.unwrap();
    let backends = untouched.data["spec"]["rules"][0]["backendRefs"].as_array().cloned().unwrap_or_default();
    let backends: Vec<_> = backends.iter().map(|b| b["name"].as_str()).collect();
    assert_eq!(backends, [Some("recommendation-v1")], "bob's refused edits left the route as it was");
    assert!(!untouched.metadata.annotations.unwrap_or_default().contains_key("signalbox.io/canary"));

    let (status, body) = as_user("alice", Method::PUT, "/routes/recommendation", split).await;
    assert_eq!(status, StatusCode::OK, "alice owns recommendation: {body}");
    let (status, body) = as_user("alice", Method::POST, "/canaries/recommendation", canary.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/canaries/recommendation", "/canaries/recommendation/abort"] {
        let (status, body) = as_user("bob", Method::POST, path, canary.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "bob (web) POST {path}: {body}");
    }
    let edited = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.unwrap();
    assert_eq!(edited.data["spec"]["rules"][0]["name"], "main", "edited in place");
    assert!(edited.metadata.annotations.clone().unwrap_or_default().contains_key("signalbox.io/canary"), "{edited:?}");

    // An ingress route for preference: its Gateway serves other hosts, so the host's owners
    // may not edit it; a namespace-wide team may.
    let services = Api::<Service>::namespaced(ns.client.clone(), &ns.name);
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "preference-v1"},
        "spec": {"selector": {"app": "preference", "version": "v1"}, "ports": [{"name": "http", "port": 8080}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &service).await.unwrap();
    let ingress: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "shop-public"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "istio-system"}],
            "hostnames": ["shop.example.com"],
            "rules": [{"backendRefs": [{"name": "preference-v1", "port": 8080}]}]
        }
    }))
    .unwrap();
    ns.objects(Kind::HTTPRoute).create(&PostParams::default(), &ingress).await.unwrap();
    let (status, policy) = console.get_json(&console.api("/routes/preference")).await;
    assert_eq!((status, policy["kind"].as_str()), (StatusCode::OK, Some("HTTPRoute")), "{policy}");
    let mut timed = policy.clone();
    timed["rules"][0]["timeout"] = json!("2s");
    let (status, body) = as_user("alice", Method::PUT, "/routes/preference", timed.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an ingress route needs a namespace-wide team: {body}");
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/preference"), Some(timed)).await;
    assert_eq!(status, StatusCode::OK, "carol (platform) may: {body}");

    let denied: Vec<_> = console.audit().await.into_iter().filter(|e| e["outcome"] == "denied").collect();
    let denied: Vec<_> =
        denied.iter().map(|e| (e["actor"].as_str(), e["action"].as_str(), e["name"].as_str())).collect();
    for (actor, action, host) in [
        ("bob", "route.update", "recommendation"),
        ("bob", "route.version-services", "recommendation"),
        ("bob", "canary.promote", "recommendation"),
        ("alice", "route.update", "preference"),
    ] {
        assert!(denied.contains(&(Some(actor), Some(action), Some(host))), "{actor} {action} audited: {denied:?}");
    }
    console.stop().await;
}

/// A team file where alice may route recommendation only and carol (group admins) may do
/// everything.
const ONE_HOST_TEAMS: &str = "teams:
  - name: recommendation
    members: {users: [alice]}
    namespaces: [{ns}]
    hosts: [recommendation]
    actions: [route]
  - name: platform
    members: {groups: [admins]}
    namespaces: ['*']
    actions: [admin]
";

/// `(status, body)` of a JSON request as `user` (and the groups of the platform admin when
/// it is carol) through the trusted proxy.
async fn send_as(console: &Console, user: &str, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
    let groups = if user == "carol" { "admins" } else { "" };
    let request = console.http.request(method, console.api(path)).json(body);
    let request = request.header("x-forwarded-user", user).header("x-forwarded-groups", groups);
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// The attacker is alice, whose team may route recommendation and nothing else. Through
/// the routing API she PUTs recommendation's HTTPRoute policy with a filter that sends
/// traffic beyond her host: a RequestMirror copying every request to preference (or to a
/// Service of another namespace), a RequestRedirect or URLRewrite to another host name, an
/// ExtensionRef. Each must be 403 naming the filter's field, audited as denied, and the
/// HTTPRoute must not change; a filter signalbox cannot judge is 422 at its `type`. A mirror
/// to her own per-version Service is hers to write, and the platform admin may mirror to
/// preference.
#[tokio::test]
async fn http_route_filters_cannot_send_a_host_teams_traffic_to_another_host() {
    let ns = TestNamespace::new("gammafilters").await;
    let console = Console::start_with_teams(&ns.name, ONE_HOST_TEAMS, ("carol", "admins")).await;
    console.deploy(&["preference", "recommendation-v1", "recommendation-v2"]).await;
    create_version_services(&ns).await;
    create_route(&ns).await;
    let (status, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!((status, policy["kind"].as_str()), (StatusCode::OK, Some("HTTPRoute")), "{policy}");
    assert_eq!(policy["rules"][0]["filters"].as_array().map(Vec::len), Some(1), "the header filter: {policy}");
    let with_filter = |filter: Value| {
        let mut sent = policy.clone();
        sent["rules"][0]["filters"].as_array_mut().unwrap().push(filter);
        sent
    };
    let mirror = |backend: Value| json!({"type": "RequestMirror", "requestMirror": {"backendRef": backend}});
    let attacks = [
        (mirror(json!({"name": "preference", "port": 8080})), "rules[0].filters[1].requestMirror.backendRef"),
        (
            mirror(json!({"name": "preference", "namespace": "kube-system", "port": 8080})),
            "rules[0].filters[1].requestMirror.backendRef.namespace",
        ),
        (
            json!({"type": "RequestRedirect", "requestRedirect": {"hostname": "preference", "statusCode": 302}}),
            "rules[0].filters[1].requestRedirect.hostname",
        ),
        (
            json!({"type": "URLRewrite", "urlRewrite": {"hostname": "evil.example.com"}}),
            "rules[0].filters[1].urlRewrite.hostname",
        ),
        (
            json!({"type": "ExtensionRef", "extensionRef": {"group": "networking.istio.io", "kind": "EnvoyFilter", "name": "tap"}}),
            "rules[0].filters[1].extensionRef",
        ),
    ];
    for (filter, field) in &attacks {
        let (status, body) =
            send_as(&console, "alice", Method::PUT, "/routes/recommendation", &with_filter(filter.clone())).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "alice may not send traffic beyond recommendation: {filter} -> {body}"
        );
        assert!(body["error"].as_str().is_some_and(|e| e.contains(field)), "names {field}: {body}");
    }
    let untouched = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.unwrap();
    let filters = untouched.data["spec"]["rules"][0]["filters"].to_string();
    assert!(!filters.contains("preference") && !filters.contains("evil") && !filters.contains("Mirror"), "{filters}");
    let denied: Vec<Value> = console
        .audit()
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied" && e["actor"] == "alice" && e["action"] == "route.update")
        .collect();
    for (_, field) in &attacks {
        assert!(
            denied
                .iter()
                .any(|e| e["error"].as_str().is_some_and(|error| error.ends_with(&format!("as {field} would")))),
            "a denied entry names {field}: {denied:?}"
        );
    }

    let external_auth = json!({"type": "ExternalAuth", "externalAuth": {"protocol": "HTTP",
        "backendRef": {"name": "preference", "port": 8080}}});
    for user in ["alice", "carol"] {
        let (status, body) =
            send_as(&console, user, Method::PUT, "/routes/recommendation", &with_filter(external_auth.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{user}: a filter signalbox cannot judge: {body}");
        assert_eq!(body["field"], "rules[0].filters[1].type", "{body}");
    }

    let own = mirror(json!({"name": "recommendation-v2", "port": 8080}));
    let (status, body) = send_as(&console, "alice", Method::PUT, "/routes/recommendation", &with_filter(own)).await;
    assert_eq!(status, StatusCode::OK, "alice may mirror to her own v2: {body}");
    let (_, mirrored) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!(mirrored["rules"][0]["mirror"]["subset"], "recommendation-v2", "{mirrored}");

    let mut to_preference = mirrored.clone();
    to_preference["rules"][0].as_object_mut().unwrap().remove("mirror");
    to_preference["rules"][0]["filters"]
        .as_array_mut()
        .unwrap()
        .push(mirror(json!({"name": "preference", "port": 8080})));
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(to_preference)).await;
    assert_eq!(status, StatusCode::OK, "the platform admin may mirror to preference: {body}");
    let written = ns.objects(Kind::HTTPRoute).get("reco-mesh").await.unwrap();
    let filters = written.data["spec"]["rules"][0]["filters"].to_string();
    assert!(filters.contains(r#""name":"preference""#), "{filters}");
    console.stop().await;
}

/// The attacker is alice again (recommendation only). An HTTPRoute attached both to the
/// recommendation Service and to a Gateway routes the Gateway's ingress traffic too, which
/// serves other hosts: her PUT of that route must be 403, audited as denied, and leave the
/// route as it was; the platform admin may edit it.
#[tokio::test]
async fn an_http_route_with_a_gateway_parent_needs_the_whole_namespace() {
    let ns = TestNamespace::new("gammaparents").await;
    let console = Console::start_with_teams(&ns.name, ONE_HOST_TEAMS, ("carol", "admins")).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    create_version_services(&ns).await;
    let route: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "reco-both"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "recommendation", "port": 8080},
                           {"name": "public", "namespace": "istio-system"}],
            "rules": [{"backendRefs": [{"name": "recommendation-v1", "port": 8080}]}]
        }
    }))
    .unwrap();
    ns.objects(Kind::HTTPRoute).create(&PostParams::default(), &route).await.unwrap();
    let (status, policy) = console.get_json(&console.api("/routes/recommendation")).await;
    assert_eq!((status, policy["kind"].as_str()), (StatusCode::OK, Some("HTTPRoute")), "{policy}");
    let mut split = policy.clone();
    split["rules"][0]["route"] = json!({"recommendation-v1": 90, "recommendation-v2": 10});

    let (status, body) = send_as(&console, "alice", Method::PUT, "/routes/recommendation", &split).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a Gateway parent needs the whole namespace: {body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("HTTPRoute") && e.contains("reco-both")), "{body}");
    let untouched = ns.objects(Kind::HTTPRoute).get("reco-both").await.unwrap();
    assert_eq!(untouched.data["spec"]["rules"][0]["backendRefs"].as_array().map(Vec::len), Some(1), "unchanged");
    let audit = console.audit().await;
    let denied = audit.iter().find(|e| e["outcome"] == "denied" && e["actor"] == "alice");
    assert!(
        denied.is_some_and(|e| e["action"] == "route.update" && e["name"] == "recommendation"),
        "audited as denied: {audit:?}"
    );

    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split)).await;
    assert_eq!(status, StatusCode::OK, "the platform admin may: {body}");
    let edited = ns.objects(Kind::HTTPRoute).get("reco-both").await.unwrap();
    assert_eq!(edited.data["spec"]["rules"][0]["backendRefs"].as_array().map(Vec::len), Some(2), "{edited:?}");
    assert_eq!(edited.data["spec"]["parentRefs"].as_array().map(Vec::len), Some(2), "both parents kept");
    console.stop().await;
}

/// On a cluster whose HTTPRoute CRD is the Gateway API's experimental channel (it has
/// `retry`), retries on status codes are written into the HTTPRoute and read back; a per-try
/// timeout, which an HTTPRoute cannot say, is still 422. Runs on a private cluster with the
/// experimental CRDs.
#[tokio::test]
async fn with_the_experimental_channel_an_http_route_retries() {
    let channel = [("DEVCLUSTER_GATEWAY_API_CHANNEL", "experimental")];
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start_with(29443, &channel)).await.unwrap();
    let kubeconfig = cluster.kubeconfig();
    let console = Console::start_with("gammaexp", |config| config.kubeconfig = Some(kubeconfig.clone())).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let (status, body) =
        console.send_json(Method::POST, &console.api("/routes/recommendation/version-services"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let routes = console.api("/routes/recommendation");
    let rule = |retries: Value| json!({"route": {"recommendation-v1": 100}, "retries": retries});
    let subsets = json!({"recommendation-v1": {"version": "v1"}, "recommendation-v2": {"version": "v2"}});
    let body =
        json!({"kind": "HTTPRoute", "subsets": subsets, "rules": [rule(json!({"attempts": 3, "retryOn": "503,504"}))]});
    let (status, answer) = console.send_json(Method::PUT, &routes, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"));
    let route =
        Api::<DynamicObject>::namespaced_with(client, "gammaexp", &resource).get("recommendation").await.unwrap();
    assert_eq!(route.data["spec"]["rules"][0]["retry"], json!({"attempts": 3, "codes": [503, 504]}));
    let (_, read) = console.get_json(&routes).await;
    assert_eq!(read["rules"][0]["retries"], json!({"attempts": 3, "retryOn": "503,504"}));

    let per_try = json!({"subsets": subsets, "rules": [rule(json!({"attempts": 2, "perTryTimeout": "1s"}))]});
    let (status, refused) = console.send_json(Method::PUT, &routes, Some(per_try)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["field"], "rules[0].retries.perTryTimeout", "{refused}");
    console.stop().await;
    drop(cluster);
}
