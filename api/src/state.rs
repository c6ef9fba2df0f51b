use crate::auth::JwtKeys;
use crate::metrics::HttpMetrics;
use crate::ratelimit::RateLimits;
use std::sync::Arc;
use std::time::Instant;
use tgfleet_config::Settings;
use tgfleet_persistence::{SessionCipher, Store};
use tgfleet_supervision::Fleet;

/// The fake Telegram of `serve --sandbox`. A build without the `sandbox` feature has none, and
/// `Option<Sandbox>` is then always `None`.
#[cfg(feature = "sandbox")]
pub type Sandbox = tgfleet_testdc::TestDc;
#[cfg(not(feature = "sandbox"))]
#[derive(Clone)]
pub enum Sandbox {}

/// Shared by every handler through `State<AppState>`; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub cipher: SessionCipher,
    pub jwt: JwtKeys,
    pub limits: RateLimits,
    /// `None` when Telegram is not configured: account routes answer 503 TELEGRAM_NOT_CONFIGURED.
    pub fleet: Option<Fleet>,
    /// The in-process testdc of `serve --sandbox`.
    pub sandbox: Option<Sandbox>,
    /// Where the media library's bytes are.
    pub media: tgfleet_persistence::MediaStorage,
    /// Wakes the post scheduler when a post may have become due (created, rescheduled).
    pub posts_due: Arc<tokio::sync::Notify>,
    /// The Prometheus registry `/metrics` serves (the account registry is the fleet's).
    pub metrics_registry: prometheus::Registry,
    pub http_metrics: HttpMetrics,
    /// Events by type, webhook deliveries and backlogs.
    pub event_metrics: crate::events::metrics::EventMetrics,
    pub started_at: Instant,
    /// This process's claim on the database; released when the last clone of the state goes.
    pub instance_lock: Arc<tgfleet_persistence::InstanceLock>,
    /// Session-import probes in flight across the process (`import.max_concurrent_probes`): each
    /// is an outbound Telegram connection, so no number of requests may open more.
    pub import_probes: Arc<tokio::sync::Semaphore>,
    /// One lock per user around "count, then create" of accounts, so concurrent creations and
    /// imports of one user cannot pass `accounts.max_per_user` together.
    pub account_creation: Arc<crate::state::PerUserLocks>,
    /// Token revocations, users' roles, accounts' owners: what every request checks.
    pub auth_cache: Arc<crate::auth::cache::AuthCache>,
}

#[derive(Default)]
pub struct PerUserLocks(
    std::sync::Mutex<std::collections::HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
);

impl PerUserLocks {
    pub async fn lock(&self, user: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(user).or_default().clone()
        };
        lock.lock_owned().await
    }
}
