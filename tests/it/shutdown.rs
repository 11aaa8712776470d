//! SIGTERM while changes are in flight, against the real binary and the dev cluster: every
//! change ends applied and audited `applied`, or not applied and audited as not applied —
//! never applied without an entry, never left pending — and the process exits 0 within the
//! shutdown bound.
use crate::support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};
use reqwest::StatusCode;
use signalbox::app::SHUTDOWN_GRACE;
use sqlx::Row;
use support::{TestNamespace, eventually, kubeconfig_path};

const WORKLOADS: [&str; 5] = ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"];

async fn audit_rows(database: &std::path::Path) -> Vec<(String, String, String)> {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("the audit log opens read-only");
    let rows = sqlx::query("SELECT kind, name, outcome FROM audit_view WHERE source != 'external'")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|row| (row.get("kind"), row.get("name"), row.get("outcome"))).collect()
}

/// Returns as soon as some change is between its pending entry and its outcome. Polls
/// every 5 ms: a small change takes well under 100 ms.
async fn until_a_change_is_pending(database: &std::path::Path) {
    let url = format!("sqlite://{}?mode=ro", database.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("the audit log opens read-only");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_view WHERE outcome = 'pending'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if pending > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no change was ever seen in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pool.close().await;
}

#[tokio::test]
async fn sigterm_during_changes_leaves_each_applied_and_audited_or_not_applied_and_exits_in_time() {
    let namespace = TestNamespace::new("shutdown").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let port = support::free_port();
    let mut signalbox = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--namespace", &namespace.name, "--log-format", "json"])
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .arg("--database")
        .arg(&database)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the signalbox binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    support::wait_until_ready(&http, &base).await;

    let requests: Vec<_> = WORKLOADS
        .iter()
        .map(|workload| {
            let request = http
                .put(format!("{base}/api/v1/namespaces/{}/workloads/{workload}", namespace.name))
                .json(&serde_json::json!({}));
            tokio::spawn(async move { request.send().await.map(|response| response.status()) })
        })
        .collect();
    // SIGTERM the moment a change is between its pending entry and its outcome.
    until_a_change_is_pending(&database).await;
    let signalled = Instant::now();
    let pid = signalbox.id().expect("still running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    let exit = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(5), signalbox.wait())
        .await
        .expect("signalbox exits within the shutdown bound")
        .unwrap();
    assert!(exit.success(), "exit status after SIGTERM: {exit}");
    assert!(signalled.elapsed() <= SHUTDOWN_GRACE + Duration::from_secs(1), "{:?}", signalled.elapsed());
    let mut answered_ok = 0;
    for request in requests {
        // A request after the listener closed is refused and never reaches the change path.
        if let Ok(status) = request.await.unwrap() {
            assert!(status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE, "{status}");
            answered_ok += usize::from(status == StatusCode::OK);
        }
    }
    assert!(answered_ok >= 1, "the change in flight at SIGTERM was finished and answered");

    let rows = audit_rows(&database).await;
    assert!(rows.iter().all(|(_, _, outcome)| outcome != "pending"), "nothing left pending: {rows:?}");
    let audited_applied: BTreeSet<String> = rows
        .iter()
        .filter(|(kind, _, outcome)| kind == "Deployment" && outcome == "applied")
        .map(|(_, name, _)| name.clone())
        .collect();
    let deployments: Api<Deployment> = Api::namespaced(namespace.client.clone(), &namespace.name);
    let in_cluster: BTreeSet<String> = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|deployment| deployment.metadata.name)
        .collect();
    assert_eq!(in_cluster, audited_applied, "applied in the cluster exactly when audited applied");
    assert_eq!(audited_applied.len(), answered_ok, "each 200 is one applied entry");
}

/// The same guarantee when clients hang up mid-change (a browser tab closed, a proxy timing
/// out): dropping the request must not stop a change between apply and audit.
#[tokio::test]
async fn changes_whose_clients_hang_up_still_finish_and_are_audited() {
    let namespace = TestNamespace::new("hangup").await;
    let console = support::console::Console::start(&namespace.name).await;
    let requests: Vec<_> = WORKLOADS
        .iter()
        .map(|workload| {
            tokio::spawn(
                console.http.put(console.api(&format!("/workloads/{workload}"))).json(&serde_json::json!({})).send(),
            )
        })
        .collect();
    until_a_change_is_pending(&console.database).await;
    for request in &requests {
        request.abort();
    }

    let rows = eventually(Duration::from_secs(20), "every change's outcome", || async {
        let rows = audit_rows(&console.database).await;
        rows.iter().all(|(_, _, outcome)| outcome != "pending").then_some(rows)
    })
    .await;
    let audited_applied: BTreeSet<String> = rows
        .iter()
        .filter(|(kind, _, outcome)| kind == "Deployment" && outcome == "applied")
        .map(|(_, name, _)| name.clone())
        .collect();
    assert!(!audited_applied.is_empty(), "the change in flight when its client hung up was applied: {rows:?}");
    let deployments: Api<Deployment> = Api::namespaced(namespace.client.clone(), &namespace.name);
    let in_cluster: BTreeSet<String> = deployments
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(in_cluster, audited_applied, "applied in the cluster exactly when audited applied");
    console.stop().await;
}
