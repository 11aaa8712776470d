//! Proposals: changes held for a second person's approval (`change::approval`). The page
//! `/proposals` and `GET /api/v1/proposals` list those the actor may view; approve and
//! reject go through the change path, which decides who may.
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::proposals::Proposal;
use crate::authz::Actor;
use crate::web::error::AppError;
use crate::web::extract::{ApiJson, Asked, Htmx, one_line};
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::pages::route_view::DiffLine;
use crate::web::state::AppState;

/// Longer rejection reasons are cut: the reason is a line in the audit, not a report.
const REASON_CHARS: usize = 500;

/// How many proposals the list shows, newest first.
const LISTED: u32 = 100;

/// A proposal as the page shows it.
pub struct ProposalView {
    pub proposal: Proposal,
    pub state: String,
    pub diff: Vec<DiffLine>,
    /// The actor may decide it: open, not theirs (the path checks the permission).
    pub decidable: bool,
}

#[derive(Template)]
#[template(path = "proposals.html")]
struct ProposalsPage {
    layout: Layout,
    proposals: Vec<ProposalView>,
}

#[derive(Deserialize, Default)]
pub struct RejectBody {
    #[serde(default)]
    reason: String,
}

/// The proposals the actor may view, newest first.
async fn visible(state: &AppState, actor: &Actor) -> Result<Vec<Proposal>, AppError> {
    let scope = state.view_scope(actor);
    let all = state.audit.proposals(LISTED).await?;
    Ok(all.into_iter().filter(|p| sees(&scope, p)).collect())
}

fn sees(scope: &crate::authz::ViewScope, proposal: &Proposal) -> bool {
    scope.host_or_whole(&proposal.namespace, proposal.host.as_deref())
}

/// One proposal the actor may view; any other id is a 404, as if it did not exist.
async fn visible_proposal(state: &AppState, actor: &Actor, id: i64) -> Result<Proposal, AppError> {
    let proposal = state.audit.proposal(id).await?;
    proposal
        .filter(|p| sees(&state.view_scope(actor), p))
        .ok_or_else(|| AppError::NotFound(format!("no proposal #{id}")))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub async fn page(State(state): State<AppState>, Identity(actor): Identity) -> Result<Response, AppError> {
    let proposals = visible(&state, &actor)
        .await?
        .into_iter()
        .map(|proposal| {
            let state_now = proposal.state_at(now_ms()).to_owned();
            let decidable = actor.authenticated && state_now == "open" && proposal.proposer != actor.name;
            ProposalView { diff: DiffLine::parse(&proposal.diff), state: state_now, decidable, proposal }
        })
        .collect();
    let page = ProposalsPage { layout: Layout::new(&state, &actor, None), proposals };
    Ok(Html(page.render()?).into_response())
}

pub async fn api_list(State(state): State<AppState>, Identity(actor): Identity) -> Result<Json<Value>, AppError> {
    let listed: Vec<Value> = visible(&state, &actor)
        .await?
        .into_iter()
        .map(|proposal| {
            let mut value = json!(proposal);
            value["status"] = json!(proposal.state_at(now_ms()));
            value
        })
        .collect();
    Ok(Json(json!({"proposals": listed})))
}

pub async fn api_approve(
    State(state): State<AppState>,
    Asked(origin): Asked,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    visible_proposal(&state, &origin.actor, id).await?;
    let applied = state.changes.approve(id, &origin.actor).await?;
    Ok(Json(json!({"proposalId": id, "status": "applied", "auditId": applied.audit_id})))
}

pub async fn api_reject(
    State(state): State<AppState>,
    Asked(origin): Asked,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<RejectBody>,
) -> Result<Json<Value>, AppError> {
    let reason = required_reason(&body.reason)?;
    visible_proposal(&state, &origin.actor, id).await?;
    let audit_id = state.changes.reject(id, &origin.actor, &reason).await?;
    Ok(Json(json!({"proposalId": id, "status": "rejected", "auditId": audit_id})))
}

pub async fn approve(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    visible_proposal(&state, &origin.actor, id).await?;
    let applied = state.changes.approve(id, &origin.actor).await?;
    Ok(htmx.redirect(&format!("/audit/{}", applied.audit_id)))
}

pub async fn reject(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    Path(id): Path<i64>,
    Form(form): Form<RejectBody>,
) -> Result<Response, AppError> {
    let reason = required_reason(&form.reason)?;
    visible_proposal(&state, &origin.actor, id).await?;
    state.changes.reject(id, &origin.actor, &reason).await?;
    Ok(htmx.redirect("/proposals"))
}

/// A rejection says why (at most 500 characters, one line).
fn required_reason(reason: &str) -> Result<String, AppError> {
    let reason = one_line(reason, REASON_CHARS);
    if reason.is_empty() {
        return Err(AppError::invalid("reason", "say why the proposal is rejected"));
    }
    Ok(reason)
}
