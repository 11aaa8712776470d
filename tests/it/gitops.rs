//! Objects Argo CD, Flux or Helm own (issue 23 §1), against the dev cluster: applied as their
//! controllers apply them (their field managers, their labels), then changed through
//! signalbox under each `--gitops` mode.
use kube::api::{Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signalbox::change::gitops::GitopsMode;
use signalbox::cluster::Kind;

use crate::support;
use support::TestNamespace;
use support::console::Console;

/// recommendation's VirtualService and DestinationRule as Argo CD's application `shop`
/// syncs them: the VirtualService tracked by label (written by `argocd-controller`), the
/// DestinationRule by annotation.
async fn synced_by_argo_cd(ns: &TestNamespace) {
    let dr = json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "recommendation", "annotations": {
            "argocd.argoproj.io/tracking-id": format!("shop:networking.istio.io/DestinationRule:{}/recommendation", ns.name)}},
        "spec": {"host": "recommendation", "subsets": [
            {"name": "version-v1", "labels": {"version": "v1"}}, {"name": "version-v2", "labels": {"version": "v2"}}]}});
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "recommendation", "labels": {"app.kubernetes.io/instance": "shop"}},
        "spec": {"hosts": ["recommendation"], "http": [{"route": [
            {"destination": {"host": "recommendation", "subset": "version-v1"}, "weight": 100}]}]}});
    let argo = PatchParams::apply("argocd-controller").force();
    ns.objects(Kind::DestinationRule).patch("recommendation", &argo, &Patch::Apply(&dr)).await.unwrap();
    ns.objects(Kind::VirtualService).patch("recommendation", &argo, &Patch::Apply(&vs)).await.unwrap();
}

/// preference's VirtualService as Flux's Kustomization `flux-system/apps` applies it.
async fn applied_by_flux(ns: &TestNamespace) {
    let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "preference", "labels": {
            "kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}},
        "spec": {"hosts": ["preference"], "http": [{"route": [{"destination": {"host": "preference"}}], "timeout": "2s"}]}});
    let flux = PatchParams::apply("kustomize-controller").force();
    ns.objects(Kind::VirtualService).patch("preference", &flux, &Patch::Apply(&vs)).await.unwrap();
}

fn split(v1: u32, v2: u32) -> Value {
    json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
           "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]})
}

async fn live_version(ns: &TestNamespace, name: &str) -> String {
    let vs = ns.objects(Kind::VirtualService).get(name).await.unwrap();
    vs.metadata.resource_version.unwrap()
}

async fn console(ns: &TestNamespace, mode: GitopsMode) -> Console {
    let console = Console::start_with(&ns.name, |config| config.gitops = mode).await;
    console.deploy(&["recommendation-v1", "recommendation-v2", "preference"]).await;
    console
}

#[tokio::test]
async fn a_change_to_an_object_argo_cd_or_flux_owns_is_refused_naming_the_owner_and_previewed_for_git() {
    let ns = TestNamespace::new("gitops").await;
    let console = console(&ns, GitopsMode::Refuse).await;
    synced_by_argo_cd(&ns).await;
    applied_by_flux(&ns).await;
    let before = live_version(&ns, "recommendation").await;
    let routes = console.api("/routes/recommendation");

    let (status, body) = console.send_json(Method::PUT, &routes, Some(split(90, 10))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["owner"], json!({"tool": "Argo CD", "name": "shop"}), "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("owned by Argo CD application shop") && message.contains("change it in Git"), "{message}");
    assert_eq!(live_version(&ns, "recommendation").await, before, "nothing written");
    let refused = console.audit().await.into_iter().find(|e| e["action"] == "route.update").expect("audited");
    assert_eq!(refused["outcome"], "denied", "{refused}");

    // The dry run still answers, with the objects to commit to Git.
    let (status, body) = console.send_json(Method::PUT, &format!("{routes}?dryRun=true"), Some(split(90, 10))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let owned: Vec<&str> = body["owned"].as_array().unwrap().iter().map(|o| o["object"].as_str().unwrap()).collect();
    assert!(owned.contains(&"VirtualService recommendation"), "tracked by label, written by Argo CD: {body}");
    assert!(body["owned"].as_array().unwrap().iter().all(|o| o["owner"] == json!({"tool": "Argo CD", "name": "shop"})));
    let vs = body["objects"].as_array().unwrap().iter().find(|o| o["kind"] == "VirtualService").unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 10, "{vs}");

    // The page previews it with the owner next to where Apply would be, and no Apply.
    let preview = format!("/ns/{}/routes/recommendation/preview", ns.name);
    let form = [("action", "split"), ("weight.version-v1", "90"), ("weight.version-v2", "10")];
    let (status, html) = console.post_form(&preview, &form).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("is owned by Argo CD application shop: a change here is undone at its next sync"), "{html}");
    assert!(html.contains("For Git: the objects to commit") && !html.contains("id=\"apply\""), "{html}");
    let download = regex::Regex::new(r#"id="preview-download" download="recommendation-routing.yaml" href="data:application/yaml;charset=utf-8,([^"]+)""#).unwrap();
    let encoded = &download.captures(&html).expect("a download link")[1];
    let yaml = percent_decoded(encoded);
    assert!(yaml.contains("kind: VirtualService") && yaml.contains("weight: 10"), "{yaml}");

    let (status, body) = console.send_json(Method::DELETE, &console.api("/routes/preference"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["owner"], json!({"tool": "Flux", "name": "flux-system/apps"}), "{body}");
    console.stop().await;
}

#[tokio::test]
async fn with_gitops_warn_the_change_is_applied_and_its_audit_entry_says_whose_object_it_changed() {
    let ns = TestNamespace::new("gitops-warn").await;
    let console = console(&ns, GitopsMode::Warn).await;
    synced_by_argo_cd(&ns).await;
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90, 10))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = console.audit().await.into_iter().find(|e| e["action"] == "route.update").unwrap();
    let summary = entry["summary"].as_str().unwrap();
    assert!(
        summary.contains("— warning: VirtualService recommendation is owned by Argo CD application shop"),
        "{summary}"
    );
    console.stop().await;
}

/// When a GitOps controller (or anyone) rewrites what signalbox just wrote, the outside
/// change names the change it overwrites, that change's page says it was overwritten, and
/// the routing page says what is shown is theirs.
#[tokio::test]
async fn a_change_overwritten_by_argo_cd_is_followed_up_in_the_audit_and_on_the_routing_page() {
    let ns = TestNamespace::new("gitops-undone").await;
    let console = console(&ns, GitopsMode::Refuse).await;
    let (status, body) =
        console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(split(90, 10))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let change = body["auditId"].as_i64().unwrap();
    // Argo CD's self-heal puts back what Git says.
    synced_by_argo_cd(&ns).await;
    let outside = support::eventually(std::time::Duration::from_secs(15), "the overwrite recorded", || async {
        let entries = console.audit().await;
        entries.into_iter().find(|e| e["source"] == "external" && e["kind"] == "VirtualService")
    })
    .await;
    let summary = outside["summary"].as_str().unwrap();
    assert!(summary.contains("by field manager argocd-controller (unverified)"), "{summary}");
    assert!(summary.contains(&format!("overwrites signalbox's change #{change} from ")), "{summary}");

    let entry = console.page(&format!("/audit/{change}")).await;
    assert!(
        entry.contains("id=\"entry-overwritten\"") && entry.contains("by field manager argocd-controller"),
        "{entry}"
    );
    let routing = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(
        routing.contains("id=\"routing-overwritten\"") && routing.contains(&format!("change #{change}")),
        "{routing}"
    );
    console.stop().await;
}

/// `%41` → `A` (the download link's URL encoding).
fn percent_decoded(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            decoded.push(u8::from_str_radix(&encoded[index + 1..index + 3], 16).unwrap());
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).unwrap()
}
