//! The devcluster script itself: idempotent `up`, recovery from a half-dead cluster, and a
//! `down` that leaves no process or port behind. Uses a private cluster on its own ports.
use crate::support;

use std::net::TcpStream;
use std::time::Duration;

use support::private_cluster::PrivateCluster;

/// Below Linux's ephemeral range (32768–60999), so no outgoing connection of the other tests
/// can hold one of the eleven ports this cluster binds.
const PORT: u16 = 28443;

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn output(cluster: &PrivateCluster, verb: &str) -> (bool, String) {
    let output = cluster.command(verb).output().expect("devcluster runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[test]
fn up_is_idempotent_recovers_a_half_dead_cluster_and_down_frees_every_port() {
    let cluster = PrivateCluster::start(PORT);
    // The API server, etcd (client, peer), controller-manager, scheduler, then istiod's six.
    let ports = PORT..=PORT + 10;
    let silent: Vec<u16> = ports.clone().filter(|&port| !listening(port)).collect();
    assert!(silent.is_empty(), "every component listens after up; silent: {silent:?}");
    let (_, status) = output(&cluster, "status");
    assert!(status.contains("pilot-discovery") && status.contains("istiod is ready"), "{status}");

    let (ok, text) = output(&cluster, "up");
    assert!(ok && text.contains("already running"), "a second up is a no-op: {text}");

    // A crash: etcd dies without cleaning its pid file.
    cluster.signal_component("etcd", "KILL");
    std::thread::sleep(Duration::from_millis(300));
    let (ok, status) = output(&cluster, "status");
    assert!(!ok && status.contains("etcd") && status.contains("stopped"), "{status}");
    let (ok, text) = output(&cluster, "up");
    assert!(ok, "up after a crash: {text}");
    assert!(text.contains("cleaning up a stale or half-started cluster"), "{text}");
    assert!(text.contains("ready in"), "{text}");
    let (ok, status) = output(&cluster, "status");
    assert!(ok, "every component runs again: {status}");

    let (ok, text) = output(&cluster, "down");
    assert!(ok, "{text}");
    std::thread::sleep(Duration::from_millis(300));
    let still_listening: Vec<u16> = ports.filter(|&port| listening(port)).collect();
    assert!(still_listening.is_empty(), "ports still open after down: {still_listening:?}");
    let leftovers = std::process::Command::new("pgrep").arg("-f").arg(cluster.state_dir()).output().unwrap();
    assert!(leftovers.stdout.is_empty(), "processes left behind: {}", String::from_utf8_lossy(&leftovers.stdout));
}
