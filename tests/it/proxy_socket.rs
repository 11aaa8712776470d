//! The oauth2-proxy overlay's identity path (deploy/overlays/oauth2-proxy): signalbox started
//! with the overlay's own arguments believes X-Forwarded-User/-Groups from the proxy on its
//! Unix socket, and from nobody who connects over TCP, loopback included: a `kubectl
//! port-forward` into the pod (or any process there) is anonymous, whatever it sends.
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use signalbox::config::{Cli, ServeConfig};
use signalbox::web::Listen;
use support::console::Console;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The overlay rendered by kustomize: its Deployment's containers, by name.
fn overlay_containers() -> Vec<Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(support::kubectl_path())
        .args(["kustomize", root.join("deploy/overlays/oauth2-proxy").to_str().unwrap()])
        .output()
        .expect("kubectl from the dev cluster build");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let yaml = String::from_utf8(output.stdout).unwrap();
    let deployment = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|object| object["kind"] == "Deployment" && object["metadata"]["name"] == "signalbox")
        .expect("the signalbox Deployment");
    deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap().clone()
}

fn container<'a>(containers: &'a [Value], name: &str) -> &'a Value {
    containers.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("a container {name}"))
}

fn args(container: &Value) -> Vec<String> {
    container["args"].as_array().unwrap().iter().map(|arg| arg.as_str().unwrap().to_owned()).collect()
}

fn mount_path(container: &Value, volume: &str) -> Option<String> {
    let mounts = container["volumeMounts"].as_array()?;
    mounts.iter().find(|m| m["name"] == volume).and_then(|m| m["mountPath"].as_str()).map(str::to_owned)
}

/// signalbox's configuration exactly as the overlay starts it.
fn overlay_config(signalbox: &Value) -> ServeConfig {
    let args = std::iter::once("signalbox".to_owned()).chain(args(signalbox));
    Cli::try_parse_from(args).expect("the overlay's arguments parse").serve
}

/// A GET over the Unix socket, as oauth2-proxy sends it: status and body.
async fn get_over_socket(socket: &Path, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::UnixStream::connect(socket).await.expect("the socket accepts");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: signalbox.example.com\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{answer}"));
    (status, answer)
}

#[tokio::test]
async fn a_port_forward_gets_no_identity_in_the_oauth2_proxy_overlay_and_the_socket_proxy_does() {
    let containers = overlay_containers();
    let (signalbox, proxy) = (container(&containers, "signalbox"), container(&containers, "oauth2-proxy"));
    let overlay = overlay_config(signalbox);

    // The overlay's identity settings, with a socket in a temporary directory and a loopback
    // port: what a port-forward reaches (and, in the pod, every process in its network
    // namespace). A team file makes reads need an identity.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sock");
    let teams = dir.path().join("teams.yaml");
    let namespace = format!("proxy-socket-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let team = format!(
        "teams: [{{name: reco, members: {{groups: [team-reco]}}, namespaces: [{namespace}], actions: [view]}}]"
    );
    std::fs::write(&teams, team).unwrap();
    let console = Console::start_with(&namespace, |config| {
        config.listen = vec![Listen::Unix(socket.clone()), "127.0.0.1:0".parse().unwrap()];
        config.trusted_proxies = overlay.trusted_proxies.clone();
        config.allowed_hosts = overlay.allowed_hosts.clone();
        config.teams = Some(teams.clone());
    })
    .await;

    // The port-forward's forged identity.
    let alice = [("X-Forwarded-User", "alice@example.com"), ("X-Forwarded-Groups", "team-reco")];
    let mut forwarded = console.http.get(console.url("/audit"));
    for (name, value) in alice {
        forwarded = forwarded.header(name, value);
    }
    let forwarded = forwarded.send().await.unwrap();
    assert_eq!(forwarded.status(), StatusCode::UNAUTHORIZED, "over loopback TCP the headers are not believed");
    let page = forwarded.text().await.unwrap();
    assert!(!page.contains("alice"), "{page}");
    let write = console
        .http
        .put(console.api("/workloads/recommendation-v1"))
        .header("X-Forwarded-User", "alice@example.com")
        .header("X-Forwarded-Groups", "team-reco")
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED, "nor for a change");

    // The proxy's own path: its upstream is signalbox's only listener, a socket in a volume
    // both containers mount.
    let [Listen::Unix(overlay_socket)] = &overlay.listen[..] else {
        panic!("the overlay listens on one Unix socket and nothing else: {:?}", overlay.listen)
    };
    let upstream = format!("--upstream=unix://{}", overlay_socket.display());
    assert!(args(proxy).contains(&upstream), "oauth2-proxy's {upstream}: {:?}", args(proxy));
    let directory = overlay_socket.parent().unwrap().to_str().unwrap().to_owned();
    for container in [signalbox, proxy] {
        assert_eq!(mount_path(container, "proxy-socket"), Some(directory.clone()), "{}", container["name"]);
    }
    let (status, page) = get_over_socket(&socket, "/audit", &alice).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("alice@example.com"), "the proxy's user is the actor: {page}");
    let (status, _) = get_over_socket(&socket, "/audit", &[]).await;
    assert_eq!(status, 401, "the socket without identity headers is anonymous");
    console.stop().await;
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}
