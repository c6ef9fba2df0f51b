//! `tgfleet serve` as a newcomer runs it: the real binary, no config file, a fresh directory.

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::free_port;

struct Tgfleet {
    child: Child,
    api: String,
    metrics: String,
}

fn tgfleet(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgfleet"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn start(dir: &Path, extra_env: &[(&str, String)]) -> Tgfleet {
    start_with(dir, &["serve"], extra_env)
}

fn start_with(dir: &Path, args: &[&str], extra_env: &[(&str, String)]) -> Tgfleet {
    let (api, metrics) = (free_port(), free_port());
    let mut env = vec![
        ("TGFLEET__API__LISTEN", format!("127.0.0.1:{api}")),
        ("TGFLEET__METRICS__LISTEN", format!("127.0.0.1:{metrics}")),
    ];
    env.extend(extra_env.iter().cloned());
    let child = tgfleet(dir, args, &env).spawn().expect("spawn tgfleet");
    Tgfleet {
        child,
        api: format!("http://127.0.0.1:{api}"),
        metrics: format!("http://127.0.0.1:{metrics}"),
    }
}

/// Polls until the health route answers; the bound is a safety net, not a performance goal.
async fn wait_healthy(t: &mut Tgfleet) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = t.child.try_wait() {
            panic!(
                "tgfleet exited early with {status}: {}",
                stderr_of(&mut t.child)
            );
        }
        if let Ok(r) = reqwest::get(format!("{}/api/v1/health", t.api)).await {
            return r;
        }
        assert!(Instant::now() < deadline, "tgfleet never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

fn terminate(child: &mut Child) -> ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_with_bound(child, Duration::from_secs(30)).expect("tgfleet stops after SIGTERM")
}

fn wait_with_bound(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a command that should fail at start-up; returns its exit code and stderr.
fn run_to_exit(cmd: &mut Command) -> (Option<i32>, String) {
    let mut child = cmd.spawn().expect("spawn tgfleet");
    let status =
        wait_with_bound(&mut child, Duration::from_secs(60)).expect("tgfleet exits by itself");
    (status.code(), stderr_of(&mut child))
}

fn error_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("error:")).collect()
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = start(dir.path(), &[]);
    let health = wait_healthy(&mut t).await;
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");

    let metrics = reqwest::get(format!("{}/metrics", t.metrics))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    let samples = parse_prometheus(&text);
    assert!(
        samples
            .iter()
            .any(|(name, _)| name == "process_resident_memory_bytes"),
        "{text}"
    );
    assert!(
        samples.iter().any(|(name, v)| name
            == r#"tgfleet_http_requests_total{route="/api/v1/health",status="200"}"#
            && *v >= 1.0),
        "{text}"
    );

    // What a local install keeps, and how it protects it.
    let data = dir.path().join("data");
    assert!(data.join("tgfleet.db").is_file());
    assert_eq!(
        mode_of(&data),
        0o700,
        "the data directory is this user's only"
    );
    for secret in ["session.key", "jwt.secret", "tgfleet.db", "tgfleet.db.lock"] {
        let mode = mode_of(&data.join(secret));
        assert_eq!(mode & 0o077, 0, "{secret} must be private, is {mode:o}");
    }

    let status = terminate(&mut t.child);
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every non-comment line is `name{labels} value`; returns (name with labels, value).
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = start(dir.path(), &[("TGFLEET__LOG__FORMAT", "json".into())]);
    wait_healthy(&mut t).await;
    terminate(&mut t.child);
    let stderr = stderr_of(&mut t.child);
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn a_bad_config_value_exits_2_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(&mut tgfleet(
        dir.path(),
        &["serve"],
        &[("TGFLEET__API__LISTEN", "localhost:http".into())],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("api.listen"), "{stderr}");
    assert!(!stderr.contains("panicked"));
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created on a bad config"
    );

    let bad_file = dir.path().join("tgfleet.toml");
    std::fs::write(&bad_file, "[fleet]\nshards = 0\n").unwrap();
    let (code, stderr) = run_to_exit(&mut tgfleet(
        dir.path(),
        &["--config", bad_file.to_str().unwrap(), "serve"],
        &[],
    ));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(error_lines(&stderr)[0].contains("fleet.shards"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_one_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (code, stderr) = run_to_exit(&mut tgfleet(
        dir.path(),
        &["serve"],
        &[
            (
                "TGFLEET__DATABASE__URL",
                format!("postgres://postgres:hunter2@127.0.0.1:{port}/tgfleet"),
            ),
            ("TGFLEET__API__LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "TGFLEET__METRICS__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
        ],
    ));
    assert_eq!(code, Some(1), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("database"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "the password never reaches the log: {stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn an_unreachable_vault_is_one_line_and_a_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run_to_exit(&mut tgfleet(
        dir.path(),
        &["serve"],
        &[
            ("TGFLEET__SECRETS__BACKEND", "vault".into()),
            (
                "TGFLEET__VAULT__ADDR",
                format!("http://127.0.0.1:{}", free_port()),
            ),
            ("TGFLEET__VAULT__TOKEN", "s.not-a-real-token".into()),
            ("TGFLEET__API__LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "TGFLEET__METRICS__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
        ],
    ));
    assert_eq!(code, Some(1), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].to_lowercase().contains("vault"), "{stderr}");
    assert!(!stderr.contains("s.not-a-real-token"));
    assert!(!stderr.contains("panicked"));
}

#[cfg(unix)]
#[test]
fn a_session_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = data.join("session.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stderr) = run_to_exit(&mut tgfleet(
        dir.path(),
        &["serve"],
        &[
            ("TGFLEET__API__LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "TGFLEET__METRICS__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
        ],
    ));
    assert_eq!(code, Some(1), "{stderr}");
    let errors = error_lines(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("session.key"), "{stderr}");
}

#[test]
fn migrate_applies_the_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = tgfleet(dir.path(), &["migrate"], &[])
        .output()
        .expect("run migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("data/tgfleet.db").is_file());
    // A second run finds nothing to do and still succeeds.
    let again = tgfleet(dir.path(), &["migrate"], &[])
        .output()
        .expect("run migrate");
    assert!(again.status.success());
}

#[tokio::test]
async fn users_create_makes_the_first_admin_who_can_log_in() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // Password from stdin, as a provisioning script would pipe it.
    let mut child = tgfleet(
        dir.path(),
        &[
            "users",
            "create",
            "--email",
            "Root@Example.org",
            "--role",
            "admin",
        ],
        &[],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long admin password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "a piped password is never echoed");

    // A short password is refused with the rule, and nothing is created.
    let mut child = tgfleet(
        dir.path(),
        &["users", "create", "--email", "two@example.org"],
        &[],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));

    let mut t = start(dir.path(), &[]);
    wait_healthy(&mut t).await;
    let client = reqwest::Client::new();
    let token = &log_in(&client, &t.api, "root@example.org", "a long admin password").await;
    let users = client
        .get(format!("{}/api/v1/users", t.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200, "an admin reaches admin routes");
    let users: serde_json::Value = users.json().await.unwrap();
    assert_eq!(users["items"].as_array().unwrap().len(), 1);
    terminate(&mut t.child);
}

#[tokio::test]
async fn the_readme_run_command_serves_the_sandbox() {
    // `cargo run -- serve --sandbox`, as README.md tells a newcomer, on a fresh directory.
    let dir = tempfile::tempdir().unwrap();
    let mut t = start_with(dir.path(), &["serve", "--sandbox"], &[]);
    assert_eq!(wait_healthy(&mut t).await.status(), 200);
    let client = reqwest::Client::new();
    let register = client
        .post(format!("{}/api/v1/auth/register", t.api))
        .json(&serde_json::json!({"email": "new@example.org", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 201);
    let token = &log_in(&client, &t.api, "new@example.org", "correct horse battery").await;
    // Telegram is there (the in-process testdc), so accounts can be created…
    let account = client
        .post(format!("{}/api/v1/telegram/accounts", t.api))
        .bearer_auth(token)
        .json(&serde_json::json!({"kind": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 201, "{:?}", account.text().await);
    // …and the sandbox routes exist (404 here means "no code for this phone yet", in the format).
    let code = client
        .get(format!("{}/api/v1/sandbox/codes/+15550100123", t.api))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(code.status(), 404);
    let body: serde_json::Value = code.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    let status = terminate(&mut t.child);
    assert!(status.success(), "graceful stop exits 0, got {status}");
}

#[test]
fn the_sandbox_is_only_the_flag_and_never_beside_another_telegram() {
    let dir = tempfile::tempdir().unwrap();
    let hash = "0123456789abcdef0123456789abcdef".to_string();
    let listen = || {
        [
            ("TGFLEET__API__LISTEN", format!("127.0.0.1:{}", free_port())),
            (
                "TGFLEET__METRICS__LISTEN",
                format!("127.0.0.1:{}", free_port()),
            ),
        ]
    };
    // (what is refused, arguments, environment, what the one line must name)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        // A stray environment variable must not swap real Telegram for a fake one.
        (
            "TGFLEET__SANDBOX",
            vec!["serve"],
            vec![("TGFLEET__SANDBOX", "true".into())],
            "--sandbox",
        ),
        (
            "--sandbox beside api_id/api_hash",
            vec!["serve", "--sandbox"],
            vec![
                ("TGFLEET__TELEGRAM__API_ID", "12345".into()),
                ("TGFLEET__TELEGRAM__API_HASH", hash.clone()),
            ],
            "api_id",
        ),
        (
            "testdc_control off loopback",
            vec!["serve"],
            vec![(
                "TGFLEET__TELEGRAM__TESTDC_CONTROL",
                "http://192.0.2.1:9900".into(),
            )],
            "telegram.testdc_control",
        ),
        (
            "testdc_control beside api_id/api_hash",
            vec!["serve"],
            vec![
                (
                    "TGFLEET__TELEGRAM__TESTDC_CONTROL",
                    format!("http://127.0.0.1:{}", free_port()),
                ),
                ("TGFLEET__TELEGRAM__API_ID", "12345".into()),
                ("TGFLEET__TELEGRAM__API_HASH", hash.clone()),
            ],
            "telegram.testdc_control",
        ),
    ];
    for (what, args, env, named) in cases {
        let mut env = env;
        env.extend(listen());
        let (code, stderr) = run_to_exit(&mut tgfleet(dir.path(), &args, &env));
        assert_eq!(code, Some(2), "{what}: {stderr}");
        let errors = error_lines(&stderr);
        assert_eq!(errors.len(), 1, "{what}: {stderr}");
        assert!(errors[0].contains(named), "{what}: {stderr}");
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(
            !dir.path().join("data").exists(),
            "{what}: nothing is created on a refused config"
        );
    }
}

/// A `tgfleet serve --sandbox` client: one user, bearer-authenticated calls.
struct SandboxUser {
    client: reqwest::Client,
    api: String,
    token: String,
}

impl SandboxUser {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("tgfleet answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn new_account(&self) -> i64 {
        let (s, v) = self
            .post(
                "/api/v1/telegram/accounts",
                serde_json::json!({"kind": "user"}),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_i64().unwrap()
    }

    /// Requests a login code for `phone` and returns it as the sandbox shows it.
    async fn request_code(&self, id: i64, phone: &str) -> String {
        let (s, v) = self
            .post(
                &format!("/api/v1/telegram/accounts/{id}/login/code"),
                serde_json::json!({ "phone": phone }),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = self.get(&format!("/api/v1/sandbox/codes/{phone}")).await;
        assert_eq!(s, 200, "{v}");
        v["code"].as_str().unwrap().to_owned()
    }

    /// POSTs, retrying while the account is still coming up (503), within a generous bound;
    /// returns the last answer.
    async fn post_eventually(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, v) = self.post(path, body.clone()).await;
            if s != 503 || Instant::now() > deadline {
                return (s, v);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn sign_in(&self, id: i64, code: &str) -> (u16, serde_json::Value) {
        self.post_eventually(
            &format!("/api/v1/telegram/accounts/{id}/login/sign-in"),
            serde_json::json!({ "code": code }),
        )
        .await
    }

    async fn send_eventually(&self, id: i64, text: &str) -> (u16, serde_json::Value) {
        self.post_eventually(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            serde_json::json!({"peer": "me", "text": text}),
        )
        .await
    }
}

async fn sandbox_user(t: &Tgfleet, email: &str) -> SandboxUser {
    let client = reqwest::Client::new();
    let creds = serde_json::json!({"email": email, "password": "correct horse battery"});
    client
        .post(format!("{}/api/v1/auth/register", t.api))
        .json(&creds)
        .send()
        .await
        .unwrap();
    let token = log_in(&client, &t.api, email, "correct horse battery").await;
    SandboxUser {
        client,
        api: t.api.clone(),
        token,
    }
}

/// An access token for a user who exists; panics (the test fails) when the login is refused.
async fn log_in(client: &reqwest::Client, api: &str, email: &str, password: &str) -> String {
    let login: serde_json::Value = client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{email} logs in: {login}"))
        .to_owned()
}

#[tokio::test]
async fn a_sandbox_killed_and_started_again_keeps_its_accounts_and_pending_logins() {
    // The README's run command, twice on one directory, with a kill -9 between.
    let dir = tempfile::tempdir().unwrap();
    let mut first = start_with(dir.path(), &["serve", "--sandbox"], &[]);
    assert_eq!(wait_healthy(&mut first).await.status(), 200);
    let me = sandbox_user(&first, "restart@example.org").await;

    let active = me.new_account().await;
    let code = me.request_code(active, "+15550100211").await;
    let (s, v) = me.sign_in(active, &code).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");
    let (s, v) = me.send_eventually(active, "before the crash").await;
    assert_eq!(s, 201, "{v}");

    // Halfway: the code was sent, nobody has typed it in yet.
    let halfway = me.new_account().await;
    let pending_code = me.request_code(halfway, "+15550100222").await;

    first.child.kill().expect("kill -9");
    first.child.wait().unwrap();

    let mut second = start_with(dir.path(), &["serve", "--sandbox"], &[]);
    assert_eq!(wait_healthy(&mut second).await.status(), 200);
    let me = sandbox_user(&second, "restart@example.org").await;

    // The code from the first run finishes the login, and the account sends.
    let (s, v) = me.sign_in(halfway, &pending_code).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "active", "{v}");
    let (s, v) = me
        .send_eventually(halfway, "logged in across a crash")
        .await;
    assert_eq!(s, 201, "{v}");
    // The account logged in before the crash sends too.
    let (s, v) = me.send_eventually(active, "after the crash").await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = me.get(&format!("/api/v1/telegram/accounts/{active}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["state"], "active", "{v}");

    let status = terminate(&mut second.child);
    assert!(status.success(), "graceful stop exits 0, got {status}");
}
