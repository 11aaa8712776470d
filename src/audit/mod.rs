//! The audit store: an append-only SQLite log of every change attempted.
mod entry;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

pub use entry::{format_time_ms, Entry, NewEntry, Outcome, Source};

/// How long a write waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("audit store: {0}")]
pub struct AuditError(#[from] sqlx::Error);

#[derive(Clone)]
pub struct AuditStore {
    pool: SqlitePool,
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
        Ok(Self { pool })
    }

    /// Appends an entry and returns its id.
    pub async fn record(&self, entry: &NewEntry) -> Result<i64, AuditError> {
        let row = sqlx::query(
            "INSERT INTO audit_entries (time_ms, actor, actor_groups, source, action, namespace, kind, name,
                summary, before_doc, after_doc, operations, outcome, error, request_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(jiff::Timestamp::now().as_millisecond())
        .bind(&entry.actor)
        .bind(serde_json::to_string(&entry.groups).unwrap_or_else(|_| "[]".into()))
        .bind(entry.source.as_str())
        .bind(&entry.action)
        .bind(&entry.namespace)
        .bind(&entry.kind)
        .bind(&entry.name)
        .bind(&entry.summary)
        .bind(entry.before.as_ref().map(Value::to_string))
        .bind(entry.after.as_ref().map(Value::to_string))
        .bind(entry.operations.to_string())
        .bind(entry.outcome.as_str())
        .bind(&entry.error)
        .bind(&entry.request_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get(0))
    }

    /// Resolves a pending entry to its final outcome.
    pub async fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        after: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        sqlx::query("UPDATE audit_entries SET outcome = ?, after_doc = ?, error = ? WHERE id = ? AND outcome = 'pending'")
            .bind(outcome.as_str())
            .bind(after.map(Value::to_string))
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The newest entries first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let rows = sqlx::query("SELECT * FROM audit_entries ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
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
            "SELECT * FROM audit_entries WHERE namespace = ? AND kind = ? AND name = ? AND action LIKE ? || '%'
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
        let rows = sqlx::query("SELECT * FROM audit_entries WHERE outcome = 'pending' ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(entry_from_row).collect())
    }

    /// One entry by id.
    pub async fn get(&self, id: i64) -> Result<Option<Entry>, AuditError> {
        let row = sqlx::query("SELECT * FROM audit_entries WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(entry_from_row))
    }

    /// Succeeds when a write could be made now (takes and releases the write lock).
    pub async fn check_writable(&self) -> Result<(), AuditError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        sqlx::query("ROLLBACK").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Entry {
    let document = |column: &str| {
        row.get::<Option<String>, _>(column)
            .and_then(|text| serde_json::from_str(&text).ok())
    };
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
    }
}

#[cfg(test)]
mod tests;
