//! The `tgfleet` command line. Only argument parsing and exit codes live here; everything else is
//! in the library crates so tests run the very same code.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tgfleet",
    version,
    about = "Keeps many Telegram accounts logged in behind one REST API"
)]
struct Cli {
    /// TOML settings file; defaults and TGFLEET__SECTION__KEY environment variables apply around it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and metrics listeners until SIGINT or SIGTERM.
    Serve,
    /// Run the database migrations and exit.
    Migrate,
}

/// Exit code for a configuration error, so scripts can tell it from a runtime failure.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match tgfleet_config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    tgfleet_api::logging::init(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: tgfleet_config::Settings) -> anyhow::Result<()> {
    let listeners = tgfleet_api::Listeners::bind(&settings).await?;
    let state = tgfleet_api::build_state(settings).await?;
    tracing::info!(
        api = %listeners.api.local_addr()?,
        metrics = %listeners.metrics.local_addr()?,
        database = state.store.backend(),
        secrets = state.cipher.describe(),
        "tgfleet serving"
    );
    tgfleet_api::launch(state, listeners, shutdown_signal()).await
}

async fn migrate(settings: tgfleet_config::Settings) -> anyhow::Result<()> {
    let url = settings.database_url();
    std::fs::create_dir_all(&settings.data_dir)?;
    tgfleet_persistence::connect(url.expose()).await?;
    eprintln!("migrations applied to {}", url.redacted());
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (systemd and container runtimes stop services with SIGTERM).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
