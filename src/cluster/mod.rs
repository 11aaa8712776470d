//! The Kubernetes side: client, watch caches, health and object writes.
mod backoff;
pub mod bounded;
mod cache;
mod dispatch;
pub mod external;
mod health;
mod kinds;
mod lease;
mod objects;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub use backoff::WatchBackoff;
pub use cache::{Caches, NAMESPACED_WATCHES_UP_TO, NamespaceCache};
pub use health::Health;
pub use kinds::{Kind, ObjectRef};
pub use lease::LeaderLease;
pub use objects::{ClusterError, FIELD_MANAGER, Objects, Operation, without_server_fields};

/// A connected cluster: client, caches and health.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub objects: Objects,
    pub caches: Caches,
    pub health: Health,
    /// When hosts' routing last changed outside signalbox.
    pub external: external::ExternalActivity,
    /// Which cluster this is, for the startup log and the page header.
    pub description: String,
    /// Whether HTTPRoutes can retry here: the installed HTTPRoute CRD is the Gateway API's
    /// experimental channel (its `gateway.networking.k8s.io/channel` annotation), read at start.
    pub http_route_retries: bool,
}

impl Cluster {
    /// Connects and starts the caches for the managed namespaces (followed live); their watches also feed
    /// `outside` (changes made outside signalbox), when given.
    pub async fn connect(
        kubeconfig: Option<&Path>,
        managed: crate::managed::ManagedNamespaces,
        outside: Option<external::OutsideChanges>,
    ) -> anyhow::Result<Self> {
        let (config, context) = load_config(kubeconfig).await?;
        let description = format!("{} (context {context})", config.cluster_url);
        let client = Client::try_from(config)?;
        let http_route_retries = gateway_api_channel(&client).await == "experimental";
        Ok(Self {
            http_route_retries,
            objects: Objects::new(client.clone()),
            caches: Caches::start(&client, managed, outside),
            health: Health::start(client.clone()),
            external: external::ExternalActivity::default(),
            client,
            description,
        })
    }
}

/// The HTTPRoute CRD's channel; `standard` when it cannot be read (no CRD, no permission).
async fn gateway_api_channel(client: &Client) -> String {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), crds.get_opt("httproutes.gateway.networking.k8s.io"));
    let crd = read.await.ok().and_then(Result::ok).flatten();
    let annotations = crd.and_then(|crd| crd.metadata.annotations).unwrap_or_default();
    annotations.get("gateway.networking.k8s.io/channel").cloned().unwrap_or_else(|| "standard".into())
}

/// Loads the client configuration like kubectl: an explicit file, else KUBECONFIG,
/// ~/.kube/config, or the in-cluster service account.
pub(crate) async fn load_config(kubeconfig: Option<&Path>) -> anyhow::Result<(Config, String)> {
    match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)?;
            let context = file.current_context.clone().unwrap_or_else(|| "default".into());
            let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await?;
            Ok((config, context))
        }
        None => {
            let context =
                Kubeconfig::read().ok().and_then(|file| file.current_context).unwrap_or_else(|| "in-cluster".into());
            Ok((Config::infer().await?, context))
        }
    }
}
