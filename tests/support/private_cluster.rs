//! A private dev cluster on other ports, for tests that stop the API server.
use std::path::PathBuf;
use std::process::Command;

pub struct PrivateCluster {
    state: tempfile::TempDir,
    port: u16,
}

fn devcluster() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/devcluster")
}

impl PrivateCluster {
    /// Starts etcd, kube-apiserver, controllers, scheduler and kwok on `port` and the next four.
    pub fn start(port: u16) -> Self {
        let cluster = Self { state: tempfile::tempdir().unwrap(), port };
        let status = cluster.command("up").status().expect("devcluster runs");
        assert!(status.success(), "private devcluster up failed (logs in {})", cluster.state.path().display());
        cluster
    }

    pub fn command(&self, verb: &str) -> Command {
        let mut command = Command::new(devcluster());
        command.arg(verb).env("DEVCLUSTER_STATE", self.state.path()).env("DEVCLUSTER_PORT", self.port.to_string());
        command
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.path().join("admin.kubeconfig")
    }

    /// Stops only the API server (as an outage would), leaving etcd and the rest running.
    pub fn stop_apiserver(&self) {
        self.signal_component("kube-apiserver", "TERM");
    }

    pub fn state_dir(&self) -> &std::path::Path {
        self.state.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn signal_component(&self, component: &str, signal: &str) {
        let pid = std::fs::read_to_string(self.state.path().join(format!("pids/{component}.pid"))).expect("pid file");
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.trim()).status().unwrap();
        assert!(status.success(), "kill -{signal} {component}");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = self.command("down").status();
    }
}
