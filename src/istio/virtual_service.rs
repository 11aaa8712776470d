//! `networking.istio.io/v1` VirtualService, modelling the HTTP routing fields signalbox edits.
//!
//! Every struct keeps the fields it does not model in `other`, so a parse → serialize
//! round trip never loses what someone else put in the object.
use super::ordered_map::OrderedMap;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fields of an object that signalbox does not model, kept verbatim.
pub type Unmodelled = Map<String, Value>;

/// The spec of an Istio VirtualService.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    namespaced,
    status = "super::IstioStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceSpec {
    /// Hosts the routing rules apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Gateways (and `mesh`) the rules apply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<Vec<String>>,
    /// Ordered HTTP routes; the first match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Vec<HttpRoute>>,
    /// Unmodelled fields (tcp, tls, exportTo, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// One HTTP route (Istio `HTTPRoute`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Optional route name, shown in access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Match conditions: entries are ORed, conditions inside one entry ANDed.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<HttpMatchRequest>>,
    /// Weighted destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<HttpRouteDestination>>,
    /// Request timeout, an Istio duration like `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<HttpRetry>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<HttpFaultInjection>,
    /// Destination receiving a copy of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Destination>,
    /// Share of traffic mirrored; absent means 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// URI/authority rewrite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<HttpRewrite>,
    /// Unmodelled fields (corsPolicy, headers, redirect, directResponse, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Match conditions of a route (Istio `HTTPMatchRequest`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchRequest {
    /// Match on the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Match on the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Match on request headers (lowercase names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<OrderedMap<StringMatch>>,
    /// Match on query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<OrderedMap<StringMatch>>,
    /// Unmodelled fields (name, sourceLabels, port, withoutHeaders, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A string condition: exactly one of `exact`, `prefix`, `regex` (RE2 syntax).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct StringMatch {
    /// Whole-value equality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Value starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// RE2 regex that must match the whole value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A weighted destination (Istio `HTTPRouteDestination`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteDestination {
    /// Where the traffic goes.
    pub destination: Destination,
    /// Share of traffic in percent; absent on a single destination means 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Unmodelled fields (headers manipulation, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A service (and optional subset and port) traffic is sent to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Service host name, short or fully qualified.
    pub host: String,
    /// Subset name defined in the host's DestinationRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// Port on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A port on a destination host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PortSelector {
    /// Port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Retry policy (Istio `HTTPRetry`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRetry {
    /// Number of retries; 0 disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout per attempt, an Istio duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Comma-separated retry conditions (Envoy `x-envoy-retry-on`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Fault injection (Istio `HTTPFaultInjection`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpFaultInjection {
    /// Delay injected before forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Abort with an error status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// An injected delay.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    /// Delay duration, an Istio duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<String>,
    /// Share of requests delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Unmodelled fields (the deprecated integer `percent`, exponentialDelay, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// An injected abort.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    /// HTTP status returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// Share of requests aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Unmodelled fields (grpcStatus, http2Error, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A percentage (Istio `Percent`, a double from 0 to 100).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Percent {
    /// The percentage.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "serialize_whole_as_integer")]
    pub value: Option<f64>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}

impl Percent {
    /// A percent with just a value.
    pub fn of(value: f64) -> Self {
        Self { value: Some(value), other: Unmodelled::new() }
    }
}

/// URI/authority rewrite (Istio `HTTPRewrite`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpRewrite {
    /// Replacement for the matched URI part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replacement Host/Authority header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Unmodelled fields (uriRegexRewrite, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Writes whole numbers as integers (`100`, not `100.0`) so rendered objects diff cleanly
/// against what the API server stores.
pub(crate) fn serialize_whole_as_integer<S: serde::Serializer>(
    value: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => serialize_number(*v, serializer),
        None => serializer.serialize_none(),
    }
}

/// Serializes an f64, as an integer when it is a whole number of safe size.
pub(crate) fn serialize_number<S: serde::Serializer>(value: f64, serializer: S) -> Result<S::Ok, S::Error> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.fract() == 0.0 && value.abs() <= MAX_SAFE {
        serializer.serialize_i64(value as i64)
    } else {
        serializer.serialize_f64(value)
    }
}
