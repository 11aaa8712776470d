//! Retention: records older than the cut-off move to an NDJSON archive file, with their
//! chain positions and hashes, and only then leave the database. This is the one delete
//! in the audit store; the triggers allow it only while the archiver's guard flag is set
//! inside its own transaction.
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use tokio::io::AsyncWriteExt;

use super::anchor::Position;
use super::chain::Checker;
use super::{AuditError, AuditStore, finish, immediate};

/// Hears of a new archive boundary before any record leaves the database: the anchor
/// (`audit_anchor`), so that an `audit_archives` row it never heard of is evidence of an
/// insertion. When it fails, the archive run stops and nothing is deleted.
pub trait ArchiveWitness: Send + Sync {
    fn witness<'a>(
        &'a self,
        store: &'a AuditStore,
        through: Position,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// What one archive run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The file written, or None when nothing was old enough.
    pub file: Option<PathBuf>,
    pub records: u64,
    /// The last chain position archived.
    pub through_seq: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] AuditError),
    #[error("audit archive: {0}")]
    Io(#[from] std::io::Error),
    /// Archiving would remove evidence of tampering: refuse and keep everything.
    #[error("audit archive refused: the chain does not verify at entry {0}")]
    Tampered(i64),
    /// The new boundary could not be anchored: archiving waits for the next run.
    #[error("audit archive postponed: the archive boundary could not be anchored: {0}")]
    Unwitnessed(String),
}

impl From<sqlx::Error> for ArchiveError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl AuditStore {
    /// Archives every record older than `cutoff_ms` (epoch ms) that can leave without breaking
    /// the chain into a new file in `dir`, synced to disk, then deletes those records.
    ///
    /// Archived records are always a prefix of the chain: the archive ends before the first
    /// record that must stay (a newer entry or resolution, or an entry still pending), and
    /// an entry leaves only together with its resolution.
    ///
    /// With a `witness` (the anchor), the new boundary is anchored first; see [`ArchiveWitness`].
    pub async fn archive_older_than(
        &self,
        cutoff_ms: i64,
        dir: &Path,
        witness: Option<&dyn ArchiveWitness>,
    ) -> Result<ArchiveReport, ArchiveError> {
        let (from_seq, from_hash) = self.archived_through().await?;
        let through = self.archivable_through(cutoff_ms).await?;
        if through <= from_seq {
            return Ok(ArchiveReport { file: None, records: 0, through_seq: from_seq });
        }
        if let Some(witness) = witness {
            let missing = || ArchiveError::Unwitnessed(format!("record {through} is not in the database"));
            let hash = self.hash_at(through).await?.ok_or_else(missing)?;
            witness.witness(self, Position { seq: through, hash }).await.map_err(ArchiveError::Unwitnessed)?;
        }
        let file = dir.join(format!("signalbox-audit-{:010}-{through:010}.ndjson", from_seq + 1));
        let (last_hash, records, max_entry_id) = self.write_archive(&file, from_seq, &from_hash, through).await?;
        self.delete_archived(&file, through, &last_hash, records, max_entry_id).await?;
        tracing::info!(file = %file.display(), records, through_seq = through, "archived old audit records");
        Ok(ArchiveReport { file: Some(file), records, through_seq: through })
    }

    /// The last chain position that may be archived for `cutoff_ms`.
    async fn archivable_through(&self, cutoff_ms: i64) -> Result<i64, ArchiveError> {
        let first_kept: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(seq) FROM (
                 SELECT e.chain_seq AS seq FROM audit_entries e
                 LEFT JOIN audit_resolutions r ON r.entry_id = e.id
                 WHERE e.time_ms >= ?1 OR r.time_ms >= ?1 OR (e.outcome = 'pending' AND r.entry_id IS NULL)
                 UNION ALL
                 SELECT chain_seq FROM audit_resolutions WHERE time_ms >= ?1
                 UNION ALL
                 SELECT chain_seq FROM audit_propagations WHERE time_ms >= ?1)",
        )
        .bind(cutoff_ms)
        .fetch_one(&self.pool)
        .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM audit_chain_head WHERE id = 1), 0)")
            .fetch_one(&self.pool)
            .await?;
        let mut through = first_kept.map_or(head, |seq| seq - 1);
        // Clocks are not monotonic: an old entry may have been resolved after a kept record.
        // Keep such an entry with its resolution.
        loop {
            let split: Option<i64> = sqlx::query_scalar(
                "SELECT MIN(e.chain_seq) FROM (SELECT entry_id, chain_seq FROM audit_resolutions
                                               UNION ALL SELECT entry_id, chain_seq FROM audit_propagations) r
                 JOIN audit_entries e ON e.id = r.entry_id
                 WHERE r.chain_seq > ?1 AND e.chain_seq <= ?1",
            )
            .bind(through)
            .fetch_one(&self.pool)
            .await?;
            match split {
                Some(seq) => through = seq - 1,
                None => return Ok(through),
            }
        }
    }

    /// Writes records `(from_seq, through]` to a new file, checking the chain on the way, and
    /// syncs it. Returns the last hash, the record count and the highest entry id.
    async fn write_archive(
        &self,
        file: &Path,
        from_seq: i64,
        from_hash: &str,
        through: i64,
    ) -> Result<(String, u64, i64), ArchiveError> {
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create_new(file).await?);
        let mut checker = Checker::after(from_seq, from_hash);
        let mut max_entry_id = 0;
        let mut records = self.records_between(from_seq, through);
        while let Some(record) = records.try_next().await? {
            if !checker.check(&record) {
                drop(out);
                let _ = tokio::fs::remove_file(file).await;
                return Err(ArchiveError::Tampered(record.entry_id));
            }
            max_entry_id = max_entry_id.max(record.entry_id);
            let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line).await?;
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        if let Some(parent) = file.parent() {
            tokio::fs::File::open(parent).await?.sync_all().await?;
        }
        Ok((checker.head().to_owned(), checker.checked, max_entry_id))
    }

    /// Deletes the archived records and notes where the chain continues, in one transaction.
    async fn delete_archived(
        &self,
        file: &Path,
        through: i64,
        last_hash: &str,
        records: u64,
        max_entry_id: i64,
    ) -> Result<(), ArchiveError> {
        let _turn = self.turn.lock().await;
        let mut conn = self.pool.acquire().await?;
        // Newer entries may revert archived ones; those references now point into the archive.
        sqlx::query("PRAGMA foreign_keys = OFF").execute(&mut *conn).await?;
        let result = async {
            immediate(&mut conn).await?;
            let deleted = async {
                sqlx::query("UPDATE audit_archive_guard SET archiving = 1 WHERE id = 1").execute(&mut *conn).await?;
                sqlx::query("DELETE FROM audit_resolutions WHERE chain_seq <= ?")
                    .bind(through)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM audit_propagations WHERE chain_seq <= ?")
                    .bind(through)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("DELETE FROM audit_entries WHERE chain_seq <= ?").bind(through).execute(&mut *conn).await?;
                sqlx::query(
                    "INSERT INTO audit_archives (time_ms, file, records, through_seq, through_hash, max_entry_id)
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(jiff::Timestamp::now().as_millisecond())
                .bind(file.to_string_lossy().into_owned())
                .bind(records as i64)
                .bind(through)
                .bind(last_hash)
                .bind(max_entry_id)
                .execute(&mut *conn)
                .await?;
                sqlx::query("UPDATE audit_archive_guard SET archiving = 0 WHERE id = 1").execute(&mut *conn).await?;
                Ok::<(), AuditError>(())
            }
            .await;
            finish(&mut conn, deleted).await
        }
        .await;
        self.revision.bump();
        // The connection goes back to the pool: it must enforce references again.
        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
        Ok(result?)
    }
}

/// Verifies archive files (oldest first) from the genesis hash; returns the checker at the
/// end, so the database's records can be checked to continue from it, or the first entry
/// that does not match.
pub fn verify_archives(files: &[PathBuf]) -> Result<Result<Checker, i64>, std::io::Error> {
    use std::io::BufRead;
    let mut checker = Checker::after(0, super::chain::GENESIS);
    for file in files {
        for line in std::io::BufReader::new(std::fs::File::open(file)?).lines() {
            let record: super::ChainedRecord = serde_json::from_str(&line?).map_err(std::io::Error::other)?;
            if !checker.check(&record) {
                return Ok(Err(record.entry_id));
            }
        }
    }
    Ok(Ok(checker))
}
