//! The View rule: with a team file, every page, partial and API answer shows only the
//! namespaces and hosts the actor may view, and anonymous visitors only a sign-in hint.
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::audit::{Entry, Filter, VisibleNamespace};
use crate::authz::{Actor, ViewScope};
use crate::change::reads::Workload;
use crate::inventory::runs_in_pod_of;
use crate::problem::check_dns_label;
use crate::propagation::SyncView;

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
        if !actor_of(&parts, &state.identity).authenticated {
            return AppError::Unauthenticated(SIGN_IN.into()).into_response();
        }
        return next.run(Request::from_parts(parts, body)).await;
    }
    next.run(request).await
}

/// Where a matched route's path points, for the View rule.
#[derive(Debug, PartialEq, Eq)]
enum Sight {
    /// A managed namespace, or one host of it (`{host}`, or the host of a tutorial workload
    /// named by `{workload}` or `{name}`).
    Namespace { namespace: String, host: Option<String> },
    /// An audit entry (`{id}`).
    Entry(i64),
    /// Nothing the path restricts: lists filter what they show, and a malformed or unmanaged
    /// namespace is the extractors' 400/404, which say nothing about it.
    Nothing,
}

/// The View rule, decided once for every route, method and outcome: an actor who may not
/// view what the path names hears only that (401 or 403; 404 for an audit entry), never a
/// page, a form error or a conflict about it. A read stops here. A change still goes on to
/// the change path, which refuses and audits it, but its answer is replaced by the same
/// refusal a read gets.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let refusal = refusal(&state, &mut parts).await;
    let request = Request::from_parts(parts, body);
    match refusal {
        None => next.run(request).await,
        Some(refusal) if request.method().is_safe() => refusal.into_response(),
        Some(refusal) => {
            drop(next.run(request).await);
            refusal.into_response()
        }
    }
}

async fn refusal(state: &AppState, parts: &mut Parts) -> Option<AppError> {
    let actor = actor_of(parts, &state.identity);
    if !state.changes.authorizer().is_open() && !actor.authenticated && !open_to_anyone(parts.uri.path()) {
        return Some(AppError::Unauthenticated(SIGN_IN.into()));
    }
    match sight(parts, state).await {
        Sight::Namespace { namespace, host } => ensure_visible(state, &actor, &namespace, host.as_deref()).err(),
        Sight::Entry(id) => state.visible_entry(&actor, id).await.err(),
        Sight::Nothing => None,
    }
}

async fn sight(parts: &mut Parts, state: &AppState) -> Sight {
    let Ok(params) = RawPathParams::from_request_parts(parts, state).await else { return Sight::Nothing };
    let param = |name: &str| params.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned());
    if let Some(id) = param("id") {
        return id.parse().map(Sight::Entry).unwrap_or(Sight::Nothing);
    }
    let Some(namespace) = param("ns") else { return Sight::Nothing };
    if check_dns_label("namespace", &namespace).is_err() || !state.changes.authorizer().is_managed(&namespace) {
        return Sight::Nothing;
    }
    let host = match param("host") {
        Some(host) if check_dns_label("host", &host).is_err() => return Sight::Nothing,
        Some(host) => Some(host),
        None => param("workload").or_else(|| param("name")).and_then(|name| workload_host(&name)),
    };
    Sight::Namespace { namespace, host }
}

/// The host a tutorial workload belongs to (an unknown one is the handler's to refuse).
fn workload_host(name: &str) -> Option<String> {
    crate::tutorial::Workload::parse(name).map(|workload| workload.app().to_owned())
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
        let visible = self.view_scope(actor).visible_objects();
        filter.visible = visible.map(|namespaces| {
            namespaces
                .into_iter()
                .map(|view| VisibleNamespace { namespace: view.namespace, names: view.names })
                .collect()
        });
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

impl AppState {
    /// The namespace's workloads the route tester offers `actor` as callers: those of the
    /// services they may view (a host-limited viewer does not learn other services' names).
    pub fn callers_for(&self, actor: &Actor, namespace: &str) -> Vec<Workload> {
        let scope = self.view_scope(actor);
        let mut workloads = self.reads.callers(namespace);
        if !scope.whole_namespace(namespace) {
            workloads.retain(|workload| scope.host(namespace, &workload.app));
        }
        workloads
    }

    /// The caller a route test names by its workload (a Deployment of the namespace).
    pub fn caller_named(
        &self,
        actor: &Actor,
        namespace: &str,
        workload: &str,
        field: &str,
    ) -> Result<crate::policy::Caller, AppError> {
        workload_named(self.callers_for(actor, namespace), namespace, workload, field).map(|w| w.caller)
    }
}

/// Of `callers` (what [`AppState::callers_for`] offers), the workload whose sidecar's route
/// table for `host` is shown: the one named, else the first that is not one of the host's
/// own (a caller), else any.
pub fn envoy_source(
    callers: Vec<Workload>,
    namespace: &str,
    host: &str,
    named: Option<&str>,
) -> Result<Workload, AppError> {
    if let Some(name) = named.filter(|name| !name.is_empty()) {
        return workload_named(callers, namespace, name, "source");
    }
    let caller = callers.iter().find(|w| w.app != host).cloned();
    caller
        .or_else(|| callers.into_iter().next())
        .ok_or_else(|| AppError::NotFound(format!("no workload in namespace {namespace} to read a sidecar of")))
}

/// The workload `name` among `callers`; unknown and hidden ones alike are refused at `field`.
fn workload_named(callers: Vec<Workload>, namespace: &str, name: &str, field: &str) -> Result<Workload, AppError> {
    let found = callers.into_iter().find(|w| w.deployment == name);
    found.ok_or_else(|| {
        let message = format!("no Deployment {name} in namespace {namespace} (of the services you may view)");
        AppError::Invalid(vec![crate::problem::FieldProblem::new(field, message)])
    })
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

/// A proxy of a service the actor may not view, as a host-limited viewer sees it: counted,
/// with its state, but neither its pod's name nor its NACK message.
const HIDDEN_PROXY: &str = "a proxy of a service you cannot view";

impl AppState {
    /// The sync report of a host's change as `actor` may see it: whoever views the whole
    /// namespace sees every proxy; a viewer of some hosts sees the names of their proxies
    /// only (a pod belongs to a Deployment `<name>-<hash>-<suffix>`, whose `app` is its host).
    pub fn sync_for(&self, actor: &Actor, namespace: &str, mut view: SyncView) -> SyncView {
        let scope = self.view_scope(actor);
        if scope.whole_namespace(namespace) {
            return view;
        }
        let visible: Vec<String> = self
            .reads
            .versions(namespace)
            .into_iter()
            .filter(|version| scope.host(namespace, &version.app))
            .map(|version| version.deployment)
            .collect();
        for proxy in &mut view.report.proxies {
            if !visible.iter().any(|deployment| runs_in_pod_of(&proxy.name, deployment)) {
                proxy.name = HIDDEN_PROXY.to_owned();
                proxy.error = proxy.error.as_ref().map(|_| "rejected the change".to_owned());
            }
        }
        view
    }
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

    #[test]
    fn a_proxy_belongs_to_the_deployment_whose_pods_it_names() {
        assert!(runs_in_pod_of("recommendation-v1-6d4f9c7b8-x2k9p.tutorial", "recommendation-v1"));
        assert!(
            !runs_in_pod_of("recommendation-v1-6d4f9c7b8-x2k9p.tutorial", "recommendation"),
            "another Deployment's pod"
        );
        assert!(!runs_in_pod_of("recommendation-secret-v1-6d4f9c7b8-x2k9p.tutorial", "recommendation"));
        assert!(!runs_in_pod_of("customer-6d4f9c7b8-x2k9p.tutorial", "recommendation-v1"));
    }
}
