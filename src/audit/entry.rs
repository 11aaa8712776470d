//! Audit entry values.
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a change came from (stored as its lowercase name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum Source {
    Ui,
    Api,
    System,
    External,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ui => "ui",
            Source::Api => "api",
            Source::System => "system",
            Source::External => "external",
        }
    }
}

/// What became of a change (stored as its lowercase name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum Outcome {
    Pending,
    Applied,
    Failed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Outcome::Pending, Outcome::Applied, Outcome::Failed, Outcome::Denied]
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entry about to be written.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub actor: String,
    pub groups: Vec<String>,
    pub source: Source,
    pub action: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub summary: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The change's operations in order: `{kind, namespace, name, apply}` (apply: the object, or null to delete).
    pub operations: Value,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub request_id: Option<String>,
    /// The entry this change reverts.
    pub reverts: Option<i64>,
}

/// Entries about proposals (`proposal.create`, `proposal.reject`) record decisions, not
/// changes to objects.
pub const PROPOSAL_ACTIONS: &str = "proposal.";

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    #[serde(rename = "time", serialize_with = "serialize_time")]
    pub time_ms: i64,
    pub actor: String,
    pub groups: Vec<String>,
    pub source: Source,
    pub action: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub summary: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub operations: Value,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub reverts: Option<i64>,
    /// When the proxies had the change ("reached 3/3 proxies in 0.4 s"), once known.
    pub propagation: Option<String>,
    /// Who approved it, for a proposal's change: read from its summary, which the chain
    /// covers ("… (approved by bob, proposal #3)").
    #[serde(rename = "approvedBy", skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// The approver a proposal's applied change names at the end of its summary.
pub fn approved_by_in(summary: &str) -> Option<String> {
    let rest = summary.strip_suffix(')')?;
    let (head, proposal) = rest.rsplit_once(", proposal #")?;
    proposal.parse::<i64>().ok()?;
    let approver = head.rsplit_once("(approved by ")?.1;
    (!approver.is_empty()).then(|| approver.to_owned())
}

/// The action of an entry that counts outside changes over the rate limit instead of
/// recording each: it changed nothing itself, so there is nothing to revert.
pub const UNRECORDED_ACTION: &str = "external.unrecorded";

impl Entry {
    /// Whether the entry's change is in the cluster to be undone: applied by signalbox, or
    /// made outside it (not a count of outside changes).
    pub fn is_revertible(&self) -> bool {
        let changed_objects = self.action != UNRECORDED_ACTION && !self.action.starts_with(PROPOSAL_ACTIONS);
        (self.outcome == Outcome::Applied || self.source == Source::External) && changed_objects
    }

    /// The entry's time as RFC 3339 UTC with milliseconds.
    pub fn time(&self) -> String {
        format_time_ms(self.time_ms)
    }

    /// The time as people read it, in UTC: `2026-12-06 09:03:40 UTC` (the pages' script
    /// shows it in the reader's zone, keeping this on hover).
    pub fn time_utc(&self) -> String {
        jiff::Timestamp::from_millisecond(self.time_ms)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| self.time())
    }
}

/// An entry row (the `entries!` join) as SQLite holds it; documents are JSON text, read leniently (a
/// document that does not parse is shown as absent, not a failed page).
#[derive(sqlx::FromRow)]
pub(super) struct EntryRow {
    id: i64,
    time_ms: i64,
    actor: String,
    actor_groups: String,
    source: Source,
    action: String,
    namespace: String,
    kind: String,
    name: String,
    summary: String,
    before_doc: Option<String>,
    after_doc: Option<String>,
    operations: Option<String>,
    outcome: Outcome,
    error: Option<String>,
    request_id: Option<String>,
    reverts: Option<i64>,
    /// Not in every query's columns.
    #[sqlx(default)]
    propagation: Option<String>,
}

impl From<EntryRow> for Entry {
    fn from(row: EntryRow) -> Self {
        let document = |text: Option<String>| text.and_then(|text| serde_json::from_str(&text).ok());
        let approved_by = approved_by_in(&row.summary);
        Entry {
            id: row.id,
            time_ms: row.time_ms,
            actor: row.actor,
            groups: serde_json::from_str(&row.actor_groups).unwrap_or_default(),
            source: row.source,
            action: row.action,
            namespace: row.namespace,
            kind: row.kind,
            name: row.name,
            summary: row.summary,
            before: document(row.before_doc),
            after: document(row.after_doc),
            operations: document(row.operations).unwrap_or(Value::Null),
            outcome: row.outcome,
            error: row.error,
            request_id: row.request_id,
            reverts: row.reverts,
            approved_by,
            propagation: row.propagation,
        }
    }
}

/// The columns of [`SummaryRow`], in its order.
pub(super) const SUMMARY_ROW_COLUMNS: &str = "id, time_ms, actor, actor_groups, source, action, namespace, kind, name, summary, request_id, reverts, outcome, error, propagation";

/// An entry without its documents, as one element of the JSON array SQLite builds for a page
/// of summaries ([`SUMMARY_ROW_COLUMNS`]).
#[derive(Deserialize)]
pub(super) struct SummaryRow(
    i64,
    i64,
    String,
    String,
    Source,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    Outcome,
    Option<String>,
    Option<String>,
);

impl SummaryRow {
    pub(super) fn id(&self) -> i64 {
        self.0
    }
}

impl From<SummaryRow> for Entry {
    fn from(row: SummaryRow) -> Self {
        let SummaryRow(
            id,
            time_ms,
            actor,
            actor_groups,
            source,
            action,
            namespace,
            kind,
            name,
            summary,
            request_id,
            reverts,
            outcome,
            error,
            propagation,
        ) = row;
        let approved_by = approved_by_in(&summary);
        Entry {
            id,
            time_ms,
            actor,
            groups: serde_json::from_str(&actor_groups).unwrap_or_default(),
            source,
            action,
            namespace,
            kind,
            name,
            summary,
            before: None,
            after: None,
            operations: Value::Null,
            outcome,
            error,
            request_id,
            reverts,
            approved_by,
            propagation,
        }
    }
}

/// Formats epoch milliseconds as RFC 3339 UTC, e.g. `2026-11-24T19:02:03.123Z`.
pub fn format_time_ms(time_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(time_ms)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| time_ms.to_string())
}

fn serialize_time<S: serde::Serializer>(time_ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time_ms(*time_ms))
}

#[cfg(test)]
mod tests {
    use super::approved_by_in;

    #[test]
    fn the_approver_is_read_from_the_end_of_the_summary_only() {
        assert_eq!(
            approved_by_in("r: send 25% to v2 (was 10%) (approved by bob, proposal #3)").as_deref(),
            Some("bob")
        );
        assert_eq!(approved_by_in("r: timeout 1s (approved by bob, proposal #x)"), None);
        assert_eq!(approved_by_in("r: (approved by bob, proposal #3) and more"), None);
        assert_eq!(approved_by_in("plain summary"), None);
    }
}
