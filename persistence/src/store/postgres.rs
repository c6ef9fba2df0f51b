//! PostgreSQL: the production backend.

use super::events::impl_event_records;
use super::media::impl_media_records;
use super::posts::impl_post_records;
use super::sql::{impl_sql_store, ACCOUNT_COLS, LOG_COLS, TOKEN_COLS, USER_COLS};
use super::webhooks::impl_webhook_records;
use super::{db_err, now, page_limit, redact_url, Store, StoreError, StoreResult};
use crate::model::*;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;

/// Enough for the API and the actors' session writes together; each write is one short statement.
const MAX_CONNECTIONS: u32 = 16;
/// An unreachable server should stop start-up within seconds, with one clear line, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    /// The newest event id committed here (see `EventRecords::event_feed`).
    feed: tokio::sync::watch::Sender<i64>,
    metrics: super::StoreMetrics,
}

impl PgStore {
    /// Connects to and migrates the database at `url` (`postgres://user:pass@host/db`).
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let shown = redact_url(url);
        // One plain connection first: a pool only says "timed out", while this says why
        // (refused, wrong password, no such database).
        let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect(url))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs()))
            // sqlx's message already includes its source; chaining it would say it twice.
            .and_then(|r| r.map_err(|e| anyhow::anyhow!("{e}")))
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .with_context(|| format!("connecting to PostgreSQL at {shown}"))?;
        MIGRATOR
            .run(&pool)
            .await
            .with_context(|| format!("running PostgreSQL migrations on {shown}"))?;
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
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection now (tests drop their database right after).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_store!(PgStore, sqlx::Postgres, "postgres");
impl_media_records!(PgStore, sqlx::Postgres);
impl_post_records!(PgStore, sqlx::Postgres);
impl_event_records!(PgStore, sqlx::Postgres, super::events::PG_EVENT_ORDER_LOCK);
impl_webhook_records!(PgStore, sqlx::Postgres);
