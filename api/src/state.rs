use crate::auth::JwtKeys;
use crate::metrics::HttpMetrics;
use crate::ratelimit::RateLimits;
use std::sync::Arc;
use std::time::Instant;
use tgfleet_config::Settings;
use tgfleet_persistence::{SessionCipher, Store};

/// Shared by every handler through `State<AppState>`; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub cipher: SessionCipher,
    pub jwt: JwtKeys,
    pub limits: RateLimits,
    pub registry: prometheus::Registry,
    pub http_metrics: HttpMetrics,
    pub started_at: Instant,
}
