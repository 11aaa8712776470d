//! Changes that deploy, scale, remove and reset the tutorial's workloads.
use super::Action;
use crate::authz::Permission;
use crate::cluster::{Kind, ObjectRef, Operation};
use crate::inventory::VersionSummary;
use crate::problem::FieldProblem;
use crate::tutorial::{self, Workload};

use super::{Change, Origin};

/// The most replicas one tutorial workload may be scaled to from the console.
pub const MAX_REPLICAS: i32 = 20;

/// What the namespace holds now, as far as these changes care.
#[derive(Debug, Clone, Default)]
pub struct NamespaceState {
    pub exists: bool,
    pub versions: Vec<VersionSummary>,
}

impl NamespaceState {
    fn replicas_of(&self, workload: Workload) -> Option<i32> {
        self.versions.iter().find(|v| v.deployment == workload.deployment_name()).map(|v| v.desired)
    }

    /// Whether another Deployment of the same app remains when this one goes.
    fn app_has_other_versions(&self, workload: Workload) -> bool {
        self.versions.iter().any(|v| v.app == workload.app() && v.deployment != workload.deployment_name())
    }
}

fn change(origin: &Origin, action: Action, namespace: &str, subject: ObjectRef, summary: String) -> Change {
    let host = match subject.kind {
        Kind::Namespace => None,
        _ => Workload::ALL.iter().find(|w| w.deployment_name() == subject.name).map(|w| w.app().to_owned()),
    };
    Change { host, ..Change::new(origin, action, Permission::Deploy, namespace, subject, summary) }
}

/// A tutorial object (every one of a kind signalbox writes: `tutorial`'s tests check it).
fn apply_object(namespace: &str, mut object: serde_json::Value) -> Operation {
    let kind = object["kind"].as_str().and_then(Kind::parse).expect("tutorial objects are of kinds signalbox writes");
    let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    if kind.is_namespaced() {
        object["metadata"]["namespace"] = namespace.into();
        Operation::Apply { target: ObjectRef::namespaced(kind, namespace, &name), object }
    } else {
        Operation::Apply { target: ObjectRef::cluster_scoped(kind, &name), object }
    }
}

fn replicas_text(replicas: i32) -> String {
    if replicas == 1 { "1 replica".into() } else { format!("{replicas} replicas") }
}

fn check_replicas(replicas: i32) -> Vec<FieldProblem> {
    if (0..=MAX_REPLICAS).contains(&replicas) {
        Vec::new()
    } else {
        vec![FieldProblem::new("replicas", format!("must be a whole number from 0 to {MAX_REPLICAS}"))]
    }
}

/// Creates the namespace with Istio sidecar injection enabled.
pub fn create_namespace(origin: &Origin, namespace: &str) -> Change {
    let subject = ObjectRef::cluster_scoped(Kind::Namespace, namespace);
    let mut change = change(
        origin,
        Action::NamespaceCreate,
        namespace,
        subject,
        format!("create namespace {namespace} with sidecar injection"),
    );
    change.operations.push(apply_object(namespace, tutorial::namespace(namespace)));
    change
}

/// Deploys a workload (creating the namespace if needed), or re-applies it. Keeps the
/// current replica count unless one is given.
pub fn deploy(
    origin: &Origin,
    namespace: &str,
    workload: Workload,
    replicas: Option<i32>,
    state: &NamespaceState,
) -> Change {
    let current = state.replicas_of(workload);
    let replicas = replicas.or(current).unwrap_or(1);
    let subject = ObjectRef::namespaced(Kind::Deployment, namespace, workload.deployment_name());
    let (action, summary) = match current {
        Some(before) if before != replicas => {
            (Action::WorkloadScale, format!("scale {}: {before} → {replicas} replicas", workload.name()))
        }
        Some(_) => (Action::WorkloadDeploy, format!("redeploy {} ({})", workload.name(), replicas_text(replicas))),
        None => (Action::WorkloadDeploy, format!("deploy {} ({})", workload.name(), replicas_text(replicas))),
    };
    let mut change = change(origin, action, namespace, subject, summary);
    change.problems = check_replicas(replicas);
    if !state.exists {
        change.operations.push(apply_object(namespace, tutorial::namespace(namespace)));
    }
    change.operations.extend(workload.objects(replicas).into_iter().map(|object| apply_object(namespace, object)));
    change
}

/// The workloads the README's walkthrough starts from: the call chain and two versions to
/// split traffic between.
pub const WALKTHROUGH: [Workload; 4] =
    [Workload::Customer, Workload::Preference, Workload::RecommendationV1, Workload::RecommendationV2];

/// Deploys the walkthrough's set as one change (one dry run, one audit entry), creating the
/// namespace if needed. Deployed workloads keep their replica count; objects the workloads
/// share (recommendation's Service and ServiceAccount) are applied once.
pub fn deploy_walkthrough(origin: &Origin, namespace: &str, state: &NamespaceState) -> Change {
    let subject = ObjectRef::cluster_scoped(Kind::Namespace, namespace);
    let names: Vec<&str> = WALKTHROUGH.iter().map(|w| w.name()).collect();
    let summary = format!("deploy the walkthrough: {}", names.join(", "));
    let mut change = change(origin, Action::TutorialDeploy, namespace, subject, summary);
    if !state.exists {
        change.operations.push(apply_object(namespace, tutorial::namespace(namespace)));
    }
    for workload in WALKTHROUGH {
        let replicas = state.replicas_of(workload).unwrap_or(1);
        for operation in workload.objects(replicas).into_iter().map(|object| apply_object(namespace, object)) {
            if !change.operations.iter().any(|planned| planned.target() == operation.target()) {
                change.operations.push(operation);
            }
        }
    }
    change
}

/// Scales a deployed workload.
pub fn scale(origin: &Origin, namespace: &str, workload: Workload, replicas: i32, state: &NamespaceState) -> Change {
    let mut change = deploy(origin, namespace, workload, Some(replicas), state);
    change.action = Action::WorkloadScale;
    if state.replicas_of(workload).is_none() {
        change
            .problems
            .push(FieldProblem::new("name", format!("{} is not deployed; deploy it first", workload.name())));
    }
    change
}

/// Removes a workload's Deployment, and its Service and ServiceAccount (and customer's
/// ingress) when no other version of the app remains.
pub fn remove(origin: &Origin, namespace: &str, workload: Workload, state: &NamespaceState) -> Change {
    let deployment = ObjectRef::namespaced(Kind::Deployment, namespace, workload.deployment_name());
    let mut change =
        change(origin, Action::WorkloadRemove, namespace, deployment.clone(), format!("remove {}", workload.name()));
    change.operations.push(Operation::Delete { target: deployment });
    if !state.app_has_other_versions(workload) {
        let shared = [(Kind::Service, workload.app()), (Kind::ServiceAccount, workload.app())];
        change.operations.extend(shared.map(|(kind, name)| delete(kind, namespace, name)));
        if workload.ingress().is_some() {
            change.operations.push(delete(Kind::VirtualService, namespace, "customer-gateway"));
            change.operations.push(delete(Kind::Gateway, namespace, "customer-gateway"));
        }
    }
    change
}

/// Removes every tutorial object from the namespace: workloads, their Services and
/// ServiceAccounts, the ingress, and the routing of the tutorial's hosts.
pub fn reset(origin: &Origin, namespace: &str) -> Change {
    let subject = ObjectRef::cluster_scoped(Kind::Namespace, namespace);
    let mut change =
        change(origin, Action::TutorialReset, namespace, subject, format!("reset the tutorial in {namespace}"));
    for workload in Workload::ALL {
        change.operations.push(delete(Kind::Deployment, namespace, workload.deployment_name()));
    }
    for app in ["customer", "preference", "recommendation"] {
        for kind in [Kind::VirtualService, Kind::DestinationRule, Kind::Service, Kind::ServiceAccount] {
            change.operations.push(delete(kind, namespace, app));
        }
    }
    change.operations.push(delete(Kind::VirtualService, namespace, "customer-gateway"));
    change.operations.push(delete(Kind::Gateway, namespace, "customer-gateway"));
    change
}

fn delete(kind: Kind, namespace: &str, name: &str) -> Operation {
    Operation::Delete { target: ObjectRef::namespaced(kind, namespace, name) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;

    fn origin() -> Origin {
        Origin { actor: Actor::user("alice", vec![]), source: Source::Api, request_id: None, emergency: None }
    }

    fn deployed(versions: &[(&str, &str, i32)]) -> NamespaceState {
        NamespaceState {
            exists: true,
            versions: versions
                .iter()
                .map(|(deployment, app, desired)| VersionSummary {
                    name: deployment.to_string(),
                    deployment: deployment.to_string(),
                    app: app.to_string(),
                    version: "v1".into(),
                    desired: *desired,
                    ready: *desired,
                })
                .collect(),
        }
    }

    fn kinds(change: &Change) -> Vec<String> {
        change.operations.iter().map(|op| op.target().to_string()).collect()
    }

    #[test]
    fn deploying_into_a_missing_namespace_creates_it_first() {
        let change = deploy(&origin(), "tutorial", Workload::RecommendationV2, None, &NamespaceState::default());
        assert_eq!(kinds(&change)[0], "Namespace tutorial");
        assert_eq!(change.operations.len(), 4);
        assert_eq!(change.summary, "deploy recommendation-v2 (1 replica)");
        assert!(change.problems.is_empty());
    }

    #[test]
    fn redeploying_keeps_the_replica_count_and_scaling_says_from_what() {
        let state = deployed(&[("recommendation-v2", "recommendation", 2)]);
        let redeploy = deploy(&origin(), "tutorial", Workload::RecommendationV2, None, &state);
        let Operation::Apply { object, .. } = &redeploy.operations[2] else { panic!("apply expected") };
        assert_eq!(object["spec"]["replicas"], 2);
        let scaled = scale(&origin(), "tutorial", Workload::RecommendationV2, 3, &state);
        assert_eq!(scaled.action, Action::WorkloadScale);
        assert_eq!(scaled.summary, "scale recommendation-v2: 2 → 3 replicas");
    }

    #[test]
    fn replicas_out_of_range_or_undeployed_are_problems() {
        let state = deployed(&[("recommendation-v2", "recommendation", 1)]);
        assert_eq!(scale(&origin(), "tutorial", Workload::RecommendationV2, -1, &state).problems[0].field, "replicas");
        assert_eq!(scale(&origin(), "tutorial", Workload::RecommendationV2, 21, &state).problems[0].field, "replicas");
        assert_eq!(scale(&origin(), "tutorial", Workload::RecommendationV3, 1, &state).problems[0].field, "name");
    }

    #[test]
    fn removing_the_last_version_also_removes_the_shared_objects() {
        let both = deployed(&[("recommendation-v1", "recommendation", 1), ("recommendation-v2", "recommendation", 1)]);
        assert_eq!(remove(&origin(), "t", Workload::RecommendationV2, &both).operations.len(), 1);
        let last = deployed(&[("recommendation-v2", "recommendation", 1)]);
        assert_eq!(
            kinds(&remove(&origin(), "t", Workload::RecommendationV2, &last)),
            ["Deployment t/recommendation-v2", "Service t/recommendation", "ServiceAccount t/recommendation"]
        );
        let customer = deployed(&[("customer", "customer", 1)]);
        assert_eq!(remove(&origin(), "t", Workload::Customer, &customer).operations.len(), 5);
    }

    #[test]
    fn the_walkthrough_is_one_change_applying_each_object_once() {
        let change = deploy_walkthrough(&origin(), "t", &NamespaceState::default());
        assert_eq!(change.action, Action::TutorialDeploy);
        assert_eq!(change.host, None, "namespace-wide: it may create the namespace");
        let targets = kinds(&change);
        assert_eq!(targets[0], "Namespace t");
        for name in ["customer", "preference-v1", "recommendation-v1", "recommendation-v2"] {
            assert!(targets.contains(&format!("Deployment t/{name}")), "{name}: {targets:?}");
        }
        assert!(!targets.iter().any(|t| t.contains("recommendation-v3")));
        let services = targets.iter().filter(|t| *t == "Service t/recommendation").count();
        assert_eq!(services, 1, "shared Service applied once");
        assert_eq!(
            change.summary,
            "deploy the walkthrough: customer, preference, recommendation-v1, recommendation-v2"
        );
    }

    #[test]
    fn the_walkthrough_keeps_replicas_and_an_existing_namespace() {
        let state = deployed(&[("recommendation-v2", "recommendation", 3)]);
        let change = deploy_walkthrough(&origin(), "t", &state);
        assert!(!kinds(&change).contains(&"Namespace t".to_owned()));
        let v2 = change.operations.iter().find_map(|op| match op {
            Operation::Apply { object, target }
                if target.name == "recommendation-v2" && target.kind == Kind::Deployment =>
            {
                Some(object["spec"]["replicas"].clone())
            }
            _ => None,
        });
        assert_eq!(v2, Some(serde_json::json!(3)));
    }

    #[test]
    fn objects_are_placed_in_the_namespace() {
        let change = deploy(&origin(), "team-a", Workload::Customer, Some(1), &deployed(&[]));
        for operation in &change.operations {
            let Operation::Apply { object, target } = operation else { panic!("apply expected") };
            assert_eq!(object["metadata"]["namespace"], "team-a", "{target}");
        }
    }
}
