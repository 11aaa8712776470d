//! Typed Istio resources (temporary minimal form; replaced by the policy-domain branch).
use kube::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(group = "networking.istio.io", version = "v1", kind = "VirtualService", namespaced, schema = "disabled")]
pub struct VirtualServiceSpec {
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(group = "networking.istio.io", version = "v1", kind = "DestinationRule", namespaced, schema = "disabled")]
pub struct DestinationRuleSpec {
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(group = "networking.istio.io", version = "v1", kind = "Gateway", namespaced, schema = "disabled")]
pub struct GatewaySpec {
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}
