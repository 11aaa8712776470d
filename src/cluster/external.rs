//! Changes made behind signalbox's back (kubectl, GitOps controllers): watched in the
//! managed namespaces and attributed to their field manager from `managedFields`.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use super::kinds::{Kind, ObjectRef};
use super::objects::{FIELD_MANAGER, without_server_fields};

/// The kinds whose outside changes are recorded.
pub const WATCHED: [Kind; 4] = [Kind::VirtualService, Kind::DestinationRule, Kind::Deployment, Kind::Service];

/// A change signalbox did not make.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalChange {
    pub target: ObjectRef,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The field manager that made it and how, e.g. `kubectl-client-side-apply (Update)`.
    pub author: String,
    /// The resourceVersion the change produced (None for a deletion).
    pub resource_version: Option<String>,
}

/// When each host's routing last changed outside signalbox (epoch ms), for the overview.
#[derive(Clone, Default)]
pub struct ExternalActivity(Arc<Mutex<HashMap<(String, String), i64>>>);

impl ExternalActivity {
    fn note(&self, change: &ExternalChange) {
        if matches!(change.target.kind, Kind::VirtualService | Kind::DestinationRule) {
            let key = (change.target.namespace.clone().unwrap_or_default(), change.target.name.clone());
            self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(key, jiff::Timestamp::now().as_millisecond());
        }
    }

    /// Whether `host`'s routing changed outside signalbox within the last `within_ms`.
    pub fn routing_changed_recently(&self, namespace: &str, host: &str, within_ms: i64) -> bool {
        let changes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        changes
            .get(&(namespace.to_owned(), host.to_owned()))
            .is_some_and(|at| jiff::Timestamp::now().as_millisecond() - at <= within_ms)
    }
}

/// Watches every managed namespace and calls `record` for each outside change.
pub fn watch<F, Fut>(client: &Client, namespaces: &[String], activity: ExternalActivity, record: F)
where
    F: Fn(ExternalChange) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    for namespace in namespaces {
        for kind in WATCHED {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
            let (namespace, record, activity) = (namespace.clone(), record.clone(), activity.clone());
            tokio::spawn(async move {
                let mut seen: HashMap<String, Value> = HashMap::new();
                let mut events =
                    watcher::watcher(api, watcher::Config::default()).backoff(super::WatchBackoff::default()).boxed();
                let mut listing = true;
                while let Some(event) = events.next().await {
                    let Ok(event) = event else { continue };
                    let change = match event {
                        Event::Init => {
                            listing = true;
                            None
                        }
                        Event::InitDone => {
                            listing = false;
                            None
                        }
                        Event::InitApply(object) => {
                            remember(&mut seen, &object);
                            None
                        }
                        Event::Apply(object) if listing => {
                            remember(&mut seen, &object);
                            None
                        }
                        Event::Apply(object) => applied(&mut seen, kind, &namespace, &object),
                        Event::Delete(object) => deleted(&mut seen, kind, &namespace, &object),
                    };
                    if let Some(change) = change {
                        activity.note(&change);
                        record(change).await;
                    }
                }
            });
        }
    }
}

fn name_of(object: &DynamicObject) -> String {
    object.metadata.name.clone().unwrap_or_default()
}

fn remember(seen: &mut HashMap<String, Value>, object: &DynamicObject) {
    seen.insert(name_of(object), state_of(object));
}

fn state_of(object: &DynamicObject) -> Value {
    without_server_fields(serde_json::to_value(object).unwrap_or(Value::Null))
}

fn applied(
    seen: &mut HashMap<String, Value>,
    kind: Kind,
    namespace: &str,
    object: &DynamicObject,
) -> Option<ExternalChange> {
    let name = name_of(object);
    let after = state_of(object);
    let before = seen.insert(name.clone(), after.clone());
    if before.as_ref() == Some(&after) {
        return None; // status or server-maintained fields only
    }
    // Whether signalbox wrote this version is decided by the caller (it knows the
    // resourceVersions its writes produced); the author named is the newest other manager.
    let author = latest_author(object).unwrap_or_else(|| ("unknown".into(), "Update".into()));
    Some(ExternalChange {
        target: ObjectRef::namespaced(kind, namespace, &name),
        before,
        after: Some(after),
        author: format!("{} ({})", author.0, author.1),
        resource_version: object.metadata.resource_version.clone(),
    })
}

fn deleted(
    seen: &mut HashMap<String, Value>,
    kind: Kind,
    namespace: &str,
    object: &DynamicObject,
) -> Option<ExternalChange> {
    let name = name_of(object);
    let before = seen.remove(&name);
    // A deletion carries no manager; signalbox's own deletions are recognised by the
    // caller through the audit log.
    Some(ExternalChange {
        target: ObjectRef::namespaced(kind, namespace, &name),
        before,
        after: None,
        author: "unknown (Delete)".into(),
        resource_version: None,
    })
}

/// The manager other than signalbox whose latest non-status write is newest.
fn latest_author(object: &DynamicObject) -> Option<(String, String)> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().unwrap_or("").is_empty())
        .filter(|entry| entry.manager.as_deref() != Some(FIELD_MANAGER))
        .max_by_key(|entry| entry.time.as_ref().map(|t| t.0))
        .map(|entry| (entry.manager.clone().unwrap_or_default(), entry.operation.clone().unwrap_or_default()))
}
