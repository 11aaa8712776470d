//! The routing use case, one road for the routing page and the JSON API: read a host's
//! routing, plan a change to it, then preview the plan (the API server's dry run, Istio's
//! webhook included) or apply it. Planning authorizes first — who may not route the host
//! hears so before any conflict found while building the change, and the refusal of a write
//! is audited —, reads the live objects, refuses a write made against objects that moved
//! since the caller saw them, and builds the change the change path then validates,
//! dry-runs, audits and applies.
mod envoy;
mod plan;
pub mod tester;

use crate::change::reads::Reads;
use crate::change::routes::{self, LiveRouting, ResourceVersions, RoutingApi};
use crate::change::{Applied, ChangeError, ChangePath, Origin, Preview};
use crate::cluster::ClusterError;
use crate::problem::FieldProblem;

pub use envoy::EnvoyView;
use plan::Replan;
pub use plan::{Plan, Proposal, routes_nothing};

/// Whether a plan is only to be looked at (a refusal is not audited, as a dry run changes
/// nothing) or to be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Preview,
    Apply,
}

/// Why a routing change was not planned.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The change path refused it (denied, invalid, the cluster or the audit log).
    #[error(transparent)]
    Change(#[from] ChangeError),
    /// The request contradicts the live objects (409).
    #[error("{0}")]
    Conflict(String),
    /// Nothing routes the host, and the request needs something that does (404).
    #[error("{0}")]
    NotFound(String),
    /// Problems of the request itself, by field (422).
    #[error("invalid request")]
    Invalid(Vec<FieldProblem>),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Something the answer needs does not answer (istiod, 503).
    #[error("{0}")]
    Unavailable(String),
}

/// A namespace and one host in it.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

/// Whether a plan from the caches can stand for one from a live read: a host one
/// VirtualService routes (an HTTPRoute's per-version Services are read apart from it), and
/// a client that saw what the caches hold (else its resourceVersions are newer than theirs).
fn plannable_from_cache(cached: &LiveRouting, seen: Option<&ResourceVersions>) -> bool {
    cached.api == RoutingApi::VirtualService
        && cached.virtual_service.is_some()
        && cached.ambiguous.is_none()
        && seen.is_none_or(|seen| *seen == cached.resource_versions())
}

#[derive(Clone)]
pub struct Routing {
    reads: Reads,
    changes: ChangePath,
}

impl Routing {
    pub fn new(reads: Reads, changes: ChangePath) -> Self {
        Self { reads, changes }
    }

    /// The host's routing as the API server has it now.
    pub async fn read(&self, host: Host<'_>) -> Result<LiveRouting, RoutingError> {
        Ok(self.reads.live_routing(host.namespace, host.name).await?)
    }

    /// The host's routing for a reader: as the watch caches hold it once they hold every
    /// write signalbox made in the namespace lately (a client then sees its own change),
    /// else from the API server. Readers do not make signalbox LIST the namespace's routing
    /// objects on every request.
    pub async fn read_current(&self, host: Host<'_>) -> Result<LiveRouting, RoutingError> {
        let holds = |target: &crate::cluster::ObjectRef, version: Option<&str>| self.reads.cache_holds(target, version);
        if self.changes.caches_hold_own_writes(host.namespace, holds) {
            return Ok(self.reads.cached_routing(host.namespace, host.name));
        }
        self.read(host).await
    }

    /// Plans `proposal` against the live objects. A policy update to apply to a host a
    /// VirtualService routes is planned from the watch caches, with the resourceVersions it
    /// was planned against: the change path reads the live objects anyway and compares them
    /// before anything else, and [`Self::apply`] plans again from a live read when one moved.
    /// That saves the four LISTs of a live read on the road every weight change takes.
    pub async fn plan(
        &self,
        origin: &Origin,
        host: Host<'_>,
        proposal: Proposal,
        seen: Option<&ResourceVersions>,
        intent: Intent,
    ) -> Result<Plan, RoutingError> {
        self.authorize_first(origin, host, &proposal, intent).await?;
        if intent == Intent::Apply && matches!(proposal, Proposal::Update { .. }) {
            let cached = self.reads.cached_routing(host.namespace, host.name);
            if plannable_from_cache(&cached, seen) {
                let mut plan = self.plan_against(origin, host, cached, proposal.clone(), seen).await?;
                plan.change.planned_against = Some(plan::planned_on(&plan.live, &plan.change));
                let (namespace, host_name) = (host.namespace.to_owned(), host.name.to_owned());
                let seen = seen.cloned();
                plan.replan = Some(Replan { origin: origin.clone(), namespace, host: host_name, proposal, seen });
                return Ok(plan);
            }
        }
        let live = self.read(host).await?;
        self.plan_against(origin, host, live, proposal, seen).await
    }

    /// Plans `proposal` against `live`, which the caller read itself to build the proposal
    /// (the page's forms start from the live policy); authorized first like [`Self::plan`].
    pub async fn plan_on(
        &self,
        origin: &Origin,
        host: Host<'_>,
        live: LiveRouting,
        proposal: Proposal,
        intent: Intent,
    ) -> Result<Plan, RoutingError> {
        self.authorize_first(origin, host, &proposal, intent).await?;
        let seen = live.resource_versions();
        self.plan_against(origin, host, live, proposal, Some(&seen)).await
    }

    /// The plan's result from the API server's dry run; changes nothing, audits nothing.
    pub async fn preview(&self, plan: &Plan) -> Result<Preview, ChangeError> {
        self.changes.preview(&plan.change).await
    }

    /// Applies the plan through the change path (one audit entry, whatever the outcome). A
    /// plan made from the caches that were behind is made again from a live read first.
    pub async fn apply(&self, plan: Plan) -> Result<Applied, RoutingError> {
        let Plan { change, replan, .. } = plan;
        match (self.changes.execute(change).await, replan) {
            (Err(ChangeError::Stale(_)), Some(Replan { origin, namespace, host, proposal, seen })) => {
                let host = Host { namespace: &namespace, name: &host };
                let live = self.read(host).await?;
                let plan = self.plan_against(&origin, host, live, proposal, seen.as_ref()).await?;
                Ok(self.changes.execute(plan.change).await?)
            }
            (applied, _) => Ok(applied?),
        }
    }

    async fn authorize_first(
        &self,
        origin: &Origin,
        host: Host<'_>,
        proposal: &Proposal,
        intent: Intent,
    ) -> Result<(), RoutingError> {
        let attempt = routes::attempt(origin, host.namespace, host.name, proposal.audit_action());
        Ok(self.changes.authorize_first(&attempt, intent == Intent::Preview).await?)
    }

    async fn plan_against(
        &self,
        origin: &Origin,
        host: Host<'_>,
        live: LiveRouting,
        proposal: Proposal,
        seen: Option<&ResourceVersions>,
    ) -> Result<Plan, RoutingError> {
        if let Some(reason) = live.write_conflict(seen) {
            return Err(RoutingError::Conflict(reason));
        }
        plan::build(&self.reads, origin, host, live, proposal, seen).await
    }
}
