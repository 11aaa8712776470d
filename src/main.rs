use clap::Parser;
use signalbox::audit::AuditStore;
use signalbox::config::{AuditCommand, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.serve.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => signalbox::app::start(cli.serve).await?.run_until_signal().await,
        Command::Audit { command: AuditCommand::Verify { database, archives } } => verify(&database, &archives).await,
        Command::Audit { command: AuditCommand::Backup { database, to } } => {
            anyhow::ensure!(database.exists(), "no audit log at {}", database.display());
            AuditStore::open(&database).await?.backup(&to).await?;
            println!("audit log copied to {}", to.display());
            Ok(())
        }
    }
}

async fn verify(database: &std::path::Path, archives: &[std::path::PathBuf]) -> anyhow::Result<()> {
    anyhow::ensure!(database.exists(), "no audit log at {}", database.display());
    let store = AuditStore::open_read_only(database).await?;
    let report = if archives.is_empty() {
        store.verify().await?
    } else {
        match signalbox::audit::verify_archives(archives)? {
            Ok(checker) => store.verify_after(checker).await?,
            Err(id) => tampered(id),
        }
    };
    match report.first_mismatch {
        None => {
            println!("audit log intact: {} records verified", report.records_checked);
            Ok(())
        }
        Some(id) => tampered(id),
    }
}

/// Names the first entry that does not match its hash and exits with status 1.
fn tampered(id: i64) -> ! {
    println!("audit log TAMPERED: entry {id} does not match its hash");
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
