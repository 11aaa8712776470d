//! Canary rollouts, for the API, the page and the autopilot alike: read the live state,
//! decide the next step, and send it through the change path.
use super::Action;
use crate::audit::Source;
use crate::authz::{Actor, Permission};
use crate::cluster::ClusterError;
use crate::policy::canary::{Canary, TransitionRefused};
use crate::policy::{PolicyError, RoutingPolicy};
use crate::problem::FieldProblem;
use crate::traffic::{StepReach, Thresholds};
use crate::tutorial::Workload;

use super::reads::Reads;
use super::routes::{self, RouteRequest};
use super::workloads;
use super::{Change, Origin};
use super::{ChangeError, ChangePath, canary};

/// Why a rollout step was not taken.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// The start's parameters, by field.
    #[error("{}", crate::problem::describe(.0))]
    Invalid(Vec<FieldProblem>),
    /// The canary is not in a state that allows the step (or moved since it was seen).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// A step's preview: what [`Rollouts::preview`] found.
#[derive(Debug, Clone)]
pub struct StepPreview {
    pub canary: Canary,
    pub summary: String,
    pub before: RoutingPolicy,
    pub after: RoutingPolicy,
    pub preview: super::Preview,
}

/// Runs canary steps through the change path.
#[derive(Clone)]
pub struct Rollouts {
    reads: Reads,
    changes: ChangePath,
    /// How long each automatic canary's current step has held its thresholds, as this
    /// replica's autopilot last judged it (by namespace and host), for the canary page.
    dwells: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<(String, String), Dwell>>>,
}

/// Where an automatic canary's step stands against its dwell time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dwell {
    pub step: usize,
    /// Seconds healthy so far, and the dwell time.
    pub held: u64,
    pub of: u64,
}

/// A requested transition.
#[derive(Debug, Clone)]
pub enum Step {
    Start {
        stable: String,
        canary: String,
        steps: Vec<u32>,
        /// Auto-advance thresholds; `None`: people promote.
        analysis: Option<Thresholds>,
    },
    /// `from`: the step the requester saw; a canary that moved since is not promoted again.
    Promote {
        full: bool,
        from: Option<usize>,
    },
    Pause,
    Resume,
    Abort,
    /// `scale_down`: then scale the old stable version's Deployment to 0, as Argo Rollouts
    /// scales down the old ReplicaSet.
    Finish {
        scale_down: bool,
    },
}

impl Step {
    pub fn action(&self) -> Action {
        match self {
            Step::Start { .. } => Action::CanaryStart,
            Step::Promote { .. } => Action::CanaryPromote,
            Step::Pause => Action::CanaryPause,
            Step::Resume => Action::CanaryResume,
            Step::Abort => Action::CanaryAbort,
            Step::Finish { .. } => Action::CanaryFinish,
        }
    }

    /// Parses the last path segment of `.../canaries/{host}/{step}`.
    pub fn named(name: &str, full: bool, from: Option<usize>, scale_down: bool) -> Option<Step> {
        Some(match name {
            "promote" => Step::Promote { full, from },
            "pause" => Step::Pause,
            "resume" => Step::Resume,
            "abort" => Step::Abort,
            "finish" => Step::Finish { scale_down },
            _ => return None,
        })
    }
}

impl Rollouts {
    pub fn new(reads: Reads, changes: ChangePath) -> Self {
        Self { reads, changes, dwells: Default::default() }
    }

    /// The host's canary as recorded on its live VirtualService.
    pub async fn current(&self, namespace: &str, host: &str) -> Result<Option<Canary>, ClusterError> {
        Ok(canary::current(&self.reads.live_routing(namespace, host).await?))
    }

    /// Notes how long the host's canary step has held (`None`: not healthy, or not judged).
    pub fn note_dwell(&self, namespace: &str, host: &str, dwell: Option<Dwell>) {
        let mut dwells = self.dwells.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (namespace.to_owned(), host.to_owned());
        match dwell {
            Some(dwell) => dwells.insert(key, dwell),
            None => dwells.remove(&key),
        };
    }

    /// How long the host's canary step has held, when this replica judges it.
    pub fn dwell(&self, namespace: &str, host: &str) -> Option<Dwell> {
        let dwells = self.dwells.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        dwells.get(&(namespace.to_owned(), host.to_owned())).cloned()
    }

    /// Whether every proxy has the host's last change — the canary's current step, when
    /// this signalbox made it — from istiod (see `propagation`).
    pub async fn step_reach(&self, namespace: &str, host: &str) -> StepReach {
        let propagation = self.changes.propagation();
        if propagation.istiod().is_none() {
            return StepReach::Unknown("istiod is not configured (--istiod-url)".into());
        }
        let view = propagation.status(namespace, host).await;
        if let Some(why) = view.unavailable {
            return StepReach::Unknown(why);
        }
        match (view.audit_id, view.reached_at) {
            (Some(_), Some(at)) => StepReach::Reached(at),
            // A change this signalbox did not make (another replica's, or one before a
            // restart): every proxy having what istiod last sent it is the best sign there is.
            (None, _) if view.report.complete() => StepReach::Reached(jiff::Timestamp::now()),
            _ => StepReach::Pending(view.summary),
        }
    }

    /// Runs one step a person (or pipeline) asked for; returns the new canary and its
    /// audit entry.
    pub async fn run(
        &self,
        origin: Origin,
        namespace: &str,
        host: &str,
        step: Step,
    ) -> Result<(Canary, i64), RolloutError> {
        self.execute(&origin, namespace, host, step, None).await
    }

    /// Runs a step signalbox decided itself (auto-advance), with the analysis's reason —
    /// the measured values — in the audit summary.
    pub async fn run_automatic(
        &self,
        namespace: &str,
        host: &str,
        step: Step,
        reason: &str,
    ) -> Result<(Canary, i64), RolloutError> {
        let origin = Origin { actor: Actor::system(), source: Source::System, request_id: None, emergency: None };
        self.execute(&origin, namespace, host, step, Some(reason)).await
    }

    /// A start whose request could not be read (steps that are not numbers): refused and
    /// audited on the change path like any invalid change (denied first when the actor may
    /// not run canaries here).
    pub async fn refuse_start(
        &self,
        origin: &Origin,
        namespace: &str,
        host: &str,
        problem: FieldProblem,
    ) -> ChangeError {
        let attempt = routes::attempt(origin, namespace, host, Action::CanaryStart);
        let attempt = Change { permission: Permission::Canary, problems: vec![problem], ..attempt };
        match self.changes.execute(attempt).await {
            Err(refused) => refused,
            Ok(_) => ChangeError::Invalid(Vec::new()),
        }
    }

    async fn execute(
        &self,
        origin: &Origin,
        namespace: &str,
        host: &str,
        step: Step,
        reason: Option<&str>,
    ) -> Result<(Canary, i64), RolloutError> {
        let (mut change, next, policy) = self.plan(origin, namespace, host, &step, false).await?;
        if let Some(reason) = reason {
            change.summary = format!("{} — automatic: {reason}", change.summary);
        }
        let applied = self.changes.execute(change).await?;
        if let Step::Finish { scale_down: true } = step {
            self.scale_down_stable(origin, namespace, &policy, &next).await?;
        }
        Ok((next, applied.audit_id))
    }

    /// What `step` would do, from the API server's dry run: the next canary, the change
    /// (its summary), the policy before and after, and the objects. Nothing changes and
    /// nothing is audited, as with a routing preview.
    pub async fn preview(
        &self,
        origin: &Origin,
        namespace: &str,
        host: &str,
        step: &Step,
    ) -> Result<StepPreview, RolloutError> {
        let (change, next, before) = self.plan(origin, namespace, host, step, true).await?;
        let preview = self.changes.preview(&change).await?;
        let after = next.apply_to(&before);
        Ok(StepPreview { canary: next, summary: change.summary, before, after, preview })
    }

    /// Authorizes the step first (a dry run's denial is not audited), then plans it on the
    /// live routing: the change, the canary it leads to, and the policy it starts from.
    async fn plan(
        &self,
        origin: &Origin,
        namespace: &str,
        host: &str,
        step: &Step,
        dry_run: bool,
    ) -> Result<(Change, Canary, RoutingPolicy), RolloutError> {
        let attempt = routes::attempt(origin, namespace, host, step.action());
        let attempt = Change { permission: Permission::Canary, ..attempt };
        self.changes.authorize_first(&attempt, dry_run).await?;
        let live = self.reads.live_routing(namespace, host).await?;
        let policy = live.policy(host)?;
        let existing = canary::current(&live);
        let next = next_canary(&policy, existing.as_ref(), step)?;
        let context = self.reads.validation_context(namespace, host);
        let expected = live.resource_versions();
        let request = RouteRequest { origin, namespace, live: &live, expected: Some(&expected), context: &context };
        let (change, _) = canary::transition(&request, step.action(), &policy, &next);
        Ok((change, next, policy))
    }

    /// The finished canary's old stable version to 0 replicas: its own audited change, under
    /// the canary permission (it is the last step of the team's rollout, not a deployment).
    async fn scale_down_stable(
        &self,
        origin: &Origin,
        namespace: &str,
        policy: &RoutingPolicy,
        finished: &Canary,
    ) -> Result<i64, RolloutError> {
        let version = policy.subset(&finished.stable).and_then(|subset| subset.labels.get("version"));
        let workload =
            version.and_then(|version| Workload::parse(&format!("{}-{version}", policy.host))).ok_or_else(|| {
                RolloutError::Conflict(format!(
                    "the canary finished, but signalbox does not manage a Deployment for subset {} to scale down",
                    finished.stable
                ))
            })?;
        let current = self.reads.live_namespace_state(namespace).await?;
        let mut change = workloads::scale(origin, namespace, workload, 0, &current);
        change.action = Action::CanaryScaleDown;
        change.permission = Permission::Canary;
        change.summary = format!("{} after the canary finished", change.summary);
        Ok(self.changes.execute(change).await?.audit_id)
    }
}

fn next_canary(
    policy: &crate::policy::RoutingPolicy,
    existing: Option<&Canary>,
    step: &Step,
) -> Result<Canary, RolloutError> {
    let refused = |e: TransitionRefused| RolloutError::Conflict(e.to_string());
    match (step, existing) {
        (Step::Start { .. }, Some(running)) if running.is_active() => {
            Err(RolloutError::Conflict(format!("a canary of {} is already {}", running.canary, running.state_name())))
        }
        (Step::Start { stable, canary, steps, analysis }, _) => Canary::start(policy, stable, canary, steps)
            .and_then(|started| started.with_analysis(analysis.clone()))
            .map_err(|errors| {
                RolloutError::Invalid(errors.into_iter().map(|e| FieldProblem::new(e.field, e.message)).collect())
            }),
        (_, None) => Err(RolloutError::NotFound(format!("{} has no canary; start one first", policy.host))),
        (Step::Promote { from: Some(seen), .. }, Some(c)) if *seen != c.step => Err(RolloutError::Conflict(format!(
            "the canary moved from step {} to step {} ({}%) since you saw it",
            seen + 1,
            c.step + 1,
            c.weight()
        ))),
        (Step::Promote { full, .. }, Some(c)) => c.promote(*full).map_err(refused),
        (Step::Pause, Some(c)) => c.pause().map_err(refused),
        (Step::Resume, Some(c)) => c.resume().map_err(refused),
        (Step::Abort, Some(c)) => c.abort().map_err(refused),
        (Step::Finish { .. }, Some(c)) => c.finish().map_err(refused),
    }
}
