//! The one path every cluster mutation takes:
//! authorize → validate → server-side dry run, while the `pending` audit record is written
//! → apply → audit outcome. Nothing is applied unless the dry run passed and the record is
//! written: if the audit record cannot be written, nothing is applied. The dry run of a
//! change just previewed, unchanged and against unmoved objects, is its preview's (`verdicts.rs`);
//! a change planned from the watch caches is dry-run while its live objects are read, and
//! that dry run counts only if they are the objects it was planned on.
mod action;
pub mod approval;
pub mod canary;
pub mod documents;
pub mod events;
pub mod failpoint;
pub mod gitops;
pub mod http_routes;
pub mod outside;
mod own_writes;
pub mod owners;
pub mod reads;
mod recover;
pub mod refusals;
pub mod revert;
pub mod rollout;
pub mod routes;
mod verdicts;
pub mod workloads;

use std::sync::Arc;

use serde_json::Value;

use crate::audit::{AuditStore, NewEntry, Outcome, Source};
use crate::authz::{Actor, Authorizer, Denial, Permission};
use crate::cluster::bounded::same_content;
use crate::cluster::{ClusterError, Kind, ObjectRef, Objects, Operation, without_server_fields};
use crate::metrics::Metrics;
use crate::policy::{self, FieldHint, Reach};
use crate::problem::{FieldProblem, describe};
use crate::propagation::{Baseline, OnSettled, Propagation};

pub use action::Action;
pub use documents::{Documents, diff, diff_labeled};
use failpoint::Failpoint;
pub use recover::resolve_pending;

/// How an emergency change's audit summary starts (the audit pages highlight it).
pub const EMERGENCY: &str = "EMERGENCY";

/// Who asks for a change, and through what.
#[derive(Debug, Clone)]
pub struct Origin {
    pub actor: Actor,
    pub source: Source,
    pub request_id: Option<String>,
    /// Why a namespace admin changes a frozen namespace anyway (`?emergency=<reason>`).
    pub emergency: Option<String>,
}

/// A requested mutation, as a value.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: Actor,
    pub source: Source,
    pub request_id: Option<String>,
    pub action: Action,
    pub permission: Permission,
    pub namespace: String,
    /// The host (service) the change concerns, for team ownership; None: namespace-wide.
    pub host: Option<String>,
    /// The object the audit entry is filed under.
    pub subject: ObjectRef,
    pub summary: String,
    pub operations: Vec<Operation>,
    /// Problems found by the domain's validation; any problem stops the change.
    pub problems: Vec<FieldProblem>,
    /// Where in the request Istio's webhook messages belong (see [`policy::locate`]).
    pub field_hints: Vec<FieldHint>,
    /// Other hosts the change sends traffic to (mirrors, redirects, delegates): each is
    /// authorized like a change to that host.
    pub reaches: Vec<Reach>,
    /// The audit entry this change reverts.
    pub reverts: Option<i64>,
    /// When the reverted change was made (ms since the epoch): reverting a change made
    /// during a freeze stays allowed in it.
    pub reverted_time_ms: Option<i64>,
    /// An admin's reason for changing a frozen namespace (see [`Origin::emergency`]).
    pub emergency: Option<String>,
    /// Who approved it, for a proposal's change (`approval.rs`).
    pub approved_by: Option<String>,
    /// Set when the change was planned from the watch caches: per operation, its object as
    /// planned and its resourceVersion (None: planned as absent). The path reads the live
    /// objects and, when one differs, answers [`ChangeError::Stale`] without recording
    /// anything, for the planner to plan again from a live read.
    pub planned_against: Option<PlannedOn>,
}

/// The objects a change was planned on (from the watch caches), in operation order.
#[derive(Debug, Clone)]
pub struct PlannedOn {
    pub objects: Documents,
    pub versions: Vec<Option<String>>,
}

impl Change {
    /// A change with nothing planned yet: each kind of change (workloads, routes, canaries,
    /// reverts) starts here and adds its operations, host and checks.
    pub fn new(
        origin: &Origin,
        action: Action,
        permission: Permission,
        namespace: &str,
        subject: ObjectRef,
        summary: String,
    ) -> Self {
        Change {
            actor: origin.actor.clone(),
            source: origin.source,
            request_id: origin.request_id.clone(),
            action,
            permission,
            namespace: namespace.to_owned(),
            host: None,
            subject,
            summary,
            operations: Vec::new(),
            problems: Vec::new(),
            field_hints: Vec::new(),
            reaches: Vec::new(),
            reverts: None,
            reverted_time_ms: None,
            emergency: origin.emergency.clone(),
            approved_by: None,
            planned_against: None,
        }
    }
}

/// Why a change did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Denied(Denial),
    #[error("invalid request: {}", describe(.0))]
    Invalid(Vec<FieldProblem>),
    #[error("{0}")]
    Cluster(ClusterError),
    #[error("the audit log cannot be written, so nothing was changed: {0}")]
    AuditUnavailable(String),
    /// Planned from a cache that was behind the live objects (see [`Change::planned_against`]):
    /// nothing was recorded or changed.
    #[error("{0} changed since the change was planned; plan it again")]
    Stale(String),
    /// Refused, and too many refusals were recorded for this actor (or overall) lately:
    /// not recorded either.
    #[error("too many refused attempts lately; try again later (see Retry-After)")]
    TooManyRefusals(std::time::Duration),
    /// Held for a second person's approval as a proposal; nothing changed (202).
    #[error(
        "held for approval as proposal #{}, awaiting approval: {} — another person who may make this change approves it \
         on the Proposals page",
        .0.proposal_id,
        .0.summary
    )]
    Held(approval::Held),
    /// It would overwrite or delete an object a GitOps tool owns (`--gitops=refuse`).
    #[error("{}", .0.message())]
    Owned(gitops::OwnedObject),
    /// The namespace is in a change freeze, and the change is not one that stays allowed.
    #[error(
        "namespace {namespace} is frozen: {} — changes are refused until {}; aborting or pausing a canary and \
         reverting a change made during the freeze stay allowed{}",
        freeze.describe(),
        freeze.to,
        if *.emergency_refused { "; only a namespace admin may make an emergency change" } else { "; a namespace admin may make an emergency change with ?emergency=<reason>" }
    )]
    Frozen { namespace: String, freeze: crate::authz::policies::Freeze, emergency_refused: bool },
}

/// The planned result of a change, from the API server's dry run.
#[derive(Debug, Clone)]
pub struct Preview {
    pub before: Documents,
    pub after: Documents,
    /// Objects it writes that a GitOps tool owns: applying it is refused (or warned about)
    /// per `--gitops`; the preview's objects are what to commit to Git instead.
    pub owned: Vec<gitops::OwnedObject>,
}

impl Preview {
    pub fn diff(&self) -> String {
        diff(&self.before, &self.after)
    }
}

/// A change that was applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub audit_id: i64,
    pub after: Documents,
}

#[derive(Clone)]
pub struct ChangePath {
    objects: Objects,
    audit: AuditStore,
    authorizer: Authorizer,
    metrics: Arc<Metrics>,
    /// Objects this process is writing or wrote lately, so watchers do not mistake the
    /// echo of our own writes for outside changes.
    own_writes: own_writes::OwnWrites,
    /// Every change between its pending audit entry and its outcome holds a read guard;
    /// shutdown takes the write lock to wait for them ([`ChangePath::drain`]).
    in_flight: Arc<tokio::sync::RwLock<()>>,
    /// Crash tests only (`failpoint.rs`): where changes stop for good.
    failpoint: Option<Failpoint>,
    /// Follows applied routing changes to the proxies (with `--istiod-url`).
    propagation: Propagation,
    /// Kubernetes Events for applied changes, when set.
    events: Option<events::ChangeEvents>,
    /// How many refused attempts are recorded (`refusals.rs`).
    refusals: Arc<refusals::RefusalLimiter>,
    /// Previews' dry runs, standing for the apply of exactly what was previewed.
    verdicts: Arc<verdicts::DryRunVerdicts>,
    /// What a write over an object a GitOps tool owns gets (`--gitops`).
    gitops: gitops::GitopsMode,
}

impl ChangePath {
    pub fn new(objects: Objects, audit: AuditStore, authorizer: Authorizer, metrics: Arc<Metrics>) -> Self {
        Self {
            objects,
            audit,
            authorizer,
            metrics,
            own_writes: Default::default(),
            in_flight: Default::default(),
            failpoint: Failpoint::from_env(),
            gitops: gitops::GitopsMode::default(),
            propagation: Propagation::default(),
            events: None,
            refusals: Default::default(),
            verdicts: Default::default(),
        }
    }

    /// What a change over an object a GitOps tool owns gets (`--gitops`).
    pub fn with_gitops(mut self, mode: gitops::GitopsMode) -> Self {
        self.gitops = mode;
        self
    }

    pub fn gitops(&self) -> gitops::GitopsMode {
        self.gitops
    }

    /// Follows applied routing changes to the proxies through `propagation`.
    pub fn with_propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = propagation;
        self
    }

    /// Publishes a Kubernetes Event for every applied change.
    pub fn with_events(mut self, events: events::ChangeEvents) -> Self {
        self.events = Some(events);
        self
    }

    pub fn propagation(&self) -> &Propagation {
        &self.propagation
    }

    /// Waits, at most `within`, until no change is between its pending entry and its
    /// outcome. Returns false when some still are: their entries stay pending, and the next
    /// start resolves them against the cluster.
    pub async fn drain(&self, within: std::time::Duration) -> bool {
        tokio::time::timeout(within, self.in_flight.write()).await.is_ok()
    }

    /// Whether `holds(target, version)` — do the watch caches hold this object at this
    /// version (None: absent) — is true of every write signalbox made in `namespace` lately:
    /// then a read from the caches shows a client its own writes.
    pub fn caches_hold_own_writes(&self, namespace: &str, holds: impl Fn(&ObjectRef, Option<&str>) -> bool) -> bool {
        self.own_writes
            .recent_in(namespace)
            .is_some_and(|writes| writes.iter().all(|(target, version)| holds(target, version.as_deref())))
    }

    /// Whether a change to `target` seen by a watch was signalbox's own; waits for a write
    /// to it still in flight to answer first.
    pub async fn wrote(&self, target: &ObjectRef, resource_version: Option<&str>) -> bool {
        self.own_writes.settled(target).await;
        self.own_writes.wrote(target, resource_version)
    }

    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }

    /// Authorizes, validates and dry-runs the change; changes nothing and writes no audit entry.
    pub async fn preview(&self, change: &Change) -> Result<Preview, ChangeError> {
        self.authorize_and_validate(change)?;
        let (before, versions) = self.read_before(change).await.map_err(ChangeError::Cluster)?;
        stale_plan(change, (&before, &versions))?;
        self.authorize_operations(change, &before).await?;
        let after =
            self.run_all(change, (&before, &versions), true).await.map_err(|halted| judged(change, halted.error))?;
        self.metrics.observe_dry_run("ran");
        self.verdicts.keep(&change.operations, &versions, &after);
        let owned = owned_writes(change, &before);
        Ok(Preview { before, after, owned })
    }

    /// Runs the whole path. Every attempt leaves exactly one audit entry.
    ///
    /// The path runs in a task of its own: neither a client hanging up nor the request
    /// timeout (both drop the handler's future) can stop it half-way — say between writing
    /// the pending entry and applying, or between applying and recording the outcome.
    /// Shutdown waits for it ([`ChangePath::drain`]).
    pub async fn execute(&self, change: Change) -> Result<Applied, ChangeError> {
        if self.held_for_approval(&change) {
            return Err(ChangeError::Held(self.propose(change).await?));
        }
        let path = self.clone();
        // The request's span (request id) follows the change into its task.
        let running = tokio::spawn(tracing::Instrument::in_current_span(async move { path.run_path(change).await }));
        running.await.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// The path's first step on its own, for requests refused while their change is built
    /// (a stale version, nothing to do, an ambiguous host): an actor who may not make the
    /// change gets the path's 403, audited as a denied attempt, rather than that conflict.
    /// A dry run's refusal is not audited, as [`Self::preview`]'s is not.
    pub async fn authorize_first(&self, attempt: &Change, dry_run: bool) -> Result<(), ChangeError> {
        let checked =
            self.authorizer.check(&attempt.actor, attempt.permission, &attempt.namespace, attempt.host.as_deref());
        let Err(denial) = checked else { return Ok(()) };
        if dry_run {
            return Err(ChangeError::Denied(denial));
        }
        if let Err(retry_after) = self.admit_refusal(attempt) {
            return Err(ChangeError::TooManyRefusals(retry_after));
        }
        let error = ChangeError::Denied(denial);
        self.record_refusal(attempt, Outcome::Denied, None, &error).await;
        Err(error)
    }

    async fn run_path(&self, change: Change) -> Result<Applied, ChangeError> {
        if let Err(error) = self.authorize_and_validate(&change) {
            return Err(self.refused(&change, None, error).await);
        }
        let change = self.marked_if_emergency(change);
        let Ready { before, versions, dry_run, pending } = match self.read_while_dry_running(&change).await {
            Some(ready) => ready?,
            None => self.read_then_dry_run(&change).await?,
        };
        // The guard is held until the outcome is recorded, so that shutdown waits for it.
        let (planned, (audit_id, _in_flight)) = match (dry_run, pending) {
            (Ok(planned), Ok(pending)) => (planned, pending),
            (Err(halted), Ok((audit_id, _))) => {
                return Err(self.refused_after_recording(&change, audit_id, halted.error).await);
            }
            (Err(halted), Err(_)) => return Err(judged(&change, halted.error)),
            (Ok(_), Err(unrecorded)) => return Err(unrecorded),
        };
        Failpoint::reached(self.failpoint, Failpoint::AfterAuditWrite, audit_id).await;
        // Taken just before the apply: what istiod had sent each proxy until now.
        let baseline = match routed_host(&change) {
            Some(_) if self.propagation.istiod().is_none() => None,
            Some(_) if !changes_routing_specs(&change, &before, &planned) => {
                Some(Baseline::unchanged(&change.namespace))
            }
            Some(_) => Some(self.propagation.baseline(&change.namespace).await),
            None => None,
        };
        let result = match self.run_all(&change, (&before, &versions), false).await {
            Ok(after) => Ok(after),
            Err(halted) if halted.applied > 0 => Err(self.roll_back(&change, &before, halted).await),
            Err(halted) => Err(halted.error),
        };
        Failpoint::reached(self.failpoint, Failpoint::AfterApply, audit_id).await;
        let applied = self.finish(&change, audit_id, result).await;
        if let (Ok(applied), Some(baseline), Some(host)) = (&applied, baseline, routed_host(&change)) {
            self.follow_to_proxies(&change, host, applied.audit_id, baseline);
        }
        applied
    }

    /// The live objects, checked against the plan and authorized; then the dry run, while
    /// the pending entry is written.
    async fn read_then_dry_run(&self, change: &Change) -> Result<Ready, ChangeError> {
        let (before, versions) = match self.read_before(change).await {
            Ok(read) => read,
            Err(error) => return Err(self.refused_by_cluster(change, None, error).await),
        };
        stale_plan(change, (&before, &versions))?;
        if let Err(error) = self.judge_writes(change, &before).await {
            return Err(self.refused(change, Some(&before), error).await);
        }
        let (dry_run, pending) =
            tokio::join!(self.dry_run(change, (&before, &versions)), self.record_pending(change, (&before, &versions)));
        Ok(Ready { before, versions, dry_run, pending })
    }

    /// For a change planned from the caches, whose operations are authorized on the objects
    /// it was planned on: the dry run of those objects runs while the live ones are read and
    /// the pending entry written, and counts only when every live object is at the version it
    /// was planned on
    /// (then they are the same objects, so the authorization and the dry run hold for them
    /// too; the writes carry that version, so the API server refuses them if it moved).
    /// None: not such a change, or not authorized on the planned objects; the path then
    /// reads first and judges the live objects.
    async fn read_while_dry_running(&self, change: &Change) -> Option<Result<Ready, ChangeError>> {
        let planned = change.planned_against.as_ref()?;
        self.judge_writes(change, &planned.objects).await.ok()?;
        let read_and_record = async {
            let (before, versions) = self.read_before(change).await.map_err(Err)?;
            stale_plan(change, (&before, &versions)).map_err(Ok)?;
            let pending = self.record_pending(change, (&before, &versions)).await;
            Ok::<_, Result<ChangeError, ClusterError>>((before, versions, pending))
        };
        let dry_run = self.dry_run(change, (&planned.objects, &planned.versions));
        let (read, dry_run) = tokio::join!(read_and_record, dry_run);
        Some(match read {
            Ok((before, versions, pending)) => Ok(Ready { before, versions, dry_run, pending }),
            Err(Ok(stale)) => Err(stale),
            Err(Err(unread)) => Err(self.refused_by_cluster(change, None, unread).await),
        })
    }

    /// Writes the pending entry, with the operations, so that after a crash startup can tell
    /// whether the change reached the cluster; nothing is applied without it. The guard is
    /// held until the outcome is recorded, so that shutdown waits for the change.
    async fn record_pending(
        &self,
        change: &Change,
        (before, versions): (&Documents, &[Option<String>]),
    ) -> Result<Pending, ChangeError> {
        let in_flight = self.in_flight.clone().read_owned().await;
        let mut pending = self.entry(change, Outcome::Pending, Some(before), None, None);
        pending.kind = filed_under(change, (before, versions)).to_string();
        let audit_id = self.audit.record(&pending).await.map_err(|error| {
            self.metrics.observe_change(change.action.as_str(), "refused");
            ChangeError::AuditUnavailable(error.to_string())
        })?;
        Ok((audit_id, in_flight))
    }

    /// The dry run refused a change whose pending entry was written meanwhile: the entry is
    /// resolved as failed with the API server's (or Istio's) message, as a refusal is.
    async fn refused_after_recording(&self, change: &Change, audit_id: i64, error: ClusterError) -> ChangeError {
        let error = judged(change, error);
        let message = error.to_string();
        if let Err(audit_error) = self.audit.resolve(audit_id, Outcome::Failed, None, Some(&message)).await {
            tracing::error!(audit_id, %audit_error, "could not record the outcome of a refused change");
        }
        self.metrics.observe_change(change.action.as_str(), Outcome::Failed.as_str());
        log_outcome(change, Outcome::Failed.as_str(), Some(&message));
        error
    }

    /// The API server's dry run of the change, or the one a preview made of exactly these
    /// operations on the objects as they are now (read live just before): applying what was
    /// previewed does not pay the same round trips through istiod's webhook twice.
    async fn dry_run(&self, change: &Change, live: (&Documents, &[Option<String>])) -> Result<Documents, Halted> {
        if let Some(previewed) = self.verdicts.take(&change.operations, live.1) {
            self.metrics.observe_dry_run("previewed");
            return Ok(previewed);
        }
        let planned = self.run_all(change, live, true).await?;
        self.metrics.observe_dry_run("ran");
        Ok(planned)
    }

    /// Follows an applied routing change until the proxies have it, then records when (a
    /// follow-up audit record: it never holds the change up).
    fn follow_to_proxies(&self, change: &Change, host: &str, audit_id: i64, baseline: Baseline) {
        let clusters_changed = change.operations.iter().any(|op| op.target().kind == Kind::DestinationRule);
        let audit = self.audit.clone();
        let on_settled: OnSettled = Box::new(move |audit_id, view| {
            Box::pin(async move {
                let detail = serde_json::to_value(&view).ok();
                if let Err(error) = audit.record_propagation(audit_id, &view.summary, detail.as_ref()).await {
                    tracing::warn!(audit_id, %error, "could not record when the proxies had a change");
                }
            })
        });
        self.propagation.track(host, audit_id, baseline, clusters_changed, on_settled);
    }

    /// Whether one more refusal of this actor may be recorded; signalbox's own are not limited.
    fn admit_refusal(&self, change: &Change) -> Result<(), std::time::Duration> {
        if change.actor.system {
            return Ok(());
        }
        self.refusals.admit(&change.actor.name).inspect_err(|_| {
            self.metrics.observe_change(change.action.as_str(), "rate-limited");
            tracing::warn!(actor = %change.actor.name, action = %change.action, "refused attempt not recorded: over the rate limit");
        })
    }

    fn authorize_and_validate(&self, change: &Change) -> Result<(), ChangeError> {
        self.authorizer
            .check(&change.actor, change.permission, &change.namespace, change.host.as_deref())
            .map_err(ChangeError::Denied)?;
        for reach in &change.reaches {
            let target = reach.host.as_deref();
            if self.authorizer.check(&change.actor, change.permission, &reach.namespace, target).is_err() {
                return Err(ChangeError::Denied(Denial::Reaches {
                    actor: change.actor.name.clone(),
                    field: reach.field.clone(),
                    target: match target {
                        Some(host) => format!("{host} in namespace {}", reach.namespace),
                        None => format!("anything in namespace {} (not one host)", reach.namespace),
                    },
                }));
            }
        }
        self.check_freeze(change)?;
        if change.problems.is_empty() { Ok(()) } else { Err(ChangeError::Invalid(change.problems.clone())) }
    }

    /// A change refused before anything was written, with the objects read so far: recorded
    /// as denied (by who may do what, a freeze or an owner) or failed, within the refusal
    /// rate limit; an API server that did not answer is the cluster's failure, not limited.
    async fn refused(&self, change: &Change, before: Option<&Documents>, error: ChangeError) -> ChangeError {
        if let ChangeError::Cluster(error) = error {
            return self.refused_by_cluster(change, before, error).await;
        }
        if let Err(retry_after) = self.admit_refusal(change) {
            return ChangeError::TooManyRefusals(retry_after);
        }
        let denied = matches!(error, ChangeError::Denied(_) | ChangeError::Frozen { .. } | ChangeError::Owned(_));
        let outcome = if denied { Outcome::Denied } else { Outcome::Failed };
        self.record_refusal(change, outcome, before, &error).await;
        error
    }

    /// Whether the change may write over `before`: each operation authorized for the
    /// objects it writes (`authorize_operations`), and, with `--gitops=refuse`, none of them
    /// owned by a GitOps tool (else the first such object, with its owner). A preview asks
    /// only the first: its dry run answers for owned objects too.
    async fn judge_writes(&self, change: &Change, before: &Documents) -> Result<(), ChangeError> {
        self.authorize_operations(change, before).await?;
        if self.gitops != gitops::GitopsMode::Refuse {
            return Ok(());
        }
        match owned_writes(change, before).into_iter().next() {
            Some(owned) => Err(ChangeError::Owned(owned)),
            None => Ok(()),
        }
    }

    /// An emergency change in a freeze says so first in its audit summary, with the admin's
    /// reason and the freeze it went through.
    fn marked_if_emergency(&self, change: Change) -> Change {
        let freeze = self.authorizer.freeze(&change.namespace, jiff::Timestamp::now());
        match (&change.emergency, freeze) {
            (Some(reason), Some(freeze)) if !change.summary.starts_with(EMERGENCY) => {
                let summary =
                    format!("{EMERGENCY} ({reason}) during the freeze {}: {}", freeze.describe(), change.summary);
                Change { summary, ..change }
            }
            _ => change,
        }
    }

    /// In a freeze, only what makes things safer goes through: aborting or pausing a canary,
    /// reverting a change made during the freeze, and a namespace admin's emergency change.
    fn check_freeze(&self, change: &Change) -> Result<(), ChangeError> {
        let Some(freeze) = self.authorizer.freeze(&change.namespace, jiff::Timestamp::now()) else {
            return Ok(());
        };
        let made_during = |ms: i64| jiff::Timestamp::from_millisecond(ms).is_ok_and(|at| freeze.covers(at));
        let safer = matches!(change.action, Action::CanaryAbort | Action::CanaryPause)
            || (change.action == Action::Revert && change.reverted_time_ms.is_some_and(made_during));
        if safer {
            return Ok(());
        }
        let admin = self.authorizer.allows(&change.actor, Permission::Admin, &change.namespace, None);
        if change.emergency.is_some() && admin {
            return Ok(());
        }
        Err(ChangeError::Frozen {
            namespace: change.namespace.clone(),
            freeze,
            emergency_refused: change.emergency.is_some(),
        })
    }

    /// Each operation needs the change's permission for the objects it writes, replaces or
    /// deletes (`owners.rs`): read after the live objects, since what a delete removes, or an
    /// apply overwrites, is known only from them. The Services an HTTPRoute sends traffic to
    /// are read too: whose they are is known only from their selectors.
    async fn authorize_operations(&self, change: &Change, before: &Documents) -> Result<(), ChangeError> {
        let services = owners::services_to_read(&change.operations, before.objects());
        let reads = services.iter().map(|service| self.objects.get(service));
        let services: Vec<Value> =
            futures::future::try_join_all(reads).await.map_err(ChangeError::Cluster)?.into_iter().flatten().collect();
        let (operations, live) = (&change.operations, before.objects());
        owners::authorize(&self.authorizer, &change.actor, change.permission, operations, live, &services)
            .map_err(ChangeError::Denied)
    }

    /// The live objects the operations write, read at once (they are independent reads),
    /// and their resourceVersions (which the documents leave out).
    async fn read_before(&self, change: &Change) -> Result<(Documents, Vec<Option<String>>), ClusterError> {
        let reads = change.operations.iter().map(|operation| self.objects.get(operation.target()));
        Ok(with_versions(futures::future::try_join_all(reads).await?))
    }

    /// Runs the operations in order; stops at the first that fails, saying how many were
    /// applied before it. An apply that would leave its object as it is (`before`) is neither
    /// dry-run nor written: a weights change leaves the DestinationRule, and its round trips
    /// through istiod's webhook were most of a change's time; the record still shows the
    /// object. A dry run of objects in existing namespaces runs them all at once: nothing
    /// persists, so no dry run depends on another.
    async fn run_all(
        &self,
        change: &Change,
        (before, versions): (&Documents, &[Option<String>]),
        dry_run: bool,
    ) -> Result<Documents, Halted> {
        let live = before.objects().iter().zip(versions).map(|(object, version)| (object.as_ref(), version.as_deref()));
        let operations = change.operations.iter().zip(live);
        let creates_namespace = change.operations.iter().any(|op| op.target().kind == Kind::Namespace);
        if dry_run && !creates_namespace {
            let runs = operations.map(|(operation, was)| async move {
                match left_as_is(operation, was) {
                    Some(live) => Ok(Some(live.clone())),
                    None => self.objects.run(operation, true).await,
                }
            });
            let results = futures::future::join_all(runs).await;
            let mut after = Vec::with_capacity(results.len());
            for (index, result) in results.into_iter().enumerate() {
                after.push(result.map_err(|error| Halted { applied: index, error })?);
            }
            return Ok(Documents::new(after));
        }
        let mut after = Vec::with_capacity(change.operations.len());
        let mut created_namespaces = Vec::new();
        for (index, (operation, was)) in operations.enumerate() {
            let halted = |error: ClusterError| Halted { applied: index, error };
            if !dry_run && index > 0 && self.failpoint == Some(Failpoint::FailAfterFirstWrite) {
                let error = "failpoint fail-after-first-write: the API server stopped answering".to_owned();
                return Err(halted(ClusterError::Unreachable(error)));
            }
            if let Some(live) = left_as_is(operation, was) {
                after.push(Some(live.clone()));
                continue;
            }
            let target = operation.target();
            let in_new_namespace = target.namespace.as_ref().is_some_and(|ns| created_namespaces.contains(ns));
            match operation {
                // A dry run persists nothing, so objects inside a namespace this same change
                // creates cannot be dry-run yet: their plan is the object as requested.
                Operation::Apply { object, .. } | Operation::Create { object, .. } if dry_run && in_new_namespace => {
                    after.push(Some(object.clone()))
                }
                _ => {
                    let writing = (!dry_run).then(|| self.own_writes.begin(target));
                    let preconditioned = if dry_run { None } else { preconditioned(change, operation, was.1) };
                    let result = self.objects.run(preconditioned.as_ref().unwrap_or(operation), dry_run).await;
                    if let Some(_writing) = writing {
                        self.own_writes.note(operation, result.as_ref().ok().and_then(Option::as_ref));
                    }
                    after.push(result.map_err(halted)?)
                }
            }
            if target.kind == Kind::Namespace
                && dry_run
                && matches!(operation, Operation::Apply { .. })
                && self.objects.get(target).await.map_err(halted)?.is_none()
            {
                created_namespaces.push(target.name.clone());
            }
        }
        Ok(Documents::new(after))
    }

    /// Puts back what the first `halted.applied` operations changed (each object as it was
    /// before, or deleted when it did not exist), newest first, so that a change is applied
    /// whole or not at all: a DestinationRule without the subset its VirtualService still
    /// routes to would fail requests. The error says what was applied and rolled back.
    async fn roll_back(&self, change: &Change, before: &Documents, halted: Halted) -> ClusterError {
        let mut undone = Vec::new();
        let mut failures = Vec::new();
        for (operation, was) in change.operations.iter().zip(before.objects()).take(halted.applied).rev() {
            let target = operation.target().clone();
            let undo = match was {
                Some(object) => {
                    Operation::Apply { target: target.clone(), object: without_server_fields(object.clone()) }
                }
                None => Operation::Delete { target: target.clone() },
            };
            let writing = self.own_writes.begin(&target);
            let result = self.objects.run(&undo, false).await;
            self.own_writes.note(&undo, result.as_ref().ok().and_then(Option::as_ref));
            drop(writing);
            match result {
                Ok(_) => undone.push(target.to_string()),
                Err(error) => failures.push(format!("{target}: {error}")),
            }
        }
        let failed_at = change.operations[halted.applied].target();
        let summary = if failures.is_empty() {
            format!("{failed_at} failed after {} was written; rolled back {}", undone.join(", "), undone.join(", "))
        } else {
            format!(
                "{failed_at} failed after earlier writes; the cluster holds a partial change: rolling back failed for {}",
                failures.join("; ")
            )
        };
        match halted.error {
            ClusterError::Unreachable(message) => ClusterError::Unreachable(format!("{message} ({summary})")),
            ClusterError::Refused { code, reason, message } => {
                ClusterError::Refused { code, reason, message: format!("{message} ({summary})") }
            }
        }
    }

    async fn finish(
        &self,
        change: &Change,
        audit_id: i64,
        result: Result<Documents, ClusterError>,
    ) -> Result<Applied, ChangeError> {
        let (outcome, after, error) = match &result {
            Ok(after) => (Outcome::Applied, Some(after.to_document()), None),
            Err(error) => (Outcome::Failed, None, Some(error.to_string())),
        };
        if let Err(audit_error) = self.audit.resolve(audit_id, outcome, after.as_ref(), error.as_deref()).await {
            // The entry stays pending; startup resolves it by comparing with the cluster.
            tracing::error!(audit_id, %audit_error, "could not record the outcome of a change");
        }
        self.metrics.observe_change(change.action.as_str(), outcome.as_str());
        log_outcome(change, outcome.as_str(), error.as_deref());
        if let (Ok(_), Some(events)) = (&result, &self.events) {
            events.applied(change, audit_id);
        }
        match result {
            Ok(after) => Ok(Applied { audit_id, after }),
            Err(error) => Err(ChangeError::Cluster(error)),
        }
    }

    async fn refused_by_cluster(
        &self,
        change: &Change,
        before: Option<&Documents>,
        error: ClusterError,
    ) -> ChangeError {
        let error = judged(change, error);
        self.record_refusal(change, Outcome::Failed, before, &error).await;
        error
    }

    /// Records a refused attempt with an excerpt of what it asked for (`refusals.rs`).
    async fn record_refusal(&self, change: &Change, outcome: Outcome, before: Option<&Documents>, error: &ChangeError) {
        let entry = refusals::bounded(self.entry(change, outcome, before, None, Some(error.to_string())));
        if let Err(audit_error) = self.audit.record(&entry).await {
            tracing::error!(%audit_error, action = %change.action, "could not audit a refused change");
        }
        self.metrics.observe_change(change.action.as_str(), outcome.as_str());
        log_outcome(change, outcome.as_str(), Some(&error.to_string()));
    }

    fn entry(
        &self,
        change: &Change,
        outcome: Outcome,
        before: Option<&Documents>,
        after: Option<&Documents>,
        error: Option<String>,
    ) -> NewEntry {
        NewEntry {
            actor: change.actor.name.clone(),
            groups: change.actor.groups.clone(),
            source: change.source,
            action: change.action.to_string(),
            namespace: change.namespace.clone(),
            kind: change.subject.kind.to_string(),
            name: change.subject.name.clone(),
            summary: self.summary_of(change, before),
            before: before.map(Documents::to_document),
            after: after.map(Documents::to_document),
            operations: Value::Array(change.operations.iter().map(Operation::to_record).collect()),
            outcome,
            error,
            request_id: change.request_id.clone(),
            reverts: change.reverts,
        }
    }

    /// The change's summary; with `--gitops=warn`, followed by what it overwrites that a
    /// GitOps tool owns.
    fn summary_of(&self, change: &Change, before: Option<&Documents>) -> String {
        let owned = match (self.gitops, before) {
            (gitops::GitopsMode::Warn, Some(before)) => owned_writes(change, before),
            _ => Vec::new(),
        };
        if owned.is_empty() {
            return change.summary.clone();
        }
        let warnings: Vec<String> = owned.iter().map(gitops::OwnedObject::message).collect();
        format!("{} — warning: {}", change.summary, warnings.join("; "))
    }
}

/// The objects and their resourceVersions (which the documents leave out).
fn with_versions(objects: Vec<Option<Value>>) -> (Documents, Vec<Option<String>>) {
    let version = |object: &Value| object["metadata"]["resourceVersion"].as_str().map(String::from);
    let versions = objects.iter().map(|object| object.as_ref().and_then(version)).collect();
    (Documents::new(objects), versions)
}

/// The apply of a change planned from the caches, with the version its object was read at
/// live as a precondition: the API server refuses it (409) when the object moved between
/// that read and the write, so the record's `before` is what the write replaced. (The read
/// is a quorum read: one from the API server's watch cache may lag behind etcd, and the
/// precondition then refused a change the live read would have planned again.) A version
/// the operation names already (what a client read, or what a proposal was planned on) gives
/// way to the live one: [`stale_plan`] found the object saying what it said then. None: no
/// such apply.
fn preconditioned(change: &Change, operation: &Operation, read_at: Option<&str>) -> Option<Operation> {
    let (Some(_), Operation::Apply { target, object }, Some(version)) = (&change.planned_against, operation, read_at)
    else {
        return None;
    };
    let mut object = object.clone();
    object["metadata"]["resourceVersion"] = Value::String(version.to_owned());
    Some(Operation::Apply { target: target.clone(), object })
}

/// The objects the change overwrites or deletes that a GitOps tool owns.
fn owned_writes(change: &Change, before: &Documents) -> Vec<gitops::OwnedObject> {
    let live = before.objects();
    let changes = |index: usize| left_as_is(&change.operations[index], (live[index].as_ref(), None)).is_none();
    gitops::owned_writes(&change.operations, before.owners(), changes)
}

/// The live object, when `operation` is an apply that would leave it as it is: every field
/// it sets but its metadata equal, every label and annotation it sets already there, and the
/// resourceVersion it is conditional on (if any) the live one. Creates and deletes always run.
fn left_as_is<'a>(operation: &Operation, (live, live_version): (Option<&'a Value>, Option<&str>)) -> Option<&'a Value> {
    let (Operation::Apply { object, .. }, Some(live)) = (operation, live) else { return None };
    let (Some(wanted), Some(existing)) = (object.as_object(), live.as_object()) else { return None };
    let fields_equal = wanted
        .iter()
        .filter(|(field, _)| !matches!(field.as_str(), "metadata" | "apiVersion" | "kind"))
        .all(|(field, value)| existing.get(field) == Some(value));
    let metadata_kept = |field: &str| match object["metadata"][field].as_object() {
        None => true,
        Some(wanted) => wanted.iter().all(|(key, value)| &live["metadata"][field][key] == value),
    };
    let version = object["metadata"]["resourceVersion"].as_str();
    let version_holds = version.is_none() || version == live_version;
    (fields_equal && metadata_kept("labels") && metadata_kept("annotations") && version_holds).then_some(live)
}

/// The kind a routing change (a route change, a canary step, the revert of one: its subject
/// is a routing object) is filed under: the kind of object it actually changes, judged from
/// the live objects (an apply that would leave its object as it is changes nothing; the
/// pending entry is written before the dry run answers): the object holding the rules
/// (VirtualService, HTTPRoute) when that changes, else the first routing object that does — a change that only defines subsets is a DestinationRule
/// change, a revert that only puts a VirtualService back a VirtualService change. The name
/// stays the host's, which is what the View rule and the canary history go by. A change
/// that changes nothing keeps its subject.
fn filed_under(change: &Change, (before, versions): (&Documents, &[Option<String>])) -> Kind {
    if !change.subject.kind.is_routing() {
        return change.subject.kind;
    }
    let live = before.objects().iter().zip(versions).map(|(object, version)| (object.as_ref(), version.as_deref()));
    let changed: Vec<Kind> = change
        .operations
        .iter()
        .zip(live)
        .filter(|(operation, _)| operation.target().kind.is_routing())
        .filter(|(operation, (object, version))| match operation {
            Operation::Delete { .. } => object.is_some(),
            _ => left_as_is(operation, (*object, *version)).is_none(),
        })
        .map(|(operation, _)| operation.target().kind)
        .collect();
    let holds_rules = |kind: &&Kind| matches!(kind, Kind::VirtualService | Kind::HTTPRoute);
    changed.iter().find(holds_rules).or(changed.first()).copied().unwrap_or(change.subject.kind)
}

/// Whether the change, as its dry run planned it, changes what the proxies get: a routing
/// object created, deleted, or its `spec` changed. A canary's pause, resume, or finish at
/// 100% changes only the VirtualService's annotation, for which istiod sends nothing.
fn changes_routing_specs(change: &Change, before: &Documents, planned: &Documents) -> bool {
    let spec = |object: &Option<Value>| object.as_ref().map(|object| object.get("spec").cloned());
    change
        .operations
        .iter()
        .zip(before.objects().iter().zip(planned.objects()))
        .any(|(operation, (was, will_be))| operation.target().kind.is_routing() && spec(was) != spec(will_be))
}

/// [`ChangeError::Stale`] naming the first object that changed since the change was
/// planned against it: another resourceVersion and other content. The same content at
/// another resourceVersion is istiod's analysis writing the object's status
/// (`PILOT_ENABLE_ANALYSIS`), which changes nothing the change was planned on.
fn stale_plan(change: &Change, (live, versions): (&Documents, &[Option<String>])) -> Result<(), ChangeError> {
    let Some(planned) = &change.planned_against else { return Ok(()) };
    let objects = planned.objects.objects().iter().zip(live.objects());
    for (((operation, planned_version), version), (planned, live)) in
        change.operations.iter().zip(&planned.versions).zip(versions).zip(objects)
    {
        let unchanged = matches!((planned, live), (Some(planned), Some(live)) if same_content(planned, live));
        if planned_version != version && !unchanged {
            return Err(ChangeError::Stale(operation.target().to_string()));
        }
    }
    Ok(())
}

/// A change ready to apply, or not: the live objects it writes and their resourceVersions,
/// its dry run, and its pending entry (written while the dry run ran).
struct Ready {
    before: Documents,
    versions: Vec<Option<String>>,
    dry_run: Result<Documents, Halted>,
    pending: Result<Pending, ChangeError>,
}

/// The pending entry's id, and the guard that keeps shutdown waiting for the change.
type Pending = (i64, tokio::sync::OwnedRwLockReadGuard<()>);

/// Why the operations of a change stopped: the error, and how many were applied before it.
struct Halted {
    applied: usize,
    error: ClusterError,
}

/// The host whose routing `change` writes, if it writes routing objects (Istio's or an
/// HTTPRoute).
fn routed_host(change: &Change) -> Option<&str> {
    let routes = change.operations.iter().any(|op| op.target().kind.is_routing());
    change.host.as_deref().filter(|_| routes)
}

/// An API server refusal as the user should see it: when istiod's validating webhook refused
/// (dry runs included), its messages are problems of the request, each at the field it names.
fn judged(change: &Change, error: ClusterError) -> ChangeError {
    let ClusterError::Refused { message, .. } = &error else { return ChangeError::Cluster(error) };
    match policy::webhook_messages(message) {
        Some(messages) => ChangeError::Invalid(
            messages
                .into_iter()
                .map(|m| FieldProblem::new(policy::locate(&m, &change.field_hints), format!("Istio refused this: {m}")))
                .collect(),
        ),
        None => ChangeError::Cluster(error),
    }
}

/// One structured log line per change attempt, with who, what and the request id.
fn log_outcome(change: &Change, outcome: &str, error: Option<&str>) {
    tracing::info!(
        actor = %change.actor.name,
        action = %change.action,
        namespace = %change.namespace,
        object = %change.subject,
        outcome,
        error,
        request_id = change.request_id.as_deref().unwrap_or("-"),
        "change {outcome}: {}",
        change.summary
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(object: Value) -> Operation {
        let target = ObjectRef::namespaced(Kind::DestinationRule, "tutorial", "recommendation");
        Operation::Apply { target, object }
    }

    #[test]
    fn a_change_planned_against_other_versions_than_the_live_ones_is_stale() {
        let origin = Origin {
            actor: crate::authz::Actor::system(),
            source: crate::audit::Source::System,
            request_id: None,
            emergency: None,
        };
        let target = ObjectRef::namespaced(Kind::VirtualService, "tutorial", "recommendation");
        let mut change =
            Change::new(&origin, Action::RouteUpdate, Permission::Route, "tutorial", target.clone(), "s".into());
        change.operations = vec![Operation::Apply { target, object: json!({}) }];
        let live_objects = Documents::new(vec![Some(json!({"spec": {"hosts": ["a"]}}))]);
        let live = (&live_objects, &[Some("8".to_owned())][..]);
        assert!(stale_plan(&change, live).is_ok(), "planned from a live read: nothing to compare");
        let planned_at = |version: Option<&str>, hosts: &str| PlannedOn {
            objects: Documents::new(vec![version.map(|_| json!({"spec": {"hosts": [hosts]}}))]),
            versions: vec![version.map(str::to_owned)],
        };
        change.planned_against = Some(planned_at(Some("8"), "a"));
        assert!(stale_plan(&change, live).is_ok());
        change.planned_against = Some(planned_at(Some("7"), "b"));
        assert!(matches!(stale_plan(&change, live), Err(ChangeError::Stale(_))));
        change.planned_against = Some(planned_at(Some("7"), "a"));
        assert!(stale_plan(&change, live).is_ok(), "the same content: only the status was written");
        change.planned_against = Some(planned_at(None, "a"));
        assert!(matches!(stale_plan(&change, live), Err(ChangeError::Stale(_))), "planned as absent");
    }

    #[test]
    fn only_the_writes_of_a_change_planned_from_the_caches_carry_the_version_they_were_read_at() {
        let origin = Origin {
            actor: crate::authz::Actor::system(),
            source: crate::audit::Source::System,
            request_id: None,
            emergency: None,
        };
        let target = ObjectRef::namespaced(Kind::VirtualService, "tutorial", "recommendation");
        let mut change =
            Change::new(&origin, Action::RouteUpdate, Permission::Route, "tutorial", target.clone(), "s".into());
        let operation = apply(json!({"metadata": {"name": "recommendation"}, "spec": {}}));
        assert!(preconditioned(&change, &operation, Some("8")).is_none(), "planned from a live read");
        let planned = PlannedOn { objects: Documents::new(vec![Some(json!({}))]), versions: vec![Some("8".into())] };
        change.planned_against = Some(planned);
        let Some(Operation::Apply { object, .. }) = preconditioned(&change, &operation, Some("8")) else {
            panic!("an apply of a planned change carries its version");
        };
        assert_eq!(object["metadata"], json!({"name": "recommendation", "resourceVersion": "8"}));
        assert!(preconditioned(&change, &operation, None).is_none(), "an object that was absent");
        let named = apply(json!({"metadata": {"resourceVersion": "5"}}));
        let Some(Operation::Apply { object, .. }) = preconditioned(&change, &named, Some("8")) else {
            panic!("an apply naming the version it was planned on");
        };
        assert_eq!(object["metadata"]["resourceVersion"], "8", "the version read live, once found unchanged");
        let delete = Operation::Delete { target: operation.target().clone() };
        assert!(preconditioned(&change, &delete, Some("8")).is_none());
    }

    #[test]
    fn an_apply_that_changes_nothing_is_left_out_and_any_other_runs() {
        let live = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "recommendation", "resourceVersion": "7", "labels": {"team": "reco", "app": "x"}},
            "spec": {"host": "recommendation", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
            "status": {"conditions": []}});
        let same = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "recommendation", "labels": {"team": "reco"}},
            "spec": {"host": "recommendation", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}});
        let live_at = |version| (Some(&live), Some(version));
        assert!(left_as_is(&apply(same.clone()), live_at("7")).is_some());
        let mut other_subsets = same.clone();
        other_subsets["spec"]["subsets"][0]["labels"]["version"] = json!("v2");
        let mut other_label = same.clone();
        other_label["metadata"]["labels"]["team"] = json!("shop");
        let mut stale = same.clone();
        stale["metadata"]["resourceVersion"] = json!("6");
        for changed in [other_subsets, other_label, stale] {
            assert!(left_as_is(&apply(changed), live_at("7")).is_none());
        }
        let mut current = same.clone();
        current["metadata"]["resourceVersion"] = json!("7");
        assert!(left_as_is(&apply(current), live_at("7")).is_some(), "conditional on the live version");
        assert!(left_as_is(&apply(same.clone()), (None, None)).is_none(), "a missing object is created");
        let create = Operation::Create { target: apply(json!({})).target().clone(), object: same };
        assert!(left_as_is(&create, live_at("7")).is_none(), "a create always runs (409 when it exists)");
    }
}
