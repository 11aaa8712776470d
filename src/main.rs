use clap::Parser;
use signalbox::audit::{AnchorKey, AnchorReading, AuditStore, VerifyReport};
use signalbox::audit_anchor::AuditAnchor;
use signalbox::config::{AnchorArgs, AuditCommand, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // One line naming what failed and why (a team file's path, field and line), not a
    // stack backtrace: RUST_BACKTRACE is for panics, which keep theirs.
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("signalbox: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.serve.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => signalbox::app::start(cli.serve).await?.run_until_signal().await,
        Command::Audit { command: AuditCommand::Verify { database, archives, kubeconfig, anchor } } => {
            verify(&database, &archives, kubeconfig.as_deref(), &anchor).await
        }
        Command::Audit { command: AuditCommand::Anchor { reset: _, database, kubeconfig, anchor } } => {
            reset_anchor(&database, kubeconfig.as_deref(), &anchor).await
        }
        Command::Audit { command: AuditCommand::Backup { database, to } } => {
            anyhow::ensure!(database.exists(), "no audit log at {}", database.display());
            AuditStore::open(&database).await?.backup(&to).await?;
            println!("audit log copied to {}", to.display());
            Ok(())
        }
    }
}

/// `audit verify`: the chain (from the archives, when given, into the database), then the
/// database against the anchor in the cluster. Opens the database read-only.
async fn verify(
    database: &std::path::Path,
    archives: &[std::path::PathBuf],
    kubeconfig: Option<&std::path::Path>,
    anchor: &AnchorArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(database.exists(), "no audit log at {}", database.display());
    let key = match &anchor.audit_anchor_key_file {
        Some(path) => Some(AnchorKey::from_file(path)?),
        None => None,
    };
    let store = AuditStore::open_read_only(database).await?;
    let report = if archives.is_empty() {
        store.verify().await?
    } else {
        match signalbox::audit::verify_archives(archives)? {
            Ok(checker) => store.verify_after(checker).await?,
            Err(id) => tampered(&VerifyReport { first_mismatch: Some(id), ..VerifyReport::default() }),
        }
    };
    let (reading, location) = read_anchor(kubeconfig, anchor).await;
    let report = store.compare_with_anchor(report, &reading, &location, key.as_ref()).await?;
    if !report.is_intact() {
        tampered(&report);
    }
    println!("audit log intact: {} records verified", report.records_checked);
    print_anchor(&report);
    Ok(())
}

/// `audit anchor --reset`: a fresh anchor over the database as it is, recorded in the log
/// as done by the OS user who ran it.
async fn reset_anchor(
    database: &std::path::Path,
    kubeconfig: Option<&std::path::Path>,
    args: &AnchorArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(database.exists(), "no audit log at {}", database.display());
    let namespace = args
        .namespace()
        .ok_or_else(|| anyhow::anyhow!("no anchor configured: give --audit-anchor-namespace (or POD_NAMESPACE)"))?;
    let key = match &args.audit_anchor_key_file {
        Some(path) => Some(AnchorKey::from_file(path)?),
        None => None,
    };
    let client = signalbox::audit_anchor::client(kubeconfig).await?;
    let anchor = AuditAnchor::new(client, &namespace, &args.audit_anchor_name, key);
    let store = AuditStore::open(database).await?;
    let actor = format!("local:{}", whoami::username());
    let written = anchor.reset(&store, &actor).await;
    store.close().await;
    let written = written?;
    println!("audit anchor reset by {actor}: {} now names record {}", anchor.location(), written.seq);
    Ok(())
}

/// Reads the anchor through the kubeconfig or in-cluster configuration; an unreachable
/// cluster is a reading too (verification goes on, and says the anchor was not checked).
async fn read_anchor(kubeconfig: Option<&std::path::Path>, args: &AnchorArgs) -> (AnchorReading, String) {
    let Some(namespace) = args.namespace() else { return (AnchorReading::Off, String::new()) };
    match signalbox::audit_anchor::client(kubeconfig).await {
        Ok(client) => {
            // Only read here: the key is used by the comparison, not by the reader.
            let anchor = AuditAnchor::new(client, &namespace, &args.audit_anchor_name, None);
            (anchor.read().await, anchor.location())
        }
        Err(error) => (
            AnchorReading::Unreachable(format!("no cluster configuration: {error}")),
            format!("ConfigMap {namespace}/{}", args.audit_anchor_name),
        ),
    }
}

fn print_anchor(report: &VerifyReport) {
    if let Some(anchor) = &report.anchor {
        println!("anchor: {}", anchor.detail);
    }
}

/// Names what does not match (the first entry whose hash does not, and every other
/// problem) and exits with status 1.
fn tampered(report: &VerifyReport) -> ! {
    if let Some(id) = report.first_mismatch {
        println!("audit log TAMPERED: entry {id} does not match its hash");
    }
    for problem in &report.problems {
        println!("audit log TAMPERED: {problem}");
    }
    print_anchor(report);
    std::process::exit(1);
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}
