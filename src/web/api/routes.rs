//! `/api/v1/namespaces/{ns}/routes/{host}`: a host's routing policy.
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::authz::Actor;
use crate::change::Origin;
use crate::change::routes::{ResourceVersions, RoutingApi};
use crate::policy::{self, RoutingPolicy};
use crate::problem::FieldProblem;
use crate::routing::{Host, Intent, Proposal, routes_nothing};

use super::audit::DryRun;
use crate::web::error::AppError;
use crate::web::extract::{ApiJson, Asked, ManagedHost};
use crate::web::identity::Identity;
use crate::web::state::AppState;
use crate::web::view::envoy_source;

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
    /// What GET adds that is istiod's to say (its analysis): taken back and ignored, so that
    /// a GET, edit, PUT round trip works.
    #[serde(default, rename = "analysis")]
    _analysis: serde::de::IgnoredAny,
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
    /// Who sends the request; none: not said (a rule for some callers only is named in `why`).
    #[serde(default)]
    source: Option<SourceBody>,
    /// `http` when not given.
    #[serde(default)]
    scheme: Option<String>,
    /// The port the request is sent to.
    #[serde(default)]
    port: Option<u16>,
    /// The gateway the request passes; none: a sidecar's request (`mesh`).
    #[serde(default)]
    gateway: Option<String>,
}

/// `{"workload": "customer"}` (a Deployment of the namespace: its pods' labels) or
/// `{"namespace": "shop", "labels": {"app": "web"}}` (the namespace defaults to the host's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    #[serde(default)]
    workload: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
}

impl SourceBody {
    fn caller(self, state: &AppState, actor: &Actor, namespace: &str) -> Result<policy::Caller, AppError> {
        match self {
            SourceBody { workload: Some(workload), namespace: None, labels } if labels.is_empty() => {
                state.caller_named(actor, namespace, &workload, "source.workload")
            }
            SourceBody { workload: Some(_), .. } => Err(AppError::Invalid(vec![FieldProblem::new(
                "source",
                "name either a workload or a namespace and labels, not both",
            )])),
            SourceBody { workload: None, namespace: source_namespace, labels } => {
                Ok(policy::Caller { namespace: source_namespace.unwrap_or_else(|| namespace.to_owned()), labels })
            }
        }
    }
}

fn root_path() -> String {
    "/".into()
}

fn get_method() -> String {
    "GET".into()
}

/// `GET`: the policy; 404 when nothing routes the host; 409 naming the objects when its
/// routing is spread over several VirtualServices or DestinationRules, or delegated.
pub async fn get(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Json<Value>, AppError> {
    // Read from the API server, as `kubectl get` is: a script that edits with kubectl and
    // then reads here sees its edit (the caches may not hold it yet).
    let live = state.routing.read(Host { namespace: &namespace, name: &host }).await?;
    if !live.exists() {
        return Err(AppError::NotFound(routes_nothing(&host, &namespace)));
    }
    let policy = live.policy(&host)?;
    let mut body = serde_json::to_value(&policy).map_err(|e| AppError::Internal(e.to_string()))?;
    body["resourceVersion"] = json!(live.resource_versions());
    body["kind"] = json!(live.api);
    body["analysis"] = json!(live.analysis());
    Ok(Json(body))
}

/// `PUT`: makes the body the host's policy; `?dryRun=true` previews without changing anything.
pub async fn put(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
    Query(options): Query<PutOptions>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<Response, AppError> {
    let wait = wait_for_proxies(options.wait_for_proxies.as_deref())?;
    let proposal = Proposal::Update { policy: body.policy, api: body.kind };
    let target = Host { namespace: &namespace, name: &host };
    let seen = body.resource_version.as_ref();
    let plan = state.routing.plan(&origin, target, proposal, seen, intent(options.dry_run)).await?;
    let warnings = plan.warnings.clone();
    if options.dry_run {
        let preview = state.routing.preview(&plan).await?;
        let objects: Vec<Value> = preview.after.objects().iter().flatten().cloned().collect();
        let body = json!({"objects": objects, "diff": preview.diff(), "warnings": warnings, "owned": preview.owned});
        return Ok(Json(body).into_response());
    }
    let applied = state.routing.apply(plan).await?;
    let mut body = json!({"auditId": applied.audit_id, "objects": applied.after.objects(), "warnings": warnings});
    if let Some(wait) = wait {
        let sync = state.changes.propagation().wait(&namespace, &host, wait).await;
        body["sync"] = json!(state.sync_for(&origin.actor, &namespace, sync));
    }
    Ok(Json(body).into_response())
}

fn intent(dry_run: bool) -> Intent {
    if dry_run { Intent::Preview } else { Intent::Apply }
}

/// `POST …/version-services`: creates a per-version Service for each deployed version of the
/// host that has none (an HTTPRoute's backends); `?dryRun=true` previews. 409 when every
/// version has one.
pub async fn create_version_services(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
    Query(DryRun { dry_run }): Query<DryRun>,
) -> Result<Response, AppError> {
    let target = Host { namespace: &namespace, name: &host };
    preview_or_apply(&state, &origin, target, Proposal::VersionServices, dry_run).await
}

/// `POST …/migrate`: moves the host from its VirtualService to an equivalent HTTPRoute in
/// one audited change (see [`crate::change::http_routes::migrate`]); `?dryRun=true` previews.
/// 422 lists what the Gateway API cannot say; revert the audit entry to undo.
pub async fn migrate(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
    Query(DryRun { dry_run }): Query<DryRun>,
) -> Result<Response, AppError> {
    let target = Host { namespace: &namespace, name: &host };
    preview_or_apply(&state, &origin, target, Proposal::Migrate, dry_run).await
}

/// With `dryRun`, the change's summary, planned objects and diff; else the change applied.
async fn preview_or_apply(
    state: &AppState,
    origin: &Origin,
    target: Host<'_>,
    proposal: Proposal,
    dry_run: bool,
) -> Result<Response, AppError> {
    let plan = state.routing.plan(origin, target, proposal, None, intent(dry_run)).await?;
    if dry_run {
        let preview = state.routing.preview(&plan).await?;
        let objects: Vec<Value> = preview.after.objects().iter().flatten().cloned().collect();
        let summary = &plan.change.summary;
        let body = json!({"summary": summary, "objects": objects, "diff": preview.diff(), "owned": preview.owned});
        return Ok(Json(body).into_response());
    }
    let applied = state.routing.apply(plan).await?;
    Ok(Json(json!({"auditId": applied.audit_id, "objects": applied.after.objects()})).into_response())
}

/// `DELETE`: removes what routes the host (see [`crate::change::routes::delete`]); 409
/// naming the object when that would change other hosts' routing, or the routing is
/// ambiguous.
pub async fn remove(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Response, AppError> {
    let target = Host { namespace: &namespace, name: &host };
    let plan = state.routing.plan(&origin, target, Proposal::Delete, None, Intent::Apply).await?;
    let applied = state.routing.apply(plan).await?;
    Ok(Json(json!({"auditId": applied.audit_id})).into_response())
}

#[derive(Deserialize)]
pub struct EnvoyQuery {
    /// The workload whose sidecar is read (a Deployment of the namespace).
    #[serde(default)]
    source: Option<String>,
}

impl EnvoyQuery {
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref().filter(|source| !source.is_empty())
    }
}

/// `GET .../envoy?source=customer`: the route table istiod sends a sidecar of that workload
/// for the host, route by route, and whether it is what the console's model predicts.
pub async fn envoy(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
    Query(query): Query<EnvoyQuery>,
) -> Result<Json<Value>, AppError> {
    let callers = state.callers_for(&actor, &namespace);
    let workload = envoy_source(callers, &namespace, &host, query.source())?;
    let view = state.routing.envoy_view(Host { namespace: &namespace, name: &host }, &workload).await?;
    Ok(Json(json!(view)))
}

/// `GET .../sync`: whether the proxies have the host's last change, per proxy.
pub async fn sync(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Json<Value>, AppError> {
    let sync = state.changes.propagation().status(&namespace, &host).await;
    Ok(Json(json!(state.sync_for(&actor, &namespace, sync))))
}

/// `POST .../test`: which rule a request would match, and the subsets' shares.
pub async fn test(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
    ApiJson(body): ApiJson<TestRequest>,
) -> Result<Json<Value>, AppError> {
    let source = body.source.map(|source| source.caller(&state, &actor, &namespace)).transpose()?;
    // Read from the API server, as `kubectl get` is: a script that edits with kubectl and
    // then reads here sees its edit (the caches may not hold it yet).
    let live = state.routing.read(Host { namespace: &namespace, name: &host }).await?;
    if !live.exists() {
        return Err(AppError::NotFound(routes_nothing(&host, &namespace)));
    }
    let policy = live.tested_policy(&host)?;
    let request = policy::Request {
        path: body.path,
        method: body.method,
        headers: body.headers,
        scheme: body.scheme,
        port: body.port,
        source,
        gateway: body.gateway,
    };
    let evaluation = crate::routing::tester::evaluate(policy, request, live.precedence()).await;
    let shares: Map<String, Value> =
        evaluation.shares.into_iter().map(|(subset, weight)| (subset, json!(weight))).collect();
    let mut answer = json!({"rule": evaluation.rule, "shares": shares});
    if evaluation.no_route {
        answer["noRoute"] = json!(true);
    }
    if let Some(why) = evaluation.why {
        answer["why"] = json!(why);
    }
    Ok(Json(answer))
}
