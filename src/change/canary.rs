//! Canary transitions as routing changes: the weights go through the routing policy (so
//! header rules and unmodelled fields stay), and the canary's state rides on the
//! annotation of the object holding the rules (VirtualService or HTTPRoute), written in the
//! same apply.
use super::Action;
use crate::authz::Permission;
use crate::cluster::{Kind, Operation};
use crate::policy::canary::{ANNOTATION, Canary};
use crate::policy::{FieldError, RoutingPolicy};

use super::Change;
use super::routes::{self, LiveRouting, RouteRequest};

/// The canary recorded on the live VirtualService or HTTPRoute, if any.
pub fn current(live: &LiveRouting) -> Option<Canary> {
    let metadata = match (&live.http_route, &live.virtual_service) {
        (Some(route), _) => &route.metadata,
        (None, Some(vs)) => &vs.metadata,
        (None, None) => return None,
    };
    Canary::from_annotation(metadata.annotations.as_ref()?.get(ANNOTATION)?)
}

/// The change that moves the host to `next` (`action` is `canary.start`, `canary.promote`, ...).
pub fn transition(
    request: &RouteRequest,
    action: Action,
    policy: &RoutingPolicy,
    next: &Canary,
) -> (Change, Vec<FieldError>) {
    let desired = next.apply_to(policy);
    let (mut change, warnings) = routes::update(request, action, &desired);
    change.permission = Permission::Canary;
    change.summary = format!(
        "{}: canary {} {} ({} {}% · {} {}%)",
        policy.host,
        policy.display_name(&next.canary),
        next.state_name(),
        policy.display_name(&next.stable),
        100 - next.weight(),
        policy.display_name(&next.canary),
        next.weight()
    );
    for operation in &mut change.operations {
        if let Operation::Apply { target, object } | Operation::Create { target, object } = operation
            && matches!(target.kind, Kind::VirtualService | Kind::HTTPRoute)
        {
            object["metadata"]["annotations"][ANNOTATION] = next.to_annotation().into();
        }
    }
    (change, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;
    use crate::change::Origin;
    use crate::policy::{Rule, Subset, ValidationContext};

    #[test]
    fn a_transition_writes_weights_and_the_annotation_in_one_apply() {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets = vec![Subset::version("version-v1", "v1"), Subset::version("version-v2", "v2")];
        policy.rules = vec![Rule::weighted(&[("version-v1", 100)])];
        let canary = Canary::start(&policy, "version-v1", "version-v2", &[10, 25, 100]).unwrap();
        let origin =
            Origin { actor: Actor::user("alice", vec![]), source: Source::Api, request_id: None, emergency: None };
        let live = LiveRouting::default();
        let context =
            ValidationContext { services: ["recommendation".to_string()].into(), ..ValidationContext::default() };
        let request =
            RouteRequest { origin: &origin, namespace: "tutorial", live: &live, expected: None, context: &context };
        let (change, _) = transition(&request, Action::CanaryStart, &policy, &canary);
        assert!(change.problems.is_empty(), "{:?}", change.problems);
        assert_eq!(change.permission, Permission::Canary);
        assert_eq!(change.summary, "recommendation: canary v2 progressing (v1 90% · v2 10%)");
        let vs =
            change.operations.iter().find(|op| op.target().kind == Kind::VirtualService).unwrap().object().unwrap();
        assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 10);
        let annotation = vs["metadata"]["annotations"][ANNOTATION].as_str().unwrap();
        assert_eq!(Canary::from_annotation(annotation), Some(canary));
    }
}
