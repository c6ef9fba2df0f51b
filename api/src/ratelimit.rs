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
    /// Session-import items per user: each opens a Telegram connection to check the session.
    import_items: Arc<DefaultKeyedRateLimiter<UserId>>,
}

impl RateLimits {
    pub fn new(auth_per_minute: u32, user_per_second: u32, import_items_per_minute: u32) -> Self {
        let auth = NonZeroU32::new(auth_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let user = NonZeroU32::new(user_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let import = NonZeroU32::new(import_items_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            auth: Arc::new(RateLimiter::keyed(Quota::per_minute(auth))),
            user: Arc::new(RateLimiter::keyed(Quota::per_second(user))),
            import_items: Arc::new(RateLimiter::keyed(Quota::per_minute(import))),
        }
    }

    /// Takes `items` import items from the user's per-minute budget, or none (429
    /// `IMPORT_RATE_LIMITED`, with when enough will be back).
    pub fn check_import_items(&self, id: UserId, items: usize) -> Result<(), ApiError> {
        let n =
            NonZeroU32::new(u32::try_from(items).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match self.import_items.check_key_n(&id, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(ApiError::TooManyRequests {
                code: "IMPORT_RATE_LIMITED",
                retry_after_s: retry_after_s(not_until),
            }),
            // More items than a whole minute's budget can never pass: say so, not "retry".
            Err(_) => Err(ApiError::Unprocessable {
                code: "IMPORT_BATCH_TOO_LARGE",
                message: "more items than one user may import per minute \
                          (import.items_per_minute_per_user); send fewer per request"
                    .into(),
            }),
        }
    }

    pub fn check_user(&self, id: UserId) -> Result<(), ApiError> {
        self.user.check_key(&id).map_err(too_many)
    }

    fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.auth.check_key(&bucket(ip)).map_err(too_many)
    }

    /// Forgets idle keys; called periodically so the maps do not grow with every address seen.
    pub fn prune(&self) {
        self.auth.retain_recent();
        self.user.retain_recent();
        self.import_items.retain_recent();
        self.auth.shrink_to_fit();
        self.user.shrink_to_fit();
        self.import_items.shrink_to_fit();
    }
}

fn too_many(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    ApiError::TooManyRequests {
        code: "RATE_LIMITED",
        retry_after_s: retry_after_s(not_until),
    }
}

fn retry_after_s(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// Middleware for the unauthenticated auth routes.
pub async fn per_ip(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let trusted = &state.settings.api.trusted_proxies;
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    state
        .limits
        .check_ip(client_ip(addr.ip(), &forwarded, trusted))?;
    Ok(next.run(req).await)
}

/// The key a client's address is limited under. An IPv6 client usually holds a whole /64 (SLAAC,
/// privacy addresses, any cheap VPS), so keying by the full address would give it 2^64 fresh
/// buckets; its /64 is what one client is. An IPv4-mapped address counts as the IPv4 one.
pub fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !u128::from(u64::MAX);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (entries left of it are the client's own
/// claims and could be forged).
pub fn client_ip(peer: IpAddr, forwarded_for: &str, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    forwarded_for
        .rsplit(',')
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::{bucket, client_ip};
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy = ip("10.0.0.2");
        let trusted = [proxy];
        // Not a proxy: the header is ignored, whatever it claims.
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        // Behind the proxy: the address it saw, not what the client wrote before it.
        assert_eq!(
            client_ip(proxy, "6.6.6.6, 198.51.100.7", &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(proxy, "198.51.100.7, 10.0.0.2", &trusted),
            ip("198.51.100.7")
        );
        // A proxy that sent no usable header: itself.
        assert_eq!(client_ip(proxy, "garbage", &trusted), proxy);
        assert_eq!(client_ip(proxy, "", &trusted), proxy);
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        assert_eq!(bucket(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            bucket(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            bucket(ip("2001:db8:1:2::7"))
        );
        assert_ne!(bucket(ip("2001:db8:1:3::1")), bucket(ip("2001:db8:1:2::1")));
        assert_eq!(bucket(ip("::ffff:198.51.100.7")), ip("198.51.100.7"));
        assert_eq!(bucket(ip("198.51.100.7")), ip("198.51.100.7"));
    }
}
