//! The View rule: with a team file, every page, partial and API answer shows only the
//! namespaces and hosts the actor may view, and anonymous visitors only a sign-in hint.
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::{Entry, Filter};
use crate::authz::{Actor, ViewScope};

use super::error::AppError;
use super::identity::actor_of;
use super::state::AppState;

const SIGN_IN: &str = "Sign in to view signalbox: open it through your organisation's sign-in proxy.";

/// What anonymous visitors may still reach with a team file: probes and the stylesheet.
fn open_to_anyone(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz") || path.starts_with("/static/")
}

/// With a team file, an anonymous read gets the sign-in hint and nothing else. Anonymous
/// changes go on to the change path, which refuses and audits them like any other.
pub async fn sign_in_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads && !state.changes.authorizer().is_open() && !open_to_anyone(request.uri().path()) {
        let (parts, body) = request.into_parts();
        if !actor_of(&parts, &state).authenticated {
            return AppError::Unauthenticated(SIGN_IN.into()).into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(request).await
}

/// `?change=<id>`: the audit entry of the change a form just made, named on the page it
/// returns to.
#[derive(serde::Deserialize)]
pub struct ChangeQuery {
    pub change: Option<i64>,
}

impl AppState {
    pub fn view_scope(&self, actor: &Actor) -> ViewScope {
        self.changes.authorizer().view_scope(actor)
    }

    /// The history filter narrowed to what the actor may view.
    pub fn visible_filter(&self, actor: &Actor, mut filter: Filter) -> Filter {
        filter.visible = self.view_scope(actor).audit_filter();
        filter
    }

    /// An audit entry, when the actor may view it: others are as absent as missing ones.
    pub async fn visible_entry(&self, actor: &Actor, id: i64) -> Result<Entry, AppError> {
        self.audit
            .get(id)
            .await?
            .filter(|entry| self.view_scope(actor).object(&entry.namespace, &entry.kind, &entry.name))
            .ok_or_else(|| AppError::NotFound(format!("no audit entry {id}")))
    }

    /// "Change #12 applied: …" after a form's change, when the actor may view the entry.
    pub async fn change_notice(&self, actor: &Actor, id: Option<i64>) -> Result<Option<String>, AppError> {
        let Some(id) = id else { return Ok(None) };
        match self.visible_entry(actor, id).await {
            Ok(entry) => Ok(Some(format!("Change #{} {}: {}", entry.id, entry.outcome, entry.summary))),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// Refuses a read of `host` (None: of the whole namespace) the actor may not view.
pub fn ensure_visible(state: &AppState, actor: &Actor, namespace: &str, host: Option<&str>) -> Result<(), AppError> {
    let scope = state.view_scope(actor);
    let visible = match host {
        Some(host) => scope.host(namespace, host),
        None => scope.namespace(namespace),
    };
    match (visible, actor.authenticated) {
        (true, _) => Ok(()),
        (false, false) => Err(AppError::Unauthenticated(SIGN_IN.into())),
        (false, true) => Err(AppError::Forbidden(match host {
            Some(host) => format!("{} may not view host {host} in namespace {namespace}", actor.name),
            None => format!("{} may not view namespace {namespace}", actor.name),
        })),
    }
}

/// An actor who may not view the host hears only that, whatever refused the request (the
/// change path's denial, which it audits, comes before any conflict about the host's state).
pub fn unless_hidden(state: &AppState, actor: &Actor, namespace: &str, host: &str, error: AppError) -> AppError {
    ensure_visible(state, actor, namespace, Some(host)).err().unwrap_or(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_probes_and_static_files_are_open_to_anyone() {
        assert!(open_to_anyone("/healthz") && open_to_anyone("/readyz") && open_to_anyone("/static/app.css"));
        for path in ["/", "/metrics", "/audit", "/api/v1/audit/verify", "/ns/tutorial", "/healthz/x", "/staticx"] {
            assert!(!open_to_anyone(path), "{path}");
        }
    }
}
