//! Reading and writing single objects: server-side apply (with dry run) and delete.
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::Value;

use super::kinds::ObjectRef;

/// The field manager every signalbox write uses.
pub const FIELD_MANAGER: &str = "signalbox";

/// How long one API request may take before the change is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One step of a change.
#[derive(Debug, Clone)]
pub enum Operation {
    /// Server-side apply of a whole object (apiVersion, kind, metadata, spec). A
    /// `metadata.resourceVersion` in the object makes the API server refuse (409) a stale write.
    Apply { target: ObjectRef, object: Value },
    /// Create an object that must not exist yet (409 if it does): the optimistic-concurrency
    /// form of "I saw no such object".
    Create { target: ObjectRef, object: Value },
    /// Delete the object if it exists.
    Delete { target: ObjectRef },
}

impl Operation {
    pub fn target(&self) -> &ObjectRef {
        match self {
            Operation::Apply { target, .. } | Operation::Create { target, .. } | Operation::Delete { target } => target,
        }
    }

    /// The object written, for Apply and Create.
    pub fn object(&self) -> Option<&Value> {
        match self {
            Operation::Apply { object, .. } | Operation::Create { object, .. } => Some(object),
            Operation::Delete { .. } => None,
        }
    }

    /// The record kept in the audit log: `{kind, namespace, name, apply}` (apply null: delete).
    pub fn to_record(&self) -> Value {
        let target = self.target();
        let apply = self.object().cloned().unwrap_or(Value::Null);
        let create = matches!(self, Operation::Create { .. });
        serde_json::json!({"kind": target.kind, "namespace": target.namespace, "name": target.name, "apply": apply, "create": create})
    }

    /// Reads back [`Operation::to_record`].
    pub fn from_record(record: &Value) -> Option<Self> {
        let target: ObjectRef = serde_json::from_value(record.clone()).ok()?;
        let create = record.get("create").and_then(Value::as_bool).unwrap_or(false);
        match record.get("apply") {
            None | Some(Value::Null) => Some(Operation::Delete { target }),
            Some(object) if create => Some(Operation::Create { target, object: object.clone() }),
            Some(object) => Some(Operation::Apply { target, object: object.clone() }),
        }
    }

    /// Whether the live object shows this operation took effect: a deleted object is gone;
    /// an applied object's every field is present in the live one with the same value.
    pub fn is_reflected_in(&self, live: Option<&Value>) -> bool {
        match (self.object(), live) {
            (None, live) => live.is_none(),
            (Some(object), Some(live)) => contains(live, &without_resource_version(object)),
            (Some(_), None) => false,
        }
    }
}

/// The precondition is not part of the state a write leaves behind.
fn without_resource_version(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    object
}

/// True when `part` is contained in `whole`: objects key by key, arrays element by element.
fn contains(whole: &Value, part: &Value) -> bool {
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => {
            part.iter().all(|(key, value)| whole.get(key).is_some_and(|live| contains(live, value)))
        }
        (Value::Array(whole), Value::Array(part)) => {
            whole.len() == part.len() && whole.iter().zip(part).all(|(live, value)| contains(live, value))
        }
        (whole, part) => whole == part,
    }
}

/// Why the API server did not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    #[error("the Kubernetes API server is unreachable: {0}")]
    Unreachable(String),
    #[error("{message}")]
    Refused { code: u16, reason: String, message: String },
}

impl ClusterError {
    pub fn status_code(&self) -> u16 {
        match self {
            ClusterError::Unreachable(_) => 503,
            ClusterError::Refused { code, .. } => *code,
        }
    }
}

impl From<kube::Error> for ClusterError {
    fn from(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => ClusterError::Refused {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ClusterError::Unreachable(other.to_string()),
        }
    }
}

/// Typed access to objects of any [`Kind`](super::Kind) as JSON.
#[derive(Clone)]
pub struct Objects {
    client: Client,
}

impl Objects {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, target: &ObjectRef) -> Api<DynamicObject> {
        let resource = target.kind.api_resource();
        match &target.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// The live object, or None when it does not exist.
    pub async fn get(&self, target: &ObjectRef) -> Result<Option<Value>, ClusterError> {
        let api = self.api(target);
        let object = bounded(api.get_opt(&target.name)).await?;
        Ok(object.map(to_json))
    }

    /// Every object of a kind in `namespace`, read from the API server (not a cache).
    pub async fn list<K>(&self, namespace: &str) -> Result<Vec<K>, ClusterError>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        Ok(bounded(api.list(&kube::api::ListParams::default())).await?.items)
    }

    /// Runs one operation; with `dry_run` the API server validates and answers without persisting.
    /// Returns the resulting object (None after a delete).
    pub async fn run(&self, operation: &Operation, dry_run: bool) -> Result<Option<Value>, ClusterError> {
        let api = self.api(operation.target());
        match operation {
            Operation::Apply { target, object } => {
                let mut params = PatchParams::apply(FIELD_MANAGER).force().validation_strict();
                params.dry_run = dry_run;
                let applied = bounded(api.patch(&target.name, &params, &Patch::Apply(object))).await?;
                Ok(Some(to_json(applied)))
            }
            Operation::Create { object, .. } => {
                let object: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| {
                    ClusterError::Refused { code: 422, reason: "Invalid".into(), message: e.to_string() }
                })?;
                let params = PostParams { dry_run, field_manager: Some(FIELD_MANAGER.into()) };
                let created = bounded(api.create(&params, &object)).await?;
                Ok(Some(to_json(created)))
            }
            Operation::Delete { target } => {
                let params = DeleteParams { dry_run, ..DeleteParams::background() };
                match bounded(api.delete(&target.name, &params)).await {
                    Ok(_) => Ok(None),
                    Err(ClusterError::Refused { code: 404, .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            }
        }
    }
}

async fn bounded<T>(request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, ClusterError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(ClusterError::from),
        Err(_) => Err(ClusterError::Unreachable(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))),
    }
}

fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The object without the fields the API server maintains, for before/after and diffs.
pub fn without_server_fields(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"] {
            metadata.remove(field);
        }
        let annotations_empty = metadata
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
            .map(|annotations| {
                annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
                annotations.remove("deployment.kubernetes.io/revision");
                annotations.is_empty()
            })
            .unwrap_or(false);
        if annotations_empty {
            metadata.remove("annotations");
        }
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_applied_object_is_reflected_when_the_live_one_holds_all_its_fields() {
        let target = ObjectRef::namespaced(super::super::Kind::Deployment, "tutorial", "recommendation-v2");
        let apply = Operation::Apply {
            target: target.clone(),
            object: json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}}),
        };
        let live = json!({"spec": {"replicas": 2, "paused": false, "ports": [{"port": 80, "protocol": "TCP"}]}});
        assert!(apply.is_reflected_in(Some(&live)));
        assert!(!apply.is_reflected_in(Some(&json!({"spec": {"replicas": 1}}))));
        assert!(!apply.is_reflected_in(None));
        let delete = Operation::Delete { target };
        assert!(delete.is_reflected_in(None));
        assert!(!delete.is_reflected_in(Some(&live)));
        assert_eq!(Operation::from_record(&apply.to_record()).unwrap().to_record(), apply.to_record());
    }

    #[test]
    fn server_maintained_fields_are_dropped_and_the_rest_kept() {
        let live = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "customer", "uid": "x", "resourceVersion": "7", "managedFields": [],
                         "labels": {"app": "customer"},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"ports": [{"port": 8080}]},
            "status": {"loadBalancer": {}}
        });
        assert_eq!(
            without_server_fields(live),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "customer", "labels": {"app": "customer"}},
                   "spec": {"ports": [{"port": 8080}]}})
        );
    }
}
