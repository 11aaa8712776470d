//! "What a sidecar has": the route table istiod sends a workload's sidecar for the host,
//! route by route, on the routing page (loaded by htmx) or as a page of its own.
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::routing::{EnvoyView, Host};
use crate::web::api::routes::EnvoyQuery;
use crate::web::error::AppError;
use crate::web::extract::ManagedHost;
use crate::web::htmx::Htmx;
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::state::AppState;
use crate::web::view::envoy_source;

/// One route in words.
pub struct EnvoyRow {
    pub rule: String,
    pub conditions: String,
    pub destinations: String,
    pub from: String,
}

#[derive(Template)]
#[template(path = "partials/envoy_routes.html")]
pub struct EnvoyPartial {
    pub namespace: String,
    pub host: String,
    /// The workloads offered, and the one read.
    pub workloads: Vec<String>,
    pub source: String,
    pub view: Option<EnvoyView>,
    pub rows: Vec<EnvoyRow>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "envoy_routes.html")]
struct EnvoyPage {
    layout: Layout,
    namespace: String,
    host: String,
    /// The rendered partial.
    table: String,
}

/// `GET /ns/{ns}/routes/{host}/envoy?source=customer`.
pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    Query(query): Query<EnvoyQuery>,
) -> Result<Response, AppError> {
    let callers = state.callers_for(&actor, &namespace);
    let workloads = callers.iter().map(|w| w.deployment.clone()).collect();
    let named = query.source();
    let (view, error, status) = match envoy_source(callers, &namespace, &host, named) {
        Ok(workload) => match state.routing.envoy_view(Host { namespace: &namespace, name: &host }, &workload).await {
            Ok(view) => (Some(view), None, StatusCode::OK),
            Err(error) => {
                let error = AppError::from(error);
                (None, Some(error.to_string()), error.status())
            }
        },
        Err(error) => (None, Some(error.to_string()), error.status()),
    };
    let source = view.as_ref().map(|v| v.workload.clone()).or(named.map(str::to_owned)).unwrap_or_default();
    let rows = view.as_ref().map(rows).unwrap_or_default();
    let partial =
        EnvoyPartial { namespace: namespace.clone(), host: host.clone(), workloads, source, view, rows, error };
    let table = partial.render()?;
    let html = match htmx.0 {
        true => table,
        false => {
            EnvoyPage { layout: Layout::new(&state, &actor, Some(&namespace)), namespace, host, table }.render()?
        }
    };
    Ok((status, Html(html)).into_response())
}

fn rows(view: &EnvoyView) -> Vec<EnvoyRow> {
    let routes = view.table.iter().flat_map(|table| table.routes.iter());
    routes
        .zip(&view.rules)
        .map(|(route, rule)| EnvoyRow {
            rule: rule.map_or_else(|| "?".to_owned(), |rule| rule.to_string()),
            conditions: match route.conditions.is_empty() {
                true => "every request".to_owned(),
                false => route.conditions.join(", and "),
            },
            destinations: route.destinations.iter().map(|(to, w)| format!("{to} {w}%")).collect::<Vec<_>>().join(", "),
            from: route.from.clone().unwrap_or_default(),
        })
        .collect()
}
