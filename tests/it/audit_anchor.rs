//! The audit chain's anchor outside the database, end to end: a real SQLite file edited
//! with the sqlite3 CLI (or replaced), the anchor on a ConfigMap in the dev cluster's real
//! API server, and `signalbox audit verify` / `GET /api/v1/audit/verify` finding what the
//! database alone cannot show: its newest records cut off, every hash recomputed, an
//! `audit_archives` row slipped in.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use signalbox::audit::{Anchor, AnchorKey, AuditStore, NewEntry, Outcome, Position};
use signalbox::audit_anchor::{ANNOTATION, AnchorError, AuditAnchor, DEFAULT_NAME};
use support::console::Console;
use support::{TestNamespace, eventually, kubeconfig_path};

fn entry(summary: &str) -> NewEntry {
    support::route_update_entry(summary, Outcome::Applied)
}

/// A log of `count` entries (chain positions 1..=count) at `database`.
async fn log_with(database: &Path, count: usize, summary: &str) -> AuditStore {
    let store = AuditStore::open(database).await.unwrap();
    for n in 0..count {
        store.record(&entry(&format!("{summary} {n}"))).await.unwrap();
    }
    store
}

/// `signalbox audit verify` with the anchor in `namespace` (None: no anchor) and extra args.
fn verify(database: &Path, namespace: Option<&str>, extra: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_signalbox"));
    command.args(["audit", "verify", "--database"]).arg(database).args(extra);
    if let Some(namespace) = namespace {
        command.arg("--kubeconfig").arg(kubeconfig_path()).args(["--audit-anchor-namespace", namespace]);
    }
    let output = command.env_remove("POD_NAMESPACE").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn sqlite3(database: &Path, sql: &str) {
    let status = Command::new("sqlite3").arg(database).arg(sql).status().expect("sqlite3 CLI");
    assert!(status.success(), "{sql}");
}

#[tokio::test]
async fn the_newest_records_cut_off_with_the_head_set_back_are_found_against_the_anchor() {
    let ns = TestNamespace::new("anchor-cut").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = log_with(&database, 4, "route change").await;
    let anchor = AuditAnchor::new(ns.client.clone(), &ns.name, DEFAULT_NAME, None);
    assert_eq!(anchor.advance(&store, None).await.unwrap().seq, 4);
    store.close().await;
    let (ok, text) = verify(&database, Some(&ns.name), &[]);
    assert!(
        ok && text.contains("intact: 4 records") && text.contains("compared with the anchor at ConfigMap"),
        "{text}"
    );

    // Records 3 and 4 removed, and the head row set back to record 2: the chain that is
    // left is perfect, and only the anchor knows there was more. (The delete goes past the
    // append-only trigger by its archiving flag: a dropped trigger would change the schema,
    // which verification finds on its own.)
    sqlite3(
        &database,
        "UPDATE audit_archive_guard SET archiving = 1; DELETE FROM audit_entries WHERE chain_seq > 2;
         UPDATE audit_archive_guard SET archiving = 0;
         UPDATE audit_chain_head SET seq = 2, hash = (SELECT hash FROM audit_entries WHERE chain_seq = 2);",
    );
    let (ok, text) = verify(&database, None, &[]);
    assert!(ok && text.contains("intact: 2 records"), "the database alone cannot tell: {text}");
    let bytes = std::fs::read(&database).unwrap();
    let (ok, text) = verify(&database, Some(&ns.name), &[]);
    assert!(!ok, "{text}");
    assert!(text.contains("the newest records were removed: the database ends at record 2"), "{text}");
    assert_eq!(std::fs::read(&database).unwrap(), bytes, "verify wrote nothing");
    assert!(text.contains("names record 4 (2 record(s) missing)"), "{text}");

    // A start on the shortened log does not move the anchor onto it; nor once new records
    // take the chain past the anchored position again (record 4 is another record now).
    let store = AuditStore::open(&database).await.unwrap();
    assert!(matches!(anchor.advance(&store, None).await, Err(AnchorError::Contradicted(_))));
    for n in 0..3 {
        store.record(&entry(&format!("later {n}"))).await.unwrap();
    }
    assert!(matches!(anchor.advance(&store, None).await, Err(AnchorError::Contradicted(_))));
    store.close().await;
    let (ok, text) = verify(&database, Some(&ns.name), &[]);
    assert!(!ok && text.contains("the chain was rewritten: record 4 has hash"), "{text}");
}

/// The log replaced while signalbox was down by one whose every hash was recomputed (a
/// consistent chain from the genesis hash, longer than the original): the verify API of
/// the next start finds it, and that start leaves the anchor alone.
#[tokio::test]
async fn a_log_with_every_hash_recomputed_is_found_by_the_verify_api() {
    let ns = TestNamespace::new("anchor-recompute").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let anchored = |config: &mut signalbox::config::ServeConfig| {
        config.audit_anchor.audit_anchor_namespace = Some(ns.name.clone());
        config.audit_anchor_every_records = 1;
        config.database = database.clone();
    };
    let console = Console::start_with(&ns.name, anchored).await;
    console.deploy(&["recommendation-v1"]).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let anchored_seq = || async {
        let annotations = config_maps.get_opt(DEFAULT_NAME).await.ok()??.metadata.annotations?;
        Some(serde_json::from_str::<Anchor>(annotations.get(ANNOTATION)?).ok()?.seq)
    };
    // The running writer follows the log (every record here), not only at shutdown.
    eventually(Duration::from_secs(10), "the entry and its resolution anchored", || async {
        anchored_seq().await.filter(|seq| *seq >= 2)
    })
    .await;
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!((&report["problems"], report["anchor"]["checked"].as_bool()), (&json!([]), Some(true)), "{report}");
    console.stop().await; // anchors the last records
    let annotations = config_maps.get(DEFAULT_NAME).await.unwrap().metadata.annotations.unwrap();
    let before: Anchor = serde_json::from_str(&annotations[ANNOTATION]).unwrap();
    assert!(before.seq >= 2, "an entry and its resolution at least: {before:?}");

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", database.display()));
    }
    let forged = log_with(&dir.path().join("forged.db"), before.seq as usize + 5, "nothing happened").await;
    forged.backup(&database).await.unwrap(); // a complete copy in one file
    forged.close().await;

    let console = Console::start_with(&ns.name, anchored).await;
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(report["first_mismatch"], json!(null), "the forged chain is consistent in itself: {report}");
    let problems = report["problems"].to_string();
    assert!(problems.contains(&format!("the chain was rewritten: record {} has hash", before.seq)), "{report}");
    console.stop().await;
    let annotations = config_maps.get(DEFAULT_NAME).await.unwrap().metadata.annotations.unwrap();
    let after: Anchor = serde_json::from_str(&annotations[ANNOTATION]).unwrap();
    assert!(after.same_positions(&before), "the anchor was not moved onto the forged log: {after:?}");
}

#[tokio::test]
async fn an_inserted_audit_archives_row_is_found() {
    let ns = TestNamespace::new("anchor-archive").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let store = log_with(&database, 6, "route change").await;
    let anchor = AuditAnchor::new(ns.client.clone(), &ns.name, DEFAULT_NAME, None);
    // A real archive run, anchored first: verifies against the anchor.
    let archived = store.archive_older_than(i64::MAX, dir.path(), Some(&anchor)).await.unwrap();
    assert_eq!(archived.through_seq, 6);
    for n in 0..4 {
        store.record(&entry(&format!("after the archive {n}"))).await.unwrap();
    }
    anchor.advance(&store, None).await.unwrap();
    store.close().await;
    let (ok, text) = verify(&database, Some(&ns.name), &[]);
    assert!(ok && text.contains("intact: 4 records") && text.contains("archived through 6"), "{text}");

    // Record 7 edited, and a row claiming records through 8 were archived, so that
    // verification would start after the edit.
    let fake_row = "INSERT INTO audit_archives (time_ms, file, records, through_seq, through_hash, max_entry_id)
                    SELECT 0, 'nowhere.ndjson', 2, 8, hash, 8 FROM audit_entries WHERE chain_seq = 8;";
    let copy = dir.path().join("edited.db");
    std::fs::copy(&database, &copy).unwrap();
    sqlite3(
        &copy,
        &format!(
            "DROP TRIGGER audit_entries_chain_once; UPDATE audit_entries SET summary = 'nothing' WHERE chain_seq = 7; {fake_row}"
        ),
    );
    let (ok, text) = verify(&copy, None, &[]);
    assert!(!ok, "found without the anchor: {text}");
    assert!(
        text.contains("entry 7 is still in the database, yet an audit_archives row says records through 8"),
        "{text}"
    );

    // The same row with records 7 and 8 deleted: the database agrees with itself, the
    // anchor does not know that archive.
    sqlite3(
        &database,
        &format!(
            "UPDATE audit_archive_guard SET archiving = 1; {fake_row} DELETE FROM audit_entries WHERE chain_seq <= 8;
             UPDATE audit_archive_guard SET archiving = 0;"
        ),
    );
    let (ok, text) = verify(&database, None, &[]);
    assert!(ok && text.contains("intact: 2 records"), "the database alone cannot tell: {text}");
    let (ok, text) = verify(&database, Some(&ns.name), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("an audit_archives row (through record 8) that the anchor does not know: the anchor has archives only through record 6"),
        "{text}"
    );
}

#[tokio::test]
async fn with_a_key_only_the_keys_signature_passes_and_an_unreachable_cluster_is_said() {
    let ns = TestNamespace::new("anchor-key").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let key_file = dir.path().join("anchor.key");
    std::fs::write(&key_file, "correct horse battery staple\n").unwrap();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, "another key").unwrap();
    let key = AnchorKey::from_file(&key_file).unwrap();
    let store = log_with(&database, 3, "route change").await;
    AuditAnchor::new(ns.client.clone(), &ns.name, DEFAULT_NAME, Some(key)).advance(&store, None).await.unwrap();
    store.close().await;
    let with = |key: &Path| ["--audit-anchor-key-file".to_owned(), key.display().to_string()];

    let (ok, text) = verify(&database, Some(&ns.name), &with(&key_file).each_ref().map(String::as_str));
    assert!(ok && text.contains("signature valid"), "{text}");
    let (ok, text) = verify(&database, Some(&ns.name), &with(&other_key).each_ref().map(String::as_str));
    assert!(!ok && text.contains("signature does not match the anchor key"), "{text}");

    // Whoever may edit the ConfigMap writes a matching anchor without the key: refused.
    let unsigned = Anchor::new(&Position { seq: 3, hash: "0".repeat(64) }, &Position::genesis(), None);
    let patch = json!({"metadata": {"annotations": {ANNOTATION: serde_json::to_string(&unsigned).unwrap()}}});
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    config_maps.patch(DEFAULT_NAME, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    let (ok, text) = verify(&database, Some(&ns.name), &with(&key_file).each_ref().map(String::as_str));
    assert!(!ok && text.contains("the anchor is not signed, but an anchor key is configured"), "{text}");

    // No cluster: the database is still verified, and the anchor is said not to be.
    let (ok, text) = verify(
        &database,
        None,
        &["--kubeconfig", unreachable_kubeconfig(dir.path()).to_str().unwrap(), "--audit-anchor-namespace", &ns.name],
    );
    assert!(ok && text.contains("intact: 3 records") && text.contains("anchor: NOT checked: ConfigMap"), "{text}");
}

/// A kubeconfig for an API server that is not there (a closed loopback port).
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let path = dir.join("unreachable.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: gone, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    path
}

/// The attacker may edit ConfigMaps in signalbox's namespace (namespace `edit`), not the
/// anchor key: they delete the anchor annotation, hoping signalbox writes — and signs — a
/// fresh anchor over the database as it is now (which someone may have edited). What must
/// not happen: a new anchor within the writer's interval, or verify calling the log intact.
/// Re-anchoring is the operator's `signalbox audit anchor --reset`, which the log records.
#[tokio::test]
async fn a_removed_anchor_is_reported_and_only_an_audited_reset_writes_a_new_one() {
    let ns = TestNamespace::new("anchor-removed").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("anchor.key");
    std::fs::write(&key_file, "operator's secret").unwrap();
    let every = Duration::from_secs(1);
    let console = Console::start_with(&ns.name, |config| {
        config.audit_anchor.audit_anchor_namespace = Some(ns.name.clone());
        config.audit_anchor.audit_anchor_key_file = Some(key_file.clone());
        config.audit_anchor_every_records = 1;
        config.audit_anchor_every_seconds = every.as_secs();
    })
    .await;
    console.deploy(&["recommendation-v1"]).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let anchored = || async {
        let annotations = config_maps.get_opt(DEFAULT_NAME).await.ok()??.metadata.annotations?;
        serde_json::from_str::<Anchor>(annotations.get(ANNOTATION)?).ok()
    };
    eventually(Duration::from_secs(10), "the deploy anchored", || async { anchored().await.filter(|a| a.seq >= 2) })
        .await;

    // The attacker removes the annotation, and changes keep coming.
    let patch = json!({"metadata": {"annotations": {ANNOTATION: null}}});
    config_maps.patch(DEFAULT_NAME, &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    let (status, body) = console
        .send_json(reqwest::Method::PUT, &console.api("/workloads/recommendation-v1"), Some(json!({"replicas": 2})))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    tokio::time::sleep(every * 4).await;
    assert_eq!(anchored().await, None, "signalbox wrote no anchor of its own after the removal");
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert!(report["problems"].to_string().contains("the anchor was removed"), "{report}");

    // The operator looked at the evidence and re-anchors, on record.
    let store = AuditStore::open(&console.database).await.unwrap();
    let key = AnchorKey::from_file(&key_file).unwrap();
    let reset = AuditAnchor::new(ns.client.clone(), &ns.name, DEFAULT_NAME, Some(key));
    let written = reset.reset(&store, "local:operator").await.unwrap();
    store.close().await;
    // The console's own writer may anchor what came after the reset (its own record) by now.
    let now = anchored().await.map(|a| a.seq);
    assert!(now >= Some(written.seq), "the reset anchored record {}, the anchor names {now:?}", written.seq);
    let (_, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!((&report["problems"], &report["anchor"]["checked"]), (&json!([]), &json!(true)), "{report}");
    let entries = console.audit().await;
    let entry = entries.iter().find(|e| e["action"] == "audit.anchor.reset").expect("the reset is in the log");
    assert_eq!((&entry["actor"], &entry["outcome"]), (&json!("local:operator"), &json!("applied")), "{entry}");

    // The writer follows the log again from the new anchor.
    let (status, body) = console
        .send_json(reqwest::Method::PUT, &console.api("/workloads/recommendation-v1"), Some(json!({"replicas": 1})))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    eventually(Duration::from_secs(10), "the next changes anchored", || async {
        anchored().await.filter(|a| a.seq > written.seq)
    })
    .await;
    console.stop().await;
}
