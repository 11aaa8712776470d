//! Canary transitions for the API and the page alike: read the live state, decide the next
//! one, and send it through the change path.
use crate::audit::Source;
use crate::authz::Actor;
use crate::change::canary;
use crate::change::routes::RouteRequest;
use crate::change::workloads::Origin;
use crate::policy::canary::Canary;
use crate::problem::FieldProblem;

use super::error::AppError;
use super::state::AppState;

/// A requested transition.
#[derive(Debug, Clone)]
pub enum Step {
    Start {
        stable: String,
        canary: String,
        steps: Vec<u32>,
    },
    /// `from`: the step the requester saw; a canary that moved since is not promoted again.
    Promote {
        full: bool,
        from: Option<usize>,
    },
    Pause,
    Resume,
    Abort,
    Finish,
}

impl Step {
    pub fn action(&self) -> &'static str {
        match self {
            Step::Start { .. } => "canary.start",
            Step::Promote { .. } => "canary.promote",
            Step::Pause => "canary.pause",
            Step::Resume => "canary.resume",
            Step::Abort => "canary.abort",
            Step::Finish => "canary.finish",
        }
    }

    /// Parses the last path segment of `.../canaries/{host}/{step}`.
    pub fn named(name: &str, full: bool, from: Option<usize>) -> Option<Step> {
        Some(match name {
            "promote" => Step::Promote { full, from },
            "pause" => Step::Pause,
            "resume" => Step::Resume,
            "abort" => Step::Abort,
            "finish" => Step::Finish,
            _ => return None,
        })
    }
}

/// The host's canary as recorded on its live VirtualService.
pub async fn current(state: &AppState, namespace: &str, host: &str) -> Result<Option<Canary>, AppError> {
    Ok(canary::current(&state.live_routing(namespace, host).await?))
}

/// Runs one transition; returns the new canary and its audit entry.
pub async fn run(
    state: &AppState,
    actor: Actor,
    source: Source,
    request_id: Option<String>,
    namespace: &str,
    host: &str,
    step: Step,
) -> Result<(Canary, i64), AppError> {
    let live = state.live_routing(namespace, host).await?;
    let policy =
        live.policy(host).map_err(|e| AppError::Conflict(format!("the live routing is not understood: {e}")))?;
    let existing = canary::current(&live);
    let next = next_canary(&policy, existing.as_ref(), &step)?;
    let origin = Origin { actor, source, request_id };
    let context = state.validation_context(namespace, host);
    let expected = live.resource_versions();
    let request =
        RouteRequest { origin: &origin, namespace, live: &live, expected: Some(&expected), context: &context };
    let (change, _) = canary::transition(&request, step.action(), &policy, &next);
    let applied = state.changes.execute(change).await?;
    Ok((next, applied.audit_id))
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
        (Step::Start { stable, canary, steps }, _) => Canary::start(policy, stable, canary, steps).map_err(|errors| {
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
        (Step::Finish, Some(c)) => c.finish().map_err(refused),
    }
}
