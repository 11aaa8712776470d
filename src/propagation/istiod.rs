//! istiod's sync status over HTTP: `GET <monitoring>/debug/syncz?namespace=<ns>`.
//!
//! istiod answers it on its monitoring port (15014) to any caller on loopback; from
//! elsewhere only to callers that authenticate like a proxy (a ServiceAccount token for the
//! `istio-ca` audience, sent as a bearer token: [`TOKEN_FILE`]) and whose namespace is
//! istiod's own or listed in its `DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES` (docs/deploy.md).
//! That port is plain HTTP, so the token goes only to an istiod off this machine, which
//! needs it. istiod's TLS port (15012) offers the same status only as an xDS debug request
//! over gRPC, which signalbox has no client for (docs/security.md, "istiod's token travels in
//! plaintext").
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::status::{ProxySync, Snapshot, XdsState};

/// How long one sync-status read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read (a few hundred bytes per proxy).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// Where deploy/base mounts a projected ServiceAccount token for the `istio-ca` audience;
/// re-read on every request, since the kubelet rotates it.
pub const TOKEN_FILE: &str = "/var/run/signalbox/tokens/istio-token";

const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// Why istiod's sync status could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("istiod at {url} is unreachable: {reason}")]
pub struct IstiodUnreachable {
    pub url: String,
    pub reason: String,
}

/// istiod's monitoring endpoint, e.g. `http://istiod.istio-system:15014`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Istiod {
    base: String,
    http: reqwest::Client,
    /// Whether the `istio-ca` token goes along: not to a loopback istiod, which answers
    /// without one, so the token crosses no network it need not (istiod's monitoring port
    /// is plain HTTP).
    sends_token: bool,
}

/// One element of `/debug/syncz` (pilot/pkg/xds/debug.go `SyncStatus`), the fields used.
#[derive(Debug, Deserialize)]
struct SyncStatus {
    #[serde(rename = "proxy", default)]
    id: String,
    #[serde(default)]
    proxy_type: String,
    #[serde(default)]
    resources: BTreeMap<String, ResourceStatus>,
}

#[derive(Debug, Default, Deserialize)]
struct ResourceStatus {
    #[serde(default)]
    sent: String,
    #[serde(default)]
    acked: String,
    #[serde(rename = "lastError", default)]
    last_error: String,
}

impl Istiod {
    /// A client for istiod's monitoring endpoint at `base_url` (plain http, as istiod serves it).
    pub fn new(base_url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(base_url).map_err(|e| format!("invalid istiod URL {base_url:?}: {e}"))?;
        if url.scheme() != "http" || url.host_str().is_none_or(str::is_empty) {
            return Err(format!("invalid istiod URL {base_url:?}: use http://host:port"));
        }
        let http = reqwest::Client::builder()
            .timeout(READ_TIMEOUT)
            .connect_timeout(READ_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let sends_token = !is_loopback(&url);
        Ok(Self { base: base_url.trim_end_matches('/').to_owned(), http, sends_token })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// The sidecars of `namespace` connected to istiod, with their RDS and CDS state.
    pub async fn snapshot(&self, namespace: &str) -> Result<Snapshot, IstiodUnreachable> {
        self.syncz(&[("namespace", namespace)]).await
    }

    /// The sidecars of every namespace connected to istiod, by namespace: one read for a
    /// list of many namespaces.
    pub async fn snapshots(&self) -> Result<BTreeMap<String, Snapshot>, IstiodUnreachable> {
        let all = self.syncz(&[]).await?;
        let mut by_namespace: BTreeMap<String, Snapshot> = BTreeMap::new();
        for (id, proxy) in all {
            let namespace = proxy.name.rsplit_once('.').map(|(_, ns)| ns.to_owned()).unwrap_or_default();
            by_namespace.entry(namespace).or_default().insert(id, proxy);
        }
        Ok(by_namespace)
    }

    /// `/debug/syncz` with `query`, read as sync status.
    async fn syncz(&self, query: &[(&str, &str)]) -> Result<Snapshot, IstiodUnreachable> {
        let body = self.read("/debug/syncz", query).await?;
        parse_syncz(&body).map_err(|e| self.unreachable(format!("/debug/syncz is not sync status: {e}")))
    }

    /// The route configurations istiod sends the proxy `<pod>.<namespace>` now, as Envoy JSON
    /// (`/debug/config_dump?types=rds`: what it would push, without the rest of the dump).
    pub async fn route_configurations(&self, proxy: &str) -> Result<Vec<serde_json::Value>, IstiodUnreachable> {
        let body = self.read("/debug/config_dump", &[("proxyID", proxy), ("types", "rds")]).await?;
        let dump: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| self.unreachable(format!("/debug/config_dump is not a config dump: {e}")))?;
        let configs = dump["configs"].as_array().cloned().unwrap_or_default();
        Ok(configs.into_iter().filter(|config| config["@type"] == ROUTE_TYPE).collect())
    }

    /// One bounded GET of a debug endpoint (with the `istio-ca` token when it is not on loopback).
    async fn read(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<u8>, IstiodUnreachable> {
        let mut request = self.http.get(format!("{}{path}", self.base)).query(query);
        if self.sends_token
            && let Ok(token) = tokio::fs::read_to_string(TOKEN_FILE).await
        {
            request = request.bearer_auth(token.trim());
        }
        let response = request.send().await.map_err(|e| self.unreachable(e.without_url().to_string()))?;
        if !response.status().is_success() {
            let status = response.status();
            let said = response.text().await.unwrap_or_default();
            let said: String = said.trim().chars().take(200).collect();
            return Err(self.unreachable(format!("{path} answered {status}: {said}")));
        }
        if response.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
            return Err(self.unreachable(format!("{path} answered more than 16 MiB")));
        }
        let body = response.bytes().await.map_err(|e| self.unreachable(e.without_url().to_string()))?;
        Ok(body.to_vec())
    }

    fn unreachable(&self, reason: String) -> IstiodUnreachable {
        IstiodUnreachable { url: self.base.clone(), reason }
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// istiod's sync status as a snapshot of the sidecars it lists.
fn parse_syncz(body: &[u8]) -> Result<Snapshot, serde_json::Error> {
    let statuses: Vec<SyncStatus> = serde_json::from_slice(body)?;
    Ok(statuses
        .into_iter()
        .filter(|status| status.proxy_type == "sidecar")
        .map(|mut status| {
            let proxy = ProxySync {
                name: proxy_name(&status.id),
                routes: xds_state(status.resources.remove(ROUTE_TYPE)),
                clusters: xds_state(status.resources.remove(CLUSTER_TYPE)),
            };
            (status.id, proxy)
        })
        .collect())
}

/// `sidecar~10.0.0.5~customer-6f7.tutorial~tutorial.svc.cluster.local` -> `customer-6f7.tutorial`.
fn proxy_name(id: &str) -> String {
    id.split('~').nth(2).unwrap_or(id).to_owned()
}

fn xds_state(status: Option<ResourceStatus>) -> XdsState {
    let status = status.unwrap_or_default();
    let text = |s: String| (!s.is_empty()).then_some(s);
    XdsState { sent: text(status.sent), acked: text(status.acked), error: text(status.last_error) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_an_istiod_off_this_machine() {
        for local in ["http://127.0.0.1:15014", "http://localhost:15014", "http://[::1]:15014", "http://127.3.2.1"] {
            assert!(!Istiod::new(local).unwrap().sends_token, "{local}");
        }
        for remote in ["http://istiod.istio-system.svc:15014", "http://10.0.0.5:15014", "http://localhost.example"] {
            assert!(Istiod::new(remote).unwrap().sends_token, "{remote}");
        }
    }

    #[test]
    fn syncz_becomes_a_snapshot_of_sidecars() {
        let body = br#"[
          {"cluster_id":"Kubernetes","proxy":"sidecar~10.244.0.5~customer-1.tutorial~tutorial.svc.cluster.local",
           "proxy_type":"sidecar","route_sent":"n2","route_acked":"n1",
           "resources":{
             "type.googleapis.com/envoy.config.route.v3.RouteConfiguration":{"sent":"n2","acked":"n1","sentTime":"2026-11-30T10:00:00Z","lastError":"bad"},
             "type.googleapis.com/envoy.config.cluster.v3.Cluster":{"sent":"c1","acked":"c1","sentTime":"2026-11-30T10:00:00Z"}}},
          {"proxy":"router~10.0.0.1~gw.istio-system~istio-system.svc.cluster.local","proxy_type":"router","resources":{}}
        ]"#;
        let snapshot = parse_syncz(body).unwrap();
        assert_eq!(snapshot.len(), 1);
        let proxy = snapshot.values().next().unwrap();
        assert_eq!(proxy.name, "customer-1.tutorial");
        assert_eq!(proxy.routes.sent.as_deref(), Some("n2"));
        assert_eq!(proxy.routes.error.as_deref(), Some("bad"));
        assert_eq!(proxy.clusters.acked.as_deref(), Some("c1"));
        assert!(parse_syncz(b"<html>").is_err());
    }
}
