//! The kinds of object signalbox reads and writes, and how to address them.
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use kube::core::ApiResource;
use serde::{Deserialize, Serialize};

use crate::gateway_api::HTTPRoute;
use crate::istio::{DestinationRule, Gateway, VirtualService};

/// Every kind a change may touch. A closed set keeps RBAC (deploy/) and code in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Namespace,
    ServiceAccount,
    Service,
    Deployment,
    Gateway,
    VirtualService,
    DestinationRule,
    HTTPRoute,
}

impl Kind {
    /// The objects that route a host's traffic: what the proxies get comes from them.
    pub fn is_routing(self) -> bool {
        matches!(self, Kind::VirtualService | Kind::DestinationRule | Kind::HTTPRoute)
    }

    pub fn api_resource(self) -> ApiResource {
        match self {
            Kind::Namespace => ApiResource::erase::<Namespace>(&()),
            Kind::ServiceAccount => ApiResource::erase::<ServiceAccount>(&()),
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::Deployment => ApiResource::erase::<Deployment>(&()),
            Kind::Gateway => ApiResource::erase::<Gateway>(&()),
            Kind::VirtualService => ApiResource::erase::<VirtualService>(&()),
            Kind::DestinationRule => ApiResource::erase::<DestinationRule>(&()),
            Kind::HTTPRoute => ApiResource::erase::<HTTPRoute>(&()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::ServiceAccount => "ServiceAccount",
            Kind::Service => "Service",
            Kind::Deployment => "Deployment",
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::HTTPRoute => "HTTPRoute",
        }
    }

    /// The kind named `name` (as [`Kind::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Kind> {
        [
            Kind::Namespace,
            Kind::ServiceAccount,
            Kind::Service,
            Kind::Deployment,
            Kind::Gateway,
            Kind::VirtualService,
            Kind::DestinationRule,
            Kind::HTTPRoute,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }

    pub fn is_namespaced(self) -> bool {
        self != Kind::Namespace
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn namespaced(kind: Kind, namespace: &str, name: &str) -> Self {
        Self { kind, namespace: Some(namespace.to_owned()), name: name.to_owned() }
    }

    pub fn cluster_scoped(kind: Kind, name: &str) -> Self {
        Self { kind, namespace: None, name: name.to_owned() }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {}/{}", self.kind, namespace, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
