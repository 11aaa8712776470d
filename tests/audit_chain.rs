//! Tamper evidence end to end: `signalbox audit verify` and the API find an entry edited
//! behind the application's back with the sqlite3 CLI.
mod support;

use std::process::Command;

use serde_json::json;
use signalbox::audit::{AuditStore, NewEntry, Outcome, Source};
use support::console::Console;
use support::TestNamespace;

fn entry(summary: &str, outcome: Outcome) -> NewEntry {
    NewEntry {
        actor: "alice".into(),
        groups: vec![],
        source: Source::Api,
        action: "route.update".into(),
        namespace: "tutorial".into(),
        kind: "VirtualService".into(),
        name: "recommendation".into(),
        summary: summary.into(),
        before: Some(json!({"spec": {"http": [{"route": [{"weight": 90}]}]}})),
        after: Some(json!({"spec": {"http": [{"route": [{"weight": 75}]}]}})),
        operations: json!([]),
        outcome,
        error: None,
        request_id: None,
    }
}

fn verify(database: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_signalbox")).args(["audit", "verify", "--database"]).arg(database).output().unwrap();
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

    let tamper = "DROP TRIGGER audit_entries_chain_once; UPDATE audit_entries SET after_doc = '{\"spec\":{\"http\":[]}}' WHERE id = 1;";
    let status = Command::new("sqlite3").arg(&database).arg(tamper).status().expect("sqlite3 CLI");
    assert!(status.success());
    let (ok, text) = verify(&database);
    assert!(!ok, "verify fails on a tampered log: {text}");
    assert!(text.contains("entry 1 does not match"), "{text}");
}

#[tokio::test]
async fn the_api_reports_the_chain_of_a_running_console() {
    let ns = TestNamespace::new("chain").await;
    let console = Console::start(&ns.name).await;
    let (status, _) = console.send_json(reqwest::Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(report, json!({"records_checked": 2, "first_mismatch": null}), "an entry and its resolution");
    let page = console.http.get(console.url("/audit")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("chain verified"), "the history page shows the verified state");
    console.stop().await;
}
