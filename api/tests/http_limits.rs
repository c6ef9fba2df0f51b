//! Slow and idle HTTP clients: what a slowloris, a trickled body and an idle keep-alive
//! connection can (not) do to the service. Clients here speak raw HTTP/1.1 over TCP, because a
//! well-behaved client library cannot be made to misbehave this way.

mod common;

use common::TestApp;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

fn port_of(base: &str) -> u16 {
    addr_of(base).rsplit(':').next().unwrap().parse().unwrap()
}

/// This process holds the slow clients' sockets too; the soft limit must fit both sides.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only touch the struct passed to them.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    assert!(
        lim.rlim_cur >= 6000,
        "this test needs about 6000 file descriptors; the hard limit is {}",
        lim.rlim_max
    );
}

/// Descriptors of this process that are the server's side of `port`: its listener and every
/// connection it accepted (the test's own client sockets have `port` as their remote end).
/// Counted by distinct inode: the kernel writes the TCP table in pieces while sockets come and go,
/// so one socket can appear on two lines of a single read.
fn server_sockets(port: u16) -> usize {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut seen = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else {
                continue;
            };
            let local_port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && inodes.contains(*inode) {
                seen.insert(inode.to_string());
            }
        }
    }
    seen.len()
}

/// A response read off a raw connection: status and body (by Content-Length).
async fn read_response(stream: &mut (impl AsyncReadExt + Unpin)) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("reading a response");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("reading a body");
        assert!(n > 0, "connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, buf[head_end..head_end + length].to_vec())
}

/// True once the server has closed `stream` (a read sees end of file or a reset).
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}

/// Half a request head (longer than any protocol preface), never finished.
const HALF_HEADER: &[u8] =
    b"GET /api/v1/health HTTP/1.1\r\nHost: tgfleet\r\nUser-Agent: slow-client-that-never-finishes\r\n";

/// Opens `n` connections to `addr` that each send half a header and then hold the connection;
/// they live until the returned handles are aborted.
fn slow_clients(addr: &str, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let addr = addr.to_owned();
            tokio::spawn(async move {
                // Past the cap and the backlog the kernel drops SYNs and the client retries;
                // some may never get in during the test, which is the point of the cap.
                let Ok(Ok(mut stream)) =
                    tokio::time::timeout(Duration::from_secs(60), TcpStream::connect(&addr)).await
                else {
                    return;
                };
                let _ = stream.write_all(HALF_HEADER).await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
                drop(stream);
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_headers_neither_starve_requests_nor_exhaust_descriptors() {
    raise_fd_limit();
    let cap = 300;
    let app = TestApp::spawn_with(|s| {
        s.api.max_connections = cap;
        s.api.header_read_timeout_s = 2;
    })
    .await;
    let (api_port, metrics_port) = (port_of(&app.base), port_of(&app.metrics));
    let mut attackers = slow_clients(&addr_of(&app.base), 2000);
    attackers.extend(slow_clients(&addr_of(&app.metrics), 300));

    // Watch the server's descriptors for the whole attack, including the normal request.
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        tokio::task::spawn_blocking(move || {
            let (mut api_most, mut metrics_most) = (0, 0);
            while watching.load(std::sync::atomic::Ordering::Acquire) {
                api_most = api_most.max(server_sockets(api_port));
                metrics_most = metrics_most.max(server_sockets(metrics_port));
                std::thread::sleep(Duration::from_millis(50));
            }
            (api_most, metrics_most)
        })
    };
    // Let the attackers connect and fill every slot before the honest client arrives.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let honest = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(180))
        .build()
        .unwrap();
    let answer = honest
        .get(format!("{}/api/v1/health", app.base))
        .send()
        .await
        .expect("a normal request still gets an answer");
    assert_eq!(answer.status(), 200);
    watching.store(false, std::sync::atomic::Ordering::Release);
    let (api_most, metrics_most) = watcher.await.unwrap();
    // The listener, the honest client's connection, and slack for the sampling: the fd list and
    // the TCP table are read at two moments while connections close and open every 2 s. Without
    // the cap the count follows the 2,000 attackers.
    let margin = 32;
    assert!(
        api_most <= cap + margin,
        "the API held {api_most} sockets; the cap is {cap}"
    );
    assert!(
        metrics_most <= 16 + margin,
        "the metrics listener held {metrics_most} sockets"
    );
    for a in attackers {
        a.abort();
    }
    app.shutdown().await;
}

#[tokio::test]
async fn idle_and_half_sent_connections_do_not_hold_shutdown_open() {
    // Timeouts far beyond the test, so only shutdown itself can end these connections.
    let app = TestApp::spawn_with(|s| {
        s.api.header_read_timeout_s = 3600;
        s.api.request_timeout_s = 3600;
    })
    .await;
    let addr = addr_of(&app.base);

    // A keep-alive client that made one request and is now idle.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: tgfleet\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut idle).await.0, 200);
    // A client that sent half a header.
    let mut half = TcpStream::connect(&addr).await.unwrap();
    half.write_all(HALF_HEADER).await.unwrap();
    // A request in flight: its body is still on the way when shutdown begins.
    let body = br#"{"email":"late@example.org","password":"correct horse battery"}"#;
    let mut in_flight = TcpStream::connect(&addr).await.unwrap();
    in_flight
        .write_all(login_head(body.len()).as_bytes())
        .await
        .unwrap();
    in_flight.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stopping = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    in_flight.write_all(&body[10..]).await.unwrap();
    let (status, _) = tokio::time::timeout(Duration::from_secs(60), read_response(&mut in_flight))
        .await
        .expect("the request in flight is answered");
    assert_eq!(status, 401, "the in-flight login ran to its end");

    tokio::time::timeout(Duration::from_secs(60), stopping)
        .await
        .expect("shutdown is not held open by idle or half-sent connections")
        .unwrap();
    for (name, conn) in [("idle keep-alive", &mut idle), ("half header", &mut half)] {
        let closed = tokio::time::timeout(Duration::from_secs(10), closed_by_server(conn)).await;
        assert!(
            matches!(closed, Ok(true)),
            "{name} connection closed by the server"
        );
    }
}

/// The head of a `POST /auth/login` whose JSON body of `len` bytes the caller sends itself.
fn login_head(len: usize) -> String {
    format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: tgfleet\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_request_slower_than_the_request_timeout_gets_503_request_timeout() {
    let app = TestApp::spawn_with(|s| s.api.request_timeout_s = 1).await;
    let mut body = br#"{"email":"slow@example.org","password":"correct horse battery"}"#.to_vec();
    // A valid login body, sent a byte at a time: complete, it would be answered 401.
    body.resize(body.len() + 40, b' ');
    let stream = TcpStream::connect(addr_of(&app.base)).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(login_head(body.len()).as_bytes())
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        for byte in body {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), read_response(&mut read))
        .await
        .expect("an answer");
    trickle.abort();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "REQUEST_TIMEOUT");
    assert!(v["error"]["message"].is_string());
    app.shutdown().await;
}
