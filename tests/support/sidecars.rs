//! Simulated sidecars for one test namespace: `xds-client sidecars --namespace <ns>` keeps an
//! ADS stream to the dev cluster's istiod per running Pod, ACKing what it gets — or, for a
//! Pod annotated `sidecar.signalbox.dev/xds: nack|ignore`, rejecting or never answering its
//! route configurations. Stopped when dropped.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::xds::istiod_xds_address;
use super::{TestNamespace, eventually, kubeconfig_path};

/// istiod's monitoring URL (`/debug/syncz`): devcluster puts it nine ports above the API server's.
pub fn istiod_monitoring_url() -> String {
    let xds_port: u16 = istiod_xds_address().rsplit(':').next().unwrap().parse().unwrap();
    format!("http://127.0.0.1:{}", xds_port + 3)
}

pub struct SimulatedSidecars {
    child: Child,
}

impl SimulatedSidecars {
    pub fn start(namespace: &str) -> Self {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/.bin/xds-client");
        let child = Command::new(binary)
            .args(["sidecars", "--xds", &istiod_xds_address(), "--namespace", namespace])
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .stdin(Stdio::null())
            .spawn()
            .expect("xds-client sidecars starts");
        Self { child }
    }
}

impl Drop for SimulatedSidecars {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates a Pod `name` labelled `app=<app>` whose simulated sidecar behaves as `xds` says
/// (`ack`, `nack` or `ignore`), and waits until it runs with an IP.
pub async fn pod_with_sidecar(ns: &TestNamespace, name: &str, app: &str, xds: &str) {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": app, "version": "v1"},
                     "annotations": {"sidecar.signalbox.dev/xds": xds}},
        "spec": {"containers": [{"name": app, "image": "quay.io/rhdevelopers/istio-tutorial-customer:v1.1"}]}
    }))
    .unwrap();
    let pods = Api::<Pod>::namespaced(ns.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod).await.expect("create pod");
    eventually(Duration::from_secs(30), &format!("pod {name} running with an IP"), || async {
        let pod = pods.get(name).await.ok()?;
        pod.status?.pod_ip.map(|_| ())
    })
    .await;
}

/// Waits until istiod lists `count` sidecars of `namespace` that have ACKed route configuration.
pub async fn connected(http: &reqwest::Client, namespace: &str, count: usize) {
    let url = format!("{}/debug/syncz?namespace={namespace}", istiod_monitoring_url());
    eventually(Duration::from_secs(30), &format!("{count} sidecars connected in {namespace}"), || async {
        let statuses: Vec<serde_json::Value> = http.get(&url).send().await.ok()?.json().await.ok()?;
        let with_routes = statuses
            .iter()
            .filter(|s| {
                s["resources"]["type.googleapis.com/envoy.config.route.v3.RouteConfiguration"]["sent"].is_string()
            })
            .count();
        (with_routes >= count).then_some(())
    })
    .await;
}
