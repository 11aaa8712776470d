//! Identity only from trusted sources: the login proxy's headers when the peer is a trusted
//! proxy, the local OS user on a loopback console without a proxy, anonymous otherwise.
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::authz::Actor;

use super::state::AppState;

const USER_HEADER: &str = "x-forwarded-user";
const GROUPS_HEADER: &str = "x-forwarded-groups";
const MAX_IDENTITY_LENGTH: usize = 256;

#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    trusted_proxies: Vec<IpNet>,
    /// Set when no proxy is trusted and the console listens on loopback only.
    local_user: Option<String>,
}

impl IdentityPolicy {
    pub fn new(trusted_proxies: Vec<IpNet>, listen: SocketAddr) -> Self {
        let local_user =
            (trusted_proxies.is_empty() && listen.ip().is_loopback()).then(|| format!("local:{}", whoami::username()));
        Self { trusted_proxies, local_user }
    }

    /// Who sent a request that arrived from `peer` with these headers.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Actor {
        let from_trusted_proxy = peer.is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(&ip)));
        if from_trusted_proxy {
            return match header_text(headers, USER_HEADER) {
                Some(user) => Actor::user(user, groups(headers)),
                None => Actor::anonymous(),
            };
        }
        match (&self.local_user, peer) {
            (Some(user), Some(ip)) if ip.is_loopback() => Actor::user(user.clone(), Vec::new()),
            _ => Actor::anonymous(),
        }
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    let acceptable = !value.is_empty() && value.len() <= MAX_IDENTITY_LENGTH && value.chars().all(|c| !c.is_control());
    acceptable.then(|| value.to_owned())
}

fn groups(headers: &HeaderMap) -> Vec<String> {
    header_text(headers, GROUPS_HEADER)
        .map(|list| list.split(',').map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect())
        .unwrap_or_default()
}

/// The actor behind the current request.
pub struct Identity(pub Actor);

impl FromRequestParts<AppState> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Identity(actor_of(parts, state)))
    }
}

pub fn actor_of(parts: &Parts, state: &AppState) -> Actor {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    state.identity.resolve(peer, &parts.headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(user: &str, groups: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(USER_HEADER, user.parse().unwrap());
        headers.insert(GROUPS_HEADER, groups.parse().unwrap());
        headers
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_trusted_proxy_asserts_user_and_groups() {
        let policy = IdentityPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], "0.0.0.0:8080".parse().unwrap());
        let actor = policy.resolve(ip("10.1.2.3"), &headers("alice@example.com", "team-reco, admins"));
        assert_eq!(actor, Actor::user("alice@example.com", vec!["team-reco".into(), "admins".into()]));
    }

    #[test]
    fn forged_headers_from_elsewhere_are_anonymous() {
        let policy = IdentityPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], "0.0.0.0:8080".parse().unwrap());
        assert_eq!(policy.resolve(ip("192.0.2.7"), &headers("admin", "admins")), Actor::anonymous());
        assert_eq!(policy.resolve(ip("127.0.0.1"), &headers("admin", "admins")), Actor::anonymous());
    }

    #[test]
    fn a_loopback_console_without_proxy_acts_as_the_local_user() {
        let policy = IdentityPolicy::new(vec![], "127.0.0.1:8080".parse().unwrap());
        let actor = policy.resolve(ip("127.0.0.1"), &headers("admin", ""));
        assert!(actor.authenticated);
        assert!(actor.name.starts_with("local:"), "{}", actor.name);
    }

    #[test]
    fn a_public_listener_without_proxy_is_read_only() {
        let policy = IdentityPolicy::new(vec![], "0.0.0.0:8080".parse().unwrap());
        assert_eq!(policy.resolve(ip("127.0.0.1"), &HeaderMap::new()), Actor::anonymous());
    }
}
