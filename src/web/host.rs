//! DNS rebinding defence: only requests addressed to one of the console's own names are served.
//!
//! A hostile page at `http://attacker.example:8080` can make its name resolve to 127.0.0.1
//! (or a pod IP) after the page has loaded; the browser then sends the page's requests, as
//! same-origin ones, to signalbox, with `Host: attacker.example:8080`. Origin checks and CSRF
//! tokens cannot tell (the page can read the token from any GET). The `Host` header can: it
//! names what the browser thinks it is talking to, so a request for a name that is not one
//! of ours is refused before identity, pages or tokens are looked at.
//!
//! Allowed, with any port: the loopback names (`localhost`, `127.x.x.x`, `[::1]`: only a
//! browser whose page is on loopback sends them), each TCP listener's own address when it is
//! not a wildcard, the pod's IP (`POD_IP`), the Service's names in the pod's namespace
//! (`POD_NAMESPACE`), and every `--allowed-host`. `/healthz` and `/readyz` answer any Host:
//! the kubelet probes with `Host: <pod IP>:<port>`, and they show nothing worth stealing.
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use super::listen::Listen;

/// The Service name the in-cluster defaults are derived from (deploy/base/service.yaml).
const SERVICE_NAME: &str = "signalbox";
/// Paths the kubelet probes; they answer whatever the Host.
const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// The names this console answers to, lowercase, without port or trailing dot.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// `configured` are the `--allowed-host` values; `pod_namespace` and `pod_ip` come from
    /// the downward API (`POD_NAMESPACE`, `POD_IP`) when running in a cluster.
    pub fn new(listen: &[Listen], configured: &[String], pod_namespace: Option<&str>, pod_ip: Option<&str>) -> Self {
        let mut names: Vec<String> = configured.iter().map(|name| normalize(name)).collect();
        for listen in listen {
            if let Listen::Tcp(addr) = listen
                && !addr.ip().is_unspecified()
            {
                names.push(normalize(&authority_of(addr.ip())));
            }
        }
        if let Some(ip) = pod_ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
            names.push(normalize(&authority_of(ip)));
        }
        if let Some(namespace) = pod_namespace.filter(|ns| !ns.is_empty()) {
            names.push(SERVICE_NAME.to_owned());
            for suffix in ["", ".svc", ".svc.cluster.local"] {
                names.push(normalize(&format!("{SERVICE_NAME}.{namespace}{suffix}")));
            }
        }
        names.retain(|name| !name.is_empty());
        names.sort();
        names.dedup();
        Self { names }
    }

    /// From the process environment (`POD_NAMESPACE`, `POD_IP`).
    pub fn from_env(listen: &[Listen], configured: &[String]) -> Self {
        let namespace = std::env::var("POD_NAMESPACE").ok();
        let ip = std::env::var("POD_IP").ok();
        Self::new(listen, configured, namespace.as_deref(), ip.as_deref())
    }

    /// Whether a request with this `Host` (or HTTP/2 authority) is addressed to us.
    pub fn allows(&self, host: &str) -> bool {
        let name = normalize(strip_port(host));
        !name.is_empty() && (is_loopback_name(&name) || self.names.contains(&name))
    }
}

/// Refuses requests addressed to a name that is not ours with 421 and a plain message.
pub async fn guard(State(allowed): State<Arc<AllowedHosts>>, request: Request, next: Next) -> Response {
    if PROBE_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // HTTP/1.1 sends `Host`; an HTTP/2 request may carry only the URI's authority.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|authority| authority.as_str()));
    if host.is_some_and(|host| allowed.allows(host)) {
        return next.run(request).await;
    }
    AppError::MisdirectedRequest(
        "this console does not answer to that host name; open it by one of its own names (see --allowed-host)".into(),
    )
    .into_response()
}

/// `[::1]` stays bracketed, as in a Host header.
fn authority_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|end| &host[..=end]).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(name, _)| name).unwrap_or(host)
}

/// Lowercase, without the DNS root's trailing dot: `Example.COM.` and `example.com` are one name.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" {
        return true;
    }
    let bare = name.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(name);
    // Only dotted quads and bracketed IPv6 count: `127.1` or `2130706433` are not addresses
    // a browser shows, and the standard parser refuses them.
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback() && (name.starts_with('[') || ip.is_ipv4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> AllowedHosts {
        AllowedHosts::new(&["127.0.0.1:8080".parse().unwrap()], &[], None, None)
    }

    #[test]
    fn a_loopback_console_answers_to_loopback_names_with_any_port() {
        let hosts = loopback();
        for host in ["localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1:8080", "127.1.2.3", "[::1]:8080", "[::1]"]
        {
            assert!(hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn other_names_are_refused() {
        let hosts = loopback();
        for host in [
            "attacker.example:8080",
            "attacker.example",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "",
            ":8080",
            "[::2]:80",
            "10.0.0.1:8080",
            "::1",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn configured_names_are_allowed_case_insensitively() {
        let hosts =
            AllowedHosts::new(&["127.0.0.1:8080".parse().unwrap()], &["Console.Example.com".into()], None, None);
        assert!(hosts.allows("console.example.com"));
        assert!(hosts.allows("console.example.com.:443"));
        assert!(!hosts.allows("evil.console.example.com"));
    }

    #[test]
    fn in_cluster_defaults_are_the_service_names_the_listener_and_the_pod_ip() {
        let hosts = AllowedHosts::new(&["0.0.0.0:8080".parse().unwrap()], &[], Some("signalbox"), Some("10.1.2.3"));
        for host in [
            "signalbox",
            "signalbox.signalbox",
            "signalbox.signalbox.svc:80",
            "signalbox.signalbox.svc.cluster.local",
            "10.1.2.3:8080",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        assert!(!hosts.allows("0.0.0.0:8080"), "a wildcard listener is not a name");
        assert!(!hosts.allows("signalbox.other.svc"));
        let specific = AllowedHosts::new(&["192.0.2.7:8080".parse().unwrap()], &[], None, None);
        assert!(specific.allows("192.0.2.7:8080"));
    }
}
