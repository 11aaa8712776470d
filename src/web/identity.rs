//! Identity only from trusted sources: the login proxy's headers when the peer is a trusted
//! proxy, the local OS user on a loopback console without a proxy, anonymous otherwise.
//!
//! A trusted proxy is a network (`--trusted-proxy 10.0.0.0/8`) or the console's Unix
//! sockets (`--trusted-proxy unix`). Trusting loopback would trust `kubectl port-forward`
//! and every process in the pod's network namespace; a Unix socket is reachable only by
//! processes that can open its file, so behind a sidecar proxy the socket is the one peer
//! that can only be the proxy.
use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use crate::authz::{Actor, GROUP_SEPARATOR};
use crate::problem::FieldProblem;

use super::error::AppError;
use super::listen::{Listen, Peer};

const USER_HEADER: &str = "x-forwarded-user";
const GROUPS_HEADER: &str = "x-forwarded-groups";
/// The longest user or group name.
const MAX_NAME_LENGTH: usize = 256;
/// The longest groups header: room for a user in many groups, not for a flood.
const MAX_GROUPS_LENGTH: usize = 8 * 1024;
const MAX_GROUPS: usize = 256;

/// One `--trusted-proxy` value: a network, or `unix` for whoever connects over the
/// console's Unix sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustedProxy {
    Network(IpNet),
    UnixSocket,
}

impl TrustedProxy {
    fn covers(&self, peer: Peer) -> bool {
        match (self, peer) {
            (TrustedProxy::Network(net), Peer::Tcp(addr)) => net.contains(&addr.ip()),
            (TrustedProxy::UnixSocket, Peer::Unix) => true,
            _ => false,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "unix" {
            return Ok(TrustedProxy::UnixSocket);
        }
        text.parse()
            .map(TrustedProxy::Network)
            .map_err(|_| format!("{text:?}: expected a CIDR such as 10.0.0.0/8, or unix"))
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustedProxy::Network(net) => net.fmt(f),
            TrustedProxy::UnixSocket => f.write_str("unix"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    trusted_proxies: Vec<TrustedProxy>,
    /// Set when no proxy is trusted and only this machine can connect (loopback addresses
    /// and Unix sockets).
    local_user: Option<String>,
}

impl IdentityPolicy {
    pub fn new(trusted_proxies: Vec<TrustedProxy>, listen: &[Listen]) -> Self {
        let local_only = listen.iter().all(Listen::is_local);
        let local_user = (trusted_proxies.is_empty() && local_only).then(|| format!("local:{}", whoami::username()));
        Self { trusted_proxies, local_user }
    }

    /// What in this configuration trusts more, or less, than it probably means to: logged
    /// at startup.
    pub fn cautions(trusted_proxies: &[TrustedProxy], listen: &[Listen]) -> Vec<String> {
        let mut cautions = Vec::new();
        let localhost: [IpAddr; 2] = [Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
        let loopback = |net: &IpNet| localhost.iter().any(|ip| net.contains(ip));
        if let Some(net) = trusted_proxies.iter().find_map(|proxy| match proxy {
            TrustedProxy::Network(net) if loopback(net) => Some(net),
            _ => None,
        }) {
            cautions.push(format!(
                "--trusted-proxy {net} trusts loopback: `kubectl port-forward` and any local process may then send \
                 X-Forwarded-User; put the proxy on a Unix socket (--listen unix:PATH --trusted-proxy unix) instead"
            ));
        }
        let unix_listener = listen.iter().any(|listen| matches!(listen, Listen::Unix(_)));
        if trusted_proxies.contains(&TrustedProxy::UnixSocket) && !unix_listener {
            cautions.push("--trusted-proxy unix without a --listen unix:PATH: no peer can be that proxy".to_owned());
        }
        cautions
    }

    /// Who sent a request that arrived from `peer` with these headers. A trusted proxy's
    /// headers that cannot be taken as they are (repeated, too long, a reserved name) are
    /// refused rather than read in part: a guessed identity is worse than none.
    pub fn resolve(&self, peer: Option<Peer>, headers: &HeaderMap) -> Result<Actor, FieldProblem> {
        let from_trusted_proxy = peer.is_some_and(|peer| self.trusted_proxies.iter().any(|proxy| proxy.covers(peer)));
        if from_trusted_proxy {
            return match single_value(headers, USER_HEADER)?.map(str::trim).filter(|user| !user.is_empty()) {
                Some(user) => Ok(Actor::user(user_name(user)?, groups(single_value(headers, GROUPS_HEADER)?)?)),
                None => Ok(Actor::anonymous()),
            };
        }
        Ok(match (&self.local_user, peer) {
            (Some(user), Some(peer)) if peer.is_local() => Actor::user(user.clone(), Vec::new()),
            _ => Actor::anonymous(),
        })
    }
}

fn problem(header: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem::new(header, message)
}

/// The header's one value; a second copy is refused, since proxies and clients disagree on
/// which one counts.
fn single_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, FieldProblem> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(problem(name, format!("{name} was sent more than once")));
    }
    std::str::from_utf8(value.as_bytes()).map(Some).map_err(|_| problem(name, format!("{name} is not UTF-8")))
}

/// A user name from the proxy; signalbox's own actor names are not the proxy's to give.
fn user_name(user: &str) -> Result<String, FieldProblem> {
    check_name(USER_HEADER, user)?;
    let lower = user.to_ascii_lowercase();
    if lower == "anonymous" || lower.starts_with("system:") || lower.starts_with("local:") {
        return Err(problem(USER_HEADER, format!("the user name {user:?} is reserved for signalbox's own actors")));
    }
    Ok(user.to_owned())
}

/// Group names as the proxy sends them: separated by commas, each trimmed, empty ones skipped.
fn groups(header: Option<&str>) -> Result<Vec<String>, FieldProblem> {
    let Some(list) = header else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_GROUPS_LENGTH {
        return Err(problem(GROUPS_HEADER, format!("{GROUPS_HEADER} is longer than {MAX_GROUPS_LENGTH} bytes")));
    }
    let groups: Vec<String> =
        list.split(GROUP_SEPARATOR).map(str::trim).filter(|g| !g.is_empty()).map(String::from).collect();
    if groups.len() > MAX_GROUPS {
        return Err(problem(GROUPS_HEADER, format!("more than {MAX_GROUPS} groups")));
    }
    for group in &groups {
        check_name(GROUPS_HEADER, group)?;
    }
    Ok(groups)
}

fn check_name(header: &str, name: &str) -> Result<(), FieldProblem> {
    if name.len() > MAX_NAME_LENGTH {
        return Err(problem(header, format!("a name in {header} is longer than {MAX_NAME_LENGTH} bytes")));
    }
    if name.chars().any(char::is_control) {
        return Err(problem(header, format!("a name in {header} contains control characters")));
    }
    Ok(())
}

/// Resolves the actor once per request and keeps it in the request's extensions; a trusted
/// proxy's unusable identity headers get 400.
pub async fn guard(State(identity): State<Arc<IdentityPolicy>>, mut request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<Peer>>().map(|info| info.0);
    match identity.resolve(peer, request.headers()) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(problem) => AppError::BadRequest(vec![problem]).into_response(),
    }
}

/// The actor behind the current request.
pub struct Identity(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Identity
where
    Arc<IdentityPolicy>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Identity(actor_of(parts, &Arc::<IdentityPolicy>::from_ref(state))))
    }
}

/// The actor [`guard`] resolved; outside it (the error pages, which also render the guard's
/// own 400) resolved here, anonymous when the headers are refused.
pub fn actor_of(parts: &Parts, identity: &IdentityPolicy) -> Actor {
    if let Some(actor) = parts.extensions.get::<Actor>() {
        return actor.clone();
    }
    let peer = parts.extensions.get::<ConnectInfo<Peer>>().map(|info| info.0);
    identity.resolve(peer, &parts.headers).unwrap_or_else(|_| Actor::anonymous())
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

    fn ip(text: &str) -> Option<Peer> {
        Some(Peer::Tcp(std::net::SocketAddr::new(text.parse().unwrap(), 40000)))
    }

    fn listen(values: &[&str]) -> Vec<Listen> {
        values.iter().map(|value| value.parse().unwrap()).collect()
    }

    fn behind_proxy() -> IdentityPolicy {
        IdentityPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], &listen(&["0.0.0.0:8080"]))
    }

    fn refused_header(headers: &HeaderMap) -> String {
        behind_proxy().resolve(ip("10.1.2.3"), headers).expect_err("refused").field
    }

    #[test]
    fn a_trusted_proxy_asserts_user_and_groups() {
        let actor = behind_proxy().resolve(ip("10.1.2.3"), &headers("alice@example.com", "team-reco, admins")).unwrap();
        assert_eq!(actor, Actor::user("alice@example.com", vec!["team-reco".into(), "admins".into()]));
    }

    #[test]
    fn forged_headers_from_elsewhere_are_anonymous() {
        let policy = behind_proxy();
        assert_eq!(policy.resolve(ip("192.0.2.7"), &headers("admin", "admins")), Ok(Actor::anonymous()));
        assert_eq!(policy.resolve(ip("127.0.0.1"), &headers("admin", "admins")), Ok(Actor::anonymous()));
        let mut repeated = headers("admin", "admins");
        repeated.append(USER_HEADER, "root".parse().unwrap());
        assert_eq!(policy.resolve(ip("192.0.2.7"), &repeated), Ok(Actor::anonymous()), "not the proxy's: ignored");
    }

    #[test]
    fn repeated_identity_headers_are_refused() {
        let mut user_twice = headers("alice", "team-reco");
        user_twice.append(USER_HEADER, "admin".parse().unwrap());
        assert_eq!(refused_header(&user_twice), USER_HEADER);
        let mut groups_twice = headers("alice", "team-reco");
        groups_twice.append(GROUPS_HEADER, "platform-admins".parse().unwrap());
        assert_eq!(refused_header(&groups_twice), GROUPS_HEADER);
    }

    #[test]
    fn a_user_in_many_groups_keeps_them_all() {
        let many: Vec<String> = (0..200).map(|i| format!("group-with-a-long-name-{i:03}")).collect();
        let actor = behind_proxy().resolve(ip("10.1.2.3"), &headers("alice", &many.join(","))).unwrap();
        assert_eq!(actor.groups, many);
    }

    #[test]
    fn too_many_or_too_long_groups_are_refused_not_dropped() {
        let too_many: Vec<String> = (0..=MAX_GROUPS).map(|i| format!("g{i}")).collect();
        assert_eq!(refused_header(&headers("alice", &too_many.join(","))), GROUPS_HEADER);
        assert_eq!(refused_header(&headers("alice", &"g".repeat(MAX_NAME_LENGTH + 1))), GROUPS_HEADER);
        let huge: Vec<String> = (0..40).map(|i| format!("{i}{}", "g".repeat(250))).collect();
        assert_eq!(refused_header(&headers("alice", &huge.join(","))), GROUPS_HEADER);
        assert_eq!(refused_header(&headers(&"u".repeat(MAX_NAME_LENGTH + 1), "")), USER_HEADER);
    }

    #[test]
    fn signalbox_own_actor_names_are_refused_from_the_proxy() {
        for name in ["anonymous", "Anonymous", "system:signalbox", "SYSTEM:x", "local:root"] {
            assert_eq!(refused_header(&headers(name, "")), USER_HEADER, "{name}");
        }
        assert!(behind_proxy().resolve(ip("10.1.2.3"), &headers("systemd:x", "")).is_ok());
    }

    #[test]
    fn an_empty_user_from_the_proxy_is_anonymous() {
        assert_eq!(behind_proxy().resolve(ip("10.1.2.3"), &headers("", "admins")), Ok(Actor::anonymous()));
    }

    #[test]
    fn a_loopback_console_without_proxy_acts_as_the_local_user() {
        let policy = IdentityPolicy::new(vec![], &listen(&["127.0.0.1:8080"]));
        let actor = policy.resolve(ip("127.0.0.1"), &headers("admin", "")).unwrap();
        assert!(actor.authenticated);
        assert!(actor.name.starts_with("local:"), "{}", actor.name);
    }

    #[test]
    fn a_public_listener_without_proxy_is_read_only() {
        let policy = IdentityPolicy::new(vec![], &listen(&["0.0.0.0:8080"]));
        assert_eq!(policy.resolve(ip("127.0.0.1"), &HeaderMap::new()), Ok(Actor::anonymous()));
    }

    #[test]
    fn a_proxy_on_the_unix_socket_is_trusted_and_loopback_is_not() {
        let policy = IdentityPolicy::new(
            vec![TrustedProxy::UnixSocket],
            &listen(&["unix:/run/signalbox/sock", "127.0.0.1:8080"]),
        );
        let alice = Actor::user("alice", vec!["team-reco".into()]);
        assert_eq!(policy.resolve(Some(Peer::Unix), &headers("alice", "team-reco")), Ok(alice));
        // kubectl port-forward arrives from loopback: not the proxy, and no local user either.
        assert_eq!(policy.resolve(ip("127.0.0.1"), &headers("alice", "team-reco")), Ok(Actor::anonymous()));
        assert_eq!(policy.resolve(ip("127.0.0.1"), &HeaderMap::new()), Ok(Actor::anonymous()));
    }

    #[test]
    fn the_unix_socket_is_trusted_only_when_configured() {
        let networks = IdentityPolicy::new(vec!["10.0.0.0/8".parse().unwrap()], &listen(&["unix:/s", "0.0.0.0:8080"]));
        assert_eq!(networks.resolve(Some(Peer::Unix), &headers("alice", "")), Ok(Actor::anonymous()));
        // Without a proxy, a console reachable only locally acts as the local user there too.
        let local = IdentityPolicy::new(vec![], &listen(&["unix:/s"]));
        assert!(local.resolve(Some(Peer::Unix), &headers("admin", "")).unwrap().name.starts_with("local:"));
        let public = IdentityPolicy::new(vec![], &listen(&["unix:/s", "0.0.0.0:8080"]));
        assert_eq!(public.resolve(Some(Peer::Unix), &HeaderMap::new()), Ok(Actor::anonymous()));
    }

    #[test]
    fn trusted_proxy_values_are_networks_or_unix() {
        assert_eq!("unix".parse(), Ok(TrustedProxy::UnixSocket));
        assert_eq!("10.0.0.0/8".parse(), Ok(TrustedProxy::Network("10.0.0.0/8".parse().unwrap())));
        assert!("10.0.0.1".parse::<TrustedProxy>().is_err(), "a network needs its prefix length");
        assert!("unix:/s".parse::<TrustedProxy>().is_err());
    }

    #[test]
    fn trusting_loopback_or_an_absent_socket_is_cautioned() {
        let cautions = |trusted: &[&str], listening: &[&str]| {
            let trusted: Vec<TrustedProxy> = trusted.iter().map(|value| value.parse().unwrap()).collect();
            IdentityPolicy::cautions(&trusted, &listen(listening))
        };
        assert!(cautions(&["127.0.0.1/32"], &["127.0.0.1:8080"])[0].contains("kubectl port-forward"));
        assert!(cautions(&["::1/128"], &["[::1]:8080"])[0].contains("kubectl port-forward"));
        assert!(cautions(&["unix"], &["127.0.0.1:8080"])[0].contains("no peer can be that proxy"));
        assert!(cautions(&["unix", "10.0.0.0/8"], &["unix:/s", "0.0.0.0:8080"]).is_empty());
        assert!(cautions(&[], &["127.0.0.1:8080"]).is_empty());
    }
}
