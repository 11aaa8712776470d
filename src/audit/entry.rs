//! Audit entry values.
use serde::Serialize;
use serde_json::Value;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: i64,
    #[serde(rename = "time", serialize_with = "serialize_time")]
    pub time_ms: i64,
    pub actor: String,
    pub groups: Vec<String>,
    pub source: String,
    pub action: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub summary: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub operations: Value,
    pub outcome: String,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub reverts: Option<i64>,
    /// When the proxies had the change ("reached 3/3 proxies in 0.4 s"), once known.
    pub propagation: Option<String>,
}

impl Entry {
    /// The entry's time as RFC 3339 UTC with milliseconds.
    pub fn time(&self) -> String {
        format_time_ms(self.time_ms)
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
