//! The hash chain: each record's hash is SHA-256 over the previous record's hash (hex), a
//! newline, and the record's canonical content — a compact JSON array of its columns in a
//! fixed order. Entries and resolutions share one sequence (`chain_seq`).
use serde::Serialize;
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

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub records_checked: u64,
    /// The first entry whose record does not match its hash (a resolution names its entry).
    pub first_mismatch: Option<i64>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.first_mismatch.is_none()
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
}
