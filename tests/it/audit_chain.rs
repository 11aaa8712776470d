//! Tamper evidence end to end: `signalbox audit verify` and the API find an entry edited
//! behind the application's back with the sqlite3 CLI.
use crate::support;

use std::process::Command;

use serde_json::json;
use signalbox::audit::{AuditStore, Outcome};
use support::console::Console;
use support::{TestNamespace, route_update_entry as entry};

fn verify(database: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["audit", "verify", "--database"])
        .arg(database)
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn an_entry_edited_with_the_sqlite3_cli_is_named_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = AuditStore::open(&database).await.unwrap();
    store.record(&entry("recommendation: v1 90%→75%", Outcome::Applied)).await.unwrap();
    let second = store.record(&entry("recommendation: v1 75%→50%", Outcome::Pending)).await.unwrap();
    store.resolve(second, Outcome::Applied, Some(&json!({"spec": {}})), None).await.unwrap();
    store.record(&entry("recommendation: v1 50%→0%", Outcome::Applied)).await.unwrap();
    store.close().await;

    let (ok, text) = verify(&database);
    assert!(ok && text.contains("intact: 4 records"), "{text}");

    let copy = dir.path().join("backup.db");
    let backup = Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["audit", "backup", "--database"])
        .arg(&database)
        .arg("--to")
        .arg(&copy)
        .status()
        .unwrap();
    assert!(backup.success());
    let (ok, text) = verify(&copy);
    assert!(ok && text.contains("intact: 4 records"), "the backup verifies too: {text}");

    let tamper = "DROP TRIGGER audit_entries_chain_once; UPDATE audit_entries SET after_doc = '{\"spec\":{\"http\":[]}}' WHERE id = 1;";
    let status = Command::new("sqlite3").arg(&database).arg(tamper).status().expect("sqlite3 CLI");
    assert!(status.success());
    let (ok, text) = verify(&database);
    assert!(!ok, "verify fails on a tampered log: {text}");
    assert!(text.contains("entry 1 does not match"), "{text}");
}

/// `audit verify` opens the log read-only: it never migrates, chains or writes what it checks
/// (the file is byte-identical afterwards, and an immutable copy verifies); and an entry
/// slipped in outside the chain (no chain position) is named, not skipped.
#[tokio::test]
async fn verify_reads_only_and_names_an_entry_outside_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = AuditStore::open(&database).await.unwrap();
    store.record(&entry("recommendation: v1 90%→75%", Outcome::Applied)).await.unwrap();
    store.close().await;
    let before = std::fs::read(&database).unwrap();
    let (ok, text) = verify(&database);
    assert!(ok && text.contains("intact: 1 records"), "{text}");
    assert_eq!(std::fs::read(&database).unwrap(), before, "verify changed nothing");

    let smuggled = "INSERT INTO audit_entries (id, time_ms, actor, source, action, namespace, kind, name, outcome) \
                    VALUES (99, 0, 'mallory', 'api', 'route.update', 't', 'VirtualService', 'x', 'applied');";
    let status = Command::new("sqlite3").arg(&database).arg(smuggled).status().expect("sqlite3 CLI");
    assert!(status.success());
    let (ok, text) = verify(&database);
    assert!(!ok && text.contains("entry 99 does not match"), "an entry outside the chain is named: {text}");
    // Nor does the next start adopt it into the chain (only a log older than the chain is chained).
    AuditStore::open(&database).await.unwrap().close().await;
    let (ok, text) = verify(&database);
    assert!(!ok && text.contains("entry 99 does not match"), "still named after a restart: {text}");
}

#[tokio::test]
async fn the_api_reports_the_chain_of_a_running_console() {
    let ns = TestNamespace::new("chain").await;
    let console = Console::start(&ns.name).await;
    let (status, _) = console.send_json(reqwest::Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(
        (&report["records_checked"], &report["first_mismatch"], &report["problems"]),
        (&json!(2), &json!(null), &json!([])),
        "an entry and its resolution: {report}"
    );
    assert_eq!(report["anchor"]["checked"], json!(false), "no anchor configured here: {report}");
    let page = console.page("/audit").await;
    assert!(page.contains("chain verified"), "the history page shows the verified state");
    assert!(
        page.contains("2 records in the whole log") && page.contains("a change is one record, its outcome"),
        "the count says why it is not the number of entries listed: {page}"
    );
    console.stop().await;
}

#[tokio::test]
async fn the_history_filters_pages_by_key_and_shows_each_entrys_diff() {
    let ns = TestNamespace::new("history").await;
    let console = Console::start(&ns.name).await;
    for (path, body) in [
        ("/workloads/recommendation-v1", json!({})),
        ("/workloads/recommendation-v1", json!({"replicas": 2})),
        ("/workloads/recommendation-v1", json!({"replicas": 3})),
        ("/routes/recommendation", json!({"subsets": {"version-v1": {"version": "v1"}}, "rules": []})),
    ] {
        let (status, answer) = console.send_json(reqwest::Method::PUT, &console.api(path), Some(body)).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    }
    let list = |query: String| console.get_json_owned(console.url(&format!("/api/v1/audit?{query}")));
    let (_, page) = list("action=workload.scale&limit=1".into()).await;
    assert_eq!(page["entries"][0]["summary"], "scale recommendation-v1: 2 → 3 replicas");
    let next = page["next"].as_i64().expect("a next page");
    let (_, older) = list(format!("action=workload.scale&limit=1&before={next}")).await;
    assert_eq!(older["entries"][0]["summary"], "scale recommendation-v1: 1 → 2 replicas", "{older} after {page}");
    let (_, last) = list(format!("action=workload.scale&limit=1&before={}", older["next"])).await;
    assert_eq!(last["entries"], json!([]));
    assert_eq!(last["next"], serde_json::Value::Null);

    let (_, routing) = list(format!("namespace={}&object=recommendation&action=route.", ns.name)).await;
    assert_eq!(routing["entries"].as_array().unwrap().len(), 1);
    let (_, nobody) = list("actor=nobody".into()).await;
    assert_eq!(nobody["entries"], json!([]));
    let (_, future) = list("from=2999-01-01T00:00:00Z".into()).await;
    assert_eq!(future["entries"], json!([]));
    let (status, bad) = list("from=yesterday".into()).await;
    assert_eq!((status, bad["field"].as_str()), (reqwest::StatusCode::UNPROCESSABLE_ENTITY, Some("from")));

    let id = page["entries"][0]["id"].as_i64().unwrap();
    let (status, one) = console.get_json(&console.url(&format!("/api/v1/audit/{id}"))).await;
    assert_eq!((status, one["id"].as_i64()), (reqwest::StatusCode::OK, Some(id)));
    let (status, _) = console.get_json(&console.url("/api/v1/audit/999999")).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    let html = console.page(&format!("/audit/{id}")).await;
    let changed = |class: &str, text: &str| {
        html.lines().any(|l| l.starts_with(&format!("<span class=\"{class}\">")) && l.contains(text))
    };
    assert!(changed("del", "replicas: 2") && changed("add", "replicas: 3"), "{html}");
    assert!(html.contains("--- before") && html.contains("+++ after"));
    assert!(
        html.contains(&format!("/search?service=recommendation.{}&#38;start=", ns.name)),
        "Jaeger link around the change: {html}"
    );
    let filtered = console.page("/audit?actor=nobody").await;
    assert!(filtered.contains("No changes match."));
    console.stop().await;
}

#[tokio::test]
async fn a_change_reverts_to_its_before_state_and_a_changed_object_needs_force() {
    let ns = TestNamespace::new("revert").await;
    let console = Console::start(&ns.name).await;
    let console = &console;
    let put_split = |v1: u32| {
        let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                          "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]});
        let url = console.api("/routes/recommendation");
        async move { console.send_json(reqwest::Method::PUT, &url, Some(body)).await }
    };
    for workload in ["recommendation-v1", "recommendation-v2"] {
        console.send_json(reqwest::Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
    }
    assert_eq!(put_split(90).await.0, reqwest::StatusCode::OK);
    let (_, moved) = put_split(75).await;
    let entry = moved["auditId"].as_i64().unwrap();
    let weights = || async {
        let (_, policy) = console.get_json(&console.api("/routes/recommendation")).await;
        policy["rules"][0]["route"].clone()
    };

    let revert = |query: &str, body: serde_json::Value| {
        let url = console.url(&format!("/api/v1/audit/{entry}/revert{query}"));
        async move { console.send_json(reqwest::Method::POST, &url, Some(body)).await }
    };
    let (status, preview) = revert("?dryRun=true", json!({})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{preview}");
    assert!(preview["diff"].as_str().unwrap().contains("+      weight: 90"), "{preview}");
    assert_eq!(weights().await, json!({"version-v1": 75, "version-v2": 25}), "a preview changes nothing");

    let (status, reverted) = revert("", json!({})).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{reverted}");
    assert_eq!(weights().await, json!({"version-v1": 90, "version-v2": 10}));
    let latest = &console.audit().await[0];
    assert_eq!((latest["action"].as_str(), latest["reverts"].as_i64()), (Some("revert"), Some(entry)));

    assert_eq!(put_split(50).await.0, reqwest::StatusCode::OK);
    let (status, refused) = revert("", json!({})).await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{refused}");
    assert_eq!(weights().await, json!({"version-v1": 50, "version-v2": 50}));
    let (status, _) = revert("", json!({"force": true})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(weights().await, json!({"version-v1": 90, "version-v2": 10}));
}

/// The attacker can write the volume holding the audit file (not the cluster): they
/// redefine the `audit_view` the file's schema holds so that their own entries disappear
/// (and could feed a chosen `before` into a revert), and slip in a trigger. The hashes of
/// the rows are untouched, so the chain alone still verifies. What must not happen: the
/// API's history losing those entries, or verify calling the log intact.
#[tokio::test]
async fn a_view_redefined_in_the_file_hides_nothing_and_verify_names_it() {
    let ns = TestNamespace::new("schema-view").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1"]).await;
    let before = console.audit().await;
    let actor = before[0]["actor"].as_str().unwrap().to_owned();
    assert!(before.iter().any(|e| e["actor"] == actor.as_str() && e["action"] == "workload.deploy"), "{before:?}");
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(report["problems"], json!([]), "intact before the edit: {report}");

    let attacker = sqlx::SqlitePool::connect(&format!("sqlite://{}", console.database.display())).await.unwrap();
    sqlx::raw_sql(
        "DROP VIEW audit_view;
         CREATE VIEW audit_view AS
         SELECT e.id, e.time_ms, e.actor, e.actor_groups, e.source, e.action, e.namespace, e.kind, e.name,
                e.summary, '{\"spec\":{\"replicas\":0}}' AS before_doc, e.operations, e.request_id, e.reverts,
                COALESCE(r.outcome, e.outcome) AS outcome,
                CASE WHEN r.entry_id IS NULL THEN e.after_doc ELSE r.after_doc END AS after_doc,
                CASE WHEN r.entry_id IS NULL THEN e.error ELSE r.error END AS error,
                p.summary AS propagation
         FROM audit_entries e
         LEFT JOIN audit_resolutions r ON r.entry_id = e.id
         LEFT JOIN audit_propagations p ON p.entry_id = e.id
         WHERE e.actor NOT LIKE 'local:%';
         CREATE TRIGGER mallory_was_here AFTER INSERT ON audit_entries BEGIN SELECT 1; END;",
    )
    .execute(&attacker)
    .await
    .unwrap();
    let hidden: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_view WHERE actor = ?")
        .bind(&actor)
        .fetch_one(&attacker)
        .await
        .unwrap();
    assert_eq!(hidden, 0, "through the file's view the actor is gone");
    attacker.close().await;

    let after = console.audit().await;
    let ours: Vec<_> = after.iter().filter(|e| e["actor"] == actor.as_str()).collect();
    assert_eq!(ours.len(), before.iter().filter(|e| e["actor"] == actor.as_str()).count(), "{after:?}");
    let id = ours[0]["id"].as_i64().unwrap();
    let (_, entry) = console.get_json(&console.url(&format!("/api/v1/audit/{id}"))).await;
    assert_ne!(entry["before"], json!({"spec": {"replicas": 0}}), "a revert's before state is not the view's: {entry}");

    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    let problems = report["problems"].to_string();
    assert!(problems.contains("view audit_view is not defined as signalbox's migrations define it"), "{report}");
    assert!(problems.contains("trigger mallory_was_here (on audit_entries) is not one"), "{report}");
    console.stop().await;
}
