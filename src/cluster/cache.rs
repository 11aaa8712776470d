//! Watch-fed caches: pages read these, never the API server.
//!
//! One watch per kind: cluster-wide when the managed namespaces follow a selector or are
//! more than [`NAMESPACED_WATCHES_UP_TO`], so the API server serves the same seven
//! watches for 3 or 1,000 namespaces; per namespace for a short explicit list, so that a
//! console granted Roles in two namespaces needs no cluster-wide read of other teams'
//! objects. Either way each namespace has its own stores, fed by `dispatch.rs`.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::dispatch::{Cached, Command, Dispatcher, Shard};
use super::external::OutsideChanges;
use super::{Kind, WatchBackoff};
use crate::gateway_api::HTTPRoute;
use crate::istio::{DestinationRule, Gateway, VirtualService};
use crate::managed::ManagedNamespaces;

/// How long readiness waits for the first list of HTTPRoutes.
const HTTP_ROUTES_LISTED_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Up to this many explicitly named namespaces (and no selector), each is watched on its
/// own: 6 watches a namespace, 14 at two, within the 15 a console may open; more go
/// cluster-wide (7 watches whatever the count), which needs the ClusterRole of
/// `deploy/base/rbac-selector.yaml`.
pub const NAMESPACED_WATCHES_UP_TO: usize = 2;

/// Where istiod's ingress gateway Service is.
const ISTIO_SYSTEM: &str = "istio-system";

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

    async fn wait_until_ready(&self) {
        let _ = self.deployments.wait_until_ready().await;
        let _ = self.services.wait_until_ready().await;
        let _ = self.virtual_services.wait_until_ready().await;
        let _ = self.destination_rules.wait_until_ready().await;
        let _ = self.gateways.wait_until_ready().await;
        // Clusters without the Gateway API CRDs never list HTTPRoutes: not waited for.
        let _ = tokio::time::timeout(HTTP_ROUTES_LISTED_WITHIN, self.http_routes.wait_until_ready()).await;
    }
}

/// All caches, plus when they last heard from the API server.
#[derive(Clone)]
pub struct Caches {
    managed_caches: Arc<RwLock<BTreeMap<String, NamespaceCache>>>,
    pub namespaces: Store<Namespace>,
    pub istio_system_services: Store<Service>,
    /// The managed namespaces, followed live from `namespaces`.
    pub managed: ManagedNamespaces,
    activity: Activity,
}

/// Whether every cache finished its first list, when the last watch event arrived, and
/// how many watches are open.
#[derive(Clone, Default)]
pub(super) struct Activity {
    synced: Arc<AtomicBool>,
    last_event_ms: Arc<AtomicI64>,
    watches: Arc<AtomicUsize>,
}

impl Activity {
    pub(super) fn touch(&self) {
        self.last_event_ms.store(jiff::Timestamp::now().as_millisecond(), Ordering::Relaxed);
    }
}

/// The senders to each kind's dispatchers (one, or one per namespace).
#[derive(Clone, Default)]
struct Feeds {
    deployments: Vec<mpsc::UnboundedSender<Command<Deployment>>>,
    services: Vec<mpsc::UnboundedSender<Command<Service>>>,
    virtual_services: Vec<mpsc::UnboundedSender<Command<VirtualService>>>,
    destination_rules: Vec<mpsc::UnboundedSender<Command<DestinationRule>>>,
    gateways: Vec<mpsc::UnboundedSender<Command<Gateway>>>,
    http_routes: Vec<mpsc::UnboundedSender<Command<HTTPRoute>>>,
}

/// A namespace's stores and their writers, before the writers go to their dispatchers.
struct NewShards {
    cache: NamespaceCache,
    deployments: Writer<Deployment>,
    services: Writer<Service>,
    virtual_services: Writer<VirtualService>,
    destination_rules: Writer<DestinationRule>,
    gateways: Writer<Gateway>,
    http_routes: Writer<HTTPRoute>,
}

/// Revisions of a namespace that joins again start far from any it had, so that nothing
/// derived from its earlier objects is taken for current.
static REVISION_EPOCH: AtomicU64 = AtomicU64::new(0);

impl NewShards {
    fn new() -> Self {
        let (deployments_reader, deployments) = reflector::store();
        let (services_reader, services) = reflector::store();
        let (virtual_services_reader, virtual_services) = reflector::store();
        let (destination_rules_reader, destination_rules) = reflector::store();
        let (gateways_reader, gateways) = reflector::store();
        let (http_routes_reader, http_routes) = reflector::store();
        let epoch = REVISION_EPOCH.fetch_add(1, Ordering::Relaxed) << 40;
        let cache = NamespaceCache {
            deployments: deployments_reader,
            services: services_reader,
            virtual_services: virtual_services_reader,
            destination_rules: destination_rules_reader,
            gateways: gateways_reader,
            http_routes: http_routes_reader,
            revision: Arc::new(AtomicU64::new(epoch)),
        };
        Self { cache, deployments, services, virtual_services, destination_rules, gateways, http_routes }
    }
}

impl Caches {
    /// Starts the watches (see the module's comment), each feeding its caches and, given
    /// `outside`, the detection of changes made outside signalbox. Returns at once; see
    /// [`Caches::is_synced`].
    pub fn start(client: &Client, managed: ManagedNamespaces, outside: Option<OutsideChanges>) -> Self {
        let activity = Activity::default();
        let (namespaces, namespaces_changed) = watch_namespaces(client, &activity);
        let (istio_system_services_reader, istio_system_services) = reflector::store();
        let caches = Self {
            managed_caches: Default::default(),
            namespaces,
            istio_system_services: istio_system_services_reader,
            managed,
            activity,
        };
        // A fixed list has its (empty, not yet listed) caches at once; a selector's wait
        // for the Namespaces.
        let fixed = (!caches.managed.follows_labels()).then(|| caches.add_initial());
        let follower = caches.clone();
        let client = client.clone();
        tokio::spawn(async move {
            follower.follow(client, outside, istio_system_services, fixed, namespaces_changed).await;
        });
        caches
    }

    /// Waits for the Namespaces, starts the watches for the managed ones, then follows
    /// the Namespaces: a namespace that joins gets its caches, one that leaves loses them.
    async fn follow(
        self,
        client: Client,
        outside: Option<OutsideChanges>,
        istio_system_services: Writer<Service>,
        fixed: Option<Vec<(String, NewShards)>>,
        mut namespaces_changed: mpsc::UnboundedReceiver<()>,
    ) {
        let initial = match fixed {
            Some(initial) => initial,
            None => {
                let _ = self.namespaces.wait_until_ready().await;
                self.observe_namespaces();
                self.add_initial()
            }
        };
        let cluster_wide = self.managed.follows_labels() || initial.len() > NAMESPACED_WATCHES_UP_TO;
        let start = Start { client: &client, outside: outside.as_ref(), activity: &self.activity };
        let feeds = start.dispatchers(cluster_wide, initial, istio_system_services).await;
        self.mark_synced_when_ready();
        while namespaces_changed.recv().await.is_some() {
            let moves = self.observe_namespaces();
            for namespace in moves.joined {
                tracing::info!(%namespace, "namespace joined: its labels match the selector");
                let shards = NewShards::new();
                self.insert(&namespace, shards.cache.clone());
                feeds.join(&namespace, shards);
            }
            for namespace in moves.left {
                tracing::info!(%namespace, "namespace left: {}", self.managed.why_not(&namespace));
                self.write().remove(&namespace);
                feeds.leave(&namespace);
            }
        }
    }

    /// Caches for the namespaces managed now, before their watches start.
    fn add_initial(&self) -> Vec<(String, NewShards)> {
        let names = self.managed.names();
        let initial: Vec<(String, NewShards)> = names.iter().map(|ns| (ns.clone(), NewShards::new())).collect();
        for (namespace, shards) in &initial {
            self.insert(namespace, shards.cache.clone());
        }
        initial
    }

    fn observe_namespaces(&self) -> crate::managed::Moves {
        let namespaces = self.namespaces.state();
        let empty = BTreeMap::new();
        // A namespace being deleted has left: nothing can be changed there any more.
        let labelled =
            namespaces.iter().filter(|ns| ns.metadata.deletion_timestamp.is_none()).filter_map(|namespace| {
                let name = namespace.metadata.name.as_deref()?;
                Some((name, namespace.metadata.labels.as_ref().unwrap_or(&empty)))
            });
        self.managed.observe(labelled)
    }

    fn insert(&self, namespace: &str, cache: NamespaceCache) {
        self.write().insert(namespace.to_owned(), cache);
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, NamespaceCache>> {
        self.managed_caches.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mark_synced_when_ready(&self) {
        let caches = self.clone();
        tokio::spawn(async move {
            let initial: Vec<NamespaceCache> = caches.read().values().cloned().collect();
            for cache in &initial {
                cache.wait_until_ready().await;
            }
            let _ = caches.istio_system_services.wait_until_ready().await;
            let _ = caches.namespaces.wait_until_ready().await;
            caches.activity.synced.store(true, Ordering::Release);
            tracing::info!(namespaces = initial.len(), watches = caches.watches(), "watch caches synced");
        });
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, NamespaceCache>> {
        self.managed_caches.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True once every cache has completed its initial list.
    pub fn is_synced(&self) -> bool {
        self.activity.synced.load(Ordering::Acquire)
    }

    /// How many watches this console holds open on the API server.
    pub fn watches(&self) -> usize {
        self.activity.watches.load(Ordering::Relaxed)
    }

    /// Seconds since the last watch event (None before the first).
    pub fn age_seconds(&self) -> Option<f64> {
        let last = self.activity.last_event_ms.load(Ordering::Relaxed);
        (last > 0).then(|| (jiff::Timestamp::now().as_millisecond() - last) as f64 / 1000.0)
    }

    /// The caches of a managed namespace (None: not managed, or not yet listed).
    pub fn namespace(&self, name: &str) -> Option<NamespaceCache> {
        self.read().get(name).cloned()
    }

    /// The managed namespace object, if it exists.
    pub fn namespace_object(&self, name: &str) -> Option<Arc<Namespace>> {
        self.namespaces.get(&reflector::ObjectRef::new(name))
    }
}

/// The Namespaces' store, and a signal after each change of it (once listed).
fn watch_namespaces(client: &Client, activity: &Activity) -> (Store<Namespace>, mpsc::UnboundedReceiver<()>) {
    let (reader, mut writer) = reflector::store();
    let (changed, namespaces_changed) = mpsc::unbounded_channel();
    let api: Api<Namespace> = Api::all(client.clone());
    let activity = activity.clone();
    activity.watches.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).backoff(WatchBackoff::default()).boxed();
        while let Some(event) = events.next().await {
            let Ok(event) = event else { continue };
            activity.touch();
            writer.apply_watcher_event(&event);
            if matches!(event, Event::InitDone | Event::Apply(_) | Event::Delete(_)) && changed.send(()).is_err() {
                break;
            }
        }
    });
    (reader, namespaces_changed)
}

/// What starting the dispatchers shares.
struct Start<'a> {
    client: &'a Client,
    outside: Option<&'a OutsideChanges>,
    activity: &'a Activity,
}

impl Start<'_> {
    /// Starts the watches: one per kind (cluster-wide), or one per kind and namespace.
    async fn dispatchers(
        &self,
        cluster_wide: bool,
        initial: Vec<(String, NewShards)>,
        istio_system_services: Writer<Service>,
    ) -> Feeds {
        let mut feeds = Feeds::default();
        if cluster_wide {
            let mut groups = Groups::default();
            for (namespace, shards) in initial {
                groups.add(namespace, shards);
            }
            groups.services.push((ISTIO_SYSTEM.into(), istio_system_services, None));
            self.start_group(None, groups, &mut feeds).await;
        } else {
            for (namespace, shards) in initial {
                let mut groups = Groups::default();
                groups.add(namespace.clone(), shards);
                self.start_group(Some(namespace), groups, &mut feeds).await;
            }
            let mut services = Groups::default();
            services.services.push((ISTIO_SYSTEM.into(), istio_system_services, None));
            self.spawn(Kind::Service, Some(ISTIO_SYSTEM.into()), services.services).await;
        }
        feeds
    }

    async fn start_group(&self, scope: Option<String>, groups: Groups, feeds: &mut Feeds) {
        feeds.deployments.push(self.spawn(Kind::Deployment, scope.clone(), groups.deployments).await);
        feeds.services.push(self.spawn(Kind::Service, scope.clone(), groups.services).await);
        feeds.virtual_services.push(self.spawn(Kind::VirtualService, scope.clone(), groups.virtual_services).await);
        feeds.destination_rules.push(self.spawn(Kind::DestinationRule, scope.clone(), groups.destination_rules).await);
        feeds.gateways.push(self.spawn(Kind::Gateway, scope.clone(), groups.gateways).await);
        feeds.http_routes.push(self.spawn(Kind::HTTPRoute, scope, groups.http_routes).await);
    }

    /// One dispatcher: its shards (with their detectors, whose baselines are read before
    /// the first listing is compared with them), then its watch.
    async fn spawn<K: Cached>(
        &self,
        kind: Kind,
        scope: Option<String>,
        shards: Vec<Planned<K>>,
    ) -> mpsc::UnboundedSender<Command<K>> {
        let mut dispatcher = Dispatcher::new(kind, self.client.clone(), scope, self.activity.clone());
        dispatcher.outside = self.outside.cloned();
        let reads: Vec<_> = shards
            .iter()
            .map(|(namespace, _, revision)| {
                let (outside, namespace) = (self.outside.filter(|_| revision.is_some()).cloned(), namespace.clone());
                async move {
                    match outside {
                        Some(outside) => outside.detector(kind, &namespace).await,
                        None => None,
                    }
                }
            })
            .collect();
        let detectors: Vec<_> = futures::stream::iter(reads).buffered(16).collect().await;
        for ((namespace, writer, revision), detector) in shards.into_iter().zip(detectors) {
            dispatcher.shards.insert(namespace, Shard { writer, revision, detector });
        }
        let (commands, received) = mpsc::unbounded_channel();
        self.activity.watches.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(dispatcher.run(received));
        commands
    }
}

/// A shard to be: its namespace, writer and revision (None: not a managed namespace).
type Planned<K> = (String, Writer<K>, Option<Arc<AtomicU64>>);

/// The shards of each kind for one set of dispatchers.
#[derive(Default)]
struct Groups {
    deployments: Vec<Planned<Deployment>>,
    services: Vec<Planned<Service>>,
    virtual_services: Vec<Planned<VirtualService>>,
    destination_rules: Vec<Planned<DestinationRule>>,
    gateways: Vec<Planned<Gateway>>,
    http_routes: Vec<Planned<HTTPRoute>>,
}

impl Groups {
    fn add(&mut self, namespace: String, shards: NewShards) {
        let revision = Some(shards.cache.revision.clone());
        self.deployments.push((namespace.clone(), shards.deployments, revision.clone()));
        self.services.push((namespace.clone(), shards.services, revision.clone()));
        self.virtual_services.push((namespace.clone(), shards.virtual_services, revision.clone()));
        self.destination_rules.push((namespace.clone(), shards.destination_rules, revision.clone()));
        self.gateways.push((namespace.clone(), shards.gateways, revision.clone()));
        self.http_routes.push((namespace, shards.http_routes, revision));
    }
}

impl Feeds {
    /// Hands a joining namespace's writers to the cluster-wide dispatchers (a namespaced
    /// console has a fixed list: nothing joins it).
    fn join(&self, namespace: &str, shards: NewShards) {
        let revision = shards.cache.revision.clone();
        let join = |namespace: &str| (namespace.to_owned(), revision.clone());
        send(&self.deployments, join(namespace), shards.deployments);
        send(&self.services, join(namespace), shards.services);
        send(&self.virtual_services, join(namespace), shards.virtual_services);
        send(&self.destination_rules, join(namespace), shards.destination_rules);
        send(&self.gateways, join(namespace), shards.gateways);
        send(&self.http_routes, join(namespace), shards.http_routes);
    }

    fn leave(&self, namespace: &str) {
        leave(&self.deployments, namespace);
        leave(&self.services, namespace);
        leave(&self.virtual_services, namespace);
        leave(&self.destination_rules, namespace);
        leave(&self.gateways, namespace);
        leave(&self.http_routes, namespace);
    }
}

fn send<K: Cached>(
    feeds: &[mpsc::UnboundedSender<Command<K>>],
    (namespace, revision): (String, Arc<AtomicU64>),
    writer: Writer<K>,
) {
    if let [feed] = feeds {
        let _ = feed.send(Command::Join { namespace, writer, revision });
    }
}

fn leave<K: Cached>(feeds: &[mpsc::UnboundedSender<Command<K>>], namespace: &str) {
    for feed in feeds {
        let _ = feed.send(Command::Leave(namespace.to_owned()));
    }
}
