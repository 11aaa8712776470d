//! Typed Istio resources (`networking.istio.io/v1`): VirtualService, DestinationRule, Gateway.
//!
//! Only the fields signalbox reads or edits are modelled; everything else rides along in
//! each struct's `other` map so that rendering an object never drops someone else's settings.
mod destination_rule;
pub mod envoy_routes;
mod gateway;
mod ordered_map;
mod status;
mod telemetry;
mod virtual_service;
mod yaml;

pub use destination_rule::{DestinationRule, DestinationRuleSpec, DestinationSubset};
pub use gateway::{Gateway, GatewayPort, GatewayServer, GatewaySpec};
pub use ordered_map::OrderedMap;
pub use status::{AnalysisNote, IstioStatus, ValidationMessage};
pub use telemetry::Sample;
pub(crate) use virtual_service::serialize_number;
pub use virtual_service::{
    Destination, FaultAbort, FaultDelay, HttpFaultInjection, HttpMatchRequest, HttpRetry, HttpRewrite, HttpRoute,
    HttpRouteDestination, Percent, PortSelector, StringMatch, Unmodelled, VirtualService, VirtualServiceSpec,
};
pub use yaml::{
    ACCEPTED_VERSIONS, ISTIO_NETWORKING_GROUP, IstioError, IstioObject, is_istio_networking, parse_value, parse_yaml,
    to_yaml, yaml_documents,
};
