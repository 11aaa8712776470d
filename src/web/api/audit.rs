//! `/api/v1/audit`.
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::audit::Entry;

use super::super::error::AppError;
use super::super::state::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1000;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
pub struct EntryList {
    entries: Vec<Entry>,
}

/// `GET ?limit=N`: the newest entries first.
pub async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<EntryList>, AppError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::invalid("limit", format!("must be from 1 to {MAX_LIMIT}")));
    }
    Ok(Json(EntryList { entries: state.audit.recent(limit).await? }))
}

/// `GET /api/v1/audit/verify`: recomputes the hash chain.
pub async fn verify(State(state): State<AppState>) -> Result<Json<crate::audit::VerifyReport>, AppError> {
    Ok(Json(state.audit.verify().await?))
}
