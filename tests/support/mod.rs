//! What the process-level tests share: the real `tgfleet` binary started on fresh ports over a
//! directory, stopped by its pid, and the few REST calls every one of them makes.

#![allow(dead_code)] // each test binary uses its own part of this

use serde_json::Value;
use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Kills the child when the test ends, pass or fail.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tgfleet ARGS` in `dir`, its output in `dir/LOG.out` and `dir/LOG.err`.
pub fn tgfleet(dir: &Path, args: &[&str], log: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgfleet"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        // The CLI would take a token from the caller's environment; tests pass their own.
        .env_remove("TGFLEET_TOKEN")
        .stdin(Stdio::null())
        // Files, not pipes: a full pipe nobody reads would block the process.
        .stdout(File::create(dir.join(format!("{log}.out"))).unwrap())
        .stderr(File::create(dir.join(format!("{log}.err"))).unwrap());
    cmd
}

pub fn log_of(dir: &Path, log: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{log}.err"))).unwrap_or_default()
}

/// A standalone `tgfleet testdc` (sandbox directory: any phone signs up) with `extra` flags;
/// returns it and its control URL once it answers. A free port can be taken by another test
/// between `free_port` and the bind: a testdc that exits (it could not listen) is started
/// again on another port, and one that neither answers nor exits fails with its log.
pub async fn testdc(dir: &Path, extra: &[&str], http: &reqwest::Client) -> (Guard, String) {
    let mut exits = Vec::new();
    for attempt in 0..3 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["testdc", "--control", &listen, "--sandbox-directory"];
        args.extend_from_slice(extra);
        let log = format!("testdc-{attempt}");
        let mut child = Guard(
            tgfleet(dir, &args, &log)
                .spawn()
                .expect("spawn tgfleet testdc"),
        );
        let control = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if http.get(format!("{control}/stats")).send().await.is_ok() {
                return (child, control);
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                exits.push(format!("{status}: {}", log_of(dir, &log)));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "testdc never came up: {}",
                log_of(dir, &log)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("testdc exited at every start: {exits:#?}");
}

/// `tgfleet serve` on fresh ports over `dir/data`, its Telegram the testdc behind `control`,
/// with `env` on top. Returns the process and the API's base URL.
pub fn serve(dir: &Path, control: &str, log: &str, env: &[(&str, &str)]) -> (Guard, String) {
    let (port, metrics) = (free_port(), free_port());
    let mut cmd = tgfleet(dir, &["serve"], log);
    cmd.env("TGFLEET__API__LISTEN", format!("127.0.0.1:{port}"))
        .env("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}"))
        .env("TGFLEET__TELEGRAM__TESTDC_CONTROL", control)
        // One user drives every account here; the per-user budgets are not under test.
        .env("TGFLEET__AUTH__USER_RATE_PER_SECOND", "10000")
        .env("TGFLEET__ACCOUNTS__MAX_PER_USER", "100000")
        .env("TGFLEET__ACCOUNTS__MAX_PENDING_LOGINS_PER_USER", "100000");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn tgfleet serve");
    (Guard(child), format!("http://127.0.0.1:{port}"))
}

pub async fn wait_until_up(http: &reqwest::Client, url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{what} never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) for the child to exit by itself; `None` when it is still running.
pub fn exit_within(child: &mut Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn call(req: reqwest::RequestBuilder, expect: u16, what: &str) -> Value {
    let r = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(status, expect, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// The login code testdc sent to `phone`.
pub async fn code(http: &reqwest::Client, control: &str, phone: &str) -> String {
    let v = call(
        http.get(format!("{control}/codes/{phone}")),
        200,
        "reading the code from testdc",
    )
    .await;
    v["code"].as_str().expect("code").to_owned()
}

/// Registers a user and logs in; returns the access token.
pub async fn user_token(http: &reqwest::Client, api: &str) -> String {
    let creds =
        serde_json::json!({"email": "ops@example.org", "password": "correct horse battery"});
    call(
        http.post(format!("{api}/api/v1/auth/register"))
            .json(&creds),
        201,
        "register",
    )
    .await;
    let login = call(
        http.post(format!("{api}/api/v1/auth/login")).json(&creds),
        200,
        "login",
    )
    .await;
    login["access_token"].as_str().unwrap().to_owned()
}

/// Creates a user account and logs it in by code; returns its id.
pub async fn logged_in_account(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    control: &str,
    phone: &str,
) -> i64 {
    let account = call(
        http.post(format!("{api}/api/v1/telegram/accounts"))
            .bearer_auth(token)
            .json(&serde_json::json!({"kind": "user"})),
        201,
        "create",
    )
    .await;
    let id = account["id"].as_i64().unwrap();
    call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/code"))
            .bearer_auth(token)
            .json(&serde_json::json!({"phone": phone})),
        200,
        "send code",
    )
    .await;
    let code = code(http, control, phone).await;
    let step = call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/sign-in"))
            .bearer_auth(token)
            .json(&serde_json::json!({"code": code})),
        200,
        "sign in",
    )
    .await;
    assert_eq!(step["state"], "active");
    id
}

/// Sends "text" to Saved Messages from account `id`; returns the HTTP status.
pub async fn send(http: &reqwest::Client, api: &str, token: &str, id: i64, text: &str) -> u16 {
    http.post(format!("{api}/api/v1/telegram/accounts/{id}/messages"))
        .bearer_auth(token)
        .json(&serde_json::json!({"peer": "me", "text": text}))
        .send()
        .await
        .expect("send request")
        .status()
        .as_u16()
}
