//! The fleet with the real `AccountActor` and the real grammers client against testdc: the
//! supervisor's half of "a pending login survives a crash and a fleet restart".

use std::sync::Arc;
use std::time::Duration;

use tgfleet_actors::{
    AccountEnv, AccountError, AccountLimits, AccountMetrics, AccountReply, AccountRequest,
    TelegramParams, TelegramTarget,
};
use tgfleet_persistence::{AccountKind, AccountState, NewAccount, NewUser, Role, SessionCipher};
use tgfleet_supervision::{Fleet, FleetError, RestartReason, SupervisionSettings};
use tgfleet_testdc::{RevokeKind, TestDc, TestDcConfig, UserSpec};

/// Safety bound for anything awaited; never an assertion about speed.
const BOUND: Duration = Duration::from_secs(60);

fn settings() -> SupervisionSettings {
    SupervisionSettings {
        shards: 2,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..SupervisionSettings::default()
    }
}

/// One "process": a store connection, a cipher and metrics over the shared temp dir.
async fn open_env(dc: &TestDc, dir: &tempfile::TempDir) -> Arc<AccountEnv> {
    let url = format!("sqlite://{}/tgfleet.db", dir.path().display());
    let store = tgfleet_persistence::connect(&url).await.expect("store");
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("key");
    let metrics = AccountMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let registrar = dc.clone();
    Arc::new(AccountEnv {
        store,
        cipher,
        telegram: TelegramParams {
            api_id: 1,
            api_hash: "testdc".into(),
            target: TelegramTarget::TestDc {
                dcs: dc.dc_addrs(),
                register_key: Arc::new(move |key| registrar.register_auth_key(key)),
            },
        },
        limits: AccountLimits::default(),
        metrics,
    })
}

async fn user_account(env: &AccountEnv, phone: &str) -> i64 {
    let owner = env
        .store
        .create_user(NewUser {
            email: "owner@example.com".into(),
            username: None,
            password_hash: "x".into(),
            role: Role::User,
        })
        .await
        .expect("owner")
        .id;
    env.store
        .create_account(NewAccount {
            owner_id: owner,
            label: None,
            kind: AccountKind::User,
            phone: Some(phone.into()),
        })
        .await
        .expect("account")
        .id
}

async fn state_of(fleet: &Fleet, id: i64) -> AccountState {
    match fleet.call(id, AccountRequest::Status).await {
        Ok(AccountReply::Status(s)) => s.state,
        other => panic!("status answered {other:?}"),
    }
}

async fn sign_in(fleet: &Fleet, dc: &TestDc, id: i64, phone: &str) {
    let code = dc.last_code(phone).expect("testdc sent a code");
    let step = fleet.call(id, AccountRequest::SignIn { code }).await;
    assert!(
        matches!(
            step,
            Ok(AccountReply::LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{step:?}"
    );
    let sent = fleet
        .call(
            id,
            AccountRequest::SendMessage {
                peer: "me".into(),
                text: "through the fleet".into(),
                dedupe_key: None,
            },
        )
        .await;
    assert!(matches!(sent, Ok(AccountReply::Sent { .. })), "{sent:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_login_survives_an_actor_crash_restarted_by_the_fleet() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550142";
        dc.add_user(UserSpec::new(phone, "Carol"));
        let id = user_account(&env, phone).await;
        let registry = prometheus::Registry::new();
        let fleet = Fleet::start_accounts(settings(), env.clone(), &registry)
            .await
            .expect("fleet");

        let sent = fleet
            .call(
                id,
                AccountRequest::SendCode {
                    phone: phone.into(),
                },
            )
            .await;
        assert!(
            matches!(sent, Ok(AccountReply::CodeSent { .. })),
            "{sent:?}"
        );
        let before = fleet.actor_id(id).expect("running");

        fleet.crash(id).expect("crash");
        while fleet.actor_id(id).is_none_or(|now| now == before) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(state_of(&fleet, id).await, AccountState::AwaitingCode);
        sign_in(&fleet, &dc, id, phone).await;

        let restarts = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "tgfleet_actor_restarts_total")
            .expect("restart metric registered");
        let failed = restarts
            .get_metric()
            .iter()
            .find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "reason" && l.value() == RestartReason::Failed.as_str())
            })
            .map(|m| m.get_counter().value());
        assert_eq!(failed, Some(1.0));
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_login_survives_a_fleet_restart() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550143";
        dc.add_user(UserSpec::new(phone, "Dave"));
        let id = user_account(&env, phone).await;

        let first = Fleet::start_accounts(settings(), env, &prometheus::Registry::new())
            .await
            .expect("fleet");
        first
            .call(
                id,
                AccountRequest::SendCode {
                    phone: phone.into(),
                },
            )
            .await
            .expect("code sent");
        first.shutdown().await;
        assert_eq!(first.actor_count(), 0);

        // A new process over the same database: start-up brings the pending login back.
        let env = open_env(&dc, &dir).await;
        let second = Fleet::start_accounts(settings(), env, &prometheus::Registry::new())
            .await
            .expect("fleet");
        second.startup_finished().await;
        while second.actor_id(id).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(state_of(&second, id).await, AccountState::AwaitingCode);
        sign_in(&second, &dc, id, phone).await;
        second.shutdown().await;
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_session_stops_the_actor_for_good() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550144";
        dc.add_user(UserSpec::new(phone, "Erin"));
        let id = user_account(&env, phone).await;
        let fleet = Fleet::start_accounts(settings(), env.clone(), &prometheus::Registry::new())
            .await
            .expect("fleet");
        fleet
            .call(
                id,
                AccountRequest::SendCode {
                    phone: phone.into(),
                },
            )
            .await
            .expect("code sent");
        sign_in(&fleet, &dc, id, phone).await;

        dc.faults()
            .revoke(phone, RevokeKind::SessionRevoked)
            .expect("revoke");
        let answer = fleet
            .call(
                id,
                AccountRequest::SendMessage {
                    peer: "me".into(),
                    text: "after revoke".into(),
                    dedupe_key: None,
                },
            )
            .await;
        assert!(
            matches!(answer, Err(FleetError::Account(AccountError::Unauthorized))),
            "{answer:?}"
        );
        while fleet.actor_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let stats = fleet.supervisor_stats().await;
        assert_eq!(
            (
                stats.children,
                stats.starting,
                stats.backing_off,
                stats.restarts
            ),
            (0, 0, 0, 0),
            "{stats:?}"
        );
        assert_eq!(
            env.store.account(id).await.expect("row").state,
            AccountState::Unauthorized
        );
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}
