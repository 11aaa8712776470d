//! Server-rendered pages. Each htmx partial is its own template, included by its page.
pub mod audit;
pub mod canary;
pub mod deploy;
pub mod envoy_routes;
pub mod kept_views;
pub mod namespaces;
pub mod overview;
pub mod proposals;
pub mod proxy_sync;
mod route_forms;
pub(super) mod route_view;
pub mod routes;
mod sync_panel;
pub mod walkthrough;

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::error::AppError;
use super::identity::Identity;
use super::layout::Layout;
use super::state::AppState;

/// From this many namespaces on, `/` opens the namespaces page rather than the first one.
const MANY_NAMESPACES: usize = 4;

/// `/` opens the namespace the actor may view, or the list of them when there are many.
pub async fn home(State(state): State<AppState>, Identity(actor): Identity) -> Result<Redirect, AppError> {
    let namespaces = state.view_scope(&actor).namespaces();
    match namespaces.first() {
        Some(_) if namespaces.len() >= MANY_NAMESPACES => Ok(Redirect::to("/namespaces")),
        Some(namespace) => Ok(Redirect::to(&format!("/ns/{namespace}"))),
        None => Err(AppError::Forbidden(format!(
            "{} may view no namespace of this console: ask its operators to add you to a team",
            actor.name
        ))),
    }
}

#[derive(Template)]
#[template(path = "partials/banner.html")]
struct Banner {
    layout: Layout,
}

/// The cluster-state banner, polled by every page.
pub async fn banner(State(state): State<AppState>, Identity(actor): Identity) -> Result<Response, AppError> {
    render(&Banner { layout: Layout::new(&state, &actor, None) })
}

/// Renders a template as an HTML response.
pub fn render(template: &impl Template) -> Result<Response, AppError> {
    Ok(Html(template.render()?).into_response())
}
