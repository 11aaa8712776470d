//! An API server outage: pages keep serving the cached state with a banner, changes are
//! refused with 503 and audited as failed; when the API server returns, everything recovers
//! within 10 s. Runs on a private cluster it may stop.
use crate::support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use reqwest::{Method, StatusCode};
use support::console::Console;
use support::eventually;
use support::private_cluster::PrivateCluster;

#[tokio::test]
async fn with_the_api_server_down_pages_serve_the_cache_and_changes_fail_audited() {
    let cluster = tokio::task::spawn_blocking(|| PrivateCluster::start(26443)).await.unwrap();
    let kubeconfig = cluster.kubeconfig();
    let console = Console::start_with("outage", |config| config.kubeconfig = Some(kubeconfig)).await;
    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let overview = console.url("/ns/outage");
    eventually(Duration::from_secs(30), "recommendation-v1 ready on the overview", || async {
        let html = console.http.get(&overview).send().await.ok()?.text().await.ok()?;
        html.contains("1/1").then_some(())
    })
    .await;

    cluster.stop_apiserver();
    let page = eventually(Duration::from_secs(10), "the unreachable banner", || async {
        let html = console.http.get(&overview).send().await.ok()?.text().await.ok()?;
        html.contains("Cluster unreachable since").then_some(html)
    })
    .await;
    assert!(page.contains("recommendation") && page.contains("1/1"), "the cached state is still shown");

    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v2"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unreachable"), "{body}");
    let latest = &console.audit().await[0];
    assert_eq!((latest["action"].as_str(), latest["outcome"].as_str()), (Some("workload.deploy"), Some("failed")));
    assert!(latest["error"].as_str().unwrap().contains("unreachable"), "{latest}");

    // The API server returns: within 10 s the banner is gone, the caches have resynced
    // (the overview shows what the cluster holds) and changes go through again.
    cluster.start_apiserver();
    let admin = private_client(&cluster).await;
    eventually(Duration::from_secs(60), "the API server answering again", || async {
        Api::<Namespace>::all(admin.clone()).list(&ListParams::default().limit(1)).await.ok()
    })
    .await;
    let returned = Instant::now();
    eventually(Duration::from_secs(10), "a change applied after the API server returned", || async {
        let (status, _) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v2"), None).await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    // recommendation's row in the services table lists the new version.
    let v2_listed = regex::Regex::new(r"<strong>recommendation</strong></td><td>[^\n]*>v2 <small>").unwrap();
    eventually(Duration::from_secs(10), "the overview resynced, without the banner", || async {
        let html = console.http.get(&overview).send().await.ok()?.text().await.ok()?;
        (!html.contains("Cluster unreachable since") && v2_listed.is_match(&html)).then_some(())
    })
    .await;
    let recovery = returned.elapsed();
    assert!(recovery <= Duration::from_secs(10), "recovered {recovery:?} after the API server returned");
    println!("outage: recovered {recovery:?} after the API server returned");
    console.stop().await;
}

async fn private_client(cluster: &PrivateCluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
    kube::Client::try_from(config).unwrap()
}
