//! Two-person approval (issue 23 §2) against the dev cluster: in a namespace whose policy
//! requires it, a permitted actor's change is held as a proposal (202); another person who
//! may make it approves it (applied as planned) or rejects it; the proposer cannot approve
//! their own; a proposal whose objects moved is stale; aborting a canary is never held.
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;

use crate::support;
use support::TestNamespace;
use support::console::Console;

const ALICE: (&str, &str) = ("alice", "");
const BOB: (&str, &str) = ("bob", "");
const CAROL: (&str, &str) = ("carol", "");
const VICTOR: (&str, &str) = ("victor", "");
const ADMIN: (&str, &str) = ("root", "admins");

fn team_file(namespace: &str, approval: bool) -> String {
    let policy = if approval {
        format!("policies:\n  - namespaces: [{namespace}]\n    approval: {{required: true}}\n")
    } else {
        String::new()
    };
    format!(
        "teams:
  - name: recommendation
    members: {{users: [alice, bob]}}
    namespaces: [{namespace}]
    hosts: [recommendation]
    actions: [route, canary]
  - name: web
    members: {{users: [carol]}}
    namespaces: [{namespace}]
    hosts: [preference]
    actions: [route]
  - name: web-viewers
    members: {{users: [victor]}}
    namespaces: [{namespace}]
    hosts: [preference]
    actions: [view]
  - name: platform
    members: {{groups: [admins]}}
    namespaces: ['*']
    actions: [admin]
{policy}"
    )
}

fn split(v1: u32, v2: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]})
}

async fn weights(ns: &TestNamespace) -> Value {
    let vs = ns.objects(Kind::VirtualService).get("recommendation").await.unwrap();
    serde_json::to_value(vs).unwrap()["spec"]["http"][0]["route"].clone()
}

#[tokio::test]
async fn a_change_in_a_namespace_that_requires_approval_waits_for_another_person() {
    let ns = TestNamespace::new("approval").await;
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    std::fs::write(&teams, team_file(&ns.name, false)).unwrap();
    let console = Console::start_with_team_file(&ns.name, &teams).await;
    let api = |path: &str| format!("/api/v1/namespaces/{}{path}", ns.name);
    console.deploy_as(ADMIN, &["recommendation-v1", "recommendation-v2"]).await;
    let routes = api("/routes/recommendation");
    let (status, body) = console.send_as(ALICE, Method::PUT, &routes, split(90, 10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&teams, team_file(&ns.name, true)).unwrap();
    // Probed with the routing as it is, so that nothing changes before the policy holds.
    support::eventually(Duration::from_secs(10), "the approval policy to hold", || async {
        let (status, _) = console.send_as(ALICE, Method::PUT, &routes, split(90, 10)).await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    let (status, held) = console.send_as(ALICE, Method::PUT, &routes, split(75, 25)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let proposal = held["proposalId"].as_i64().expect("a proposal id");
    assert_eq!(held["status"], "awaiting approval", "{held}");
    assert_eq!(weights(&ns).await[1]["weight"], 10, "nothing applied yet");

    let (status, body) = console.send_as(BOB, Method::GET, "/api/v1/proposals", Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["proposals"].as_array().unwrap().iter().find(|p| p["id"] == proposal).expect("listed").clone();
    assert_eq!((listed["status"].as_str(), listed["proposer"].as_str()), (Some("open"), Some("alice")), "{listed}");
    assert!(listed["diff"].as_str().unwrap().contains("weight: 25"), "{listed}");
    let (_, carols) = console.send_as(CAROL, Method::GET, "/api/v1/proposals", Value::Null).await;
    assert!(carols["proposals"].as_array().unwrap().is_empty(), "another team's host is not shown: {carols}");
    outsiders_see_and_change_nothing(&console, &ns, proposal).await;
    // A hostile page in another tab cannot make bob's browser approve it.
    let forged = console
        .http
        .post(console.url(&format!("/proposals/{proposal}/approve")))
        .header("x-forwarded-user", "bob")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "a cross-site form post is refused");
    assert_eq!(weights(&ns).await[1]["weight"], 10, "nothing applied");

    let approve = format!("/api/v1/proposals/{proposal}/approve");
    let (status, body) = console.send_as(ALICE, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not one's own: {body}");
    let (status, body) = console.send_as(CAROL, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "carol may not make the change (nor see it): {body}");
    let (status, body) = console.send_as(BOB, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(weights(&ns).await[1]["weight"], 25, "applied as planned");
    let applied = body["auditId"].as_i64().unwrap();
    let (_, entry) = console.send_as(ADMIN, Method::GET, &format!("/api/v1/audit/{applied}"), Value::Null).await;
    assert_eq!((entry["actor"].as_str(), entry["approvedBy"].as_str()), (Some("alice"), Some("bob")), "{entry}");
    assert!(
        entry["summary"].as_str().unwrap().ends_with(&format!("(approved by bob, proposal #{proposal})")),
        "{entry}"
    );
    let (status, body) = console.send_as(BOB, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "decided already: {body}");

    // A proposal whose objects moved is stale.
    let (status, held) = console.send_as(ALICE, Method::PUT, &routes, split(50, 50)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let moved = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "recommendation"},
        "spec": {"hosts": ["recommendation"], "http": [{"route": [{"destination": {"host": "recommendation", "subset": "version-v1"}}], "timeout": "3s"}]}});
    ns.objects(Kind::VirtualService)
        .patch("recommendation", &PatchParams::apply("kubectl").force(), &Patch::Apply(&moved))
        .await
        .unwrap();
    let stale = format!("/api/v1/proposals/{}/approve", held["proposalId"]);
    let (status, body) = console.send_as(BOB, Method::POST, &stale, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("stale: propose again"), "{body}");

    // Rejected with a reason, recorded in the audit chain.
    let (status, held) = console.send_as(ALICE, Method::PUT, &routes, split(100, 0)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let reject = format!("/api/v1/proposals/{}/reject", held["proposalId"]);
    let (status, body) = console.send_as(BOB, Method::POST, &reject, json!({})).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")), "{body}");
    let (status, body) = console.send_as(BOB, Method::POST, &reject, json!({"reason": "not during the sale"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, audit) =
        console.send_as(ADMIN, Method::GET, &format!("/api/v1/audit?namespace={}", ns.name), Value::Null).await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"proposal.create") && actions.contains(&"proposal.reject"), "{actions:?}");

    // A canary's start waits; its abort never does.
    let canary = api("/canaries/recommendation");
    let (status, held) =
        console.send_as(ALICE, Method::POST, &canary, json!({"stable": "version-v1", "canary": "version-v2"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let started = format!("/api/v1/proposals/{}/approve", held["proposalId"]);
    let (status, body) = console.send_as(BOB, Method::POST, &started, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = console.send_as(ALICE, Method::POST, &format!("{canary}/abort"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "an abort makes things safer: {body}");

    // From a page: the form's answer says the change is held, in words (202).
    let canary_page = format!("/ns/{}/canaries/recommendation", ns.name);
    let html = console.http.get(console.url(&canary_page)).header("x-forwarded-user", "alice").send().await.unwrap();
    let html = html.text().await.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let token = &html[html.find(marker).expect("a form") + marker.len()..][..64];
    let form = [("csrf_token", token), ("stable", "version-v1"), ("canary", "version-v2"), ("steps", "50")];
    let response = console
        .http
        .post(console.url(&canary_page))
        .header("x-forwarded-user", "alice")
        .header("origin", &console.base)
        .header("sec-fetch-site", "same-origin")
        .header("accept", "text/html")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let answer = response.text().await.unwrap();
    assert!(answer.contains("held for approval as proposal #") && answer.contains("<html"), "{answer}");

    let page = {
        let request = console.http.get(console.url("/proposals")).header("x-forwarded-user", "bob");
        request.send().await.unwrap().text().await.unwrap()
    };
    assert!(page.contains("id=\"nav-proposals\"") || page.contains("Proposals"), "{page}");
    assert!(page.contains("not during the sale") && page.contains("rejected") && page.contains("stale"), "{page}");
    console.stop().await;
}

/// Every proposals route, as anonymous, another team's user and another host's viewer, with
/// a real and a made-up proposal, a reason and none: nothing of the hidden proposal comes
/// back (its summary, its diff), it stays open, and the routing does not move.
async fn outsiders_see_and_change_nothing(console: &Console, ns: &TestNamespace, proposal: i64) {
    let hidden = ["send 75% to v1", "weight: 25"];
    let before = weights(ns).await;
    for user in [("anonymous", ""), CAROL, VICTOR] {
        for id in [proposal.to_string(), "999999".to_owned(), "x".to_owned()] {
            let calls = [
                (Method::GET, "/api/v1/proposals".to_owned(), Value::Null),
                (Method::GET, "/proposals".to_owned(), Value::Null),
                (Method::POST, format!("/api/v1/proposals/{id}/approve"), json!({})),
                (Method::POST, format!("/api/v1/proposals/{id}/reject"), json!({"reason": "no"})),
                (Method::POST, format!("/api/v1/proposals/{id}/reject"), json!({})),
            ];
            for (method, path, body) in calls {
                let request = console.http.request(method.clone(), console.url(&path)).json(&body);
                let request = if user.0 == "anonymous" { request } else { request.header("x-forwarded-user", user.0) };
                let response = request.send().await.unwrap();
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(!status.is_success() || method == Method::GET, "{user:?} {method} {path}: {status} {text}");
                assert!(!status.is_server_error(), "{user:?} {method} {path}: {status} {text}");
                for words in hidden {
                    assert!(!text.contains(words), "{user:?} {method} {path} shows {words:?}: {text}");
                }
            }
        }
    }
    assert_eq!(weights(ns).await, before, "nothing applied");
    let (_, listed) = console.send_as(BOB, Method::GET, "/api/v1/proposals", Value::Null).await;
    let still = listed["proposals"].as_array().unwrap().iter().find(|p| p["id"] == proposal).unwrap();
    assert_eq!(still["status"], "open", "{still}");
}
