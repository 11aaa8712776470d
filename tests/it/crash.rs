//! `kill -9` in the middle of a change, against the real binary and the dev cluster. A
//! failpoint (`SIGNALBOX_FAILPOINT`, debug builds only; see src/change/failpoint.rs) parks
//! the change right after its pending audit entry is durable, or right after the apply; the
//! process is killed there and started again on the same database. The next start must
//! resolve the pending entry to what the cluster holds — `failed` when the apply never
//! happened, `applied` with the live objects when it did — and the chain must still verify
//! (`signalbox audit verify`).
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;
use support::{TestNamespace, eventually, kubeconfig_path};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WORKLOAD: &str = "recommendation-v1";

/// A signalbox process serving one namespace from `database`.
struct Signalbox {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Signalbox {
    /// Starts the binary (with `failpoint` armed, if given) and waits until it is ready.
    /// With a failpoint, its log is watched for the failpoint being reached.
    async fn start(
        namespace: &str,
        database: &Path,
        failpoint: Option<&str>,
    ) -> (Self, tokio::sync::oneshot::Receiver<()>) {
        let port = support::free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_signalbox"));
        command
            .args(["--listen", &format!("127.0.0.1:{port}"), "--namespace", namespace, "--log-format", "json"])
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .arg("--database")
            .arg(database)
            .env_remove("SIGNALBOX_FAILPOINT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(failpoint) = failpoint {
            command.env("SIGNALBOX_FAILPOINT", failpoint);
        }
        let mut child = command.spawn().expect("the signalbox binary starts");
        let reached = watch_log(child.stdout.take().unwrap());
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        support::wait_until_ready(&http, &base).await;
        (Self { child, base, http }, reached)
    }

    /// Deploys the workload through the JSON API, in a task of its own (it may never answer).
    fn deploy(&self, namespace: &str) -> tokio::task::JoinHandle<Result<StatusCode, reqwest::Error>> {
        let request = self
            .http
            .put(format!("{}/api/v1/namespaces/{namespace}/workloads/{WORKLOAD}", self.base))
            .json(&serde_json::json!({}));
        tokio::spawn(async move { request.send().await.map(|response| response.status()) })
    }

    /// SIGKILL: no shutdown, no outcome recorded, the database as the last commit left it.
    async fn kill_9(mut self) {
        self.child.kill().await.expect("SIGKILL");
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(mut self) {
        let pid = self.child.id().expect("still running").to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await.expect("exits").unwrap();
        assert!(exit.success(), "{exit}");
    }
}

/// Passes the process's log through to the test's output, and signals when a line says the
/// failpoint was reached.
fn watch_log(stdout: tokio::process::ChildStdout) -> tokio::sync::oneshot::Receiver<()> {
    let (reached, on_reached) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut reached = Some(reached);
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            println!("signalbox: {line}");
            if line.contains("failpoint reached")
                && let Some(reached) = reached.take()
            {
                let _ = reached.send(());
            }
        }
    });
    on_reached
}

/// (id, outcome, error, after) of every entry, read-only, as `audit_view` joins them.
async fn entries(database: &Path) -> Vec<(i64, String, Option<String>, Option<Value>)> {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("the audit log opens read-only");
    let rows =
        sqlx::query("SELECT id, outcome, error, after_doc FROM audit_view WHERE source != 'external' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|row| {
            let after: Option<String> = row.get("after_doc");
            (row.get("id"), row.get("outcome"), row.get("error"), after.and_then(|a| serde_json::from_str(&a).ok()))
        })
        .collect()
}

/// Starts signalbox with `failpoint`, sends the deploy, waits for the failpoint with the
/// pending entry durable, and kills the process there. Returns the pending entry's id.
async fn kill_at(failpoint: &str, namespace: &str, database: &Path) -> i64 {
    let (signalbox, reached) = Signalbox::start(namespace, database, Some(failpoint)).await;
    let request = signalbox.deploy(namespace);
    tokio::time::timeout(Duration::from_secs(30), reached).await.expect("the failpoint is reached").unwrap();
    let pending = entries(database).await;
    let [(id, outcome, _, _)] = pending.as_slice() else { panic!("one entry: {pending:?}") };
    assert_eq!(outcome, "pending", "durable before the kill");
    let id = *id;
    signalbox.kill_9().await;
    assert!(request.await.unwrap().is_err(), "the killed process never answered the change");
    id
}

/// Starts signalbox without a failpoint on the same database and waits until it has
/// resolved the entry; returns (outcome, error, after).
async fn restart_and_resolve(namespace: &str, database: &Path, id: i64) -> (String, Option<String>, Option<Value>) {
    let (signalbox, _) = Signalbox::start(namespace, database, None).await;
    let resolved = eventually(Duration::from_secs(20), "the pending entry resolved", || async {
        let entries = entries(database).await;
        let (_, outcome, error, after) = entries.into_iter().find(|(entry, ..)| *entry == id)?;
        (outcome != "pending").then_some((outcome, error, after))
    })
    .await;
    // The console shows the same outcome (it reads the same log).
    let answer: Value =
        signalbox.http.get(format!("{}/api/v1/audit/{id}", signalbox.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["outcome"].as_str(), Some(resolved.0.as_str()), "{answer}");
    // What the killed process applied is its own change, not one made outside signalbox
    // (the watcher records those half a second after it sees them).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let external: Value = signalbox
        .http
        .get(format!("{}/api/v1/audit?source=external", signalbox.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(external["entries"], serde_json::json!([]), "{external}");
    signalbox.stop().await;
    resolved
}

fn verify_chain(database: &PathBuf) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["audit", "verify", "--database"])
        .arg(database)
        .output()
        .expect("signalbox audit verify runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && stdout.contains("audit log intact"), "{stdout}");
}

#[tokio::test]
#[cfg_attr(not(debug_assertions), ignore = "failpoints exist only in debug builds")]
async fn killed_after_the_audit_write_the_change_is_resolved_failed_and_was_not_applied() {
    let ns = TestNamespace::new("crash-audit").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");

    let id = kill_at("after-audit-write", &ns.name, &database).await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let services: Api<Service> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(deployments.get_opt(WORKLOAD).await.unwrap().is_none(), "nothing was applied before the kill");

    let (outcome, error, after) = restart_and_resolve(&ns.name, &database, id).await;
    assert_eq!(outcome, "failed");
    assert!(error.as_deref().unwrap_or_default().contains("stopped before this change was applied"), "{error:?}");
    assert_eq!(after, None);
    assert!(deployments.get_opt(WORKLOAD).await.unwrap().is_none(), "resolving applies nothing");
    assert!(services.get_opt("recommendation").await.unwrap().is_none(), "resolving applies nothing");
    verify_chain(&database);
}

#[tokio::test]
#[cfg_attr(not(debug_assertions), ignore = "failpoints exist only in debug builds")]
async fn killed_after_the_apply_the_change_is_resolved_applied_with_the_live_objects() {
    let ns = TestNamespace::new("crash-apply").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");

    let id = kill_at("after-apply", &ns.name, &database).await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client.clone(), &ns.name);
    let live = deployments.get_opt(WORKLOAD).await.unwrap().expect("applied before the kill");

    let (outcome, error, after) = restart_and_resolve(&ns.name, &database, id).await;
    assert_eq!((outcome.as_str(), error), ("applied", None));
    let after = after.expect("the live state is recorded as after");
    let objects = after["items"].as_array().cloned().unwrap_or_else(|| vec![after.clone()]);
    let recorded = objects
        .iter()
        .find(|object| object["kind"] == "Deployment")
        .unwrap_or_else(|| panic!("the Deployment in {after}"));
    assert_eq!(recorded["metadata"]["name"], WORKLOAD);
    let live = serde_json::to_value(&live).unwrap();
    for field in ["/spec/replicas", "/spec/selector", "/spec/template/spec/containers/0/image"] {
        assert_eq!(recorded.pointer(field), live.pointer(field), "{field}: the object in the cluster");
    }
    verify_chain(&database);
}

/// A change whose second write fails after its first was applied (the failpoint makes every
/// later write fail as if the API server had gone away) is rolled back whole, and recorded
/// as failed saying what was written and rolled back: no DestinationRule is left behind for
/// a VirtualService that was never written.
#[tokio::test]
async fn a_change_that_fails_half_way_is_rolled_back_and_recorded_so() {
    let ns = TestNamespace::new("halfway").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let (signalbox, _) = Signalbox::start(&ns.name, &database, None).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let url = format!("{}/api/v1/namespaces/{}/workloads/{workload}", signalbox.base, ns.name);
        let status = signalbox.http.put(url).json(&serde_json::json!({})).send().await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
    }
    signalbox.stop().await;

    let (signalbox, _) = Signalbox::start(&ns.name, &database, Some("fail-after-first-write")).await;
    let policy = serde_json::json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                                    "rules": [{"route": {"version-v1": 90, "version-v2": 10}}]});
    let url = format!("{}/api/v1/namespaces/{}/routes/recommendation", signalbox.base, ns.name);
    let response = signalbox.http.put(&url).json(&policy).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let answer: Value = response.json().await.unwrap();
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("rolled back DestinationRule"), "{error}");

    let istio = |kind: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("networking.istio.io", "v1", kind));
        Api::<DynamicObject>::namespaced_with(ns.client.clone(), &ns.name, &resource)
    };
    assert!(istio("DestinationRule").get_opt("recommendation").await.unwrap().is_none(), "the first write is undone");
    assert!(istio("VirtualService").get_opt("recommendation").await.unwrap().is_none());
    let recorded = entries(&database).await;
    let (_, outcome, error, _) = recorded.last().unwrap();
    assert_eq!(outcome, "failed");
    assert!(error.as_deref().unwrap().contains("rolled back"), "{error:?}");
    signalbox.stop().await;
}
