//! Every route of the router, walked as the people who may not see a host: anonymous, a user
//! of another team and a viewer of another host, each with valid and with invalid input.
//! No answer may carry anything of the hidden host, and the cluster must not change. The
//! list of routes comes from the router itself (`signalbox::web::routes`), so a new route is
//! walked without editing this test.
use std::collections::BTreeMap;

use kube::api::ListParams;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use signalbox::web::{RouteSpec, routes};

use crate::support::TestNamespace;
use crate::support::console::Console;

/// In the hidden host's routing only (a subset name and a header regex): any answer that
/// holds it shows the hidden host's data.
const MARKER: &str = "zq-hidden-7731";

const TEAMS: &str = "teams:
  - {name: reco, members: {users: [alice]}, namespaces: [{ns}], hosts: [recommendation], actions: [route, canary]}
  - {name: pref, members: {users: [bob]}, namespaces: [{ns}], hosts: [preference], actions: [deploy, route, canary]}
  - {name: pref-viewers, members: {users: [victor]}, namespaces: [{ns}], hosts: [preference], actions: [view]}
  - {name: platform, members: {groups: [admins]}, namespaces: ['*'], actions: [admin]}
";

#[derive(Debug, Clone, Copy)]
enum Input {
    Valid,
    Invalid,
}

#[tokio::test]
async fn no_route_shows_a_hidden_host_or_changes_the_cluster_for_those_who_may_not_see_it() {
    let ns = TestNamespace::new("roads").await;
    let console = Console::start_with_teams(&ns.name, TEAMS, ("carol", "admins")).await;
    console.deploy(&["recommendation-v1", "recommendation-v2", "preference"]).await;
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(hidden_routing())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let audit = console.audit().await;
    let entry = audit.iter().find(|e| e["name"] == "recommendation" && e["outcome"] == "applied");
    let entry = entry.expect("the hidden host's change is audited")["id"].as_i64().unwrap();
    let (_, admin_view) = console.get_json(&console.api("/routes/recommendation")).await;
    assert!(admin_view.to_string().contains(MARKER), "the admin sees the marker: {admin_view}");
    let before = snapshot(&ns).await;

    let listed = routes();
    assert!(listed.len() >= 40, "the router lists its routes: {listed:?}");
    let mut walked = 0;
    for actor in [None, Some(("bob", "")), Some(("victor", ""))] {
        let token = csrf_token(&console, actor).await;
        for spec in &listed {
            for input in [Input::Valid, Input::Invalid] {
                let path = fill(spec.path, &ns.name, entry);
                let (status, body) = send(&console, actor, &token, spec, &path, input).await;
                let who = actor.map_or("anonymous", |(name, _)| name);
                let what = format!("{who} {} {path} ({input:?}) answered {status}", spec.method);
                assert!(!body.contains(MARKER), "{what} with the hidden host's data: {body}");
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {body}");
                if names_the_hidden_host(spec.path) {
                    let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND];
                    assert!(
                        refused.contains(&status) || status == StatusCode::TOO_MANY_REQUESTS,
                        "{what}, not a refusal: {body}"
                    );
                }
                if actor.is_none() && !open_to_anyone(spec.path) {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                }
                walked += 1;
            }
        }
    }
    assert_eq!(walked, listed.len() * 6);
    assert_eq!(snapshot(&ns).await, before, "nothing in the cluster changed");
    console.stop().await;
}

/// The routing of the hidden host, with the marker as a subset and in a header match.
fn hidden_routing() -> Value {
    json!({
        "subsets": {"version-v1": {"version": "v1"}, MARKER: {"version": "v2"}},
        "rules": [
            {"match": [{"headers": {"user-agent": {"regex": format!(".*{MARKER}.*")}}}], "route": {MARKER: 100}},
            {"route": {"version-v1": 90, MARKER: 10}}
        ]
    })
}

/// The path of a route with its parameters filled in: every one points at the hidden host.
fn fill(template: &str, namespace: &str, entry: i64) -> String {
    template
        .replace("{ns}", namespace)
        .replace("{host}", "recommendation")
        .replace("{workload}", "recommendation-v2")
        .replace("{name}", "recommendation-v2")
        .replace("{id}", &entry.to_string())
        .replace("{step}", "promote")
}

fn names_the_hidden_host(template: &str) -> bool {
    ["{host}", "{workload}", "{name}", "{id}"].iter().any(|param| template.contains(param))
}

fn open_to_anyone(template: &str) -> bool {
    matches!(template, "/healthz" | "/readyz")
}

/// Sends the request as a browser would for pages (a form with the actor's CSRF token) and as
/// a JSON client for the API.
async fn send(
    console: &Console,
    actor: Option<(&str, &str)>,
    token: &str,
    spec: &RouteSpec,
    path: &str,
    input: Input,
) -> (StatusCode, String) {
    let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
    let is_get = method == Method::GET;
    let is_api = spec.path.starts_with("/api/");
    let mut url = console.url(path);
    if matches!(input, Input::Invalid) && is_get {
        url.push_str("?limit=-1&before=x&change=oops&format=yaml");
    }
    let mut request = console.http.request(method.clone(), url);
    if let Some((user, groups)) = actor {
        request = request.header("x-forwarded-user", user).header("x-forwarded-groups", groups);
    }
    if !is_get {
        request = if is_api {
            request.json(&json_body(spec.path, input))
        } else {
            let mut fields: Vec<(String, String)> = vec![("csrf_token".into(), token.to_owned())];
            fields.extend(form_fields(spec.path, input));
            request
                .header("origin", &console.base)
                .header("sec-fetch-site", "same-origin")
                .header("accept", "text/html")
                .form(&fields)
        };
    }
    let response = request.send().await.expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

/// What a form of the page would send: the real field names, plausible or broken values.
fn form_fields(template: &str, input: Input) -> Vec<(String, String)> {
    let valid = matches!(input, Input::Valid);
    let pairs: Vec<(&str, &str)> = match template.rsplit('/').next().unwrap_or_default() {
        "{host}" if valid => vec![("stable", "version-v1"), ("canary", MARKER), ("steps", "10,100")],
        "{host}" => vec![("stable", "version-v1"), ("canary", MARKER), ("steps", "oops")],
        "preview" | "apply" if valid => vec![("action", "weights"), ("weights[version-v1]", "75"), ("policy", "{}")],
        "preview" | "apply" => vec![("action", "weights"), ("weights[version-v1]", "50"), ("policy", "{not json")],
        "test" if valid => vec![("path", "/"), ("headers", "user-agent: Firefox")],
        "test" => vec![("path", "/"), ("headers", "not a header line"), ("method", "???")],
        "scale" if valid => vec![("replicas", "2")],
        "scale" => vec![("replicas", "-1")],
        "{step}" if valid => vec![("step", "0")],
        "{step}" => vec![("step", "oops")],
        _ if valid => vec![],
        _ => vec![("replicas", "-1"), ("steps", "oops"), ("force", "yes")],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
}

/// What an API client would send: a real request, or one with every problem it can have.
fn json_body(template: &str, input: Input) -> Value {
    let valid = matches!(input, Input::Valid);
    match (template.rsplit('/').next().unwrap_or_default(), template.contains("/canaries/"), valid) {
        ("{host}", true, true) => json!({"stable": "version-v1", "canary": MARKER, "steps": [10, 100]}),
        ("{host}", true, false) => json!({"stable": "version-v1", "canary": MARKER, "steps": "oops"}),
        ("{host}", false, true) => {
            json!({"subsets": {"version-v1": {"version": "v1"}}, "rules": [{"route": {"version-v1": 100}}]})
        }
        ("{host}", false, false) => json!({"rules": [{"route": {"version-v1": 50, MARKER: 49}}]}),
        ("test", _, true) => json!({"path": "/", "headers": {"user-agent": "Firefox"}}),
        ("test", _, false) => json!({"path": 7}),
        ("{name}", _, true) => json!({"replicas": 2}),
        ("{name}", _, false) => json!({"replicas": -1}),
        (_, _, true) => json!({}),
        (_, _, false) => json!({"replicas": "two", "steps": "oops", "force": 3}),
    }
}

/// The CSRF token the pages give `actor` (the error pages carry it too).
async fn csrf_token(console: &Console, actor: Option<(&str, &str)>) -> String {
    let mut request = console.http.get(console.url("/")).header("accept", "text/html");
    if let Some((user, groups)) = actor {
        request = request.header("x-forwarded-user", user).header("x-forwarded-groups", groups);
    }
    let html = request.send().await.expect("a page").text().await.unwrap_or_default();
    let start = html.find("X-CSRF-Token").unwrap_or_else(|| panic!("a token in {html}"));
    html[start..]
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|run| run.len() == 64)
        .unwrap_or_else(|| panic!("a token in {html}"))
        .to_owned()
}

/// Every object of the namespace that a change could touch, by kind and name: its generation
/// (its spec) where it has one, else its resourceVersion, and its labels.
async fn snapshot(ns: &TestNamespace) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let kinds = [
        Kind::ServiceAccount,
        Kind::Service,
        Kind::Deployment,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::HTTPRoute,
    ];
    for kind in kinds {
        for object in ns.objects(kind).list(&ListParams::default()).await.unwrap().items {
            let meta = &object.metadata;
            let version = match meta.generation {
                Some(generation) => format!("generation {generation}"),
                None => format!("resourceVersion {}", meta.resource_version.clone().unwrap_or_default()),
            };
            let name = format!("{kind:?}/{}", meta.name.clone().unwrap_or_default());
            seen.insert(name, format!("{version} labels {:?}", meta.labels));
        }
    }
    seen
}
