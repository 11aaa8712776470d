//! `/api/v1/audit`.
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;

use crate::audit::Entry;

use crate::web::audit_query::HistoryQuery;
use crate::web::error::AppError;
use crate::web::identity::Identity;
use crate::web::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;
/// Most bytes of documents one page holds: 1000 entries of 200 KiB would be 200 MiB in
/// memory (more once parsed and serialised). A page cut short by it still has `next`.
const PAGE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Serialize)]
pub struct EntryList {
    entries: Vec<Entry>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next: Option<i64>,
}

/// `GET ?namespace=&object=&actor=&action=&outcome=&source=&from=&to=&limit=&before=`:
/// matching entries, newest first: `limit` of them (1 to 1000), fewer when they hold more
/// than [`PAGE_BYTES`] of documents.
pub async fn list(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<EntryList>, AppError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::invalid("limit", format!("must be from 1 to {MAX_LIMIT}")));
    }
    let filter = state.visible_filter(&actor, query.parsed()?);
    let fitting = state.audit.batch_within(&filter, query.before, limit, PAGE_BYTES).await?;
    let entries = state.audit.search(&filter, query.before, fitting).await?;
    // A page cut short by its size has older entries after it, as a full page may.
    let cut_short =
        fitting < limit && state.audit.batch_within(&filter, query.before, limit, usize::MAX).await? > fitting;
    let next = (entries.len() == limit as usize || cut_short).then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(EntryList { entries, next }))
}

/// `GET /api/v1/audit/{id}`.
pub async fn one(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Path(id): Path<i64>,
) -> Result<Json<Entry>, AppError> {
    state.visible_entry(&actor, id).await.map(Json)
}

/// `GET /api/v1/audit/verify`: recomputes the hash chain and compares it with the anchor
/// kept outside the database (`anchor.checked` false, with the reason, when it could not be).
/// Its verdict is about every entry, so only an actor who may view every managed namespace
/// gets it.
pub async fn verify(
    State(state): State<AppState>,
    Identity(actor): Identity,
) -> Result<Json<crate::audit::VerifyReport>, AppError> {
    if !state.view_scope(&actor).everything(&state.managed_namespaces()) {
        return Err(AppError::Forbidden(format!(
            "{} may not verify the whole audit log: that needs view of every managed namespace",
            actor.name
        )));
    }
    let report = match &state.anchor {
        Some(anchor) => anchor.verify(&state.audit).await?,
        None => {
            let report = state.audit.verify().await?;
            state.audit.compare_with_anchor(report, &crate::audit::AnchorReading::Off, "", None).await?
        }
    };
    Ok(Json(report))
}

#[derive(serde::Deserialize, Default)]
pub struct RevertBody {
    /// Revert even though the object changed since the entry.
    #[serde(default)]
    force: bool,
}

#[derive(serde::Deserialize)]
pub struct DryRun {
    #[serde(default, rename = "dryRun")]
    pub dry_run: bool,
}

/// `POST /api/v1/audit/{id}/revert` (`?dryRun=true` previews): restores the entry's before state.
pub async fn revert(
    State(state): State<AppState>,
    crate::web::extract::Asked(origin): crate::web::extract::Asked,
    Path(id): Path<i64>,
    Query(DryRun { dry_run }): Query<DryRun>,
    crate::web::extract::ApiJson(body): crate::web::extract::ApiJson<RevertBody>,
) -> Result<Json<serde_json::Value>, AppError> {
    let entry = state.visible_entry(&origin.actor, id).await?;
    let change = state.changes.plan_revert(&entry, &origin, body.force).await?;
    if dry_run {
        let preview = state.changes.preview(&change).await?;
        let objects = preview.after.objects();
        let owned = &preview.owned;
        return Ok(Json(
            serde_json::json!({"summary": change.summary, "diff": preview.diff(), "objects": objects, "owned": owned}),
        ));
    }
    let applied = state.changes.execute(change).await?;
    Ok(Json(serde_json::json!({"auditId": applied.audit_id, "reverts": id})))
}
