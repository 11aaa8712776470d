//! Who is asking, and what they may do.
use serde::Serialize;

/// The person (or pipeline) behind a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `alice@example.com` from the trusted proxy, `local:<user>` on a loopback console,
    /// or `anonymous`.
    pub name: String,
    pub groups: Vec<String>,
    /// False for anonymous requests, which may only read.
    pub authenticated: bool,
}

impl Actor {
    pub fn anonymous() -> Self {
        Self { name: "anonymous".into(), groups: Vec::new(), authenticated: false }
    }

    pub fn user(name: impl Into<String>, groups: Vec<String>) -> Self {
        Self { name: name.into(), groups, authenticated: true }
    }

    /// signalbox itself (startup reconciliation, automatic canary analysis).
    pub fn system() -> Self {
        Self::user("system:signalbox", Vec::new())
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
}

/// Decides who may do what where.
#[derive(Debug, Clone)]
pub struct Authorizer {
    managed_namespaces: Vec<String>,
}

impl Authorizer {
    /// Every authenticated user may do everything in the managed namespaces.
    pub fn open(managed_namespaces: Vec<String>) -> Self {
        Self { managed_namespaces }
    }

    pub fn is_managed(&self, namespace: &str) -> bool {
        self.managed_namespaces.iter().any(|managed| managed == namespace)
    }

    pub fn managed_namespaces(&self) -> &[String] {
        &self.managed_namespaces
    }

    pub fn check(&self, actor: &Actor, permission: Permission, namespace: &str) -> Result<(), Denial> {
        if !self.is_managed(namespace) {
            return Err(Denial::Unmanaged(namespace.to_owned()));
        }
        if permission != Permission::View && !actor.authenticated {
            return Err(Denial::Unauthenticated);
        }
        Ok(())
    }

    /// Whether the actor may take the action; pages use it to show only allowed buttons.
    pub fn allows(&self, actor: &Actor, permission: Permission, namespace: &str) -> bool {
        self.check(actor, permission, namespace).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_users_may_only_view() {
        let authz = Authorizer::open(vec!["tutorial".into()]);
        assert!(authz.allows(&Actor::anonymous(), Permission::View, "tutorial"));
        assert_eq!(
            authz.check(&Actor::anonymous(), Permission::Deploy, "tutorial"),
            Err(Denial::Unauthenticated)
        );
        assert!(authz.allows(&Actor::user("alice", vec![]), Permission::Route, "tutorial"));
    }

    #[test]
    fn unmanaged_namespaces_are_refused_to_everyone() {
        let authz = Authorizer::open(vec!["tutorial".into()]);
        assert_eq!(
            authz.check(&Actor::user("alice", vec![]), Permission::View, "kube-system"),
            Err(Denial::Unmanaged("kube-system".into()))
        );
    }
}
