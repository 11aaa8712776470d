//! The team file: who owns which namespaces and hosts, and what they may do there.
//!
//! ```yaml
//! teams:
//!   - name: recommendation
//!     members: {users: [alice@example.com], groups: [team-reco]}
//!     namespaces: [tutorial]
//!     hosts: [recommendation]          # optional: without it, every host in the namespaces
//!     actions: [view, route, canary]   # view, deploy, route, canary, admin
//!   - name: platform
//!     members: {groups: [platform-admins]}
//!     namespaces: ["*"]
//!     actions: [admin]
//! ```
use std::path::Path;

use serde::Deserialize;

use super::policies::NamespacePolicy;
use super::{Actor, Permission};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teams {
    pub teams: Vec<Team>,
    /// Rules for namespaces whoever changes them (`policies.rs`): freeze windows.
    #[serde(default)]
    pub policies: Vec<NamespacePolicy>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    #[serde(default)]
    pub members: Members,
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub actions: Vec<Permission>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// How the login proxy joins a user's groups in `X-Forwarded-Groups` (oauth2-proxy: a
/// comma), so a group name holding it could never be matched: signalbox splits the header
/// there, and `a,b` arrives as the two groups `a` and `b`.
pub const GROUP_SEPARATOR: char = ',';

impl Teams {
    /// Reads and checks the team file; a group name the proxy's header cannot carry is an
    /// error, not a team that silently never matches.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text)
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        let teams: Self = serde_yaml_ng::from_str(text)?;
        for team in &teams.teams {
            for group in &team.members.groups {
                check_group_name(group)
                    .map_err(|why| anyhow::anyhow!("team {:?}: group {group:?} {why}", team.name))?;
            }
        }
        for (index, policy) in teams.policies.iter().enumerate() {
            if let Some(problem) = policy.problem() {
                anyhow::bail!("policies[{index}]: {problem}");
            }
        }
        Ok(teams)
    }

    /// The teams `actor` is a member of (without the policies).
    pub fn of(&self, actor: &Actor) -> Teams {
        let teams = self.teams.iter().filter(|team| team.has_member(actor)).cloned().collect();
        Teams { teams, policies: Vec::new() }
    }

    /// Whether some team of the actor grants `permission` on `namespace` (and `host`, for
    /// actions on one host; namespace-wide actions need a team not limited to hosts).
    pub fn grants(&self, actor: &Actor, permission: Permission, namespace: &str, host: Option<&str>) -> bool {
        actor.authenticated
            && self
                .teams
                .iter()
                .any(|team| team.has_member(actor) && team.owns(namespace, host) && team.may(permission))
    }

    /// The hosts the actor's teams name in `namespace` (whether they may view them is
    /// [`Teams::grants`]'s to say).
    pub fn hosts_named_for(&self, actor: &Actor, namespace: &str) -> std::collections::BTreeSet<String> {
        self.teams
            .iter()
            .filter(|team| team.has_member(actor) && team.covers(namespace))
            .flat_map(|team| team.hosts.iter().cloned())
            .collect()
    }
}

/// Why the proxy could never send this group name: the header is split at commas and each
/// name trimmed, empty ones skipped.
fn check_group_name(group: &str) -> Result<(), &'static str> {
    if group.contains(GROUP_SEPARATOR) {
        return Err("contains a comma, which separates groups in X-Forwarded-Groups; it could never match");
    }
    if group.trim().is_empty() {
        return Err("is empty; it could never match");
    }
    if group.trim() != group {
        return Err("has spaces around it, which are trimmed from X-Forwarded-Groups; it could never match");
    }
    Ok(())
}

impl Team {
    fn has_member(&self, actor: &Actor) -> bool {
        self.members.users.contains(&actor.name) || actor.groups.iter().any(|g| self.members.groups.contains(g))
    }

    fn covers(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|ns| ns == "*" || ns == namespace)
    }

    fn owns(&self, namespace: &str, host: Option<&str>) -> bool {
        let namespace_owned = self.covers(namespace);
        let host_owned = match host {
            _ if self.hosts.is_empty() => true,
            Some(host) => self.hosts.iter().any(|h| h == host),
            None => false,
        };
        namespace_owned && host_owned
    }

    /// Admin grants everything; any action implies view.
    fn may(&self, permission: Permission) -> bool {
        self.actions.contains(&Permission::Admin)
            || self.actions.contains(&permission)
            || (permission == Permission::View && !self.actions.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teams() -> Teams {
        serde_yaml_ng::from_str(
            r#"
teams:
  - name: reco
    members: {users: [alice], groups: [team-reco]}
    namespaces: [tutorial]
    hosts: [recommendation]
    actions: [route, canary]
  - name: web
    members: {users: [bob]}
    namespaces: [tutorial]
    actions: [deploy]
  - name: platform
    members: {groups: [admins]}
    namespaces: ["*"]
    actions: [admin]
"#,
        )
        .unwrap()
    }

    #[test]
    fn owners_may_act_on_their_hosts_only() {
        let alice = Actor::user("alice", vec![]);
        assert!(teams().grants(&alice, Permission::Canary, "tutorial", Some("recommendation")));
        assert!(teams().grants(&alice, Permission::View, "tutorial", Some("recommendation")));
        assert!(!teams().grants(&alice, Permission::Canary, "tutorial", Some("preference")));
        assert!(!teams().grants(&alice, Permission::Deploy, "tutorial", Some("recommendation")));
        assert!(!teams().grants(&alice, Permission::Route, "other", Some("recommendation")));
        assert!(!teams().grants(&alice, Permission::Deploy, "tutorial", None), "host-limited teams act on hosts only");
    }

    #[test]
    fn groups_admins_and_anonymous() {
        let carol = Actor::user("carol", vec!["team-reco".into()]);
        assert!(teams().grants(&carol, Permission::Route, "tutorial", Some("recommendation")));
        let admin = Actor::user("root", vec!["admins".into()]);
        assert!(teams().grants(&admin, Permission::Deploy, "anywhere", None));
        let mut forged = Actor::anonymous();
        forged.groups = vec!["admins".into()];
        assert!(!teams().grants(&forged, Permission::View, "tutorial", None));
        assert!(!teams().grants(&Actor::user("mallory", vec![]), Permission::View, "tutorial", None));
    }

    #[test]
    fn unknown_fields_and_actions_are_rejected() {
        assert!(serde_yaml_ng::from_str::<Teams>("teams: [{name: a, namespaces: [x], actions: [fly]}]").is_err());
        assert!(
            serde_yaml_ng::from_str::<Teams>("teams: [{name: a, namespaces: [x], actions: [view], owner: b}]").is_err()
        );
    }

    #[test]
    fn policies_load_with_their_freezes_and_approval() {
        let base = "teams: [{name: a, namespaces: [prod], actions: [view]}]\npolicies:\n";
        let freeze = r#"  - {namespaces: [prod], freezes: [{from: "2026-12-24T00:00:00Z", to: "2026-12-27T00:00:00Z", reason: holidays}]}"#;
        let teams = Teams::parse(&format!("{base}{freeze}")).unwrap();
        assert_eq!(teams.policies[0].freezes[0].reason, "holidays");
        let approval = "  - {namespaces: [prod], approval: {required: true}}";
        assert!(Teams::parse(&format!("{base}{approval}")).unwrap().policies[0].approval.required);
        assert!(Teams::parse(&format!("{base}  - {{namespaces: [prod], approval: {{required: yes}}}}")).is_err());
        let backwards = r#"  - {namespaces: [prod], freezes: [{from: "2026-12-27T00:00:00Z", to: "2026-12-24T00:00:00Z", reason: x}]}"#;
        assert!(
            Teams::parse(&format!("{base}{backwards}")).unwrap_err().to_string().starts_with("policies[0]: freeze")
        );
    }

    #[test]
    fn group_names_the_proxy_header_cannot_carry_are_refused() {
        let file = |group: &str| {
            format!("teams: [{{name: a, members: {{groups: ['{group}']}}, namespaces: [x], actions: [view]}}]")
        };
        let error = Teams::parse(&file("eng,admins")).unwrap_err().to_string();
        assert!(error.contains("team \"a\": group \"eng,admins\" contains a comma"), "{error}");
        for group in ["", " ", " eng", "eng "] {
            assert!(Teams::parse(&file(group)).is_err(), "{group:?}");
        }
        assert!(Teams::parse(&file("cn=eng admins/platform")).is_ok(), "other characters are fine");
    }
}
