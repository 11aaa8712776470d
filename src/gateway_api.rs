//! Kubernetes Gateway API `gateway.networking.k8s.io/v1` HTTPRoute, modelling the fields
//! signalbox reads or edits. As with the Istio types, every struct keeps what it does not
//! model in `other`, so a parse → serialize round trip loses nothing.
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::istio::Unmodelled;

/// The spec of an HTTPRoute.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    namespaced,
    status = "HTTPRouteStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteSpec {
    /// What the route attaches to: a Service (mesh, GAMMA) or a Gateway (ingress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_refs: Option<Vec<ParentReference>>,
    /// Rules; for a request, the most specific match wins (not the first rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<HTTPRouteRule>>,
    /// Unmodelled fields (hostnames, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A parent the route attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group of the parent: `""` (core) for a Service; absent means the Gateway API's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `Service` or `Gateway` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Absent means the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    /// Unmodelled fields (port, sectionName).
    #[serde(flatten)]
    pub other: Unmodelled,
}

impl ParentReference {
    /// A Gateway parent (the kind's default): the route is an ingress route.
    pub fn is_gateway(&self) -> bool {
        self.kind.as_deref().unwrap_or("Gateway") == "Gateway"
    }

    /// A mesh (GAMMA) parent: the Service `name` in `namespace`.
    pub fn is_service(&self, name: &str, namespace: &str, route_namespace: &str) -> bool {
        self.group.as_deref() == Some("")
            && self.kind.as_deref() == Some("Service")
            && self.name == name
            && self.namespace.as_deref().unwrap_or(route_namespace) == namespace
    }
}

/// One rule: matches (ORed), filters, weighted backends, timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HTTPRouteMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<HTTPRouteFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_refs: Option<Vec<HTTPBackendRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HTTPRouteTimeouts>,
    /// Unmodelled fields (name, sessionPersistence, retry, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Conditions of one match, ANDed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<TypedMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<NamedMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<Vec<NamedMatch>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A path condition: `Exact`, `PathPrefix` or `RegularExpression`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct TypedMatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A header or query parameter condition: `Exact` (the default) or `RegularExpression`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct NamedMatch {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    pub value: String,
}

/// A filter; signalbox edits `RequestMirror` and keeps the others as they are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteFilter {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Mirrors requests to a backend, a percentage of them when `percent` is set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    pub backend_ref: BackendObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A Service the rule sends traffic to, with its relative weight (default 1).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPBackendRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Unmodelled fields (group, kind, namespace, filters).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A backend named by a filter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct BackendObjectRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Timeouts as Gateway API durations (`1s`, `500ms`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HTTPRouteTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// What the controllers of the route's parents (istiod) say about it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct HTTPRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// One parent's verdict.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    #[serde(default)]
    pub parent_ref: Value,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A status condition (`Accepted`, `ResolvedRefs`, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

impl HTTPRoute {
    /// Whether this route attaches to Service `host` in `namespace` (a mesh route of it).
    pub fn routes_service(&self, host: &str, namespace: &str) -> bool {
        let route_namespace = self.metadata.namespace.as_deref().unwrap_or(namespace);
        self.spec.parent_refs.iter().flatten().any(|parent| parent.is_service(host, namespace, route_namespace))
    }

    /// Whether this route attaches to a Gateway (an ingress route) and sends traffic to one of
    /// `services` (the host's Service and its per-version Services).
    pub fn ingress_to(&self, services: &[String]) -> bool {
        let mut parents = self.spec.parent_refs.iter().flatten();
        let mut backends = self.spec.rules.iter().flatten().flat_map(|rule| rule.backend_refs.iter().flatten());
        parents.clone().any(ParentReference::is_gateway)
            && !parents.any(|parent| parent.kind.as_deref() == Some("Service"))
            && backends.any(|backend| services.contains(&backend.name))
    }

    /// The Gateways this route attaches to, as `namespace/name` or `name`.
    pub fn gateways(&self) -> Vec<String> {
        let parents = self.spec.parent_refs.iter().flatten();
        let gateways = parents.filter(|parent| parent.is_gateway());
        gateways.map(|p| p.namespace.as_ref().map_or(p.name.clone(), |ns| format!("{ns}/{}", p.name))).collect()
    }

    /// The conditions the parents' controllers wrote for the route's current generation.
    pub fn current_conditions(&self) -> Vec<(String, Condition)> {
        let generation = self.metadata.generation;
        let parents = self.status.iter().flat_map(|status| &status.parents);
        parents
            .flat_map(|parent| {
                let name = parent.parent_ref["name"].as_str().unwrap_or_default().to_owned();
                parent.conditions.iter().map(move |condition| (name.clone(), condition.clone()))
            })
            .filter(|(_, condition)| generation.is_none() || condition.observed_generation == generation)
            .collect()
    }
}
