//! The account's own clock on paused time: the watchdog and the idle timer of hibernation, with
//! virtual time moving exactly as the test says. There is no testdc and no SQLite here (SQLite's
//! driver answers from its own thread, which a paused clock does not wait for): the store is in
//! memory, and "Telegram" is a listener that only counts who connects to it.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use grammers_session::types::{PeerAuth, PeerInfo};
use tgfleet_actors::session::StoreSession;
use tgfleet_actors::{AccountEnv, AccountLimits, TelegramParams, TelegramTarget};
use tgfleet_persistence::testing::MemStore;
use tgfleet_persistence::{AccountId, AccountState, LogFilter, SessionCipher, Store};

use crate::harness::{spawn_supervised, Ending};

const WATCHDOG: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(600);

struct Paused {
    env: Arc<AccountEnv>,
    store: Arc<MemStore>,
    telegram: TcpListener,
    _dir: tempfile::TempDir,
}

async fn paused() -> Paused {
    let telegram = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    telegram.set_nonblocking(true).expect("non-blocking");
    let addr = telegram.local_addr().expect("its address");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(MemStore::default());
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("session key");
    let limits = AccountLimits {
        watchdog_period: WATCHDOG,
        hibernate_after: Some(IDLE),
        ..AccountLimits::default()
    };
    let telegram_params = TelegramParams {
        api_id: 1,
        api_hash: "paused".into(),
        target: TelegramTarget::TestDc {
            dcs: vec![(1, addr)],
            register_key: Arc::new(|_| {}),
        },
    };
    let env = AccountEnv::new(
        store.clone(),
        cipher,
        telegram_params,
        limits,
        &prometheus::Registry::new(),
    )
    .expect("account env");
    Paused {
        env: Arc::new(env),
        store,
        telegram,
        _dir: dir,
    }
}

impl Paused {
    /// An account whose row is in `state` and whose session is logged in (Telegram user 4242).
    async fn authorized(&self, id: AccountId, state: AccountState) {
        self.store.add_account(id, state);
        let session = StoreSession::load_or_create(id, self.env.clone())
            .await
            .expect("a fresh session");
        session
            .finish_login(
                PeerInfo::User {
                    id: 4242,
                    auth: Some(PeerAuth::from_hash(1)),
                    bot: Some(false),
                    is_self: Some(true),
                },
                None,
            )
            .await
            .expect("the logged-in session is written");
    }

    /// Connections "Telegram" has been asked for since the last look.
    fn connections(&self) -> usize {
        std::iter::from_fn(|| self.telegram.accept().ok()).count()
    }
}

#[tokio::test(start_paused = true)]
async fn a_hibernated_account_read_by_a_status_call_sleeps_again_once_idle_and_never_connects() {
    let p = paused().await;
    p.authorized(1, AccountState::Hibernated).await;
    let (reader, mut endings) = spawn_supervised(&p.env, 1).await;
    assert_eq!(reader.status().await.state, AccountState::Hibernated);

    // A watchdog tick short of the idle time, it is still up.
    tokio::time::sleep(IDLE - WATCHDOG).await;
    assert!(
        endings.try_recv().is_err(),
        "the actor went before it was idle for {IDLE:?}"
    );
    // Within a tick of the idle time it has gone the way hibernation ends an actor (a drain, a
    // normal stop), as it came: no connection, no row or log written (a status read is not a
    // use of the account).
    let ending = tokio::time::timeout(2 * WATCHDOG, endings.recv())
        .await
        .expect("the idle actor ended within a watchdog tick");
    assert_eq!(ending, Some(Ending::Stopped(Some("Drained".into()))));
    p.env.writes.settle(1).await;
    assert_eq!(p.connections(), 0, "a status read connected to Telegram");
    let row = p.store.account(1).await.expect("row");
    assert_eq!(row.state, AccountState::Hibernated);
    let logs = p
        .store
        .list_logs(LogFilter {
            account_id: Some(1),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert!(logs.is_empty(), "{logs:?}");
}
