//! RSS per hibernated account, and the latency of the first call after hibernation.
//!
//! `cargo bench --bench hibernated_rss` (env `HIBERNATED_ACCOUNTS`, default 100000;
//! `HIBERNATED_LOGINS`, default 200; `HIBERNATED_CONCURRENCY`, default 64). Two processes: the
//! real `tgfleet testdc` binary (HTTP control API), and this one, which runs the real fleet
//! (`Fleet::start_accounts`: supervisors, registry, account actors) with hibernation on, over
//! its own SQLite database, Telegram being that testdc (`telegram.testdc_control`'s client).
//!
//! Setup (not measured): `HIBERNATED_LOGINS` accounts log in by code through account actors; the
//! rest are copies of their sessions (opened and re-sealed for the new account id, so they share
//! auth keys, which testdc accepts unless told to be strict). Every row is then `hibernated`.
//!
//! Measured:
//! 1. **at rest**: RSS before and after the fleet starts over N hibernated accounts (a cold
//!    start: no actor, no connection per account), and how long that start takes;
//! 2. **woken and hibernated again**: every account's first SendMessage through `Fleet::call`,
//!    `HIBERNATED_CONCURRENCY` in flight (each starts an actor, reconnects, sends); then, once
//!    every actor has hibernated again, RSS against the same baseline — what an account that was
//!    used and went idle leaves behind;
//! 3. **first-call latency**: `HIBERNATED_LOGINS` accounts woken one at a time.
//!
//! Hibernation settings: `hibernate_after` 2 s and a watchdog tick of 1 s (hibernation is
//! checked on ticks), so the bench does not wait minutes; the product default is off.

#[path = "common/mod.rs"]
mod common;
use common::{bench_owner, request, rss_kib, spawn_actor, user_account};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::num::NonZeroU32;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tgfleet_actors::{
    AccountEnv, AccountLimits, SendCode, SendMessage, Sent, SignIn, TelegramParams,
};
use tgfleet_persistence::{AccountState, AccountUpdate, SessionCipher};
use tgfleet_supervision::{Fleet, SupervisionSettings};

const BOUND: Duration = Duration::from_secs(600);
/// jemalloc hands freed pages back after its 10 s decay; reading RSS sooner would count garbage.
const SETTLE: Duration = Duration::from_secs(15);

fn main() {
    common::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

/// The standalone testdc; killed with the bench.
struct TestDcProcess(Child);

impl Drop for TestDcProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_testdc(http: &reqwest::Client) -> (TestDcProcess, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tgfleet"))
        .args([
            "testdc",
            "--control",
            &format!("127.0.0.1:{port}"),
            "--sandbox-directory",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tgfleet testdc starts");
    let control = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http.get(format!("{control}/stats")).send().await.is_err() {
        assert!(Instant::now() < deadline, "testdc never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (TestDcProcess(child), control)
}

async fn testdc_connections(http: &reqwest::Client, control: &str) -> u64 {
    let stats: Value = http
        .get(format!("{control}/stats"))
        .send()
        .await
        .expect("testdc stats")
        .json()
        .await
        .expect("stats JSON");
    stats["connections"].as_u64().expect("connections")
}

fn percentiles(mut latencies: Vec<Duration>) -> (f64, f64, f64) {
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*latencies.last().expect("one")),
    )
}

fn send(text: &str) -> SendMessage {
    SendMessage {
        media: Vec::new(),
        random_id: None,
        peer: tgfleet_actors::Peer::Me,
        text: text.into(),
        dedupe_key: None,
        options: Default::default(),
    }
}

async fn run() {
    let n = common::knob("HIBERNATED_ACCOUNTS", 100_000);
    let logins = common::knob("HIBERNATED_LOGINS", 200).min(n);
    let concurrency = common::knob("HIBERNATED_CONCURRENCY", 64);
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::new();
    let (_testdc, control) = start_testdc(&http).await;
    let target = tgfleet_api::testdc_remote::target(&control)
        .await
        .expect("testdc target");
    let store =
        tgfleet_persistence::connect(&format!("sqlite://{}/bench.db", dir.path().display()))
            .await
            .expect("store");
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("key");
    let metrics_registry = prometheus::Registry::new();
    let env = Arc::new(
        AccountEnv::new(
            store.clone(),
            cipher.clone(),
            TelegramParams {
                api_id: 1,
                api_hash: "bench".into(),
                target,
            },
            AccountLimits {
                // Pacing is per account and each sends one message: not the subject.
                pacing: governor::Quota::per_second(NonZeroU32::new(1000).expect("non-zero")),
                watchdog_period: Duration::from_secs(1),
                hibernate_after: Some(Duration::from_secs(2)),
                ..Default::default()
            },
            &metrics_registry,
        )
        .expect("account env"),
    );
    let owner = bench_owner(store.as_ref()).await;

    // ---- setup: real logins, then copies of their sessions.
    let setup = Instant::now();
    let mut templates = Vec::with_capacity(logins);
    for i in 0..logins {
        let phone = format!("+1778{:06}1", i);
        let id = user_account(store.as_ref(), owner, phone.clone()).await;
        let actor = spawn_actor(&env, id).await;
        request(
            &actor,
            SendCode {
                phone: phone.parse().expect("a phone"),
            },
            BOUND,
        )
        .await;
        let code: Value = http
            .get(format!("{control}/codes/{phone}"))
            .send()
            .await
            .expect("code")
            .json()
            .await
            .expect("code JSON");
        let code = code["code"].as_str().expect("a code").to_owned();
        request(&actor, SignIn { code }, BOUND).await;
        actor.stop(None);
        templates.push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut plains = Vec::with_capacity(logins);
    for id in &templates {
        let sealed = store.session(*id).await.expect("read").expect("session");
        plains.push(Arc::new(cipher.open(*id, &sealed).await.expect("open")));
    }
    let hibernated = || AccountUpdate {
        state: Some(AccountState::Hibernated),
        ..Default::default()
    };
    for id in &templates {
        store.update_account(*id, hibernated()).await.expect("row");
    }
    let mut ids = templates.clone();
    let copies: Vec<i64> = futures::stream::iter(logins..n)
        .map(|i| {
            let (store, cipher, plain) = (
                store.clone(),
                cipher.clone(),
                Arc::clone(&plains[i % logins]),
            );
            async move {
                let id = user_account(store.as_ref(), owner, format!("+1779{:07}", i)).await;
                let sealed = cipher.seal(id, &plain[..]).await.expect("seal");
                store.put_session(id, &sealed).await.expect("session");
                store.update_account(id, hibernated()).await.expect("row");
                id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    ids.extend(copies);
    drop(plains);
    println!(
        "hibernated_rss: setup of {n} accounts ({logins} logged in) took {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let baseline = rss_kib();

    // ---- 1. at rest: the fleet starts over N hibernated accounts.
    let settings = SupervisionSettings {
        hibernation: true,
        ..Default::default()
    };
    let started = Instant::now();
    let fleet = Fleet::start_accounts(settings, Arc::clone(&env), &metrics_registry)
        .await
        .expect("fleet");
    fleet.startup_finished().await;
    let start_s = started.elapsed().as_secs_f64();
    assert_eq!(fleet.actor_count(), 0, "a hibernated account got an actor");
    tokio::time::sleep(SETTLE).await;
    assert_eq!(testdc_connections(&http, &control).await, 0);
    let rest = rss_kib();
    println!(
        "hibernated_rss: {n} hibernated accounts at rest: {:.3} KiB/account (RSS {rest} KiB, \
         baseline {baseline} KiB); fleet start over them {start_s:.2} s",
        (rest as f64 - baseline as f64) / n as f64
    );

    // ---- 2. every account woken once, then hibernated again.
    let woke = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(ids.iter().copied())
        .map(|id| {
            let fleet = fleet.clone();
            async move {
                let t = Instant::now();
                let reply = fleet.call(id, send("wake")).await;
                assert!(matches!(reply, Ok(Sent { .. })), "{id}: {reply:?}");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let wake_s = woke.elapsed().as_secs_f64();
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "hibernated_rss: all {n} woken ({concurrency} in flight): {wake_s:.1} s, {:.0} wakes/s; \
         first call p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms",
        n as f64 / wake_s
    );
    let deadline = Instant::now() + BOUND;
    while fleet.actor_count() > 0 {
        assert!(Instant::now() < deadline, "accounts never hibernated again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let asleep_s = woke.elapsed().as_secs_f64() - wake_s;
    tokio::time::sleep(SETTLE).await;
    let after = rss_kib();
    println!(
        "hibernated_rss: all hibernated again {asleep_s:.1} s after the last wake; \
         {:.3} KiB/account (RSS {after} KiB, baseline {baseline} KiB)",
        (after as f64 - baseline as f64) / n as f64
    );

    // ---- 3. first call after hibernation, one account at a time.
    let mut latencies = Vec::with_capacity(logins);
    for id in ids.iter().take(logins) {
        let t = Instant::now();
        let reply = fleet.call(*id, send("wake again")).await;
        latencies.push(t.elapsed());
        assert!(matches!(reply, Ok(Sent { .. })), "{reply:?}");
    }
    let (p50, p99, max) = percentiles(latencies);
    println!(
        "hibernated_rss: first SendMessage after hibernation ({logins} accounts, one at a time): \
         p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms"
    );
    fleet.shutdown().await;
}
