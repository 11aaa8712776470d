use super::*;

fn entry(outcome: Outcome) -> NewEntry {
    NewEntry {
        actor: "alice".into(),
        groups: vec!["team-reco".into()],
        source: Source::Api,
        action: "workload.scale".into(),
        namespace: "tutorial".into(),
        kind: "Deployment".into(),
        name: "recommendation-v2".into(),
        summary: "recommendation-v2: 1 → 2 replicas".into(),
        before: Some(serde_json::json!({"spec": {"replicas": 1}})),
        after: None,
        operations: serde_json::json!([{"kind": "Deployment", "namespace": "tutorial", "name": "recommendation-v2"}]),
        outcome,
        error: None,
        request_id: Some("req-1".into()),
        reverts: None,
    }
}

async fn store() -> (tempfile::TempDir, AuditStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = AuditStore::open(&dir.path().join("audit.db")).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_pending_entry_resolves_once_and_keeps_its_documents() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Pending)).await.unwrap();
    assert_eq!(store.pending().await.unwrap().len(), 1);

    let after = serde_json::json!({"spec": {"replicas": 2}});
    store.resolve(id, Outcome::Applied, Some(&after), None).await.unwrap();

    let stored = store.get(id).await.unwrap().unwrap();
    assert_eq!(stored.outcome, "applied");
    assert_eq!(stored.after, Some(after));
    assert_eq!(stored.before, Some(serde_json::json!({"spec": {"replicas": 1}})));
    assert_eq!(stored.groups, vec!["team-reco".to_string()]);
    assert!(store.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn resolved_entries_cannot_be_changed_or_deleted() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Failed)).await.unwrap();
    let update =
        sqlx::query("UPDATE audit_entries SET actor = 'mallory' WHERE id = ?").bind(id).execute(&store.pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_entries").execute(&store.pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
}

#[tokio::test]
async fn recent_lists_newest_first() {
    let (_dir, store) = store().await;
    let first = store.record(&entry(Outcome::Denied)).await.unwrap();
    let second = store.record(&entry(Outcome::Applied)).await.unwrap();
    let ids: Vec<i64> = store.recent(10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![second, first]);
    assert_eq!(store.recent(1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_chain_verifies_and_names_the_first_tampered_entry() {
    let (_dir, store) = store().await;
    let first = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(first, Outcome::Applied, Some(&serde_json::json!({"spec": {"replicas": 2}})), None).await.unwrap();
    let second = store.record(&entry(Outcome::Denied)).await.unwrap();
    let third = store.record(&entry(Outcome::Failed)).await.unwrap();
    let report = store.verify().await.unwrap();
    assert_eq!(report, VerifyReport { records_checked: 4, first_mismatch: None });

    // An attacker with the database file drops the guard and edits a row.
    sqlx::query("DROP TRIGGER audit_entries_chain_once").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE audit_entries SET actor = 'someone-else' WHERE id = ?")
        .bind(second)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(store.verify().await.unwrap().first_mismatch, Some(second));
    let _ = third;
}

#[tokio::test]
async fn a_tampered_resolution_is_detected_too() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(id, Outcome::Failed, None, Some("refused")).await.unwrap();
    assert_eq!(store.get(id).await.unwrap().unwrap().outcome, "failed");
    sqlx::query("DROP TRIGGER audit_resolutions_no_update").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE audit_resolutions SET outcome = 'applied'").execute(&store.pool).await.unwrap();
    assert_eq!(store.verify().await.unwrap().first_mismatch, Some(id));
}

#[tokio::test]
async fn concurrent_appends_keep_one_chain() {
    let (_dir, store) = store().await;
    let writers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record(&entry(Outcome::Applied)).await.unwrap() })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let report = store.verify().await.unwrap();
    assert_eq!(report, VerifyReport { records_checked: 20, first_mismatch: None });
}

#[tokio::test]
async fn a_resolved_entry_cannot_be_resolved_again() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(id, Outcome::Applied, None, None).await.unwrap();
    assert!(store.resolve(id, Outcome::Failed, None, None).await.is_err());
    assert_eq!(store.get(id).await.unwrap().unwrap().outcome, "applied");
    assert!(store.verify().await.unwrap().is_intact());
}
