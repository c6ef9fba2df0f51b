//! Checking a proxy: can it reach the Telegram DC an account would connect to, and how fast.

use std::net::SocketAddr;
use std::time::Duration;

use tgfleet_persistence::ProxyUrl;
use tokio::time::Instant;

use crate::env::TelegramTarget;

/// How long a check waits for the proxy to connect it to the DC: a proxy slower than this is
/// no use to an account (its calls time out sooner or later anyway).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Telegram's DC 2 (the usual home DC), as grammers knows it statically.
const PRODUCTION_DC: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(149, 154, 167, 51)),
    443,
);

/// The DC address a check dials through the proxy: the first DC of the target.
pub fn check_address(target: &TelegramTarget) -> SocketAddr {
    match target {
        TelegramTarget::Production => PRODUCTION_DC,
        TelegramTarget::TestDc { dcs, .. } => dcs.first().map_or(PRODUCTION_DC, |(_, addr)| *addr),
    }
}

/// The time to open a TCP connection to `dc` through the proxy (the SOCKS5 handshake, the
/// proxy's own connect to the DC and its answer), or why it could not. What an account's
/// connection does first, without the MTProto part, so a check costs the DC nothing.
pub async fn check(url: &ProxyUrl, dc: SocketAddr) -> Result<Duration, String> {
    let proxy = tokio::net::lookup_host(url.endpoint())
        .await
        .map_err(|e| format!("resolving {}: {e}", url.endpoint()))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", url.endpoint()))?;
    let credentials = url.credentials();
    let started = Instant::now();
    let connect = async {
        match &credentials {
            None => tokio_socks::tcp::Socks5Stream::connect(proxy, dc).await,
            Some((user, password)) => {
                tokio_socks::tcp::Socks5Stream::connect_with_password(proxy, dc, user, password)
                    .await
            }
        }
    };
    match tokio::time::timeout(CHECK_TIMEOUT, connect).await {
        Ok(Ok(_stream)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("through {url} to {dc}: {e}")),
        Err(_) => Err(format!(
            "through {url} to {dc}: no answer within {} s",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}
