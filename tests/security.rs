//! CSRF refusals and identity from untrusted sources, over real HTTP.
mod support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use reqwest::{Method, StatusCode};
use support::TestNamespace;
use support::console::Console;

async fn deployed(ns: &TestNamespace, name: &str) -> bool {
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(name).await.unwrap().is_some()
}

async fn csrf_token(console: &Console) -> String {
    let html = console
        .http
        .get(console.url(&format!("/ns/{}/deploy", console.namespace)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start =
        html.find("name=\"csrf_token\" value=\"").expect("a form with a token") + "name=\"csrf_token\" value=\"".len();
    html[start..start + 64].to_owned()
}

#[tokio::test]
async fn cross_site_and_tokenless_browser_requests_are_refused() {
    let ns = TestNamespace::new("csrf").await;
    let console = Console::start(&ns.name).await;
    let deploy = console.url(&format!("/ns/{}/deploy/recommendation-v2", ns.name));
    let token = csrf_token(&console).await;

    let cross_site = console
        .http
        .post(&deploy)
        .header("origin", "http://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert!(cross_site.text().await.unwrap().contains("cross-site request refused"));

    let same_origin = console.base.clone();
    let htmx_without_token = console
        .http
        .post(&deploy)
        .header("origin", &same_origin)
        .header("sec-fetch-site", "same-origin")
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(htmx_without_token.status(), StatusCode::FORBIDDEN);
    let htmx_bad_token = console
        .http
        .post(&deploy)
        .header("origin", &same_origin)
        .header("hx-request", "true")
        .header("x-csrf-token", "00".repeat(32))
        .send()
        .await
        .unwrap();
    assert_eq!(htmx_bad_token.status(), StatusCode::FORBIDDEN);
    let form_post_without_origin = console.http.post(&deploy).form(&[("replicas", "1")]).send().await.unwrap();
    assert_eq!(form_post_without_origin.status(), StatusCode::FORBIDDEN, "a non-JSON POST needs a browser's token");
    assert!(console.audit().await.is_empty(), "refused requests never reached the change path");
    assert!(!deployed(&ns, "recommendation-v2").await, "refused requests deployed nothing");

    let accepted = console
        .http
        .post(&deploy)
        .header("origin", &same_origin)
        .header("hx-request", "true")
        .header("x-csrf-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK, "{}", accepted.text().await.unwrap());
    assert!(deployed(&ns, "recommendation-v2").await, "the same-origin request with its token deployed");
    let (status, _) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "a non-browser API client needs no token");
    assert!(deployed(&ns, "recommendation-v1").await);
    console.stop().await;
}

#[tokio::test]
async fn forged_identity_from_an_untrusted_address_is_anonymous_and_denied() {
    let ns = TestNamespace::new("forged").await;
    let console =
        Console::start_with(&ns.name, |config| config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let response = console
        .http
        .put(console.api("/workloads/recommendation-v1"))
        .header("x-forwarded-user", "admin@example.com")
        .header("x-forwarded-groups", "platform-admins")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!deployed(&ns, "recommendation-v1").await, "an anonymous request changes nothing");
    let entry = &console.audit().await[0];
    assert_eq!((entry["actor"].as_str(), entry["outcome"].as_str()), (Some("anonymous"), Some("denied")));
    let page =
        console.http.get(console.url(&format!("/ns/{}/deploy", ns.name))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("read-only") && !page.contains(">Deploy</button>"), "anonymous users see no change buttons");
    console.stop().await;
}
