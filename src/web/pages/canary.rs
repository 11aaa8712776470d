//! The canary page of a host: plan and progress, configured split, the buttons the user may
//! press, and this canary's history from the audit log.
use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::audit::{Entry, Source};
use crate::authz::{Actor, Permission};
use crate::change::canary;
use crate::policy::RoutingPolicy;
use crate::policy::canary::{Canary, DEFAULT_STEPS};
use crate::problem::check_dns_label;

use super::super::canaries::{self, Step};
use super::super::error::AppError;
use super::super::extract::{Htmx, ManagedNamespace, RequestId};
use super::super::identity::Identity;
use super::super::layout::Layout;
use super::super::state::AppState;

const HISTORY: u32 = 50;

#[derive(Template)]
#[template(path = "canary.html")]
struct CanaryPage {
    layout: Layout,
    namespace: String,
    host: String,
    csrf_token: String,
    allowed: bool,
    canary: Option<Canary>,
    /// A canary is progressing or paused (no new one may start).
    running: bool,
    subsets: Vec<String>,
    default_steps: String,
    stable_name: String,
    canary_name: String,
    history: Vec<Entry>,
    observed: Observed,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct Notice {
    change: Option<i64>,
}

#[derive(Deserialize)]
pub struct StartForm {
    stable: String,
    canary: String,
    #[serde(default)]
    steps: String,
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    step: Option<usize>,
    #[serde(default)]
    full: Option<String>,
}

/// How long a window the observed split covers.
const OBSERVED_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// What Istio's metrics say about each version, next to the configured split.
pub enum Observed {
    /// No `--prometheus-url`.
    NotConfigured,
    Unreachable(String),
    /// (subset, version label, share %, req/s, success %, p99 ms), per subset of the host.
    Versions(Vec<ObservedVersion>),
}

pub struct ObservedVersion {
    pub subset: String,
    pub share: String,
    pub rate: String,
    pub success: String,
    pub p99: String,
}

async fn observe(state: &AppState, namespace: &str, host: &str, policy: &RoutingPolicy) -> Observed {
    let Some(prometheus) = &state.prometheus else { return Observed::NotConfigured };
    let report = match prometheus.observe(namespace, host, OBSERVED_WINDOW).await {
        Ok(report) => report,
        Err(error) => return Observed::Unreachable(error.to_string()),
    };
    let versions = policy
        .subsets
        .iter()
        .map(|subset| {
            let traffic = subset.labels.get("version").and_then(|version| report.version(version));
            let format = |value: Option<f64>, unit: &str| value.map_or("–".to_owned(), |v| format!("{v:.1}{unit}"));
            ObservedVersion {
                subset: policy.display_name(&subset.name),
                share: format(traffic.map(|t| t.share_percent), "%"),
                rate: format(traffic.map(|t| t.requests_per_second), " req/s"),
                success: format(traffic.and_then(|t| t.success_percent), "%"),
                p99: format(traffic.and_then(|t| t.p99_ms), " ms"),
            }
        })
        .collect();
    Observed::Versions(versions)
}

fn host_of(host: &str) -> Result<(), AppError> {
    check_dns_label("host", host).map_err(|problem| AppError::NotFound(problem.message))
}

pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, host)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> Result<Response, AppError> {
    host_of(&host)?;
    let notice = match notice.change {
        Some(id) => state.audit.get(id).await?.map(|e| format!("Change #{} {}: {}", e.id, e.outcome, e.summary)),
        None => None,
    };
    let page = view(&state, &actor, &namespace, &host, notice, None).await?;
    Ok(Html(page.render()?).into_response())
}

async fn view(
    state: &AppState,
    actor: &Actor,
    namespace: &str,
    host: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<CanaryPage, AppError> {
    let live = state.cached_routing(namespace, host);
    let policy = live.policy(host).unwrap_or_else(|_| RoutingPolicy::new(host));
    let current = canary::current(&live);
    let name = |subset: Option<&String>| subset.map(|s| policy.display_name(s)).unwrap_or_default();
    Ok(CanaryPage {
        layout: Layout::new(state, actor, Some(namespace)),
        namespace: namespace.to_owned(),
        host: host.to_owned(),
        csrf_token: state.csrf.token_for(&actor.name),
        allowed: state.changes.authorizer().allows(actor, Permission::Canary, namespace, Some(host)),
        stable_name: name(current.as_ref().map(|c| &c.stable)),
        canary_name: name(current.as_ref().map(|c| &c.canary)),
        subsets: policy.subsets.iter().map(|s| s.name.clone()).collect(),
        default_steps: DEFAULT_STEPS.map(|s| s.to_string()).join(", "),
        running: current.as_ref().is_some_and(Canary::is_active),
        canary: current,
        history: state.audit.for_object(namespace, "VirtualService", host, "canary.", HISTORY).await?,
        observed: observe(state, namespace, host, &policy).await,
        notice,
        error,
    })
}

pub async fn start(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, host)): Path<(String, String)>,
    Form(form): Form<StartForm>,
) -> Result<Response, AppError> {
    host_of(&host)?;
    let steps: Result<Vec<u32>, _> =
        form.steps.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse::<u32>).collect();
    let Ok(steps) = steps else {
        let page = view(
            &state,
            &actor,
            &namespace,
            &host,
            None,
            Some("steps: whole numbers separated by commas, e.g. 10, 25, 100".into()),
        )
        .await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response());
    };
    let step = Step::Start { stable: form.stable, canary: form.canary, steps };
    transition(&state, &actor, request_id, htmx, &namespace, &host, step).await
}

pub async fn step(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    htmx: Htmx,
    ManagedNamespace(namespace): ManagedNamespace,
    Path((_, host, name)): Path<(String, String, String)>,
    Form(form): Form<StepForm>,
) -> Result<Response, AppError> {
    host_of(&host)?;
    let step = Step::named(&name, form.full.is_some(), form.step)
        .ok_or_else(|| AppError::NotFound(format!("no canary operation {name:?}")))?;
    transition(&state, &actor, request_id, htmx, &namespace, &host, step).await
}

async fn transition(
    state: &AppState,
    actor: &Actor,
    request_id: RequestId,
    Htmx(htmx): Htmx,
    namespace: &str,
    host: &str,
    step: Step,
) -> Result<Response, AppError> {
    match canaries::run(state, actor.clone(), Source::Ui, request_id.0, namespace, host, step).await {
        Ok((_, audit_id)) => {
            let target = format!("/ns/{namespace}/canaries/{host}?change={audit_id}");
            Ok(if htmx {
                ([("hx-redirect", target)], StatusCode::OK).into_response()
            } else {
                Redirect::to(&target).into_response()
            })
        }
        Err(error @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            let status = error.status();
            let page = view(state, actor, namespace, host, None, Some(error.to_string())).await?;
            Ok((status, Html(page.render()?)).into_response())
        }
        Err(other) => Err(other),
    }
}
