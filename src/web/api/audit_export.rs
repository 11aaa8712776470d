//! `GET /api/v1/audit/export?format=csv|ndjson&<filters>`: every matching entry, newest
//! first, streamed in keyset batches bounded in count and bytes, so memory stays bounded
//! whatever the number and size of the entries.
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, stream};

use crate::audit::export::{CSV_HEADER, push_csv_row, push_ndjson_line};
use crate::audit::{AuditError, AuditStore, Filter};

use crate::web::audit_query::HistoryQuery;
use crate::web::error::AppError;
use crate::web::identity::Identity;
use crate::web::state::AppState;

/// Most entries read per database query while streaming.
const BATCH: u32 = 1000;
/// Most bytes of documents read per query: with entries of 200 KiB, a batch of 1000 would
/// hold 200 MiB (and more once parsed). An entry larger than this is read alone.
const BATCH_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Ndjson,
}

#[derive(serde::Deserialize)]
pub struct ExportQuery {
    format: Option<Format>,
}

pub async fn export(
    State(state): State<AppState>,
    Identity(actor): Identity,
    Query(ExportQuery { format }): Query<ExportQuery>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, AppError> {
    let format = format.ok_or_else(|| AppError::invalid("format", "csv or ndjson"))?;
    let filter = state.visible_filter(&actor, query.parsed()?);
    let (content_type, extension, header_row) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", CSV_HEADER),
        Format::Ndjson => ("application/x-ndjson", "ndjson", ""),
    };
    let header_row = stream::once(async move { Ok::<_, AuditError>(Bytes::from_static(header_row.as_bytes())) });
    let body = Body::from_stream(header_row.chain(batches(state.audit.clone(), filter, query.before, format)));
    let disposition = format!("attachment; filename=\"signalbox-audit.{extension}\"");
    Ok(([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}

/// One chunk per batch of entries, each batch starting below the last id of the one before
/// and bounded in count and in bytes.
fn batches(
    audit: AuditStore,
    filter: Filter,
    before: Option<i64>,
    format: Format,
) -> impl futures::Stream<Item = Result<Bytes, AuditError>> {
    // The cursor: Some(before) while there may be more, None once nothing is left.
    stream::try_unfold(Some(before), move |cursor| {
        let (audit, filter) = (audit.clone(), filter.clone());
        async move {
            let Some(before) = cursor else { return Ok(None) };
            let limit = audit.batch_within(&filter, before, BATCH, BATCH_BYTES).await?;
            let entries = if limit == 0 { Vec::new() } else { audit.search(&filter, before, limit).await? };
            let Some(last) = entries.last() else { return Ok(None) };
            let next = Some(Some(last.id));
            let mut chunk = String::new();
            for entry in &entries {
                match format {
                    Format::Csv => push_csv_row(&mut chunk, entry),
                    Format::Ndjson => push_ndjson_line(&mut chunk, entry),
                }
            }
            Ok(Some((Bytes::from(chunk), next)))
        }
    })
}
