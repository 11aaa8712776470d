//! A revert is a change like any other: each object it would create, update or delete is
//! authorized for that object, and shared objects other versions still use are kept.
//! Deploying into a missing namespace needs the permission creating it needs.
use crate::support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use kube::api::{Api, Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::console::Console;

const TEAMS: &str = "teams:
  - name: recommendation
    members: {users: [alice]}
    namespaces: [{ns}]
    hosts: [recommendation]
    actions: [deploy, route]
  - name: web
    members: {users: [bob]}
    namespaces: [{ns}]
    hosts: [preference]
    actions: [deploy, route]
  - name: platform
    members: {groups: [admins]}
    namespaces: ['*']
    actions: [admin]
";

/// A console behind a trusted proxy (127.0.0.1) with [`TEAMS`] as its team file.
async fn console_with_teams(namespace: &str) -> Console {
    Console::start_with_teams(namespace, TEAMS, ("carol", "admins")).await
}

/// Sends JSON as `user` (with `groups`) through the trusted proxy.
async fn as_user(
    console: &Console,
    user: &str,
    groups: &str,
    method: Method,
    url: &str,
    body: Value,
) -> (StatusCode, Value) {
    let request = console.http.request(method, url).header("x-forwarded-user", user);
    let request = if groups.is_empty() { request } else { request.header("x-forwarded-groups", groups) };
    let response = request.json(&body).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn as_admin(console: &Console, method: Method, url: &str, body: Value) -> Value {
    let (status, answer) = as_user(console, "carol", "admins", method.clone(), url, body).await;
    assert_eq!(status, StatusCode::OK, "{method} {url}: {answer}");
    answer
}

/// Posts a page's form as `user`'s browser does (same origin, with the user's CSRF token).
async fn post_form_as(console: &Console, user: &str, path: &str) -> (StatusCode, String) {
    let token = console.server.state.csrf.token_for(user);
    let response = console
        .http
        .post(console.url(path))
        .header("x-forwarded-user", user)
        .header("origin", &console.base)
        .header("sec-fetch-site", "same-origin")
        .header("accept", "text/html")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

fn revert_url(console: &Console, id: i64, query: &str) -> String {
    console.url(&format!("/api/v1/audit/{id}/revert{query}"))
}

async fn namespace_exists(ns: &TestNamespace) -> bool {
    Api::<Namespace>::all(ns.client.clone()).get_opt(&ns.name).await.unwrap().is_some()
}

/// The newest audit entry with `action` by `actor`.
async fn latest(console: &Console, actor: &str, action: &str) -> Value {
    let audit = console.audit().await;
    audit.into_iter().find(|e| e["actor"] == actor && e["action"] == action).unwrap_or(Value::Null)
}

/// Reverting a deploy that created the namespace deletes the namespace: that needs a team
/// for the whole namespace, not one limited to the workload's host. Reverting a routing
/// change whose VirtualService also routes another host needs that host too.
#[tokio::test]
async fn a_revert_is_authorized_for_every_object_it_would_change() {
    let ns = TestNamespace::unborn("revauth").await;
    let console = console_with_teams(&ns.name).await;
    let created = as_admin(&console, Method::PUT, &console.api("/workloads/recommendation-v1"), json!({})).await;
    let created = created["auditId"].as_i64().unwrap();
    assert!(namespace_exists(&ns).await, "the deploy created the namespace");

    // alice may deploy recommendation, but not delete the namespace the deploy created.
    for query in ["?dryRun=true", ""] {
        let (status, answer) =
            as_user(&console, "alice", "", Method::POST, &revert_url(&console, created, query), json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{query}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("delete Namespace {}", ns.name)) && error.contains("whole namespace"),
            "{error}"
        );
    }
    assert!(namespace_exists(&ns).await, "the refused revert deleted nothing");
    let refused = latest(&console, "alice", "revert").await;
    assert_eq!(
        (refused["outcome"].as_str(), refused["reverts"].as_i64()),
        (Some("denied"), Some(created)),
        "{refused}"
    );

    // The page's preview says so where the Revert button would be, with the same status.
    let (status, html) = post_form_as(&console, "alice", &format!("/audit/{created}/revert/preview")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let banner = html.split("id=\"revert-error\">").nth(1).expect("an error in the revert preview");
    assert!(banner.contains(&format!("Namespace {}", ns.name)), "{banner}");
    assert!(!html.contains("id=\"revert-confirm\""), "no Revert button for a refused revert");

    // A VirtualService that routes recommendation and preference alike.
    let shared = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reco-routes"},
        "spec": {"hosts": ["recommendation", "preference"],
                 "http": [{"route": [{"destination": {"host": "recommendation"}}]}]}
    });
    ns.objects(Kind::VirtualService)
        .patch("reco-routes", &PatchParams::apply("kubectl"), &Patch::Apply(&shared))
        .await
        .unwrap();
    let policy = json!({"subsets": {"version-v1": {"version": "v1"}}, "rules": [{"route": {"version-v1": 100}}]});
    let (status, answer) =
        as_user(&console, "alice", "", Method::PUT, &console.api("/routes/recommendation"), policy.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "its rules are preference's too: {answer}");
    let routed = as_admin(&console, Method::PUT, &console.api("/routes/recommendation"), policy).await;
    let routed = routed["auditId"].as_i64().unwrap();
    // bob may not even view recommendation's entry (View), so for him it does not exist.
    for (user, refused) in [("alice", StatusCode::FORBIDDEN), ("bob", StatusCode::NOT_FOUND)] {
        let (status, answer) =
            as_user(&console, user, "", Method::POST, &revert_url(&console, routed, ""), json!({})).await;
        assert_eq!(status, refused, "{user}: {answer}");
    }
    let (_, answer) = as_user(&console, "alice", "", Method::POST, &revert_url(&console, routed, ""), json!({})).await;
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("VirtualService {}/reco-routes", ns.name)) && error.contains("preference"),
        "{error}"
    );
    let live = ns.objects(Kind::VirtualService).get("reco-routes").await.unwrap();
    let subset = &serde_json::to_value(live).unwrap()["spec"]["http"][0]["route"][0]["destination"]["subset"];
    assert_eq!(subset, "version-v1", "the admin's routing stays");

    // Within her host, alice reverts what an admin did.
    let scaled =
        as_admin(&console, Method::PUT, &console.api("/workloads/recommendation-v1"), json!({"replicas": 2})).await;
    let scaled = scaled["auditId"].as_i64().unwrap();
    let (status, answer) =
        as_user(&console, "alice", "", Method::POST, &revert_url(&console, scaled, ""), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get("recommendation-v1").await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(1));
    console.stop().await;
}

/// Reverting the deploy of recommendation-v3, which created Service and ServiceAccount
/// `recommendation`, removes v3 but keeps them while v1 and v2 use them, and says so.
#[tokio::test]
async fn reverting_a_deploy_keeps_the_service_other_versions_still_use() {
    let ns = TestNamespace::new("revshared").await;
    let console = Console::start(&ns.name).await;
    let (status, answer) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v3"), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let v3 = answer["auditId"].as_i64().unwrap();
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;

    let (status, preview) =
        console.send_json(Method::POST, &revert_url(&console, v3, "?dryRun=true"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let summary = preview["summary"].as_str().unwrap();
    let kept = "keeps Service recommendation (still used by recommendation-v1, recommendation-v2)";
    assert!(summary.contains(kept) && summary.contains("keeps ServiceAccount recommendation"), "{summary}");
    let (status, html) = console.post_form(&format!("/audit/{v3}/revert/preview"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains(kept), "the page's preview says what it keeps");

    let (status, answer) = console.send_json(Method::POST, &revert_url(&console, v3, ""), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let deployments = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name);
    assert!(deployments.get_opt("recommendation-v3").await.unwrap().is_none(), "v3 is reverted");
    assert!(deployments.get_opt("recommendation-v1").await.unwrap().is_some());
    let services = Api::<Service>::namespaced(ns.client.clone(), &ns.name);
    assert!(services.get_opt("recommendation").await.unwrap().is_some(), "v1 and v2 keep their Service");
    let accounts = Api::<ServiceAccount>::namespaced(ns.client.clone(), &ns.name);
    assert!(accounts.get_opt("recommendation").await.unwrap().is_some(), "and their ServiceAccount");
    let entry = console.audit().await.into_iter().find(|e| e["action"] == "revert").unwrap();
    assert!(entry["summary"].as_str().unwrap().contains(kept), "{entry}");
    console.stop().await;
}

/// Deploying into a namespace that does not exist creates it: a team limited to a host may
/// not, through the API or the deploy page's form; a team for the whole namespace may.
#[tokio::test]
async fn deploying_into_a_missing_namespace_needs_the_whole_namespace() {
    let ns = TestNamespace::unborn("deployns").await;
    let console = console_with_teams(&ns.name).await;

    let (status, answer) =
        as_user(&console, "alice", "", Method::PUT, &console.api("/workloads/recommendation-v1"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains(&format!("write Namespace {}", ns.name)) && error.contains("whole namespace"), "{error}");
    let refused = latest(&console, "alice", "workload.deploy").await;
    assert_eq!(refused["outcome"], "denied", "{refused}");

    let (status, html) = post_form_as(&console, "alice", &format!("/ns/{}/deploy/recommendation-v1", ns.name)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let row_error = html.split("id=\"error-recommendation-v1\">").nth(1).expect("the error next to the row");
    assert!(row_error.contains(&format!("Namespace {}", ns.name)), "{row_error}");
    assert!(!namespace_exists(&ns).await, "nothing was created");
    let (_, page) = console.get_as(Some(("alice", "")), &format!("/ns/{}/deploy", ns.name)).await;
    assert!(!page.contains(">Deploy</button>"), "no Deploy buttons that would create the namespace");

    as_admin(&console, Method::PUT, &console.api("/workloads/recommendation-v1"), json!({})).await;
    let (status, answer) =
        as_user(&console, "alice", "", Method::PUT, &console.api("/workloads/recommendation-v2"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "once the namespace exists, her host is hers to deploy: {answer}");
    console.stop().await;
}
