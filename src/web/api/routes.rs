//! `/api/v1/namespaces/{ns}/routes/{host}`: a host's routing policy.
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audit::Source;
use crate::change::routes::{self, ResourceVersions, RouteRequest, RoutingApi};
use crate::change::{Change, http_routes};
use crate::policy::{self, RoutingPolicy};
use crate::problem::FieldProblem;

use super::super::error::AppError;
use super::super::extract::{ApiJson, ManagedHost, RequestId};
use super::super::identity::Identity;
use super::super::state::AppState;
use super::audit::DryRun;

/// The body of GET and PUT: the policy and the resourceVersions it was read at.
#[derive(Deserialize)]
pub struct PolicyBody {
    #[serde(flatten)]
    policy: RoutingPolicy,
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<ResourceVersions>,
    /// Which API routes the host: `VirtualService` or `HTTPRoute`. It chooses what a host
    /// nothing routes yet gets (VirtualService when absent); it cannot switch a routed host.
    #[serde(default)]
    kind: Option<RoutingApi>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutOptions {
    #[serde(default)]
    dry_run: bool,
    /// Answer only once every proxy has the change, or this long (e.g. `10s`) has passed.
    wait_for_proxies: Option<String>,
}

/// The longest `waitForProxies` accepted (below the request timeout).
const MAX_WAIT_FOR_PROXIES: Duration = Duration::from_secs(25);

fn wait_for_proxies(text: Option<&str>) -> Result<Option<Duration>, AppError> {
    let Some(text) = text else { return Ok(None) };
    match policy::parse_duration_seconds(text) {
        Some(seconds) if seconds > 0.0 && seconds <= MAX_WAIT_FOR_PROXIES.as_secs_f64() => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(AppError::BadRequest(vec![FieldProblem::new(
            "waitForProxies",
            format!("must be a duration like 10s, at most {}s", MAX_WAIT_FOR_PROXIES.as_secs()),
        )])),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "root_path")]
    path: String,
    #[serde(default = "get_method")]
    method: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

fn root_path() -> String {
    "/".into()
}

fn get_method() -> String {
    "GET".into()
}

/// 404 for a host nothing in the namespace routes, naming it.
fn routes_nothing(host: &str, namespace: &str) -> AppError {
    AppError::NotFound(format!(
        "{host} routes nothing in {namespace}: no VirtualService names it in spec.hosts, no DestinationRule in \
         spec.host and no HTTPRoute has its Service as a parentRef"
    ))
}

/// `GET`: the policy; 404 when nothing routes the host; 409 naming the objects when its
/// routing is spread over several VirtualServices or DestinationRules, or delegated.
pub async fn get(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Json<Value>, AppError> {
    let live = state.reads.live_routing(&namespace, &host).await?;
    if !live.exists() {
        return Err(routes_nothing(&host, &namespace));
    }
    let policy = live.policy(&host)?;
    let mut body = serde_json::to_value(&policy).map_err(|e| AppError::Internal(e.to_string()))?;
    body["resourceVersion"] = json!(live.resource_versions());
    body["kind"] = json!(live.api);
    Ok(Json(body))
}

/// `PUT`: makes the body the host's policy; `?dryRun=true` previews without changing anything.
pub async fn put(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    ManagedHost { namespace, host }: ManagedHost,
    Query(options): Query<PutOptions>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<Response, AppError> {
    let wait = wait_for_proxies(options.wait_for_proxies.as_deref())?;
    let origin = request_id.origin(actor, Source::Api);
    state
        .changes
        .authorize_first(&routes::attempt(&origin, &namespace, &host, "route.update"), options.dry_run)
        .await?;
    let mut desired = body.policy;
    if desired.host.is_empty() {
        desired.host = host.clone();
    } else if desired.host != host {
        return Err(AppError::invalid("host", format!("must be {host}, the host in the URL")));
    }
    let mut live = state.reads.live_routing(&namespace, &host).await?;
    if let Some(reason) = live.write_conflict(body.resource_version.as_ref()) {
        return Err(AppError::Conflict(reason));
    }
    match body.kind {
        Some(kind) if !live.exists() => live.api = kind,
        Some(kind) if kind != live.api => {
            let message =
                format!("{host} is routed by a {:?}; this API edits it in place and does not switch APIs", live.api);
            return Err(AppError::invalid("kind", message));
        }
        _ => {}
    }
    let context = state.reads.validation_context(&namespace, &host);
    let request = RouteRequest {
        origin: &origin,
        namespace: &namespace,
        live: &live,
        expected: body.resource_version.as_ref(),
        context: &context,
    };
    let (change, warnings) = routes::update(&request, "route.update", &desired);
    if options.dry_run {
        let preview = state.changes.preview(&change).await?;
        let objects: Vec<Value> = preview.after.objects().iter().flatten().cloned().collect();
        return Ok(Json(json!({"objects": objects, "diff": preview.diff(), "warnings": warnings})).into_response());
    }
    let applied = state.changes.execute(change).await?;
    let mut body = json!({"auditId": applied.audit_id, "objects": applied.after.objects(), "warnings": warnings});
    if let Some(wait) = wait {
        body["sync"] = json!(state.changes.propagation().wait(&namespace, &host, wait).await);
    }
    Ok(Json(body).into_response())
}

/// `POST …/version-services`: creates a per-version Service for each deployed version of the
/// host that has none (an HTTPRoute's backends); `?dryRun=true` previews. 409 when every
/// version has one.
pub async fn create_version_services(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    ManagedHost { namespace, host }: ManagedHost,
    Query(DryRun { dry_run }): Query<DryRun>,
) -> Result<Response, AppError> {
    let origin = request_id.origin(actor, Source::Api);
    state
        .changes
        .authorize_first(&routes::attempt(&origin, &namespace, &host, "route.version-services"), dry_run)
        .await?;
    let live = state.reads.live_routing(&namespace, &host).await?;
    let host_service = state.reads.host_service(&namespace, &host).await?;
    let deployed = state.reads.versions(&namespace);
    let change =
        http_routes::create_version_services(&origin, &namespace, &host, &live, &deployed, host_service.as_ref())
            .map_err(AppError::Conflict)?;
    preview_or_apply(&state, change, dry_run).await
}

/// `POST …/migrate`: moves the host from its VirtualService to an equivalent HTTPRoute in
/// one audited change (see [`http_routes::migrate`]); `?dryRun=true` previews.
/// 422 lists what the Gateway API cannot say; revert the audit entry to undo.
pub async fn migrate(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    ManagedHost { namespace, host }: ManagedHost,
    Query(DryRun { dry_run }): Query<DryRun>,
) -> Result<Response, AppError> {
    let origin = request_id.origin(actor, Source::Api);
    state.changes.authorize_first(&routes::attempt(&origin, &namespace, &host, "route.migrate"), dry_run).await?;
    let live = state.reads.live_routing(&namespace, &host).await?;
    let host_service = state.reads.host_service(&namespace, &host).await?;
    let context = state.reads.validation_context(&namespace, &host);
    let request =
        RouteRequest { origin: &origin, namespace: &namespace, live: &live, expected: None, context: &context };
    let change = http_routes::migrate(&request, &host, host_service.as_ref()).map_err(AppError::Conflict)?;
    preview_or_apply(&state, change, dry_run).await
}

/// With `dryRun`, the change's summary, planned objects and diff; else the change applied.
async fn preview_or_apply(state: &AppState, change: Change, dry_run: bool) -> Result<Response, AppError> {
    if dry_run {
        let preview = state.changes.preview(&change).await?;
        let objects: Vec<Value> = preview.after.objects().iter().flatten().cloned().collect();
        return Ok(Json(json!({"summary": change.summary, "objects": objects, "diff": preview.diff()})).into_response());
    }
    let applied = state.changes.execute(change).await?;
    Ok(Json(json!({"auditId": applied.audit_id, "objects": applied.after.objects()})).into_response())
}

/// `DELETE`: removes what routes the host (see [`routes::delete`]); 409 naming the object
/// when that would change other hosts' routing, or the routing is ambiguous.
pub async fn remove(
    State(state): State<AppState>,
    Identity(actor): Identity,
    request_id: RequestId,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Response, AppError> {
    let origin = request_id.origin(actor, Source::Api);
    state.changes.authorize_first(&routes::attempt(&origin, &namespace, &host, "route.delete"), false).await?;
    let live = state.reads.live_routing(&namespace, &host).await?;
    if !live.exists() {
        return Err(routes_nothing(&host, &namespace));
    }
    let context = Default::default();
    let request =
        RouteRequest { origin: &origin, namespace: &namespace, live: &live, expected: None, context: &context };
    let change = routes::delete(&request, &host).map_err(AppError::Conflict)?;
    let applied = state.changes.execute(change).await?;
    Ok(Json(json!({"auditId": applied.audit_id})).into_response())
}

/// `GET .../sync`: whether the proxies have the host's last change, per proxy.
pub async fn sync(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Json<Value>, AppError> {
    Ok(Json(json!(state.changes.propagation().status(&namespace, &host).await)))
}

/// `POST .../test`: which rule a request would match, and the subsets' shares.
pub async fn test(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<Value>, AppError> {
    let live = state.reads.live_routing(&namespace, &host).await?;
    if !live.exists() {
        return Err(routes_nothing(&host, &namespace));
    }
    let policy = live.policy(&host)?;
    let request = policy::Request { path: body.path, method: body.method, headers: body.headers };
    let evaluation = super::super::route_test::evaluate(policy, request, live.precedence()).await?;
    let shares: Map<String, Value> =
        evaluation.shares.into_iter().map(|(subset, weight)| (subset, json!(weight))).collect();
    let mut answer = json!({"rule": evaluation.rule, "shares": shares});
    if let Some(why) = evaluation.why {
        answer["why"] = json!(why);
    }
    Ok(Json(answer))
}
