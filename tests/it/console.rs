//! The console against the dev cluster: the workload API and pages, every change audited.
use crate::support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use kube::api::{Api, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::console::Console;
use support::{TestNamespace, eventually};

async fn deployment(ns: &TestNamespace, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(name).await.unwrap()
}

fn replicas(object: &Value) -> Option<i64> {
    object["spec"]["replicas"].as_i64()
}

/// The Deployment inside an entry's before/after document (a single object or a List).
fn deployment_in(document: &Value) -> Value {
    if document["kind"] == "List" {
        document["items"].as_array().unwrap().iter().find(|o| o["kind"] == "Deployment").cloned().unwrap_or(Value::Null)
    } else {
        document.clone()
    }
}

#[tokio::test]
async fn deploy_scale_and_remove_through_the_api_are_applied_and_audited_once_each() {
    let ns = TestNamespace::new("api").await;
    let console = Console::start(&ns.name).await;
    let url = console.api("/workloads/recommendation-v2");

    let (status, body) = console.send_json(Method::PUT, &url, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = deployment(&ns, "recommendation-v2").await.expect("Deployment created");
    assert_eq!(created.spec.unwrap().replicas, Some(1));
    let services = Api::<Service>::namespaced(ns.client.clone(), &ns.name);
    assert!(services.get_opt("recommendation").await.unwrap().is_some());
    let accounts = Api::<ServiceAccount>::namespaced(ns.client.clone(), &ns.name);
    assert!(accounts.get_opt("recommendation").await.unwrap().is_some());

    let listed = eventually(Duration::from_secs(30), "recommendation-v2 ready in the workload list", || async {
        let (_, list) = console.get_json(&console.api("/workloads")).await;
        let item = list.as_array()?.iter().find(|w| w["name"] == "recommendation-v2")?.clone();
        (item["ready"] == 1).then_some(item)
    })
    .await;
    assert_eq!(
        listed,
        json!({"name": "recommendation-v2", "deployment": "recommendation-v2", "app": "recommendation", "version": "v2", "replicas": 1, "ready": 1})
    );

    let (status, body) = console.send_json(Method::PUT, &url, Some(json!({"replicas": 2}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(deployment(&ns, "recommendation-v2").await.unwrap().spec.unwrap().replicas, Some(2));

    let (status, body) = console.send_json(Method::DELETE, &url, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(deployment(&ns, "recommendation-v2").await.is_none());
    assert!(services.get_opt("recommendation").await.unwrap().is_none(), "last version gone: Service removed");

    let audit = console.audit().await;
    let actions: Vec<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["workload.remove", "workload.scale", "workload.deploy"]);
    for entry in &audit {
        assert_eq!(entry["outcome"], "applied", "{entry}");
        assert!(entry["actor"].as_str().unwrap().starts_with("local:"), "{entry}");
        assert_eq!(entry["source"], "api");
        assert_eq!(entry["namespace"], ns.name.as_str());
        assert_eq!((entry["kind"].as_str(), entry["name"].as_str()), (Some("Deployment"), Some("recommendation-v2")));
        assert!(entry["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    let scale = &audit[1];
    assert_eq!(replicas(&deployment_in(&scale["before"])), Some(1));
    assert_eq!(replicas(&deployment_in(&scale["after"])), Some(2));
    assert_eq!(scale["summary"], "scale recommendation-v2: 1 → 2 replicas");
    assert!(deployment_in(&audit[2]["before"]).is_null(), "nothing existed before the deploy");
    console.stop().await;
}

#[tokio::test]
async fn the_whole_tutorial_deploys_into_a_new_namespace_and_resets() {
    let ns = TestNamespace::unborn("tut").await;
    let console = Console::start(&ns.name).await;
    for workload in ["customer", "preference", "recommendation-v1", "recommendation-v2", "recommendation-v3"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{workload}: {body}");
    }
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(ns.client.clone()).get(&ns.name).await.unwrap();
    assert_eq!(namespace.metadata.labels.unwrap()["istio-injection"], "enabled");
    let gateway = console.get_json(&console.url(&format!("/ns/{}", ns.name))).await;
    assert_eq!(gateway.0, StatusCode::OK);
    for name in ["customer", "preference-v1", "recommendation-v1", "recommendation-v2", "recommendation-v3"] {
        assert!(deployment(&ns, name).await.is_some(), "{name}");
    }

    let (status, body) = console.send_json(Method::DELETE, &console.api("/tutorial"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for name in ["customer", "preference-v1", "recommendation-v1", "recommendation-v2", "recommendation-v3"] {
        assert!(deployment(&ns, name).await.is_none(), "{name} removed by reset");
    }
    let audit = console.audit().await;
    assert_eq!(audit.len(), 6);
    assert_eq!(audit[0]["action"], "tutorial.reset");
    assert!(audit.iter().all(|e| e["outcome"] == "applied"));
    console.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_and_changes_nothing() {
    let ns = TestNamespace::new("bad").await;
    let console = Console::start(&ns.name).await;
    let url = console.api("/workloads/recommendation-v2");

    for (body, field) in [(json!({"replicas": -1}), "replicas"), (json!({"replicas": 21}), "replicas")] {
        let (status, answer) = console.send_json(Method::PUT, &url, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("from 0 to 20"), "{answer}");
    }
    for body in [json!({"replicas": "two"}), json!({"replicas": 1.5}), json!({"replicaz": 1})] {
        let (status, answer) = console.send_json(Method::PUT, &url, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{answer}");
    }
    let malformed =
        console.http.put(&url).header("content-type", "application/json").body("{not json").send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let (status, answer) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v9"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("recommendation-v9"));
    let (status, _) =
        console.send_json(Method::PUT, &console.url("/api/v1/namespaces/kube-system/workloads/customer"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "unmanaged namespaces are not reachable");

    assert!(deployment(&ns, "recommendation-v2").await.is_none(), "nothing was deployed");
    let audit = console.audit().await;
    assert_eq!(audit.len(), 2, "the two refused changes that reached the change path are audited");
    assert!(audit.iter().all(|e| e["outcome"] == "failed" && e["error"].as_str().unwrap().contains("replicas")));
    console.stop().await;
}

#[tokio::test]
async fn a_change_the_api_server_refuses_is_audited_as_failed_with_its_message() {
    let ns = TestNamespace::new("quota").await;
    // A quota of zero Deployments: the API server's admission refuses the change.
    let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-deployments"},
        "spec": {"hard": {"count/deployments.apps": "0"}}
    }))
    .unwrap();
    Api::namespaced(ns.client.clone(), &ns.name).create(&PostParams::default(), &quota).await.unwrap();
    let console = Console::start(&ns.name).await;
    let url = console.api("/workloads/recommendation-v1");
    let refused = eventually(Duration::from_secs(20), "the quota to be enforced", || async {
        let (status, body) = console.send_json(Method::PUT, &url, None).await;
        (status != StatusCode::OK).then_some((status, body))
    })
    .await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    assert!(refused.1["error"].as_str().unwrap().contains("exceeded quota"), "{}", refused.1);
    assert!(deployment(&ns, "recommendation-v1").await.is_none());
    let latest = &console.audit().await[0];
    assert_eq!(latest["outcome"], "failed");
    assert!(latest["error"].as_str().unwrap().contains("exceeded quota"), "{latest}");
    console.stop().await;
}

#[tokio::test]
async fn when_the_audit_log_cannot_be_written_nothing_is_applied() {
    let ns = TestNamespace::new("ro").await;
    let console = Console::start(&ns.name).await;
    // Another writer holds the database's write lock: every audit write times out.
    let lock = sqlx::SqlitePool::connect(&format!("sqlite://{}", console.database.display())).await.unwrap();
    let mut holder = lock.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut *holder).await.unwrap();

    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("audit log cannot be written"), "{body}");
    assert!(deployment(&ns, "recommendation-v1").await.is_none(), "nothing applied without an audit record");
    let ready = console.http.get(console.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "readiness reports the unwritable database");

    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "writable again: {body}");
    console.stop().await;
}

#[tokio::test]
async fn pages_render_from_the_cache_and_follow_changes_without_reload() {
    let ns = TestNamespace::new("page").await;
    let console = Console::start(&ns.name).await;
    let page = console.http.get(console.url(&format!("/ns/{}", ns.name))).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("Nothing runs in"), "empty namespace");
    assert!(
        html.contains("http://kiali.example:20001/kiali/console/graph/namespaces/?namespaces="),
        "Kiali graph link"
    );
    // No tutorial assumed: the ingress is linked only where something here is routed from it.
    assert!(html.contains("nothing here is routed from the ingress gateway"), "{html}");
    let shop = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "shop-gateway"},
        "spec": {"hosts": ["*"], "gateways": ["shop-gateway"], "http": [
            {"match": [{"uri": {"prefix": "/shop"}}], "route": [{"destination": {"host": "recommendation"}}]}]}});
    let apply = kube::api::PatchParams::apply("someone-else");
    ns.objects(signalbox::cluster::Kind::VirtualService)
        .patch("shop-gateway", &apply, &kube::api::Patch::Apply(&shop))
        .await
        .unwrap();
    let overview = format!("/ns/{}", ns.name);
    // The dev cluster's gateway has an address but no Envoy behind it: once probed, the
    // address is shown as text and marked, not offered as a link that cannot open.
    eventually(Duration::from_secs(10), "the ingress address, marked as not answering", || async {
        let html = console.page(&overview).await;
        html.contains("ingress http://127.0.0.1/shop (nothing answers there)").then_some(())
    })
    .await;

    let (status, _) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK);
    let partial_url = console.url(&format!("/ns/{}/partials/services", ns.name));
    let partial = eventually(Duration::from_secs(2), "the polled services partial to show v1 ready", || async {
        let html = console.http.get(&partial_url).send().await.ok()?.text().await.ok()?;
        html.contains("1/1").then_some(html)
    })
    .await;
    assert!(partial.contains("recommendation"), "{partial}");
    assert!(partial.contains("no routing policy: round-robin over all pods"), "{partial}");
    assert!(partial.contains(&format!("http://jaeger.example/jaeger/search?service=recommendation.{}", ns.name)));
    assert!(!partial.contains("<html"), "a partial is a fragment");

    let audit_page = console.page("/audit").await;
    assert!(audit_page.contains("workload.deploy") && audit_page.contains("deploy recommendation-v1 (1 replica)"));
    console.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let ns = TestNamespace::new("ops").await;
    let console = Console::start(&ns.name).await;
    let health = console.http.get(console.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = console.page("/readyz").await;
    assert!(ready.contains("caches: synced") && ready.contains("database: writable"), "{ready}");
    let _ = console
        .send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), Some(json!({"replicas": 99})))
        .await;
    let metrics = console.page("/metrics").await;
    assert!(metrics.contains(r#"signalbox_changes_total{action="workload.deploy",outcome="failed"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"signalbox_http_requests_total{method="GET",route="/readyz",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("signalbox_http_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("signalbox_cache_age_seconds"), "{metrics}");
    console.stop().await;
}

/// Kiali and Jaeger links are offered as configured while their address answers, and
/// marked "not answering" on every page once nothing answers there.
#[tokio::test]
async fn links_to_a_tool_that_does_not_answer_are_marked_on_every_page() {
    let ns = TestNamespace::new("links").await;
    let answering = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jaeger = format!("http://{}/jaeger", answering.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = answering.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut request = [0u8; 2048];
            let _ = socket.read(&mut request).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 302 Found\r\nlocation: /jaeger/search\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
        }
    });
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kiali = format!("http://{}/kiali", closed.local_addr().unwrap());
    drop(closed);
    let console = Console::start_with(&ns.name, |config| {
        config.kiali_url = Some(kiali.clone());
        config.jaeger_url = Some(jaeger.clone());
    })
    .await;
    console.deploy(&["recommendation-v1"]).await;
    let overview = format!("/ns/{}", ns.name);
    let html = eventually(Duration::from_secs(10), "Kiali marked as not answering", || async {
        let html = console.page(&overview).await;
        html.contains(&format!("Kiali does not answer at <code>{kiali}</code>")).then_some(html)
    })
    .await;
    assert!(html.contains(r#"<body hx-headers="#) && html.contains(r#" class="kiali-silent">"#), "{html}");
    assert!(!html.contains("Jaeger does not answer"), "Jaeger answers (a redirect is an answer)");
    assert!(html.contains(r#"class="button kiali-link""#), "the link stays, marked by the stylesheet");
    let routes = console.page(&format!("/ns/{}/routes/recommendation", ns.name)).await;
    assert!(routes.contains("Kiali does not answer") && routes.contains("jaeger-link"), "{routes}");
    let css = console.page("/static/app.css").await;
    assert!(css.contains(".kiali-silent .kiali-link::after") && css.contains("not answering"), "marked");
    console.stop().await;
}

/// One shell block of README.md or docs/: its variable assignments and its curl commands,
/// each command joined across continuation lines and multi-line quoted bodies, comments
/// dropped. The files are read in the order of `FILES`: the examples of one file use the
/// variables and the state those before left (`$B` of the JSON API, `$R` of the Routing API;
/// the canary starts on the split the propagation example applied).
fn readme_blocks() -> Vec<(Vec<String>, Vec<String>)> {
    const FILES: &[&str] = &[
        "README.md",
        "docs/api.md",
        "docs/gateway-api.md",
        "docs/propagation.md",
        "docs/canary.md",
        "docs/canary-metrics.md",
        "docs/configuration.md",
        "docs/security.md",
        "docs/audit.md",
        "docs/operations.md",
        "docs/namespaces.md",
        "docs/deploy.md",
        "docs/pictures.md",
        "docs/dev-cluster.md",
        "docs/testing.md",
        "docs/architecture.md",
        "docs/README.md",
    ];
    let root = env!("CARGO_MANIFEST_DIR");
    // A new file under docs/ must join the list, so that its examples run too.
    for entry in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let listed = FILES.contains(&format!("docs/{name}").as_str());
        assert!(!name.ends_with(".md") || listed, "docs/{name} is not in readme_blocks' FILES");
    }
    let readme: Vec<String> =
        FILES.iter().map(|file| std::fs::read_to_string(format!("{root}/{file}")).unwrap()).collect();
    let readme = readme.join("\n");
    let mut blocks = Vec::new();
    for block in readme.split("```sh\n").skip(1).map(|rest| rest.split("```").next().unwrap()) {
        let (mut assignments, mut commands) = (Vec::new(), Vec::new());
        let mut lines = block.lines();
        while let Some(line) = lines.next() {
            let line = line.trim();
            if line.len() > 2 && line.as_bytes()[0].is_ascii_uppercase() && line.as_bytes()[1] == b'=' {
                assignments.push(line.to_owned());
            } else if line.starts_with("curl ") {
                let mut command = String::from(line);
                while command.ends_with('\\') || command.matches('\'').count() % 2 == 1 {
                    command.push('\n');
                    command.push_str(lines.next().expect("a command ends"));
                }
                // A trailing comment (after two spaces) is prose, not part of the command.
                let command = match command.rfind("  #").filter(|at| command[*at..].matches('\'').count() == 0) {
                    Some(at) => command[..at].trim_end().to_owned(),
                    None => command,
                };
                commands.push(command);
            }
        }
        if !commands.is_empty() {
            blocks.push((assignments, commands));
        }
    }
    blocks
}

/// Every curl example of README.md and docs/, run as written (only the address and the
/// namespace changed) against a console on the dev cluster: none is refused (401/403, as a
/// body-less POST once was) or fails on the server (5xx).
#[tokio::test]
async fn every_readme_and_docs_curl_example_works_as_written() {
    let ns = TestNamespace::unborn("readme").await;
    // As `make run` starts it: with the dev cluster's istiod.
    let istiod = support::sidecars::istiod_monitoring_url();
    let console = Console::start_with(&ns.name, |config| config.istiod_url = Some(istiod)).await;
    let blocks = readme_blocks();
    assert!(blocks.iter().map(|(_, commands)| commands.len()).sum::<usize>() >= 20, "the examples were found");
    let mut variables: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let mut deployed = false;
    for (assignments, commands) in &blocks {
        variables.extend(assignments.iter().cloned());
        let routes = assignments.iter().chain(commands).any(|line| line.contains("/routes/"));
        if routes && !deployed {
            // The workload examples end with a reset; the routing examples need two versions.
            console.deploy(&["recommendation-v1", "recommendation-v2"]).await;
            deployed = true;
        }
        for command in commands {
            let script = format!("{}\n{command} -o /dev/null -w '%{{http_code}}'", variables.join("\n"))
                .replace("http://127.0.0.1:8080", &console.base)
                .replace("namespaces/tutorial", &format!("namespaces/{}", ns.name));
            let output = tokio::process::Command::new("bash").arg("-c").arg(&script).output().await.unwrap();
            let status: u16 = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap_or(0);
            results.push((command.clone(), status));
        }
    }
    assert!(deployed, "the routing examples were found");
    let broken: Vec<&(String, u16)> =
        results.iter().filter(|(_, status)| matches!(status, 0 | 401 | 403 | 500..=599)).collect();
    assert!(broken.is_empty(), "README and docs examples that do not work: {broken:#?}");
    let promote = results.iter().find(|(command, _)| command.contains("promote?step=0")).unwrap();
    assert_eq!(promote.1, 200, "the body-less promote example promotes: {results:#?}");
    console.stop().await;
}

/// Each applied change is a Kubernetes Event on its object, so `kubectl get events` and
/// `kubectl describe` show who changed it and which audit entry tells more.
#[tokio::test]
async fn applied_changes_are_kubernetes_events_on_their_objects() {
    // The core/v1 view of Events, as `kubectl get events` reads them (the events.k8s.io
    // struct cannot read the controllers' own Events, which have no eventTime).
    use k8s_openapi::api::core::v1::Event;
    let ns = TestNamespace::new("events").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1"]).await;
    let (status, answer) = console
        .send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), Some(json!({"replicas": 2})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let scaled = answer["auditId"].as_i64().unwrap();
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let notes = eventually(Duration::from_secs(10), "two Events on the Deployment", || async {
        let list = events.list(&Default::default()).await.ok()?;
        let notes: Vec<(String, String)> = list
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("recommendation-v1"))
            .filter(|e| e.reporting_component.as_deref() == Some("signalbox"))
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect();
        (notes.len() == 2).then_some(notes)
    })
    .await;
    let scale = notes.iter().find(|(reason, _)| reason == "WorkloadScale").expect("the scale's Event");
    assert!(scale.1.starts_with("signalbox: workload.scale by local:"), "{scale:?}");
    assert!(scale.1.ends_with(&format!("(audit #{scaled})")), "{scale:?}");
    assert!(notes.iter().any(|(reason, _)| reason == "WorkloadDeploy"), "{notes:?}");
    console.stop().await;
}

#[tokio::test]
async fn the_walkthrough_deploys_as_one_previewed_audited_change() {
    let ns = TestNamespace::unborn("walk").await;
    let console = Console::start(&ns.name).await;
    let walkthrough = format!("/ns/{}/deploy/walkthrough", ns.name);

    // The page's button previews first: the dry run's objects, nothing applied, no audit entry.
    let (status, html) = console.post_form(&format!("{walkthrough}/preview"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("dry run accepted"), "{html}");
    for object in ["Namespace", "Deployment customer", "Deployment preference-v1", "Deployment recommendation-v2"] {
        assert!(html.contains(object), "preview lists {object}");
    }
    assert!(deployment(&ns, "customer").await.is_none(), "a preview applies nothing");
    assert!(console.audit().await.is_empty(), "a preview writes no audit entry");

    // Confirming applies all four workloads as one audited change.
    let (status, html) = console.post_form(&walkthrough, &[]).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    for name in ["customer", "preference-v1", "recommendation-v1", "recommendation-v2"] {
        assert!(deployment(&ns, name).await.is_some(), "{name} deployed");
    }
    assert!(deployment(&ns, "recommendation-v3").await.is_none(), "v3 is not part of the walkthrough");
    let audit = console.audit().await;
    assert_eq!(audit.len(), 1, "one audit entry: {audit:?}");
    assert_eq!((audit[0]["action"].as_str(), audit[0]["outcome"].as_str()), (Some("tutorial.deploy"), Some("applied")));
    assert_eq!(audit[0]["source"], "ui");
    let after = audit[0]["after"]["items"].as_array().expect("a List of every object written");
    assert_eq!(after.iter().filter(|o| o["kind"] == "Deployment").count(), 4);

    // The API does the same; again it is one change (nothing new to create, so a redeploy).
    let (status, body) = console.send_json(Method::PUT, &console.api("/tutorial?dryRun=true"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["summary"].as_str().unwrap().contains("recommendation-v2"), "{body}");
    let (status, body) = console.send_json(Method::PUT, &console.api("/tutorial"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["action"], "tutorial.deploy");
    assert_eq!(console.audit().await.len(), 2);
    console.stop().await;
}

/// An entry that applied nothing says so instead of showing a diff that reads as everything
/// deleted (or an empty box); one that did shows its diff.
#[tokio::test]
async fn an_audit_entry_that_applied_nothing_says_so_instead_of_an_empty_or_deleting_diff() {
    let ns = TestNamespace::new("nodiff").await;
    let console = Console::start(&ns.name).await;
    console.deploy(&["recommendation-v1"]).await;
    let scale = console.api("/workloads/recommendation-v1");
    let (status, body) = console.send_json(Method::PUT, &scale, Some(json!({"replicas": 50}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let audit = console.audit().await;
    let failed = audit.iter().find(|e| e["outcome"] == "failed").expect("the refused scale is audited");
    let page = console.page(&format!("/audit/{}", failed["id"])).await;
    assert!(page.contains("Nothing was applied (failed): the objects stayed as they were."), "{page}");
    assert!(!page.contains(r#"id="entry-diff""#), "{page}");
    let applied = audit.iter().find(|e| e["outcome"] == "applied").unwrap();
    let page = console.page(&format!("/audit/{}", applied["id"])).await;
    assert!(page.contains(r#"id="entry-diff""#) && page.contains(r#"<span class="add">+"#), "{page}");
    console.stop().await;
}
