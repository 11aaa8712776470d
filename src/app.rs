//! Wiring: open the audit store, connect to the cluster, start the caches, serve.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::audit::{AnchorKey, ArchiveWitness, AuditStore};
use crate::audit_anchor::AuditAnchor;
use crate::authz::Authorizer;
use crate::autopilot::{self, Autopilot};
use crate::change::events::ChangeEvents;
use crate::change::reads::Reads;
use crate::change::rollout::Rollouts;
use crate::change::{ChangePath, outside, resolve_pending};
use crate::cluster::external::{ExternalChange, OutsideChanges};
use crate::cluster::{self, Cluster};
use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::propagation::{Istiod, Propagation};
use crate::routing::Routing;
use crate::traffic::ObservedEdges;
use crate::web::{self, AllowedHosts, AppState, CsrfTokens, IdentityPolicy, Links, Listen, Listener, Shared};

/// How long shutdown waits for in-flight requests and changes: below Kubernetes' default
/// 30 s termination grace period, above what one change normally takes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the Kiali, Jaeger and ingress addresses are probed for an answer.
const LINK_PROBE_EVERY: Duration = Duration::from_secs(30);

/// A running console.
pub struct Server {
    /// Where it listens, in `--listen` order, with the ports the system chose.
    pub listening: Vec<Listen>,
    pub state: AppState,
    /// Canary auto-advance, when Prometheus is configured.
    autopilot: Option<Autopilot>,
    /// The audit anchor's writer, when an anchor is configured.
    anchor_writer: Option<JoinHandle<()>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// The first TCP address it listens on (tests and benchmarks always have one).
    ///
    /// # Panics
    /// When it listens on Unix sockets only.
    pub fn addr(&self) -> SocketAddr {
        self.listening
            .iter()
            .find_map(|listen| match listen {
                Listen::Tcp(addr) => Some(*addr),
                Listen::Unix(_) => None,
            })
            .expect("the console listens on a TCP address")
    }

    /// Stops accepting, lets in-flight requests and changes finish within [`SHUTDOWN_GRACE`],
    /// closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let _ = self.stop.send(());
        if let Some(autopilot) = self.autopilot {
            // Before the drain: no automatic change starts after this, and another replica
            // may take the Leases over at once.
            let _ = tokio::time::timeout_at(deadline, autopilot.stop()).await;
        }
        let mut task = self.task;
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(served) => served??,
            Err(_) => {
                // Slow requests are cut off; a change among them runs on in its own task.
                tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; closing their connections");
                task.abort();
            }
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.state.changes.drain(remaining).await {
            tracing::warn!("a change is still running; its audit entry stays pending until the next start");
        }
        if let (Some(writer), Some(anchor)) = (self.anchor_writer, &self.state.anchor) {
            writer.abort();
            // The records since the last anchor are anchored too.
            let last = tokio::time::timeout_at(deadline, anchor.advance(&self.state.audit, None)).await;
            if let Ok(Err(error)) = last {
                tracing::error!(%error, anchor = %anchor.location(), "the audit chain's last records are not anchored");
            }
        }
        self.state.audit.close().await;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await
    }
}

/// Where the stylesheet and vendored scripts are served from.
pub fn default_static_dir() -> PathBuf {
    let beside_cwd = PathBuf::from("static");
    if beside_cwd.is_dir() { beside_cwd } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static") }
}

/// Starts the console and returns once it is listening.
pub async fn start(config: ServeConfig) -> anyhow::Result<Server> {
    let audit = AuditStore::open(&config.database)
        .await
        .with_context(|| format!("opening the audit database {}", config.database.display()))?;
    // The caches' watches feed the outside-change detection from their first listing; what
    // it finds waits in `outside_seen` until the change path exists to tell our own writes.
    let (outside, outside_seen) = outside_changes(&audit);
    let managed = config.managed_namespaces();
    let cluster = Cluster::connect(config.kubeconfig.as_deref(), managed.clone(), Some(outside))
        .await
        .context("loading the Kubernetes client configuration")?;
    let metrics = Arc::new(Metrics::default());
    let authorizer = match &config.teams {
        Some(path) => Authorizer::with_team_file(managed.clone(), path)
            .with_context(|| format!("reading the team file {}", path.display()))?,
        None => Authorizer::open(managed.clone()),
    };
    let propagation = Propagation::new(istiod(&config, &cluster).await?);
    let changes = ChangePath::new(cluster.objects.clone(), audit.clone(), authorizer, metrics.clone())
        .with_propagation(propagation)
        .with_gitops(config.gitops)
        .with_events(ChangeEvents::new(cluster.client.clone()));
    spawn_pending_resolution(audit.clone(), cluster.clone());
    let anchor = audit_anchor(&config, &cluster)?;
    let anchor_writer = anchor.as_ref().map(|anchor| {
        let every = Duration::from_secs(config.audit_anchor_every_seconds);
        anchor.spawn_writer(audit.clone(), config.audit_anchor_every_records, every)
    });
    spawn_audit_upkeep(audit.clone(), anchor.clone(), retention(&config));
    outside::spawn_recorder(outside_seen, cluster.external.clone(), audit.clone(), changes.clone());

    let reads = Reads::new(cluster.clone());
    let prometheus = match config.prometheus_url.as_deref() {
        Some(url) => Some(Arc::new(crate::traffic::Prometheus::new(url).context("--prometheus-url")?)),
        None => None,
    };
    let state = AppState::new(Shared {
        rollouts: Rollouts::new(reads.clone(), changes.clone()),
        routing: Routing::new(reads.clone(), changes.clone()),
        reads,
        cluster,
        changes,
        audit,
        anchor,
        metrics,
        identity: Arc::new(IdentityPolicy::new(config.trusted_proxies.clone(), &config.listen)),
        allowed_hosts: Arc::new(AllowedHosts::from_env(&config.listen, &config.allowed_hosts)),
        csrf: Arc::new(CsrfTokens::default()),
        links: Arc::new(Links::new(config.kiali_url.clone(), config.jaeger_url.clone())),
        observed_edges: prometheus.clone().map(ObservedEdges::new),
        graphs: Default::default(),
        service_facts: Default::default(),
        routes_views: Default::default(),
        audit_rows: Default::default(),
        rendered_services: Default::default(),
        prometheus,
    });
    Links::spawn_probes(&state.links, LINK_PROBE_EVERY);
    let autopilot = state.prometheus.clone().map(|prometheus| {
        let interval = Duration::from_secs(config.analysis_interval_seconds);
        let holder = autopilot::holder_identity();
        Autopilot::start(&state.cluster, state.rollouts.clone(), prometheus, interval, &holder)
    });
    let static_dir = config.static_dir.clone().unwrap_or_else(default_static_dir);
    let static_files = web::StaticFiles::load(&static_dir)
        .with_context(|| format!("reading the static files in {}", static_dir.display()))?;
    let router = web::router(state.clone(), static_files);
    for caution in IdentityPolicy::cautions(&config.trusted_proxies, &config.listen) {
        tracing::warn!("{caution}");
    }
    let listeners = bind(&config.listen).await?;
    let listening = listeners.iter().map(Listener::local).collect::<std::io::Result<Vec<_>>>()?;
    let shown: Vec<String> = listening.iter().map(ToString::to_string).collect();
    tracing::info!(
        listen = ?shown,
        trusted_proxies = ?config.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        cluster = %state.cluster.description,
        namespaces = ?managed.explicit(),
        namespace_selector = managed.selector_text(),
        database = %config.database.display(),
        "signalbox serving on {}",
        shown.join(", ")
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        web::serve(listeners, router, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Server { listening, state, autopilot, anchor_writer, stop, task })
}

/// Binds every `--listen` value, before anything is served: one that cannot be bound stops
/// the start (a Unix socket's listener removes its file again when dropped).
async fn bind(listen: &[Listen]) -> anyhow::Result<Vec<Listener>> {
    let mut listeners = Vec::with_capacity(listen.len());
    for value in listen {
        listeners.push(Listener::bind(value).await.with_context(|| format!("listening on {value}"))?);
    }
    Ok(listeners)
}

/// The audit anchor (`audit_anchor`): in the configured namespace, else the pod's own;
/// none outside a pod without `--audit-anchor-namespace`.
fn audit_anchor(config: &ServeConfig, cluster: &Cluster) -> anyhow::Result<Option<AuditAnchor>> {
    let args = &config.audit_anchor;
    let Some(namespace) = args.namespace() else {
        tracing::warn!(
            "the audit chain is not anchored outside the database: no --audit-anchor-namespace and not in a pod"
        );
        return Ok(None);
    };
    let key = match &args.audit_anchor_key_file {
        Some(path) => Some(
            AnchorKey::from_file(path).with_context(|| format!("reading the audit anchor key {}", path.display()))?,
        ),
        None => None,
    };
    let anchor = AuditAnchor::new(cluster.client.clone(), &namespace, &args.audit_anchor_name, key);
    tracing::info!(anchor = %anchor.location(), signed = anchor.key().is_some(), "anchoring the audit chain");
    Ok(Some(anchor))
}

/// istiod's monitoring endpoint: `--istiod-url`, else (inside a cluster) the `istiod`
/// Service of `istio-system` on its monitoring port, else none.
async fn istiod(config: &ServeConfig, cluster: &Cluster) -> anyhow::Result<Option<Istiod>> {
    if let Some(url) = &config.istiod_url {
        return Istiod::new(url).map(Some).map_err(|e| anyhow::anyhow!("--istiod-url: {e}"));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
        return Ok(None);
    }
    let services = kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(cluster.client.clone(), "istio-system");
    match services.get_opt("istiod").await {
        Ok(Some(_)) => Ok(Istiod::new("http://istiod.istio-system.svc:15014").ok()),
        Ok(None) => Ok(None),
        Err(error) => {
            tracing::warn!(%error, "could not look for istiod in istio-system; propagation will not be shown");
            Ok(None)
        }
    }
}

/// Outside changes as the watches see them, each with when it was seen.
type SeenOutsideChanges = UnboundedReceiver<(Instant, ExternalChange)>;

/// The detection of changes made outside signalbox (kubectl, GitOps), for the caches'
/// watches to feed: it compares the first listings with what the audit log last recorded,
/// and queues each change it finds for [`outside::spawn_recorder`].
fn outside_changes(audit: &AuditStore) -> (OutsideChanges, SeenOutsideChanges) {
    let audit = audit.clone();
    let baseline = move |kind: cluster::Kind, namespace: String| {
        let audit = audit.clone();
        async move { last_recorded_states(&audit, kind, &namespace).await }
    };
    let (queue, seen) = tokio::sync::mpsc::unbounded_channel();
    let record = move |change: ExternalChange| {
        let _ = queue.send((Instant::now(), change));
    };
    (OutsideChanges::new(record, baseline), seen)
}

/// What the audit log last recorded for each object of `kind` in `namespace` it ever
/// recorded (None: deleted), without server-maintained fields, as the watcher keeps them.
async fn last_recorded_states(
    audit: &AuditStore,
    kind: cluster::Kind,
    namespace: &str,
) -> std::collections::HashMap<String, Option<serde_json::Value>> {
    match audit.last_states(namespace, kind.as_str()).await {
        Ok(states) => {
            states.into_iter().map(|(name, state)| (name, state.map(cluster::without_server_fields))).collect()
        }
        Err(error) => {
            tracing::error!(%error, %kind, namespace, "cannot read the last recorded states; changes made while signalbox was down are not compared");
            Default::default()
        }
    }
}

/// How long a full chain verification result stands before the next one (the history page
/// verifies only what was appended since).
const FULL_VERIFY_EVERY: Duration = Duration::from_secs(10 * 60);
/// How often old entries are archived when retention is on.
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Retention: the age after which records are archived, and where archives go.
fn retention(config: &ServeConfig) -> Option<(Duration, PathBuf)> {
    let days = config.audit_retention_days?;
    let dir = config.audit_archive_dir.clone().unwrap_or_else(|| {
        config.database.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| ".".into(), PathBuf::from)
    });
    Some((Duration::from_secs(u64::from(days) * 24 * 60 * 60), dir))
}

/// Verifies the whole chain now and then, against the anchor when there is one (tampering
/// with old records shows up on the history page within `FULL_VERIFY_EVERY`), and archives
/// old records when configured, anchoring each new archive boundary first.
fn spawn_audit_upkeep(audit: AuditStore, anchor: Option<AuditAnchor>, retention: Option<(Duration, PathBuf)>) {
    let verifier = audit.clone();
    let checker = anchor.clone();
    tokio::spawn(async move {
        loop {
            let verified = match &checker {
                Some(anchor) => anchor.verify(&verifier).await,
                None => verifier.verify().await,
            };
            match verified {
                Ok(report) if report.is_intact() => {}
                Ok(report) => tracing::error!(
                    entry = ?report.first_mismatch,
                    problems = ?report.problems,
                    "the audit hash chain does not verify"
                ),
                Err(error) => tracing::warn!(%error, "could not verify the audit hash chain"),
            }
            tokio::time::sleep(FULL_VERIFY_EVERY).await;
        }
    });
    let Some((max_age, dir)) = retention else { return };
    tokio::spawn(async move {
        loop {
            let cutoff = jiff::Timestamp::now().as_millisecond() - max_age.as_millis() as i64;
            let witness = anchor.as_ref().map(|anchor| anchor as &dyn ArchiveWitness);
            if let Err(error) = audit.archive_older_than(cutoff, &dir, witness).await {
                tracing::error!(%error, "audit retention: nothing archived or deleted");
            }
            tokio::time::sleep(RETENTION_EVERY).await;
        }
    });
}

/// Resolves entries a crash left pending, retrying while the API server is unreachable.
fn spawn_pending_resolution(audit: AuditStore, cluster: Cluster) {
    tokio::spawn(async move {
        loop {
            match resolve_pending(&audit, &cluster.objects).await {
                Ok(0) => return,
                Ok(count) => {
                    tracing::info!(count, "resolved pending audit entries");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot resolve pending audit entries yet; retrying");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
