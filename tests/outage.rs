//! An API server outage: pages keep serving the cached state with a banner, changes are
//! refused with 503 and audited as failed. Runs on a private cluster it may stop.
mod support;

use std::time::Duration;

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
    console.stop().await;
}
