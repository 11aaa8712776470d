//! The kustomize base against the real API server: every manifest passes a server-side dry
//! run, the Deployment's pod is scheduled on a simulated node, the ServiceAccount's RBAC
//! allows exactly what signalbox does, and signalbox run with that ServiceAccount's token
//! (not admin) walks the tutorial.
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::console::Console;
use support::{client, eventually, kubeconfig_path};

const SERVICE_ACCOUNT: &str = "system:serviceaccount:signalbox:signalbox";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl(args: &[&str]) -> (bool, String) {
    let output = Command::new(root().join("deploy/devcluster/.bin/kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .output()
        .expect("kubectl from the dev cluster build");
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

fn must(args: &[&str]) -> String {
    let (ok, text) = kubectl(args);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

async fn allowed(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": SERVICE_ACCOUNT, "groups": ["system:serviceaccounts", "system:serviceaccounts:signalbox"],
                 "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace}}
    }))
    .unwrap();
    let answer = Api::<SubjectAccessReview>::all(client().await).create(&PostParams::default(), &review).await.unwrap();
    answer.status.map(|s| s.allowed).unwrap_or(false)
}

/// A kubeconfig that authenticates as the ServiceAccount with a short-lived token.
fn service_account_kubeconfig(dir: &std::path::Path) -> PathBuf {
    let token = must(&["create", "token", "signalbox", "-n", "signalbox", "--duration=10m"]);
    let server = must(&["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let ca = must(&["config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.certificate-authority}"]);
    let path = dir.join("signalbox-sa.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: dev, cluster: {{server: '{server}', certificate-authority: '{ca}'}}}}]\n\
             users: [{{name: signalbox, user: {{token: '{}'}}}}]\ncontexts: [{{name: sa, context: {{cluster: dev, user: signalbox}}}}]\ncurrent-context: sa\n",
            token.trim()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn the_base_deploys_with_least_privilege_and_runs_the_tutorial_with_its_own_token() {
    let base = root().join("deploy/base");
    let base = base.to_str().unwrap();
    must(&["apply", "--server-side", "-f", &format!("{base}/namespace.yaml")]);
    must(&["apply", "--dry-run=server", "-k", base]);
    let overlay = root().join("deploy/overlays/oauth2-proxy");
    if overlay.exists() {
        must(&["apply", "--dry-run=server", "-k", overlay.to_str().unwrap()]);
    }

    // No storage provisioner here: a static volume for the audit log's claim.
    let volume = r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"signalbox-test-data"},
        "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/signalbox-test-data"}}}"#;
    let volume_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(volume_file.path(), volume).unwrap();
    must(&["apply", "-f", volume_file.path().to_str().unwrap()]);
    must(&["apply", "-k", base]);

    let pods: Api<Pod> = Api::namespaced(client().await, "signalbox");
    let node = eventually(Duration::from_secs(60), "the signalbox pod running on a simulated node", || async {
        let list = pods.list(&ListParams::default().labels("app=signalbox")).await.ok()?;
        let pod = list.items.into_iter().next()?;
        let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
        running.then(|| pod.spec?.node_name).flatten()
    })
    .await;
    assert!(node.starts_with("kwok-node-"), "{node}");

    for (verb, group, resource) in [
        ("patch", "apps", "deployments"),
        ("delete", "apps", "deployments"),
        ("watch", "apps", "deployments"),
        ("patch", "", "services"),
        ("patch", "", "serviceaccounts"),
        ("list", "", "pods"),
        ("patch", "networking.istio.io", "virtualservices"),
        ("create", "networking.istio.io", "destinationrules"),
        ("delete", "networking.istio.io", "gateways"),
        ("create", "coordination.k8s.io", "leases"),
    ] {
        assert!(allowed(verb, group, resource, Some("tutorial")).await, "{verb} {resource} in a managed namespace");
    }
    assert!(allowed("watch", "", "namespaces", None).await);
    assert!(allowed("list", "", "services", Some("istio-system")).await);
    assert!(!allowed("get", "", "secrets", Some("tutorial")).await, "no Secrets");
    assert!(!allowed("list", "", "secrets", Some("signalbox")).await, "no Secrets");
    assert!(!allowed("patch", "apps", "deployments", Some("kube-system")).await, "no other namespaces");
    assert!(!allowed("delete", "", "namespaces", None).await);

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(dir.path());
    let console = Console::start_with("tutorial", |config| config.kubeconfig = Some(kubeconfig)).await;
    for workload in ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{workload} as the ServiceAccount: {body}");
    }
    let (status, body) = console
        .send_json(Method::PUT, &console.api("/workloads/recommendation-v2"), Some(json!({"replicas": 2})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let split = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                       "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = console.send_json(Method::DELETE, &console.api("/tutorial"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(console.audit().await.iter().all(|e| e["outcome"] == "applied"));
    console.stop().await;

    must(&["delete", "-k", base, "--wait=false"]);
    must(&["delete", "-f", volume_file.path().to_str().unwrap(), "--wait=false"]);
}
