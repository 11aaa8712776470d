//! The kustomize base and the oauth2-proxy overlay against the real API server: every
//! manifest passes a server-side dry run, the Deployment's pod is scheduled on a simulated
//! node, the ServiceAccount's RBAC allows exactly what signalbox does, and signalbox run
//! with that ServiceAccount's token (not admin) walks the tutorial, routing included.
//!
//! The dev cluster is shared, so the manifests are rendered through a temporary overlay that
//! renames the managed namespace `tutorial` to a fresh one: the test never touches a
//! `tutorial` namespace someone is using with `make run`.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::console::Console;
use support::{client, eventually, kubeconfig_path};

const SERVICE_ACCOUNT: &str = "system:serviceaccount:signalbox:signalbox";
const WORKLOADS: [&str; 5] = ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(support::kubectl_path())
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl from the dev cluster build");
    let input = stdin.unwrap_or_default().to_owned();
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || std::io::Write::write_all(&mut pipe, input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn must(args: &[&str]) -> String {
    must_with(args, None)
}

fn must_with(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, text) = kubectl(args, stdin);
    assert!(ok, "kubectl {args:?}: {text}");
    text
}

/// `deploy/<layer>` with the managed namespace renamed, rendered by kustomize, plus the
/// temporary directory holding that overlay.
struct Rendered {
    yaml: String,
    _overlay: tempfile::TempDir,
}

fn render(layer: &str, managed: &str) -> Rendered {
    let overlay = tempfile::tempdir().unwrap();
    // kustomize refuses absolute resource paths: climb from the temporary directory to `/`.
    let up = "../".repeat(overlay.path().components().count() - 1);
    let target = root().join("deploy").join(layer);
    let resource = format!("{up}{}", target.to_str().unwrap().trim_start_matches('/'));
    let kustomization = format!(
        r#"resources: ["{resource}"]
patches:
  - target: {{kind: Namespace, name: tutorial}}
    patch: '[{{"op": "replace", "path": "/metadata/name", "value": "{managed}"}}]'
  - target: {{kind: RoleBinding, name: signalbox, namespace: tutorial}}
    patch: '[{{"op": "replace", "path": "/metadata/namespace", "value": "{managed}"}}]'
  - target: {{kind: Deployment, name: signalbox}}
    patch: '[{{"op": "replace", "path": "/spec/template/spec/containers/0/env/0",
              "value": {{"name": "SIGNALBOX_NAMESPACE", "value": "{managed}"}}}}]'
"#
    );
    std::fs::write(overlay.path().join("kustomization.yaml"), kustomization).unwrap();
    let yaml = must(&["kustomize", overlay.path().to_str().unwrap()]);
    assert!(!yaml.contains("tutorial"), "the managed namespace is renamed everywhere:\n{yaml}");
    Rendered { yaml, _overlay: overlay }
}

/// Deletes what the test applied, also when an assertion fails half-way.
struct Applied {
    yaml: String,
    volume: String,
}

impl Drop for Applied {
    fn drop(&mut self) {
        kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", "-"], Some(&self.yaml));
        kubectl(&["delete", "--ignore-not-found", "--wait=false", "-f", "-"], Some(&self.volume));
    }
}

async fn allowed(verb: &str, group: &str, resource: &str, namespace: Option<&str>) -> bool {
    allowed_named(verb, group, resource, namespace, None).await
}

/// Whether the ServiceAccount may `verb` the object `name` (any object when None).
async fn allowed_named(verb: &str, group: &str, resource: &str, namespace: Option<&str>, name: Option<&str>) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": SERVICE_ACCOUNT, "groups": ["system:serviceaccounts", "system:serviceaccounts:signalbox"],
                 "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace,
                                        "name": name}}
    }))
    .unwrap();
    let answer = Api::<SubjectAccessReview>::all(client().await).create(&PostParams::default(), &review).await.unwrap();
    answer.status.map(|s| s.allowed).unwrap_or(false)
}

/// A kubeconfig that authenticates as the ServiceAccount with a short-lived token from the
/// TokenRequest API.
fn service_account_kubeconfig(dir: &Path) -> PathBuf {
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
    let managed = format!("deploy-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let base = render("base", &managed);
    let overlay = render("overlays/oauth2-proxy", &managed);
    for rendered in [&base, &overlay] {
        assert!(!rendered.yaml.contains("'*'") && !rendered.yaml.contains("\"*\""), "no wildcard anywhere");
        assert!(!rendered.yaml.contains("secrets"), "no rule mentions Secrets");
    }

    // Namespaced objects can only be dry-run in namespaces that exist.
    let volume = r#"{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"signalbox-test-data"},
        "spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/tmp/signalbox-test-data"}}}"#;
    let _cleanup = Applied { yaml: base.yaml.clone(), volume: volume.to_owned() };
    let namespaces = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"signalbox\"}}}},\
         {{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{managed}\"}}}}]}}"
    );
    must_with(&["apply", "-f", "-"], Some(&namespaces));
    for rendered in [&base, &overlay] {
        let report = must_with(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered.yaml));
        assert!(report.contains("deployment.apps/signalbox") && report.contains("(server dry run)"), "{report}");
    }
    let overlay_report = must_with(&["apply", "--dry-run=server", "-f", "-"], Some(&overlay.yaml));
    for object in ["gateway.networking.istio.io/signalbox", "virtualservice.networking.istio.io/signalbox"] {
        assert!(overlay_report.contains(object), "{object} in the overlay: {overlay_report}");
    }

    // No storage provisioner here: a static volume for the audit log's claim.
    must_with(&["apply", "-f", "-"], Some(volume));
    must_with(&["apply", "-f", "-"], Some(&base.yaml));

    let pods: Api<Pod> = Api::namespaced(client().await, "signalbox");
    let node = eventually(Duration::from_secs(60), "the signalbox pod running on a simulated node", || async {
        let list = pods.list(&ListParams::default().labels("app=signalbox")).await.ok()?;
        let pod = list.items.into_iter().next()?;
        let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
        running.then(|| pod.spec?.node_name).flatten()
    })
    .await;
    assert!(node.starts_with("kwok-node-"), "{node}");

    // Every action signalbox performs in a managed namespace: caches (get/list/watch),
    // dry runs and server-side apply (patch; create too when the object is new — the API
    // server checks both), removals (delete).
    let managed_resources = [("apps", "deployments"), ("", "services"), ("", "serviceaccounts")]
        .into_iter()
        .chain(["virtualservices", "destinationrules", "gateways"].map(|resource| ("networking.istio.io", resource)))
        .chain([("gateway.networking.k8s.io", "httproutes")]);
    for (group, resource) in managed_resources {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            assert!(allowed(verb, group, resource, Some(&managed)).await, "{verb} {resource} in a managed namespace");
        }
    }
    assert!(!allowed("list", "", "pods", Some(&managed)).await, "nothing reads pods: no grant");
    // Canary auto-advance's leader election (src/cluster/lease.rs): read, create, replace.
    for verb in ["get", "create", "update"] {
        assert!(allowed(verb, "coordination.k8s.io", "leases", Some(&managed)).await, "{verb} leases");
    }
    assert!(allowed("create", "", "events", Some(&managed)).await);
    for verb in ["get", "list", "watch", "create", "patch"] {
        assert!(allowed(verb, "", "namespaces", None).await, "{verb} namespaces");
    }
    // The HTTPRoute CRD's channel (src/cluster/mod.rs), and no other CRD.
    let (crds, httproutes) = ("customresourcedefinitions", Some("httproutes.gateway.networking.k8s.io"));
    assert!(allowed_named("get", "apiextensions.k8s.io", crds, None, httproutes).await);
    assert!(
        !allowed_named("get", "apiextensions.k8s.io", crds, None, Some("virtualservices.networking.istio.io")).await
    );
    for verb in ["get", "list", "watch"] {
        assert!(allowed(verb, "", "services", Some("istio-system")).await, "{verb} istio-system services");
    }

    for namespace in [managed.as_str(), "signalbox", "istio-system", "kube-system"] {
        for verb in ["get", "list", "watch"] {
            assert!(!allowed(verb, "", "secrets", Some(namespace)).await, "{verb} Secrets in {namespace}");
        }
    }
    for namespace in ["kube-system", "default", "istio-system"] {
        for verb in ["get", "patch", "create", "delete"] {
            assert!(!allowed(verb, "apps", "deployments", Some(namespace)).await, "{verb} Deployments in {namespace}");
        }
    }
    assert!(!allowed("patch", "", "services", Some("istio-system")).await, "istio-system is read-only");
    assert!(!allowed("delete", "", "namespaces", None).await);
    assert!(!allowed("create", "rbac.authorization.k8s.io", "rolebindings", Some(&managed)).await);
    // The audit anchor: read and patch its one ConfigMap, nothing else of ConfigMaps.
    let anchor = Some(signalbox::audit_anchor::DEFAULT_NAME);
    for verb in ["get", "patch"] {
        assert!(allowed_named(verb, "", "configmaps", Some("signalbox"), anchor).await, "{verb} the anchor");
        assert!(!allowed_named(verb, "", "configmaps", Some("signalbox"), Some("other")).await, "{verb} another");
        assert!(!allowed_named(verb, "", "configmaps", Some(&managed), anchor).await, "{verb} elsewhere");
    }
    for verb in ["list", "create", "delete"] {
        assert!(!allowed(verb, "", "configmaps", Some("signalbox")).await, "{verb} ConfigMaps");
    }

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(dir.path());
    // With a Prometheus URL (nothing listens there) the auto-advance task runs too, and must
    // win its Lease with the ServiceAccount's rights once a canary needs it.
    let prometheus = format!("http://127.0.0.1:{}", support::free_port());
    let console = Console::start_with(&managed, |config| {
        config.kubeconfig = Some(kubeconfig);
        config.prometheus_url = Some(prometheus);
        config.analysis_interval_seconds = 1;
        config.audit_anchor.audit_anchor_namespace = Some("signalbox".into());
        config.audit_anchor_every_seconds = 1;
    })
    .await;
    for workload in WORKLOADS {
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
    // An auto-advancing canary: the auto-advance task takes the namespace's Lease for it.
    let canary = json!({"stable": "version-v1", "canary": "version-v2", "steps": [50, 100],
                        "analysis": {"minSuccessPercent": 99, "maxP99Ms": 500, "minRequests": 5}});
    let (status, body) = console.send_json(Method::POST, &console.api("/canaries/recommendation"), Some(canary)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let leases: Api<Lease> = Api::namespaced(client().await, &managed);
    eventually(Duration::from_secs(10), "the auto-advance Lease held by the ServiceAccount's signalbox", || async {
        let lease = leases.get_opt(signalbox::autopilot::LEASE_NAME).await.ok()??;
        lease.spec?.holder_identity.filter(|holder| !holder.is_empty())
    })
    .await;
    let (status, body) = console.send_json(Method::DELETE, &console.api("/tutorial"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Controllers touching the objects are audited as `external`, the auto-advance task's
    // verdicts as `system`; the user's changes are one entry each.
    let audit: Vec<_> = console.audit().await.into_iter().filter(|e| e["source"] == "api").collect();
    assert_eq!(audit.len(), WORKLOADS.len() + 4, "one entry per change: {audit:#?}");
    assert!(audit.iter().all(|e| e["outcome"] == "applied"), "{audit:#?}");
    // The audit chain is anchored with the ServiceAccount's rights (get and patch of the
    // shipped ConfigMap), and verifies against that anchor.
    let config_maps: Api<ConfigMap> = Api::namespaced(client().await, "signalbox");
    eventually(Duration::from_secs(10), "the audit anchor written by the ServiceAccount's signalbox", || async {
        let anchor = config_maps.get_opt(signalbox::audit_anchor::DEFAULT_NAME).await.ok()??;
        anchor.metadata.annotations?.get(signalbox::audit_anchor::ANNOTATION).cloned()
    })
    .await;
    let (status, report) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["anchor"]["checked"].as_bool(), &report["problems"]), (Some(true), &json!([])), "{report}");
    console.stop().await;
}

/// The selector overlay (docs/namespaces.md): the base, managing the namespaces labelled
/// `istio-injection=enabled`, with a read-only ClusterRole for the caches' one watch per
/// kind, which the API server accepts; no write, wildcard or Secret is added.
#[test]
fn the_selector_overlay_adds_cluster_wide_reads_and_nothing_else() {
    let overlay = root().join("deploy/overlays/selector");
    let yaml = must(&["kustomize", overlay.to_str().unwrap()]);
    assert!(yaml.contains("name: SIGNALBOX_NAMESPACE_SELECTOR\n          value: istio-injection=enabled"), "{yaml}");
    assert!(!yaml.contains("'*'") && !yaml.contains("\"*\"") && !yaml.contains("secrets"), "{yaml}");
    let rbac = std::fs::read_to_string(overlay.join("rbac-selector.yaml")).unwrap();
    let verbs: Vec<&str> = rbac.lines().filter_map(|line| line.trim().strip_prefix("verbs: ")).collect();
    assert_eq!(verbs.len(), 4, "{rbac}");
    assert!(verbs.iter().all(|verbs| *verbs == "[get, list, watch]"), "read-only: {verbs:?}");
    let report = must_with(&["apply", "--dry-run=server", "-f", "-"], Some(&rbac));
    assert!(report.contains("clusterrole.rbac.authorization.k8s.io/signalbox-read-routing"), "{report}");
    assert!(report.contains("clusterrolebinding.rbac.authorization.k8s.io/signalbox-read-routing"), "{report}");
}
