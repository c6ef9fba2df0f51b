//! A real SOCKS5 server per test or bench: Debian's `microsocks`, on a free loopback port.

use super::skip;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A microsocks process, killed (by its pid) when dropped; its log (one line per connection it
/// makes, `client[n] 127.0.0.1: connected to HOST:PORT`) in a file.
pub struct SocksServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SocksServer {
    /// Starts one, with a user name and password when given; `None` (after a notice) when
    /// microsocks is not installed and services are not required.
    pub async fn start(credentials: Option<(&str, &str)>) -> Option<Self> {
        if let Err(e) = Command::new("microsocks")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            return skip("microsocks (apt-get install microsocks)", &e);
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("microsocks.log");
        let out = std::fs::File::create(&log).expect("microsocks' log file");
        let mut cmd = Command::new("microsocks");
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, password)) = credentials {
            cmd.args(["-u", user, "-P", password]);
        }
        let child = cmd
            .stdout(Stdio::from(out.try_clone().expect("microsocks' log file")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("microsocks starts");
        let server = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("microsocks did not listen on 127.0.0.1:{port}");
    }

    /// `socks5://[user:password@]127.0.0.1:PORT`.
    pub fn url(&self, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => format!("socks5://{user}:{password}@127.0.0.1:{}", self.port),
            None => format!("socks5://127.0.0.1:{}", self.port),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it now (a dead proxy), rather than when dropped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SocksServer {
    fn drop(&mut self) {
        self.kill();
    }
}
