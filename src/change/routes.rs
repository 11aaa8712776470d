//! Changes to a host's routing: its DestinationRule subsets and VirtualService rules, or
//! its Gateway API HTTPRoute.
use super::Action;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::authz::Permission;
use crate::cluster::bounded::content_digest;
use crate::cluster::{Kind, ObjectRef, Operation, without_server_fields};
use crate::gateway_api::HTTPRoute;
use crate::istio::{DestinationRule, VirtualService};
use crate::policy::gateway_api::VersionService;
use crate::policy::{self, FieldError, HostObjects, Removal, RoutingPolicy, Severity, ValidationContext};
use crate::problem::FieldProblem;

use super::Change;
use super::Origin;

/// The live routing objects of a host, found by what they route ([`policy::lookup::find`]).
#[derive(Debug, Clone, Default)]
pub struct LiveRouting {
    /// Which API routes the host (for a host nothing routes yet: which one a write creates).
    pub api: RoutingApi,
    pub virtual_service: Option<VirtualService>,
    pub destination_rule: Option<DestinationRule>,
    pub http_route: Option<HTTPRoute>,
    /// Ingress HTTPRoutes (attached to a Gateway) that send traffic to the host besides the
    /// routing edited here: shown, not edited.
    pub ingress_routes: Vec<HTTPRoute>,
    /// The host's per-version Services (an HTTPRoute's versions) and its own Service's port.
    pub versions: Vec<VersionService>,
    pub port: Option<i32>,
    /// Set when the host's routing is not one VirtualService and one DestinationRule
    /// (several of them, or delegation): nothing is edited then, only shown.
    pub ambiguous: Option<Ambiguous>,
}

/// The objects of one namespace a host's routing is looked up among.
#[derive(Default)]
pub struct NamespaceRouting<'a> {
    pub virtual_services: Vec<&'a VirtualService>,
    pub destination_rules: Vec<&'a DestinationRule>,
    pub http_routes: Vec<&'a HTTPRoute>,
    pub services: Vec<&'a k8s_openapi::api::core::v1::Service>,
}

/// The two APIs that route a host in the mesh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoutingApi {
    #[default]
    VirtualService,
    HTTPRoute,
}

/// Routing signalbox shows but does not edit: why, and every object found.
#[derive(Debug, Clone)]
pub struct Ambiguous {
    pub reason: String,
    pub objects: HostObjects,
}

/// The versions of the objects the client last saw; `None` inside means "it did not exist".
/// A VirtualService's and DestinationRule's is a digest of what the object says (see
/// [`content_version`]), not its resourceVersion: istiod moves that with every status write
/// of its analysis (`PILOT_ENABLE_ANALYSIS`), which would make an edit right after another
/// a conflict. The object's resourceVersion is accepted too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersions {
    #[serde(default)]
    pub virtual_service: Option<String>,
    #[serde(default)]
    pub destination_rule: Option<String>,
    /// An HTTPRoute's `metadata.generation`, not its resourceVersion: istiod writes the
    /// route's status after every change, which moves the resourceVersion and would make
    /// every edit right after another a conflict. See [`LiveRouting::stale_http_route`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<String>,
}

impl LiveRouting {
    /// The host's routing from the objects that route it: the one VirtualService and the one
    /// DestinationRule when that is all there is, else [`Ambiguous`].
    pub fn found(host: &str, objects: HostObjects) -> Self {
        match objects.ambiguity(host) {
            Some(reason) => Self { ambiguous: Some(Ambiguous { reason, objects }), ..Self::default() },
            None => {
                let http_route = objects.edited_http_route().cloned();
                let edited = http_route.as_ref().and_then(|route| route.metadata.name.clone());
                let ingress_routes = objects.ingress_routes.into_iter().filter(|r| r.metadata.name != edited).collect();
                Self {
                    api: if http_route.is_some() { RoutingApi::HTTPRoute } else { RoutingApi::VirtualService },
                    virtual_service: objects.virtual_services.into_iter().next(),
                    destination_rule: objects.destination_rules.into_iter().next(),
                    http_route,
                    ingress_routes,
                    ..Self::default()
                }
            }
        }
    }

    /// The host's routing among a namespace's objects, found by what they route: the one
    /// lookup that reads from the API server, the watch caches and the overview share. The
    /// Services give an HTTPRoute's versions (per-version Services) and its ingress routes.
    pub fn lookup(namespace: &str, host: &str, objects: NamespaceRouting<'_>) -> Self {
        let versions = policy::gateway_api::version_services(host, &objects.services);
        let port = policy::gateway_api::service_port(host, &objects.services);
        let mut found = policy::lookup::find(namespace, host, objects.virtual_services, objects.destination_rules);
        let backends: Vec<String> =
            std::iter::once(host.to_owned()).chain(versions.iter().map(|v| v.name.clone())).collect();
        found.add_http_routes(namespace, host, objects.http_routes, &backends);
        Self { versions, port, ..Self::found(host, found) }
    }

    /// How the route tester picks a rule for this host's routing.
    pub fn precedence(&self) -> policy::Precedence {
        match self.api {
            _ if self.several_http_routes().is_some() => policy::Precedence::MostSpecific,
            RoutingApi::VirtualService => policy::Precedence::FirstMatch,
            RoutingApi::HTTPRoute => policy::Precedence::MostSpecific,
        }
    }

    /// The mesh HTTPRoutes when several route the host and nothing else does (not edited
    /// here), in the order istiod ties equally specific matches: the oldest first, then by
    /// namespace and name.
    fn several_http_routes(&self) -> Option<Vec<&HTTPRoute>> {
        let objects = &self.ambiguous.as_ref()?.objects;
        if !objects.virtual_services.is_empty() || objects.http_routes.len() < 2 {
            return None;
        }
        let mut routes: Vec<&HTTPRoute> = objects.http_routes.iter().collect();
        routes.sort_by_key(|route| {
            let meta = &route.metadata;
            (meta.creation_timestamp.as_ref().map(|at| at.0), meta.namespace.clone(), meta.name.clone())
        });
        Some(routes)
    }

    /// The policy the route tester evaluates: the host's; or, where several mesh HTTPRoutes
    /// route it, their rules together as istiod merges them into one route table (each
    /// route's in its order, the routes in [`Self::several_http_routes`]' order, which the
    /// Gateway API's precedence falls back on when matches are equally specific).
    pub fn tested_policy(&self, host: &str) -> Result<RoutingPolicy, policy::PolicyError> {
        let Some(routes) = self.several_http_routes() else { return self.policy(host) };
        let mut merged = RoutingPolicy::new(host);
        for route in routes {
            let policy = RoutingPolicy::from_http_route(host, route, &self.versions);
            for subset in policy.subsets {
                if !merged.subsets.contains(&subset) {
                    merged.subsets.push(subset);
                }
            }
            merged.rules.extend(policy.rules);
        }
        Ok(merged)
    }

    pub fn exists(&self) -> bool {
        self.virtual_service.is_some()
            || self.destination_rule.is_some()
            || self.http_route.is_some()
            || self.ambiguous.is_some()
    }

    /// What istiod's analysis says of the VirtualService and DestinationRule (IST0101, …),
    /// when it runs with `PILOT_ENABLE_ANALYSIS`.
    pub fn analysis(&self) -> Vec<crate::istio::AnalysisNote> {
        use crate::istio::AnalysisNote;
        let virtual_service = self
            .virtual_service
            .iter()
            .flat_map(|vs| AnalysisNote::of("VirtualService", &vs.metadata, vs.status.as_ref()));
        let destination_rule = self
            .destination_rule
            .iter()
            .flat_map(|dr| AnalysisNote::of("DestinationRule", &dr.metadata, dr.status.as_ref()));
        virtual_service.chain(destination_rule).collect()
    }

    /// Why the host's routing cannot be edited, naming the objects.
    pub fn ambiguity(&self) -> Option<&str> {
        self.ambiguous.as_ref().map(|a| a.reason.as_str())
    }

    pub fn resource_versions(&self) -> ResourceVersions {
        ResourceVersions {
            virtual_service: self.virtual_service.as_ref().map(content_version),
            destination_rule: self.destination_rule.as_ref().map(content_version),
            http_route: self.http_route.as_ref().and_then(|route| route.metadata.generation).map(|g| g.to_string()),
        }
    }

    /// Why a write made against `expected` is refused before it is planned (409): the
    /// routing is ambiguous, or an object changed since it was read. This read is fresh
    /// from the API server; the write that follows is conditional on the resourceVersion it
    /// read (for a VirtualService or DestinationRule), so nothing lands in between.
    pub fn write_conflict(&self, expected: Option<&ResourceVersions>) -> Option<String> {
        let stale = |expected: &ResourceVersions| {
            let virtual_service = self.virtual_service.as_ref();
            stale_object(Kind::VirtualService, expected.virtual_service.as_deref(), virtual_service).or_else(|| {
                let destination_rule = self.destination_rule.as_ref();
                stale_object(Kind::DestinationRule, expected.destination_rule.as_deref(), destination_rule)
            })
        };
        self.ambiguity()
            .map(String::from)
            .or_else(|| self.stale_http_route(expected))
            .or_else(|| expected.and_then(stale))
    }

    /// Why a write made against `expected` must be refused: the HTTPRoute's spec changed
    /// since (another generation). This read is fresh from the API server, and the write
    /// that follows is not conditional on the resourceVersion (status writes move it).
    fn stale_http_route(&self, expected: Option<&ResourceVersions>) -> Option<String> {
        let seen = expected?.http_route.as_deref()?;
        let now = self.resource_versions().http_route;
        (now.as_deref() != Some(seen)).then(|| {
            let name = self.http_route.as_ref().and_then(|r| r.metadata.name.clone()).unwrap_or_default();
            format!(
                "HTTPRoute {name} changed since it was read (generation {seen}, now {}); reload and try again",
                now.unwrap_or_else(|| "deleted".into())
            )
        })
    }

    /// The host's policy as it is now; ambiguous routing has none.
    pub fn policy(&self, host: &str) -> Result<RoutingPolicy, policy::PolicyError> {
        if let Some(ambiguous) = &self.ambiguous {
            return Err(policy::PolicyError::Ambiguous(ambiguous.reason.clone()));
        }
        if let Some(route) = &self.http_route {
            return Ok(RoutingPolicy::from_http_route(host, route, &self.versions));
        }
        RoutingPolicy::from_istio(host, self.virtual_service.as_ref(), self.destination_rule.as_ref())
    }
}

/// What a routing change needs besides the policy.
pub struct RouteRequest<'a> {
    pub origin: &'a Origin,
    pub namespace: &'a str,
    pub live: &'a LiveRouting,
    /// When given, the write is refused (409) if the objects changed since.
    pub expected: Option<&'a ResourceVersions>,
    pub context: &'a ValidationContext,
}

/// A change that makes `desired` the host's routing. Returns the change and the
/// validation warnings (which do not block it).
pub fn update(request: &RouteRequest, action: Action, desired: &RoutingPolicy) -> (Change, Vec<FieldError>) {
    let context =
        ValidationContext { gateway_api: request.live.api == RoutingApi::HTTPRoute, ..request.context.clone() };
    let findings = policy::validate(desired, &context);
    let (errors, mut warnings): (Vec<FieldError>, Vec<FieldError>) =
        findings.into_iter().partition(|finding| finding.severity == Severity::Error);
    let before = request.live.policy(&desired.host).unwrap_or_else(|_| RoutingPolicy::new(&desired.host));
    let removed = policy::removals(&before, desired);
    if !removed.is_empty() {
        let message = format!("this write removes {} (a write replaces the whole routing)", removed.join("; "));
        warnings.push(FieldError { field: "rules".into(), message, severity: Severity::Warning });
    }
    let summary = policy::change_summary(&before, desired);
    let mut change = route_change(request, action, &desired.host, summary);
    change.problems = errors.into_iter().map(|e| FieldProblem::new(e.field, e.message)).collect();
    if let Some(reason) = request.live.ambiguity() {
        change.problems.insert(0, FieldProblem::new("", reason));
    }
    if request.live.api == RoutingApi::HTTPRoute {
        change.subject.kind = Kind::HTTPRoute;
        let problems = http_route_problems(request, desired);
        change.problems.extend(problems.into_iter().map(|e| FieldProblem::new(e.field, e.message)));
    }
    change.field_hints = policy::field_hints(desired);
    change.reaches = policy::reaches(desired, request.namespace);
    if change.problems.is_empty() {
        change.operations = operations(request, desired);
    }
    (change, warnings)
}

/// What an HTTPRoute cannot say, and versions that are no per-version Service: HTTPRoute
/// has no subsets, so each version must be a Service before a rule can name it.
fn http_route_problems(request: &RouteRequest, desired: &RoutingPolicy) -> Vec<FieldError> {
    let mut problems = policy::gateway_api::inexpressible(desired, request.context.gateway_api_retries);
    let live = request.live;
    for subset in &desired.subsets {
        let service = live.versions.iter().find(|v| v.name == subset.name);
        if service.is_none_or(|service| service.labels != subset.labels) {
            problems.push(FieldError {
                field: format!("subsets.{}", subset.name),
                message: format!(
                    "no Service {} in {} selects app={} and {}; an HTTPRoute's versions are per-version Services: \
                     create them first",
                    subset.name,
                    request.namespace,
                    desired.host,
                    subset.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                ),
                severity: Severity::Error,
            });
        }
    }
    problems
}

/// A change that removes the host's routing: its DestinationRule, and its VirtualService —
/// or only this host from a VirtualService that routes other hosts too (see
/// [`policy::lookup::remove_host`]). `Err` says why it is refused, naming the object.
pub fn delete(request: &RouteRequest, host: &str) -> Result<Change, String> {
    let live = request.live;
    if let Some(reason) = live.ambiguity() {
        return Err(reason.to_owned());
    }
    let mut change =
        route_change(request, Action::RouteDelete, host, format!("{host}: routing removed; round-robin over all pods"));
    if let Some(vs) = &live.virtual_service {
        let target = named(Kind::VirtualService, request.namespace, &vs.metadata.name, host);
        match policy::lookup::remove_host(vs, host, request.namespace) {
            Removal::Delete => change.operations.push(Operation::Delete { target }),
            Removal::DropHost(kept) => {
                let seen = request.expected.map(|e| e.virtual_service.clone());
                change.operations.push(write(target, to_json(&kept), true, seen));
                change.summary = format!(
                    "{host}: routing removed (no longer in VirtualService {}'s hosts); round-robin over all pods",
                    vs.metadata.name.as_deref().unwrap_or(host)
                );
            }
            Removal::Refused(why) => return Err(why),
        }
    }
    if let Some(route) = &live.http_route {
        let name = route.metadata.name.as_deref().unwrap_or(host);
        let parents = route.spec.parent_refs.iter().flatten();
        if parents.clone().count() > 1 || !route.routes_service(host, request.namespace) {
            return Err(format!(
                "HTTPRoute {name} attaches to other parents too; removing it would change their routing: edit it \
                 directly"
            ));
        }
        change.subject.kind = Kind::HTTPRoute;
        change
            .operations
            .push(Operation::Delete { target: ObjectRef::namespaced(Kind::HTTPRoute, request.namespace, name) });
    }
    if let Some(dr) = &live.destination_rule {
        let target = named(Kind::DestinationRule, request.namespace, &dr.metadata.name, host);
        change.operations.push(Operation::Delete { target });
    }
    Ok(change)
}

/// The object's own name; a new object is named after the host (the tutorial's convention).
fn named(kind: Kind, namespace: &str, name: &Option<String>, host: &str) -> ObjectRef {
    ObjectRef::namespaced(kind, namespace, name.as_deref().unwrap_or(host))
}

fn route_change(request: &RouteRequest, action: Action, host: &str, summary: String) -> Change {
    Change { summary, ..attempt(request.origin, request.namespace, host, action) }
}

/// A routing change to `host` before it is built: what [`super::ChangePath::authorize_first`]
/// checks, so that who may not change the host hears so before any conflict found while
/// building the change.
pub fn attempt(origin: &Origin, namespace: &str, host: &str, action: Action) -> Change {
    let subject = ObjectRef::namespaced(Kind::VirtualService, namespace, host);
    let change = Change::new(origin, action, Permission::Route, namespace, subject, format!("{host}: {action}"));
    Change { host: Some(host.to_owned()), ..change }
}

/// The DestinationRule first (a VirtualService must not name subsets that do not exist
/// yet), each written only when the policy needs it or it exists already. Existing objects
/// are written in place, under their own names.
fn operations(request: &RouteRequest, desired: &RoutingPolicy) -> Vec<Operation> {
    let (live, namespace, host) = (request.live, request.namespace, &desired.host);
    if live.api == RoutingApi::HTTPRoute {
        let route = desired.to_http_route(namespace, live.http_route.as_ref(), live.port);
        let target = named(Kind::HTTPRoute, namespace, &route.metadata.name, host);
        let exists = live.http_route.is_some();
        let seen = request.expected.map(|e| e.http_route.clone()).filter(|_| !exists);
        return vec![write(target, to_json(&route), exists, seen.map(|_| None))];
    }
    let (vs, dr) = desired.to_istio(namespace, live.virtual_service.as_ref(), live.destination_rule.as_ref());
    let expected = request.expected;
    let mut operations = Vec::new();
    if !desired.subsets.is_empty() || live.destination_rule.is_some() {
        let target = named(Kind::DestinationRule, namespace, &dr.metadata.name, host);
        let read_at = live.destination_rule.as_ref().and_then(|dr| dr.metadata.resource_version.clone());
        let version = expected.map(|e| e.destination_rule.as_ref().and(read_at));
        operations.push(write(target, to_json(&dr), live.destination_rule.is_some(), version));
    }
    if !desired.rules.is_empty() || live.virtual_service.is_some() {
        let target = named(Kind::VirtualService, namespace, &vs.metadata.name, host);
        let read_at = live.virtual_service.as_ref().and_then(|vs| vs.metadata.resource_version.clone());
        let version = expected.map(|e| e.virtual_service.as_ref().and(read_at));
        operations.push(write(target, to_json(&vs), live.virtual_service.is_some(), version));
    }
    operations
}

/// What a VirtualService or DestinationRule says: a digest of it without `status` and the
/// fields the API server maintains, so that istiod's status writes leave it as it is.
pub fn content_version<K: Serialize>(object: &K) -> String {
    let document = without_server_fields(serde_json::to_value(object).unwrap_or_default());
    format!("c{}", &content_digest(&document)[..16])
}

/// Why a write made on `seen` (None: the client saw no such object) must be refused now
/// that the object is `live`.
fn stale_object<K: Serialize + kube::Resource>(kind: Kind, seen: Option<&str>, live: Option<&K>) -> Option<String> {
    let name = || live.and_then(|object| object.meta().name.clone()).unwrap_or_default();
    match (seen, live) {
        (None, None) => None,
        (None, Some(_)) => {
            Some(format!("{kind} {} was created since the routing was read; reload and try again", name()))
        }
        (Some(_), None) => Some(format!("the {kind} was deleted since the routing was read; reload and try again")),
        (Some(seen), Some(object)) => {
            let holds = seen == content_version(object) || object.meta().resource_version.as_deref() == Some(seen);
            (!holds).then(|| format!("{kind} {} changed since it was read; reload and try again", name()))
        }
    }
}

/// Server-side apply of an object that exists, made conditional when the client said what
/// it saw (on the resourceVersion just read live, once the client's version is found to
/// hold), or created when it saw none. An object that does not exist
/// is created, never applied, so a new object named after the host cannot overwrite an
/// unrelated one of that name.
fn write(target: ObjectRef, mut object: Value, exists: bool, seen: Option<Option<String>>) -> Operation {
    match seen {
        Some(Some(version)) => {
            object["metadata"]["resourceVersion"] = Value::String(version);
            Operation::Apply { target, object }
        }
        Some(None) => Operation::Create { target, object },
        None if exists => Operation::Apply { target, object },
        None => Operation::Create { target, object },
    }
}

pub(super) fn to_json<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Source;
    use crate::authz::Actor;
    use crate::policy::{Rule, Share, Subset};

    fn origin() -> Origin {
        Origin { actor: Actor::user("alice", vec![]), source: Source::Api, request_id: None, emergency: None }
    }

    fn context() -> ValidationContext {
        ValidationContext {
            services: ["recommendation".to_string()].into(),
            deployed_versions: vec![
                [("app".to_string(), "recommendation".to_string()), ("version".to_string(), "v1".to_string())].into(),
                [("app".to_string(), "recommendation".to_string()), ("version".to_string(), "v2".to_string())].into(),
            ],
            gateway_api: false,
            gateway_api_retries: false,
        }
    }

    fn split(v1: u32, v2: u32) -> RoutingPolicy {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets = vec![Subset::version("version-v1", "v1"), Subset::version("version-v2", "v2")];
        policy.rules = vec![Rule::weighted(&[("version-v1", v1), ("version-v2", v2)])];
        policy
    }

    fn request<'a>(
        live: &'a LiveRouting,
        expected: Option<&'a ResourceVersions>,
        ctx: &'a ValidationContext,
        origin: &'a Origin,
    ) -> RouteRequest<'a> {
        RouteRequest { origin, namespace: "tutorial", live, expected, context: ctx }
    }

    #[test]
    fn a_new_split_writes_the_destination_rule_then_the_virtual_service() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let (change, warnings) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &split(90, 10));
        assert!(change.problems.is_empty() && warnings.is_empty());
        let kinds: Vec<Kind> = change.operations.iter().map(|op| op.target().kind).collect();
        assert_eq!(kinds, [Kind::DestinationRule, Kind::VirtualService]);
        let vs = change.operations[1].object().unwrap();
        assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 10);
        assert_eq!(vs["metadata"]["namespace"], "tutorial");
        assert_eq!(change.permission, Permission::Route);
        assert_eq!(change.host.as_deref(), Some("recommendation"));
    }

    #[test]
    fn subsets_alone_write_only_the_destination_rule() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let mut subsets_only = split(90, 10);
        subsets_only.rules.clear();
        let (change, _) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &subsets_only);
        assert_eq!(change.operations.len(), 1);
        assert_eq!(change.operations[0].target().kind, Kind::DestinationRule);
    }

    #[test]
    fn what_the_client_saw_is_judged_by_content_and_the_write_is_conditional_on_the_live_read() {
        let (live, ctx, origin) = (live(SHARED, Some(DR)), context(), origin());
        let seen = live.resource_versions();
        assert!(seen.virtual_service.as_deref().is_some_and(|v| v.starts_with('c') && v != "c"), "{seen:?}");
        assert_eq!(live.write_conflict(Some(&seen)), None);
        let mut desired = live.policy("recommendation").unwrap();
        desired.rules[0].route = vec![Share::new("version-v1", 75), Share::new("version-v2", 25)];
        let (change, _) = update(&request(&live, Some(&seen), &ctx, &origin), Action::RouteUpdate, &desired);
        let versions: Vec<&Value> =
            change.operations.iter().map(|op| &op.object().unwrap()["metadata"]["resourceVersion"]).collect();
        assert_eq!(versions, ["3", "7"], "each write is conditional on the version read live");

        // istiod's analysis writes the status: another resourceVersion, the same content.
        let mut analysed = live.clone();
        let vs = analysed.virtual_service.as_mut().unwrap();
        vs.metadata.resource_version = Some("9".into());
        vs.status = Some(
            serde_json::from_value(serde_json::json!({"validationMessages": [{"type": {"code": "IST0101"}}]})).unwrap(),
        );
        assert_eq!(analysed.write_conflict(Some(&seen)), None, "a status write is no conflict");
        let by_resource_version = ResourceVersions {
            virtual_service: Some("7".into()),
            destination_rule: Some("3".into()),
            http_route: None,
        };
        assert_eq!(live.write_conflict(Some(&by_resource_version)), None, "the resourceVersion is accepted too");

        let mut edited = live.clone();
        edited.virtual_service.as_mut().unwrap().spec.hosts.as_mut().unwrap().push("ratings".into());
        let conflict = edited.write_conflict(Some(&seen)).unwrap();
        assert!(conflict.contains("VirtualService reco-routes changed since it was read"), "{conflict}");
        let saw_none = ResourceVersions { virtual_service: None, ..seen.clone() };
        assert!(live.write_conflict(Some(&saw_none)).unwrap().contains("reco-routes was created since"));
        assert!(LiveRouting::default().write_conflict(Some(&seen)).unwrap().contains("was deleted since"));
    }

    #[test]
    fn invalid_policies_carry_problems_and_no_operations() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let (change, _) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &split(90, 11));
        assert!(change.operations.is_empty());
        assert!(change.problems.iter().any(|p| p.field.starts_with("rules[0]")), "{:?}", change.problems);
    }

    fn live(vs: &str, dr: Option<&str>) -> LiveRouting {
        let parse = |yaml: &str| crate::istio::parse_yaml(yaml).unwrap();
        let vs = match parse(vs) {
            crate::istio::IstioObject::VirtualService(vs) => vs,
            other => panic!("{other:?}"),
        };
        let drs = dr.map(|dr| match parse(dr) {
            crate::istio::IstioObject::DestinationRule(dr) => dr,
            other => panic!("{other:?}"),
        });
        let found = policy::lookup::find("tutorial", "recommendation", [&vs], drs.as_ref());
        LiveRouting::found("recommendation", found)
    }

    const SHARED: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reco-routes, namespace: tutorial, resourceVersion: "7", uid: u-1, labels: {team: reco}}
spec:
  hosts: [recommendation.tutorial.svc.cluster.local, preference]
  gateways: [mesh, istio-system/ingressgateway]
  exportTo: ["."]
  http:
  - name: default
    route:
    - {destination: {host: recommendation.tutorial.svc.cluster.local, subset: version-v1, port: {number: 8080}}, weight: 90}
    - {destination: {host: recommendation.tutorial.svc.cluster.local, subset: version-v2, port: {number: 8080}}, weight: 10}
"#;

    const DR: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reco-dr, namespace: tutorial, resourceVersion: '3'}\nspec:\n  host: recommendation.tutorial.svc.cluster.local\n  subsets: [{name: version-v1, labels: {version: v1}}, {name: version-v2, labels: {version: v2}}]\n";

    #[test]
    fn edits_go_to_the_objects_found_under_their_own_names() {
        let (live, ctx, origin) = (live(SHARED, Some(DR)), context(), origin());
        let mut desired = live.policy("recommendation").unwrap();
        desired.rules[0].route = vec![Share::new("version-v1", 75), Share::new("version-v2", 25)];
        let (change, _) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &desired);
        assert!(change.problems.is_empty(), "{:?}", change.problems);
        let names: Vec<&str> = change.operations.iter().map(|op| op.target().name.as_str()).collect();
        assert_eq!(names, ["reco-dr", "reco-routes"]);
        assert!(change.operations.iter().all(|op| matches!(op, Operation::Apply { .. })), "edits, not creates");
        let vs = change.operations[1].object().unwrap();
        assert_eq!(vs["spec"]["hosts"], serde_json::json!(["recommendation.tutorial.svc.cluster.local", "preference"]));
        assert_eq!(vs["spec"]["gateways"], serde_json::json!(["mesh", "istio-system/ingressgateway"]));
        assert_eq!(vs["spec"]["exportTo"], serde_json::json!(["."]));
        assert_eq!(vs["metadata"]["labels"]["team"], "reco");
        assert_eq!(vs["spec"]["http"][0]["name"], "default");
        assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 25);
        assert_eq!(vs["spec"]["http"][0]["route"][1]["destination"]["port"]["number"], 8080);
    }

    #[test]
    fn a_host_without_objects_gets_new_ones_created_named_after_it() {
        let (live, ctx, origin) = (LiveRouting::default(), context(), origin());
        let (change, _) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &split(50, 50));
        assert!(change.operations.iter().all(|op| matches!(op, Operation::Create { .. })), "never overwrite");
        assert!(change.operations.iter().all(|op| op.target().name == "recommendation"));
    }

    #[test]
    fn delete_removes_what_routes_only_this_host() {
        let own = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reco, namespace: tutorial}\nspec: {hosts: [recommendation]}\n";
        let (live, ctx, origin) = (live(own, Some(DR)), context(), origin());
        let change = delete(&request(&live, None, &ctx, &origin), "recommendation").unwrap();
        assert_eq!(change.action, Action::RouteDelete);
        let deleted: Vec<(Kind, &str)> = change
            .operations
            .iter()
            .filter(|op| matches!(op, Operation::Delete { .. }))
            .map(|op| (op.target().kind, op.target().name.as_str()))
            .collect();
        assert_eq!(deleted, [(Kind::VirtualService, "reco"), (Kind::DestinationRule, "reco-dr")]);
    }

    #[test]
    fn delete_refuses_rules_shared_with_other_hosts_and_drops_the_host_otherwise() {
        let (ctx, origin) = (context(), origin());
        let shared = live(SHARED, Some(DR));
        let why = delete(&request(&shared, None, &ctx, &origin), "recommendation").unwrap_err();
        assert!(why.contains("reco-routes") && why.contains("preference"), "{why}");

        let elsewhere = SHARED.replace(
            "    - {destination: {host: recommendation.tutorial.svc.cluster.local, subset: version-v2, port: {number: 8080}}, weight: 10}\n",
            "",
        );
        let elsewhere = elsewhere.replace(
            "{host: recommendation.tutorial.svc.cluster.local, subset: version-v1, port: {number: 8080}}, weight: 90",
            "{host: preference}",
        );
        let live = live(&elsewhere, None);
        let seen = ResourceVersions { virtual_service: Some("7".into()), destination_rule: None, http_route: None };
        let change = delete(&request(&live, Some(&seen), &ctx, &origin), "recommendation").unwrap();
        let Operation::Apply { target, object } = &change.operations[0] else { panic!("{:?}", change.operations) };
        assert_eq!(target.name, "reco-routes");
        assert_eq!(object["spec"]["hosts"], serde_json::json!(["preference"]));
        assert_eq!(object["spec"]["gateways"], serde_json::json!(["mesh", "istio-system/ingressgateway"]));
        assert_eq!(object["metadata"]["resourceVersion"], "7", "on what was seen");
        assert!(object["metadata"].get("uid").is_none(), "server fields are not sent");
    }

    #[test]
    fn ambiguous_routing_is_neither_edited_nor_deleted() {
        let (ctx, origin) = (context(), origin());
        let vs = |name: &str| -> VirtualService {
            serde_json::from_value(serde_json::json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": name, "namespace": "tutorial"}, "spec": {"hosts": ["recommendation"]}}))
            .unwrap()
        };
        let (a, b) = (vs("reco-a"), vs("reco-b"));
        let live =
            LiveRouting::found("recommendation", policy::lookup::find("tutorial", "recommendation", [&a, &b], []));
        assert!(live.exists() && live.policy("recommendation").is_err());
        let (change, _) = update(&request(&live, None, &ctx, &origin), Action::RouteUpdate, &split(90, 10));
        assert!(change.operations.is_empty());
        assert!(change.problems[0].message.contains("reco-a, reco-b"), "{:?}", change.problems);
        let why = delete(&request(&live, None, &ctx, &origin), "recommendation").unwrap_err();
        assert!(why.contains("reco-a, reco-b"), "{why}");
    }
}
