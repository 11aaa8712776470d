//! Changes held for a second person's approval: what to apply, and where each stands. The
//! audit chain records the proposal, its decision and the outcome as entries; this table
//! keeps the planned change itself (as the change path stored it) until someone decides.
use serde_json::Value;
use sqlx::FromRow;

use super::{AuditError, AuditStore};

/// A proposal as it is stored.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: i64,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub proposer: String,
    #[serde(skip)]
    pub proposer_groups: String,
    pub source: String,
    pub namespace: String,
    pub host: Option<String>,
    pub action: String,
    pub summary: String,
    /// The planned change, as the change path reads it back (`change::approval`).
    #[serde(skip)]
    pub change: String,
    pub diff: String,
    pub audit_id: i64,
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_ms: Option<i64>,
    pub reason: Option<String>,
    pub outcome_audit_id: Option<i64>,
}

impl Proposal {
    /// `open`, or `expired` for an open one past its time; else as decided.
    pub fn state_at(&self, now_ms: i64) -> &str {
        if self.status == "open" && now_ms >= self.expires_ms { "expired" } else { &self.status }
    }
}

/// A proposal to store.
pub struct NewProposal<'a> {
    pub expires_ms: i64,
    pub proposer: &'a str,
    pub proposer_groups: &'a [String],
    pub source: &'a str,
    pub namespace: &'a str,
    pub host: Option<&'a str>,
    pub action: &'a str,
    pub summary: &'a str,
    pub change: &'a Value,
    pub diff: &'a str,
    pub audit_id: i64,
}

impl AuditStore {
    pub async fn propose(&self, proposal: &NewProposal<'_>) -> Result<i64, AuditError> {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let groups = serde_json::to_string(proposal.proposer_groups).unwrap_or_else(|_| "[]".into());
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO proposals (created_ms, expires_ms, proposer, proposer_groups, source, namespace, host, action,
                                    summary, change, diff, audit_id, status)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'open') RETURNING id",
        )
        .bind(now_ms)
        .bind(proposal.expires_ms)
        .bind(proposal.proposer)
        .bind(groups)
        .bind(proposal.source)
        .bind(proposal.namespace)
        .bind(proposal.host)
        .bind(proposal.action)
        .bind(proposal.summary)
        .bind(proposal.change.to_string())
        .bind(proposal.diff)
        .bind(proposal.audit_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn proposal(&self, id: i64) -> Result<Option<Proposal>, AuditError> {
        Ok(sqlx::query_as("SELECT * FROM proposals WHERE id = ?").bind(id).fetch_optional(&self.pool).await?)
    }

    /// The newest proposals first, open ones and decided ones alike.
    pub async fn proposals(&self, limit: u32) -> Result<Vec<Proposal>, AuditError> {
        Ok(sqlx::query_as("SELECT * FROM proposals ORDER BY id DESC LIMIT ?").bind(limit).fetch_all(&self.pool).await?)
    }

    /// Takes an open proposal for a decision: true for exactly one caller, so two approvers
    /// cannot both apply it.
    pub async fn decide_proposal(
        &self,
        id: i64,
        status: &str,
        by: &str,
        reason: Option<&str>,
    ) -> Result<bool, AuditError> {
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let done = sqlx::query(
            "UPDATE proposals SET status = ?, decided_by = ?, decided_ms = ?, reason = ?
             WHERE id = ? AND status = 'open' AND expires_ms > ?",
        )
        .bind(status)
        .bind(by)
        .bind(now_ms)
        .bind(reason)
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// After an approval: how applying it went, and its entry.
    pub async fn settle_proposal(
        &self,
        id: i64,
        status: &str,
        outcome_audit_id: Option<i64>,
    ) -> Result<(), AuditError> {
        sqlx::query("UPDATE proposals SET status = ?, outcome_audit_id = ? WHERE id = ?")
            .bind(status)
            .bind(outcome_audit_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
