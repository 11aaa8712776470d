//! The routing page of a host: the live policy in words and as YAML, forms that preview
//! every change (diff and the API server's dry run) before applying it, and a route tester.
use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::authz::{Actor, Permission};
use crate::change::gitops::GitopsMode;
use crate::change::outside::{self, Overwrite};
use crate::change::routes::{LiveRouting, ResourceVersions};
use crate::change::{ChangeError, Origin, canary};
use crate::policy::{self, RoutingPolicy};
use crate::problem::FieldProblem;
use crate::routing::{Host, Intent, Proposal, RoutingError};

use super::render;
use super::route_forms::RouteForm;
use super::route_view::{PreviewView, RoutesView, TestResultView};
use crate::web::error::AppError;
use crate::web::extract::{Asked, Htmx, ManagedHost, ManagedNamespace};
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::state::AppState;
use crate::web::view::ChangeQuery;

#[derive(Template)]
#[template(path = "routes.html")]
struct RoutesPage {
    layout: Layout,
    view: RoutesView,
}

#[derive(Template)]
#[template(path = "partials/route_editor.html")]
struct EditorPartial {
    view: RoutesView,
}

#[derive(Template)]
#[template(path = "partials/route_test_result.html")]
struct TestResultPartial {
    result: TestResultView,
}

/// The route tester's answer to headers it could not read.
#[derive(Template)]
#[template(path = "partials/route_test_error.html")]
struct TestErrorPartial {
    error: String,
}

#[derive(Template)]
#[template(path = "routes_index.html")]
struct RoutesIndex {
    layout: Layout,
    namespace: String,
    hosts: Vec<(String, String)>,
}

/// The hidden fields of the Apply form: exactly what was previewed.
#[derive(Deserialize)]
pub struct ApplyForm {
    action: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    rv_vs: String,
    #[serde(default)]
    rv_dr: String,
    #[serde(default)]
    rv_hr: String,
}

#[derive(Deserialize)]
pub struct TestForm {
    #[serde(default)]
    path: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    headers: String,
    /// A preset button's headers, used instead of the text area.
    #[serde(default)]
    preset_headers: String,
    /// The workload the request is sent from (a Deployment's name); empty: not said.
    #[serde(default)]
    source: String,
}

/// `/ns/{ns}/routes`: every service and how it is routed.
pub async fn index(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let hosts = super::overview::hosts_in_words(&state, &actor, &namespace, |row| row.facts.service.summary.clone());
    render(&RoutesIndex { layout: Layout::new(&state, &actor, Some(&namespace)), namespace, hosts })
}

/// `/ns/{ns}/routes/{host}`, from the watch caches.
pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
    Query(notice): Query<ChangeQuery>,
) -> Result<Response, AppError> {
    let mut view = match notice.change {
        // Right after a change the watch caches may not have its echo yet: until they do,
        // read what was applied from the API server, so the page never shows the state
        // before it.
        Some(_) => match state.routing.read_current(Host { namespace: &namespace, name: &host }).await {
            Ok(live) => view_of(&state, &actor, &namespace, &host, &live),
            Err(_) => view_from_cache(&state, &actor, &namespace, &host),
        },
        None => view_from_cache(&state, &actor, &namespace, &host),
    };
    if let Some(id) = notice.change {
        view.notice = state.change_notice(&actor, Some(id)).await?;
        view.sync = Some(super::proxy_sync::panel(&state, &actor, &namespace, &host).await);
    }
    view.overwritten = overwritten(&state, &namespace, &host, view.api).await?;
    render(&RoutesPage { layout: Layout::new(&state, &actor, Some(&namespace)), view })
}

/// signalbox's last change of the host's routing object, when an outside change overwrote
/// it within the hour (the outside recorder names the change it overwrites).
async fn overwritten(state: &AppState, namespace: &str, host: &str, kind: &str) -> Result<Option<Overwrite>, AppError> {
    // Only a host changed outside signalbox lately can have been overwritten: known in
    // memory, so the page reads the audit log only then.
    let changed = state.cluster.external.routing_changed_recently(namespace, outside::OVERWRITE_WINDOW_MS);
    if !changed.iter().any(|changed| changed == host) {
        return Ok(None);
    }
    let Some(change) = state.audit.last_applied_to(namespace, kind, host).await? else {
        return Ok(None);
    };
    Ok(outside::overwrites_of(&state.audit, (namespace, kind, host), change, 1).await?.into_iter().next())
}

/// The page from the watch caches, derived once per change of them (`kept_views`).
fn view_from_cache(state: &AppState, actor: &Actor, namespace: &str, host: &str) -> RoutesView {
    let derive = || derived_view(state, namespace, host, &state.reads.cached_routing(namespace, host));
    let view = match state.cluster.caches.namespace(namespace) {
        Some(cache) => state.routes_views.get_or(namespace, host, cache.revision(), derive).as_ref().clone(),
        None => derive(),
    };
    for_actor(view, state, actor)
}

fn view_of(state: &AppState, actor: &Actor, namespace: &str, host: &str, live: &LiveRouting) -> RoutesView {
    for_actor(derived_view(state, namespace, host, live), state, actor)
}

/// What the page shows every actor alike.
fn derived_view(state: &AppState, namespace: &str, host: &str, live: &LiveRouting) -> RoutesView {
    let view = RoutesView::new(
        namespace,
        host,
        live,
        deployed_versions(state, namespace, host),
        String::new(),
        false,
        (state.links.kiali_service(namespace, host), state.links.jaeger_traces(namespace, host)),
    );
    let callers = state.reads.callers(namespace).into_iter().map(|w| (w.deployment, w.app)).collect();
    let istiod = state.changes.propagation().istiod().is_some();
    RoutesView { http_route_retries: state.cluster.http_route_retries, callers: Arc::new(callers), istiod, ..view }
}

/// The actor's own: their form token, and forms only for who may route (never for
/// ambiguous routing, which is shown, not edited).
fn for_actor(mut view: RoutesView, state: &AppState, actor: &Actor) -> RoutesView {
    view.csrf_token = state.csrf.token_for(&actor.name);
    let allowed = state.changes.authorizer().allows(actor, Permission::Route, &view.namespace, Some(&view.host));
    view.can_route = allowed && view.ambiguous.is_none();
    let scope = state.view_scope(actor);
    if !scope.whole_namespace(&view.namespace) {
        let visible = view.callers.iter().filter(|(_, app)| scope.host(&view.namespace, app)).cloned().collect();
        view.callers = Arc::new(visible);
    }
    view
}

/// The `version` labels of the host's Deployments, sorted.
fn deployed_versions(state: &AppState, namespace: &str, host: &str) -> Vec<String> {
    let mut versions: Vec<String> =
        state.reads.versions(namespace).into_iter().filter(|v| v.app == host).map(|v| v.version).collect();
    versions.sort();
    versions.dedup();
    versions
}

/// `POST .../preview`: the change a form asks for, dry-run but not applied.
pub async fn preview(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    body: Bytes,
) -> Result<Response, AppError> {
    let form = RouteForm::parse(&body);
    let target = Host { namespace: &namespace, name: &host };
    let live = state.routing.read(target).await?;
    let mut view = view_of(&state, &origin.actor, &namespace, &host, &live);
    let proposal = match form.action.as_str() {
        "delete" => Ok(Proposal::Delete),
        "version-services" => Ok(Proposal::VersionServices),
        "migrate" => Ok(Proposal::Migrate),
        "http-route" => Proposal::start_http_route(&live, &host),
        _ => live_policy(&live, &host)
            .and_then(|current| form.desired(&current, &deployed_versions(&state, &namespace, &host)))
            .map(|policy| Proposal::Update { policy, api: None }),
    };
    let status = match proposal {
        Ok(proposal) => show_preview(&state, target, live, &origin, proposal, &mut view).await,
        Err(problems) => {
            view.set_problems(problems);
            StatusCode::UNPROCESSABLE_ENTITY
        }
    };
    if status != StatusCode::OK {
        view.keep_typed(&body);
    }
    respond(&state, &origin.actor, htmx, status, view)
}

fn live_policy(live: &LiveRouting, host: &str) -> Result<RoutingPolicy, Vec<FieldProblem>> {
    live.policy(host).map_err(|e| vec![FieldProblem::new("", AppError::from(e).to_string())])
}

/// Plans and dry-runs the change into `view.preview`; problems and refusals are shown, not
/// thrown.
async fn show_preview(
    state: &AppState,
    target: Host<'_>,
    live: LiveRouting,
    origin: &Origin,
    proposal: Proposal,
    view: &mut RoutesView,
) -> StatusCode {
    let action = proposal.action();
    let before = live.exists().then(|| live.policy(target.name).ok()).flatten();
    // A routing change keeps the canary's annotation: both sides show the running canary.
    let canary = canary::current(&live);
    let planned = state.routing.plan_on(origin, target, live, proposal, Intent::Preview).await;
    let previewed = match planned {
        Ok(plan) => state.routing.preview(&plan).await.map(|preview| (plan, preview)).map_err(RoutingError::from),
        Err(refusal) => Err(refusal),
    };
    match previewed {
        Ok((plan, preview)) => {
            let (change, after) = (&plan.change, plan.after.as_ref());
            let (warnings, against) = (&plan.warnings, &plan.planned_against);
            let shown = PreviewView::new(change, before.as_ref(), after, &preview, warnings, against, canary.as_ref());
            let for_git_only = !shown.owned.is_empty() && state.changes.gitops() == GitopsMode::Refuse;
            view.preview = Some(PreviewView { action: action.into(), for_git_only, ..shown });
            StatusCode::OK
        }
        Err(RoutingError::Conflict(refusal)) => {
            view.error = Some(refusal);
            StatusCode::CONFLICT
        }
        Err(RoutingError::Invalid(problems) | RoutingError::Change(ChangeError::Invalid(problems))) => {
            view.set_problems(problems);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Err(error) => {
            let error = AppError::from(error);
            view.error = Some(format!("The API server refused the dry run: {error}"));
            error.status()
        }
    }
}

/// `POST .../apply`: applies exactly what was previewed, unless the objects changed since.
pub async fn apply(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    axum::Form(form): axum::Form<ApplyForm>,
) -> Result<Response, AppError> {
    let proposal = Proposal::from_form(&form.action, &form.policy).map_err(AppError::Invalid)?;
    let seen = ResourceVersions {
        virtual_service: non_empty(form.rv_vs),
        destination_rule: non_empty(form.rv_dr),
        http_route: non_empty(form.rv_hr),
    };
    let target = Host { namespace: &namespace, name: &host };
    // A conflict is found when planning (the objects say something else than what was
    // previewed) or by the API server when applying (they moved in between): either way
    // the page shows the routing as it is now.
    let applied = match state.routing.plan(&origin, target, proposal.clone(), Some(&seen), Intent::Apply).await {
        Ok(plan) => state.routing.apply(plan).await,
        Err(refused) => Err(refused),
    };
    match applied.map_err(AppError::from) {
        Ok(applied) => {
            let target = format!("/ns/{namespace}/routes/{host}?change={}", applied.audit_id);
            Ok(htmx.redirect(&target))
        }
        Err(AppError::Conflict(_)) => {
            // Someone changed the objects since the preview: show the new state and how the
            // previewed change compares with it, to confirm again.
            let live = state.routing.read(target).await?;
            let mut view = view_of(&state, &origin.actor, &namespace, &host, &live);
            view.conflict = Some("The routing changed since you previewed this change. Below: the live state now, and your change against it. Apply again to confirm.".into());
            show_preview(&state, target, live, &origin, proposal, &mut view).await;
            respond(&state, &origin.actor, htmx, StatusCode::CONFLICT, view)
        }
        Err(other) => Err(other),
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.trim().is_empty()).then_some(text)
}

fn respond(
    state: &AppState,
    actor: &Actor,
    Htmx(htmx): Htmx,
    status: StatusCode,
    view: RoutesView,
) -> Result<Response, AppError> {
    let namespace = view.namespace.clone();
    let html = if htmx {
        EditorPartial { view }.render()?
    } else {
        RoutesPage { layout: Layout::new(state, actor, Some(&namespace)), view }.render()?
    };
    Ok((status, Html(html)).into_response())
}

/// `POST .../test`: which rule a request would match, from the cached policy.
pub async fn test(
    State(state): State<AppState>,
    Identity(actor): Identity,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    axum::Form(form): axum::Form<TestForm>,
) -> Result<Response, AppError> {
    let mut view = view_from_cache(&state, &actor, &namespace, &host);
    let text = if form.preset_headers.is_empty() { form.headers } else { form.preset_headers };
    let source_name = form.source.trim().to_owned();
    view.test_source = source_name.clone();
    let source = match source_name.as_str() {
        "" => Ok(None),
        name => state.caller_named(&actor, &namespace, name, "source").map(Some).map_err(|error| match error {
            AppError::Invalid(problems) => problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join("; "),
            other => other.to_string(),
        }),
    };
    let headers_and_source = parse_headers(&text).and_then(|headers| Ok((headers, source?)));
    let (headers, source) = match headers_and_source {
        Ok(read) => read,
        Err(problem) => {
            let error = TestErrorPartial { error: problem };
            if htmx.0 {
                return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(error.render()?)).into_response());
            }
            view.test_error = Some((error.error, text));
            let page = RoutesPage { layout: Layout::new(&state, &actor, Some(&namespace)), view };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response());
        }
    };
    let request = policy::Request {
        path: if form.path.trim().is_empty() { "/".into() } else { form.path.trim().to_owned() },
        method: if form.method.trim().is_empty() { "GET".into() } else { form.method.trim().to_ascii_uppercase() },
        headers,
        source,
        ..Default::default()
    };
    let evaluation = crate::routing::tester::evaluate(view.policy.clone(), request, view.precedence).await;
    let result = TestResultView::new(&view.policy, evaluation, text.clone(), source_name);
    if htmx.0 {
        return render(&TestResultPartial { result });
    }
    view.test_result = Some(result);
    render(&RoutesPage { layout: Layout::new(&state, &actor, Some(&namespace)), view })
}

/// The route tester's headers, one `name: value` per line (blank lines skipped); a line it
/// cannot read is named rather than skipped, so the answer is never for other headers than
/// the ones typed.
fn parse_headers(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut headers = BTreeMap::new();
    for (number, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let unread = || format!("line {} is not a header (name: value): {}", number + 1, line.trim());
        let (name, value) = line.split_once(':').ok_or_else(unread)?;
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(unread());
        }
        headers.insert(name, value.trim().to_owned());
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::parse_headers;

    #[test]
    fn the_tester_names_the_line_it_cannot_read() {
        let headers = parse_headers("User-Agent: Firefox\n\nx-team: reco").unwrap();
        assert_eq!(headers.get("user-agent").map(String::as_str), Some("Firefox"));
        assert_eq!(
            parse_headers("x-team: reco\nFirefox").unwrap_err(),
            "line 2 is not a header (name: value): Firefox"
        );
        assert!(parse_headers(": empty name").unwrap_err().starts_with("line 1 "));
        assert!(parse_headers("user agent: x").is_err(), "a header name has no spaces");
    }
}
