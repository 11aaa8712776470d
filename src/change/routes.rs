//! Changes to a host's routing: its DestinationRule subsets and VirtualService rules.
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authz::Permission;
use crate::cluster::{Kind, ObjectRef, Operation};
use crate::istio::{DestinationRule, VirtualService};
use crate::policy::{self, FieldError, RoutingPolicy, Severity, ValidationContext};
use crate::problem::FieldProblem;

use super::Change;
use super::workloads::Origin;

/// The live routing objects of a host, read from the API server.
#[derive(Debug, Clone, Default)]
pub struct LiveRouting {
    pub virtual_service: Option<VirtualService>,
    pub destination_rule: Option<DestinationRule>,
}

/// The resourceVersions the client last saw; `None` inside means "it did not exist".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersions {
    #[serde(default)]
    pub virtual_service: Option<String>,
    #[serde(default)]
    pub destination_rule: Option<String>,
}

impl LiveRouting {
    /// Parses the objects as read (JSON), tolerating their absence.
    pub fn from_json(virtual_service: Option<Value>, destination_rule: Option<Value>) -> Self {
        Self {
            virtual_service: virtual_service.and_then(|v| serde_json::from_value(v).ok()),
            destination_rule: destination_rule.and_then(|v| serde_json::from_value(v).ok()),
        }
    }

    pub fn exists(&self) -> bool {
        self.virtual_service.is_some() || self.destination_rule.is_some()
    }

    pub fn resource_versions(&self) -> ResourceVersions {
        ResourceVersions {
            virtual_service: self.virtual_service.as_ref().and_then(|vs| vs.metadata.resource_version.clone()),
            destination_rule: self.destination_rule.as_ref().and_then(|dr| dr.metadata.resource_version.clone()),
        }
    }

    /// The host's policy as it is now.
    pub fn policy(&self, host: &str) -> Result<RoutingPolicy, policy::PolicyError> {
        RoutingPolicy::from_istio(host, self.virtual_service.as_ref(), self.destination_rule.as_ref())
    }
}

/// The objects of a host's routing: named after the host, as the tutorial names them.
pub fn targets(namespace: &str, host: &str) -> [ObjectRef; 2] {
    [
        ObjectRef::namespaced(Kind::VirtualService, namespace, host),
        ObjectRef::namespaced(Kind::DestinationRule, namespace, host),
    ]
}

/// What a routing change needs besides the policy.
pub struct RouteRequest<'a> {
    pub origin: &'a Origin,
    pub namespace: &'a str,
    pub live: &'a LiveRouting,
    /// When given, the write is refused (409) if the objects changed since.
    pub expected: Option<&'a ResourceVersions>,
    pub context: &'a ValidationContext,
}

/// A change that makes `desired` the host's routing. Returns the change and the
/// validation warnings (which do not block it).
pub fn update(request: &RouteRequest, action: &str, desired: &RoutingPolicy) -> (Change, Vec<FieldError>) {
    let findings = policy::validate(desired, request.context);
    let (errors, warnings): (Vec<FieldError>, Vec<FieldError>) =
        findings.into_iter().partition(|finding| finding.severity == Severity::Error);
    let before = request.live.policy(&desired.host).unwrap_or_else(|_| RoutingPolicy::new(&desired.host));
    let summary = policy::change_summary(&before, desired);
    let mut change = route_change(request, action, &desired.host, summary);
    change.problems = errors.into_iter().map(|e| FieldProblem::new(e.field, e.message)).collect();
    change.field_hints = policy::field_hints(desired);
    change.reaches = policy::reaches(desired, request.namespace);
    if change.problems.is_empty() {
        change.operations = operations(request, desired);
    }
    (change, warnings)
}

/// A change that removes the host's VirtualService and DestinationRule
/// (the tutorial's `kubectl delete dr,vs recommendation`).
pub fn delete(request: &RouteRequest, host: &str) -> Change {
    let mut change =
        route_change(request, "route.delete", host, format!("{host}: routing removed; round-robin over all pods"));
    let [vs, dr] = targets(request.namespace, host);
    if request.live.virtual_service.is_some() {
        change.operations.push(Operation::Delete { target: vs });
    }
    if request.live.destination_rule.is_some() {
        change.operations.push(Operation::Delete { target: dr });
    }
    change
}

fn route_change(request: &RouteRequest, action: &str, host: &str, summary: String) -> Change {
    Change {
        actor: request.origin.actor.clone(),
        source: request.origin.source,
        request_id: request.origin.request_id.clone(),
        action: action.to_owned(),
        permission: Permission::Route,
        namespace: request.namespace.to_owned(),
        host: Some(host.to_owned()),
        subject: ObjectRef::namespaced(Kind::VirtualService, request.namespace, host),
        summary,
        operations: Vec::new(),
        problems: Vec::new(),
        field_hints: Vec::new(),
        reaches: Vec::new(),
        reverts: None,
    }
}

/// The DestinationRule first (a VirtualService must not name subsets that do not exist
/// yet), each written only when the policy needs it or it exists already.
fn operations(request: &RouteRequest, desired: &RoutingPolicy) -> Vec<Operation> {
    let live = request.live;
    let (vs, dr) = desired.to_istio(request.namespace, live.virtual_service.as_ref(), live.destination_rule.as_ref());
    let [vs_target, dr_target] = targets(request.namespace, &desired.host);
    let expected = request.expected;
    let mut operations = Vec::new();
    if !desired.subsets.is_empty() || live.destination_rule.is_some() {
        let version = expected.map(|e| e.destination_rule.clone());
        operations.push(write(dr_target, to_json(&dr), version));
    }
    if !desired.rules.is_empty() || live.virtual_service.is_some() {
        let version = expected.map(|e| e.virtual_service.clone());
        operations.push(write(vs_target, to_json(&vs), version));
    }
    operations
}

/// Server-side apply, made conditional when the client said what it saw: on the
/// resourceVersion it saw, or on the object still not existing.
fn write(target: ObjectRef, mut object: Value, seen: Option<Option<String>>) -> Operation {
    match seen {
        None => Operation::Apply { target, object },
        Some(None) => Operation::Create { target, object },
        Some(Some(version)) => {
            object["metadata"]["resourceVersion"] = Value::String(version);
            Operation::Apply { target, object }
        }
    }
}

fn to_json<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;
    use crate::policy::{Rule, Subset};

    fn origin() -> Origin {
        Origin { actor: Actor::user("alice", vec![]), source: Source::Api, request_id: None }
    }

    fn context() -> ValidationContext {
        ValidationContext {
            services: ["recommendation".to_string()].into(),
            deployed_versions: vec![
                [("app".to_string(), "recommendation".to_string()), ("version".to_string(), "v1".to_string())].into(),
                [("app".to_string(), "recommendation".to_string()), ("version".to_string(), "v2".to_string())].into(),
            ],
        }
    }

    fn split(v1: u32, v2: u32) -> RoutingPolicy {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets = vec![Subset::version("version-v1", "v1"), Subset::version("version-v2", "v2")];
        policy.rules = vec![Rule::weighted(&[("version-v1", v1), ("version-v2", v2)])];
        policy
    }

    fn request<'a>(
        live: &'a LiveRouting,
        expected: Option<&'a ResourceVersions>,
        ctx: &'a ValidationContext,
        origin: &'a Origin,
    ) -> RouteRequest<'a> {
        RouteRequest { origin, namespace: "tutorial", live, expected, context: ctx }
    }

    #[test]
    fn a_new_split_writes_the_destination_rule_then_the_virtual_service() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let (change, warnings) = update(&request(&live, None, &ctx, &origin), "route.update", &split(90, 10));
        assert!(change.problems.is_empty() && warnings.is_empty());
        let kinds: Vec<Kind> = change.operations.iter().map(|op| op.target().kind).collect();
        assert_eq!(kinds, [Kind::DestinationRule, Kind::VirtualService]);
        let vs = change.operations[1].object().unwrap();
        assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 10);
        assert_eq!(vs["metadata"]["namespace"], "tutorial");
        assert_eq!(change.permission, Permission::Route);
        assert_eq!(change.host.as_deref(), Some("recommendation"));
    }

    #[test]
    fn subsets_alone_write_only_the_destination_rule() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let mut subsets_only = split(90, 10);
        subsets_only.rules.clear();
        let (change, _) = update(&request(&live, None, &ctx, &origin), "route.update", &subsets_only);
        assert_eq!(change.operations.len(), 1);
        assert_eq!(change.operations[0].target().kind, Kind::DestinationRule);
    }

    #[test]
    fn what_the_client_saw_becomes_a_precondition() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let seen = ResourceVersions { virtual_service: Some("42".into()), destination_rule: None };
        let (change, _) = update(&request(&live, Some(&seen), &ctx, &origin), "route.update", &split(75, 25));
        assert!(matches!(&change.operations[0], Operation::Create { .. }), "DR seen absent: create-only");
        let Operation::Apply { object, .. } = &change.operations[1] else { panic!("apply expected") };
        assert_eq!(object["metadata"]["resourceVersion"], "42");
    }

    #[test]
    fn invalid_policies_carry_problems_and_no_operations() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let (change, _) = update(&request(&live, None, &ctx, &origin), "route.update", &split(90, 11));
        assert!(change.operations.is_empty());
        assert!(change.problems.iter().any(|p| p.field.starts_with("rules[0]")), "{:?}", change.problems);
    }

    #[test]
    fn delete_removes_what_exists() {
        let live = LiveRouting::from_json(
            Some(serde_json::json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                                    "metadata": {"name": "recommendation"}, "spec": {"hosts": ["recommendation"]}})),
            None,
        );
        let (ctx, origin) = (context(), origin());
        let change = delete(&request(&live, None, &ctx, &origin), "recommendation");
        assert_eq!(change.operations.len(), 1);
        assert_eq!(change.action, "route.delete");
    }
}
