//! The audit list: the latest changes, newest first.
use askama::Template;
use axum::extract::State;
use axum::response::Response;

use crate::audit::Entry;

use super::super::error::AppError;
use super::super::identity::Identity;
use super::super::layout::Layout;
use super::super::state::AppState;
use super::render;

const PAGE_SIZE: u32 = 100;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    entries: Vec<Entry>,
    verified: crate::audit::VerifyReport,
}

#[derive(Template)]
#[template(path = "partials/audit_rows.html")]
struct AuditRows {
    entries: Vec<Entry>,
}

pub async fn page(State(state): State<AppState>, Identity(actor): Identity) -> Result<Response, AppError> {
    let entries = state.audit.recent(PAGE_SIZE).await?;
    let verified = state.audit.verify().await?;
    render(&AuditPage { layout: Layout::new(&state, &actor, None), entries, verified })
}

pub async fn rows(State(state): State<AppState>) -> Result<Response, AppError> {
    render(&AuditRows { entries: state.audit.recent(PAGE_SIZE).await? })
}
