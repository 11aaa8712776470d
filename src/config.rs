//! Command line and environment configuration.
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::web::{Listen, TrustedProxy};

/// signalbox: a console for Istio routing, canaries and audit.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub serve: ServeConfig,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the console (the default).
    Serve,
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 and name the first entry that does not match.
    Verify {
        /// The SQLite audit log.
        #[arg(long, env = "SIGNALBOX_DATABASE", default_value = "./signalbox.db")]
        database: PathBuf,
        /// Retention archives of this log, oldest first (repeatable): the chain is then
        /// verified from its first record through the archives into the database.
        #[arg(long = "archive")]
        archives: Vec<PathBuf>,
        /// The cluster holding the anchor; by default inferred like kubectl.
        #[arg(long, env = "SIGNALBOX_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
    /// Re-anchor the audit chain (`--reset`): write a fresh anchor over the database as it
    /// is now, whatever the anchor ConfigMap holds, and record in the log who did. Once a log
    /// was anchored, signalbox never writes a missing anchor on its own.
    Anchor {
        /// Required: re-anchoring accepts the database as it is, so it is never implied.
        #[arg(long, required = true)]
        reset: bool,
        /// The SQLite audit log.
        #[arg(long, env = "SIGNALBOX_DATABASE", default_value = "./signalbox.db")]
        database: PathBuf,
        /// The cluster holding the anchor; by default inferred like kubectl.
        #[arg(long, env = "SIGNALBOX_KUBECONFIG")]
        kubeconfig: Option<PathBuf>,
        #[command(flatten)]
        anchor: AnchorArgs,
    },
    /// Write a consistent copy of the audit log while signalbox runs (SQLite `VACUUM INTO`).
    Backup {
        /// The SQLite audit log.
        #[arg(long, env = "SIGNALBOX_DATABASE", default_value = "./signalbox.db")]
        database: PathBuf,
        /// Where to write the copy (must not exist).
        #[arg(long)]
        to: PathBuf,
    },
}

/// Everything the server needs to start.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Where to listen (repeatable): `host:port`, or `unix:/path` for a Unix socket (mode
    /// 0660; a stale socket file is replaced, and the file removed at shutdown).
    #[arg(long, env = "SIGNALBOX_LISTEN", value_delimiter = ',', default_value = "127.0.0.1:8080")]
    pub listen: Vec<Listen>,
    /// Kubeconfig file; by default inferred like kubectl (KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "SIGNALBOX_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// A namespace the console manages (repeatable). Without it and without
    /// `--namespace-selector`: `tutorial`.
    #[arg(long = "namespace", env = "SIGNALBOX_NAMESPACE", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Also manage every namespace whose labels match this selector (`kubectl -l` syntax,
    /// e.g. `istio-injection=enabled`), followed live: a namespace labelled later joins, one
    /// unlabelled or deleted leaves. Needs the ClusterRole of deploy/base/rbac-selector.yaml.
    #[arg(long, env = "SIGNALBOX_NAMESPACE_SELECTOR", value_parser = selector_text)]
    pub namespace_selector: Option<String>,
    /// SQLite file holding the audit log.
    #[arg(long, env = "SIGNALBOX_DATABASE", default_value = "./signalbox.db")]
    pub database: PathBuf,
    /// Base URL of Kiali, e.g. http://kiali.istio-system:20001/kiali
    #[arg(long, env = "SIGNALBOX_KIALI_URL")]
    pub kiali_url: Option<String>,
    /// Base URL of the Jaeger UI, e.g. http://tracing.istio-system/jaeger
    #[arg(long, env = "SIGNALBOX_JAEGER_URL")]
    pub jaeger_url: Option<String>,
    /// Base URL of Prometheus, e.g. http://prometheus.istio-system:9090; enables canary metrics.
    #[arg(long, env = "SIGNALBOX_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,
    /// istiod's monitoring URL (port 15014), for when the proxies have a change
    /// (`/debug/syncz`). Default: inside a cluster, the `istiod` Service in `istio-system`.
    #[arg(long, env = "SIGNALBOX_ISTIOD_URL")]
    pub istiod_url: Option<String>,
    /// How often canaries with auto-advance are judged against Prometheus, in seconds.
    #[arg(long, env = "SIGNALBOX_ANALYSIS_INTERVAL_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub analysis_interval_seconds: u64,
    /// A proxy allowed to assert identity with X-Forwarded-User/-Groups (repeatable): a
    /// CIDR, or `unix` for whoever connects over the `--listen unix:` sockets.
    #[arg(long = "trusted-proxy", env = "SIGNALBOX_TRUSTED_PROXY", value_delimiter = ',')]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// A host name the console answers to besides loopback names and its in-cluster
    /// defaults (repeatable), e.g. the Gateway's `signalbox.example.com`. Requests for any
    /// other Host are refused (421): a defence against DNS rebinding.
    #[arg(long = "allowed-host", env = "SIGNALBOX_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Team file (YAML): who owns which namespaces and hosts and may do what; reloaded on
    /// change. Without it every signed-in user may change the managed namespaces.
    #[arg(long, env = "SIGNALBOX_TEAMS")]
    pub teams: Option<PathBuf>,
    /// What a change that overwrites an object Argo CD, Flux or Helm owns gets: refused
    /// (409, naming the owner; previews still show the objects to commit to Git), applied
    /// with a warning in its audit entry, or allowed.
    #[arg(long, env = "SIGNALBOX_GITOPS", value_enum, default_value = "refuse")]
    pub gitops: crate::change::gitops::GitopsMode,
    /// Directory of the stylesheet and vendored scripts (default: ./static, else the source tree's),
    /// read once at startup.
    #[arg(long, env = "SIGNALBOX_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,
    /// Archive audit records older than this many days to NDJSON files, then delete them
    /// from the database (checked at startup and hourly). Unset: keep everything.
    #[arg(long, env = "SIGNALBOX_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Where retention archives go (default: the database's directory).
    #[arg(long, env = "SIGNALBOX_AUDIT_ARCHIVE_DIR")]
    pub audit_archive_dir: Option<PathBuf>,
    #[command(flatten)]
    pub audit_anchor: AnchorArgs,
    /// Anchor the audit chain's head at least every this many records...
    #[arg(long, env = "SIGNALBOX_AUDIT_ANCHOR_EVERY_RECORDS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_anchor_every_records: u64,
    /// ...and, when records were added, at least every this many seconds.
    #[arg(long, env = "SIGNALBOX_AUDIT_ANCHOR_EVERY_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub audit_anchor_every_seconds: u64,
    /// Log format.
    #[arg(long, env = "SIGNALBOX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Where the audit chain's anchor is kept outside the database (`audit_anchor`), and
/// the key that signs it. Shared by the server (which writes it) and `audit verify`.
#[derive(Debug, Clone, Args)]
pub struct AnchorArgs {
    /// Namespace of the anchor ConfigMap (signalbox's own). Default: `POD_NAMESPACE` (set in
    /// the pod by deploy/base); without either there is no anchor.
    #[arg(long, env = "SIGNALBOX_AUDIT_ANCHOR_NAMESPACE")]
    pub audit_anchor_namespace: Option<String>,
    /// Name of the anchor ConfigMap.
    #[arg(long, env = "SIGNALBOX_AUDIT_ANCHOR_NAME", default_value = crate::audit_anchor::DEFAULT_NAME)]
    pub audit_anchor_name: String,
    /// File holding the HMAC-SHA256 key that signs the anchor (e.g. a mounted Secret). With
    /// it, an unsigned or otherwise signed anchor fails verification.
    #[arg(long, env = "SIGNALBOX_AUDIT_ANCHOR_KEY_FILE")]
    pub audit_anchor_key_file: Option<PathBuf>,
}

impl ServeConfig {
    /// A console on a free loopback port for `namespaces`, its audit log in `database`,
    /// with every optional integration off (what tests, benchmarks and embedders start from).
    pub fn local(kubeconfig: PathBuf, namespaces: Vec<String>, database: PathBuf) -> Self {
        Self {
            listen: vec![Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))],
            kubeconfig: Some(kubeconfig),
            namespaces,
            namespace_selector: None,
            database,
            kiali_url: None,
            jaeger_url: None,
            prometheus_url: None,
            analysis_interval_seconds: 10,
            istiod_url: None,
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            teams: None,
            gitops: crate::change::gitops::GitopsMode::Refuse,
            static_dir: None,
            audit_retention_days: None,
            audit_archive_dir: None,
            audit_anchor: AnchorArgs::unset(),
            audit_anchor_every_records: 100,
            audit_anchor_every_seconds: 10,
            log_format: LogFormat::Text,
        }
    }
}

impl ServeConfig {
    /// The managed namespaces these flags give: the named ones, those the selector
    /// matches, or `tutorial` when neither is given.
    pub fn managed_namespaces(&self) -> crate::managed::ManagedNamespaces {
        let selector = self.namespace_selector.as_ref().map(|text| {
            let parsed = crate::managed::parse_selector(text).expect("checked when the flag was read");
            (parsed, text.clone())
        });
        let explicit = match (&self.namespaces[..], &selector) {
            ([], None) => vec![DEFAULT_NAMESPACE.to_owned()],
            (names, _) => names.to_vec(),
        };
        crate::managed::ManagedNamespaces::new(explicit, selector)
    }
}

/// The namespace managed when no flag names any: the tutorial's.
pub const DEFAULT_NAMESPACE: &str = "tutorial";

/// `--namespace-selector`: checked as a label selector when read, kept as given.
fn selector_text(text: &str) -> Result<String, String> {
    crate::managed::parse_selector(text).map(|_| text.trim().to_owned())
}

impl AnchorArgs {
    /// No anchor unless `POD_NAMESPACE` is set (what tests and embedders start from).
    pub fn unset() -> Self {
        Self {
            audit_anchor_namespace: None,
            audit_anchor_name: crate::audit_anchor::DEFAULT_NAME.to_owned(),
            audit_anchor_key_file: None,
        }
    }

    /// The anchor's namespace: the flag, else the pod's own namespace.
    pub fn namespace(&self) -> Option<String> {
        self.audit_anchor_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|namespace| !namespace.is_empty())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
