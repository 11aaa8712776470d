//! The audit log cannot be written — its files made immutable under a running console, or
//! its disk full: every change is refused with 503 and a message saying so (JSON for the
//! API, a page for a browser) before anything reaches the cluster, and changes work again
//! once the log can be written. Needs root: `chattr` and `mount -t tmpfs`.
use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::TestNamespace;
use support::console::Console;

const UNWRITABLE: &str = "the audit log cannot be written";

/// `chattr +i` on files while it lives (writes through already-open descriptors then fail
/// with EPERM); `chattr -i` when dropped, even if the test fails.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(files: &[PathBuf]) -> Self {
        // Each file joins the guard as soon as it is immutable, so a failure half-way undoes it.
        let mut guard = Immutable(Vec::new());
        for file in files {
            chattr("+i", file);
            guard.0.push(file.clone());
        }
        guard
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for file in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(file).status();
        }
    }
}

fn chattr(flag: &str, file: &Path) {
    let output = Command::new("chattr").arg(flag).arg(file).output().expect("chattr runs (e2fsprogs)");
    assert!(
        output.status.success(),
        "chattr {flag} {} failed (needs root on ext4): {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A small tmpfs mounted for the test; unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            output.status.success(),
            "mounting a {size} tmpfs at {} failed; this test must run as root (CAP_SYS_ADMIN): {}",
            dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.0.path()).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Still open somewhere (a test that failed before closing the database).
            let _ = Command::new("umount").arg("--lazy").arg(self.0.path()).status();
        }
    }
}

/// Writes into `dir` until the file system is full; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(28) => break, // ENOSPC
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
    file.sync_all().unwrap();
    let mut probe = std::fs::File::create(dir.join("probe")).unwrap();
    assert!(probe.write_all(&[0u8; 8192]).and_then(|_| probe.sync_all()).is_err(), "the disk is full");
    let _ = std::fs::remove_file(dir.join("probe"));
    path
}

fn split(v1: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]})
}

/// Two versions deployed and routed 90/10 through the console.
async fn deploy_and_route(console: &Console) {
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{workload}: {body}");
    }
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The generation of each object the refused changes would touch: any write of its spec
/// moves it (the resourceVersion moves with the controllers' status updates too).
async fn versions(ns: &TestNamespace) -> Vec<(Kind, i64)> {
    let mut versions = Vec::new();
    for (kind, name) in [
        (Kind::VirtualService, "recommendation"),
        (Kind::DestinationRule, "recommendation"),
        (Kind::Deployment, "recommendation-v1"),
    ] {
        let api = ns.objects(kind);
        let object = api.get(name).await.unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        versions.push((kind, object.metadata.generation.unwrap()));
    }
    versions
}

/// A route change and a scale through the API, and a scale from the deploy page's form,
/// are each refused with 503 saying the audit log cannot be written.
async fn changes_are_refused(console: &Console) {
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(50))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains(UNWRITABLE), "{body}");
    println!("refused: {}", body["error"]);

    let scale = json!({"replicas": 3});
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), Some(scale)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap_or_default().contains(UNWRITABLE), "{body}");

    let token = console.server.state.csrf.token_for(&format!("local:{}", whoami::username()));
    let response = console
        .http
        .post(console.url(&format!("/ns/{}/deploy/recommendation-v1/scale", console.namespace)))
        .header("origin", &console.base)
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={token}&replicas=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(page.contains("<html") && page.contains(UNWRITABLE), "an error page that says why: {page}");
}

/// A route change goes through again, is applied and audited, and the chain verifies.
async fn changes_work_again(console: &Console, ns: &TestNamespace) {
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(50))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let api = ns.objects(Kind::VirtualService);
    let live = api.get("recommendation").await.unwrap();
    assert_eq!(live.data["spec"]["http"][0]["route"][0]["weight"], 50);
    let latest = &console.audit().await[0];
    assert_eq!((latest["action"].as_str(), latest["outcome"].as_str()), (Some("route.update"), Some("applied")));
    let (_, chain) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(chain["first_mismatch"], Value::Null, "{chain}");
}

#[tokio::test]
async fn an_immutable_audit_log_refuses_changes_before_they_reach_the_cluster() {
    let ns = TestNamespace::new("audit-ro").await;
    // /tmp is ext4 here, where chattr works (tmpfs has no immutable flag).
    let dir = tempfile::Builder::new().prefix("signalbox-ro").tempdir_in("/tmp").unwrap();
    let database = dir.path().join("audit.db");
    let console = Console::start_with(&ns.name, |config| config.database = database.clone()).await;
    deploy_and_route(&console).await;
    let before = versions(&ns).await;

    let wal = PathBuf::from(format!("{}-wal", database.display()));
    assert!(wal.exists(), "the database is in WAL mode with its log open");
    let immutable = Immutable::set(&[database.clone(), wal]);
    changes_are_refused(&console).await;
    assert_eq!(versions(&ns).await, before, "nothing reached the cluster");

    drop(immutable);
    changes_work_again(&console, &ns).await;
    console.stop().await;
}

#[tokio::test]
async fn a_full_disk_refuses_changes_before_they_reach_the_cluster() {
    let ns = TestNamespace::new("audit-full").await;
    let disk = Tmpfs::mount("4m");
    let database = disk.path().join("audit.db");
    let console = Console::start_with(&ns.name, |config| config.database = database.clone()).await;
    deploy_and_route(&console).await;
    let before = versions(&ns).await;

    let filler = fill(disk.path());
    changes_are_refused(&console).await;
    assert_eq!(versions(&ns).await, before, "nothing reached the cluster");

    std::fs::remove_file(filler).unwrap();
    changes_work_again(&console, &ns).await;
    // Closed before the tmpfs is unmounted.
    console.stop().await;
}
