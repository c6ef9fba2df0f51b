//! A real S3 API server per test: moto's (`moto_server`, from the PyPI package `moto[server]`).

use super::skip;
use anyhow::Context as _;
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server on a free loopback port with one empty bucket; killed (by its pid) on drop.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
}

/// moto starts in a second or two; the margin is for a machine busy compiling.
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl S3Server {
    /// Starts the server, or returns `None` (after a notice) when `moto_server` is not installed
    /// and services are not required. Set `TGFLEET_MOTO` to use another binary.
    pub async fn start() -> Option<Self> {
        let bin = std::env::var("TGFLEET_MOTO").unwrap_or_else(|_| "moto_server".to_owned());
        match Command::new(&bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => return skip("moto_server (pip install 'moto[server]')", &s),
            Err(e) => return skip("moto_server (pip install 'moto[server]')", &e),
        }
        match Self::launch(&bin).await {
            Ok(server) => Some(server),
            Err(e) => panic!("starting moto_server: {e:#}"),
        }
    }

    async fn launch(bin: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free loopback port")?
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning `{bin}`"))?;
        let mut server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: format!("tgfleet-{}", uuid::Uuid::new_v4().simple()),
            child,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait().context("polling moto_server")? {
                anyhow::bail!("moto_server exited early with {status}");
            }
            // moto checks no signature: a plain PUT creates the bucket once the server is up.
            match put_bucket(port, &server.bucket) {
                Ok(200) => return Ok(server),
                Ok(status) => anyhow::bail!("creating bucket {}: HTTP {status}", server.bucket),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => return Err(e).context("moto_server did not come up"),
            }
        }
    }
}

fn put_bucket(port: u16, bucket: &str) -> std::io::Result<u16> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {answer:.80}")))
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
