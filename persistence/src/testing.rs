//! Test harness shared by every crate's tests (cargo feature `testing`): a fresh database per test
//! on either backend, an in-memory store for tests on paused time, a real OpenBao dev server and a
//! real S3 API server (moto).
//!
//! External services are optional on a developer's machine: when PostgreSQL or the `bao` binary is
//! missing, the helpers print a notice and return `None` so the test can return early. With
//! `TGFLEET_REQUIRE_SERVICES=1` (as CI sets it) they panic instead, so a skipped service cannot
//! pass for a green run. Panicking is the point here: this module only ever runs inside tests.

use crate::store::{connect, Store};
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;

mod bao;
mod mem;
mod s3;
mod socks;
pub use bao::BaoServer;
pub use mem::MemStore;
pub use s3::S3Server;
pub use socks::SocksServer;

/// The PostgreSQL server the tests use, without a database name; override with
/// `TGFLEET_TEST_POSTGRES`.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// True when `TGFLEET_REQUIRE_SERVICES=1`: missing services fail tests instead of skipping them.
pub fn services_required() -> bool {
    std::env::var("TGFLEET_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Prints that `service` is unavailable and returns `None`, or panics when services are required.
pub fn skip<T>(service: &str, why: &dyn std::fmt::Display) -> Option<T> {
    if services_required() {
        panic!("{service} is required (TGFLEET_REQUIRE_SERVICES=1) but unavailable: {why}");
    }
    eprintln!(
        "SKIPPED: {service} unavailable ({why}); set TGFLEET_REQUIRE_SERVICES=1 to fail instead"
    );
    None
}

enum Backing {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { server: String, name: String },
}

/// A migrated, empty database that disappears when dropped.
pub struct TestDb {
    /// The URL `connect` was given, for code under test that opens its own store.
    pub url: String,
    pub store: Arc<dyn Store>,
    backing: Backing,
}

impl TestDb {
    /// A SQLite database in a fresh temporary directory.
    pub async fn sqlite() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory for SQLite")?;
        let url = format!("sqlite://{}/tgfleet.db", dir.path().display());
        let store = connect(&url).await?;
        Ok(Self {
            url,
            store,
            backing: Backing::Sqlite(dir),
        })
    }

    /// The SQLite file (tests that inspect raw bytes); `None` for PostgreSQL.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match &self.backing {
            Backing::Sqlite(dir) => Some(dir.path().join("tgfleet.db")),
            Backing::Postgres { .. } => None,
        }
    }

    /// A fresh UUID-named PostgreSQL database, or `None` (after a notice) when the server is
    /// unreachable and services are not required.
    pub async fn postgres() -> Option<Self> {
        let server = std::env::var("TGFLEET_TEST_POSTGRES")
            .unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let name = format!("tgfleet_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = admin_exec(&server, &format!("CREATE DATABASE \"{name}\"")).await {
            return skip(&format!("PostgreSQL at {server}"), &format!("{e:#}"));
        }
        let url = format!("{server}/{name}");
        let store = match connect(&url).await {
            Ok(store) => store,
            Err(e) => panic!("connecting to fresh test database {url}: {e:#}"),
        };
        Some(Self {
            url,
            store,
            backing: Backing::Postgres { server, name },
        })
    }

    /// "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Backing::Postgres { server, name } = &self.backing else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived thread
        // with its own runtime does the cleanup. FORCE ends the store's still-open connections.
        let (server, sql) = (
            server.clone(),
            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        );
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building a runtime to drop the test database")?;
            rt.block_on(admin_exec(&server, &sql))
        })
        .join();
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop test database {name}: {e:#}"),
            Err(_) => eprintln!("warning: dropping test database {name} panicked"),
        }
    }
}

/// Runs one statement on the server's `postgres` maintenance database.
async fn admin_exec(server: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let admin = format!("{server}/postgres");
    let mut conn =
        tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin))
            .await
            .with_context(|| format!("timed out connecting to {admin}"))?
            .with_context(|| format!("connecting to {admin}"))?;
    sqlx::query(sql)
        .execute(&mut conn)
        .await
        .with_context(|| format!("running {sql:?}"))?;
    conn.close().await.ok();
    Ok(())
}
