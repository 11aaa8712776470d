//! Reverting an audited change: each object it touched goes back to its `before` state
//! (deleted if it did not exist), as a new change through the same path.
use super::Action;
use serde_json::Value;

use crate::audit::Entry;
use crate::authz::Permission;
use crate::cluster::bounded::is_not_stored;
use crate::cluster::{Kind, ObjectRef, Operation, without_server_fields};

use super::{Change, Origin};

/// Why a revert cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevertRefused {
    #[error("only applied or external changes can be reverted; this one is {0}")]
    NotApplied(String),
    #[error("{0} changed since this entry; look at the diff and confirm to revert anyway")]
    ChangedSince(String),
    #[error(
        "this entry's {0} document was over the size limit and not stored, so it cannot be put back; change the object directly"
    )]
    NotStored(&'static str),
}

/// Why `entry` cannot be reverted whatever the cluster holds now, if it cannot: not applied
/// (or only a count of outside changes), or a document replaced by a marker because it was
/// too large (a revert would apply the marker, or could not tell what it replaces).
pub fn refusal(entry: &Entry) -> Option<RevertRefused> {
    if !entry.is_revertible() {
        let what = if entry.outcome == crate::audit::Outcome::Applied {
            "a count of outside changes"
        } else {
            entry.outcome.as_str()
        };
        return Some(RevertRefused::NotApplied(what.to_owned()));
    }
    let not_stored = |document: &Option<Value>| document.as_ref().is_some_and(is_not_stored);
    if not_stored(&entry.before) {
        return Some(RevertRefused::NotStored("before"));
    }
    not_stored(&entry.after).then_some(RevertRefused::NotStored("after"))
}

/// Why a revert was not planned: refused, or the live objects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error(transparent)]
    Refused(#[from] RevertRefused),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

impl super::ChangePath {
    /// The change reverting `entry` (which the caller may view), read against the live
    /// objects and the namespace's Deployments as the API server has them now (which of
    /// them use a Service decides whether a revert may delete it).
    pub async fn plan_revert(&self, entry: &Entry, origin: &Origin, force: bool) -> Result<Change, RevertError> {
        if let Some(refused) = refusal(entry) {
            return Err(refused.into());
        }
        let reads = targets(entry).into_iter().map(|target| async move { self.objects.get(&target).await });
        let live = futures::future::try_join_all(reads).await?;
        // A revert in a namespace no longer managed is refused by the change path anyway.
        let deployments = if self.authorizer.is_managed(&entry.namespace) {
            let listed = self.objects.list::<k8s_openapi::api::apps::v1::Deployment>(&entry.namespace).await?;
            listed.iter().filter_map(|d| serde_json::to_value(d).ok()).collect()
        } else {
            Vec::new()
        };
        Ok(revert(entry, &live, &deployments, origin, force)?)
    }
}

/// The objects an entry touched, in order (an external entry: its one object).
pub fn targets(entry: &Entry) -> Vec<ObjectRef> {
    let recorded: Vec<ObjectRef> = entry
        .operations
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Operation::from_record)
        .map(|op| op.target().clone())
        .collect();
    if !recorded.is_empty() {
        return recorded;
    }
    // An external entry records no operations: its one object is the entry's.
    Kind::parse(&entry.kind)
        .map(|kind| vec![ObjectRef::namespaced(kind, &entry.namespace, &entry.name)])
        .unwrap_or_default()
}

/// The change restoring `entry`'s before state, given the live objects (in `targets` order)
/// and the namespace's live Deployments. Unless `force`, refuses when an object is no longer
/// as the entry left it. A Service or ServiceAccount the entry created but other Deployments
/// use now is kept, and the summary says so.
pub fn revert(
    entry: &Entry,
    live: &[Option<Value>],
    deployments: &[Value],
    origin: &Origin,
    force: bool,
) -> Result<Change, RevertRefused> {
    if let Some(refused) = refusal(entry) {
        return Err(refused);
    }
    let targets = targets(entry);
    let mut operations = Vec::with_capacity(targets.len());
    let mut overwrites_later_changes = false;
    for (target, live) in targets.iter().zip(live) {
        let left = find(entry.after.as_ref(), target);
        let now = live.clone().map(without_server_fields);
        if now.as_ref() != left.as_ref() {
            if !force {
                return Err(RevertRefused::ChangedSince(target.to_string()));
            }
            overwrites_later_changes = true;
        }
        operations.push(match find(entry.before.as_ref(), target) {
            Some(object) => Operation::Apply { target: target.clone(), object },
            None => Operation::Delete { target: target.clone() },
        });
    }
    let kept = keep_shared(&mut operations, live, deployments);
    let subject = targets
        .first()
        .cloned()
        .unwrap_or_else(|| ObjectRef::namespaced(Kind::Namespace, &entry.namespace, &entry.name));
    let subject = ObjectRef { kind: subject.kind, namespace: subject.namespace, name: entry.name.clone() };
    let summary = format!("revert #{}: {}{}", entry.id, entry.summary, kept_text(&kept));
    let permission = permission_for(&entry.action, overwrites_later_changes);
    let change = Change::new(origin, Action::Revert, permission, &entry.namespace, subject, summary);
    Ok(Change {
        host: host_of(entry),
        operations,
        reverts: Some(entry.id),
        reverted_time_ms: Some(entry.time_ms),
        ..change
    })
}

/// An object a revert would delete that other Deployments still use, and them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Kept {
    target: ObjectRef,
    users: Vec<String>,
}

/// Drops the deletes of Services and ServiceAccounts that Deployments this revert leaves in
/// place still use: reverting the deploy of recommendation-v3, which created Service
/// `recommendation`, must not take it from v1 and v2 deployed since.
fn keep_shared(operations: &mut Vec<Operation>, live: &[Option<Value>], deployments: &[Value]) -> Vec<Kept> {
    let deleted: Vec<String> = operations
        .iter()
        .filter(|op| matches!(op, Operation::Delete { .. }) && op.target().kind == Kind::Deployment)
        .map(|op| op.target().name.clone())
        .collect();
    let remaining: Vec<&Value> = deployments
        .iter()
        .filter(|d| d["metadata"]["name"].as_str().is_none_or(|name| !deleted.iter().any(|n| n == name)))
        .collect();
    let mut kept = Vec::new();
    let mut index = 0;
    operations.retain(|operation| {
        let now = live.get(index).and_then(Option::as_ref);
        index += 1;
        let Operation::Delete { target } = operation else { return true };
        let users: Vec<String> = remaining
            .iter()
            .filter(|deployment| uses(deployment, target, now))
            .filter_map(|deployment| deployment["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        if users.is_empty() {
            return true;
        }
        kept.push(Kept { target: target.clone(), users });
        false
    });
    kept
}

/// Whether `deployment` uses the Service (its pods match the live Service's selector) or
/// the ServiceAccount (its pods run as it, or it is its app's, as the tutorial names them).
fn uses(deployment: &Value, target: &ObjectRef, live: Option<&Value>) -> bool {
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    match target.kind {
        Kind::Service => live
            .and_then(|service| service["spec"]["selector"].as_object())
            .is_some_and(|selector| !selector.is_empty() && selector.iter().all(|(k, v)| &pod_labels[k] == v)),
        Kind::ServiceAccount => {
            let pod = &deployment["spec"]["template"]["spec"];
            let runs_as = [&pod["serviceAccountName"], &pod["serviceAccount"]];
            runs_as.into_iter().any(|name| name.as_str() == Some(&target.name))
                || deployment["metadata"]["labels"]["app"].as_str() == Some(&target.name)
        }
        _ => false,
    }
}

/// `; keeps Service recommendation (still used by recommendation-v1, recommendation-v2)`.
fn kept_text(kept: &[Kept]) -> String {
    kept.iter()
        .map(|k| {
            let what = format!("{} {}", k.target.kind, k.target.name);
            format!("; keeps {what} (still used by {})", k.users.join(", "))
        })
        .collect()
}

/// Reverting needs the permission the original change needed; what signalbox did not do
/// (an outside change, a revert) needs admin. A forced revert restores whole documents over
/// whatever changed since: for a canary step that is a routing change (timeouts, rules,
/// other people's weights), so it needs the routing permission, not the canary one.
fn permission_for(action: &str, overwrites_later_changes: bool) -> Permission {
    match Action::parse(action).map_or(Permission::Admin, Action::permission) {
        Permission::Canary if overwrites_later_changes => Permission::Route,
        permission => permission,
    }
}

/// The host the entry's object belongs to (None: the namespace itself).
fn host_of(entry: &Entry) -> Option<String> {
    crate::tutorial::host_of_object(&entry.kind, &entry.name)
}

/// The object `target` inside a before/after document (a single object or a v1 List).
fn find(document: Option<&Value>, target: &ObjectRef) -> Option<Value> {
    let document = document?;
    let matches = |object: &Value| {
        object["kind"].as_str() == Some(target.kind.as_str())
            && object["metadata"]["name"].as_str() == Some(target.name.as_str())
    };
    match document["items"].as_array() {
        Some(items) if document["kind"] == "List" => items.iter().find(|o| matches(o)).cloned(),
        _ => matches(document).then(|| document.clone()),
    }
    .map(without_server_fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;
    use serde_json::json;

    fn vs(weight: u32) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "recommendation", "namespace": "t"},
               "spec": {"http": [{"route": [{"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": weight}]}]}})
    }

    fn entry(before: Option<Value>, after: Option<Value>) -> Entry {
        let target = ObjectRef::namespaced(Kind::VirtualService, "t", "recommendation");
        Entry {
            id: 7,
            time_ms: 0,
            actor: "alice".into(),
            groups: vec![],
            source: Source::Api,
            action: "route.update".into(),
            namespace: "t".into(),
            kind: "VirtualService".into(),
            name: "recommendation".into(),
            summary: "recommendation: v1 90%→75%".into(),
            before,
            after,
            operations: json!([Operation::Apply { target, object: vs(75) }.to_record()]),
            outcome: crate::audit::Outcome::Applied,
            error: None,
            request_id: None,
            reverts: None,
            approved_by: None,
            propagation: None,
        }
    }

    fn bob() -> Origin {
        Origin { actor: Actor::user("bob", vec![]), source: Source::Ui, request_id: None, emergency: None }
    }

    #[test]
    fn a_revert_applies_the_before_state_and_references_the_entry() {
        let entry = entry(Some(vs(90)), Some(vs(75)));
        let change = revert(&entry, &[Some(vs(75))], &[], &bob(), false).unwrap();
        assert_eq!(change.reverts, Some(7));
        assert_eq!(change.action, Action::Revert);
        assert_eq!(change.permission, Permission::Route);
        assert_eq!(change.operations[0].object().unwrap()["spec"]["http"][0]["route"][0]["weight"], 90);
    }

    #[test]
    fn an_object_created_by_the_change_is_deleted() {
        let change = revert(&entry(None, Some(vs(75))), &[Some(vs(75))], &[], &bob(), false).unwrap();
        assert!(matches!(change.operations[0], Operation::Delete { .. }));
    }

    #[test]
    fn a_service_and_service_account_other_versions_use_are_kept() {
        let v3 = crate::tutorial::Workload::RecommendationV3.objects(1);
        let targets = [Kind::ServiceAccount, Kind::Service, Kind::Deployment]
            .into_iter()
            .zip(&v3)
            .map(|(kind, object)| ObjectRef::namespaced(kind, "t", object["metadata"]["name"].as_str().unwrap()));
        let operations: Vec<Value> = targets
            .zip(&v3)
            .map(|(target, object)| Operation::Apply { target, object: object.clone() }.to_record())
            .collect();
        let deploy = Entry {
            action: "workload.deploy".into(),
            kind: "Deployment".into(),
            name: "recommendation-v3".into(),
            summary: "deploy recommendation-v3 (1 replica)".into(),
            before: None,
            after: Some(json!({"apiVersion": "v1", "kind": "List", "items": v3})),
            operations: json!(operations),
            ..entry(None, None)
        };
        let live: Vec<Option<Value>> = v3.iter().cloned().map(Some).collect();
        let deployments: Vec<Value> = crate::tutorial::Workload::ALL[2..].iter().map(|w| w.deployment(1)).collect();
        let change = revert(&deploy, &live, &deployments, &bob(), false).unwrap();
        let deleted: Vec<String> = change.operations.iter().map(|op| op.target().to_string()).collect();
        assert_eq!(deleted, ["Deployment t/recommendation-v3"]);
        assert!(
            change.summary.ends_with(
                "; keeps ServiceAccount recommendation (still used by recommendation-v1, recommendation-v2)\
                 ; keeps Service recommendation (still used by recommendation-v1, recommendation-v2)"
            ),
            "{}",
            change.summary
        );
        let alone = revert(&deploy, &live, &deployments[2..], &bob(), false);
        assert_eq!(alone.unwrap().operations.len(), 3, "with v3 alone, its Service and ServiceAccount go too");
    }

    /// A member who may only run canaries reverts an old canary step after the routing
    /// moved on: forced, it would restore the whole VirtualService of then, so it takes the
    /// routing permission; the same revert of an unmoved object stays a canary change.
    #[test]
    fn a_forced_revert_of_a_canary_step_needs_the_routing_permission() {
        let step = Entry { action: "canary.promote".into(), ..entry(Some(vs(90)), Some(vs(75))) };
        let unmoved = revert(&step, &[Some(vs(75))], &[], &bob(), false).unwrap();
        assert_eq!(unmoved.permission, Permission::Canary);
        let forced = revert(&step, &[Some(vs(50))], &[], &bob(), true).unwrap();
        assert_eq!(forced.permission, Permission::Route);
        let forced_unmoved = revert(&step, &[Some(vs(75))], &[], &bob(), true).unwrap();
        assert_eq!(forced_unmoved.permission, Permission::Canary, "force on an unmoved object overwrites nothing");
    }

    #[test]
    fn a_changed_object_needs_confirmation() {
        let entry = entry(Some(vs(90)), Some(vs(75)));
        let refused = revert(&entry, &[Some(vs(50))], &[], &bob(), false);
        assert!(matches!(refused, Err(RevertRefused::ChangedSince(_))));
        assert!(revert(&entry, &[Some(vs(50))], &[], &bob(), true).is_ok());
        let failed = Entry { outcome: crate::audit::Outcome::Failed, ..entry };
        assert!(matches!(revert(&failed, &[None], &[], &bob(), true), Err(RevertRefused::NotApplied(_))));
    }
}
