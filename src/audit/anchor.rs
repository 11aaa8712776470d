//! The chain's anchor outside the database. Whoever can edit the SQLite file can also
//! recompute every hash from the genesis hash, or cut off the newest records and set the
//! head back: the chain alone proves only that the database agrees with itself. So
//! signalbox writes the chain head (sequence and hash) now and then to a place that
//! editor cannot rewrite unnoticed (an annotation on a ConfigMap in its own namespace,
//! `audit_anchor`), optionally HMAC-signed, and verification compares the database
//! with it. This module is the comparison, pure, plus the few database reads it needs.
//!
//! Archives: an `audit_archives` row tells verification where the database's records
//! continue from, so a row inserted by an editor could make it skip (or stand in for)
//! records. The archiver therefore anchors the new archive boundary *before* it deletes
//! anything, and an archive row the anchor does not name is reported. Records still in the
//! database at or before an archive boundary are reported too (the archiver deletes them in
//! the transaction that writes the row), which catches an inserted row without any anchor.
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::chain::GENESIS;
use super::{AuditError, AuditStore};

/// A place in the chain: the record at `seq` has hash `hash` (seq 0: the genesis hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub seq: i64,
    pub hash: String,
}

impl Position {
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS.to_owned() }
    }
}

/// What is anchored: the chain head when the anchor was written, and the newest archive
/// boundary (records up to it left the database for an archive file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
    /// When it was written (RFC 3339).
    pub time: String,
    pub archived_seq: i64,
    pub archived_hash: String,
    /// HMAC-SHA256 (hex) over the fields above, when signalbox has a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Anchor {
    /// An anchor of `head` and `archived` written now, signed when there is a key.
    pub fn new(head: &Position, archived: &Position, key: Option<&AnchorKey>) -> Self {
        let mut anchor = Self {
            seq: head.seq,
            hash: head.hash.clone(),
            time: jiff::Timestamp::now().to_string(),
            archived_seq: archived.seq,
            archived_hash: archived.hash.clone(),
            signature: None,
        };
        anchor.signature = key.map(|key| hex::encode(key.mac(&anchor).finalize().into_bytes()));
        anchor
    }

    pub fn head(&self) -> Position {
        Position { seq: self.seq, hash: self.hash.clone() }
    }

    pub fn archived(&self) -> Position {
        Position { seq: self.archived_seq, hash: self.archived_hash.clone() }
    }

    /// What the signature covers: every field but the signature, in a fixed order.
    fn signed_bytes(&self) -> Vec<u8> {
        let fields =
            ("signalbox-audit-anchor/1", self.seq, &self.hash, &self.time, self.archived_seq, &self.archived_hash);
        serde_json::to_vec(&fields).unwrap_or_default()
    }

    /// Whether the anchor names the same chain positions as `other` (the time aside).
    pub fn same_positions(&self, other: &Anchor) -> bool {
        self.head() == other.head() && self.archived() == other.archived()
    }
}

/// The HMAC key (from a file, e.g. a mounted Secret).
pub struct AnchorKey(Vec<u8>);

impl AnchorKey {
    /// Reads the key file; a trailing newline (from `echo` or an editor) is not part of the key.
    pub fn from_file(path: &std::path::Path) -> std::io::Result<Self> {
        let mut bytes = std::fs::read(path)?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(std::io::Error::other(format!("the anchor key file {} is empty", path.display())));
        }
        Ok(Self(bytes))
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    fn mac(&self, anchor: &Anchor) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(&anchor.signed_bytes());
        mac
    }

    /// Whether `anchor` carries this key's signature (compared in constant time).
    pub fn signed(&self, anchor: &Anchor) -> bool {
        let Some(signature) = anchor.signature.as_deref().and_then(|s| hex::decode(s).ok()) else { return false };
        self.mac(anchor).verify_slice(&signature).is_ok()
    }
}

/// What was found where the anchor is kept.
#[derive(Debug, Clone)]
pub enum AnchorReading {
    /// No anchor is configured: the database is verified on its own.
    Off,
    /// The anchor could not be read (the cluster is unreachable, or access is refused).
    Unreachable(String),
    /// The object or its annotation does not exist.
    Missing,
    /// The annotation is there but is not an anchor.
    Garbled(String),
    Found(Anchor),
}

/// The database's record that the chain was anchored (table `audit_anchorings`): once
/// there is one, a missing anchor is a contradiction, not a log to anchor afresh.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Anchoring {
    pub time_ms: i64,
    /// Where the anchor was written, in words.
    pub location: String,
    /// The chain head the anchor named then.
    pub seq: i64,
    pub hash: String,
    /// Who wrote it: `system:signalbox` for the first anchor, the operator for a reset.
    pub actor: String,
    pub reset: bool,
}

/// The database's side of the comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    /// Where the database's records continue from: its newest `audit_archives` row.
    pub archived: Position,
    /// The newest record in the database (the archive boundary when none is left).
    pub head: Position,
    /// The database's hash at the anchored head, when that record is in the database.
    pub at_anchor: Option<String>,
    /// The database's hash at the anchored archive boundary, when that record is in the database.
    pub at_anchored_archive: Option<String>,
    /// The newest record that the chain was anchored, if it ever was.
    pub anchored: Option<Anchoring>,
}

/// Whether the anchor was compared and what came of it, in words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnchorCheck {
    /// True when the database was compared with an anchor.
    pub checked: bool,
    pub detail: String,
}

/// Compares the database with what was read from the anchor. Returns the problems (each
/// one evidence of tampering) and what was checked. An unreachable anchor is not a problem:
/// verification still runs, and says the anchor was not checked.
pub fn compare(
    reading: &AnchorReading,
    location: &str,
    key: Option<&AnchorKey>,
    db: &ChainState,
) -> (Vec<String>, AnchorCheck) {
    let not_checked = |detail: String| (Vec::new(), AnchorCheck { checked: false, detail });
    let anchor = match reading {
        AnchorReading::Off => return not_checked("no anchor configured: the database was verified on its own".into()),
        AnchorReading::Unreachable(why) => return not_checked(format!("NOT checked: {location}: {why}")),
        AnchorReading::Missing if db.anchored.is_some() => {
            let problem = removed(location, db);
            return (vec![problem], AnchorCheck { checked: true, detail: format!("no anchor at {location}") });
        }
        AnchorReading::Missing => {
            let problem = format!(
                "no anchor at {location}: it was removed, or signalbox never anchored this log (the database ends at record {})",
                db.head.seq
            );
            return (vec![problem], AnchorCheck { checked: true, detail: format!("no anchor at {location}") });
        }
        AnchorReading::Garbled(why) => {
            let problem = format!("the anchor at {location} is not an anchor: {why}");
            return (vec![problem], AnchorCheck { checked: true, detail: format!("unreadable anchor at {location}") });
        }
        AnchorReading::Found(anchor) => anchor,
    };
    let checked = |detail: String| AnchorCheck { checked: true, detail };
    if let Some(problem) = signature_problem(anchor, key) {
        return (vec![format!("{problem} ({location})")], checked(format!("anchor at {location} rejected")));
    }
    let mut problems: Vec<String> = head_problem(anchor, db).into_iter().collect();
    problems.extend(archive_problem(anchor, db));
    let signed = match (key, &anchor.signature) {
        (Some(_), _) => ", signature valid",
        (None, Some(_)) => ", signed (signature not checked: no key given)",
        (None, None) => "",
    };
    let detail = format!(
        "compared with the anchor at {location}: record {} written {}, archived through {}{signed}",
        anchor.seq, anchor.time, anchor.archived_seq
    );
    (problems, checked(detail))
}

/// The anchor is missing although the database says the chain was anchored.
pub fn removed(location: &str, db: &ChainState) -> String {
    let Some(anchoring) = &db.anchored else { return format!("no anchor at {location}") };
    format!(
        "the anchor was removed: the database says {} anchored this log at {} from record {} on ({}), \
         but {location} holds no anchor; signalbox writes no new one on its own \
         (`signalbox audit anchor --reset` re-anchors, recorded in the log)",
        anchoring.actor,
        anchoring.location,
        anchoring.seq,
        super::format_time_ms(anchoring.time_ms)
    )
}

/// With a key, an anchor must carry its signature: otherwise whoever may edit the
/// ConfigMap could write an anchor to match an edited database.
fn signature_problem(anchor: &Anchor, key: Option<&AnchorKey>) -> Option<String> {
    let key = key?;
    match &anchor.signature {
        None => Some("the anchor is not signed, but an anchor key is configured".into()),
        Some(_) if !key.signed(anchor) => {
            Some("the anchor's signature does not match the anchor key: it was written by someone else".into())
        }
        Some(_) => None,
    }
}

/// The anchored head must still be in the chain, with the same hash.
fn head_problem(anchor: &Anchor, db: &ChainState) -> Option<String> {
    let when = &anchor.time;
    if db.head.seq < anchor.seq {
        return Some(format!(
            "the newest records were removed: the database ends at record {} but the anchor written {when} names record {} ({} record(s) missing)",
            db.head.seq,
            anchor.seq,
            anchor.seq - db.head.seq
        ));
    }
    let ours = if anchor.seq == db.archived.seq { Some(&db.archived.hash) } else { db.at_anchor.as_ref() };
    match ours {
        Some(hash) if *hash == anchor.hash => None,
        Some(hash) => Some(format!(
            "the chain was rewritten: record {} has hash {} in the database but {} in the anchor written {when} (hashes recomputed)",
            anchor.seq,
            short(hash),
            short(&anchor.hash)
        )),
        // The anchored record was archived since; the archive boundary is compared instead.
        None if anchor.seq < db.archived.seq => None,
        None => Some(format!("record {} named by the anchor written {when} is not in the database", anchor.seq)),
    }
}

/// The database's archive boundary must be the anchored one: the archiver anchors a new
/// boundary before it deletes anything. The anchor may be ahead (the archive failed after
/// anchoring) only while the anchored record is still in the database with that hash.
fn archive_problem(anchor: &Anchor, db: &ChainState) -> Option<String> {
    let anchored = anchor.archived();
    let ours = &db.archived;
    if ours.seq > anchored.seq {
        return Some(format!(
            "an audit_archives row (through record {}) that the anchor does not know: the anchor has archives only through record {} (row inserted into the database?)",
            ours.seq, anchored.seq
        ));
    }
    if ours.seq == anchored.seq {
        return (ours.hash != anchored.hash).then(|| {
            format!(
                "the audit_archives row through record {} names hash {} but the anchor {}",
                ours.seq,
                short(&ours.hash),
                short(&anchored.hash)
            )
        });
    }
    match &db.at_anchored_archive {
        Some(hash) if *hash == anchored.hash => None,
        _ => Some(format!(
            "the anchor has records archived through record {} but the database's archives end at record {} (archive row removed?)",
            anchored.seq, ours.seq
        )),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// The three chained tables' positions and hashes.
const POSITIONS_SQL: &str = "SELECT chain_seq, hash FROM audit_entries WHERE chain_seq IS NOT NULL AND hash IS NOT NULL
     UNION ALL SELECT chain_seq, hash FROM audit_resolutions
     UNION ALL SELECT chain_seq, hash FROM audit_propagations";

impl AuditStore {
    /// Adds the comparison with the anchor (`reading`, kept at `location`) to `report`,
    /// a verification of the database ([`Self::verify`] or [`Self::verify_after`]).
    pub async fn compare_with_anchor(
        &self,
        mut report: super::VerifyReport,
        reading: &AnchorReading,
        location: &str,
        key: Option<&AnchorKey>,
    ) -> Result<super::VerifyReport, AuditError> {
        let anchor = match reading {
            AnchorReading::Found(anchor) => Some(anchor),
            _ => None,
        };
        let state = self.chain_state(anchor).await?;
        let (problems, check) = compare(reading, location, key, &state);
        report.problems.extend(problems);
        report.anchor = Some(check);
        Ok(report)
    }

    /// The database's side of a comparison with `anchor` (reads only).
    pub async fn chain_state(&self, anchor: Option<&Anchor>) -> Result<ChainState, AuditError> {
        let (seq, hash) = self.archived_through().await?;
        let archived = Position { seq, hash };
        let newest: Option<(i64, String)> =
            sqlx::query_as(&format!("SELECT chain_seq, hash FROM ({POSITIONS_SQL}) ORDER BY chain_seq DESC LIMIT 1"))
                .fetch_optional(&self.pool)
                .await?;
        let head = newest.map_or_else(|| archived.clone(), |(seq, hash)| Position { seq, hash });
        let (at_anchor, at_anchored_archive) = match anchor {
            Some(anchor) => (self.hash_at(anchor.seq).await?, self.hash_at(anchor.archived_seq).await?),
            None => (None, None),
        };
        let anchored = self.anchoring().await?;
        Ok(ChainState { archived, head, at_anchor, at_anchored_archive, anchored })
    }

    /// The newest record that the chain was anchored (None: never, or a log older than the
    /// `audit_anchorings` table, read by a newer `audit verify`).
    pub async fn anchoring(&self) -> Result<Option<Anchoring>, AuditError> {
        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_anchorings')",
        )
        .fetch_one(&self.pool)
        .await?;
        if !has_table {
            return Ok(None);
        }
        let anchoring = sqlx::query_as(
            "SELECT time_ms, location, seq, hash, actor, reset FROM audit_anchorings ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(anchoring)
    }

    /// Records that `actor` anchored the chain at `head` at `location` (a reset when `reset`).
    pub async fn record_anchoring(
        &self,
        location: &str,
        head: &Position,
        actor: &str,
        reset: bool,
    ) -> Result<(), AuditError> {
        let _turn = self.turn.lock().await;
        sqlx::query(
            "INSERT INTO audit_anchorings (time_ms, location, seq, hash, actor, reset) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(jiff::Timestamp::now().as_millisecond())
        .bind(location)
        .bind(head.seq)
        .bind(&head.hash)
        .bind(actor)
        .bind(reset)
        .execute(&self.pool)
        .await?;
        self.revision.bump();
        Ok(())
    }

    /// The stored hash of the record at `seq`, when it is in the database.
    pub(super) async fn hash_at(&self, seq: i64) -> Result<Option<String>, AuditError> {
        let hash = sqlx::query_scalar(&format!("SELECT hash FROM ({POSITIONS_SQL}) WHERE chain_seq = ?"))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seq: i64, hash: &str) -> Position {
        Position { seq, hash: hash.into() }
    }

    fn anchor(head: Position, archived: Position) -> Anchor {
        Anchor::new(&head, &archived, None)
    }

    /// A database holding records 1..=head with hash "h<seq>", archived through `archived`.
    fn db(archived: i64, head: i64, anchor: &Anchor) -> ChainState {
        let hash_of = |seq: i64| (seq > archived && seq <= head).then(|| format!("h{seq}"));
        ChainState {
            archived: if archived == 0 { Position::genesis() } else { at(archived, &format!("h{archived}")) },
            head: at(head, &format!("h{head}")),
            at_anchor: hash_of(anchor.seq),
            at_anchored_archive: hash_of(anchor.archived_seq),
            anchored: None,
        }
    }

    fn problems(anchor: &Anchor, db: &ChainState) -> Vec<String> {
        compare(&AnchorReading::Found(anchor.clone()), "ConfigMap ns/a", None, db).0
    }

    #[test]
    fn a_database_at_or_past_the_anchor_with_the_same_hash_matches() {
        let anchored = anchor(at(5, "h5"), Position::genesis());
        assert_eq!(problems(&anchored, &db(0, 5, &anchored)), Vec::<String>::new());
        assert_eq!(problems(&anchored, &db(0, 9, &anchored)), Vec::<String>::new(), "records since are not covered");
        let (_, check) = compare(&AnchorReading::Found(anchored.clone()), "ConfigMap ns/a", None, &db(0, 9, &anchored));
        assert!(check.checked && check.detail.contains("record 5"), "{check:?}");
    }

    #[test]
    fn a_database_that_ends_before_the_anchor_lost_its_newest_records() {
        let anchored = anchor(at(7, "h7"), Position::genesis());
        let found = problems(&anchored, &db(0, 4, &anchored));
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("ends at record 4") && found[0].contains("3 record(s) missing"), "{found:?}");
    }

    #[test]
    fn a_different_hash_at_the_anchored_record_is_a_rewritten_chain() {
        let anchored = anchor(at(5, "h5"), Position::genesis());
        let mut recomputed = db(0, 8, &anchored);
        recomputed.at_anchor = Some("f00d".into());
        let found = problems(&anchored, &recomputed);
        assert!(found.len() == 1 && found[0].contains("rewritten") && found[0].contains("record 5"), "{found:?}");
    }

    #[test]
    fn an_archive_row_the_anchor_does_not_know_is_reported() {
        let anchored = anchor(at(8, "h8"), Position::genesis());
        let found = problems(&anchored, &db(3, 8, &anchored));
        assert!(found.len() == 1 && found[0].contains("through record 3"), "{found:?}");
        let with_other_hash = ChainState { archived: at(3, "forged"), ..db(3, 8, &anchor(at(8, "h8"), at(3, "h3"))) };
        let found = problems(&anchor(at(8, "h8"), at(3, "h3")), &with_other_hash);
        assert!(found.len() == 1 && found[0].contains("names hash forged"), "{found:?}");
    }

    #[test]
    fn an_anchored_archive_the_database_never_finished_is_fine_while_its_records_remain() {
        // The archiver anchored through 3, then its transaction failed: records 1..=8 remain.
        let anchored = anchor(at(8, "h8"), at(3, "h3"));
        assert_eq!(problems(&anchored, &db(0, 8, &anchored)), Vec::<String>::new());
        let mut gone = db(0, 8, &anchored);
        gone.at_anchored_archive = None;
        assert!(problems(&anchored, &gone)[0].contains("archive row removed"));
    }

    #[test]
    fn an_anchored_head_since_archived_is_compared_through_the_archive_boundary() {
        let anchored = anchor(at(3, "h3"), at(3, "h3"));
        assert_eq!(problems(&anchored, &db(3, 3, &anchored)), Vec::<String>::new());
        assert_eq!(problems(&anchored, &db(3, 6, &anchored)), Vec::<String>::new());
    }

    #[test]
    fn with_a_key_an_unsigned_or_otherwise_signed_anchor_is_refused() {
        let key = AnchorKey::from_bytes(b"operator's secret");
        let signed = Anchor::new(&at(2, "h2"), &Position::genesis(), Some(&key));
        let state = db(0, 2, &signed);
        let judge = |anchor: &Anchor, key: &AnchorKey| {
            compare(&AnchorReading::Found(anchor.clone()), "ConfigMap ns/a", Some(key), &state).0
        };
        assert_eq!(judge(&signed, &key), Vec::<String>::new());
        assert!(judge(&signed, &AnchorKey::from_bytes(b"another"))[0].contains("signature does not match"));
        let unsigned = Anchor { signature: None, ..signed.clone() };
        assert!(judge(&unsigned, &key)[0].contains("not signed"));
        let moved = Anchor { seq: 1, hash: "h1".into(), ..signed.clone() };
        assert!(judge(&moved, &key)[0].contains("signature does not match"), "the signature covers the position");
    }

    #[test]
    fn an_unreachable_anchor_is_said_and_a_missing_one_is_a_problem() {
        let state = db(0, 2, &anchor(at(2, "h2"), Position::genesis()));
        let (found, check) =
            compare(&AnchorReading::Unreachable("connection refused".into()), "ConfigMap ns/a", None, &state);
        assert!(found.is_empty() && !check.checked && check.detail.contains("NOT checked"), "{check:?}");
        let (found, check) = compare(&AnchorReading::Missing, "ConfigMap ns/a", None, &state);
        assert!(found.len() == 1 && check.checked, "{found:?}");
        let (found, check) = compare(&AnchorReading::Off, "", None, &state);
        assert!(found.is_empty() && !check.checked);
    }

    #[test]
    fn a_missing_anchor_of_a_log_that_was_anchored_is_a_removal() {
        let mut state = db(0, 2, &anchor(at(2, "h2"), Position::genesis()));
        state.anchored = Some(Anchoring {
            time_ms: 0,
            location: "ConfigMap ns/a".into(),
            seq: 1,
            hash: "h1".into(),
            actor: "system:signalbox".into(),
            reset: false,
        });
        let (found, check) = compare(&AnchorReading::Missing, "ConfigMap ns/a", None, &state);
        assert!(check.checked, "{check:?}");
        assert!(found.len() == 1 && found[0].starts_with("the anchor was removed") && found[0].contains("record 1"));
    }
}
