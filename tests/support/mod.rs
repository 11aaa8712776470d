//! Shared integration-test support: the dev cluster, a fresh namespace per test, and an
//! in-process signalbox serving on a loopback port with its own SQLite file.
#![allow(dead_code)]

pub mod browser;
pub mod console;
pub mod envoy;
pub mod fixtures;
pub mod forwarder;
pub mod private_cluster;
pub mod prometheus;
pub mod sidecars;
pub mod xds;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use signalbox::cluster::Kind;

/// The admin kubeconfig of the dev cluster `make test` starts (or `SIGNALBOX_TEST_KUBECONFIG`).
pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os("SIGNALBOX_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/.state/admin.kubeconfig"))
}

/// The dev cluster's kubectl: beside the kubeconfig in use (`.state/` and `.bin/` of the
/// same devcluster, so a worktree uses the running cluster's), else the checkout's.
pub fn kubectl_path() -> PathBuf {
    let beside = kubeconfig_path().parent().and_then(Path::parent).map(|devcluster| devcluster.join(".bin/kubectl"));
    beside
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/.bin/kubectl"))
}

/// A client for the dev cluster; fails the test with what to do when it is not running.
pub async fn client() -> Client {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|error| {
        panic!(
            "no dev cluster kubeconfig at {} ({error}); run `make test` or `deploy/devcluster/devcluster up`",
            path.display()
        )
    });
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// What the cluster holds for a workload, for a failure message: the Deployment's status,
/// its pods' phases and conditions, and the namespace's events.
pub async fn workload_report(ns: &TestNamespace, workload: &str) -> String {
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(workload).await;
    let status = deployment.map(|d| d.and_then(|d| d.status).map(|s| serde_json::to_string(&s).unwrap()));
    let pods = Api::<Pod>::namespaced(ns.client.clone(), &ns.name).list(&ListParams::default()).await;
    let pods = pods.map(|list| {
        list.items
            .iter()
            .map(|pod| {
                let status = pod.status.clone().unwrap_or_default();
                let conditions: Vec<_> = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| format!("{}={}", c.type_, c.status))
                    .collect();
                format!("{} {:?} {}", pod.metadata.name.clone().unwrap_or_default(), status.phase, conditions.join(","))
            })
            .collect::<Vec<_>>()
    });
    let events = Api::<Event>::namespaced(ns.client.clone(), &ns.name).list(&ListParams::default()).await;
    let events = events.map(|list| {
        list.items
            .iter()
            .map(|e| {
                format!(
                    "{} {} {}: {}",
                    e.type_.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default(),
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    });
    format!("Deployment {workload} status: {status:?}\npods: {pods:#?}\nevents: {events:#?}")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A namespace of its own for one test, deleted when dropped, so tests run in parallel.
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` labelled for sidecar injection.
    pub async fn new(prefix: &str) -> Self {
        let client = client().await;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let name = format!("{prefix}-{suffix}");
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"signalbox-test": "true", "istio-injection": "enabled"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        Self { name, client }
    }

    /// The namespace's objects of `kind`, in the version signalbox reads and writes.
    pub fn objects(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.name, &kind.api_resource())
    }

    /// A name for a namespace that does not exist yet (deleted at the end if created).
    pub async fn unborn(prefix: &str) -> Self {
        let client = client().await;
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Self { name: format!("{prefix}-{suffix}"), client }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's client is bound to the test's runtime (which this
        // thread blocks), so a short-lived thread deletes with a runtime and client of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let client = client().await;
                let _ = Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await;
            });
        })
        .join();
    }
}

/// Polls `check` every 100 ms until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the signalbox at `base` (`http://127.0.0.1:PORT`) answers `/readyz` with 200.
pub async fn wait_until_ready(http: &reqwest::Client, base: &str) {
    eventually(Duration::from_secs(30), "signalbox /readyz", || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        (response.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
}

/// A routing change's audit entry (recommendation: v1 90% → 75%) with `summary` and
/// `outcome`, for tests of the audit log itself.
pub fn route_update_entry(summary: &str, outcome: signalbox::audit::Outcome) -> signalbox::audit::NewEntry {
    signalbox::audit::NewEntry {
        actor: "alice".into(),
        groups: vec![],
        source: signalbox::audit::Source::Api,
        action: "route.update".into(),
        namespace: "tutorial".into(),
        kind: "VirtualService".into(),
        name: "recommendation".into(),
        summary: summary.into(),
        before: Some(serde_json::json!({"spec": {"http": [{"route": [{"weight": 90}]}]}})),
        after: Some(serde_json::json!({"spec": {"http": [{"route": [{"weight": 75}]}]}})),
        operations: serde_json::json!([]),
        outcome,
        error: None,
        request_id: None,
        reverts: None,
    }
}
