//! The `tgfleet` command line. Only argument parsing and exit codes live here; everything else is
//! in the library crates so tests run the very same code.

/// jemalloc, not glibc malloc: grammers gives every connection 1 MiB buffers, and after glibc has
/// freed such buffers once (a reconnect) it raises its mmap threshold, so their successors land in
/// the heap and stay resident: 400–1,700 KB per idle account instead of ~35 KB (MTPROTO-NOTES.md,
/// benches/idle_rss.rs).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cli;
mod malloc_conf;

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
    Serve {
        /// Start an in-process fake Telegram DC (testdc) and use it instead of Telegram: every
        /// flow works without credentials; login codes are at GET /api/v1/sandbox/codes/{phone}.
        /// Its world and ports are kept in DATA_DIR/sandbox, so a restart finds its accounts.
        /// Refused beside telegram.api_id/api_hash or telegram.testdc_control.
        #[arg(long)]
        sandbox: bool,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Manage API users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Bulk onboarding against a running tgfleet, over its REST API.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Session keys: rotate the local key, or re-wrap Vault envelopes to the newest key version.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a consistent snapshot of a SQLite install's database to FILE, while it serves.
    /// Sessions stay sealed in it: keep the session key (or Vault's transit key) apart from it.
    /// PostgreSQL: use pg_dump (README, "Keys and backups").
    Backup {
        /// Where to write the backup; never overwritten.
        file: PathBuf,
    },
    /// Replace the SQLite database with the backup FILE. Refused while a server runs (exit 4)
    /// and when the backup's sealed data does not open with the current key (exit 3); the
    /// database is replaced in one step or not at all, and the replaced one is kept beside it.
    Restore { file: PathBuf },
    /// Run a standalone testdc (fake Telegram DCs) with its control HTTP API, for benchmarks.
    #[cfg(feature = "sandbox")]
    Testdc {
        /// Loopback control API: POST /keys, GET /codes/{phone}, POST /faults, GET /stats …
        #[arg(long, default_value = "127.0.0.1:9900")]
        control: std::net::SocketAddr,
        /// First DC port; DCs 1–5 listen on consecutive ports (0 picks free ones).
        #[arg(long, default_value_t = 0)]
        base_port: u16,
        /// Auto-register any phone on first use (phones ending in 9 get 2FA `sandbox-2fa`).
        #[arg(long)]
        sandbox_directory: bool,
        /// Answer AUTH_KEY_DUPLICATED when one auth key is live on two connections at once,
        /// as Telegram does (off by default: benchmarks reuse keys on purpose).
        #[arg(long)]
        strict_duplicate_keys: bool,
    },
}

/// Where the running tgfleet is, and who is calling.
#[derive(clap::Args)]
struct Remote {
    /// Base URL of the tgfleet API.
    #[arg(long, env = "TGFLEET_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An access token (POST /api/v1/auth/login).
    #[arg(long, env = "TGFLEET_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Import logged-in sessions: a JSONL file ({"format","session","label"} per line), a CSV
    /// (format,session[,label] or a header naming them), a text file with one session string per
    /// line, or a folder of Telethon/Pyrogram `.session` files. Exits non-zero if any is invalid.
    Import {
        #[command(flatten)]
        remote: Remote,
        file: PathBuf,
        /// Format of strings that do not say: telethon, pyrogram or tgfleet (default: detected).
        #[arg(long)]
        format: Option<String>,
    },
    /// Log in a list of phones: CSV rows `phone[,password][,label]` (password for 2FA). Resumable:
    /// a second run skips active phones and continues half-done ones. Exits non-zero if any row failed.
    Onboard {
        #[command(flatten)]
        remote: Remote,
        file: PathBuf,
        /// Login codes from a CSV file of `phone,code` rows.
        #[arg(long, conflicts_with_all = ["code_command", "sandbox_codes"])]
        codes: Option<PathBuf>,
        /// A command that prints the code; run with `sh -c`, the phone as its last argument and
        /// in TGFLEET_PHONE.
        #[arg(long, conflicts_with = "sandbox_codes")]
        code_command: Option<String>,
        /// Read codes from a `serve --sandbox` (GET /api/v1/sandbox/codes/{phone}).
        #[arg(long)]
        sandbox_codes: bool,
        /// Account starts per second (Telegram flood-limits bursts of login codes).
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Rows in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Seal every session and secret again with a new local session key (server stopped;
    /// exit 4 while one runs). Resumable: after a crash, run it again to finish.
    Rotate,
    /// Seal every value wrapped by an older Vault transit key version again with the newest
    /// (after `transit/keys/NAME/rotate`); safe while the server runs.
    Rewrap,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user, e.g. the first admin. The password is read from stdin when it is not a
    /// terminal; otherwise one is generated and printed once.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    Admin,
    User,
}

/// Exit code for a configuration error, so scripts can tell it from a runtime failure.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut settings = match tgfleet_config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // The flag is the only way in (no config key), and it must agree with the rest of the config.
    if let Command::Serve { sandbox: true } = cli.command {
        settings.sandbox = true;
        // The sandbox is tried on one machine: its webhook receivers are on loopback.
        settings.webhooks.allow_private_targets = true;
        if let Err(e) = settings.validate_telegram_target() {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
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
            Command::Serve { .. } => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Users(UsersCommand::Create { email, role }) => {
                create_user(settings, email, role).await
            }
            Command::Keys(KeysCommand::Rotate) => cli::keys::rotate(&settings).await,
            Command::Keys(KeysCommand::Rewrap) => cli::keys::rewrap(&settings).await,
            Command::Backup { file } => cli::backup::backup(&settings, &file).await,
            Command::Restore { file } => cli::backup::restore(&settings, &file).await,
            Command::Accounts(cmd) => match accounts(cmd).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(anyhow::anyhow!(
                    "some rows failed; the summary above names them"
                )),
                Err(e) => Err(e),
            },
            #[cfg(feature = "sandbox")]
            Command::Testdc {
                control,
                base_port,
                sandbox_directory,
                strict_duplicate_keys,
            } => {
                let cfg = tgfleet_testdc::TestDcConfig {
                    base_port,
                    sandbox_directory,
                    strict_duplicate_keys,
                    ..Default::default()
                };
                tgfleet_testdc::run_standalone(cfg, control, shutdown_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<cli::keys::Refusal>() {
                Some(refusal) => ExitCode::from(refusal.exit_code()),
                None => ExitCode::FAILURE,
            }
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
        sandbox = state.sandbox.is_some(),
        "tgfleet serving"
    );
    tgfleet_api::launch(state, listeners, shutdown_signal()).await
}

async fn migrate(settings: tgfleet_config::Settings) -> anyhow::Result<()> {
    let url = settings.database_url();
    tgfleet_persistence::create_private_dir(&settings.data_dir)?;
    tgfleet_persistence::connect(url.expose()).await?;
    eprintln!("migrations applied to {}", url.redacted());
    Ok(())
}

async fn create_user(
    settings: tgfleet_config::Settings,
    email: String,
    role: RoleArg,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Read};
    let (password, generated) = if std::io::stdin().is_terminal() {
        (tgfleet_api::users::generate_password(), true)
    } else {
        let mut input = String::new();
        std::io::stdin().read_to_string(&mut input)?;
        (input.trim_end_matches(['\r', '\n']).to_owned(), false)
    };
    let role = match role {
        RoleArg::Admin => tgfleet_persistence::Role::Admin,
        RoleArg::User => tgfleet_persistence::Role::User,
    };
    // Only the database: creating a user must not start the fleet or touch Telegram.
    tgfleet_persistence::create_private_dir(&settings.data_dir)?;
    let store = tgfleet_persistence::connect(settings.database_url().expose()).await?;
    let user = tgfleet_api::users::create_from_cli(store, &email, password.clone(), role).await?;
    if generated {
        // Printed once, to stdout only, so it can be piped into a password manager.
        println!("{password}");
    }
    eprintln!(
        "created user {} ({}) with role {:?}",
        user.id, user.email, user.role
    );
    Ok(())
}

/// `Ok(false)` when the command ran but some rows failed (the summary names them): exit code 1.
async fn accounts(cmd: AccountsCommand) -> anyhow::Result<bool> {
    use tgfleet_actors::import::formats::SessionFormat;
    match cmd {
        AccountsCommand::Import {
            remote,
            file,
            format,
        } => {
            let forced = match format.as_deref() {
                None => None,
                Some(name) if name.parse::<SessionFormat>().is_ok() => name.parse().ok(),
                Some(other) => {
                    anyhow::bail!("--format {other:?}: use telethon, pyrogram or tgfleet")
                }
            };
            let api = cli::client::Api::new(&remote.url, &remote.token)?;
            let (items, unreadable) = cli::import::read_input(&file, forced).await?;
            cli::import::run(&api, items, unreadable).await
        }
        AccountsCommand::Onboard {
            remote,
            file,
            codes,
            code_command,
            sandbox_codes,
            rate,
            concurrency,
        } => {
            anyhow::ensure!(rate > 0.0, "--rate must be above 0");
            let codes = match (codes, code_command, sandbox_codes) {
                (Some(path), _, _) => {
                    cli::onboard::CodeSource::File(cli::onboard::read_codes(&path)?)
                }
                (_, Some(cmd), _) => cli::onboard::CodeSource::Command(cmd),
                (_, _, true) => cli::onboard::CodeSource::Sandbox,
                _ => cli::onboard::CodeSource::Prompt,
            };
            let api = cli::client::Api::new(&remote.url, &remote.token)?;
            let opts = cli::onboard::Options {
                rate,
                concurrency,
                codes,
            };
            cli::onboard::run(api, &file, opts).await
        }
    }
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
