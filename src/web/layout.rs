//! What every full page shows around its content: who you are, where you are, cluster state.
use crate::authz::Actor;

use super::state::AppState;

pub struct Layout {
    pub actor: String,
    pub authenticated: bool,
    pub csrf_token: String,
    pub namespaces: Vec<String>,
    pub namespace: String,
    pub cluster: String,
    /// "HH:MM:SS" (UTC) when the API server stopped answering.
    pub unreachable_since: Option<String>,
    /// Shown while no team file restricts who may do what.
    pub open_access: bool,
    /// The current namespace holds changes for a second person's approval.
    pub approval_required: bool,
    /// The change freeze over the current namespace now, in words.
    pub freeze: Option<String>,
    /// The actor may make an emergency change through the freeze (a namespace admin).
    pub may_override_freeze: bool,
    /// The configured tools nothing answered at (`Kiali`, its URL): their links are marked.
    pub silent_tools: Vec<(String, String)>,
    /// False for an actor who may view nothing (anonymous with a team file): the page then
    /// shows no navigation, cluster or polled banner.
    pub sees_anything: bool,
}

impl Layout {
    pub fn new(state: &AppState, actor: &Actor, namespace: Option<&str>) -> Self {
        let namespaces = state.view_scope(actor).namespaces();
        let sees_anything = !namespaces.is_empty();
        let namespace = namespace
            .filter(|ns| namespaces.iter().any(|managed| managed == ns))
            .map(String::from)
            .or_else(|| namespaces.first().cloned())
            .unwrap_or_default();
        let freeze = state.changes.authorizer().freeze(&namespace, jiff::Timestamp::now());
        let may_override_freeze = freeze.is_some()
            && state.changes.authorizer().allows(actor, crate::authz::Permission::Admin, &namespace, None);
        Self {
            approval_required: state.changes.authorizer().approval_required(&namespace),
            freeze: freeze.map(|freeze| freeze.describe()),
            may_override_freeze,
            actor: actor.name.clone(),
            authenticated: actor.authenticated,
            csrf_token: state.csrf.token_for(&actor.name),
            namespaces,
            namespace,
            cluster: if sees_anything { state.cluster.description.clone() } else { String::new() },
            unreachable_since: state
                .cluster
                .health
                .unreachable_since()
                .map(|since| since.strftime("%H:%M:%S").to_string()),
            open_access: state.changes.authorizer().is_open(),
            silent_tools: state
                .links
                .silent()
                .into_iter()
                .map(|(name, url)| (name.to_owned(), url.to_owned()))
                .collect(),
            sees_anything,
        }
    }

    /// `kiali-silent jaeger-silent`: the stylesheet marks those tools' links on the page.
    pub fn body_class(&self) -> String {
        let classes: Vec<String> =
            self.silent_tools.iter().map(|(name, _)| format!("{}-silent", name.to_ascii_lowercase())).collect();
        classes.join(" ")
    }

    /// The htmx request headers every page sends: the CSRF token.
    pub fn hx_headers(&self) -> String {
        serde_json::json!({ "X-CSRF-Token": self.csrf_token }).to_string()
    }
}
