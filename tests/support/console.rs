//! An in-process signalbox for one test: its own port, SQLite file and managed namespace.
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use signalbox::app::{self, Server};
use signalbox::config::ServeConfig;

use super::kubeconfig_path;

pub struct Console {
    pub server: Server,
    pub base: String,
    pub http: reqwest::Client,
    pub namespace: String,
    pub database: std::path::PathBuf,
    /// `(user, groups)` the JSON helpers send as the trusted proxy would: with a team file,
    /// anonymous requests see nothing.
    pub viewer: Option<(String, String)>,
    _dir: tempfile::TempDir,
    _teams_dir: Option<tempfile::TempDir>,
}

pub fn config(namespace: &str, database: std::path::PathBuf) -> ServeConfig {
    ServeConfig {
        kiali_url: Some("http://kiali.example:20001/kiali".into()),
        jaeger_url: Some("http://jaeger.example/jaeger".into()),
        ..ServeConfig::local(kubeconfig_path(), vec![namespace.to_owned()], database)
    }
}

impl Console {
    /// Starts signalbox managing `namespace`, as the local user, and waits until it is ready.
    pub async fn start(namespace: &str) -> Self {
        Self::start_with(namespace, |_| {}).await
    }

    pub async fn start_with(namespace: &str, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("audit.db");
        let mut config = config(namespace, database);
        adjust(&mut config);
        let database = config.database.clone();
        let server = app::start(config).await.expect("signalbox starts");
        let base = format!("http://{}", server.addr());
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let console = Self {
            server,
            base,
            http,
            namespace: namespace.to_owned(),
            database,
            viewer: None,
            _dir: dir,
            _teams_dir: None,
        };
        console.wait_ready().await;
        console
    }

    /// Starts signalbox behind a trusted proxy (127.0.0.1) with `teams` (YAML, `{ns}` for the
    /// namespace) as its team file; the JSON helpers read as `viewer` (user, groups), since
    /// with a team file anonymous requests see nothing.
    pub async fn start_with_teams(namespace: &str, teams: &str, viewer: (&str, &str)) -> Self {
        Self::start_with_teams_and(namespace, teams, viewer, |_| {}).await
    }

    pub async fn start_with_teams_and(
        namespace: &str,
        teams: &str,
        viewer: (&str, &str),
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("teams.yaml");
        std::fs::write(&file, teams.replace("{ns}", namespace)).unwrap();
        let mut console = Self::start_with(namespace, |config| {
            config.teams = Some(file);
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            adjust(config);
        })
        .await;
        console.viewer = Some((viewer.0.to_owned(), viewer.1.to_owned()));
        console._teams_dir = Some(dir);
        console
    }

    /// Starts signalbox with the team file at `teams` (which a test may rewrite: it is
    /// reloaded within seconds), behind a trusted proxy on 127.0.0.1; [`Self::send_as`]
    /// sends as a user of it.
    pub async fn start_with_team_file(namespace: &str, teams: &std::path::Path) -> Self {
        let teams = teams.to_owned();
        Self::start_with(namespace, |config| {
            config.teams = Some(teams);
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await
    }

    /// Sends JSON to `path` as `user` (name, groups) through the trusted proxy: status and body.
    pub async fn send_as(
        &self,
        user: (&str, &str),
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let request = self.http.request(method, self.url(path)).json(&body);
        let request = request.header("x-forwarded-user", user.0).header("x-forwarded-groups", user.1);
        let response = request.send().await.expect("request");
        (response.status(), response.json().await.unwrap_or(Value::Null))
    }

    pub async fn wait_ready(&self) {
        super::wait_until_ready(&self.http, &self.base).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        self.url(&format!("/api/v1/namespaces/{}{path}", self.namespace))
    }

    /// Sends JSON like a non-browser client; returns status and body.
    pub async fn send_json(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, url);
        if let Some((user, groups)) = &self.viewer {
            request = request.header("x-forwarded-user", user).header("x-forwarded-groups", groups);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get_json_owned(&self, url: String) -> (StatusCode, Value) {
        self.get_json(&url).await
    }

    pub async fn get_json(&self, url: &str) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::GET, url, None).await
    }

    /// The audit entries of changes made outside signalbox, newest first.
    pub async fn external_entries(&self) -> Vec<Value> {
        self.audit().await.into_iter().filter(|e| e["source"] == "external").collect()
    }

    /// Every audit entry, newest first (following the pages).
    pub async fn audit(&self) -> Vec<Value> {
        let mut entries = Vec::new();
        let mut url = self.url("/api/v1/audit?limit=1000");
        loop {
            let (status, body) = self.get_json(&url).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            entries.extend(body["entries"].as_array().cloned().unwrap_or_default());
            match body["next"].as_i64() {
                Some(before) => url = self.url(&format!("/api/v1/audit?limit=1000&before={before}")),
                None => return entries,
            }
        }
    }

    /// Deploys tutorial workloads through the API, in order; each must succeed.
    pub async fn deploy(&self, workloads: &[&str]) {
        for workload in workloads {
            let (status, body) =
                self.send_json(reqwest::Method::PUT, &self.api(&format!("/workloads/{workload}")), None).await;
            assert_eq!(status, StatusCode::OK, "deploying {workload}: {body}");
        }
    }

    /// Deploys `workloads` as `user` (name, groups) through the trusted proxy.
    pub async fn deploy_as(&self, user: (&str, &str), workloads: &[&str]) {
        for workload in workloads {
            let path = format!("/api/v1/namespaces/{}/workloads/{workload}", self.namespace);
            let (status, body) =
                self.send_as(user, reqwest::Method::PUT, &path, Value::Object(Default::default())).await;
            assert_eq!(status, StatusCode::OK, "deploying {workload} as {}: {body}", user.0);
        }
    }

    /// A page's HTML, as a browser without JavaScript gets it.
    pub async fn page(&self, path: &str) -> String {
        self.http.get(self.url(path)).send().await.expect("page").text().await.expect("page body")
    }

    /// A GET as `user` (name, groups; None: anonymous) through the trusted proxy: status
    /// and body.
    pub async fn get_as(&self, user: Option<(&str, &str)>, path: &str) -> (StatusCode, String) {
        let mut request = self.http.get(self.url(path));
        if let Some((name, groups)) = user {
            request = request.header("x-forwarded-user", name).header("x-forwarded-groups", groups);
        }
        let response = request.send().await.expect("request");
        (response.status(), response.text().await.unwrap_or_default())
    }

    /// The CSRF token the pages give this console's (local) user.
    pub async fn csrf_token(&self) -> String {
        let html = self.http.get(self.url(&format!("/ns/{}/deploy", self.namespace))).send().await.unwrap();
        let html = html.text().await.unwrap();
        let marker = "name=\"csrf_token\" value=\"";
        let start = html.find(marker).expect("a form with a token") + marker.len();
        html[start..start + 64].to_owned()
    }

    /// Posts a page's form as the browser does (same origin, with the CSRF token); returns
    /// status and HTML.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let token = self.csrf_token().await;
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        let response = self
            .http
            .post(self.url(path))
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .header("accept", "text/html")
            .form(&form)
            .send()
            .await
            .expect("form post");
        (response.status(), response.text().await.unwrap_or_default())
    }

    pub async fn stop(self) {
        self.server.shutdown().await.expect("clean shutdown");
    }
}
