//! Group commit: one task writes every chained record. Appends that arrive while a commit is
//! being synced wait in a queue and go into the next transaction together, so many appends
//! share one fsync instead of paying one each. Each caller still gets its own id, and only
//! once the transaction holding its record has committed (with `synchronous=FULL`: is on
//! disk). Records are chained in the order they were queued.
//!
//! One fsync'd record per change: a transaction of follow-ups only (an outcome, when the
//! proxies had a change) commits without waiting for the disk (`synchronous=NORMAL`); the
//! next entry's commit syncs them with it. The entry they follow was on disk before its
//! change was applied, and startup resolves an entry whose outcome a crash lost by comparing
//! with the cluster (`change::recover`), so a lost follow-up is never a lost change.
use std::sync::Arc;

use sqlx::SqlitePool;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::chain::{self, EntryContent, PropagationContent, ResolutionContent};
use super::kept::Revision;
use super::writability::Writability;
use super::{AuditError, finish, head, immediate, set_head};

/// Most records in one transaction: bounds how long one commit holds SQLite's write lock.
const MAX_BATCH: usize = 256;
/// Appends waiting beyond this make their callers wait to queue (back-pressure).
const QUEUE: usize = 4096;

/// A record to chain and insert; the writer fills in its id (entries) and time.
#[derive(Debug)]
pub(super) enum Record {
    Entry(Box<EntryContent>),
    Resolution(ResolutionContent),
    Propagation(PropagationContent),
}

/// What the caller learns: the entry's id once durable, or why nothing was written.
type Reply = oneshot::Sender<Result<i64, AuditError>>;

struct Request {
    record: Record,
    reply: Reply,
}

/// The queue into the writer task.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Request>,
    /// The chain position of the last committed record (0 until this writer commits one).
    committed: watch::Receiver<i64>,
}

impl Writer {
    /// Starts the writer task. It takes `turn` for each transaction, so other writers in
    /// this process (retention, startup chaining) never interleave with a batch.
    /// Each transaction's outcome is what `/readyz` reports (`writability`).
    pub(super) fn start(pool: SqlitePool, turn: Arc<Mutex<()>>, revision: Revision, writability: Writability) -> Self {
        let (queue, mut requests) = mpsc::channel::<Request>(QUEUE);
        let (head, committed) = watch::channel(0);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let batch = std::mem::take(&mut batch);
                if let Some(seq) = write_batch(&pool, &turn, &revision, &writability, batch).await {
                    head.send_replace(seq);
                }
            }
        });
        Self { queue, committed }
    }

    /// Whether any handle of this writer (any clone of its store) is still held: background
    /// tasks that must not keep the store alive ask this.
    pub(super) fn liveness(&self) -> impl Fn() -> bool + Send + 'static {
        let queue = self.queue.downgrade();
        move || queue.upgrade().is_some()
    }

    /// Follows the chain position of the last committed record (the anchor writer waits on it).
    pub(super) fn committed(&self) -> watch::Receiver<i64> {
        self.committed.clone()
    }

    /// Queues `record` and waits until it is durable; returns the entry's id (for a
    /// resolution, the id of the entry it resolves).
    pub(super) async fn append(&self, record: Record) -> Result<i64, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request { record, reply }).await.map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

/// The writer task is gone (its runtime shut down, or it panicked): nothing can be written.
fn writer_gone() -> AuditError {
    AuditError::from(sqlx::Error::WorkerCrashed)
}

/// How a transaction attempt failed.
struct BatchFailure {
    /// The request whose statement failed; None when the transaction as a whole did.
    culprit: Option<usize>,
    error: AuditError,
}

impl BatchFailure {
    fn whole(error: impl Into<AuditError>) -> Self {
        Self { culprit: None, error: error.into() }
    }
}

/// Writes `requests` in one transaction and answers each. If one request's statement
/// fails, SQLite may have rolled the transaction back (a full disk, an I/O error), so the
/// whole attempt is rolled back, that request gets its error, and the others are tried
/// again in a new transaction: one bad record never costs the others theirs, and no
/// caller hears Ok for a record that was not committed. Returns the chain position after
/// the commit, if one was made.
async fn write_batch(
    pool: &SqlitePool,
    turn: &Mutex<()>,
    revision: &Revision,
    writability: &Writability,
    mut requests: Vec<Request>,
) -> Option<i64> {
    while !requests.is_empty() {
        match try_batch(pool, turn, &requests).await {
            Ok((results, seq)) => {
                // Before anyone hears Ok: a page read after that must not be an older one kept.
                revision.bump();
                writability.observed(Ok(()));
                for (request, result) in requests.into_iter().zip(results) {
                    // The caller may have stopped waiting; its record is written all the same.
                    let _ = request.reply.send(result);
                }
                return Some(seq);
            }
            Err(BatchFailure { culprit: Some(index), error }) => {
                let _ = requests.remove(index).reply.send(Err(error));
            }
            Err(BatchFailure { culprit: None, error }) => {
                writability.observed(Err(error.to_string()));
                for request in requests {
                    let _ = request.reply.send(Err(error.clone()));
                }
                return None;
            }
        }
    }
    None
}

/// One transaction for `requests`, in order. A resolution of an entry that is not pending
/// writes nothing and is refused on its own; any other failure fails the attempt.
async fn try_batch(
    pool: &SqlitePool,
    turn: &Mutex<()>,
    requests: &[Request],
) -> Result<(Vec<Result<i64, AuditError>>, i64), BatchFailure> {
    let _turn = turn.lock().await;
    let mut conn = pool.acquire().await.map_err(BatchFailure::whole)?;
    let follow_ups_only = requests.iter().all(|request| !matches!(request.record, Record::Entry(_)));
    if follow_ups_only {
        sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await.map_err(BatchFailure::whole)?;
    }
    let written = write_all(&mut conn, requests).await;
    if follow_ups_only {
        // Every other transaction on this pooled connection waits for the disk again.
        if let Err(error) = sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await {
            conn.detach();
            tracing::error!(%error, "the audit writer's connection could not be set back to synchronous=FULL; dropped");
        }
    }
    written
}

async fn write_all(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>,
    requests: &[Request],
) -> Result<(Vec<Result<i64, AuditError>>, i64), BatchFailure> {
    let conn = &mut **conn;
    immediate(&mut *conn).await.map_err(BatchFailure::whole)?;
    let appended = async {
        let mut tip = Tip::read(&mut *conn).await.map_err(BatchFailure::whole)?;
        let mut results = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            let result = match &request.record {
                Record::Entry(content) => insert_entry(&mut *conn, &mut tip, content).await,
                Record::Resolution(content) => insert_resolution(&mut *conn, &mut tip, content).await,
                Record::Propagation(content) => insert_propagation(&mut *conn, &mut tip, content).await,
            };
            match result {
                Ok(id) => results.push(Ok(id)),
                Err(Refusal::NotPending) => results.push(Err(AuditError::from(sqlx::Error::RowNotFound))),
                Err(Refusal::Failed(error)) => return Err(BatchFailure { culprit: Some(index), error }),
            }
        }
        tip.store(&mut *conn).await.map_err(BatchFailure::whole)?;
        Ok((results, tip.seq))
    }
    .await;
    match appended {
        Ok(results) => finish(&mut *conn, Ok(results)).await.map_err(BatchFailure::whole),
        Err(failure) => {
            let _ = finish::<()>(&mut *conn, Err(failure.error.clone())).await;
            Err(failure)
        }
    }
}

/// The end of the chain and the next entry id, carried through a batch.
struct Tip {
    seq: i64,
    hash: String,
    next_id: i64,
}

impl Tip {
    async fn read(conn: &mut sqlx::SqliteConnection) -> Result<Self, AuditError> {
        let (seq, hash) = head(conn).await?;
        // Ids continue after archived entries, so an id names one entry forever.
        let next_id: i64 = sqlx::query_scalar(
            "SELECT MAX(COALESCE((SELECT MAX(id) FROM audit_entries), 0),
                        COALESCE((SELECT MAX(max_entry_id) FROM audit_archives), 0)) + 1",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self { seq, hash, next_id })
    }

    async fn store(&self, conn: &mut sqlx::SqliteConnection) -> Result<(), AuditError> {
        set_head(conn, self.seq, &self.hash).await
    }
}

enum Refusal {
    /// A resolution for an entry that is not pending, or a second propagation record for an
    /// entry: nothing was written.
    NotPending,
    Failed(AuditError),
}

impl From<sqlx::Error> for Refusal {
    fn from(error: sqlx::Error) -> Self {
        Refusal::Failed(error.into())
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn insert_entry(
    conn: &mut sqlx::SqliteConnection,
    tip: &mut Tip,
    content: &EntryContent,
) -> Result<i64, Refusal> {
    let content = EntryContent { id: tip.next_id, time_ms: now_ms(), ..content.clone() };
    let hash = chain::link(&tip.hash, &content.canonical());
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
    .bind(tip.seq + 1)
    .bind(&tip.hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    tip.seq += 1;
    tip.hash = hash;
    tip.next_id += 1;
    Ok(content.id)
}

async fn insert_resolution(
    conn: &mut sqlx::SqliteConnection,
    tip: &mut Tip,
    content: &ResolutionContent,
) -> Result<i64, Refusal> {
    let content = ResolutionContent { time_ms: now_ms(), ..content.clone() };
    let hash = chain::link(&tip.hash, &content.canonical());
    let inserted = sqlx::query(
        "INSERT INTO audit_resolutions (entry_id, time_ms, outcome, after_doc, error, chain_seq, prev_hash, hash)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
         WHERE EXISTS (SELECT 1 FROM audit_entries WHERE id = ?1 AND outcome = 'pending')
           AND NOT EXISTS (SELECT 1 FROM audit_resolutions WHERE entry_id = ?1)",
    )
    .bind(content.entry_id)
    .bind(content.time_ms)
    .bind(&content.outcome)
    .bind(&content.after_doc)
    .bind(&content.error)
    .bind(tip.seq + 1)
    .bind(&tip.hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    // Nothing inserted (no such entry, not pending, or already resolved): the tip must not move past a record that
    // does not exist, or the chain would break.
    if inserted.rows_affected() == 0 {
        return Err(Refusal::NotPending);
    }
    tip.seq += 1;
    tip.hash = hash;
    Ok(content.entry_id)
}

/// A propagation record for an applied entry that has none yet (else nothing is written).
async fn insert_propagation(
    conn: &mut sqlx::SqliteConnection,
    tip: &mut Tip,
    content: &PropagationContent,
) -> Result<i64, Refusal> {
    let content = PropagationContent { time_ms: now_ms(), ..content.clone() };
    let hash = chain::link(&tip.hash, &content.canonical());
    let inserted = sqlx::query(
        "INSERT INTO audit_propagations (entry_id, time_ms, summary, detail, chain_seq, prev_hash, hash)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
         WHERE EXISTS (SELECT 1 FROM audit_entries e LEFT JOIN audit_resolutions r ON r.entry_id = e.id
                       WHERE e.id = ?1 AND COALESCE(r.outcome, e.outcome) = 'applied')
           AND NOT EXISTS (SELECT 1 FROM audit_propagations WHERE entry_id = ?1)",
    )
    .bind(content.entry_id)
    .bind(content.time_ms)
    .bind(&content.summary)
    .bind(&content.detail)
    .bind(tip.seq + 1)
    .bind(&tip.hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Refusal::NotPending);
    }
    tip.seq += 1;
    tip.hash = hash;
    Ok(content.entry_id)
}
