//! What a routing change asks for (a [`Proposal`]: a new policy, removing the routing, or
//! the Gateway API steps: per-version Services, a new HTTPRoute, migrating from the
//! VirtualService), and the [`Plan`] made of it against the live objects: the change the
//! change path will validate, dry-run, audit and apply, the warnings, the policy the host has
//! after it and the resourceVersions it was planned against.
use crate::change::Action;
use crate::change::reads::Reads;
use crate::change::routes::{self, LiveRouting, ResourceVersions, RouteRequest, RoutingApi};
use crate::change::{Change, Documents, Origin, PlannedOn, http_routes};
use crate::cluster::Kind;
use crate::policy::{self, RoutingPolicy, Rule, Share, Subset};
use crate::problem::FieldProblem;
use serde_json::Value;

use super::{Host, RoutingError};

/// One change to a host's routing.
#[derive(Debug, Clone)]
pub enum Proposal {
    /// The host's policy becomes this one. `api` chooses what a host nothing routes yet
    /// gets (a VirtualService when None); it cannot switch a routed host.
    Update { policy: RoutingPolicy, api: Option<RoutingApi> },
    /// Nothing routes the host any more.
    Delete,
    /// Per-version Services for the deployed versions that have none.
    VersionServices,
    /// A new HTTPRoute with this policy, for a host nothing routes yet.
    StartHttpRoute(RoutingPolicy),
    /// The VirtualService's policy moves to an equivalent HTTPRoute.
    Migrate,
}

/// What a plan made from the caches is made again from, when they were behind.
#[derive(Debug, Clone)]
pub(super) struct Replan {
    pub origin: Origin,
    pub namespace: String,
    pub host: String,
    pub proposal: Proposal,
    pub seen: Option<ResourceVersions>,
}

/// A change planned against the live objects.
#[derive(Debug, Clone)]
pub struct Plan {
    pub change: Change,
    pub warnings: Vec<policy::FieldError>,
    /// The host's policy after the change (None: nothing routes it).
    pub after: Option<RoutingPolicy>,
    /// The host's routing when it was planned.
    pub live: LiveRouting,
    /// The resourceVersions of the objects it was planned against.
    pub planned_against: ResourceVersions,
    /// For a plan made from the caches: what to plan again from a live read if they were
    /// behind.
    pub(super) replan: Option<Replan>,
}

impl Proposal {
    /// The proposal an Apply form names (`action` and the previewed policy's JSON).
    pub fn from_form(action: &str, policy_json: &str) -> Result<Proposal, Vec<FieldProblem>> {
        let policy = || serde_json::from_str(policy_json).map_err(|e| vec![FieldProblem::new("policy", e.to_string())]);
        Ok(match action {
            "delete" => Proposal::Delete,
            "version-services" => Proposal::VersionServices,
            "migrate" => Proposal::Migrate,
            "http-route" => Proposal::StartHttpRoute(policy()?),
            _ => Proposal::Update { policy: policy()?, api: None },
        })
    }

    /// The Apply form's `action`.
    pub fn action(&self) -> &'static str {
        match self {
            Proposal::Update { .. } => "update",
            Proposal::Delete => "delete",
            Proposal::VersionServices => "version-services",
            Proposal::StartHttpRoute(_) => "http-route",
            Proposal::Migrate => "migrate",
        }
    }

    /// The audited action of the change.
    pub fn audit_action(&self) -> Action {
        match self {
            Proposal::Update { .. } | Proposal::StartHttpRoute(_) => Action::RouteUpdate,
            Proposal::Delete => Action::RouteDelete,
            Proposal::VersionServices => Action::RouteVersionServices,
            Proposal::Migrate => Action::RouteMigrate,
        }
    }

    /// An HTTPRoute sending everything to the host's first per-version Service.
    pub fn start_http_route(live: &LiveRouting, host: &str) -> Result<Proposal, Vec<FieldProblem>> {
        let Some(first) = live.versions.first() else {
            let message = "an HTTPRoute routes to per-version Services: create them first";
            return Err(vec![FieldProblem::new("", message)]);
        };
        let subsets = live.versions.iter().map(|v| Subset { name: v.name.clone(), labels: v.labels.clone() });
        let rule = Rule { route: vec![Share::new(&first.name, 100)], ..Rule::default() };
        let policy = RoutingPolicy { host: host.to_owned(), subsets: subsets.collect(), rules: vec![rule] };
        Ok(Proposal::StartHttpRoute(policy))
    }
}

/// The plan `proposal` makes against `live`; refusals say why (409, 404 or 422).
pub(super) async fn build(
    reads: &Reads,
    origin: &Origin,
    host: Host<'_>,
    mut live: LiveRouting,
    proposal: Proposal,
    seen: Option<&ResourceVersions>,
) -> Result<Plan, RoutingError> {
    let Host { namespace, name } = host;
    let context = reads.validation_context(namespace, name);
    let current = live.policy(name).ok();
    let host_service = || async { Ok::<_, RoutingError>(reads.host_service(namespace, name).await?) };
    let (change, warnings, after) = match proposal {
        Proposal::Update { policy: desired, api } => {
            let desired = for_host(desired, name)?;
            choose_api(&mut live, api, name)?;
            let request = RouteRequest { origin, namespace, live: &live, expected: seen, context: &context };
            let (change, warnings) = routes::update(&request, Action::RouteUpdate, &desired);
            (change, warnings, Some(desired))
        }
        Proposal::Delete => {
            if !live.exists() {
                return Err(RoutingError::NotFound(routes_nothing(name, namespace)));
            }
            let request = RouteRequest { origin, namespace, live: &live, expected: seen, context: &context };
            (routes::delete(&request, name).map_err(RoutingError::Conflict)?, Vec::new(), None)
        }
        Proposal::VersionServices => {
            let deployed = reads.versions(namespace);
            let service = host_service().await?;
            let change =
                http_routes::create_version_services(origin, namespace, name, &live, &deployed, service.as_ref())
                    .map_err(RoutingError::Conflict)?;
            (change, Vec::new(), current)
        }
        Proposal::StartHttpRoute(desired) => {
            if live.exists() {
                return Err(RoutingError::Conflict(format!("{name} is routed already; edit its routing instead")));
            }
            live.api = RoutingApi::HTTPRoute;
            let request = RouteRequest { origin, namespace, live: &live, expected: seen, context: &context };
            let (change, warnings) = routes::update(&request, Action::RouteUpdate, &desired);
            (change, warnings, Some(desired))
        }
        Proposal::Migrate => {
            let request = RouteRequest { origin, namespace, live: &live, expected: seen, context: &context };
            let change =
                http_routes::migrate(&request, name, host_service().await?.as_ref()).map_err(RoutingError::Conflict)?;
            let after = current.map(|policy| policy::gateway_api::migrated(&policy, &live.versions).0);
            (change, Vec::new(), after)
        }
    };
    let planned_against = live.resource_versions();
    Ok(Plan { change, warnings, after, live, planned_against, replan: None })
}

/// Per operation of `change`, its object in `live` and that object's resourceVersion (None:
/// absent).
pub(super) fn planned_on(live: &LiveRouting, change: &Change) -> PlannedOn {
    let object_of = |kind, name: &str| -> Option<(Value, Option<String>)> {
        let found = match kind {
            Kind::VirtualService => live.virtual_service.as_ref().map(|o| (serde_json::to_value(o).ok(), &o.metadata)),
            Kind::DestinationRule => {
                live.destination_rule.as_ref().map(|o| (serde_json::to_value(o).ok(), &o.metadata))
            }
            Kind::HTTPRoute => live.http_route.as_ref().map(|o| (serde_json::to_value(o).ok(), &o.metadata)),
            _ => None,
        };
        let (object, meta) = found.filter(|(_, meta)| meta.name.as_deref() == Some(name))?;
        Some((object?, meta.resource_version.clone()))
    };
    let (objects, versions) = change
        .operations
        .iter()
        .map(|op| object_of(op.target().kind, &op.target().name).map_or((None, None), |(o, v)| (Some(o), v)))
        .unzip();
    PlannedOn { objects: Documents::new(objects), versions }
}

/// The policy for the host in the path: a body naming no host gets it, another host is 422.
fn for_host(mut desired: RoutingPolicy, host: &str) -> Result<RoutingPolicy, RoutingError> {
    if desired.host.is_empty() {
        desired.host = host.to_owned();
    } else if desired.host != host {
        let problem = FieldProblem::new("host", format!("must be {host}, the host in the URL"));
        return Err(RoutingError::Invalid(vec![problem]));
    }
    Ok(desired)
}

/// A host nothing routes yet gets the API asked for; a routed one keeps its own.
fn choose_api(live: &mut LiveRouting, api: Option<RoutingApi>, host: &str) -> Result<(), RoutingError> {
    match api {
        Some(api) if !live.exists() => live.api = api,
        Some(api) if api != live.api => {
            let message =
                format!("{host} is routed by a {:?}; this API edits it in place and does not switch APIs", live.api);
            return Err(RoutingError::Invalid(vec![FieldProblem::new("kind", message)]));
        }
        _ => {}
    }
    Ok(())
}

/// 404 for a host nothing in the namespace routes, naming it.
pub fn routes_nothing(host: &str, namespace: &str) -> String {
    format!(
        "{host} routes nothing in {namespace}: no VirtualService names it in spec.hosts, no DestinationRule in \
         spec.host and no HTTPRoute has its Service as a parentRef"
    )
}
