//! A loopback TCP relay in front of the dev cluster's API server, for tests of a network
//! that drops: it copies bytes both ways (TLS passes through untouched, so the client still
//! talks to the real API server and checks its certificate), and a test can cut every
//! relayed connection at once and turn new ones away until it reopens.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kube::config::Kubeconfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Forwarder {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    relays: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepting: JoinHandle<()>,
}

impl Forwarder {
    /// Relays connections on a free loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let relays: Arc<Mutex<Vec<JoinHandle<()>>>> = Default::default();
        let accepting = {
            let (open, relays) = (open.clone(), relays.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        drop(client); // turned away: closed before a byte is relayed
                        continue;
                    }
                    let relay = tokio::spawn(relay(client, upstream));
                    let mut relays = relays.lock().unwrap();
                    relays.retain(|relay| !relay.is_finished());
                    relays.push(relay);
                }
            })
        };
        Self { addr, open, relays, accepting }
    }

    /// Closes every relayed connection now and turns new ones away until [`Self::reopen`].
    /// Returns how many connections were cut.
    pub fn cut(&self) -> usize {
        self.open.store(false, Ordering::SeqCst);
        let mut relays = self.relays.lock().unwrap();
        let live = relays.iter().filter(|relay| !relay.is_finished()).count();
        for relay in relays.drain(..) {
            relay.abort(); // drops both sockets
        }
        live
    }

    pub fn reopen(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// A copy of `kubeconfig` whose clusters are reached through this forwarder, written to `to`.
    pub fn kubeconfig(&self, kubeconfig: &Path, to: &Path) {
        let mut config = Kubeconfig::read_from(kubeconfig).expect("the dev cluster's kubeconfig");
        for cluster in &mut config.clusters {
            if let Some(cluster) = cluster.cluster.as_mut() {
                cluster.server = Some(format!("https://{}", self.addr));
            }
        }
        std::fs::write(to, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(upstream).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

/// The API server's address in `kubeconfig` (its current cluster).
pub fn api_server_of(kubeconfig: &Path) -> SocketAddr {
    let config = Kubeconfig::read_from(kubeconfig).expect("the dev cluster's kubeconfig");
    let server = config.clusters.iter().find_map(|c| c.cluster.as_ref()?.server.clone()).expect("a cluster server");
    let authority = server.trim_start_matches("https://").split('/').next().unwrap().to_owned();
    std::net::ToSocketAddrs::to_socket_addrs(&authority).unwrap().next().expect("the API server's address")
}
