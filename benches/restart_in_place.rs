//! Restart in place: an account actor panics → its supervisor restarts it → `active` again.
//!
//! `cargo bench --bench restart_in_place` (env `RESTART_ACCOUNTS`, default 1000;
//! `RESTART_BACKOFF_MS`, the supervisors' `backoff_base`, default the fleet's 1000 ms). testdc
//! runs in this process. Measured: for 200 accounts one at a time, the time from the crash to
//! the account answering `active` from a new actor (p50/p99); then every account crashed at
//! once → all active again (wall time).

#[path = "common/mod.rs"]
mod common;
use common::{bench_owner, user_account};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tgfleet_actors::{
    AccountEnv, AccountLimits, SendCode, SignIn, Status, TelegramParams, TelegramTarget,
};
use tgfleet_persistence::{AccountState, SessionCipher};
use tgfleet_supervision::{Fleet, SupervisionSettings};

const CODE: &str = "24680";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // The requested crashes are panics by design: keep their messages out of the output.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("AccountMsg::Crash") {
            default_hook(info);
        }
    }));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}

/// Active from a new actor: the old one's id is gone and the new one answers `active`.
async fn active_again(fleet: &Fleet, id: i64, old: Option<ractor::ActorId>) -> bool {
    let Some(now) = fleet.actor_id(id) else {
        return false;
    };
    if Some(now) == old {
        return false;
    }
    matches!(
        fleet.call(id, Status).await,
        Ok(s) if s.state == AccountState::Active
    )
}

async fn run() {
    let n = env_u64("RESTART_ACCOUNTS", 1000) as usize;
    let backoff = Duration::from_millis(env_u64("RESTART_BACKOFF_MS", 1000));
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
    let registrar = dc.clone();
    let mut dcs = dc.dc_addrs();
    dcs.sort_by_key(|(id, _)| (*id != 2, *id));
    let env = Arc::new(
        AccountEnv::new(
            store.clone(),
            SessionCipher::local(dir.path().join("session.key")).expect("key"),
            TelegramParams {
                api_id: 1,
                api_hash: "bench".into(),
                target: TelegramTarget::TestDc {
                    dcs,
                    register_key: Arc::new(move |key| registrar.register_auth_key(key)),
                },
            },
            AccountLimits {
                pacing: governor::Quota::per_second(NonZeroU32::new(1000).expect("non-zero")),
                ..Default::default()
            },
            &prometheus::Registry::new(),
        )
        .expect("account env"),
    );
    let settings = SupervisionSettings {
        backoff_base: backoff,
        ..Default::default()
    };
    let fleet = Fleet::start_accounts(settings, env, &prometheus::Registry::new())
        .await
        .expect("fleet");
    let owner = bench_owner(store.as_ref()).await;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let phone = format!("+1776{:06}1", i);
        let id = user_account(store.as_ref(), owner, phone.clone()).await;
        fleet
            .call(
                id,
                SendCode {
                    phone: phone.parse().expect("a phone"),
                },
            )
            .await
            .expect("code");
        fleet
            .call(id, SignIn { code: CODE.into() })
            .await
            .expect("sign-in");
        ids.push(id);
    }

    let single = ids.len().min(200);
    let mut took = Vec::with_capacity(single);
    for &id in &ids[..single] {
        let old = fleet.actor_id(id);
        let started = Instant::now();
        fleet.crash(id).expect("crash");
        while !active_again(&fleet, id, old).await {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.push(started.elapsed());
    }
    took.sort();
    let pct = |p: f64| took[((took.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "restart_in_place: one crash → active ({single} accounts, backoff_base {} ms): \
         p50 {:.1} ms, p99 {:.1} ms",
        backoff.as_millis(),
        pct(0.5),
        pct(0.99)
    );

    // Every account at once (the first `single` crash a second time: still within the intensity).
    let olds: Vec<_> = ids.iter().map(|&id| fleet.actor_id(id)).collect();
    let started = Instant::now();
    for &id in &ids {
        fleet.crash(id).expect("crash");
    }
    for (&id, &old) in ids.iter().zip(&olds) {
        while !active_again(&fleet, id, old).await {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "restart_in_place: {n} accounts crashed at once → all active in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    fleet.shutdown().await;
}
