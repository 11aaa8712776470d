//! What a Pod's sidecar receives from the dev cluster's istiod: `xds-client routes` (built by
//! deploy/devcluster/build.sh from deploy/devcluster/istiod/xds-client) opens a real ADS
//! stream as that Pod, follows LDS to RDS, ACKs, and prints the route configurations as
//! Envoy JSON.
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{TestNamespace, eventually, kubeconfig_path};

/// istiod's plaintext xDS address of the cluster the tests use: devcluster puts it six ports
/// above the API server's.
pub fn istiod_xds_address() -> String {
    let kubeconfig = std::fs::read_to_string(kubeconfig_path()).expect("the dev cluster's kubeconfig");
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).expect("a server line");
    let port: u16 = server.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the API server's port");
    format!("127.0.0.1:{}", port + 6)
}

fn xds_client() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/.bin/xds-client")
}

/// A running Pod the sidecar connects as.
#[derive(Clone, Debug)]
pub struct ProxyPod {
    pub namespace: String,
    pub name: String,
    pub ip: String,
    pub labels: String,
}

/// Waits until a Pod with label `app=<app>` runs with an IP (kwok gives it one).
pub async fn running_pod(ns: &TestNamespace, app: &str) -> ProxyPod {
    let pods = Api::<Pod>::namespaced(ns.client.clone(), &ns.name);
    eventually(Duration::from_secs(30), &format!("a running {app} pod with an IP"), || async {
        let list = pods.list(&ListParams::default().labels(&format!("app={app}"))).await.ok()?;
        let pod = list.items.into_iter().find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())?;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        Some(ProxyPod {
            namespace: ns.name.clone(),
            name: pod.metadata.name.clone()?,
            ip: pod.status?.pod_ip?,
            labels: labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        })
    })
    .await
}

/// The route configurations istiod sends `pod`'s sidecar now (one ADS stream, ACKed).
pub async fn routes_for(pod: &ProxyPod) -> Result<Vec<Value>, String> {
    let output = tokio::process::Command::new(xds_client())
        .args(["routes", "--xds", &istiod_xds_address(), "--namespace", &pod.namespace])
        .args(["--pod", &pod.name, "--ip", &pod.ip, "--labels", &pod.labels, "--timeout", "10s"])
        .output()
        .await
        .map_err(|e| format!("running xds-client: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let printed: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    Ok(printed["routeConfigurations"].as_array().cloned().unwrap_or_default())
}

/// The virtual host for `domain` in any of the route configurations, if one routes it.
pub fn virtual_host<'a>(routes: &'a [Value], domain: &str) -> Option<&'a Value> {
    routes
        .iter()
        .flat_map(|config| config["virtualHosts"].as_array().into_iter().flatten())
        .find(|host| host["domains"].as_array().is_some_and(|domains| domains.iter().any(|d| d == domain)))
}

/// Polls what `pod`'s sidecar receives until `check` accepts the virtual host for `domain`
/// (pushes are debounced, so a change arrives some 100 ms after it is applied).
pub async fn eventually_routed<T>(pod: &ProxyPod, domain: &str, what: &str, check: impl Fn(&Value) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last;
    loop {
        match routes_for(pod).await {
            Ok(routes) => match virtual_host(&routes, domain) {
                Some(host) => match check(host) {
                    Some(found) => return found,
                    None => last = serde_json::to_string_pretty(host).unwrap(),
                },
                None => last = format!("no virtual host for {domain}"),
            },
            Err(error) => last = error,
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("the sidecar never received {what}; last seen:\n{last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
