//! The audit store: an append-only, hash-chained SQLite log of every change attempted.
pub mod anchor;
mod chain;
mod entry;
pub mod export;
mod kept;
mod last_state;
pub mod proposals;
mod retention;
mod schema;
mod verify;
mod writability;
mod writer;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use anchor::{Anchor, AnchorCheck, AnchorKey, AnchorReading, Anchoring, ChainState, Position};
pub use chain::{ChainedRecord, Checker, GENESIS as CHAIN_GENESIS};
pub use entry::{Entry, NewEntry, Outcome, PROPOSAL_ACTIONS, Source, UNRECORDED_ACTION, format_time_ms};
use entry::{EntryRow, SUMMARY_ROW_COLUMNS, SummaryRow};
pub use retention::{ArchiveError, ArchiveReport, ArchiveWitness, verify_archives};
pub use verify::VerifyReport;

use chain::{EntryContent, GENESIS, PropagationContent, ResolutionContent};
use kept::{Kept, Revision};
use verify::Checkpoint;
use writability::Writability;
use writer::{Record, Writer};

/// Each entry with its outcome, resolved or not, and when the proxies had it: the join
/// readers see, written here rather than read from the `audit_view` the file defines
/// (whoever edits the file could redefine that view; `schema.rs`). A subquery, so SQLite
/// plans it as it planned the view.
macro_rules! entries {
    () => {
        "(SELECT e.id, e.time_ms, e.actor, e.actor_groups, e.source, e.action, e.namespace, e.kind, e.name, \
                 e.summary, e.before_doc, e.operations, e.request_id, e.reverts, \
                 COALESCE(r.outcome, e.outcome) AS outcome, \
                 CASE WHEN r.entry_id IS NULL THEN e.after_doc ELSE r.after_doc END AS after_doc, \
                 CASE WHEN r.entry_id IS NULL THEN e.error ELSE r.error END AS error, \
                 p.summary AS propagation \
          FROM audit_entries e \
          LEFT JOIN audit_resolutions r ON r.entry_id = e.id \
          LEFT JOIN audit_propagations p ON p.entry_id = e.id)"
    };
}
pub(crate) use entries;

/// How long a write waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

/// What the history can be narrowed to; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Deserialize)]
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
    /// Only entries the reader may view (None: every entry). Never from a query string.
    #[serde(skip)]
    pub visible: Option<Vec<VisibleNamespace>>,
}

impl Filter {
    /// Matches no entry.
    pub fn nothing() -> Self {
        Self { visible: Some(Vec::new()), ..Self::default() }
    }
}

/// A namespace whose entries a reader may view: all of them, or those about these names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VisibleNamespace {
    pub namespace: String,
    /// None: every entry of the namespace; Some: entries about objects of these names
    /// (never the namespace itself).
    pub names: Option<Vec<String>>,
}

/// A page of the history: its filter, the id it starts before, and its length.
type PageQuestion = (Filter, Option<i64>, u32);

/// An object's entries whose action starts with a prefix: namespace, kind, name, prefix, limit.
type ObjectQuestion = (String, String, String, String, u32);

/// Shared (`Arc`) because one failed group commit fails every append in it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit store: {0}")]
pub struct AuditError(#[source] Arc<sqlx::Error>);

impl From<sqlx::Error> for AuditError {
    fn from(error: sqlx::Error) -> Self {
        Self(Arc::new(error))
    }
}

#[derive(Clone)]
pub struct AuditStore {
    pool: SqlitePool,
    /// Where the last verification stopped (see `verify.rs`).
    checkpoint: Arc<tokio::sync::Mutex<Option<Checkpoint>>>,
    /// Writers in this process take turns here rather than on SQLite's write lock: a writer
    /// refused by `BEGIN IMMEDIATE` sleeps in SQLite's busy handler (milliseconds at a time).
    /// `BEGIN IMMEDIATE` still guards against other processes.
    turn: Arc<tokio::sync::Mutex<()>>,
    /// Appends and resolutions go through the group-commit writer task.
    writer: Writer,
    /// Counts this process's commits: what [`Self::search_summaries`] and
    /// [`Self::verify_incremental`] keep is used again only while it stands still.
    revision: Revision,
    summaries: Arc<Kept<PageQuestion, Arc<Vec<Entry>>>>,
    /// An object's recent entries of one kind of action (the canary page's history).
    object_histories: Arc<Kept<ObjectQuestion, Arc<Vec<Entry>>>>,
    verdict: Arc<Kept<(), VerifyReport>>,
    /// Whether the database takes writes, kept for `/readyz` (`writability.rs`).
    writability: Writability,
    /// The schema signalbox's migrations create (`schema.rs`), built once.
    expected: Arc<tokio::sync::OnceCell<schema::Schema>>,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // The default pings each connection as it is taken from the pool: for SQLite, a
            // round trip to the connection's thread that says nothing (no network to lose),
            // and one more wake-up per query on the history page (issue 15 §3).
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        schema::MIGRATOR.run(&pool).await.map_err(sqlx::Error::from)?;
        let turn = Arc::<tokio::sync::Mutex<()>>::default();
        let revision = Revision::default();
        let writability = Writability::default();
        let writer = Writer::start(pool.clone(), turn.clone(), revision.clone(), writability.clone());
        let store = Self::new(pool, turn, writer, revision, writability.clone());
        store.chain_unchained_entries().await?;
        writability.spawn_checker(store.pool.clone(), store.writer.liveness());
        let problems = store.schema_problems().await?;
        if !problems.is_empty() {
            tracing::error!(?problems, database = %path.display(), "the audit database was tampered with");
        }
        Ok(store)
    }

    /// Opens an existing audit log only to read it (`audit verify`): read-only, no migration,
    /// nothing chained or written, so checking a log never changes it.
    pub async fn open_read_only(path: &Path) -> Result<Self, AuditError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?.filename(path).read_only(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
        let turn = Arc::<tokio::sync::Mutex<()>>::default();
        let revision = Revision::default();
        let writability = Writability::default();
        let writer = Writer::start(pool.clone(), turn.clone(), revision.clone(), writability.clone());
        Ok(Self::new(pool, turn, writer, revision, writability))
    }

    fn new(
        pool: SqlitePool,
        turn: Arc<tokio::sync::Mutex<()>>,
        writer: Writer,
        revision: Revision,
        writability: Writability,
    ) -> Self {
        let (summaries, object_histories, verdict) = Default::default();
        let expected = Arc::default();
        let checkpoint = Default::default();
        Self { pool, checkpoint, turn, writer, revision, summaries, object_histories, verdict, writability, expected }
    }

    /// Chains entries written before the chain existed (migration 0002), in id order.
    async fn chain_unchained_entries(&self) -> Result<(), AuditError> {
        let _turn = self.turn.lock().await;
        let mut conn = self.pool.acquire().await?;
        immediate(&mut conn).await?;
        let result = async {
            let (mut seq, mut hash) = head(&mut conn).await?;
            if seq > 0 {
                // The chain exists, so every legitimate entry is in it: an unchained one was
                // put there behind signalbox's back, and verification must name it, not adopt it.
                return Ok(());
            }
            let unchained: Vec<EntryContent> =
                sqlx::query_as("SELECT * FROM audit_entries WHERE hash IS NULL ORDER BY id")
                    .fetch_all(&mut *conn)
                    .await?;
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
        let chained = finish(&mut conn, result).await;
        self.revision.bump();
        chained
    }

    /// Appends an entry, chained, and returns its id once it is durable. Concurrent
    /// appends are committed together by one writer task (group commit, `writer.rs`), in
    /// the order they arrive, so the chain never forks.
    pub async fn record(&self, entry: &NewEntry) -> Result<i64, AuditError> {
        // Serialised here, in the caller's task, so the writer only hashes and inserts.
        let content = EntryContent {
            id: 0,      // assigned by the writer, in chain order
            time_ms: 0, // stamped by the writer
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
        self.writer.append(Record::Entry(Box::new(content))).await
    }

    /// Records the outcome of a pending entry as a chained record of its own, once durable.
    /// Fails, writing nothing, when the entry is not pending or already resolved.
    pub async fn resolve(
        &self,
        id: i64,
        outcome: Outcome,
        after: Option<&Value>,
        error: Option<&str>,
    ) -> Result<(), AuditError> {
        let content = ResolutionContent {
            entry_id: id,
            time_ms: 0, // stamped by the writer
            outcome: outcome.as_str().into(),
            after_doc: after.map(Value::to_string),
            error: error.map(String::from),
        };
        self.writer.append(Record::Resolution(content)).await.map(|_| ())
    }

    /// Records when the proxies had the applied entry `id` (or that they did not), as a
    /// chained follow-up record of its own, once durable. Fails, writing nothing, when the
    /// entry is not applied or already has one.
    pub async fn record_propagation(&self, id: i64, summary: &str, detail: Option<&Value>) -> Result<(), AuditError> {
        let content = PropagationContent {
            entry_id: id,
            time_ms: 0, // stamped by the writer
            summary: summary.to_owned(),
            detail: detail.map(Value::to_string),
        };
        self.writer.append(Record::Propagation(content)).await.map(|_| ())
    }

    /// Entries matching `filter`, newest first, older than entry `before` when given
    /// (keyset pagination: no OFFSET, so every page costs the same).
    pub async fn search(&self, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Entry>, AuditError> {
        self.search_columns("*", filter, before, limit).await
    }

    /// Like [`Self::search`], without the before/after documents and operations (left empty):
    /// what a listing shows, without reading and parsing a few KiB of JSON per row. A page
    /// read since this process last committed, less than a second ago, is used again.
    pub async fn search_summaries(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Arc<Vec<Entry>>, AuditError> {
        let key = (filter.clone(), before, limit);
        let revision = self.revision.current();
        if let Some(page) = self.summaries.get(&key, revision) {
            return Ok(page);
        }
        let page = Arc::new(self.read_summaries(filter, before, limit).await?);
        self.summaries.keep(key, revision, page.clone());
        Ok(page)
    }

    async fn read_summaries(&self, filter: &Filter, before: Option<i64>, limit: u32) -> Result<Vec<Entry>, AuditError> {
        // The page as one value, a JSON array of rows: sqlx hands each row over from SQLite's
        // thread on its own (a wake-up each) and copies each of its values, which cost the
        // history page more than the query itself (BENCHMARKS.md, issue 15 §3).
        let mut query = sqlx::QueryBuilder::new(format!(
            "SELECT json_group_array(json_array({SUMMARY_ROW_COLUMNS})) FROM \
             (SELECT {SUMMARY_ROW_COLUMNS} FROM {} WHERE 1 = 1",
            entries!()
        ));
        push_conditions(&mut query, filter, before);
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit).push(")");
        let page: String = query.build_query_scalar().fetch_one(&self.pool).await?;
        let mut rows: Vec<SummaryRow> =
            serde_json::from_str(&page).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        // The aggregate's order is SQLite's to choose.
        rows.sort_unstable_by_key(|row| std::cmp::Reverse(row.id()));
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    async fn search_columns(
        &self,
        columns: &str,
        filter: &Filter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Entry>, AuditError> {
        let mut query = sqlx::QueryBuilder::new(format!("SELECT {columns} FROM {} WHERE 1 = 1", entries!()));
        push_conditions(&mut query, filter, before);
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        let rows: Vec<EntryRow> = query.build_query_as().fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    /// How many of the next `limit` entries [`Self::search`] would return fit in `budget`
    /// bytes of documents and operations (at least one, when there is one): lets a reader
    /// of large entries take them in batches of bounded size. SQLite sums the sizes row by
    /// row, without handing the documents over.
    pub async fn batch_within(
        &self,
        filter: &Filter,
        before: Option<i64>,
        limit: u32,
        budget: usize,
    ) -> Result<u32, AuditError> {
        let mut query = sqlx::QueryBuilder::new(concat!(
            "SELECT COUNT(*) FROM (SELECT SUM(size) OVER (ORDER BY id DESC) - size AS preceding FROM (\
             SELECT id, COALESCE(length(CAST(before_doc AS BLOB)), 0) + COALESCE(length(CAST(after_doc AS BLOB)), 0) \
             + COALESCE(length(CAST(operations AS BLOB)), 0) AS size FROM ",
            entries!(),
            " WHERE 1 = 1"
        ));
        push_conditions(&mut query, filter, before);
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        query.push(")) WHERE preceding < ").push_bind(i64::try_from(budget).unwrap_or(i64::MAX));
        let count: i64 = query.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(count as u32)
    }

    /// The newest entries first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Entry>, AuditError> {
        let rows: Vec<EntryRow> = sqlx::query_as(concat!("SELECT * FROM ", entries!(), " ORDER BY id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    /// The newest `limit` entries about one object whose action starts with
    /// `action_prefix` (`canary.`), newest first. The prefix is a range of the action index,
    /// so an object with a long history of other actions costs no scan of it; an answer read
    /// since this process last committed, less than a second ago, is used again.
    pub async fn for_object(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        action_prefix: &str,
        limit: u32,
    ) -> Result<Arc<Vec<Entry>>, AuditError> {
        let key = (namespace.to_owned(), kind.to_owned(), name.to_owned(), action_prefix.to_owned(), limit);
        let revision = self.revision.current();
        if let Some(entries) = self.object_histories.get(&key, revision) {
            return Ok(entries);
        }
        // Every action that starts with the prefix sorts before the prefix with its last
        // character moved one up (`canary.` .. `canary/`).
        let mut after_prefix = action_prefix.to_owned();
        let last = after_prefix.pop().map_or('\u{0}', |c| char::from_u32(c as u32 + 1).unwrap_or(char::MAX));
        after_prefix.push(last);
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM audit_entries INDEXED BY audit_entries_by_action
             WHERE action >= ? AND action < ? AND namespace = ? AND kind = ? AND name = ?
             ORDER BY id DESC LIMIT ?",
        )
        .bind(action_prefix)
        .bind(&after_prefix)
        .bind(namespace)
        .bind(kind)
        .bind(name)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = Vec::with_capacity(ids.len());
        for (id,) in ids {
            entries.extend(self.get(id).await?);
        }
        let entries = Arc::new(entries);
        self.object_histories.keep(key, revision, entries.clone());
        Ok(entries)
    }

    /// signalbox's newest applied change of one object (not an outside one): its id and time.
    pub async fn last_applied_to(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<(i64, i64)>, AuditError> {
        let row: Option<(i64, i64)> = sqlx::query_as(concat!(
            "SELECT id, time_ms FROM ",
            entries!(),
            " WHERE namespace = ? AND kind = ? AND name = ? AND source != 'external' AND outcome = 'applied'
                AND action NOT LIKE 'proposal.%'
              ORDER BY id DESC LIMIT 1"
        ))
        .bind(namespace)
        .bind(kind)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }

    /// The outside changes recorded of an object after entry `after` (oldest first).
    pub async fn outside_changes_after(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Entry>, AuditError> {
        let rows: Vec<EntryRow> = sqlx::query_as(concat!(
            "SELECT * FROM ",
            entries!(),
            " WHERE namespace = ? AND kind = ? AND name = ? AND source = 'external' AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(namespace)
        .bind(kind)
        .bind(name)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    /// When the newest entry about each of `namespaces` was recorded (ms since the epoch;
    /// absent: none), in one query of one index step each: the namespaces list asks for a
    /// thousand at a time.
    pub async fn last_changes_in(&self, namespaces: &[String]) -> Result<HashMap<String, i64>, AuditError> {
        let names = serde_json::to_string(namespaces).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT wanted.value, (SELECT time_ms FROM audit_entries INDEXED BY audit_entries_by_namespace
                                   WHERE namespace = wanted.value ORDER BY id DESC LIMIT 1)
             FROM json_each(?) AS wanted",
        )
        .bind(names)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(|(namespace, time_ms)| Some((namespace, time_ms?))).collect())
    }

    /// Entries whose change may or may not have been applied (a crash between record and apply).
    pub async fn pending(&self) -> Result<Vec<Entry>, AuditError> {
        let rows: Vec<EntryRow> =
            sqlx::query_as(concat!("SELECT * FROM ", entries!(), " WHERE outcome = 'pending' ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(Entry::from).collect())
    }

    /// One entry by id.
    pub async fn get(&self, id: i64) -> Result<Option<Entry>, AuditError> {
        let row: Option<EntryRow> = sqlx::query_as(concat!("SELECT * FROM ", entries!(), " WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Entry::from))
    }

    /// Writes a consistent copy of the whole log to `path` (which must not exist).
    pub async fn backup(&self, path: &Path) -> Result<(), AuditError> {
        sqlx::query("VACUUM INTO ?").bind(path.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(())
    }

    /// Follows the chain position of the last record this process committed (0 before the
    /// first): the anchor writer waits on it.
    pub fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.writer.committed()
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The `AND ...` conditions of `filter`, and `id < before` when given.
fn push_conditions(query: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>, filter: &Filter, before: Option<i64>) {
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
    if let Some(visible) = &filter.visible {
        push_visible(query, visible);
    }
}

/// ` AND (namespace = ? [AND kind <> 'Namespace' AND name IN (...)] OR ...)`; nothing
/// visible matches no entry.
fn push_visible(query: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>, visible: &[VisibleNamespace]) {
    query.push(" AND (0");
    for view in visible {
        query.push(" OR (namespace = ").push_bind(view.namespace.clone());
        if let Some(names) = &view.names {
            query.push(" AND kind <> 'Namespace' AND name IN (");
            let mut list = query.separated(", ");
            for name in names {
                list.push_bind(name.clone());
            }
            list.push_unseparated(")");
        }
        query.push(")");
    }
    query.push(")");
}

/// Takes SQLite's write lock now, so the chain head read next is the one we append to.
async fn immediate(conn: &mut sqlx::SqliteConnection) -> Result<(), AuditError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    Ok(())
}

/// Commits on success, rolls back on failure — and after a failed commit too: the
/// connection goes back to the pool, and one left inside a transaction would hold the
/// write lock for good.
async fn finish<T>(conn: &mut sqlx::SqliteConnection, result: Result<T, AuditError>) -> Result<T, AuditError> {
    let committed = match result {
        Ok(value) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| value).map_err(AuditError::from),
        Err(error) => Err(error),
    };
    if committed.is_err() {
        // Fails harmlessly when SQLite already rolled back (a full disk, an I/O error).
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    committed
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

#[cfg(test)]
mod tests;
