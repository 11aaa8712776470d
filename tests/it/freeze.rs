//! Change freezes from the team file's `policies:` (issue 23 §3), against the dev cluster:
//! refused with 423 naming the window, what makes things safer still allowed, and a
//! namespace admin's emergency change recorded as one.
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support;
use support::TestNamespace;
use support::console::Console;

const ALICE: (&str, &str) = ("alice", "");
const CAROL: (&str, &str) = ("carol", "admins");

fn team_file(namespace: &str, freeze: &str) -> String {
    format!(
        "teams:
  - name: recommendation
    members: {{users: [alice]}}
    namespaces: [{namespace}]
    hosts: [recommendation]
    actions: [route, canary]
  - name: platform
    members: {{groups: [admins]}}
    namespaces: ['*']
    actions: [admin]
{freeze}"
    )
}

/// A freeze over the namespace from an hour ago to an hour from now.
fn freeze_now(namespace: &str) -> String {
    let now = jiff::Timestamp::now();
    let (from, to) = (now - jiff::SignedDuration::from_hours(1), now + jiff::SignedDuration::from_hours(1));
    format!(
        "policies:\n  - namespaces: [{namespace}]\n    freezes:\n      - {{from: \"{from}\", to: \"{to}\", reason: \"holidays\"}}\n"
    )
}

fn split(v1: u32, v2: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]})
}

#[tokio::test]
async fn a_freeze_refuses_changes_with_423_and_lets_through_what_makes_things_safer() {
    let ns = TestNamespace::new("freeze").await;
    let dir = tempfile::tempdir().unwrap();
    let teams = dir.path().join("teams.yaml");
    std::fs::write(&teams, team_file(&ns.name, "")).unwrap();
    let console = Console::start_with_team_file(&ns.name, &teams).await;
    let api = |path: &str| format!("/api/v1/namespaces/{}{path}", ns.name);
    console.deploy_as(CAROL, &["recommendation-v1", "recommendation-v2"]).await;
    let routes = api("/routes/recommendation");
    let (status, body) = console.send_as(ALICE, Method::PUT, &routes, split(100, 0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let canary = api("/canaries/recommendation");
    let start = json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 50, 100]});
    let (status, body) = console.send_as(ALICE, Method::POST, &canary, start).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The team file gains a freeze (a ConfigMap update): it holds within seconds.
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&teams, team_file(&ns.name, &freeze_now(&ns.name))).unwrap();
    let refused = support::eventually(Duration::from_secs(10), "the freeze to hold", || async {
        let (status, body) = console.send_as(ALICE, Method::PUT, &routes, split(90, 10)).await;
        (status == StatusCode::LOCKED).then_some(body)
    })
    .await;
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains(&format!("namespace {} is frozen", ns.name)) && message.contains("(holidays)"),
        "{message}"
    );
    let (status, body) = console.send_as(ALICE, Method::POST, &format!("{canary}/promote"), json!({})).await;
    assert_eq!(status, StatusCode::LOCKED, "a promote is a change: {body}");
    let (status, body) =
        console.send_as(ALICE, Method::PUT, &format!("{routes}?emergency=please"), split(90, 10)).await;
    assert_eq!(status, StatusCode::LOCKED, "{body}");
    assert!(body["error"].as_str().unwrap().contains("only a namespace admin"), "{body}");
    let (status, body) = console.send_as(CAROL, Method::PUT, &api("/workloads/customer"), json!({})).await;
    assert_eq!(status, StatusCode::LOCKED, "an admin too, without an emergency: {body}");

    let (status, body) = console.send_as(ALICE, Method::POST, &format!("{canary}/abort"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "aborting makes things safer: {body}");

    let emergency = format!("{routes}?emergency=v1%20fails%20its%20checks");
    let (status, body) = console.send_as(CAROL, Method::PUT, &emergency, split(0, 100)).await;
    assert_eq!(status, StatusCode::OK, "an admin's emergency change: {body}");
    let audit_id = body["auditId"].as_i64().unwrap();
    let (_, entry) = console.send_as(CAROL, Method::GET, &format!("/api/v1/audit/{audit_id}"), Value::Null).await;
    let summary = entry["summary"].as_str().unwrap();
    assert!(summary.starts_with("EMERGENCY (v1 fails its checks) during the freeze"), "{summary}");
    assert!(summary.contains("(holidays)"), "{summary}");

    let revert = format!("/api/v1/audit/{audit_id}/revert");
    let (status, body) = console.send_as(ALICE, Method::POST, &revert, json!({})).await;
    assert_eq!(status, StatusCode::OK, "a change made during the freeze may be reverted in it: {body}");

    let (_, audit) =
        console.send_as(CAROL, Method::GET, &format!("/api/v1/audit?namespace={}", ns.name), Value::Null).await;
    let denied = audit["entries"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").count();
    assert!(denied >= 4, "each refusal is audited: {audit}");

    let page = format!("/ns/{}/routes/recommendation", ns.name);
    let html = |user: (&'static str, &'static str)| {
        let request = console.http.get(console.url(&page));
        async move {
            let request = request.header("x-forwarded-user", user.0).header("x-forwarded-groups", user.1);
            request.send().await.unwrap().text().await.unwrap()
        }
    };
    let alices = html(ALICE).await;
    assert!(alices.contains("id=\"freeze-banner\"") && alices.contains("holidays"), "{alices}");
    assert!(!alices.contains("id=\"emergency-reason\""), "only an admin is offered the emergency field");
    assert!(html(CAROL).await.contains("id=\"emergency-reason\""));
    console.stop().await;
}
