//! Rate limits (governor): per client IP on the auth routes, against password guessing; per user
//! on everything behind a token, so one script cannot starve the others.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use tgfleet_persistence::UserId;

#[derive(Clone)]
pub struct RateLimits {
    auth: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    user: Arc<DefaultKeyedRateLimiter<UserId>>,
}

impl RateLimits {
    pub fn new(auth_per_minute: u32, user_per_second: u32) -> Self {
        let auth = NonZeroU32::new(auth_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let user = NonZeroU32::new(user_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            auth: Arc::new(RateLimiter::keyed(Quota::per_minute(auth))),
            user: Arc::new(RateLimiter::keyed(Quota::per_second(user))),
        }
    }

    pub fn check_user(&self, id: UserId) -> Result<(), ApiError> {
        self.user.check_key(&id).map_err(too_many)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.auth.check_key(&ip).map_err(too_many)
    }

    /// Forgets idle keys; called periodically so the maps do not grow with every address seen.
    pub fn prune(&self) {
        self.auth.retain_recent();
        self.user.retain_recent();
        self.auth.shrink_to_fit();
        self.user.shrink_to_fit();
    }
}

fn too_many(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::TooManyRequests {
        code: "RATE_LIMITED",
        retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

/// Middleware for the unauthenticated auth routes.
pub async fn per_ip(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    state.limits.check_ip(addr.ip())?;
    Ok(next.run(req).await)
}
