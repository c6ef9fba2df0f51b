//! RSS per hibernated account, and the latency of the first call after hibernation.
//!
//! `cargo bench --bench hibernated_rss` (env `HIBERNATED_ACCOUNTS`, default 100000;
//! `HIBERNATED_LOGINS`, default 200). testdc runs in this process: hibernated accounts never
//! touch it, and the baseline is read after it started.
//!
//! Setup (not measured): `HIBERNATED_LOGINS` accounts log in by code through account actors; the
//! rest are copies of their sessions (opened and re-sealed for the new account id, so they share
//! auth keys: harmless, since a hibernated account holds no connection). Every row is then put in
//! state `hibernated`. Measured: RSS before and after starting an account actor for every
//! account with hibernation on (`hibernate_after` set), which starts each one hibernated with no
//! connection; then each logged-in account's first SendMessage, which reconnects it.

#[path = "common/mod.rs"]
mod common;
use common::{bench_owner, request, rss_kib, spawn_actor};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tgfleet_actors::{
    AccountEnv, AccountLimits, AccountMetrics, AccountReply, AccountRequest, TelegramParams,
    TelegramTarget,
};
use tgfleet_persistence::{AccountKind, AccountState, AccountUpdate, NewAccount, SessionCipher};

const CODE: &str = "24680";
const BOUND: Duration = Duration::from_secs(600);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

async fn run() {
    let n = env_usize("HIBERNATED_ACCOUNTS", 100_000);
    let logins = env_usize("HIBERNATED_LOGINS", 200).min(n);
    let dir = tempfile::tempdir().expect("temp dir");
    let dc = tgfleet_testdc::TestDc::start(tgfleet_testdc::TestDcConfig {
        fixed_code: Some(CODE.into()),
        sandbox_directory: true,
        ..Default::default()
    })
    .await
    .expect("testdc");
    let store =
        tgfleet_persistence::connect(&format!("sqlite://{}/bench.db", dir.path().display()))
            .await
            .expect("store");
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("key");
    let registrar = dc.clone();
    let mut dcs = dc.dc_addrs();
    // Sandbox users live in DC 2: make it home so no account needs a migration.
    dcs.sort_by_key(|(id, _)| (*id != 2, *id));
    let env = Arc::new(AccountEnv {
        store: store.clone(),
        cipher: cipher.clone(),
        telegram: TelegramParams {
            api_id: 1,
            api_hash: "bench".into(),
            target: TelegramTarget::TestDc {
                dcs,
                register_key: Arc::new(move |key| registrar.register_auth_key(key)),
            },
        },
        limits: AccountLimits {
            // Setup logins in parallel are the bench's setup, not its subject.
            pacing: governor::Quota::per_second(NonZeroU32::new(1000).expect("non-zero")),
            // Hibernation on: actors of `hibernated` rows start without connecting.
            hibernate_after: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
        metrics: AccountMetrics::register(&prometheus::Registry::new()).expect("metrics"),
    });
    let owner = bench_owner(store.as_ref()).await;

    // ---- setup: real logins, then copies of their sessions.
    let setup = Instant::now();
    let mut templates = Vec::with_capacity(logins);
    for i in 0..logins {
        let phone = format!("+1778{:06}1", i);
        let id = store
            .create_account(NewAccount {
                owner_id: owner,
                label: None,
                kind: AccountKind::User,
                phone: Some(phone.clone()),
            })
            .await
            .expect("account")
            .id;
        let actor = spawn_actor(&env, id).await;
        request(&actor, AccountRequest::SendCode { phone }, BOUND).await;
        request(&actor, AccountRequest::SignIn { code: CODE.into() }, BOUND).await;
        actor.stop(None);
        templates.push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut plains = Vec::with_capacity(logins);
    for id in &templates {
        let sealed = store.session(*id).await.expect("read").expect("session");
        plains.push(Arc::new(cipher.open(*id, &sealed).await.expect("open")));
    }
    let hibernated = |_| AccountUpdate {
        state: Some(AccountState::Hibernated),
        ..Default::default()
    };
    for id in &templates {
        store
            .update_account(*id, hibernated(()))
            .await
            .expect("row");
    }
    let mut ids = templates.clone();
    let limit = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for i in logins..n {
        let permit = Arc::clone(&limit).acquire_owned().await.expect("semaphore");
        let (store, cipher, plain) = (
            store.clone(),
            cipher.clone(),
            Arc::clone(&plains[i % logins]),
        );
        tasks.spawn(async move {
            let id = store
                .create_account(NewAccount {
                    owner_id: owner,
                    label: None,
                    kind: AccountKind::User,
                    phone: Some(format!("+1779{:07}", i)),
                })
                .await
                .expect("account")
                .id;
            let sealed = cipher.seal(id, &plain[..]).await.expect("seal");
            store.put_session(id, &sealed).await.expect("session");
            store
                .update_account(
                    id,
                    AccountUpdate {
                        state: Some(AccountState::Hibernated),
                        ..Default::default()
                    },
                )
                .await
                .expect("row");
            drop(permit);
            id
        });
    }
    while let Some(id) = tasks.join_next().await {
        ids.push(id.expect("copy task"));
    }
    drop(plains);
    println!(
        "hibernated_rss: setup of {n} accounts ({logins} logged in) took {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    // ---- measured: N hibernated actors.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let baseline = rss_kib();
    let started = Instant::now();
    let mut actors = Vec::with_capacity(n);
    for id in &ids {
        actors.push(spawn_actor(&env, *id).await);
    }
    let spawn_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(dc.connection_count(), 0, "a hibernated account connected");
    let rss = rss_kib();
    println!(
        "hibernated_rss: {n} hibernated accounts: {:.2} KiB/account (RSS {rss} KiB, baseline \
         {baseline} KiB); started in {spawn_s:.1} s",
        (rss as f64 - baseline as f64) / n as f64
    );

    // ---- first call after hibernation, one account at a time.
    let mut latencies = Vec::with_capacity(logins);
    for actor in actors.iter().take(logins) {
        let started = Instant::now();
        let reply = request(
            actor,
            AccountRequest::SendMessage {
                peer: "me".into(),
                text: "wake".into(),
                dedupe_key: None,
            },
            BOUND,
        )
        .await;
        latencies.push(started.elapsed());
        assert!(matches!(reply, AccountReply::Sent { .. }), "{reply:?}");
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!(
        "hibernated_rss: first SendMessage after hibernation ({logins} accounts, sequential): \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().expect("one").as_secs_f64() * 1e3
    );
    for actor in actors {
        actor.stop(None);
    }
}
