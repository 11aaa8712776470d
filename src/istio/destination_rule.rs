//! `networking.istio.io/v1` DestinationRule: subsets and traffic policy of one host.
use super::virtual_service::Unmodelled;
use kube::CustomResource;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The spec of an Istio DestinationRule.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    namespaced,
    status = "super::IstioStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRuleSpec {
    /// The service host the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Named groups of pods selected by labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<Vec<DestinationSubset>>,
    /// Load balancing, connection pool and outlier detection for the whole host (kept opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<Value>,
    /// Unmodelled fields (exportTo, workloadSelector, ...).
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A named subset of a host's pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSubset {
    /// Subset name referenced by VirtualService destinations.
    pub name: String,
    /// Pod labels selecting the subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Traffic policy overriding the host's for this subset (kept opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<Value>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub other: Unmodelled,
}
