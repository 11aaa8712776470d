//! What every benchmark needs of the dev cluster: its admin kubeconfig and a client.
#![allow(dead_code)]
use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The checkout's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The admin kubeconfig of the dev cluster (`make bench` starts it), or `SIGNALBOX_TEST_KUBECONFIG`.
pub fn kubeconfig() -> PathBuf {
    std::env::var_os("SIGNALBOX_TEST_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("deploy/devcluster/.state/admin.kubeconfig"))
}

/// A client for the dev cluster.
pub async fn client() -> kube::Client {
    let file = Kubeconfig::read_from(kubeconfig()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default()).await.unwrap();
    kube::Client::try_from(config).unwrap()
}
