//! Canary transitions for the API and the page alike: read the live state, decide the next
//! one, and send it through the change path.
use crate::audit::Source;
use crate::authz::Actor;
use crate::change::canary;
use crate::change::routes::RouteRequest;
use crate::change::workloads::{self, Origin};
use crate::policy::canary::Canary;
use crate::problem::FieldProblem;
use crate::traffic::Thresholds;
use crate::tutorial::Workload;

use super::error::AppError;
use super::state::AppState;

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
    pub fn action(&self) -> &'static str {
        match self {
            Step::Start { .. } => "canary.start",
            Step::Promote { .. } => "canary.promote",
            Step::Pause => "canary.pause",
            Step::Resume => "canary.resume",
            Step::Abort => "canary.abort",
            Step::Finish { .. } => "canary.finish",
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

/// The host's canary as recorded on its live VirtualService.
pub async fn current(state: &AppState, namespace: &str, host: &str) -> Result<Option<Canary>, AppError> {
    Ok(canary::current(&state.live_routing(namespace, host).await?))
}

/// Runs one transition a person (or pipeline) asked for; returns the new canary and its
/// audit entry.
pub async fn run(
    state: &AppState,
    origin: Origin,
    namespace: &str,
    host: &str,
    step: Step,
) -> Result<(Canary, i64), AppError> {
    execute(state, &origin, namespace, host, step, None).await
}

/// Runs a transition signalbox decided itself (auto-advance), with the analysis's reason —
/// the measured values — in the audit summary.
pub async fn run_automatic(
    state: &AppState,
    namespace: &str,
    host: &str,
    step: Step,
    reason: &str,
) -> Result<(Canary, i64), AppError> {
    let origin = Origin { actor: Actor::system(), source: Source::System, request_id: None };
    execute(state, &origin, namespace, host, step, Some(reason)).await
}

async fn execute(
    state: &AppState,
    origin: &Origin,
    namespace: &str,
    host: &str,
    step: Step,
    reason: Option<&str>,
) -> Result<(Canary, i64), AppError> {
    let live = state.live_routing(namespace, host).await?;
    let policy = live.policy(host)?;
    let existing = canary::current(&live);
    let next = next_canary(&policy, existing.as_ref(), &step)?;
    let context = state.validation_context(namespace, host);
    let expected = live.resource_versions();
    let request = RouteRequest { origin, namespace, live: &live, expected: Some(&expected), context: &context };
    let (mut change, _) = canary::transition(&request, step.action(), &policy, &next);
    if let Some(reason) = reason {
        change.summary = format!("{} — automatic: {reason}", change.summary);
    }
    let applied = state.changes.execute(change).await?;
    if let Step::Finish { scale_down: true } = step {
        scale_down_stable(state, origin, namespace, &policy, &next).await?;
    }
    Ok((next, applied.audit_id))
}

/// The finished canary's old stable version to 0 replicas: its own audited change, under
/// the canary permission (it is the last step of the team's rollout, not a deployment).
async fn scale_down_stable(
    state: &AppState,
    origin: &Origin,
    namespace: &str,
    policy: &crate::policy::RoutingPolicy,
    finished: &Canary,
) -> Result<i64, AppError> {
    let version = policy.subset(&finished.stable).and_then(|subset| subset.labels.get("version"));
    let workload =
        version.and_then(|version| Workload::parse(&format!("{}-{version}", policy.host))).ok_or_else(|| {
            AppError::Conflict(format!(
                "the canary finished, but signalbox does not manage a Deployment for subset {} to scale down",
                finished.stable
            ))
        })?;
    let current = state.namespace_state(namespace);
    let mut change = workloads::scale(origin, namespace, workload, 0, &current);
    change.action = "canary.scale-down".into();
    change.permission = crate::authz::Permission::Canary;
    change.summary = format!("{} after the canary finished", change.summary);
    Ok(state.changes.execute(change).await?.audit_id)
}

fn next_canary(
    policy: &crate::policy::RoutingPolicy,
    existing: Option<&Canary>,
    step: &Step,
) -> Result<Canary, AppError> {
    let refused = |e: crate::policy::canary::TransitionRefused| AppError::Conflict(e.to_string());
    match (step, existing) {
        (Step::Start { .. }, Some(running)) if running.is_active() => {
            Err(AppError::Conflict(format!("a canary of {} is already {}", running.canary, running.state_name())))
        }
        (Step::Start { stable, canary, steps, analysis }, _) => Canary::start(policy, stable, canary, steps)
            .and_then(|started| started.with_analysis(analysis.clone()))
            .map_err(|errors| {
                AppError::Invalid(errors.into_iter().map(|e| FieldProblem::new(e.field, e.message)).collect())
            }),
        (_, None) => Err(AppError::NotFound(format!("{} has no canary; start one first", policy.host))),
        (Step::Promote { from: Some(seen), .. }, Some(c)) if *seen != c.step => Err(AppError::Conflict(format!(
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
