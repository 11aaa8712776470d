//! Two-person approval (the team file's `approval: {required: true}`): in such a namespace a
//! change is not applied but held as a proposal — the planned change, dry-run, with the
//! resourceVersions it was planned against — until another person who may make it approves
//! it. It is then applied exactly as planned, unless the objects moved since.
use serde_json::{Value, json};

use super::{Action, Change, ChangeError, ChangePath, Documents, PlannedOn, diff};
use crate::audit::proposals::{NewProposal, Proposal};
use crate::audit::{NewEntry, Outcome, Source};
use crate::authz::{Actor, Denial, Permission};
use crate::cluster::{ObjectRef, Operation};
use crate::policy::Reach;

/// How long a proposal waits for a decision.
pub const PROPOSAL_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// A held change: its proposal and what it would do.
#[derive(Debug, Clone)]
pub struct Held {
    pub proposal_id: i64,
    pub summary: String,
}

impl ChangePath {
    /// Whether the change waits for a second person: the namespace requires it, and the
    /// change is not one that makes things safer (aborting, pausing a canary) nor signalbox's
    /// own (auto-advance of a canary whose start was approved), nor already approved.
    pub(super) fn held_for_approval(&self, change: &Change) -> bool {
        let safer = matches!(change.action, Action::CanaryAbort | Action::CanaryPause);
        !safer
            && !change.actor.system
            && change.approved_by.is_none()
            && self.authorizer.approval_required(&change.namespace)
    }

    /// Plans and dry-runs the change as its apply would, and stores it as a proposal: the
    /// audit chain records it (`proposal.create`); nothing changes in the cluster. A refusal
    /// is recorded as the path records one.
    pub(super) async fn propose(&self, change: Change) -> Result<Held, ChangeError> {
        if let Err(error) = self.authorize_and_validate(&change) {
            return Err(self.refused(&change, None, error).await);
        }
        let (before, versions) = match self.read_before(&change).await {
            Ok(read) => read,
            Err(error) => return Err(self.refused(&change, None, ChangeError::Cluster(error)).await),
        };
        if let Err(error) = self.judge_writes(&change, &before).await {
            return Err(self.refused(&change, Some(&before), error).await);
        }
        let after = match self.run_all(&change, (&before, &versions), true).await {
            Ok(after) => after,
            Err(halted) => return Err(self.refused(&change, Some(&before), ChangeError::Cluster(halted.error)).await),
        };
        let summary = format!("{} — proposed, awaiting approval by another person who may make it", change.summary);
        let entry = NewEntry {
            action: "proposal.create".into(),
            summary: summary.clone(),
            outcome: Outcome::Applied,
            after: Some(after.to_document()),
            ..self.entry(&change, Outcome::Applied, Some(&before), None, None)
        };
        let audit_id =
            self.audit.record(&entry).await.map_err(|error| ChangeError::AuditUnavailable(error.to_string()))?;
        let stored = record(&change, &before, &versions);
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let proposal = NewProposal {
            expires_ms: now_ms + PROPOSAL_LIFETIME_MS,
            proposer: &change.actor.name,
            proposer_groups: &change.actor.groups,
            source: change.source.as_str(),
            namespace: &change.namespace,
            host: change.host.as_deref(),
            action: change.action.as_str(),
            summary: &change.summary,
            change: &stored,
            diff: &diff(&before, &after),
            audit_id,
        };
        let proposal_id =
            self.audit.propose(&proposal).await.map_err(|error| ChangeError::AuditUnavailable(error.to_string()))?;
        Ok(Held { proposal_id, summary: change.summary })
    }

    /// Applies proposal `id` as planned, for `approver`: not its proposer, and allowed to
    /// make the change themselves. 409 when it is no longer open or its objects moved.
    pub async fn approve(&self, id: i64, approver: &Actor) -> Result<super::Applied, ChangeError> {
        let proposal = self.open_proposal(id).await?;
        let change = change_of(&proposal).ok_or_else(|| ChangeError::Stale(format!("proposal #{id}")))?;
        self.check_decider(&proposal, &change, approver, "approve")?;
        if !self.taken(id, "applied", approver, None).await? {
            return Err(ChangeError::Stale(format!("proposal #{id} (decided by someone else meanwhile)")));
        }
        let summary = format!("{} (approved by {}, proposal #{id})", change.summary, approver.name);
        let change = Change { summary, approved_by: Some(approver.name.clone()), ..change };
        let result = self.execute(change).await;
        let (status, audit_id) = match &result {
            Ok(applied) => ("applied", Some(applied.audit_id)),
            Err(ChangeError::Stale(_)) => ("stale", None),
            Err(_) => ("failed", None),
        };
        let _ = self.audit.settle_proposal(id, status, audit_id).await;
        result.map_err(|error| match error {
            ChangeError::Stale(what) => ChangeError::Stale(format!("{what} — stale: propose again")),
            other => other,
        })
    }

    /// Rejects proposal `id` for `decider` (not its proposer, allowed to make the change),
    /// recorded in the audit chain with the reason.
    pub async fn reject(&self, id: i64, decider: &Actor, reason: &str) -> Result<i64, ChangeError> {
        let proposal = self.open_proposal(id).await?;
        let change = change_of(&proposal).ok_or_else(|| ChangeError::Stale(format!("proposal #{id}")))?;
        self.check_decider(&proposal, &change, decider, "reject")?;
        if !self.taken(id, "rejected", decider, Some(reason)).await? {
            return Err(ChangeError::Stale(format!("proposal #{id} (decided by someone else meanwhile)")));
        }
        let entry = NewEntry {
            actor: decider.name.clone(),
            groups: decider.groups.clone(),
            action: "proposal.reject".into(),
            summary: format!("rejected proposal #{id} by {}: {} — {reason}", proposal.proposer, proposal.summary),
            before: None,
            after: None,
            operations: json!([]),
            ..self.entry(&change, Outcome::Applied, None, None, None)
        };
        self.audit.record(&entry).await.map_err(|error| ChangeError::AuditUnavailable(error.to_string()))
    }

    async fn open_proposal(&self, id: i64) -> Result<Proposal, ChangeError> {
        let proposal =
            self.audit.proposal(id).await.map_err(|error| ChangeError::AuditUnavailable(error.to_string()))?;
        let proposal = proposal.ok_or_else(|| ChangeError::Denied(Denial::Unmanaged(format!("proposal #{id}"))))?;
        match proposal.state_at(jiff::Timestamp::now().as_millisecond()) {
            "open" => Ok(proposal),
            state => Err(ChangeError::Stale(format!("proposal #{id} is {state}, not open"))),
        }
    }

    /// The decider may not be the proposer, and must be allowed to make the change: on its
    /// host, and wherever it sends traffic.
    fn check_decider(
        &self,
        proposal: &Proposal,
        change: &Change,
        decider: &Actor,
        verb: &str,
    ) -> Result<(), ChangeError> {
        self.authorizer
            .check(decider, change.permission, &change.namespace, change.host.as_deref())
            .map_err(ChangeError::Denied)?;
        // Where the change sends traffic beyond its host (mirrors, redirects), too.
        for reach in &change.reaches {
            self.authorizer
                .check(decider, change.permission, &reach.namespace, reach.host.as_deref())
                .map_err(ChangeError::Denied)?;
        }
        if decider.name == proposal.proposer {
            return Err(ChangeError::Denied(Denial::Operation {
                actor: decider.name.clone(),
                action: format!("{verb} proposal #{}", proposal.id),
                reason: "it is their own; another person who may make the change decides".into(),
            }));
        }
        Ok(())
    }

    async fn taken(&self, id: i64, status: &str, by: &Actor, reason: Option<&str>) -> Result<bool, ChangeError> {
        self.audit
            .decide_proposal(id, status, &by.name, reason)
            .await
            .map_err(|error| ChangeError::AuditUnavailable(error.to_string()))
    }
}

/// The planned change as stored: everything the path needs to apply it as planned.
fn record(change: &Change, before: &Documents, versions: &[Option<String>]) -> Value {
    let reaches: Vec<Value> = change
        .reaches
        .iter()
        .map(|reach| json!({"field": reach.field, "namespace": reach.namespace, "host": reach.host}))
        .collect();
    json!({
        "action": change.action.as_str(),
        "permission": change.permission,
        "host": change.host,
        "subject": change.subject,
        "operations": change.operations.iter().map(Operation::to_record).collect::<Vec<_>>(),
        "reaches": reaches,
        "reverts": change.reverts,
        "revertedTimeMs": change.reverted_time_ms,
        "before": before.objects(),
        "versions": versions,
    })
}

/// The proposal's change, by its proposer, planned against the objects as they were.
fn change_of(proposal: &Proposal) -> Option<Change> {
    let stored: Value = serde_json::from_str(&proposal.change).ok()?;
    let action = Action::parse(stored["action"].as_str()?)?;
    let permission: Permission = serde_json::from_value(stored["permission"].clone()).ok()?;
    let subject: ObjectRef = serde_json::from_value(stored["subject"].clone()).ok()?;
    let operations: Vec<Operation> =
        stored["operations"].as_array()?.iter().map(Operation::from_record).collect::<Option<_>>()?;
    let reaches = stored["reaches"].as_array()?.iter().map(|reach| {
        Some(Reach {
            field: reach["field"].as_str()?.to_owned(),
            namespace: reach["namespace"].as_str()?.to_owned(),
            host: reach["host"].as_str().map(String::from),
        })
    });
    let before: Vec<Option<Value>> = serde_json::from_value(stored["before"].clone()).ok()?;
    let versions: Vec<Option<String>> = serde_json::from_value(stored["versions"].clone()).ok()?;
    let groups: Vec<String> = serde_json::from_str(&proposal.proposer_groups).unwrap_or_default();
    let source = if proposal.source == Source::Api.as_str() { Source::Api } else { Source::Ui };
    let origin =
        super::Origin { actor: Actor::user(&proposal.proposer, groups), source, request_id: None, emergency: None };
    let change = Change::new(&origin, action, permission, &proposal.namespace, subject, proposal.summary.clone());
    Some(Change {
        host: stored["host"].as_str().map(String::from),
        operations,
        reaches: reaches.collect::<Option<_>>()?,
        reverts: stored["reverts"].as_i64(),
        reverted_time_ms: stored["revertedTimeMs"].as_i64(),
        planned_against: Some(PlannedOn { objects: Documents::new(before), versions }),
        ..change
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Kind;

    #[test]
    fn a_stored_change_reads_back_as_planned() {
        let origin = super::super::Origin {
            actor: Actor::user("alice", vec!["team".into()]),
            source: Source::Api,
            request_id: None,
            emergency: None,
        };
        let target = ObjectRef::namespaced(Kind::VirtualService, "prod", "recommendation");
        let object = json!({"kind": "VirtualService", "metadata": {"name": "recommendation"}, "spec": {"hosts": ["recommendation"]}});
        let mut change =
            Change::new(&origin, Action::RouteUpdate, Permission::Route, "prod", target.clone(), "s".into());
        change.host = Some("recommendation".into());
        change.operations = vec![Operation::Apply { target, object: object.clone() }];
        change.reaches = vec![Reach {
            field: "rules[0].mirrors[0]".into(),
            namespace: "prod".into(),
            host: Some("preference".into()),
        }];
        let before = Documents::new(vec![Some(object)]);
        let stored = record(&change, &before, &[Some("41".into())]);
        let proposal = Proposal {
            id: 1,
            created_ms: 0,
            expires_ms: 1,
            proposer: "alice".into(),
            proposer_groups: r#"["team"]"#.into(),
            source: "api".into(),
            namespace: "prod".into(),
            host: Some("recommendation".into()),
            action: "route.update".into(),
            summary: "s".into(),
            change: stored.to_string(),
            diff: String::new(),
            audit_id: 1,
            status: "open".into(),
            decided_by: None,
            decided_ms: None,
            reason: None,
            outcome_audit_id: None,
        };
        let read = change_of(&proposal).unwrap();
        assert_eq!(
            (read.action, read.permission, read.host.as_deref()),
            (Action::RouteUpdate, Permission::Route, Some("recommendation"))
        );
        let records = |ops: &[Operation]| ops.iter().map(Operation::to_record).collect::<Vec<_>>();
        assert_eq!(records(&read.operations), records(&change.operations));
        assert_eq!(read.reaches, change.reaches);
        assert_eq!(read.actor, change.actor);
        assert_eq!(read.planned_against.unwrap().versions, [Some("41".to_owned())]);
        assert_eq!(proposal.state_at(5), "expired", "open past its time");
    }
}
