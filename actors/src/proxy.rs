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

/// The DC address a check dials through the proxy: the first DC of the target. A test DC with
/// no address is an error, never a reason to dial real Telegram instead.
pub fn check_address(target: &TelegramTarget) -> Result<SocketAddr, String> {
    match target {
        TelegramTarget::Production => Ok(PRODUCTION_DC),
        TelegramTarget::TestDc { dcs, .. } => dcs
            .first()
            .map(|(_, addr)| *addr)
            .ok_or_else(|| "the test DC has no address to check the proxy against".to_owned()),
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
