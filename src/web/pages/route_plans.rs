//! What the routing page's forms ask for, previewed and then applied as the same change: a
//! new policy, removing the routing, or the Gateway API steps (per-version Services, a new
//! HTTPRoute, migrating from the VirtualService).
use crate::change::http_routes;
use crate::change::routes::{self, LiveRouting, ResourceVersions, RouteRequest, RoutingApi};
use crate::change::{Change, Origin};
use crate::policy::{self, RoutingPolicy, Rule, Share, Subset};
use crate::problem::FieldProblem;

use super::super::error::AppError;
use super::super::state::AppState;

/// One change the page offers.
pub enum Plan {
    /// The host's policy becomes this one.
    Update(RoutingPolicy),
    /// Nothing routes the host any more.
    Delete,
    /// Per-version Services for the deployed versions that have none.
    VersionServices,
    /// A new HTTPRoute with this policy, for a host nothing routes yet.
    StartHttpRoute(RoutingPolicy),
    /// The VirtualService's policy moves to an equivalent HTTPRoute.
    Migrate,
}

/// A planned change, and the policy the host has after it.
pub struct Planned {
    pub change: Change,
    pub warnings: Vec<policy::FieldError>,
    pub after: Option<RoutingPolicy>,
}

impl Plan {
    /// The plan the Apply form names (`action` and the previewed policy's JSON).
    pub fn from_apply(action: &str, policy_json: &str) -> Result<Plan, AppError> {
        let policy = || serde_json::from_str(policy_json).map_err(|e| AppError::invalid("policy", e.to_string()));
        Ok(match action {
            "delete" => Plan::Delete,
            "version-services" => Plan::VersionServices,
            "migrate" => Plan::Migrate,
            "http-route" => Plan::StartHttpRoute(policy()?),
            _ => Plan::Update(policy()?),
        })
    }

    /// The Apply form's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Plan::Update(_) => "update",
            Plan::Delete => "delete",
            Plan::VersionServices => "version-services",
            Plan::StartHttpRoute(_) => "http-route",
            Plan::Migrate => "migrate",
        }
    }

    /// The audited action of the change this plan makes.
    pub fn audit_action(&self) -> &'static str {
        match self {
            Plan::Update(_) | Plan::StartHttpRoute(_) => "route.update",
            Plan::Delete => "route.delete",
            Plan::VersionServices => "route.version-services",
            Plan::Migrate => "route.migrate",
        }
    }

    /// An HTTPRoute sending everything to the host's first per-version Service.
    pub fn start_http_route(live: &LiveRouting, host: &str) -> Result<Plan, Vec<FieldProblem>> {
        let Some(first) = live.versions.first() else {
            let message = "an HTTPRoute routes to per-version Services: create them first";
            return Err(vec![FieldProblem::new("", message)]);
        };
        let subsets = live.versions.iter().map(|v| Subset { name: v.name.clone(), labels: v.labels.clone() });
        let rule = Rule { route: vec![Share::new(&first.name, 100)], ..Rule::default() };
        Ok(Plan::StartHttpRoute(RoutingPolicy { host: host.to_owned(), subsets: subsets.collect(), rules: vec![rule] }))
    }

    /// The change this plan makes against `live`; `Err` says why it is refused (409).
    pub async fn change(
        self,
        state: &AppState,
        (namespace, host): (&str, &str),
        live: &LiveRouting,
        origin: &Origin,
        expected: &ResourceVersions,
    ) -> Result<Planned, String> {
        if let Some(reason) = live.write_conflict(Some(expected)) {
            return Err(reason);
        }
        let context = state.reads.validation_context(namespace, host);
        let request = RouteRequest { origin, namespace, live, expected: Some(expected), context: &context };
        let host_service = || async { state.reads.host_service(namespace, host).await.map_err(|e| e.to_string()) };
        let current = || live.policy(host).ok();
        let planned = |change, after| Planned { change, warnings: Vec::new(), after };
        Ok(match self {
            Plan::Update(desired) => {
                let (change, warnings) = routes::update(&request, "route.update", &desired);
                Planned { change, warnings, after: Some(desired) }
            }
            Plan::Delete => planned(routes::delete(&request, host)?, None),
            Plan::VersionServices => {
                let deployed = state.reads.versions(namespace);
                let service = host_service().await?;
                let change =
                    http_routes::create_version_services(origin, namespace, host, live, &deployed, service.as_ref())?;
                planned(change, current())
            }
            Plan::StartHttpRoute(desired) => {
                if live.exists() {
                    return Err(format!("{host} is routed already; edit its routing instead"));
                }
                let live = LiveRouting { api: RoutingApi::HTTPRoute, ..live.clone() };
                let request = RouteRequest { live: &live, ..request };
                let (change, warnings) = routes::update(&request, "route.update", &desired);
                Planned { change, warnings, after: Some(desired) }
            }
            Plan::Migrate => {
                let change = http_routes::migrate(&request, host, host_service().await?.as_ref())?;
                let after = current().map(|policy| policy::gateway_api::migrated(&policy, &live.versions).0);
                planned(change, after)
            }
        })
    }
}
