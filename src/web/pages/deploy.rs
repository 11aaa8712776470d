//! The deploy page: create the namespace, deploy, scale and remove the tutorial's
//! workloads, reset them.
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::authz::{Actor, Permission};
use crate::change::workloads;
use crate::change::{Applied, Change};
use crate::inventory;
use crate::problem::FieldProblem;
use crate::tutorial::Workload;

use super::render;
use crate::web::error::AppError;
use crate::web::extract::{Asked, Htmx, ManagedNamespace, parse_workload};
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::state::AppState;
use crate::web::view::ChangeQuery;

pub struct WorkloadRow {
    pub name: &'static str,
    pub app: &'static str,
    pub version: &'static str,
    pub image: &'static str,
    pub deployed: bool,
    pub desired: i32,
    pub ready: i32,
    pub state: &'static str,
    /// Whether the actor may deploy, scale and remove this workload.
    pub allowed: bool,
    /// A problem with this row's last submitted form, shown next to its field.
    pub error: Option<String>,
    /// The replicas typed into a refused scale form, shown again instead of the live count.
    pub typed_replicas: Option<String>,
}

/// Everything the workloads table shows.
pub struct Workloads {
    pub namespace: String,
    pub namespace_exists: bool,
    pub injection: bool,
    pub csrf_token: String,
    /// Namespace-wide actions (create the namespace, reset) are allowed.
    pub can_deploy: bool,
    pub rows: Vec<WorkloadRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "deploy.html")]
struct DeployPage {
    layout: Layout,
    workloads: Workloads,
}

#[derive(Template)]
#[template(path = "partials/workloads.html")]
struct WorkloadsPartial {
    workloads: Workloads,
}

#[derive(Template)]
#[template(path = "partials/workload_status.html")]
struct StatusPartial {
    workloads: Workloads,
}

#[derive(Deserialize)]
pub struct ReplicasForm {
    #[serde(default)]
    replicas: String,
}

fn workloads(state: &AppState, actor: &Actor, namespace: &str) -> Workloads {
    let current = state.reads.namespace_state(namespace);
    let namespace_object = state.cluster.caches.namespace_object(namespace);
    let authorizer = state.changes.authorizer();
    let scope = state.view_scope(actor);
    let rows = Workload::ALL
        .into_iter()
        .filter(|workload| scope.host(namespace, workload.app()))
        .map(|workload| {
            let version = current.versions.iter().find(|v| v.deployment == workload.deployment_name());
            WorkloadRow {
                name: workload.name(),
                app: workload.app(),
                version: workload.version(),
                image: workload.image(),
                deployed: version.is_some(),
                desired: version.map_or(0, |v| v.desired),
                ready: version.map_or(0, |v| v.ready),
                state: version.map_or("absent", |v| v.state()),
                // Deploying into a missing namespace creates it, which needs the whole namespace.
                allowed: authorizer.allows(actor, Permission::Deploy, namespace, Some(workload.app()))
                    && (current.exists || authorizer.allows(actor, Permission::Deploy, namespace, None)),
                error: None,
                typed_replicas: None,
            }
        })
        .collect();
    Workloads {
        namespace: namespace.to_owned(),
        namespace_exists: current.exists,
        injection: inventory::sidecar_injection(namespace_object.as_deref()),
        csrf_token: state.csrf.token_for(&actor.name),
        can_deploy: authorizer.allows(actor, Permission::Deploy, namespace, None),
        rows,
        notice: None,
        error: None,
    }
}

pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
    Query(notice): Query<ChangeQuery>,
) -> Result<Response, AppError> {
    let mut workloads = workloads(&state, &actor, &namespace);
    workloads.notice = state.change_notice(&actor, notice.change).await?;
    render(&DeployPage { layout: Layout::new(&state, &actor, Some(&namespace)), workloads })
}

/// Out-of-band updates of each row's state, polled by the page.
pub async fn status(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    render(&StatusPartial { workloads: workloads(&state, &actor, &namespace) })
}

fn parse_replicas(text: &str) -> Result<i32, FieldProblem> {
    text.trim().parse().map_err(|_| FieldProblem::new("replicas", "must be a whole number, e.g. 2"))
}

pub async fn create_namespace(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let change = workloads::create_namespace(&origin, &namespace);
    let result = execute(&state, change).await;
    if result.is_ok() {
        namespace_cached(&state, &namespace).await;
    }
    respond(&state, &origin.actor, &namespace, htmx, None, result).await
}

/// Waits (at most 2 s) until the watch caches hold the namespace just created, so that the
/// table drawn next says it exists: the rows follow through their poll, the namespace's line
/// does not.
async fn namespace_cached(state: &AppState, namespace: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    let injected = || {
        let object = state.cluster.caches.namespace_object(namespace);
        object.is_some() && inventory::sidecar_injection(object.as_deref())
    };
    while !injected() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub async fn deploy(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let workload = parse_workload(&name)?;
    let current = state.workload_state(&origin.actor, &namespace, Some(workload.app())).await;
    let change = workloads::deploy(&origin, &namespace, workload, None, &current);
    respond(&state, &origin.actor, &namespace, htmx, Some((workload, None)), execute(&state, change).await).await
}

pub async fn scale(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, name)): Path<(String, String)>,
    Form(form): Form<ReplicasForm>,
) -> Result<Response, AppError> {
    let workload = parse_workload(&name)?;
    let result = match parse_replicas(&form.replicas) {
        Ok(replicas) => {
            let current = state.workload_state(&origin.actor, &namespace, Some(workload.app())).await;
            execute(&state, workloads::scale(&origin, &namespace, workload, replicas, &current)).await
        }
        Err(problem) => Err(AppError::Invalid(vec![problem])),
    };
    respond(&state, &origin.actor, &namespace, htmx, Some((workload, Some(&form.replicas))), result).await
}

pub async fn remove(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let workload = parse_workload(&name)?;
    let current = state.workload_state(&origin.actor, &namespace, Some(workload.app())).await;
    let change = workloads::remove(&origin, &namespace, workload, &current);
    respond(&state, &origin.actor, &namespace, htmx, Some((workload, None)), execute(&state, change).await).await
}

pub async fn reset(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let change = workloads::reset(&origin, &namespace);
    respond(&state, &origin.actor, &namespace, htmx, None, execute(&state, change).await).await
}

/// In a row the field is known: invalid input's messages without their field paths.
fn row_message(refused: &AppError) -> String {
    match refused {
        AppError::Invalid(problems) => problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    }
}

async fn execute(state: &AppState, change: Change) -> Result<Applied, AppError> {
    state.changes.execute(change).await.map_err(AppError::from)
}

/// After a form: htmx gets the refreshed table; a plain form is redirected (POST/redirect/GET).
/// Invalid input is shown next to the row's field; other errors render as error pages.
async fn respond(
    state: &AppState,
    actor: &Actor,
    namespace: &str,
    Htmx(htmx): Htmx,
    form: Option<(Workload, Option<&str>)>,
    result: Result<Applied, AppError>,
) -> Result<Response, AppError> {
    let mut view = workloads(state, actor, namespace);
    let status = match result {
        Ok(applied) if !htmx => {
            return Ok(Redirect::to(&format!("/ns/{namespace}/deploy?change={}", applied.audit_id)).into_response());
        }
        Ok(applied) => {
            view.notice = state.change_notice(actor, Some(applied.audit_id)).await?;
            StatusCode::OK
        }
        // Invalid input, and a refusal of this form (someone removed the workload, it is not
        // yours, or it would create a namespace this team may not), are shown next to the
        // form's row.
        Err(
            refused @ (AppError::Invalid(_)
            | AppError::Conflict(_)
            | AppError::Forbidden(_)
            | AppError::Unauthenticated(_)
            | AppError::NotFound(_)),
        ) => {
            let status = refused.status();
            let row = form.and_then(|(w, typed)| Some((view.rows.iter_mut().find(|row| row.name == w.name())?, typed)));
            match row {
                Some((row, typed)) => {
                    row.error = Some(row_message(&refused));
                    row.typed_replicas = typed.map(str::to_owned);
                }
                None => view.error = Some(refused.to_string()),
            }
            status
        }
        Err(other) => return Err(other),
    };
    let html = if htmx {
        WorkloadsPartial { workloads: view }.render()?
    } else {
        DeployPage { layout: Layout::new(state, actor, Some(namespace)), workloads: view }.render()?
    };
    Ok((status, axum::response::Html(html)).into_response())
}
