//! The audit store: an append-only, hash-chained SQLite log of every change attempted.
mod chain;
mod entry;
pub mod export;
mod last_state;
mod retention;
mod verify;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use chain::{ChainedRecord, Checker, GENESIS as CHAIN_GENESIS, VerifyReport};
pub use entry::{Entry, NewEntry, Outcome, Source, format_time_ms};
pub use retention::{ArchiveError, ArchiveReport, verify_archives};

use chain::{EntryContent, GENESIS, ResolutionContent};
use verify::Checkpoint;

/// How long a write waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the history can be narrowed to; empty fields match everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Filter {
    pub namespace: Option<String>,
    /// The object's name (a host, a Deployment, a namespace).
    pub object: Option<String>,
    pub actor: Option<String>,
    /// An action or its prefix: `route.` matches every routing change.
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub source: Option<String>,
    #[serde(skip)]
    pub from_ms: Option<i64>,
    #[serde(skip)]
    pub to_ms: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
#[error("audit store: {0}")]
pub struct AuditError(#[from] sqlx::Error);

#[derive(Clone)]
pub struct AuditStore {
    pool: SqlitePool,
    /// Where the last verification stopped (see `verify.rs`).
    checkpoint: std::sync::Arc<tokio::sync::Mutex<Option<Checkpoint>>>,
    /// Appends queue here rather than on SQLite's write lock: a writer refused by
    /// `BEGIN IMMEDIATE` sleeps in SQLite's busy handler (milliseconds at a time), which
    /// caps concurrent appends far below what one synced commit after another allows.
    /// `BEGIN IMMEDIATE` still guards against other processes.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl AuditStore {
    /// Opens (creating if needed) the database file and runs the embedded migrations.
    pub async fn open(path: &Path) -> Result<Self, AuditError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a change is applied only after its audit entry is on disk, power loss included.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await.map_err(sqlx::Error::from)?;
        let store = Self { pool, checkpoint: Default::default(), writer: Default::default() };
        store.chain_unchained_entries().await?;
        Ok(store)
    }

    /// Chains entries written before the chain existed (migration 0002), in id order.
    async fn chain_unchained_entries(&self) -> Result<(), AuditError> {
        let _turn = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        immediate(&mut conn).await?;
        let result = async {
            let unchained: Vec<EntryContent> =
                sqlx::query_as("SELECT * FROM audit_entries WHERE hash IS NULL ORDER BY id")
                    .fetch_all(&mut *conn)
                    .await?;
            let (mut seq, mut hash) = head(&mut conn).await?;
            for entry in unchained {
                seq += 1;
                let next = chain::link(&hash, &entry.canonical());
                sqlx::query("UPDATE audit_entries SET chain_seq = ?, prev_hash = ?, hash = ? WHERE id = ?")
                    .bind(seq)
                    .bind(&hash)
                    .bind(&next)
                    .bind(entry.id)
                    .execute(&mut *conn)
                    .await?;
                hash = next;
            }
            set_head(&mut conn, seq, &hash).await
        }
        .await;
        finish(&mut conn, result).await
    }

    /// Appends an entry, chained, and returns its id. Appends are serialized by SQLite's
    /// write lock (`BEGIN IMMEDIATE`), so concurrent writers never fork the chain.
    pub async fn record(&self, entry: &NewEntry) -> Result<i64, AuditError> {
        let _turn = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        immediate(&mut conn).await?;
        let result = async {
            // Ids continue after archived entries, so an id names one entry forever.
            let id: i64 = sqlx::query_scalar(
                "SELECT MAX(COALESCE((SELECT MAX(id) FROM audit_entries), 0),
                            COALESCE((SELECT MAX(max_entry_id) FROM audit_archives), 0)) + 1",
            )
            .fetch_one(&mut *conn)
            .await?;
            let content = EntryContent {
                id,
                time_ms: jiff::Timestamp::now().as_millisecond(),
                actor: entry.actor.clone(),
                actor_groups: serde_json::to_string(&entry.groups).unwrap_or_else(|_| "[]".into()),
                source: entry.source.as_str().into(),
                action: entry.action.clone(),
                namespace: entry.namespace.clone(),
                kind: entry.kind.clone(),
                name: entry.name.clone(),
                summary: entry.summary.clone(),
                before_doc: entry.before.as_ref().map(Value::to_string),
                after_doc: entry.after.as_ref().map(Value::to_string),
                operations: entry.operations.to_string(),
                outcome: entry.outcome.as_str().into(),
                error: entry.error.clone(),
                request_id: entry.request_id.clone(),
                reverts: entry.reverts,
            };
            let (seq, prev) = head(&mut conn).await?;
            let hash = chain::link(&prev, &content.canonical());
            sqlx::query(
                "INSERT INTO audit_entries (id, time_ms, actor, actor_groups, source, action, namespace, kind, name,
                    summary, before_doc, after_doc, operations, outcome, error, request_id, reverts, chain_seq, prev_hash, hash)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(content.id)
            .bind(content.time_ms)
            .bind(&content.actor)
            .bind(&content.actor_groups)
            .bind(&content.source)
            .bind(&content.action)
            .bind(&content.namespace)
            .bind(&content.kind)
            .bind(&content.name)
            .bind(&content.summary)
            .bind(&content.before_doc)
            .bind(&content.after_doc)
            .bind(&content.operations)
            .bind(&content.outcome)
            .bind(&content.error)
            .bind(&content.request_id)
            .bind(content.reverts)
            .bind(seq + 1)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut *conn)
            .await?;
            set_head(&mut conn, seq + 1, &hash).await?;
            Ok(id)
        }
        .await;
        finish(&mut conn, result).await
    }

    /// Records the outcome of a pending entry as a chained record of its own.
    pub async fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        after: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        let _turn = self.writer.lock().await;
        let mut conn = self.pool.acquire().await?;
        immediate(&mut conn).await?;
        let result = async {
            let content = ResolutionContent {
                entry_id: id,
                time_ms: jiff::Timestamp::now().as_millisecond(),
                outcome: outcome.as_str().into(),
                after_doc: after.map(Value::to_string),
                error: error.map(String::from),
            };
            let (seq, prev) = head(&mut conn).await?;
            let hash = chain::link(&prev, &content.canonical());
            let inserted = sqlx::query(
                "INSERT INTO audit_resolutions (entry_id, time_ms, outcome, after_doc, error, chain_seq, prev_hash, hash)
                 SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM audit_entries WHERE id = ? AND outcome = 'pending')",
            )
            .bind(content.entry_id)
            .bind(content.time_ms)
            .bind(&content.outcome)
            .bind(&content.after_doc)
            .bind(&content.error)
            .bind(seq + 1)
            .bind(&prev)
            .bind(&hash)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            // Nothing inserted (no such pending entry): the head must not move past a record
            // that does not exist, or the chain would break.
            if inserted.rows_affected() == 0 {
                return Err(AuditError(sqlx::Error::RowNotFound));
            }
            set_head(&mut conn, seq + 1, &hash).await
        }
        .await;
        finish(&mut conn, result).await
    }

    /// Entries matching `filter`, newest first, older than entry `before` when given
    /// (keyset pagination: no OFFSET, so every page costs the same).
    pub async fn search(&self, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let mut query = sqlx::QueryBuilder::new("SELECT * FROM audit_view WHERE 1 = 1");
        let mut equal = |column: &str, value: &Option<String>| {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                query.push(format!(" AND {column} = ")).push_bind(value.to_owned());
            }
        };
        equal("namespace", &filter.namespace);
        equal("name", &filter.object);
        equal("actor", &filter.actor);
        equal("outcome", &filter.outcome);
        equal("source", &filter.source);
        if let Some(action) = filter.action.as_deref().filter(|v| !v.is_empty()) {
            query.push(" AND action LIKE ").push_bind(format!("{action}%"));
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND time_ms >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND time_ms < ").push_bind(to);
        }
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        let rows = query.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// The newest entries first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let rows =
            sqlx::query("SELECT * FROM audit_view ORDER BY id DESC LIMIT ?").bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// The newest entries about one object whose action starts with `action_prefix`.
    pub async fn for_object(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        action_prefix: &str,
        limit: u32,
    ) -> Result<Vec<Entry>, AuditError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_view WHERE namespace = ? AND kind = ? AND name = ? AND action LIKE ? || '%'
             ORDER BY id DESC LIMIT ?",
        )
        .bind(namespace)
        .bind(kind)
        .bind(name)
        .bind(action_prefix)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// Entries whose change may or may not have been applied (a crash between record and apply).
    pub async fn pending(&self) -> Result<Vec<Entry>, AuditError> {
        let rows =
            sqlx::query("SELECT * FROM audit_view WHERE outcome = 'pending' ORDER BY id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// One entry by id.
    pub async fn get(&self, id: i64) -> Result<Option<Entry>, AuditError> {
        let row = sqlx::query("SELECT * FROM audit_view WHERE id = ?").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(entry_from_row))
    }

    /// Succeeds when a write could be made now (takes and releases the write lock).
    pub async fn check_writable(&self) -> Result<(), AuditError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        Ok(())
    }

    /// Writes a consistent copy of the whole log to `path` (which must not exist).
    pub async fn backup(&self, path: &Path) -> Result<(), AuditError> {
        sqlx::query("VACUUM INTO ?").bind(path.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Takes SQLite's write lock now, so the chain head read next is the one we append to.
async fn immediate(conn: &mut sqlx::SqliteConnection) -> Result<(), AuditError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    Ok(())
}

/// Commits on success, rolls back on failure.
async fn finish<T>(conn: &mut sqlx::SqliteConnection, result: Result<T, AuditError>) -> Result<T, AuditError> {
    match result {
        Ok(value) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(value)
        }
        Err(error) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(error)
        }
    }
}

async fn head(conn: &mut sqlx::SqliteConnection) -> Result<(i64, String), AuditError> {
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_chain_head WHERE id = 1").fetch_optional(&mut *conn).await?;
    Ok(head.unwrap_or_else(|| (0, GENESIS.to_owned())))
}

async fn set_head(conn: &mut sqlx::SqliteConnection, seq: i64, hash: &str) -> Result<(), AuditError> {
    sqlx::query("INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash")
        .bind(seq)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Entry {
    let document =
        |column: &str| row.get::<Option<String>, _>(column).and_then(|text| serde_json::from_str(&text).ok());
    Entry {
        id: row.get("id"),
        time_ms: row.get("time_ms"),
        actor: row.get("actor"),
        groups: serde_json::from_str(row.get::<&str, _>("actor_groups")).unwrap_or_default(),
        source: row.get("source"),
        action: row.get("action"),
        namespace: row.get("namespace"),
        kind: row.get("kind"),
        name: row.get("name"),
        summary: row.get("summary"),
        before: document("before_doc"),
        after: document("after_doc"),
        operations: document("operations").unwrap_or(Value::Null),
        outcome: row.get("outcome"),
        error: row.get("error"),
        request_id: row.get("request_id"),
        reverts: row.get("reverts"),
    }
}

#[cfg(test)]
mod tests;
