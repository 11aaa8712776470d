//! Who is asking, and what they may do.
pub mod policies;
mod teams;
mod view;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::managed::ManagedNamespaces;

pub use teams::{GROUP_SEPARATOR, Members, Team, Teams};
pub use view::{ViewScope, VisibleObjects};

/// The person (or pipeline) behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `alice@example.com` from the trusted proxy, `local:<user>` on a loopback console,
    /// or `anonymous`.
    pub name: String,
    pub groups: Vec<String>,
    /// False for anonymous requests, which may only read.
    pub authenticated: bool,
    /// signalbox itself, acting on a plan a permitted person set up (canary auto-advance).
    /// Never set from a request, so no header can claim it.
    #[serde(skip)]
    pub system: bool,
}

impl Actor {
    pub fn anonymous() -> Self {
        Self { name: "anonymous".into(), groups: Vec::new(), authenticated: false, system: false }
    }

    pub fn user(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self { name: name.into(), groups, authenticated: true, system: false }
    }

    /// signalbox itself (startup reconciliation, automatic canary analysis).
    pub fn system() -> Self {
        Self { system: true, ..Self::user("system:signalbox", Vec::new()) }
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    View,
    Deploy,
    Route,
    Canary,
    Admin,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("sign in to make changes: this request carries no trusted identity")]
    Unauthenticated,
    #[error("{actor} may not {permission:?} in namespace {namespace}")]
    Forbidden { actor: String, permission: Permission, namespace: String },
    #[error("namespace {0} is not managed by this console")]
    Unmanaged(String),
    /// A field of the change sends traffic somewhere the actor may not route.
    #[error("{actor} may not send traffic to {target}, as {field} would")]
    Reaches { actor: String, field: String, target: String },
    /// One operation of the change writes an object the actor may not: another host's, or
    /// the namespace's.
    #[error("{actor} may not {action}: {reason}")]
    Operation { actor: String, action: String, reason: String },
}

/// Decides who may do what where: the team file when there is one, else every
/// authenticated user may do everything in the managed namespaces.
#[derive(Debug, Clone)]
pub struct Authorizer {
    managed: ManagedNamespaces,
    teams: Option<Arc<RwLock<Teams>>>,
}

impl Authorizer {
    /// Every authenticated user may do everything in the managed namespaces.
    pub fn open(managed: impl Into<ManagedNamespaces>) -> Self {
        Self { managed: managed.into(), teams: None }
    }

    /// Permissions from a team file, reloaded when it changes (a ConfigMap mount swaps it).
    pub fn with_team_file(managed: impl Into<ManagedNamespaces>, path: &Path) -> anyhow::Result<Self> {
        let teams = Arc::new(RwLock::new(Teams::load(path)?));
        spawn_reloader(path.to_owned(), teams.clone());
        Ok(Self { managed: managed.into(), teams: Some(teams) })
    }

    /// Permissions from a fixed set of teams (tests, embedding).
    pub fn with_teams(managed: impl Into<ManagedNamespaces>, teams: Teams) -> Self {
        Self { managed: managed.into(), teams: Some(Arc::new(RwLock::new(teams))) }
    }

    pub fn is_managed(&self, namespace: &str) -> bool {
        self.managed.contains(namespace)
    }

    /// The managed namespaces now (they follow a selector's labels live).
    pub fn managed_namespaces(&self) -> Arc<Vec<String>> {
        self.managed.names()
    }

    /// Why `namespace` is not managed, for a 404.
    pub fn why_unmanaged(&self, namespace: &str) -> String {
        self.managed.why_not(namespace)
    }

    /// True when no team file restricts anyone (the header says so).
    pub fn is_open(&self) -> bool {
        self.teams.is_none()
    }

    /// May `actor` take an action needing `permission` in `namespace`, on `host` when the
    /// action concerns one host (None: namespace-wide)?
    pub fn check(
        &self,
        actor: &Actor,
        permission: Permission,
        namespace: &str,
        host: Option<&str>,
    ) -> Result<(), Denial> {
        if !self.is_managed(namespace) {
            return Err(Denial::Unmanaged(namespace.to_owned()));
        }
        let granted = match &self.teams {
            _ if actor.system => true,
            None => permission == Permission::View || actor.authenticated,
            Some(teams) => teams.read().unwrap_or_else(|e| e.into_inner()).grants(actor, permission, namespace, host),
        };
        match (granted, actor.authenticated) {
            (true, _) => Ok(()),
            (false, false) => Err(Denial::Unauthenticated),
            (false, true) => {
                Err(Denial::Forbidden { actor: actor.name.clone(), permission, namespace: namespace.to_owned() })
            }
        }
    }

    /// What the actor may view. Without a team file: every managed namespace, to anyone
    /// (anonymous included, as documented); with one: what the actor's teams grant, decided
    /// as [`Self::check`] does, among the actor's own teams only (a team file for a thousand
    /// namespaces is a thousand teams, and a page asks for every namespace).
    pub fn view_scope(&self, actor: &Actor) -> ViewScope {
        let Some(teams) = &self.teams else {
            return ViewScope::unrestricted(&self.managed.names());
        };
        let mine = teams.read().unwrap_or_else(|e| e.into_inner()).of(actor);
        let sees =
            |namespace: &str, host: Option<&str>| actor.system || mine.grants(actor, Permission::View, namespace, host);
        let mut scope = ViewScope::default();
        for namespace in self.managed.names().iter() {
            if sees(namespace, None) {
                scope.push_whole(namespace);
                continue;
            }
            let named = mine.hosts_named_for(actor, namespace);
            scope.push_hosts(namespace, named.into_iter().filter(|host| sees(namespace, Some(host))).collect());
        }
        scope
    }

    /// Whether the team file holds `namespace`'s changes for a second person's approval.
    pub fn approval_required(&self, namespace: &str) -> bool {
        let Some(teams) = self.teams.as_ref() else { return false };
        policies::approval_required(&teams.read().unwrap_or_else(|e| e.into_inner()).policies, namespace)
    }

    /// The change freeze in force over `namespace` at `at` (from the team file), if any.
    pub fn freeze(&self, namespace: &str, at: jiff::Timestamp) -> Option<policies::Freeze> {
        let teams = self.teams.as_ref()?.read().unwrap_or_else(|e| e.into_inner());
        policies::freeze_at(&teams.policies, namespace, at).cloned()
    }

    /// Whether the actor may take the action; pages use it to show only allowed buttons.
    pub fn allows(&self, actor: &Actor, permission: Permission, namespace: &str, host: Option<&str>) -> bool {
        self.check(actor, permission, namespace, host).is_ok()
    }
}

const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

fn spawn_reloader(path: PathBuf, teams: Arc<RwLock<Teams>>) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut last: Option<SystemTime> = modified(&path);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RELOAD_INTERVAL).await;
            let now = modified(&path);
            if now == last {
                continue;
            }
            last = now;
            match Teams::load(&path) {
                Ok(reloaded) => {
                    tracing::info!(path = %path.display(), teams = reloaded.teams.len(), "reloaded the team file");
                    *teams.write().unwrap_or_else(|e| e.into_inner()) = reloaded;
                }
                // A half-written or broken file keeps the last good permissions.
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "team file not reloaded")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_users_may_only_view() {
        let authz = Authorizer::open(vec!["tutorial".into()]);
        assert!(authz.allows(&Actor::anonymous(), Permission::View, "tutorial", None));
        assert_eq!(
            authz.check(&Actor::anonymous(), Permission::Deploy, "tutorial", None),
            Err(Denial::Unauthenticated)
        );
        assert!(authz.allows(&Actor::user("alice", vec![]), Permission::Route, "tutorial", Some("recommendation")));
    }

    #[test]
    fn with_teams_other_teams_are_forbidden_and_anonymous_unauthenticated() {
        let teams: Teams = serde_yaml_ng::from_str(
            "teams: [{name: reco, members: {users: [alice]}, namespaces: [tutorial], hosts: [recommendation], actions: [canary]}]",
        )
        .unwrap();
        let authz = Authorizer::with_teams(vec!["tutorial".into()], teams);
        assert!(!authz.is_open());
        assert!(authz.allows(&Actor::user("alice", vec![]), Permission::Canary, "tutorial", Some("recommendation")));
        assert!(matches!(
            authz.check(&Actor::user("bob", vec![]), Permission::Canary, "tutorial", Some("recommendation")),
            Err(Denial::Forbidden { .. })
        ));
        assert_eq!(authz.check(&Actor::anonymous(), Permission::View, "tutorial", None), Err(Denial::Unauthenticated));
        // signalbox's own auto-advance acts in managed namespaces; a user of that name does not.
        assert!(authz.allows(&Actor::system(), Permission::Canary, "tutorial", Some("recommendation")));
        assert!(!authz.allows(&Actor::user("system:signalbox", vec![]), Permission::Canary, "tutorial", None));
        assert!(!authz.allows(&Actor::system(), Permission::Canary, "kube-system", None));
    }

    #[test]
    fn the_view_scope_follows_the_teams() {
        let teams: Teams = serde_yaml_ng::from_str(
            "teams: [{name: reco, members: {users: [alice]}, namespaces: [tutorial], hosts: [recommendation], actions: [canary]},
                     {name: shop, members: {users: [bob]}, namespaces: ['*'], actions: [view]}]",
        )
        .unwrap();
        let authz = Authorizer::with_teams(vec!["tutorial".into(), "shop".into()], teams);
        let alice = authz.view_scope(&Actor::user("alice", vec![]));
        assert_eq!(alice.namespaces(), ["tutorial"]);
        assert!(alice.host("tutorial", "recommendation") && !alice.host("tutorial", "preference"));
        let bob = authz.view_scope(&Actor::user("bob", vec![]));
        assert!(bob.everything(&["tutorial".into(), "shop".into()]));
        assert!(authz.view_scope(&Actor::anonymous()).is_empty());
        assert!(authz.view_scope(&Actor::user("mallory", vec![])).is_empty());
        let open = Authorizer::open(vec!["tutorial".into()]);
        assert!(
            open.view_scope(&Actor::anonymous()).whole_namespace("tutorial"),
            "documented: open consoles are readable"
        );
    }

    #[test]
    fn unmanaged_namespaces_are_refused_to_everyone() {
        let authz = Authorizer::open(vec!["tutorial".into()]);
        assert_eq!(
            authz.check(&Actor::user("alice", vec![]), Permission::View, "kube-system", None),
            Err(Denial::Unmanaged("kube-system".into()))
        );
    }
}
