//! The real processes a bench runs against: `tgfleet testdc` and `tgfleet serve` started on
//! free ports and stopped by their pids, accounts logged in through the REST API, the server's
//! sessions opened, and bare grammers clients built on them as the account actor builds its own.

use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use grammers_mtsender::{ConnectionParams, NoRetries, SenderPool, SenderPoolHandle};
use grammers_session::storages::MemorySession;
use grammers_session::SessionData;
use grammers_tl_types as tl;
use serde_json::{json, Value};
use tgfleet_actors::session::{read_stored, StoredKeys};
use tgfleet_persistence::SessionCipher;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A `tgfleet` child process: SIGTERM (graceful stop) on `stop`, SIGKILL if dropped unstopped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(dir: &Path, name: &'static str, args: &[&str], env: &[(&str, String)]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tgfleet"));
        cmd.current_dir(dir)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            // A file, not a pipe: a full pipe nobody reads would block the process.
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn tgfleet");
        Self { child, name, log }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    pub fn stop(mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(status)) = self.child.try_wait() {
                if !status.success() {
                    eprintln!("{} exited with {status}:\n{}", self.name, self.log_tail());
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM for 30 s", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub async fn wait_until_up(http: &reqwest::Client, url: &str, proc: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while http.get(url).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{} never came up:\n{}",
            proc.name,
            proc.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn call(req: reqwest::RequestBuilder, expect: u16, what: &str) -> Value {
    let r = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    assert_eq!(status, expect, "{what}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

pub struct Fleet {
    pub api: String,
    pub token: String,
    pub user_id: i64,
    /// Account ids, in onboarding order.
    pub ids: Vec<i64>,
}

/// Registers an API user with `email` and logs in: the user as registered, and an access token.
pub async fn api_user(http: &reqwest::Client, api: &str, email: &str) -> (Value, String) {
    let creds = json!({"email": email, "password": "correct horse battery"});
    let user = call(
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
    let token = login["access_token"].as_str().expect("token").to_owned();
    (user, token)
}

/// Registers the API user and logs `n` accounts in by code through the REST API.
pub async fn onboard(http: &reqwest::Client, api: &str, control: &str, n: usize) -> Fleet {
    let (user, token) = api_user(http, api, "bench@example.org").await;
    // Sandbox phones ending in 9 have 2FA.
    let phones: Vec<String> = (0u64..)
        .map(|i| format!("+1666{i:07}"))
        .filter(|p| !p.ends_with('9'))
        .take(n)
        .collect();
    let started = Instant::now();
    let mut ids: Vec<(usize, i64)> = futures::stream::iter(phones.into_iter().enumerate())
        .map(|(i, phone)| {
            let (http, token) = (http.clone(), token.clone());
            async move {
                let account = call(
                    http.post(format!("{api}/api/v1/telegram/accounts"))
                        .bearer_auth(&token)
                        .json(&json!({"kind": "user", "label": format!("bench {i}")})),
                    201,
                    "create account",
                )
                .await;
                let id = account["id"].as_i64().expect("id");
                call(
                    http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/code"))
                        .bearer_auth(&token)
                        .json(&json!({"phone": phone})),
                    200,
                    "send code",
                )
                .await;
                let code = call(
                    http.get(format!("{control}/codes/{phone}")),
                    200,
                    "reading the code from testdc",
                )
                .await;
                let step = call(
                    http.post(format!("{api}/api/v1/telegram/accounts/{id}/login/sign-in"))
                        .bearer_auth(&token)
                        .json(&json!({"code": code["code"]})),
                    200,
                    "sign in",
                )
                .await;
                assert_eq!(step["state"], "active", "account {id} after sign-in");
                (i, id)
            }
        })
        // Onboarding is setup, not the subject: as fast as SQLite and 2 cores allow.
        .buffer_unordered(32)
        .collect()
        .await;
    ids.sort_unstable();
    println!(
        "{n} accounts logged in through the API in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Fleet {
        api: api.to_owned(),
        token,
        user_id: user["id"].as_i64().expect("user id"),
        ids: ids.into_iter().map(|(_, id)| id).collect(),
    }
}

/// The server's sessions, opened the way the account core opens them (a bare client needs the
/// home DC and the DC options with their auth keys; the rest of the session is not used).
pub async fn load_sessions(data_dir: &Path, ids: &[i64]) -> Vec<StoredKeys> {
    let settings = tgfleet_config::Settings {
        data_dir: data_dir.to_owned(),
        ..Default::default()
    };
    let store = tgfleet_persistence::connect(settings.database_url().expose())
        .await
        .expect("the server's database");
    let cipher = SessionCipher::local(settings.session_key_path()).expect("the server's key");
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let stored = read_stored(&*store, &cipher, id)
            .await
            .expect("session read")
            .expect("a logged-in account has a session");
        assert!(
            stored.home_key().is_some(),
            "account {id}: no auth key for its home DC"
        );
        out.push(stored);
    }
    out
}

/// The same connection parameters as the account actor's client (`actors/src/client.rs`):
/// no automatic retries, grammers' default updates channel.
pub fn connection_params(template: &ConnectionParams) -> ConnectionParams {
    ConnectionParams {
        device_model: template.device_model.clone(),
        system_version: template.system_version.clone(),
        app_version: template.app_version.clone(),
        system_lang_code: template.system_lang_code.clone(),
        lang_code: template.lang_code.clone(),
        use_ipv6: false,
        // The baseline connects directly, as an account without a proxy does.
        proxy_url: None,
        retry_policy: Box::new(NoRetries),
        updates_channel_capacity: NonZeroUsize::new(100).expect("non-zero"),
        __non_exhaustive: (),
    }
}

pub struct BareClient {
    pub handle: SenderPoolHandle,
    pub home_dc: i32,
    pub runner: tokio::task::JoinHandle<()>,
    pub drain: tokio::task::JoinHandle<()>,
}

pub fn start_bare_clients(sessions: &[StoredKeys]) -> Vec<BareClient> {
    start_bare_clients_through(sessions, None)
}

/// Bare clients whose every connection dials through `proxy_url` (`socks5://…`), as an account
/// bound to a proxy connects; directly without one.
pub fn start_bare_clients_through(
    sessions: &[StoredKeys],
    proxy_url: Option<&str>,
) -> Vec<BareClient> {
    // `ConnectionParams::default()` probes the OS on every call; once is enough.
    let template = ConnectionParams::default();
    sessions
        .iter()
        .map(|s| {
            let data = SessionData {
                home_dc: s.home_dc,
                dc_options: s.dc_options.iter().map(|o| (o.id, o.clone())).collect(),
                ..Default::default()
            };
            let session = Arc::new(MemorySession::from(data));
            // Any api_id works with testdc; the server uses its sandbox one.
            let SenderPool {
                runner,
                handle,
                mut updates,
            } = SenderPool::with_configuration(
                session,
                17349,
                ConnectionParams {
                    proxy_url: proxy_url.map(str::to_owned),
                    ..connection_params(&template)
                },
            );
            let runner = tokio::spawn(runner.run());
            // grammers drops updates when the bounded channel is full; drain it as the actor does.
            let drain = tokio::spawn(async move { while updates.recv().await.is_some() {} });
            BareClient {
                handle: handle.thin,
                home_dc: s.home_dc,
                runner,
                drain,
            }
        })
        .collect()
}

/// testdc answers a second message with the same `random_id` from the same user with the first
/// one's result instead of sending it: every request needs its own (testdc is fresh every run).
static RANDOM_ID: AtomicI64 = AtomicI64::new(0);

fn next_random_id() -> i64 {
    RANDOM_ID.fetch_add(1, Ordering::Relaxed)
}

pub fn send_message_request(text: &str) -> tl::functions::messages::SendMessage {
    // Field for field what `actors/src/ops.rs::send_message` sends for peer "me".
    tl::functions::messages::SendMessage {
        no_webpage: false,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer: tl::enums::InputPeer::PeerSelf,
        reply_to: None,
        message: text.to_owned(),
        random_id: next_random_id(),
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        allow_paid_stars: None,
        suggested_post: None,
        rich_message: None,
    }
}

/// `messages.sendMessage` of `text` to self, as the account actor sends it for peer "me";
/// `Err` says what came back instead of a sent message (or that `bound` passed).
pub async fn bare_send(client: &BareClient, text: &str, bound: Duration) -> Result<(), String> {
    let request = send_message_request(text);
    match tokio::time::timeout(bound, client.handle.invoke_in_dc(client.home_dc, &request)).await {
        // What testdc answers a sent message with; anything else would not be a sent message.
        Ok(Ok(tl::enums::Updates::UpdateShortSentMessage(_))) => Ok(()),
        Ok(Ok(other)) => Err(format!("unexpected answer: {other:?}")),
        Ok(Err(e)) => Err(format!("grammers: {e}")),
        Err(_) => Err("timeout".into()),
    }
}

pub async fn stop_bare_clients(clients: Vec<BareClient>) {
    for c in &clients {
        c.handle.quit();
    }
    for c in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), c.runner).await;
        c.drain.abort();
    }
}

/// A standalone testdc and a `tgfleet serve` whose Telegram it is, over `dir`.
pub struct Processes {
    pub testdc: Proc,
    pub server: Proc,
    pub api: String,
    pub control: String,
    /// The server's metrics listener, e.g. `http://127.0.0.1:9464`.
    pub metrics: String,
    pub data_dir: PathBuf,
}

/// Starts both and waits until they answer. The server has the product defaults except what
/// a bench does not measure (one API user sends everything, so its rate limit and quotas are
/// lifted, and one token lasts the run), plus `env`.
pub async fn start(dir: &Path, http: &reqwest::Client, env: &[(&str, String)]) -> Processes {
    let control_port = free_port();
    let control = format!("http://127.0.0.1:{control_port}");
    let testdc = Proc::spawn(
        dir,
        "testdc",
        &[
            "testdc",
            "--control",
            &format!("127.0.0.1:{control_port}"),
            "--sandbox-directory",
        ],
        &[],
    );
    wait_until_up(http, &format!("{control}/stats"), &testdc).await;
    let data_dir = dir.join("data");
    let (api_port, metrics_port) = (free_port(), free_port());
    let api = format!("http://127.0.0.1:{api_port}");
    let big = "1000000".to_owned();
    let mut all: Vec<(&str, String)> = vec![
        ("TGFLEET__DATA_DIR", data_dir.display().to_string()),
        ("TGFLEET__API__LISTEN", format!("127.0.0.1:{api_port}")),
        (
            "TGFLEET__METRICS__LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        ),
        ("TGFLEET__TELEGRAM__TESTDC_CONTROL", control.clone()),
        ("TGFLEET__AUTH__USER_RATE_PER_SECOND", big.clone()),
        ("TGFLEET__AUTH__ACCESS_TTL_S", "86400".into()),
        // One bench user owns every account: the per-user quotas would stop it at 100.
        ("TGFLEET__ACCOUNTS__MAX_PER_USER", big.clone()),
        (
            "TGFLEET__ACCOUNTS__MAX_PENDING_LOGINS_PER_USER",
            big.clone(),
        ),
        ("TGFLEET__IMPORT__ITEMS_PER_MINUTE_PER_USER", big),
    ];
    all.extend(env.iter().cloned());
    let server = Proc::spawn(dir, "serve", &["serve"], &all);
    wait_until_up(http, &format!("{api}/api/v1/health"), &server).await;
    Processes {
        testdc,
        server,
        api,
        control,
        metrics: format!("http://127.0.0.1:{metrics_port}"),
        data_dir,
    }
}
