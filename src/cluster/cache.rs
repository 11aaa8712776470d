//! Watch-fed caches: pages read these, never the API server.
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::WatchBackoff;
use crate::istio::{DestinationRule, Gateway, VirtualService};
use crate::policy::HostObjects;

/// The cached objects of one managed namespace.
#[derive(Clone)]
pub struct NamespaceCache {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
    pub virtual_services: Store<VirtualService>,
    pub destination_rules: Store<DestinationRule>,
    pub gateways: Store<Gateway>,
}

impl NamespaceCache {
    /// The VirtualServices and DestinationRules of this namespace that route `host`, by
    /// what they route (the same lookup as reads from the API server).
    pub fn routing_of(&self, namespace: &str, host: &str) -> HostObjects {
        let virtual_services = self.virtual_services.state();
        let destination_rules = self.destination_rules.state();
        crate::policy::lookup::find(
            namespace,
            host,
            virtual_services.iter().map(|vs| vs.as_ref()),
            destination_rules.iter().map(|dr| dr.as_ref()),
        )
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
    /// Starts one reflector per kind and namespace. Returns at once; see [`Caches::is_synced`].
    pub fn start(client: &Client, managed_namespaces: &[String]) -> Self {
        let activity = Activity::default();
        let managed = managed_namespaces
            .iter()
            .map(|namespace| {
                let cache = NamespaceCache {
                    deployments: reflect(Api::namespaced(client.clone(), namespace), &activity),
                    services: reflect(Api::namespaced(client.clone(), namespace), &activity),
                    virtual_services: reflect(Api::namespaced(client.clone(), namespace), &activity),
                    destination_rules: reflect(Api::namespaced(client.clone(), namespace), &activity),
                    gateways: reflect(Api::namespaced(client.clone(), namespace), &activity),
                };
                (namespace.clone(), cache)
            })
            .collect();
        let caches = Self {
            managed,
            namespaces: reflect(Api::all(client.clone()), &activity),
            istio_system_services: reflect(Api::namespaced(client.clone(), "istio-system"), &activity),
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

fn reflect<K>(api: Api<K>, activity: &Activity) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let activity = activity.clone();
    let kind = K::kind(&Default::default()).to_string();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).backoff(WatchBackoff::default());
    tokio::spawn(async move {
        stream
            .for_each(|event| {
                match event {
                    Ok(_) => activity.touch(),
                    Err(error) => tracing::debug!(%kind, %error, "watch interrupted; retrying"),
                }
                futures::future::ready(())
            })
            .await;
    });
    reader
}
