//! The audit history: filters, keyset pages, and each entry with its diff.
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::audit::{Entry, Filter, VerifyReport};
use crate::authz::Actor;
use crate::change::diff_labeled;
use crate::change::documents::Documents;
use crate::change::outside::{self, Overwrite};
use crate::problem::FieldProblem;

use super::render;
use super::route_view::DiffLine;
use crate::pictures::bars::BarSet;
use crate::pictures::change_bars;
use crate::web::audit_query::HistoryQuery;
use crate::web::error::AppError;
use crate::web::extract::Asked;
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::state::AppState;

const PAGE_SIZE: u32 = 50;
/// How far around a change the trace links look.
const TRACE_WINDOW_MS: i64 = 5 * 60 * 1000;

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    /// The rendered rows (`partials/audit_rows.html`), kept between views.
    rows: Arc<str>,
    /// None for an actor who may not view the whole log.
    verified: Option<VerifyReport>,
    query: HistoryQuery,
    /// `?...` repeating the filters, for the polled rows and the "Older" link.
    filters: String,
    older: Option<i64>,
    /// Filters that could not be read (a time that is not one), shown at their fields.
    problems: Vec<FieldProblem>,
}

/// A time filter's input, with its problem when it could not be read.
struct TimeField<'a> {
    field: &'static str,
    label: &'static str,
    value: &'a str,
    error: Option<&'a str>,
}

impl AuditPage {
    fn time_fields(&self) -> [TimeField<'_>; 2] {
        let error = |field: &str| self.problems.iter().find(|p| p.field == field).map(|p| p.message.as_str());
        [
            TimeField {
                field: "from",
                label: "From",
                value: self.query.from.as_deref().unwrap_or(""),
                error: error("from"),
            },
            TimeField { field: "to", label: "To", value: self.query.to.as_deref().unwrap_or(""), error: error("to") },
        ]
    }
}

#[derive(Template)]
#[template(path = "partials/audit_rows.html")]
struct AuditRows {
    entries: Arc<Vec<Entry>>,
}

#[derive(Template)]
#[template(path = "audit_entry.html")]
struct EntryPage {
    layout: Layout,
    entry: Entry,
    diff: Vec<DiffLine>,
    /// A routing change's rules as bars, before and after; empty for other changes.
    bar_sets: Vec<BarSet>,
    service: String,
    traces: Option<String>,
    kiali: Option<String>,
    revertible: bool,
    revert: Option<RevertPreview>,
    /// Outside changes of its object after it (a GitOps sync undoing it).
    overwritten: Vec<Overwrite>,
}

/// A revert about to be confirmed: its diff against the live objects.
pub struct RevertPreview {
    /// What the revert does, including the shared objects it keeps.
    summary: Option<String>,
    diff: Vec<DiffLine>,
    /// The objects changed since the entry: confirming reverts anyway.
    conflict: Option<String>,
    error: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct RevertForm {
    #[serde(default)]
    force: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, AppError> {
    let (filter, problems) = match query.parsed() {
        Ok(filter) => (state.visible_filter(&actor, filter), Vec::new()),
        // The page again, with the message next to the field and no entries: an unread
        // filter must not widen the history shown.
        Err(AppError::Invalid(problems)) => (Filter::nothing(), problems),
        Err(other) => return Err(other),
    };
    let entries = state.audit.search_summaries(&filter, query.before, PAGE_SIZE).await?;
    let older = (entries.len() == PAGE_SIZE as usize).then(|| entries.last().map(|e| e.id)).flatten();
    let rows = rendered_rows(&state, &entries)?;
    // The verdict is about the whole log: only for those who may view all of it.
    let verified = match state.view_scope(&actor).everything(&state.managed_namespaces()) {
        true => Some(state.audit.verify_incremental().await?),
        false => None,
    };
    let filters = query.query_string();
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let page = AuditPage { layout: Layout::new(&state, &actor, None), rows, verified, query, filters, older, problems };
    Ok((status, Html(page.render()?)).into_response())
}

/// The first page's rows, polled by the page.
pub async fn rows(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, AppError> {
    let filter = state.visible_filter(&actor, query.parsed()?);
    let entries = state.audit.search_summaries(&filter, None, PAGE_SIZE).await?;
    Ok(Html(rendered_rows(&state, &entries)?.to_string()).into_response())
}

/// The rows of `entries`, rendered once per page the store hands out.
fn rendered_rows(state: &AppState, entries: &Arc<Vec<Entry>>) -> Result<Arc<str>, AppError> {
    let render = || AuditRows { entries: entries.clone() }.render();
    Ok(state.audit_rows.get_or(entries, render)?)
}

/// `/audit/{id}`: one entry, its before/after diff, and where to look around that time.
pub async fn entry(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    render(&entry_page(&state, &actor, id, None).await?)
}

/// `POST /audit/{id}/revert/preview`: the revert's diff and dry run, to confirm.
pub async fn revert_preview(
    State(state): State<AppState>,
    Asked(origin): Asked,
    Path(id): Path<i64>,
    Form(form): Form<RevertForm>,
) -> Result<Response, AppError> {
    let force = form.force.is_some();
    let entry = state.visible_entry(&origin.actor, id).await?;
    let (change, conflict) = match state.changes.plan_revert(&entry, &origin, force).await.map_err(AppError::from) {
        Ok(change) => (change, None),
        // Changed since: the preview shows the conflict and offers to revert anyway.
        Err(AppError::Conflict(message)) => (state.changes.plan_revert(&entry, &origin, true).await?, Some(message)),
        Err(other) => return Err(other),
    };
    let (status, preview) = match state.changes.preview(&change).await {
        Ok(preview) => {
            (StatusCode::OK, RevertPreview { conflict, ..RevertPreview::of(&change, DiffLine::parse(&preview.diff())) })
        }
        // Shown in the preview, where the Revert button would be. A refusal's status says
        // why (403 for a denied object); the page itself rendered, so other errors stay 200.
        Err(error) => {
            let error = AppError::from(error);
            let status = Some(error.status()).filter(|s| s.is_client_error()).unwrap_or(StatusCode::OK);
            let preview =
                RevertPreview { conflict, error: Some(error.to_string()), ..RevertPreview::of(&change, Vec::new()) };
            (status, preview)
        }
    };
    let mut response = render(&entry_page(&state, &origin.actor, id, Some(preview)).await?)?;
    *response.status_mut() = status;
    Ok(response)
}

impl RevertPreview {
    fn of(change: &crate::change::Change, diff: Vec<DiffLine>) -> Self {
        Self { summary: Some(change.summary.clone()), diff, conflict: None, error: None }
    }
}

/// `POST /audit/{id}/revert`: applies the revert (with `force` after a conflict was shown).
pub async fn revert(
    State(state): State<AppState>,
    Asked(origin): Asked,
    Path(id): Path<i64>,
    Form(form): Form<RevertForm>,
) -> Result<Response, AppError> {
    let entry = state.visible_entry(&origin.actor, id).await?;
    let change = state.changes.plan_revert(&entry, &origin, form.force.is_some()).await?;
    let applied = state.changes.execute(change).await?;
    Ok(Redirect::to(&format!("/audit/{}", applied.audit_id)).into_response())
}

async fn entry_page(
    state: &AppState,
    actor: &Actor,
    id: i64,
    revert: Option<RevertPreview>,
) -> Result<EntryPage, AppError> {
    let entry = state.visible_entry(actor, id).await?;
    let before = Documents::from_document(entry.before.as_ref(), 1);
    let after = Documents::from_document(entry.after.as_ref(), 1);
    // An entry that applied nothing has no after: its diff would read as everything deleted.
    let diff = match entry.after {
        Some(_) => DiffLine::parse(&diff_labeled(&before, &after, ("before", "after"))),
        None => Vec::new(),
    };
    let bar_sets = change_bars::before_after("audit-bars", entry.before.as_ref(), entry.after.as_ref())
        .map(Vec::from)
        .unwrap_or_default();
    let service = service_of(&entry);
    let start = jiff::Timestamp::from_millisecond(entry.time_ms - TRACE_WINDOW_MS).ok();
    let end = jiff::Timestamp::from_millisecond(entry.time_ms + TRACE_WINDOW_MS).ok();
    let traces = start
        .zip(end)
        .and_then(|(start, end)| state.links.jaeger_traces_between(&entry.namespace, &service, start, end));
    let kiali = state.links.kiali_service(&entry.namespace, &service);
    let revertible = actor.authenticated && crate::change::revert::refusal(&entry).is_none();
    let overwritten = overwrites_of(state, &entry).await?;
    Ok(EntryPage {
        layout: Layout::new(state, actor, Some(&entry.namespace)),
        entry,
        diff,
        bar_sets,
        service,
        traces,
        kiali,
        revertible,
        revert,
        overwritten,
    })
}

/// How many later outside changes of an entry's object its page names.
const OVERWRITES_SHOWN: u32 = 3;

/// The outside changes that overwrote signalbox's applied change `entry`.
async fn overwrites_of(state: &AppState, entry: &Entry) -> Result<Vec<Overwrite>, AppError> {
    if entry.source == crate::audit::Source::External || entry.outcome.as_str() != "applied" {
        return Ok(Vec::new());
    }
    let object = (entry.namespace.as_str(), entry.kind.as_str(), entry.name.as_str());
    Ok(outside::overwrites_of(&state.audit, object, (entry.id, entry.time_ms), OVERWRITES_SHOWN).await?)
}

/// The service an entry is about: an object's `app` label (in a List, any item's), else
/// the object's name.
fn service_of(entry: &Entry) -> String {
    let app = |object: &serde_json::Value| object["metadata"]["labels"]["app"].as_str().map(String::from);
    [&entry.after, &entry.before]
        .into_iter()
        .flatten()
        .find_map(|doc| app(doc).or_else(|| doc["items"].as_array()?.iter().find_map(app)))
        .unwrap_or_else(|| entry.name.clone())
}
