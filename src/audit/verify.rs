//! Reading the chain back and checking it: in full (CLI, API) or from the last verified
//! record on (the history page, which must stay fast at a million entries).
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::chain::{ChainedRecord, Checker, EntryContent, GENESIS, PropagationContent, ResolutionContent};
use super::{AuditError, AuditStore};

/// Every record (entries, resolutions, propagation records) with `from < chain_seq <= through`,
/// in chain order. Each part walks its `chain_seq` unique index, so SQLite merges them
/// without sorting. A propagation record's summary and detail travel in `summary`/`after_doc`.
const RECORDS_SQL: &str = "
    SELECT 'entry' AS record, chain_seq, prev_hash, hash, id, time_ms, actor, actor_groups, source, action,
           namespace, kind, name, summary, before_doc, after_doc, operations, outcome, error, request_id, reverts
    FROM audit_entries WHERE chain_seq > ?1 AND chain_seq <= ?2
    UNION ALL
    SELECT 'resolution', chain_seq, prev_hash, hash, entry_id, time_ms, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, after_doc, NULL, outcome, error, NULL, NULL
    FROM audit_resolutions WHERE chain_seq > ?1 AND chain_seq <= ?2
    UNION ALL
    SELECT 'propagation', chain_seq, prev_hash, hash, entry_id, time_ms, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, summary, NULL, detail, NULL, NULL, NULL, NULL, NULL
    FROM audit_propagations WHERE chain_seq > ?1 AND chain_seq <= ?2
    ORDER BY chain_seq";

/// The last verified point of the chain, remembered between incremental verifications.
#[derive(Debug, Clone)]
pub(super) struct Checkpoint {
    checker: Checker,
    /// Records verified before `checker` started (so the count covers the whole database).
    checked_before: u64,
    mismatch: Option<i64>,
}

impl AuditStore {
    /// Recomputes the whole chain (from the last archive's hash, or the genesis hash) and
    /// names the first entry whose record does not match; compares the file's schema with
    /// the migrations' (`schema.rs`).
    pub async fn verify(&self) -> Result<VerifyReport, AuditError> {
        let mut checkpoint = self.checkpoint.lock().await;
        let (seq, hash) = self.archived_through().await?;
        let fresh = Checkpoint { checker: Checker::after(seq, &hash), checked_before: 0, mismatch: None };
        *checkpoint = self.continue_from(fresh).await?;
        let mut report = report(&checkpoint);
        report.first_mismatch = report.first_mismatch.or(self.first_unchained().await?);
        report.problems.extend(self.archived_yet_present(seq).await?);
        report.problems.extend(self.schema_problems().await?);
        // The checkpoint moved: the history page's next verdict starts from it.
        self.verdict.clear();
        Ok(report)
    }

    /// A record at or before the archive boundary `through` that is still in the database.
    /// The archiver deletes what it archived in the transaction that writes the
    /// `audit_archives` row, so such a record means the row was inserted by someone else —
    /// to make verification start after records that were then edited.
    async fn archived_yet_present(&self, through: i64) -> Result<Option<String>, AuditError> {
        if through == 0 {
            return Ok(None);
        }
        let entry: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(id) FROM (SELECT id FROM audit_entries WHERE chain_seq <= ?1
                                  UNION ALL SELECT entry_id FROM audit_resolutions WHERE chain_seq <= ?1
                                  UNION ALL SELECT entry_id FROM audit_propagations WHERE chain_seq <= ?1)",
        )
        .bind(through)
        .fetch_one(&self.pool)
        .await?;
        Ok(entry.map(|id| {
            format!(
                "entry {id} is still in the database, yet an audit_archives row says records through {through} were archived: \
                 the row was not written by the archiver, and records up to it were not verified"
            )
        }))
    }

    /// An entry outside the chain (no position or hash): the walk in chain order never meets
    /// it, so it would pass unnoticed. Every entry is chained when written (or at startup,
    /// for logs older than the chain), so one without a place was put there behind our back.
    async fn first_unchained(&self) -> Result<Option<i64>, AuditError> {
        let unchained: Option<i64> =
            sqlx::query_scalar("SELECT MIN(id) FROM audit_entries WHERE chain_seq IS NULL OR hash IS NULL")
                .fetch_one(&self.pool)
                .await?;
        Ok(unchained)
    }

    /// Verifies the database's records as the continuation of `checker` (the end of the
    /// retention archives): the first database record must follow the last archived one.
    pub async fn verify_after(&self, checker: Checker) -> Result<VerifyReport, AuditError> {
        let through = checker.last_seq;
        let start = Checkpoint { checked_before: 0, checker, mismatch: None };
        let mut report = report(&self.continue_from(start).await?);
        report.first_mismatch = report.first_mismatch.or(self.first_unchained().await?);
        report.problems.extend(self.archived_yet_present(through).await?);
        report.problems.extend(self.schema_problems().await?);
        Ok(report)
    }

    /// Verifies only the records appended since the last verification (full or incremental),
    /// so it costs what was appended since; a known mismatch is reported again at once.
    /// Tampering with already verified records is found by the next full [`Self::verify`],
    /// which the server runs periodically. While this process has committed nothing, a
    /// verdict less than a second old is used again (see `kept.rs`).
    pub async fn verify_incremental(&self) -> Result<VerifyReport, AuditError> {
        let revision = self.revision.current();
        if let Some(report) = self.verdict.get(&(), revision) {
            return Ok(report);
        }
        let report = self.verify_appended().await?;
        self.verdict.keep((), revision, report.clone());
        Ok(report)
    }

    async fn verify_appended(&self) -> Result<VerifyReport, AuditError> {
        let mut checkpoint = self.checkpoint.lock().await;
        let (archived_seq, _) = self.archived_through().await?;
        let stale = checkpoint.as_ref().is_none_or(|c| c.checker.last_seq < archived_seq);
        if stale {
            drop(checkpoint);
            return self.verify().await;
        }
        let Some(current) = checkpoint.take() else { return Ok(VerifyReport::default()) };
        if current.mismatch.is_some() {
            let report = report(&Some(current.clone()));
            *checkpoint = Some(current);
            return Ok(report);
        }
        *checkpoint = self.continue_from(current).await?;
        Ok(report(&checkpoint))
    }

    async fn continue_from(&self, mut at: Checkpoint) -> Result<Option<Checkpoint>, AuditError> {
        at.checked_before += at.checker.checked;
        at.checker.checked = 0;
        let mut records = sqlx::query(RECORDS_SQL).bind(at.checker.last_seq).bind(i64::MAX).fetch(&self.pool);
        while let Some(row) = records.try_next().await? {
            let record = chained_record(&row);
            if !at.checker.check(&record) {
                at.mismatch = Some(record.entry_id);
                break;
            }
        }
        Ok(Some(at))
    }

    /// The chain position the database continues from: the last archived record, if any.
    pub(super) async fn archived_through(&self) -> Result<(i64, String), AuditError> {
        let anchor: Option<(i64, String)> =
            sqlx::query_as("SELECT through_seq, through_hash FROM audit_archives ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(anchor.unwrap_or_else(|| (0, GENESIS.to_owned())))
    }

    /// Records with `from < chain_seq <= through` in chain order, as a stream (the archiver).
    pub(super) fn records_between(
        &self,
        from: i64,
        through: i64,
    ) -> impl futures::Stream<Item = Result<ChainedRecord, sqlx::Error>> + '_ {
        sqlx::query(RECORDS_SQL).bind(from).bind(through).fetch(&self.pool).map_ok(|row| chained_record(&row))
    }
}

fn report(checkpoint: &Option<Checkpoint>) -> VerifyReport {
    checkpoint.as_ref().map_or_else(VerifyReport::default, |c| VerifyReport {
        records_checked: c.checked_before + c.checker.checked,
        first_mismatch: c.mismatch,
        ..VerifyReport::default()
    })
}

/// A row of [`RECORDS_SQL`] with its canonical content rebuilt exactly as it was hashed.
fn chained_record(row: &SqliteRow) -> ChainedRecord {
    let entry_id: i64 = row.get("id");
    let record: String = row.get("record");
    let content = if record == "propagation" {
        PropagationContent {
            entry_id,
            time_ms: row.get("time_ms"),
            summary: row.get("summary"),
            detail: row.get("after_doc"),
        }
        .canonical()
    } else if record == "entry" {
        EntryContent {
            id: entry_id,
            time_ms: row.get("time_ms"),
            actor: row.get("actor"),
            actor_groups: row.get("actor_groups"),
            source: row.get("source"),
            action: row.get("action"),
            namespace: row.get("namespace"),
            kind: row.get("kind"),
            name: row.get("name"),
            summary: row.get("summary"),
            before_doc: row.get("before_doc"),
            after_doc: row.get("after_doc"),
            operations: row.get("operations"),
            outcome: row.get("outcome"),
            error: row.get("error"),
            request_id: row.get("request_id"),
            reverts: row.get("reverts"),
        }
        .canonical()
    } else {
        ResolutionContent {
            entry_id,
            time_ms: row.get("time_ms"),
            outcome: row.get("outcome"),
            after_doc: row.get("after_doc"),
            error: row.get("error"),
        }
        .canonical()
    };
    ChainedRecord {
        record,
        chain_seq: row.get::<Option<i64>, _>("chain_seq").unwrap_or(0),
        entry_id,
        prev_hash: row.get("prev_hash"),
        hash: row.get("hash"),
        content,
    }
}
/// What verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub records_checked: u64,
    /// The first entry whose record does not match its hash (a resolution names its entry).
    pub first_mismatch: Option<i64>,
    /// Other evidence of tampering, in words: records an archive row claims were archived,
    /// and what the comparison with the anchor found (removed newest records, a rewritten
    /// chain, an archive row the anchor does not know, a bad signature).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Whether the database was compared with the anchor kept outside it; absent when
    /// only the database was verified (the history page).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<super::anchor::AnchorCheck>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_mismatch.is_none() && self.problems.is_empty()
    }
}
