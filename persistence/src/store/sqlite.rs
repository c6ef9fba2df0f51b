//! SQLite: the default backend, one file under the data directory.

use super::events::impl_event_records;
use super::media::impl_media_records;
use super::posts::impl_post_records;
use super::sql::{impl_sql_store, ACCOUNT_COLS, LOG_COLS, TOKEN_COLS, USER_COLS};
use super::webhooks::impl_webhook_records;
use super::{db_err, now, page_limit, Store, StoreError, StoreResult};
use crate::model::*;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr as _;
use std::time::Duration;

/// How long a writer waits for another connection's write lock before giving up. Writes are
/// short single statements, so seconds of waiting only happen under a real stall.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite serialises writers anyway; a few readers beside one writer is all WAL mode can use.
const MAX_CONNECTIONS: u32 = 8;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    /// The newest event id committed here (see `EventRecords::event_feed`).
    feed: tokio::sync::watch::Sender<i64>,
    metrics: super::StoreMetrics,
}

impl SqliteStore {
    /// Opens (creating file and parent directory if missing) and migrates the database at `url`,
    /// e.g. `sqlite://./data/tgfleet.db` or `sqlite::memory:`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("parsing SQLite url {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions before a power cut.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool_options = if in_memory {
            // Every connection to `:memory:` is its own empty database: keep exactly one alive.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            let file = options.get_filename();
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                super::create_private_dir(dir).with_context(|| {
                    format!(
                        "creating directory {} for the SQLite database",
                        dir.display()
                    )
                })?;
            }
            create_private_file(file)?;
            SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS)
        };
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(30))
            // A connection to a local file does not go stale the way a network connection does;
            // sqlx's ping before every acquire was 15 % of the server's CPU per sent message
            // (`benches/routing_overhead.rs`, perf), each ping two hand-offs to SQLite's thread.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("opening SQLite database {url}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("running SQLite migrations on {url}"))?;
        let store = Self {
            pool,
            feed: tokio::sync::watch::channel(0).0,
            metrics: super::StoreMetrics::new(),
        };
        store
            .load_event_feed()
            .await
            .context("reading the last event id")?;
        let filled = store
            .fill_missing_devices()
            .await
            .context("giving accounts from before migration 0012 a device identity")?;
        if filled > 0 {
            tracing::info!(
                accounts = filled,
                "device identities drawn for existing accounts"
            );
        }
        Ok(store)
    }

    /// The pool, for tests and tools that need raw SQL; the app goes through `Store`.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Creates the database file 0600 when it is missing: it holds sealed sessions and password
/// hashes, and SQLite gives its WAL and shared-memory files the mode of the database file.
fn create_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("creating {}", path.display()))),
    }
}

impl_sql_store!(SqliteStore, sqlx::Sqlite, "sqlite");
impl_media_records!(SqliteStore, sqlx::Sqlite);
impl_post_records!(SqliteStore, sqlx::Sqlite);
impl_event_records!(SqliteStore, sqlx::Sqlite, "");
impl_webhook_records!(SqliteStore, sqlx::Sqlite);
