//! The hash chain: each record's hash is SHA-256 over the previous record's hash (hex), a
//! newline, and the record's canonical content — a compact JSON array of its columns in a
//! fixed order. Entries, resolutions and propagation records share one sequence (`chain_seq`).
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The hash before the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The columns of an entry, as hashed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryContent {
    pub id: i64,
    pub time_ms: i64,
    pub actor: String,
    pub actor_groups: String,
    pub source: String,
    pub action: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub summary: String,
    pub before_doc: Option<String>,
    pub after_doc: Option<String>,
    pub operations: String,
    pub outcome: String,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub reverts: Option<i64>,
}

/// The columns of a resolution, as hashed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResolutionContent {
    pub entry_id: i64,
    pub time_ms: i64,
    pub outcome: String,
    pub after_doc: Option<String>,
    pub error: Option<String>,
}

/// The columns of a propagation record (when the proxies had an applied change), as hashed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PropagationContent {
    pub entry_id: i64,
    pub time_ms: i64,
    pub summary: String,
    pub detail: Option<String>,
}

impl PropagationContent {
    pub fn canonical(&self) -> Value {
        json!(["propagation", self.entry_id, self.time_ms, self.summary, self.detail])
    }
}

impl EntryContent {
    pub fn canonical(&self) -> Value {
        json!([
            "entry",
            self.id,
            self.time_ms,
            self.actor,
            self.actor_groups,
            self.source,
            self.action,
            self.namespace,
            self.kind,
            self.name,
            self.summary,
            self.before_doc,
            self.after_doc,
            self.operations,
            self.outcome,
            self.error,
            self.request_id,
            self.reverts
        ])
    }
}

impl ResolutionContent {
    pub fn canonical(&self) -> Value {
        json!(["resolution", self.entry_id, self.time_ms, self.outcome, self.after_doc, self.error])
    }
}

/// The hash of a record following `prev_hash`.
pub fn link(prev_hash: &str, canonical: &impl Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(serde_json::to_vec(canonical).unwrap_or_default());
    hex::encode(hasher.finalize())
}

/// One chained record as stored: its place in the chain, its hashes and exactly what was
/// hashed. Verification reads these from the database; the retention archive writes them,
/// one per NDJSON line, so an archive verifies with the same code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainedRecord {
    /// `entry`, `resolution` or `propagation`.
    pub record: String,
    pub chain_seq: i64,
    /// The entry's id (a resolution names the entry it resolves).
    pub entry_id: i64,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    /// The canonical content, the array that was hashed.
    pub content: Value,
}

/// Walks records in chain order from a known hash, telling which one breaks the chain.
#[derive(Debug, Clone)]
pub struct Checker {
    expected_prev: String,
    pub last_seq: i64,
    pub checked: u64,
}

impl Checker {
    /// Starts after the record at `seq` whose hash is `hash` (0 and [`GENESIS`] for a new chain).
    pub fn after(seq: i64, hash: &str) -> Self {
        Self { expected_prev: hash.to_owned(), last_seq: seq, checked: 0 }
    }

    /// The hash the next record must name as its predecessor.
    pub fn head(&self) -> &str {
        &self.expected_prev
    }

    /// Checks the next record; false when it does not follow or does not match its hash.
    pub fn check(&mut self, record: &ChainedRecord) -> bool {
        self.checked += 1;
        let intact = record.chain_seq == self.last_seq + 1
            && record.prev_hash.as_deref() == Some(self.expected_prev.as_str())
            && record.hash.as_deref() == Some(link(&self.expected_prev, &record.content).as_str());
        if intact {
            self.expected_prev = record.hash.clone().unwrap_or_default();
            self.last_seq = record.chain_seq;
        }
        intact
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_depends_on_the_previous_hash_and_every_column() {
        let content =
            ResolutionContent { entry_id: 1, time_ms: 5, outcome: "applied".into(), after_doc: None, error: None };
        let first = link(GENESIS, &content.canonical());
        assert_eq!(first.len(), 64);
        assert_ne!(first, link(&first, &content.canonical()));
        let changed = ResolutionContent { outcome: "failed".into(), ..content.clone() };
        assert_ne!(first, link(GENESIS, &changed.canonical()));
        assert_eq!(first, link(GENESIS, &content.canonical()), "deterministic");
    }

    #[test]
    fn the_checker_refuses_a_gap_a_wrong_predecessor_and_a_wrong_hash() {
        let content = json!(["resolution", 1, 5, "applied", null, null]);
        let hash = link(GENESIS, &content);
        let record = ChainedRecord {
            record: "resolution".into(),
            chain_seq: 1,
            entry_id: 1,
            prev_hash: Some(GENESIS.into()),
            hash: Some(hash.clone()),
            content: content.clone(),
        };
        assert!(Checker::after(0, GENESIS).check(&record));
        assert!(!Checker::after(1, GENESIS).check(&record), "seq 1 cannot follow seq 1");
        assert!(!Checker::after(0, &hash).check(&record), "wrong predecessor");
        let edited = ChainedRecord { content: json!(["resolution", 1, 5, "failed", null, null]), ..record };
        assert!(!Checker::after(0, GENESIS).check(&edited), "content no longer matches its hash");
    }
}
