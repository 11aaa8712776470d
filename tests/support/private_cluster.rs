//! A private dev cluster on other ports, for tests that stop the API server.
use std::path::PathBuf;
use std::process::Command;

pub struct PrivateCluster {
    state: tempfile::TempDir,
    port: u16,
    /// The API server's command line, remembered by `stop_apiserver` for `start_apiserver`.
    apiserver_command: std::sync::Mutex<Option<Vec<String>>>,
}

fn devcluster() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/devcluster/devcluster")
}

impl PrivateCluster {
    /// Starts etcd, kube-apiserver, controllers, scheduler and kwok on `port` and the next four.
    pub fn start(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// Starts it with `devcluster up`'s environment variables set, e.g.
    /// `DEVCLUSTER_GATEWAY_API_CHANNEL=experimental`.
    pub fn start_with(port: u16, env: &[(&str, &str)]) -> Self {
        let cluster = Self { state: tempfile::tempdir().unwrap(), port, apiserver_command: Default::default() };
        let status = cluster.command("up").envs(env.iter().copied()).status().expect("devcluster runs");
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
        let pid = self.pid("kube-apiserver");
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the API server's command line");
        let args = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty());
        *self.apiserver_command.lock().unwrap() = Some(args.map(|a| String::from_utf8_lossy(a).into_owned()).collect());
        self.signal_component("kube-apiserver", "TERM");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts the API server stopped by `stop_apiserver` again, with the same command line:
    /// same etcd, certificates and port, so clients reconnect as to a restarted API server.
    /// (`devcluster up` cannot do this: with a component missing it rebuilds the whole
    /// cluster, new certificates and an empty etcd included.) `down` stops it as before.
    pub fn start_apiserver(&self) {
        let args = self.apiserver_command.lock().unwrap().clone().expect("stop_apiserver ran first");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.state.path().join("logs/kube-apiserver.log"))
            .expect("the API server's log");
        let mut child = Command::new(&args[0])
            .args(&args[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the API server restarts");
        std::fs::write(self.state.path().join("pids/kube-apiserver.pid"), child.id().to_string()).unwrap();
        // Reaped when `down` stops it, so it does not linger as a zombie.
        std::thread::spawn(move || child.wait());
    }

    fn pid(&self, component: &str) -> String {
        let file = self.state.path().join(format!("pids/{component}.pid"));
        std::fs::read_to_string(file).expect("pid file").trim().to_owned()
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
