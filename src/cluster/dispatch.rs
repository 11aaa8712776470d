//! One watch of a kind feeding the caches of many namespaces.
//!
//! A cluster-wide watch sends every object of its kind; each goes to the cache (and the
//! outside-change detector) of its namespace when that namespace is managed, and is dropped
//! otherwise. A namespace that joins while the watch runs is listed once on its own
//! (a LIST, not another watch); the events of its objects that arrive meanwhile wait and
//! are replayed after the listing when newer than it, so the cache never goes back in time.
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use kube::api::{DynamicObject, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::WatchBackoff;
use super::cache::Activity;
use super::external::{Detector, OutsideChanges};
use super::kinds::Kind;

/// What a cache can hold: a kind addressed statically, parsed from the API server's JSON.
pub trait Cached: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static> Cached for K {}

/// How many times a joining namespace's listing is tried before it is left unlisted.
const JOIN_ATTEMPTS: u32 = 5;

/// What the dispatcher of one kind is told.
pub enum Command<K: Cached> {
    /// Start feeding `writer` with the objects of `namespace`.
    Join { namespace: String, writer: Writer<K>, revision: Arc<AtomicU64> },
    /// Stop feeding `namespace`.
    Leave(String),
}

/// The cache of one namespace for one kind.
pub struct Shard<K: Cached> {
    pub writer: Writer<K>,
    pub revision: Option<Arc<AtomicU64>>,
    pub detector: Option<Detector>,
}

impl<K: Cached> Shard<K> {
    /// Applies `event` to the cache, then hands it to the detector (no copy of its object).
    fn apply(&mut self, kind: Kind, event: Event<DynamicObject>) {
        if let Some(typed) = typed_event::<K>(kind, &event) {
            self.writer.apply_watcher_event(&typed);
            if let Some(revision) = &self.revision {
                revision.fetch_add(1, Ordering::Release);
            }
        }
        if let Some(detector) = &mut self.detector {
            detector.observe(event);
        }
    }
}

/// A namespace being listed: its shard, and the events that came meanwhile.
struct Joining<K: Cached> {
    /// Which join this is: a listing of an earlier join of the same namespace (it left and
    /// came back before that listing answered) is not this one's.
    id: u64,
    shard: Shard<K>,
    waiting: Vec<Event<DynamicObject>>,
    listed: Option<Listing>,
}

/// A namespace's own listing: its objects and the resourceVersion they were read at.
struct Listing {
    objects: Vec<DynamicObject>,
    version: Option<u64>,
    detector: Option<Detector>,
}

type Listed = BoxFuture<'static, (String, u64, Option<Listing>)>;

/// Feeds the shards of one kind from one watch.
pub struct Dispatcher<K: Cached> {
    pub kind: Kind,
    pub client: Client,
    /// The namespace watched, or None for every namespace.
    pub scope: Option<String>,
    pub shards: HashMap<String, Shard<K>>,
    pub outside: Option<OutsideChanges>,
    pub activity: Activity,
    joining: HashMap<String, Joining<K>>,
    joins: u64,
    /// Between a re-listing's `Init` and its `InitDone`: joins wait until it is over.
    relisting: bool,
}

impl<K: Cached> Dispatcher<K> {
    pub fn new(kind: Kind, client: Client, scope: Option<String>, activity: Activity) -> Self {
        Self {
            kind,
            client,
            scope,
            shards: HashMap::new(),
            outside: None,
            activity,
            joining: HashMap::new(),
            joins: 0,
            relisting: false,
        }
    }

    /// Runs the watch until the command channel closes and the watch ends.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<K>>) {
        let resource = self.kind.api_resource();
        let api: Api<DynamicObject> = match &self.scope {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let mut events = watcher(api, watcher::Config::default()).backoff(WatchBackoff::default()).boxed();
        let mut listings: FuturesUnordered<Listed> = FuturesUnordered::new();
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(event)) => self.dispatch(event),
                    Some(Err(error)) => tracing::debug!(kind = %self.kind, %error, "watch interrupted; retrying"),
                    None => break,
                },
                Some(command) = commands.recv() => {
                    if let Some(listing) = self.command(command) {
                        listings.push(listing);
                    }
                }
                Some((namespace, id, listing)) = listings.next(), if !listings.is_empty() => {
                    self.listed(namespace, id, listing);
                }
            }
        }
    }

    fn command(&mut self, command: Command<K>) -> Option<Listed> {
        match command {
            Command::Join { namespace, writer, revision } => {
                let shard = Shard { writer, revision: Some(revision), detector: None };
                self.joins += 1;
                let id = self.joins;
                self.joining.insert(namespace.clone(), Joining { id, shard, waiting: Vec::new(), listed: None });
                let listing = list(self.kind, self.client.clone(), self.outside.clone(), namespace);
                Some(Box::pin(async move {
                    let (namespace, listed) = listing.await;
                    (namespace, id, listed)
                }))
            }
            Command::Leave(namespace) => {
                self.shards.remove(&namespace);
                self.joining.remove(&namespace);
                None
            }
        }
    }

    fn dispatch(&mut self, event: Event<DynamicObject>) {
        self.activity.touch();
        let kind = self.kind;
        match &event {
            Event::Init => {
                self.relisting = true;
                self.shards.values_mut().for_each(|shard| shard.apply(kind, Event::Init));
            }
            Event::InitDone => {
                self.relisting = false;
                self.shards.values_mut().for_each(|shard| shard.apply(kind, Event::InitDone));
                let ready: Vec<String> =
                    self.joining.iter().filter(|(_, join)| join.listed.is_some()).map(|(ns, _)| ns.clone()).collect();
                ready.into_iter().for_each(|namespace| self.finish_join(&namespace));
            }
            Event::InitApply(object) | Event::Apply(object) | Event::Delete(object) => {
                let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
                if let Some(shard) = self.shards.get_mut(namespace) {
                    shard.apply(kind, event);
                } else if let Some(join) = self.joining.get_mut(namespace) {
                    join.waiting.push(event);
                }
            }
        }
    }

    fn listed(&mut self, namespace: String, id: u64, listing: Option<Listing>) {
        let Some(join) = self.joining.get_mut(&namespace).filter(|join| join.id == id) else { return };
        let Some(listing) = listing else {
            tracing::warn!(kind = %self.kind, %namespace, "could not list a namespace that joined; its cache stays empty");
            self.joining.remove(&namespace);
            return;
        };
        join.listed = Some(listing);
        if !self.relisting {
            self.finish_join(&namespace);
        }
    }

    /// The listing as the shard's first `Init`…`InitDone`, then what came since.
    fn finish_join(&mut self, namespace: &str) {
        let Some(Joining { mut shard, waiting, listed: Some(listing), .. }) = self.joining.remove(namespace) else {
            return;
        };
        let kind = self.kind;
        shard.detector = listing.detector;
        shard.apply(kind, Event::Init);
        for object in listing.objects {
            shard.apply(kind, Event::InitApply(object));
        }
        shard.apply(kind, Event::InitDone);
        for event in waiting {
            let newer = match &event {
                Event::InitApply(object) | Event::Apply(object) | Event::Delete(object) => {
                    is_newer(object, listing.version)
                }
                _ => false,
            };
            if newer {
                let event = match event {
                    Event::InitApply(object) => Event::Apply(object),
                    other => other,
                };
                shard.apply(kind, event);
            }
        }
        self.shards.insert(namespace.to_owned(), shard);
    }
}

/// Whether `object` is newer than a listing at `version`. resourceVersions are opaque to
/// clients by contract, but the API server's are etcd revisions; one that does not parse
/// is taken as newer (applying a duplicate is harmless, dropping a change is not).
fn is_newer(object: &DynamicObject, version: Option<u64>) -> bool {
    let object_version = object.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
    match (object_version, version) {
        (Some(object), Some(listing)) => object > listing,
        _ => true,
    }
}

/// Lists `kind` in `namespace` (retrying), with the outside-change detector whose baseline
/// that first listing is compared with.
async fn list(
    kind: Kind,
    client: Client,
    outside: Option<OutsideChanges>,
    namespace: String,
) -> (String, Option<Listing>) {
    let detector = match &outside {
        Some(outside) => outside.detector(kind, &namespace).await,
        None => None,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &kind.api_resource());
    let mut wait = Duration::from_millis(250);
    for _ in 0..JOIN_ATTEMPTS {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let version = list.metadata.resource_version.as_deref().and_then(|v| v.parse().ok());
                return (namespace, Some(Listing { objects: list.items, version, detector }));
            }
            Err(error) => tracing::debug!(%kind, %namespace, %error, "listing a joining namespace failed; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    (namespace, None)
}

/// `event` with its object parsed as `K`, or None (logged) if it does not parse: such an
/// object is left out of the cache rather than stopping the watch. The cache keeps who
/// manages which object (`managedFields`' managers) but not the field sets they own
/// (`fieldsV1`), which nothing reads from the cache and which were most of each object.
fn typed_event<K: DeserializeOwned>(kind: Kind, event: &Event<DynamicObject>) -> Option<Event<K>> {
    let parse = |object: &DynamicObject| match serde_json::to_value(object)
        .map(without_field_sets)
        .and_then(serde_json::from_value)
    {
        Ok(typed) => Some(typed),
        Err(error) => {
            tracing::warn!(%kind, name = object.metadata.name.as_deref(), %error, "left out of the cache: does not parse");
            None
        }
    };
    Some(match event {
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(parse(object)?),
        Event::InitDone => Event::InitDone,
        Event::Apply(object) => Event::Apply(parse(object)?),
        Event::Delete(object) => Event::Delete(parse(object)?),
    })
}

fn without_field_sets(mut object: serde_json::Value) -> serde_json::Value {
    let entries = object["metadata"]["managedFields"].as_array_mut().into_iter().flatten();
    for entry in entries.filter_map(serde_json::Value::as_object_mut) {
        entry.remove("fieldsV1");
    }
    object
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(version: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "a", "namespace": "n", "resourceVersion": version}}))
        .unwrap()
    }

    #[test]
    fn only_events_after_a_joining_namespaces_listing_are_replayed() {
        assert!(is_newer(&at("12"), Some(11)));
        assert!(!is_newer(&at("11"), Some(11)), "the listing already has it");
        assert!(!is_newer(&at("9"), Some(11)));
        assert!(is_newer(&at("x"), Some(11)), "an unreadable version is applied rather than lost");
        assert!(is_newer(&at("3"), None));
    }

    #[test]
    fn the_cache_keeps_each_manager_but_not_the_fields_it_owns() {
        let object = serde_json::json!({"metadata": {"name": "a", "managedFields": [
            {"manager": "argocd-controller", "operation": "Apply", "fieldsV1": {"f:spec": {}}}]}});
        let kept = without_field_sets(object);
        assert_eq!(
            kept["metadata"]["managedFields"],
            serde_json::json!([{"manager": "argocd-controller", "operation": "Apply"}])
        );
    }
}
