//! CSRF refusals and identity from untrusted sources, over real HTTP.
use crate::support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use reqwest::{Method, StatusCode};
use support::TestNamespace;
use support::console::Console;

async fn deployed(ns: &TestNamespace, name: &str) -> bool {
    Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get_opt(name).await.unwrap().is_some()
}

async fn csrf_token(console: &Console) -> String {
    let html = console.page(&format!("/ns/{}/deploy", console.namespace)).await;
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
    let page = console.page(&format!("/ns/{}/deploy", ns.name)).await;
    assert!(page.contains("read-only") && !page.contains(">Deploy</button>"), "anonymous users see no change buttons");
    console.stop().await;
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    let deployment = Api::<Deployment>::namespaced(ns.client.clone(), &ns.name).get(name).await.unwrap();
    deployment.spec.and_then(|spec| spec.replicas)
}

/// DNS rebinding: a page at attacker.example whose name now resolves to 127.0.0.1 sends its
/// requests with `Host: attacker.example:8080`; they get a plain 421 and nothing else.
#[tokio::test]
async fn requests_for_a_host_name_that_is_not_the_consoles_are_refused_with_421() {
    let ns = TestNamespace::new("rebind").await;
    let console = Console::start(&ns.name).await;
    let (status, body) = console.send_json(Method::PUT, &console.api("/workloads/recommendation-v1"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attacker = "attacker.example:8080";

    let page = console
        .http
        .get(console.url(&format!("/ns/{}/deploy", ns.name)))
        .header("host", attacker)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = page.text().await.unwrap();
    assert!(
        !text.contains("csrf") && !text.contains("hx-headers") && !text.contains('<'),
        "nothing but a message: {text}"
    );

    // Even with the actor's token (say, read before the rebinding), the write is refused.
    let token = console.server.state.csrf.token_for(&format!("local:{}", whoami::username()));
    let scale = console
        .http
        .put(console.api("/workloads/recommendation-v1"))
        .header("host", attacker)
        .header("origin", format!("http://{attacker}"))
        .header("x-csrf-token", token)
        .json(&serde_json::json!({"replicas": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(scale.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(replicas(&ns, "recommendation-v1").await, Some(1), "the Deployment is unchanged");

    // The console's own names are served, and the kubelet's probes answer whatever the Host.
    let port = console.server.addr().port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "127.0.0.1".into()] {
        let response = console.http.get(console.api("/workloads")).header("host", &host).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    for probe in ["/healthz", "/readyz"] {
        let response = console.http.get(console.url(probe)).header("host", "10.1.2.3:8080").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{probe}");
    }
    console.stop().await;
}

/// An `--allowed-host` name is served besides the loopback names.
#[tokio::test]
async fn an_allowed_host_name_is_served() {
    let console =
        Console::start_with("allowed-host", |config| config.allowed_hosts = vec!["signalbox.example.com".into()]).await;
    let served = console.http.get(console.url("/audit")).header("host", "signalbox.example.com").send().await.unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    let refused = console.http.get(console.url("/audit")).header("host", "other.example.com").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
    console.stop().await;
}

/// docs/canary.md's `curl -s -X POST "$C/promote?step=0"`: no body, no Content-Type, no Origin.
#[tokio::test]
async fn a_bodyless_post_without_origin_is_accepted_and_a_typed_one_is_not() {
    let ns = TestNamespace::new("bodyless").await;
    let console = Console::start(&ns.name).await;
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/workloads/{workload}")), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let policy = serde_json::json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                                    "rules": [{"route": {"version-v1": 100}}]});
    let (status, body) = console.send_json(Method::PUT, &console.api("/routes/recommendation"), Some(policy)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let canary = console.api("/canaries/recommendation");
    let start = serde_json::json!({"stable": "version-v1", "canary": "version-v2", "steps": [10, 50, 100]});
    let (status, body) = console.send_json(Method::POST, &canary, Some(start)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let promote = format!("{canary}/promote?step=0");
    let text_plain = console.http.post(&promote).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(text_plain.status(), StatusCode::FORBIDDEN, "a cross-site form can send text/plain");
    let form = console.http.post(&promote).form(&[("step", "0")]).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    let undeclared = console.http.post(&promote).header("content-length", "0").send().await.unwrap();
    assert_eq!(undeclared.status(), StatusCode::OK, "{}", undeclared.text().await.unwrap());
    let (status, state) = console.get_json(&canary).await;
    assert_eq!((status, state["step"].as_u64()), (StatusCode::OK, Some(1)), "promoted exactly once: {state}");
    let bare = console.http.post(format!("{canary}/pause")).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::OK, "{}", bare.text().await.unwrap());
    console.stop().await;
}

/// Identity headers from a trusted proxy are taken as sent, or refused: never guessed.
#[tokio::test]
async fn a_trusted_proxys_identity_headers_are_taken_whole_or_refused() {
    let ns = TestNamespace::new("identity").await;
    let console =
        Console::start_with(&ns.name, |config| config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let url = console.api("/workloads/recommendation-v1");
    let put = |headers: Vec<(&'static str, String)>| {
        let mut request = console.http.put(&url).json(&serde_json::json!({}));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let refusals = [
        vec![("x-forwarded-user", "alice".to_owned()), ("x-forwarded-user", "admin".to_owned())],
        vec![
            ("x-forwarded-user", "alice".to_owned()),
            ("x-forwarded-groups", "team-reco".to_owned()),
            ("x-forwarded-groups", "platform-admins".to_owned()),
        ],
        vec![("x-forwarded-user", "system:signalbox".to_owned())],
        vec![("x-forwarded-user", "local:root".to_owned())],
        vec![("x-forwarded-user", "anonymous".to_owned())],
        vec![("x-forwarded-user", "alice".to_owned()), ("x-forwarded-groups", "g,".repeat(5000))],
    ];
    for headers in refusals {
        let response = put(headers.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["field"].as_str().is_some_and(|f| f.starts_with("x-forwarded-")), "{body}");
    }
    assert!(!deployed(&ns, "recommendation-v1").await, "refused identities changed nothing");
    assert!(console.audit().await.is_empty());

    let groups: Vec<String> = (0..200).map(|i| format!("team-with-a-rather-long-name-{i:03}")).collect();
    let response =
        put(vec![("x-forwarded-user", "alice@example.com".into()), ("x-forwarded-groups", groups.join(","))])
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let entry = &console.audit().await[0];
    assert_eq!(entry["actor"], "alice@example.com");
    assert_eq!(entry["groups"].as_array().map(Vec::len), Some(200), "every group kept");
    console.stop().await;
}

/// Refused attempts are audited, but cannot fill the disk: each keeps an excerpt of what it
/// asked for, and beyond a rate they are answered 429 and not recorded.
#[tokio::test]
async fn refused_attempts_keep_an_excerpt_and_are_rate_limited() {
    let ns = TestNamespace::new("flood").await;
    // Nobody is a trusted proxy's peer: every request is anonymous, and so denied.
    let console =
        Console::start_with(&ns.name, |config| config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let policy = serde_json::json!({"subsets": {"version-v1": {"version": "v1"}}, "rules": [
        {"match": [{"headers": {"x-padding": {"exact": "p".repeat(200 * 1024)}}}], "route": {"version-v1": 100}},
        {"route": {"version-v1": 100}}]});
    let mut denied = 0;
    let retry_after = loop {
        let response = console.http.put(console.api("/routes/recommendation")).json(&policy).send().await.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => denied += 1,
            StatusCode::TOO_MANY_REQUESTS => break response.headers()["retry-after"].to_str().unwrap().to_owned(),
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
        assert!(denied <= 100, "still recording refusals after 100 of them");
    };
    assert!(retry_after.parse::<u64>().is_ok_and(|seconds| seconds >= 1), "Retry-After: {retry_after}");
    let audit = console.audit().await;
    assert_eq!(audit.len(), denied, "the refusals beyond the limit are not recorded");
    for entry in &audit {
        assert_eq!(entry["outcome"], "denied");
        let recorded = entry["operations"].to_string().len() + entry["summary"].to_string().len();
        assert!(recorded <= 10 * 1024, "a refused attempt keeps an excerpt, not {recorded} bytes");
    }
    console.stop().await;
}

fn entries(body: &str) -> Vec<serde_json::Value> {
    let list: serde_json::Value = serde_json::from_str(body).unwrap();
    list["entries"].as_array().cloned().unwrap_or_default()
}

/// With a team file, every page, partial and API answer holds only what the actor may
/// view: a host-limited team sees its host, a namespace team its namespace, anonymous
/// visitors only the sign-in hint (and the probes).
#[tokio::test]
async fn with_teams_each_actor_sees_only_what_it_may_view() {
    let (ns, other) = (TestNamespace::new("view").await, TestNamespace::new("view-other").await);
    let teams = format!(
        "teams:
  - {{name: reco, members: {{users: [alice]}}, namespaces: [{ns}], hosts: [recommendation], actions: [route, canary]}}
  - {{name: other, members: {{users: [dave]}}, namespaces: [{other}], actions: [view]}}
  - {{name: platform, members: {{groups: [admins]}}, namespaces: ['*'], actions: [admin]}}
",
        ns = ns.name,
        other = other.name
    );
    let console = Console::start_with_teams_and(&ns.name, &teams, ("carol", "admins"), |config| {
        config.namespaces.push(other.name.clone())
    })
    .await;
    console.deploy(&["recommendation-v1", "preference"]).await;
    let route = |version: &str| serde_json::json!({"subsets": {"version-v1": {"version": version}}, "rules": [{"route": {"version-v1": 100}}]});
    for host in ["recommendation", "preference"] {
        let (status, body) =
            console.send_json(Method::PUT, &console.api(&format!("/routes/{host}")), Some(route("v1"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = console
        .send_json(Method::PUT, &console.url(&format!("/api/v1/namespaces/{}/workloads/customer", other.name)), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = console.audit().await;
    let preference_entry = all.iter().find(|e| e["name"] == "preference").unwrap()["id"].as_i64().unwrap();
    let reco_entry = all.iter().find(|e| e["name"] == "recommendation").unwrap()["id"].as_i64().unwrap();
    let (ns_name, other_name) = (ns.name.as_str(), other.name.as_str());

    // Anonymous: the sign-in hint, nothing of the namespaces; the probes still answer.
    for path in [
        "/".to_owned(),
        format!("/ns/{ns_name}"),
        format!("/ns/{ns_name}/routes/recommendation"),
        "/audit".into(),
        "/partials/audit".into(),
        "/partials/banner".into(),
        "/metrics".into(),
        "/api/v1/audit".into(),
        "/api/v1/audit/export?format=ndjson".into(),
        "/api/v1/audit/verify".into(),
        format!("/api/v1/audit/{reco_entry}"),
        format!("/api/v1/namespaces/{ns_name}/workloads"),
    ] {
        let (status, body) = console.get_as(None, &path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(body.contains("Sign in"), "{path}: {body}");
        assert!(!body.contains(ns_name) && !body.contains(other_name), "{path} names a namespace: {body}");
    }
    for path in ["/healthz", "/readyz", "/static/app.css"] {
        assert_eq!(console.get_as(None, path).await.0, StatusCode::OK, "{path}");
    }

    // alice (recommendation only): her host, not preference, the namespace object or the other namespace.
    let alice = Some(("alice", ""));
    let (status, overview) = console.get_as(alice, &format!("/ns/{ns_name}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(overview.contains("routes/recommendation") && !overview.contains("routes/preference"), "{overview}");
    assert!(!overview.contains(&format!("/ns/{other_name}")), "no link to a namespace she may not view");
    let (_, deploy) = console.get_as(alice, &format!("/ns/{ns_name}/deploy")).await;
    assert!(deploy.contains("workload-recommendation-v1") && !deploy.contains("workload-preference"));
    let (_, workloads) = console.get_as(alice, &format!("/api/v1/namespaces/{ns_name}/workloads")).await;
    assert!(workloads.contains("recommendation-v1") && !workloads.contains("preference"), "{workloads}");
    for path in [
        format!("/ns/{other_name}"),
        format!("/ns/{ns_name}/routes/preference"),
        format!("/api/v1/namespaces/{ns_name}/routes/preference"),
        format!("/ns/{ns_name}/canaries/preference"),
        "/api/v1/audit/verify".into(),
    ] {
        assert_eq!(console.get_as(alice, &path).await.0, StatusCode::FORBIDDEN, "{path}");
    }
    let tester = console
        .http
        .post(console.api("/routes/preference/test"))
        .header("x-forwarded-user", "alice")
        .json(&serde_json::json!({"path": "/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(tester.status(), StatusCode::FORBIDDEN, "the route tester reads the policy too");
    // What is decided before the change path authorizes (a canary's state, the preview of
    // the live routing) says nothing about a host she may not view.
    let promote = console
        .http
        .post(console.api("/canaries/preference/promote"))
        .header("x-forwarded-user", "alice")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(promote.status(), StatusCode::FORBIDDEN);
    let refusal = promote.text().await.unwrap();
    assert!(refusal.contains("may not view host preference") && !refusal.contains("no canary"), "{refusal}");
    let token = console.server.state.csrf.token_for("alice");
    let preview = console
        .http
        .post(console.url(&format!("/ns/{ns_name}/routes/preference/preview")))
        .header("x-forwarded-user", "alice")
        .header("origin", &console.base)
        .header("sec-fetch-site", "same-origin")
        .form(&[("csrf_token", token.as_str()), ("action", "all"), ("subset", "version-v1")])
        .send()
        .await
        .unwrap();
    assert_eq!(preview.status(), StatusCode::FORBIDDEN, "a preview shows the live routing: a read");
    let (status, list) = console.get_as(alice, "/api/v1/audit?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = entries(&list).iter().map(|e| format!("{}/{}", e["namespace"], e["name"])).collect();
    assert!(!names.is_empty() && names.iter().all(|n| n.contains("recommendation")), "{names:?}");
    assert!(names.iter().all(|n| n.contains(ns_name)), "{names:?}");
    let (_, export) = console.get_as(alice, "/api/v1/audit/export?format=ndjson").await;
    assert_eq!(export.lines().count(), names.len(), "the export holds what the list holds");
    assert!(!export.contains("preference") && !export.contains(other_name), "{export}");
    for path in [format!("/api/v1/audit/{preference_entry}"), format!("/audit/{preference_entry}")] {
        assert_eq!(console.get_as(alice, &path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(console.get_as(alice, &format!("/audit/{reco_entry}")).await.0, StatusCode::OK);
    let (_, history) = console.get_as(alice, "/audit").await;
    assert!(!history.contains("chain-state"), "the whole log's verdict is not hers to see");
    assert!(history.contains(&format!("href=\"/audit/{reco_entry}\"")), "{history}");
    assert!(!history.contains(&format!("href=\"/audit/{preference_entry}\"")), "{history}");
    let notice = format!("/ns/{ns_name}/routes/recommendation?change={preference_entry}");
    let (_, page) = console.get_as(alice, &notice).await;
    assert!(!page.contains(&format!("Change #{preference_entry}")), "?change= names only visible entries");

    // dave (the other namespace, whole): its entries only; not the first namespace.
    let dave = Some(("dave", ""));
    assert_eq!(console.get_as(dave, &format!("/ns/{ns_name}")).await.0, StatusCode::FORBIDDEN);
    let (status, list) = console.get_as(dave, "/api/v1/audit?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
    let namespaces: Vec<_> = entries(&list).iter().map(|e| e["namespace"].as_str().unwrap().to_owned()).collect();
    assert!(!namespaces.is_empty() && namespaces.iter().all(|n| n == other_name), "{namespaces:?}");
    assert!(console.get_as(dave, "/").await.1.contains(other_name));

    // A signed-in user of no team sees nothing; the platform admin everything.
    let (status, body) = console.get_as(Some(("erin", "")), "/").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(entries(&console.get_as(Some(("erin", "")), "/api/v1/audit").await.1).is_empty());
    let admin = Some(("carol", "admins"));
    assert_eq!(console.get_as(admin, "/api/v1/audit/verify").await.0, StatusCode::OK);
    assert!(console.get_as(admin, "/audit").await.1.contains("chain-state"));
    let (_, list) = console.get_as(admin, "/api/v1/audit?limit=1000").await;
    let every = entries(&list);
    let since: Vec<_> = every[..every.len() - all.len()]
        .iter()
        .map(|e| (e["actor"].as_str(), e["action"].as_str(), e["outcome"].as_str()))
        .collect();
    assert_eq!(since, [(Some("alice"), Some("canary.promote"), Some("denied"))], "every entry, her refusal too");

    // The namespaces list: what each may view, counted over what they may view.
    let listed = |user: Option<(&'static str, &'static str)>| {
        let console = &console;
        async move {
            let (status, body) = console.get_as(user, "/api/v1/namespaces").await;
            let names: Vec<(String, u64, u64)> = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|list| list["namespaces"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .map(|n| {
                    (
                        n["name"].as_str().unwrap().to_owned(),
                        n["services"].as_u64().unwrap(),
                        n["routedHosts"].as_u64().unwrap(),
                    )
                })
                .collect();
            (status, names)
        }
    };
    let (status, admin) = listed(Some(("carol", "admins"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin, [(ns_name.to_owned(), 2, 2), (other_name.to_owned(), 1, 0)]);
    assert_eq!(listed(Some(("alice", ""))).await.1, [(ns_name.to_owned(), 1, 1)], "her host only");
    assert_eq!(listed(Some(("dave", ""))).await.1, [(other_name.to_owned(), 1, 0)]);
    assert_eq!(listed(None).await.0, StatusCode::UNAUTHORIZED);
    console.stop().await;
}

/// The attackers choose their `X-Request-Id`: anonymous and signed-in clients send a 50 KB
/// one (and other ids no log should hold) with changes that are refused, hence audited. No
/// audit entry may store more than 64 bytes of request id, and the response's
/// `x-request-id` must be the id the audit entry holds; a normal id is kept as sent.
#[tokio::test]
async fn a_client_chosen_request_id_is_kept_only_when_short_and_visible() {
    let ns = TestNamespace::new("requestid").await;
    let teams = "teams:
  - {name: reco, members: {users: [alice]}, namespaces: [{ns}], hosts: [recommendation], actions: [route]}
  - {name: platform, members: {groups: [admins]}, namespaces: ['*'], actions: [admin]}
";
    let console = Console::start_with_teams(&ns.name, teams, ("carol", "admins")).await;
    let long = "r".repeat(50 * 1024);
    let attempts = [
        (None, Method::DELETE, long.clone(), StatusCode::UNAUTHORIZED),
        (None, Method::PUT, long.clone(), StatusCode::UNAUTHORIZED),
        (Some("alice"), Method::DELETE, long.clone(), StatusCode::FORBIDDEN),
        (Some("alice"), Method::PUT, long.clone(), StatusCode::FORBIDDEN),
        (Some("alice"), Method::PUT, "a".repeat(65), StatusCode::FORBIDDEN),
        (Some("alice"), Method::PUT, "two words".into(), StatusCode::FORBIDDEN),
        (None, Method::DELETE, "ünïcode".into(), StatusCode::UNAUTHORIZED),
        (Some("alice"), Method::DELETE, "trace-0001".into(), StatusCode::FORBIDDEN),
        (None, Method::PUT, "b".repeat(64), StatusCode::UNAUTHORIZED),
    ];
    let kept = |id: &[u8]| (1..=64).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b));
    let mut answered = Vec::new();
    for (user, method, id, expected) in &attempts {
        let mut request = console
            .http
            .request(method.clone(), console.api("/workloads/recommendation-v1"))
            .header("x-request-id", id.as_bytes());
        if let Some(user) = user {
            request = request.header("x-forwarded-user", *user);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), *expected, "{user:?} {method} with a {}-byte id", id.len());
        let ids: Vec<&[u8]> = response.headers().get_all("x-request-id").iter().map(|v| v.as_bytes()).collect();
        assert_eq!(ids.len(), 1, "one x-request-id, not {}", ids.len());
        assert!(
            kept(ids[0]),
            "the response's x-request-id is {} bytes: {}",
            ids[0].len(),
            String::from_utf8_lossy(ids[0])
        );
        let answer = String::from_utf8_lossy(ids[0]).into_owned();
        assert_eq!(&answer == id, kept(id.as_bytes()), "a client id is kept exactly when it is acceptable: {answer}");
        answered.push(answer);
    }
    let audit = console.audit().await;
    assert!(!audit.is_empty());
    for entry in &audit {
        let id = entry["request_id"].as_str().unwrap_or_default();
        assert!(id.len() <= 64, "the audit log stored a {}-byte request id", id.len());
    }
    let mut recorded: Vec<String> =
        audit.iter().rev().filter_map(|e| e["request_id"].as_str().map(String::from)).collect();
    recorded.retain(|id| answered.contains(id));
    assert_eq!(recorded, answered, "each refusal's entry holds the id its response gave, in order");
    console.stop().await;
}

/// The attacker sends 50 requests with made-up, 10 KB method names (to pages, the API, the
/// metrics and paths that do not exist). Each must be 405 before any work, and `/metrics`
/// must neither hold such a name nor grow by more than a few hundred bytes.
#[tokio::test]
async fn made_up_methods_are_refused_and_never_become_metric_labels() {
    let ns = TestNamespace::new("methods").await;
    let console = Console::start(&ns.name).await;
    let metrics = || async {
        let response = console.http.get(console.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    };
    metrics().await;
    let before = metrics().await;
    let mut state = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut letter = move || {
        // xorshift: enough randomness for names nobody would guess
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        b'A' + (state % 26) as u8
    };
    let paths = ["/", "/metrics", "/api/v1/audit", "/no/such/page", "/static/app.css"];
    let mut sent = Vec::new();
    for attempt in 0..50 {
        let name: Vec<u8> = (0..10 * 1024).map(|_| letter()).collect();
        let method = Method::from_bytes(&name).unwrap();
        let path = paths[attempt % paths.len()];
        let response = console.http.request(method, console.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert!(response.headers().get("allow").is_some_and(|allow| allow.to_str().unwrap().contains("GET")));
        sent.push(String::from_utf8(name).unwrap());
    }
    let after = metrics().await;
    let grown = after.len().saturating_sub(before.len());
    assert!(grown <= 400, "/metrics grew by {grown} bytes:\n{after}");
    for name in &sent {
        assert!(!after.contains(&name[..32]), "a made-up method became a label");
    }
    assert!(after.contains(r#"method="other""#), "refused methods are counted as other:\n{after}");
    console.stop().await;
}
