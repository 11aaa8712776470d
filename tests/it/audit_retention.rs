//! Retention end to end: archived records leave the database, and `signalbox audit verify
//! --archive` checks archive and database as one chain, naming an entry edited in the archive.
use std::process::Command;

use serde_json::json;
use signalbox::audit::{AuditStore, NewEntry, Outcome, Source};

fn entry(summary: &str) -> NewEntry {
    NewEntry {
        actor: "alice".into(),
        groups: vec![],
        source: Source::Api,
        action: "route.update".into(),
        namespace: "tutorial".into(),
        kind: "VirtualService".into(),
        name: "recommendation".into(),
        summary: summary.into(),
        before: None,
        after: Some(json!({"spec": {}})),
        operations: json!([]),
        outcome: Outcome::Applied,
        error: None,
        request_id: None,
        reverts: None,
    }
}

fn verify(database: &std::path::Path, archives: &[&std::path::Path]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_signalbox"));
    command.args(["audit", "verify", "--database"]).arg(database);
    for archive in archives {
        command.arg("--archive").arg(archive);
    }
    let output = command.output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn archives_and_database_verify_as_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = AuditStore::open(&database).await.unwrap();
    for summary in ["one", "two", "three"] {
        store.record(&entry(summary)).await.unwrap();
    }
    let cutoff = jiff::Timestamp::now().as_millisecond() + 60_000;
    let archive = store.archive_older_than(cutoff, dir.path(), None).await.unwrap().file.unwrap();
    store.record(&entry("four")).await.unwrap();
    store.close().await;

    let (ok, text) = verify(&database, &[]);
    assert!(ok && text.contains("1 records"), "the database alone continues from the archive: {text}");
    let (ok, text) = verify(&database, &[&archive]);
    assert!(ok && text.contains("4 records"), "{text}");

    let edited = std::fs::read_to_string(&archive).unwrap().replacen("two", "TWO", 1);
    std::fs::write(&archive, edited).unwrap();
    let (ok, text) = verify(&database, &[&archive]);
    assert!(!ok && text.contains("entry 2 does not match"), "{text}");
}
