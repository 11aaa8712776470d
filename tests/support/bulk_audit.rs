//! Fills an audit database with many entries directly in SQL (a recursive CTE), for the
//! export test and the history benchmark: millions of appends through the store would
//! take minutes. The rows are not chained (placeholder hashes), so `verify` fails on them;
//! queries, pages and exports do not care.
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Appends `count` entries, one per second of history ending now: 10 actors, 3
/// namespaces, 20 objects, mixed actions and outcomes.
pub async fn insert_entries(database: &Path, count: i64) {
    insert_entries_with_documents(database, count, 0).await;
}

/// Like [`insert_entries`], each entry's before document padded to about `document_bytes`.
pub async fn insert_entries_with_documents(database: &Path, count: i64, document_bytes: i64) {
    let options = SqliteConnectOptions::new().filename(database);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO audit_entries (id, time_ms, actor, actor_groups, source, action, namespace, kind, name,
             summary, before_doc, after_doc, operations, outcome, error, request_id, reverts, chain_seq, prev_hash, hash)
         SELECT i, ?2 - (?1 - i) * 1000, 'user-' || (i % 10), '[]',
                CASE i % 4 WHEN 0 THEN 'ui' WHEN 1 THEN 'api' WHEN 2 THEN 'external' ELSE 'system' END,
                CASE i % 3 WHEN 0 THEN 'route.update' WHEN 1 THEN 'workload.scale' ELSE 'canary.promote' END,
                'team-' || (i % 3), 'VirtualService', 'host-' || (i % 20),
                'host-' || (i % 20) || ': v1 ' || (i % 100) || '% → ' || ((i + 5) % 100) || '%',
                CASE WHEN ?3 = 0 THEN '{\"spec\":{\"replicas\":1}}'
                     ELSE '{\"spec\":{\"replicas\":1},\"padding\":\"' || replace(hex(zeroblob(?3 / 2)), '0', 'p') || '\"}' END,
                '{\"spec\":{\"replicas\":2}}', '[]',
                CASE WHEN i % 50 = 0 THEN 'denied' WHEN i % 25 = 0 THEN 'failed' ELSE 'applied' END,
                NULL, 'req-' || i, NULL, i, 'bulk', 'bulk'
         FROM n",
    )
    .bind(count)
    .bind(now)
    .bind(document_bytes)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT OR REPLACE INTO audit_chain_head (id, seq, hash) VALUES (1, ?, 'bulk')")
        .bind(count)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}
