//! Whether the audit database takes writes, as `/readyz` reports it: a verdict kept here
//! and read without touching SQLite. A probe must take SQLite's write lock (`BEGIN
//! IMMEDIATE`), and `/readyz` is unauthenticated: taking the lock per request would let
//! anyone who can reach the port make changes wait behind probes. So the verdict comes
//! from the writer's own commits (a commit says "writable", a failed transaction "not
//! writable"), and one background checker probes only when the writer has been quiet for
//! [`CHECK_EVERY`]: at most one probe per interval, however many requests ask.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::SqlitePool;

use super::AuditStore;

/// How old the verdict may grow before the checker probes the database itself.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(5);
/// A verdict older than this is not trusted (the checker is stuck, e.g. behind a lock held
/// longer than its busy timeout many times over): not writable, as far as anyone knows.
const STALE_AFTER: Duration = Duration::from_secs(30);

/// The last verdict and when it was reached; shared by the writer, the checker and readers.
#[derive(Clone)]
pub(super) struct Writability {
    verdict: Arc<Mutex<(Instant, Result<(), String>)>>,
    /// Probes taken (each one `BEGIN IMMEDIATE` + `ROLLBACK`).
    probes: Arc<AtomicU64>,
}

impl Default for Writability {
    fn default() -> Self {
        Self { verdict: Arc::new(Mutex::new((Instant::now(), Ok(())))), probes: Arc::default() }
    }
}

impl Writability {
    /// What the writer or the checker found just now.
    pub(super) fn observed(&self, verdict: Result<(), String>) {
        if let Ok(mut kept) = self.verdict.lock() {
            *kept = (Instant::now(), verdict);
        }
    }

    /// The kept verdict, if it is not too old to trust.
    fn current(&self) -> Result<(), String> {
        let Ok(kept) = self.verdict.lock() else { return Err("the writability verdict is unreadable".into()) };
        let age = kept.0.elapsed();
        if age > STALE_AFTER {
            return Err(format!("not checked for {} s", age.as_secs()));
        }
        kept.1.clone()
    }

    fn age(&self) -> Duration {
        self.verdict.lock().map_or(Duration::MAX, |kept| kept.0.elapsed())
    }

    /// Probes the database whenever the verdict is [`CHECK_EVERY`] old, until the pool is
    /// closed or the store dropped (`alive`). One task: concurrent readers never add probes.
    pub(super) fn spawn_checker(&self, pool: SqlitePool, alive: impl Fn() -> bool + Send + 'static) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let wait = CHECK_EVERY.saturating_sub(this.age());
                tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
                if pool.is_closed() || !alive() {
                    return;
                }
                if this.age() >= CHECK_EVERY {
                    this.probes.fetch_add(1, Ordering::Relaxed);
                    let verdict = probe(&pool).await;
                    this.observed(verdict.map_err(|error| error.to_string()));
                }
            }
        });
    }
}

/// Takes and releases the write lock. Runs in the checker's own task, which no client can
/// cancel between `BEGIN IMMEDIATE` and `ROLLBACK`; a connection that could not roll back is
/// closed rather than returned to the pool.
async fn probe(pool: &SqlitePool) -> Result<(), super::AuditError> {
    let mut conn = pool.acquire().await?;
    super::immediate(&mut conn).await?;
    let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    if rolled_back.is_err() {
        conn.close_on_drop();
    }
    rolled_back.map(|_| ()).map_err(super::AuditError::from)
}

impl AuditStore {
    /// Whether the database takes writes, as last seen by the writer or the background
    /// checker (never older than a few seconds). Reads no database: `/readyz` asks this.
    pub fn writability(&self) -> Result<(), String> {
        self.writability.current()
    }

    /// How many times the background checker has taken SQLite's write lock to probe: at
    /// most one per [`CHECK_EVERY`], however often [`Self::writability`] is asked.
    pub fn writability_probes(&self) -> u64 {
        self.writability.probes.load(Ordering::Relaxed)
    }
}
