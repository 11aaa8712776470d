//! `/api/v1/namespaces/{ns}/canaries/{host}`: canaries a team's pipeline can drive.
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::policy::canary::Canary;
use crate::traffic::Thresholds;

use super::audit::DryRun;
use crate::change::rollout::Step;
use crate::web::error::AppError;
use crate::web::extract::{ApiJson, Asked, ManagedHost};
use crate::web::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    stable: String,
    canary: String,
    #[serde(default)]
    steps: Vec<u32>,
    /// Auto-advance thresholds (omitted fields take their defaults); absent: off.
    #[serde(default)]
    analysis: Option<Thresholds>,
}

#[derive(Deserialize)]
pub struct PromoteQuery {
    #[serde(default)]
    full: bool,
    /// The step (index) the caller saw; when the canary has moved since, 409.
    step: Option<usize>,
    /// `finish?scaleDown=true`: also scale the old stable version to 0 replicas.
    #[serde(default, rename = "scaleDown")]
    scale_down: bool,
}

/// The JSON form of a canary.
pub fn canary_json(host: &str, canary: &Canary) -> Value {
    json!({
        "host": host,
        "stable": canary.stable,
        "canary": canary.canary,
        "steps": canary.steps,
        "step": canary.step,
        "weight": canary.weight(),
        "state": canary.state_name(),
        "analysis": canary.analysis,
    })
}

/// `GET`: the canary, or 404.
pub async fn get(
    State(state): State<AppState>,
    ManagedHost { namespace, host }: ManagedHost,
) -> Result<Json<Value>, AppError> {
    match state.rollouts.current(&namespace, &host).await? {
        Some(canary) => Ok(Json(canary_json(&host, &canary))),
        None => Err(AppError::NotFound(format!("{host} has no canary"))),
    }
}

/// `POST {"stable","canary","steps"}`: starts a canary at its first step (`?dryRun=true`
/// previews it: the canary it would be, its summary, the diff and the objects; nothing
/// changes and nothing is audited).
pub async fn start(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
    Query(DryRun { dry_run }): Query<DryRun>,
    ApiJson(body): ApiJson<StartBody>,
) -> Result<Response, AppError> {
    let step = Step::Start { stable: body.stable, canary: body.canary, steps: body.steps, analysis: body.analysis };
    if dry_run {
        let planned = state.rollouts.preview(&origin, &namespace, &host, &step).await?;
        let objects: Vec<Value> = planned.preview.after.objects().iter().flatten().cloned().collect();
        let mut body = canary_json(&host, &planned.canary);
        body["summary"] = json!(planned.summary);
        body["diff"] = json!(planned.preview.diff());
        body["objects"] = json!(objects);
        body["owned"] = json!(planned.preview.owned);
        return Ok(Json(body).into_response());
    }
    transition(&state, origin, &namespace, &host, step).await
}

/// `POST .../{promote|pause|resume|abort|finish}` (`promote?full=true` goes to 100%;
/// `promote?step=N` promotes only from step N; `finish?scaleDown=true` scales the old
/// stable version to 0).
pub async fn step(
    State(state): State<AppState>,
    Asked(origin): Asked,
    ManagedHost { namespace, host }: ManagedHost,
    Path((_, _, name)): Path<(String, String, String)>,
    Query(query): Query<PromoteQuery>,
) -> Result<Response, AppError> {
    let step = Step::named(&name, query.full, query.step, query.scale_down)
        .ok_or_else(|| AppError::NotFound(format!("no canary operation {name:?}")))?;
    transition(&state, origin, &namespace, &host, step).await
}

async fn transition(
    state: &AppState,
    origin: crate::change::Origin,
    namespace: &str,
    host: &str,
    step: Step,
) -> Result<Response, AppError> {
    let ran = state.rollouts.run(origin, namespace, host, step).await;
    match ran.map_err(AppError::from) {
        Ok((canary, audit_id)) => {
            let mut body = canary_json(host, &canary);
            body["auditId"] = json!(audit_id);
            Ok(Json(body).into_response())
        }
        // Someone moved the canary first: answer with its state now.
        Err(AppError::Conflict(message)) => {
            let now = state.rollouts.current(namespace, host).await?.map(|c| canary_json(host, &c));
            Ok((StatusCode::CONFLICT, Json(json!({"error": message, "field": null, "problems": [], "canary": now})))
                .into_response())
        }
        Err(other) => Err(other),
    }
}
