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
    assert_eq!(stored.outcome, Outcome::Applied);
    assert_eq!(stored.after, Some(after));
    assert_eq!(stored.before, Some(serde_json::json!({"spec": {"replicas": 1}})));
    assert_eq!(stored.groups, vec!["team-reco".to_string()]);
    assert!(store.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn summaries_are_the_search_without_documents() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(id, Outcome::Applied, Some(&serde_json::json!({"spec": {}})), None).await.unwrap();
    store.record(&entry(Outcome::Denied)).await.unwrap();
    let filter = Filter { outcome: Some("applied".into()), ..Filter::default() };
    let full = store.search(&filter, None, 10).await.unwrap();
    let summaries = store.search_summaries(&filter, None, 10).await.unwrap();
    assert_eq!(summaries.len(), 1);
    assert!(full[0].before.is_some() && full[0].after.is_some());
    let without_documents = Entry { before: None, after: None, operations: serde_json::Value::Null, ..full[0].clone() };
    assert_eq!(summaries[0], without_documents, "every other column as the full search has it");
}

#[tokio::test]
async fn a_visibility_filter_keeps_only_the_namespaces_and_names_given() {
    let (_dir, store) = store().await;
    let about = |namespace: &str, kind: &str, name: &str| NewEntry {
        namespace: namespace.into(),
        kind: kind.into(),
        name: name.into(),
        ..entry(Outcome::Denied)
    };
    let reco = store.record(&about("tutorial", "Deployment", "recommendation-v2")).await.unwrap();
    store.record(&about("tutorial", "Deployment", "preference-v1")).await.unwrap();
    store.record(&about("tutorial", "Namespace", "recommendation")).await.unwrap();
    let shop = store.record(&about("shop", "Namespace", "shop")).await.unwrap();
    store.record(&about("secret", "VirtualService", "recommendation")).await.unwrap();
    let visible = vec![
        VisibleNamespace {
            namespace: "tutorial".into(),
            names: Some(vec!["recommendation-v2".into(), "recommendation".into()]),
        },
        VisibleNamespace { namespace: "shop".into(), names: None },
    ];
    let filter = Filter { visible: Some(visible), ..Filter::default() };
    let ids: Vec<i64> = store.search_summaries(&filter, None, 10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(ids, [shop, reco], "not another host, not the namespace object, not another namespace");
    assert_eq!(store.batch_within(&filter, None, 10, usize::MAX).await.unwrap(), 2);
    let nothing = Filter { visible: Some(Vec::new()), ..Filter::default() };
    assert!(store.search(&nothing, None, 10).await.unwrap().is_empty());
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
    assert_eq!(report, VerifyReport { records_checked: 4, first_mismatch: None, ..Default::default() });

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
    assert_eq!(store.get(id).await.unwrap().unwrap().outcome, Outcome::Failed);
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
    assert_eq!(report, VerifyReport { records_checked: 20, first_mismatch: None, ..Default::default() });
}

#[tokio::test]
async fn concurrent_appends_each_get_their_own_id_in_chain_order() {
    let (_dir, store) = store().await;
    let writers: Vec<_> = (0..300)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record(&entry(Outcome::Applied)).await.unwrap() })
        })
        .collect();
    let mut ids = Vec::new();
    for writer in writers {
        ids.push(writer.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (1..=300).collect::<Vec<i64>>(), "one id each, none skipped");
    let seqs: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, chain_seq FROM audit_entries ORDER BY id").fetch_all(&store.pool).await.unwrap();
    assert!(seqs.iter().all(|(id, seq)| id == seq), "ids are handed out in chain order");
    assert_eq!(
        store.verify().await.unwrap(),
        VerifyReport { records_checked: 300, first_mismatch: None, ..Default::default() }
    );
}

type Append = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), AuditError>> + Send>>;

/// Holds the writers' turn so that the appends started meanwhile queue up and are written
/// as one group once it is released.
async fn in_one_group(store: &AuditStore, appends: Vec<Append>) -> Vec<Result<(), AuditError>> {
    let turn = store.turn.clone().lock_owned().await;
    // The writer takes the first append queued alone and waits for the turn; the rest queue
    // behind it and go into the next transaction together.
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.record(&entry(Outcome::Applied)).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let tasks: Vec<_> = appends.into_iter().map(tokio::spawn).collect();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(turn);
    first.await.unwrap().unwrap();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn a_failing_append_in_a_group_fails_alone() {
    let (_dir, store) = store().await;
    let pending = store.record(&entry(Outcome::Pending)).await.unwrap();
    let good = |store: &AuditStore| -> Append {
        let store = store.clone();
        Box::pin(async move { store.record(&entry(Outcome::Applied)).await.map(|_| ()) })
    };
    // Reverting an entry that does not exist breaks the foreign key: that insert fails.
    let bad: Append = {
        let store = store.clone();
        let entry = NewEntry { reverts: Some(9_999), ..entry(Outcome::Applied) };
        Box::pin(async move { store.record(&entry).await.map(|_| ()) })
    };
    // A resolution of an entry that is not pending writes nothing.
    let not_pending: Append = {
        let store = store.clone();
        Box::pin(async move { store.resolve(9_998, Outcome::Applied, None, None).await })
    };
    let resolve: Append = {
        let store = store.clone();
        Box::pin(async move { store.resolve(pending, Outcome::Applied, None, None).await })
    };
    let results = in_one_group(&store, vec![good(&store), bad, good(&store), not_pending, resolve, good(&store)]).await;
    let failed: Vec<usize> = results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(i, _)| i).collect();
    assert_eq!(failed, vec![1, 3], "only the bad append and the refused resolution fail: {results:?}");
    assert_eq!(store.get(pending).await.unwrap().unwrap().outcome, Outcome::Applied);
    // The pending entry, the first append outside the group, three good appends, one resolution.
    assert_eq!(
        store.verify().await.unwrap(),
        VerifyReport { records_checked: 6, first_mismatch: None, ..Default::default() }
    );
    assert_eq!(store.recent(10).await.unwrap().len(), 5, "nothing of the failed append was kept");
}

#[tokio::test]
async fn an_unwritable_database_fails_every_append_in_the_group_and_keeps_nothing() {
    let (_dir, store) = store().await;
    store.record(&entry(Outcome::Applied)).await.unwrap();
    // Another connection holds SQLite's write lock past the busy timeout: no commit can happen.
    let mut blocker = store.pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *blocker).await.unwrap();
    let appends: Vec<_> = (0..5)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.record(&entry(Outcome::Applied)).await })
        })
        .collect();
    for append in appends {
        assert!(append.await.unwrap().is_err(), "no Ok without a commit");
    }
    sqlx::query("ROLLBACK").execute(&mut *blocker).await.unwrap();
    drop(blocker);
    assert_eq!(store.recent(10).await.unwrap().len(), 1);
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert!(store.verify().await.unwrap().is_intact(), "appends work again once the lock is free");
}

#[tokio::test]
async fn a_resolved_entry_cannot_be_resolved_again() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(id, Outcome::Applied, None, None).await.unwrap();
    assert!(store.resolve(id, Outcome::Failed, None, None).await.is_err());
    assert_eq!(store.get(id).await.unwrap().unwrap().outcome, Outcome::Applied);
    assert!(store.verify().await.unwrap().is_intact());
}

fn far_future() -> i64 {
    jiff::Timestamp::now().as_millisecond() + 60_000
}

#[tokio::test]
async fn retention_archives_a_verifiable_prefix_and_keeps_pending_entries() {
    let (dir, store) = store().await;
    for _ in 0..3 {
        store.record(&entry(Outcome::Applied)).await.unwrap();
    }
    let pending = store.record(&entry(Outcome::Pending)).await.unwrap();
    let newest = store.record(&entry(Outcome::Applied)).await.unwrap();

    let first = store.archive_older_than(far_future(), dir.path(), None).await.unwrap();
    assert_eq!((first.records, first.through_seq), (3, 3), "stops before the pending entry");
    let file = first.file.clone().unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
    let remaining: Vec<i64> = store.recent(10).await.unwrap().iter().map(|e| e.id).collect();
    assert_eq!(remaining, vec![newest, pending]);
    assert_eq!(
        store.verify().await.unwrap(),
        VerifyReport { records_checked: 2, first_mismatch: None, ..Default::default() }
    );
    let continued = store.verify_after(verify_archives(std::slice::from_ref(&file)).unwrap().unwrap()).await.unwrap();
    assert_eq!(
        continued,
        VerifyReport { records_checked: 5, first_mismatch: None, ..Default::default() },
        "archive + database"
    );
    let delete = sqlx::query("DELETE FROM audit_entries").execute(&store.pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"), "only the archiver deletes");

    store.resolve(pending, Outcome::Applied, None, None).await.unwrap();
    let second = store.archive_older_than(far_future(), dir.path(), None).await.unwrap();
    assert_eq!((second.records, second.through_seq), (3, 6), "the pending entry leaves with its resolution");
    assert!(store.recent(10).await.unwrap().is_empty());
    let next = store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(next, newest + 1, "ids continue after archived entries");
    let files = [file, second.file.unwrap()];
    let checker = verify_archives(&files).unwrap().unwrap();
    assert_eq!(store.verify_after(checker).await.unwrap().first_mismatch, None);
    assert!(store.verify().await.unwrap().is_intact());
    assert_eq!(store.archive_older_than(0, dir.path(), None).await.unwrap().records, 0, "nothing is old enough");
}

#[tokio::test]
async fn a_tampered_archive_or_database_is_not_archived_and_is_named() {
    let (dir, store) = store().await;
    let first = store.record(&entry(Outcome::Applied)).await.unwrap();
    let second = store.record(&entry(Outcome::Applied)).await.unwrap();
    let report = store.archive_older_than(far_future(), dir.path(), None).await.unwrap();
    let file = report.file.unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"alice\"", "\"mallory\"", 1)).unwrap();
    assert_eq!(verify_archives(&[file]).unwrap().unwrap_err(), first);

    let third = store.record(&entry(Outcome::Applied)).await.unwrap();
    sqlx::query("DROP TRIGGER audit_entries_chain_once").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE audit_entries SET summary = 'nothing happened' WHERE id = ?")
        .bind(third)
        .execute(&store.pool)
        .await
        .unwrap();
    let refused = store.archive_older_than(far_future(), dir.path(), None).await;
    assert!(matches!(refused, Err(ArchiveError::Tampered(id)) if id == third), "{refused:?}");
    assert_eq!(store.get(third).await.unwrap().unwrap().summary, "nothing happened", "evidence kept");
    let _ = second;
}

#[tokio::test]
async fn incremental_verification_follows_appends_and_remembers_a_mismatch() {
    let (_dir, store) = store().await;
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(store.verify_incremental().await.unwrap().records_checked, 1);
    let second = store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(
        store.verify_incremental().await.unwrap(),
        VerifyReport { records_checked: 2, first_mismatch: None, ..Default::default() }
    );
    sqlx::query("DROP TRIGGER audit_entries_chain_once").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE audit_entries SET actor = 'x' WHERE id = ?").bind(second).execute(&store.pool).await.unwrap();
    assert!(store.verify_incremental().await.unwrap().is_intact(), "already verified records wait for a full verify");
    assert_eq!(store.verify().await.unwrap().first_mismatch, Some(second));
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(store.verify_incremental().await.unwrap().first_mismatch, Some(second));
}

#[tokio::test]
async fn resolving_an_entry_that_was_never_pending_fails_without_breaking_the_chain() {
    let (_dir, store) = store().await;
    let denied = store.record(&entry(Outcome::Denied)).await.unwrap();
    assert!(store.resolve(denied, Outcome::Applied, None, None).await.is_err());
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert!(store.verify().await.unwrap().is_intact());
}

/// An unauthenticated client asks `/readyz` as often as it likes: each answer is the kept
/// verdict, and none of them takes SQLite's write lock (which changes need). The verdict
/// still follows the database: a commit the writer could not make says "not writable".
#[tokio::test]
async fn readiness_questions_take_no_write_lock_and_the_verdict_follows_the_writer() {
    let (dir, store) = store().await;
    let probes = store.writability_probes();
    for _ in 0..10_000 {
        assert_eq!(store.writability(), Ok(()));
    }
    assert_eq!(store.writability_probes(), probes, "no probe per question");

    // Another process holds the write lock: the writer's failed transaction is the verdict.
    let other =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("audit.db").display())).await.unwrap();
    let mut holder = other.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut *holder).await.unwrap();
    assert!(store.record(&entry(Outcome::Applied)).await.is_err());
    let verdict = store.writability();
    assert!(verdict.as_ref().is_err_and(|why| why.contains("locked")), "{verdict:?}");
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(store.writability(), Ok(()));
    assert_eq!(store.writability_probes(), probes, "the writer's commits are the evidence, no probe needed");
}

#[tokio::test]
async fn batches_of_large_entries_are_bounded_in_bytes() {
    let (_dir, store) = store().await;
    let large = NewEntry { operations: serde_json::json!(["x".repeat(100_000)]), ..entry(Outcome::Applied) };
    for _ in 0..5 {
        store.record(&large).await.unwrap();
    }
    let all = Filter::default();
    assert_eq!(store.batch_within(&all, None, 1000, 250_000).await.unwrap(), 3, "0, 100 and 200 KB before each");
    assert_eq!(store.batch_within(&all, None, 1000, 1).await.unwrap(), 1, "a large entry is read alone");
    assert_eq!(store.batch_within(&all, None, 2, 10_000_000).await.unwrap(), 2, "never more than the limit");
    assert_eq!(store.batch_within(&all, Some(1), 1000, 1).await.unwrap(), 0, "nothing below the first");
}

/// The database's side of the anchor comparison: the newest record of any kind (here a
/// resolution), and the stored hash at the anchored positions, archived ones aside.
#[tokio::test]
async fn the_chain_state_names_the_newest_record_and_the_hashes_at_anchored_positions() {
    let (dir, store) = store().await;
    store.record(&entry(Outcome::Applied)).await.unwrap();
    let pending = store.record(&entry(Outcome::Pending)).await.unwrap();
    store.resolve(pending, Outcome::Applied, None, None).await.unwrap();
    let state = store.chain_state(None).await.unwrap();
    assert_eq!((state.archived, state.head.seq), (Position::genesis(), 3));

    let anchored = Anchor::new(&Position { seq: 2, hash: "any".into() }, &Position { seq: 1, hash: "x".into() }, None);
    let state = store.chain_state(Some(&anchored)).await.unwrap();
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT hash FROM audit_entries ORDER BY chain_seq").fetch_all(&store.pool).await.unwrap();
    assert_eq!((state.at_anchor, state.at_anchored_archive), (Some(hashes[1].clone()), Some(hashes[0].clone())));

    store.archive_older_than(far_future(), dir.path(), None).await.unwrap();
    let state = store.chain_state(Some(&anchored)).await.unwrap();
    assert_eq!((state.archived.seq, state.head.seq, state.at_anchor), (3, 3, None), "everything archived");
}

#[tokio::test]
async fn the_history_shows_this_process_commits_at_once_and_another_writers_within_a_second() {
    let (dir, store) = store().await;
    let newest = || async { store.search_summaries(&Filter::default(), None, 50).await.unwrap().len() };
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(newest().await, 1);
    assert!(store.verify_incremental().await.unwrap().is_intact());
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(newest().await, 2, "a page kept before this process's commit is not used again");
    assert_eq!(store.verify_incremental().await.unwrap().records_checked, 2);

    let elsewhere = AuditStore::open(&dir.path().join("audit.db")).await.unwrap();
    elsewhere.record(&entry(Outcome::Applied)).await.unwrap();
    tokio::time::sleep(kept::TRUSTED_FOR).await;
    assert_eq!(newest().await, 3, "another writer's entry shows once the kept page is a second old");
    assert_eq!(store.verify_incremental().await.unwrap().records_checked, 3);
}

#[tokio::test]
async fn a_full_verification_replaces_the_kept_verdict() {
    let (_dir, store) = store().await;
    let id = store.record(&entry(Outcome::Applied)).await.unwrap();
    assert!(store.verify_incremental().await.unwrap().is_intact());
    sqlx::query("DROP TRIGGER audit_entries_chain_once").execute(&store.pool).await.unwrap();
    sqlx::query("UPDATE audit_entries SET actor = 'x' WHERE id = ?").bind(id).execute(&store.pool).await.unwrap();
    assert_eq!(store.verify().await.unwrap().first_mismatch, Some(id));
    assert_eq!(store.verify_incremental().await.unwrap().first_mismatch, Some(id), "the page shows it at once");
}

#[tokio::test]
async fn an_objects_history_of_one_kind_of_action_is_its_newest_entries_and_follows_new_ones() {
    let (_dir, store) = store().await;
    let at = |action: &str, name: &str| NewEntry {
        action: action.into(),
        kind: "VirtualService".into(),
        name: name.into(),
        ..entry(Outcome::Applied)
    };
    for action in ["canary.start", "route.update", "canary.promote", "canary/other", "canaryx", "route.update"] {
        store.record(&at(action, "recommendation")).await.unwrap();
    }
    store.record(&at("canary.abort", "preference")).await.unwrap();
    let history = store.for_object("tutorial", "VirtualService", "recommendation", "canary.", 10).await.unwrap();
    let actions: Vec<&str> = history.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["canary.promote", "canary.start"], "newest first, only this object's canary steps");
    let newest = store.for_object("tutorial", "VirtualService", "recommendation", "canary.", 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    store.record(&at("canary.finish", "recommendation")).await.unwrap();
    let history = store.for_object("tutorial", "VirtualService", "recommendation", "canary.", 10).await.unwrap();
    assert_eq!(history[0].action, "canary.finish", "a kept answer gives way to a new entry");
}

/// A log signalbox created has exactly the migrations' schema; one whose view was
/// redefined in the file is reported, and readers still see every entry.
#[tokio::test]
async fn the_files_schema_is_compared_with_the_migrations_and_readers_ignore_its_view() {
    let (dir, store) = store().await;
    store.record(&entry(Outcome::Applied)).await.unwrap();
    assert_eq!(store.schema_problems().await.unwrap(), Vec::<String>::new());
    assert!(store.verify().await.unwrap().is_intact());

    let other =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("audit.db").display())).await.unwrap();
    sqlx::raw_sql(
        "DROP VIEW audit_view; CREATE VIEW audit_view AS SELECT * FROM audit_entries WHERE actor <> 'alice';",
    )
    .execute(&other)
    .await
    .unwrap();
    other.close().await;
    assert_eq!(store.search(&Filter::default(), None, 10).await.unwrap().len(), 1, "read from the base tables");
    let report = store.verify().await.unwrap();
    assert!(!report.is_intact(), "{report:?}");
    assert!(report.problems.iter().any(|p| p.contains("view audit_view")), "{report:?}");
}

/// With nothing written, the one background checker finds out: a database another process
/// keeps locked is reported not writable within a probe interval (and a busy timeout).
#[tokio::test]
async fn with_no_writes_the_background_checker_probes_once_per_interval() {
    let (dir, store) = store().await;
    let other =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("audit.db").display())).await.unwrap();
    let mut holder = other.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut *holder).await.unwrap();
    let started = std::time::Instant::now();
    let deadline = writability::CHECK_EVERY * 2 + BUSY_TIMEOUT;
    while store.writability().is_ok() && started.elapsed() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let verdict = store.writability();
    assert!(verdict.as_ref().is_err_and(|why| why.contains("locked")), "{verdict:?} after {:?}", started.elapsed());
    let probes = store.writability_probes();
    assert!((1..=2).contains(&probes), "one probe per interval, not a loop: {probes}");
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
}

#[tokio::test]
async fn the_last_state_of_an_object_is_from_the_newest_entry_that_wrote_it_whatever_it_is_filed_under() {
    let (_dir, store) = store().await;
    let object = |kind: &str, marker: u32| serde_json::json!({"kind": kind, "metadata": {"name": "recommendation"}, "spec": {"marker": marker}});
    let operation = |kind: &str| serde_json::json!({"kind": kind, "namespace": "tutorial", "name": "recommendation"});
    let routing = |kind: &str, operations: Vec<&str>, after: Vec<Option<serde_json::Value>>| NewEntry {
        action: "route.update".into(),
        kind: kind.into(),
        name: "recommendation".into(),
        operations: serde_json::Value::Array(operations.into_iter().map(operation).collect()),
        after: Some(serde_json::json!({"kind": "List", "items": after})),
        ..entry(Outcome::Applied)
    };
    // Both written, filed under the VirtualService; then the VirtualService alone deleted.
    let both = vec![Some(object("DestinationRule", 1)), Some(object("VirtualService", 1))];
    store.record(&routing("VirtualService", vec!["DestinationRule", "VirtualService"], both)).await.unwrap();
    store.record(&routing("VirtualService", vec!["VirtualService"], vec![None])).await.unwrap();
    // A refused attempt's excerpt is no JSON and counts for nothing.
    let refused =
        NewEntry { operations: serde_json::json!("[{\"kind\": \"DestinationRule\" …"), ..entry(Outcome::Denied) };
    store.record(&refused).await.unwrap();
    // An external change is filed under its object and records no operations.
    let external = NewEntry {
        source: Source::External,
        action: "external.update".into(),
        kind: "Deployment".into(),
        operations: serde_json::json!([]),
        after: Some(serde_json::json!({"kind": "Deployment", "metadata": {"name": "recommendation-v2"}})),
        ..entry(Outcome::Applied)
    };
    store.record(&external).await.unwrap();

    let rules = store.last_states("tutorial", "DestinationRule").await.unwrap();
    assert_eq!(
        rules.get("recommendation"),
        Some(&Some(object("DestinationRule", 1))),
        "written by a VirtualService entry"
    );
    let services = store.last_states("tutorial", "VirtualService").await.unwrap();
    assert_eq!(services.get("recommendation"), Some(&None), "deleted by the newest entry");
    let deployments = store.last_states("tutorial", "Deployment").await.unwrap();
    assert!(deployments.get("recommendation-v2").is_some_and(Option::is_some), "{deployments:?}");

    // A proposal records a plan and a rejection a decision: neither is a state of the object.
    let proposed = NewEntry {
        action: "proposal.create".into(),
        ..routing("VirtualService", vec!["DestinationRule"], vec![Some(object("DestinationRule", 2))])
    };
    store.record(&proposed).await.unwrap();
    let rejected = NewEntry {
        action: "proposal.reject".into(),
        kind: "DestinationRule".into(),
        name: "recommendation".into(),
        operations: serde_json::json!([]),
        after: None,
        ..entry(Outcome::Applied)
    };
    store.record(&rejected).await.unwrap();
    let rules = store.last_states("tutorial", "DestinationRule").await.unwrap();
    assert_eq!(rules.get("recommendation"), Some(&Some(object("DestinationRule", 1))), "proposals wrote nothing");
}
