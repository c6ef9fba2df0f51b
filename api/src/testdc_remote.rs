//! `telegram.testdc_control`: a standalone testdc in another process stands in for Telegram.
//! Its DC addresses come from the control API's `GET /stats`, and each new session's auth keys are
//! registered with `POST /keys` before the session first connects.
//!
//! The control API is plain HTTP on loopback, so a minimal HTTP/1.1 exchange over a std
//! `TcpStream` is enough: `TelegramTarget::TestDc::register_key` is a synchronous hook (the key
//! must be registered before the session's first connection), and an async client cannot be
//! driven from inside it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use tgfleet_supervision::account::TelegramTarget;

/// Bounds one control-API exchange: loopback answers in well under a millisecond, so 5 s only
/// ever trips on a testdc that is gone or hung, and start-up then fails instead of hanging.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// The control API's address from `http://host:port[/]`.
pub fn control_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("telegram.testdc_control must start with http://")?;
    let host_port = rest.trim_end_matches('/');
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("telegram.testdc_control {url}: {e}"))?
        .next()
        .ok_or_else(|| format!("telegram.testdc_control {url}: no address"))
}

/// One request; returns the status and the body.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, CONTROL_TIMEOUT)?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Registers one auth key; blocking. Inside a multi-threaded runtime the worker hands its other
/// tasks off first (`block_in_place`), so a slow testdc stalls only the session being created.
fn register(addr: SocketAddr, key: [u8; 256]) {
    let body = format!("{{\"key\":\"{}\"}}", hex::encode(key));
    let call = || exchange(addr, "POST", "/keys", &body);
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let result = if multi_thread {
        tokio::task::block_in_place(call)
    } else {
        call()
    };
    match result {
        Ok((204, _)) => {}
        // The session's first connection will then be refused by testdc, and the caller sees
        // that error; this line says why.
        Ok((status, body)) => {
            tracing::error!(%addr, status, %body, "testdc control: registering an auth key failed")
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "testdc control: registering an auth key failed")
        }
    }
}

/// Asks the testdc for its DCs and builds the target that registers keys with it.
pub async fn target(url: &str) -> Result<TelegramTarget, String> {
    let addr = control_addr(url)?;
    let (status, body) = tokio::task::spawn_blocking(move || exchange(addr, "GET", "/stats", ""))
        .await
        .map_err(|e| format!("testdc control {url}: {e}"))?
        .map_err(|e| format!("testdc control {url}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "testdc control {url}: GET /stats answered {status}"
        ));
    }
    let stats: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("testdc control {url}: {e}"))?;
    let mut dcs = Vec::new();
    for dc in stats["dcs"].as_array().into_iter().flatten() {
        let id = dc["id"].as_i64().and_then(|i| i32::try_from(i).ok());
        let a = dc["addr"].as_str().and_then(|a| a.parse().ok());
        match (id, a) {
            (Some(id), Some(a)) => dcs.push((id, a)),
            _ => return Err(format!("testdc control {url}: bad DC entry {dc}")),
        }
    }
    if dcs.is_empty() {
        return Err(format!("testdc control {url}: no DCs in GET /stats"));
    }
    Ok(TelegramTarget::TestDc {
        dcs,
        register_key: Arc::new(move |key| register(addr, key)),
    })
}
