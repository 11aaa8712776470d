//! Watch-fed caches: pages read these, never the API server.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::DynamicObject;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::external::OutsideChanges;
use super::{Kind, WatchBackoff};
use crate::gateway_api::HTTPRoute;
use crate::istio::{DestinationRule, Gateway, VirtualService};

/// How long readiness waits for the first list of HTTPRoutes.
const HTTP_ROUTES_LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The cached objects of one managed namespace.
#[derive(Clone)]
pub struct NamespaceCache {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub virtual_services: Store<VirtualService>,
    pub destination_rules: Store<DestinationRule>,
    pub gateways: Store<Gateway>,
    pub http_routes: Store<HTTPRoute>,
    /// Moves after every watch event applied to any of these stores.
    revision: Arc<AtomicU64>,
}

impl NamespaceCache {
    /// A number that moves whenever any of this namespace's stores changed: the same
    /// number means the same objects, so what was derived from them still holds.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }
}

/// All caches, plus when they last heard from the API server.
#[derive(Clone)]
pub struct Caches {
    pub managed: BTreeMap<String, NamespaceCache>,
    pub namespaces: Store<Namespace>,
    pub istio_system_services: Store<Service>,
    activity: Activity,
}

/// Whether every cache finished its first list, and when the last watch event arrived.
#[derive(Clone, Default)]
struct Activity {
    synced: Arc<AtomicBool>,
    last_event_ms: Arc<AtomicI64>,
}

impl Activity {
    fn touch(&self) {
        self.last_event_ms.store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }
}

impl Caches {
    /// Starts one watch per kind and namespace, each feeding its cache and, given
    /// `outside`, the detection of changes made outside signalbox. Returns at once; see
    /// [`Caches::is_synced`].
    pub fn start(client: &Client, managed_namespaces: &[String], outside: Option<OutsideChanges>) -> Self {
        let activity = Activity::default();
        let watch = Watch { client, activity: &activity, outside: outside.as_ref(), revision: None };
        let managed = managed_namespaces
            .iter()
            .map(|namespace| {
                let at = Some(namespace.as_str());
                let revision = Arc::new(AtomicU64::new(0));
                let watch = Watch { revision: Some(&revision), ..watch };
                let cache = NamespaceCache {
                    deployments: watch.reflect(Kind::Deployment, at),
                    services: watch.reflect(Kind::Service, at),
                    virtual_services: watch.reflect(Kind::VirtualService, at),
                    destination_rules: watch.reflect(Kind::DestinationRule, at),
                    gateways: watch.reflect(Kind::Gateway, at),
                    http_routes: watch.reflect(Kind::HTTPRoute, at),
                    revision: revision.clone(),
                };
                (namespace.clone(), cache)
            })
            .collect();
        // Outside changes are recorded only in the managed namespaces.
        let unrecorded = Watch { outside: None, revision: None, ..watch };
        let caches = Self {
            managed,
            namespaces: unrecorded.reflect(Kind::Namespace, None),
            istio_system_services: unrecorded.reflect(Kind::Service, Some("istio-system")),
            activity,
        };
        caches.mark_synced_when_ready();
        caches
    }

    fn mark_synced_when_ready(&self) {
        let caches = self.clone();
        tokio::spawn(async move {
            for cache in caches.managed.values() {
                let _ = cache.deployments.wait_until_ready().await;
                let _ = cache.services.wait_until_ready().await;
                let _ = cache.virtual_services.wait_until_ready().await;
                let _ = cache.destination_rules.wait_until_ready().await;
                let _ = cache.gateways.wait_until_ready().await;
                // Clusters without the Gateway API CRDs never list HTTPRoutes: not waited for.
                let _ = tokio::time::timeout(HTTP_ROUTES_LISTED_WITHIN, cache.http_routes.wait_until_ready()).await;
            }
            let _ = caches.namespaces.wait_until_ready().await;
            let _ = caches.istio_system_services.wait_until_ready().await;
            caches.activity.synced.store(true, Ordering::Release);
            tracing::info!("watch caches synced");
        });
    }

    /// True once every cache has completed its initial list.
    pub fn is_synced(&self) -> bool {
        self.activity.synced.load(Ordering::Acquire)
    }

    /// Seconds since the last watch event (None before the first).
    pub fn age_seconds(&self) -> Option<f64> {
        let last = self.activity.last_event_ms.load(Ordering::Relaxed);
        (last > 0).then(|| (jiff::Timestamp::now().as_millisecond() - last) as f64 / 1000.0)
    }

    pub fn namespace(&self, name: &str) -> Option<&NamespaceCache> {
        self.managed.get(name)
    }

    /// The managed namespace object, if it exists.
    pub fn namespace_object(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.state().into_iter().find(|ns| ns.metadata.name.as_deref() == Some(name))
    }
}

/// What every watch of the caches shares.
#[derive(Clone, Copy)]
struct Watch<'a> {
    client: &'a Client,
    activity: &'a Activity,
    outside: Option<&'a OutsideChanges>,
    /// The namespace's revision, moved after each event is applied.
    revision: Option<&'a Arc<AtomicU64>>,
}

impl Watch<'_> {
    /// Watches `kind` in `namespace` (all namespaces for None) and returns its cache.
    ///
    /// The watch is of untyped objects, so that outside-change detection compares exactly
    /// what the API server sent (a typed object drops fields it does not model); each event
    /// is then parsed into `K` for the cache. One watch serves both: two watches of the same
    /// objects cost the API server twice and could disagree for a moment.
    fn reflect<K>(&self, kind: Kind, namespace: Option<&str>) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + Hash + Clone,
    {
        let (reader, mut writer) = reflector::store();
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let (activity, outside, revision) = (self.activity.clone(), self.outside.cloned(), self.revision.cloned());
        let namespace = namespace.unwrap_or_default().to_owned();
        tokio::spawn(async move {
            // The baseline is read before the first listing, which is compared with it; the
            // cache waits for that one query.
            let mut detector = match &outside {
                Some(outside) => outside.detector(kind, &namespace).await,
                None => None,
            };
            let mut events = watcher(api, watcher::Config::default()).backoff(WatchBackoff::default()).boxed();
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!(%kind, %error, "watch interrupted; retrying");
                        continue;
                    }
                };
                activity.touch();
                if let Some(typed) = typed_event::<K>(kind, &event) {
                    writer.apply_watcher_event(&typed);
                    if let Some(revision) = &revision {
                        revision.fetch_add(1, Ordering::Release);
                    }
                }
                if let Some(detector) = &mut detector {
                    detector.observe(event);
                }
            }
        });
        reader
    }
}

/// `event` with its object parsed as `K`, or None (logged) if it does not parse: such an
/// object is left out of the cache rather than stopping the watch.
fn typed_event<K: DeserializeOwned>(kind: Kind, event: &Event<DynamicObject>) -> Option<Event<K>> {
    let parse = |object: &DynamicObject| match serde_json::to_value(object).and_then(serde_json::from_value) {
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
