//! Outside changes from an attacker's side: someone with edit rights in a managed namespace
//! (kubectl, no signalbox account) tries to flood the audit log, to pass as someone else in
//! it, or to change routing while signalbox is down so that it never shows.
//!
//! - They apply objects with hundreds of KiB of annotations: each entry must stay small
//!   (documents over 64 KiB replaced by a marker the summary mentions) and must not be
//!   revertible to the marker.
//! - They pick `--field-manager=system:signalbox` or `signalbox`: the entry must not read
//!   as signalbox (or anyone) and must not be pinned on an earlier, innocent manager.
//! - They loop 200 changes: the log must grow by a bounded number of entries, and say how
//!   many changes it only counted.
//! - They change a DestinationRule and a Service (written by signalbox as part of a routing
//!   change and a deploy) while the console is stopped: the next start must record it.
use crate::support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::console::Console;
use support::{TestNamespace, eventually, kubeconfig_path};
use tokio::io::AsyncWriteExt;

/// The dev cluster's kubectl, beside its state directory (else the one on PATH).
fn kubectl_path() -> PathBuf {
    let beside = kubeconfig_path().parent().and_then(|state| state.parent()).map(|dir| dir.join(".bin/kubectl"));
    beside.filter(|path| path.exists()).unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Runs kubectl as the attacker (the admin kubeconfig) with `args`, `stdin` as its input;
/// panics with its output when it fails.
async fn kubectl(args: &[&str], stdin: Option<&str>) {
    let mut command = tokio::process::Command::new(kubectl_path());
    command.arg("--kubeconfig").arg(kubeconfig_path()).args(args);
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("kubectl runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn split(v1: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": 100 - v1}}]})
}

/// A VirtualService for `host` with `filler_kib` KiB of annotations (the API server allows
/// 256 KiB of them).
fn padded_virtual_service(namespace: &str, host: &str, filler_kib: usize, timeout: &str) -> String {
    let annotations: serde_json::Map<String, Value> =
        (0..filler_kib / 16).map(|i| (format!("filler-{i}"), Value::from("x".repeat(16 * 1024 - 64)))).collect();
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": host, "namespace": namespace, "annotations": annotations},
           "spec": {"hosts": [host], "http": [{"timeout": timeout, "route": [{"destination": {"host": host}}]}]}})
    .to_string()
}

#[tokio::test]
async fn an_oversized_change_under_signalboxs_name_is_bounded_marked_unverified_and_not_revertible() {
    let ns = TestNamespace::new("abuse-size").await;
    let console = Console::start(&ns.name).await;
    let apply = ["apply", "--server-side", "--field-manager=system:signalbox", "-n", &ns.name, "-f", "-"];

    kubectl(&apply, Some(&padded_virtual_service(&ns.name, "reviews", 192, "1s"))).await;
    kubectl(&apply, Some(&padded_virtual_service(&ns.name, "reviews", 192, "2s"))).await;

    let update = eventually(Duration::from_secs(15), "the outside update", || async {
        console.external_entries().await.into_iter().find(|e| e["action"] == "external.update")
    })
    .await;
    let create = console.external_entries().await.into_iter().find(|e| e["action"] == "external.create").unwrap();
    for entry in [&create, &update] {
        assert_eq!(entry["actor"], "field manager system:signalbox (unverified)", "never signalbox itself: {entry}");
        let stored = entry.to_string().len();
        assert!(stored < 8 * 1024, "a 192 KiB object is not stored whole: {stored} bytes");
        assert!(
            entry["summary"].as_str().unwrap().contains("over the 64 KiB limit, not stored"),
            "{}",
            entry["summary"]
        );
        assert!(entry["after"]["signalbox.io/not-stored"]["bytes"].as_u64().unwrap() > 150 * 1024, "{entry}");
    }
    assert!(update["before"]["signalbox.io/not-stored"].is_object(), "{update}");

    let id = update["id"].as_i64().unwrap();
    let (status, answer) = console
        .send_json(Method::POST, &console.url(&format!("/api/v1/audit/{id}/revert")), Some(json!({"force": true})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not stored"), "{answer}");
    let live = ns.objects(Kind::VirtualService).get("reviews").await.unwrap();
    assert_eq!(live.data["spec"]["http"][0]["timeout"], "2s", "the revert applied nothing");

    let csv =
        console.http.get(console.url("/api/v1/audit/export?format=csv")).send().await.unwrap().text().await.unwrap();
    assert!(!csv.contains(",system:signalbox,external"), "the export does not name signalbox either: {csv}");
    console.stop().await;
}

#[tokio::test]
async fn a_change_under_the_name_signalbox_is_pinned_on_that_name_not_on_the_manager_before() {
    let ns = TestNamespace::new("abuse-name").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90))).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An innocent edit first, then (a second later: managedFields keep seconds) the attacker's.
    let weights = |v1: u32| {
        json!({"spec": {"http": [{"route": [
            {"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": v1},
            {"destination": {"host": "recommendation", "subset": "version-v2"}, "weight": 100 - v1}]}]}})
        .to_string()
    };
    let patch = |manager: &'static str, body: String| {
        let namespace = ns.name.clone();
        async move {
            let manager = format!("--field-manager={manager}");
            let args =
                ["patch", "virtualservice", "recommendation", "-n", &namespace, "--type=merge", &manager, "-p", &body];
            kubectl(&args, None).await;
        }
    };
    patch("kubectl-edit", weights(50)).await;
    let innocent = eventually(Duration::from_secs(10), "the innocent edit", || async {
        let entries = console.external_entries().await;
        entries.into_iter().find(|e| e["after"]["spec"]["http"][0]["route"][0]["weight"] == 50)
    })
    .await;
    assert_eq!(innocent["actor"], "field manager kubectl-edit (unverified)", "{innocent}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    patch("signalbox", weights(0)).await;

    let entry = eventually(Duration::from_secs(10), "the attacker's edit", || async {
        let entries = console.external_entries().await;
        entries.into_iter().find(|e| e["after"]["spec"]["http"][0]["route"][0]["weight"] == 0)
    })
    .await;
    assert_eq!(entry["actor"], "field manager signalbox (unverified)", "not kubectl-edit, nor signalbox: {entry}");
    let (_, page) = console.get_as(None, &format!("/audit/{}", entry["id"])).await;
    assert!(page.contains("field manager signalbox (unverified)"), "{page}");
    console.stop().await;
}

#[tokio::test]
async fn a_loop_of_200_outside_changes_leaves_a_bounded_number_of_entries_and_a_count() {
    let ns = TestNamespace::new("abuse-loop").await;
    let console = Console::start(&ns.name).await;
    kubectl(&["apply", "-n", &ns.name, "-f", "-"], Some(&padded_virtual_service(&ns.name, "ratings", 0, "1s"))).await;
    let params = PatchParams { field_manager: Some("loop".into()), ..PatchParams::default() };
    let objects = ns.objects(Kind::VirtualService);
    for i in 0..200 {
        let patch = json!({"metadata": {"annotations": {"loop": i.to_string()}}});
        objects.patch("ratings", &params, &Patch::Merge(&patch)).await.unwrap();
    }

    let by_loop = |entries: &[Value]| {
        let one_by_one = entries.iter().filter(|e| e["actor"] == "field manager loop (unverified)").count();
        let counts = entries.iter().filter(|e| e["action"] == "external.unrecorded");
        let counted: u64 = counts
            .flat_map(|e| e["after"]["byFieldManager"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["actor"] == "field manager loop (unverified)")
            .map(|m| m["changes"].as_u64().unwrap_or(0))
            .sum();
        (one_by_one, counted)
    };
    let entries = eventually(Duration::from_secs(30), "every change recorded or counted", || async {
        let entries = console.external_entries().await;
        let (one_by_one, counted) = by_loop(&entries);
        (one_by_one as u64 + counted >= 200).then_some(entries)
    })
    .await;
    let (one_by_one, counted) = by_loop(&entries);
    assert!(one_by_one <= 61, "at most the burst one by one: {one_by_one}");
    assert_eq!(one_by_one as u64 + counted, 200, "none lost, none twice");
    let summary = entries.iter().find(|e| e["action"] == "external.unrecorded").unwrap();
    assert!(
        summary["summary"].as_str().unwrap().contains("by field manager loop (unverified) to VirtualService ratings"),
        "{summary}"
    );
    assert!(entries.len() < 70, "the log grew by {} entries", entries.len());
    let id = summary["id"].as_i64().unwrap();
    let (status, answer) = console
        .send_json(Method::POST, &console.url(&format!("/api/v1/audit/{id}/revert")), Some(json!({"force": true})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a count reverts nothing: {answer}");
    console.stop().await;
}

#[tokio::test]
async fn a_destination_rule_and_a_service_changed_while_down_are_recorded_at_the_next_start() {
    let ns = TestNamespace::new("abuse-down").await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("audit.db");
    let start = || {
        let database = database.clone();
        Console::start_with(&ns.name, move |config| config.database = database)
    };
    let console = start().await;
    console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    console.stop().await;

    // While it is down: the DestinationRule's v2 subset now selects v1's pods, and the
    // Service selects a label of the attacker's choosing.
    let subsets = json!({"spec": {"subsets": [{"name": "version-v1", "labels": {"version": "v1"}},
                                              {"name": "version-v2", "labels": {"version": "v1"}}]}});
    let args =
        ["patch", "destinationrule", "recommendation", "-n", &ns.name, "--type=merge", "--field-manager=kubectl-patch"];
    kubectl(&[&args[..], &["-p", &subsets.to_string()]].concat(), None).await;
    let selector = json!({"spec": {"selector": {"app": "recommendation", "attacker": "yes"}}}).to_string();
    let args = ["patch", "service", "recommendation", "-n", &ns.name, "--type=merge", "--field-manager=kubectl-patch"];
    kubectl(&[&args[..], &["-p", &selector]].concat(), None).await;

    let console = start().await;
    let entries = eventually(Duration::from_secs(15), "both changes made while down", || async {
        let entries = console.external_entries().await;
        let found = |kind: &str| entries.iter().any(|e| e["kind"] == kind && e["action"] == "external.update");
        (found("DestinationRule") && found("Service")).then_some(entries)
    })
    .await;
    let dr = entries.iter().find(|e| e["kind"] == "DestinationRule").unwrap();
    assert_eq!(dr["actor"], "field manager kubectl-patch (unverified)", "{dr}");
    assert_eq!(dr["after"]["spec"]["subsets"][1]["labels"]["version"], "v1", "{dr}");
    assert_eq!(dr["before"]["spec"]["subsets"][1]["labels"]["version"], "v2", "{dr}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(console.external_entries().await.len(), 2, "nothing else: {:#?}", console.external_entries().await);
    console.stop().await;

    let console = start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let external = console.external_entries().await;
    assert_eq!(external.len(), 2, "not recorded twice on restart: {:#?}", &external[..external.len() - 2]);
    console.stop().await;
}
