//! The fleet with the real `AccountActor` and the real grammers client against testdc: the
//! supervisor's half of "a pending login survives a crash and a fleet restart".

use std::sync::Arc;
use std::time::Duration;

use tgfleet_actors::{
    AccountEnv, AccountError, AccountLimits, CodeSent, LoginStep, SendCode, SendMessage, Sent,
    SignIn, Status, TelegramParams, TelegramTarget,
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
    open_env_with(dc, dir, AccountLimits::default()).await
}

async fn open_env_with(
    dc: &TestDc,
    dir: &tempfile::TempDir,
    limits: AccountLimits,
) -> Arc<AccountEnv> {
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("key");
    open_env_sealed_by(dc, dir, limits, cipher).await
}

async fn open_env_sealed_by(
    dc: &TestDc,
    dir: &tempfile::TempDir,
    limits: AccountLimits,
    cipher: SessionCipher,
) -> Arc<AccountEnv> {
    let url = format!("sqlite://{}/tgfleet.db", dir.path().display());
    let store = tgfleet_persistence::connect(&url).await.expect("store");
    let registrar = dc.clone();
    Arc::new(
        AccountEnv::new(
            store,
            cipher,
            TelegramParams {
                api_id: 1,
                api_hash: "testdc".into(),
                target: TelegramTarget::TestDc {
                    dcs: dc.dc_addrs(),
                    register_key: Arc::new(move |key| registrar.register_auth_key(key)),
                },
            },
            limits,
            &prometheus::Registry::new(),
        )
        .expect("account env"),
    )
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
            phone: Some(phone.parse().unwrap()),
        })
        .await
        .expect("account")
        .id
}

async fn state_of(fleet: &Fleet, id: i64) -> AccountState {
    match fleet.call(id, Status).await {
        Ok(s) => s.state,
        other => panic!("status answered {other:?}"),
    }
}

async fn send_code(fleet: &Fleet, id: i64, phone: &str) {
    let sent = fleet
        .call(
            id,
            SendCode {
                phone: phone.parse().expect("a phone"),
            },
        )
        .await;
    assert!(matches!(sent, Ok(CodeSent { .. })), "{sent:?}");
}

async fn sign_in(fleet: &Fleet, dc: &TestDc, id: i64, phone: &str) {
    let code = dc.last_code(phone).expect("testdc sent a code");
    let step = fleet.call(id, SignIn { code }).await;
    assert!(
        matches!(
            step,
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            })
        ),
        "{step:?}"
    );
    let sent = fleet
        .call(
            id,
            SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: "through the fleet".into(),
                dedupe_key: None,
                options: Default::default(),
            },
        )
        .await;
    assert!(matches!(sent, Ok(Sent { .. })), "{sent:?}");
}

/// Panics the account's actor and waits until the fleet runs a new one.
async fn crash_and_await_restart(fleet: &Fleet, id: i64) {
    let before = fleet.actor_id(id).expect("running");
    fleet.crash(id).expect("crash");
    while fleet.actor_id(id).is_none_or(|now| now == before) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `tgfleet_actor_restarts_total` series of one account, one per reason counted.
fn restart_series(registry: &prometheus::Registry, id: i64) -> Vec<prometheus::proto::Metric> {
    registry
        .gather()
        .into_iter()
        .filter(|f| f.name() == "tgfleet_actor_restarts_total")
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "account_id" && l.value() == id.to_string())
        })
        .collect()
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

        send_code(&fleet, id, phone).await;
        crash_and_await_restart(&fleet, id).await;
        assert_eq!(state_of(&fleet, id).await, AccountState::AwaitingCode);
        sign_in(&fleet, &dc, id, phone).await;

        let failed = restart_series(&registry, id)
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
        send_code(&first, id, phone).await;
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
        send_code(&fleet, id, phone).await;
        sign_in(&fleet, &dc, id, phone).await;

        dc.faults()
            .revoke(phone, RevokeKind::SessionRevoked)
            .expect("revoke");
        let answer = fleet
            .call(
                id,
                SendMessage {
                    media: Vec::new(),
                    random_id: None,
                    peer: tgfleet_actors::Peer::Me,
                    text: "after revoke".into(),
                    dedupe_key: None,
                    options: Default::default(),
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

/// Hibernation in short periods: the watchdog ticks every 20 ms and an account idle for 60 ms
/// hibernates, so calls spaced around that race the actor's end.
fn hibernating_limits() -> AccountLimits {
    AccountLimits {
        watchdog_period: Duration::from_millis(20),
        hibernate_after: Some(Duration::from_millis(60)),
        ..AccountLimits::default()
    }
}

fn hibernating_settings() -> SupervisionSettings {
    SupervisionSettings {
        hibernation: true,
        ..settings()
    }
}

async fn send_me(fleet: &Fleet, id: i64, text: &str) -> Result<Sent, FleetError> {
    fleet
        .call(
            id,
            SendMessage {
                media: Vec::new(),
                random_id: None,
                peer: tgfleet_actors::Peer::Me,
                text: text.into(),
                dedupe_key: None,
                options: Default::default(),
            },
        )
        .await
}

async fn hibernations(env: &AccountEnv, id: i64) -> usize {
    let page = env
        .store
        .list_logs(tgfleet_persistence::LogFilter {
            account_id: Some(id),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("logs");
    page.iter().filter(|l| l.event == "hibernated").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_racing_hibernation_all_run_and_one_actor_at_most_serves_each_account() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env_with(&dc, &dir, hibernating_limits()).await;
        let fleet = Fleet::start_accounts(
            hibernating_settings(),
            env.clone(),
            &prometheus::Registry::new(),
        )
        .await
        .expect("fleet");
        let mut ids = Vec::new();
        for (i, phone) in ["+15550150", "+15550151", "+15550152"].iter().enumerate() {
            dc.add_user(UserSpec::new(phone, "Racer"));
            let id = if i == 0 {
                user_account(&env, phone).await
            } else {
                let owner = env.store.account(ids[0]).await.expect("row").owner_id;
                env.store
                    .create_account(NewAccount {
                        owner_id: owner,
                        label: None,
                        kind: AccountKind::User,
                        phone: Some(phone.parse().unwrap()),
                    })
                    .await
                    .expect("account")
                    .id
            };
            send_code(&fleet, id, phone).await;
            sign_in(&fleet, &dc, id, phone).await;
            ids.push(id);
        }

        // Each account gets calls spaced 0–120 ms apart, around the 60 ms idle limit: some land
        // on a live actor, some on one that is draining, some on none.
        let max_actors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let watcher = tokio::spawn({
            let (fleet, max_actors) = (fleet.clone(), max_actors.clone());
            async move {
                loop {
                    max_actors.fetch_max(fleet.actor_count(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        let mut calls = tokio::task::JoinSet::new();
        for (n, id) in ids.iter().copied().enumerate() {
            let fleet = fleet.clone();
            calls.spawn(async move {
                let mut failures = Vec::new();
                for i in 0..40u64 {
                    let pause = (i * 37 + n as u64 * 11) % 121;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    if let Err(e) = send_me(&fleet, id, "race").await {
                        failures.push(format!("{e:?}"));
                    }
                }
                failures
            });
        }
        while let Some(failures) = calls.join_next().await {
            let failures = failures.expect("caller task");
            assert!(failures.is_empty(), "calls failed: {failures:?}");
        }
        watcher.abort();
        assert!(
            max_actors.load(std::sync::atomic::Ordering::Relaxed) <= ids.len(),
            "more actors than accounts at some moment"
        );
        let mut slept = 0;
        for id in &ids {
            slept += hibernations(&env, *id).await;
        }
        // Without hibernations in between, the race was not run.
        assert!(slept >= 10, "only {slept} hibernations");
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hibernated_accounts_start_with_no_actor_and_wake_on_their_first_call() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let phone = "+15550153";
        dc.add_user(UserSpec::new(phone, "Dormant"));
        let env = open_env_with(&dc, &dir, hibernating_limits()).await;
        let id = user_account(&env, phone).await;
        let first =
            Fleet::start_accounts(hibernating_settings(), env, &prometheus::Registry::new())
                .await
                .expect("fleet");
        send_code(&first, id, phone).await;
        sign_in(&first, &dc, id, phone).await;
        while first.actor_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.shutdown().await;

        // A new process: the hibernated account gets no actor and no connection, yet counts.
        let env = open_env_with(&dc, &dir, hibernating_limits()).await;
        assert_eq!(
            env.store.account(id).await.expect("row").state,
            AccountState::Hibernated
        );
        let second = Fleet::start_accounts(
            hibernating_settings(),
            env.clone(),
            &prometheus::Registry::new(),
        )
        .await
        .expect("fleet");
        second.startup_finished().await;
        assert_eq!(second.actor_count(), 0);
        assert_eq!(dc.connection_count(), 0);
        assert_eq!(env.metrics.state_of(id), Some(AccountState::Hibernated));

        let sent = send_me(&second, id, "good morning").await;
        assert!(matches!(sent, Ok(Sent { .. })), "{sent:?}");
        assert_eq!(
            env.store.account(id).await.expect("row").state,
            AccountState::Active
        );
        second.shutdown().await;
    })
    .await
    .expect("test bound");
}

/// Issue 11, item 2: Vault sealed for 20 s while a fleet starts. Its accounts cannot open their
/// sessions; that is Vault's outage, not theirs: they wait (retried with backoff, shown as
/// waiting), none is quarantined, and all are active again once Vault answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_sealed_for_20_s_during_a_fleet_start_quarantines_no_account() {
    let Some(bao) = tgfleet_persistence::testing::BaoServer::start().await else {
        return;
    };
    let params = bao
        .transit_params("tgfleet-sessions")
        .await
        .expect("transit key");
    tokio::time::timeout(Duration::from_secs(180), async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let vault = || async {
            SessionCipher::vault(params.clone())
                .await
                .expect("vault cipher")
        };
        let env = open_env_sealed_by(&dc, &dir, AccountLimits::default(), vault().await).await;
        let phones = ["+15550151", "+15550152", "+15550153", "+15550154"];
        let owner = env
            .store
            .create_user(NewUser {
                email: "sealed@example.com".into(),
                username: None,
                password_hash: "x".into(),
                role: Role::User,
            })
            .await
            .expect("owner")
            .id;
        let mut ids = Vec::new();
        for (i, phone) in phones.iter().enumerate() {
            dc.add_user(UserSpec::new(phone, &format!("Sealed {i}")));
            let account = env
                .store
                .create_account(NewAccount {
                    owner_id: owner,
                    label: None,
                    kind: AccountKind::User,
                    phone: Some(phone.parse().unwrap()),
                })
                .await
                .expect("account");
            ids.push(account.id);
        }
        let first = Fleet::start_accounts(settings(), env, &prometheus::Registry::new())
            .await
            .expect("fleet");
        for (id, phone) in ids.iter().zip(phones) {
            send_code(&first, *id, phone).await;
            sign_in(&first, &dc, *id, phone).await;
        }
        first.shutdown().await;

        // The next process connects to Vault, then Vault is sealed before its fleet starts: a
        // cold cache, so every session open needs Vault.
        let env = open_env_sealed_by(&dc, &dir, AccountLimits::default(), vault().await).await;
        bao.seal().await.expect("seal");
        let second = Fleet::start_accounts(settings(), env.clone(), &prometheus::Registry::new())
            .await
            .expect("fleet");
        let sealed_until = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut seen_waiting = 0;
        while tokio::time::Instant::now() < sealed_until {
            let stats = second.supervisor_stats().await;
            assert_eq!(stats.quarantined, 0, "{stats:?}");
            seen_waiting = seen_waiting.max(stats.waiting_for_vault);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(seen_waiting > 0, "accounts were seen waiting for Vault");
        for id in &ids {
            let answer = second.call(*id, Status).await;
            match &answer {
                Err(e @ FleetError::Unavailable { retry_after, .. }) => {
                    assert_eq!(e.code(), "VAULT_UNAVAILABLE", "{e}");
                    assert!(retry_after.is_some(), "{e:?}");
                }
                other => panic!("a call while Vault is sealed answered {other:?}"),
            }
        }
        let row = env.store.account(ids[0]).await.expect("row");
        assert_eq!(row.state, AccountState::Reconnecting, "{row:?}");
        assert!(
            row.last_error
                .as_deref()
                .is_some_and(|e| e.contains("vault")),
            "{row:?}"
        );

        bao.unseal().await.expect("unseal");
        for id in &ids {
            let deadline = tokio::time::Instant::now() + BOUND;
            loop {
                if let Ok(s) = second.call(*id, Status).await {
                    if s.state == AccountState::Active {
                        break;
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "account {id} not active after Vault came back"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let sent = second
                .call(
                    *id,
                    SendMessage {
                        media: Vec::new(),
                        random_id: None,
                        peer: tgfleet_actors::Peer::Me,
                        text: "after the seal".into(),
                        dedupe_key: None,
                        options: Default::default(),
                    },
                )
                .await;
            assert!(matches!(sent, Ok(Sent { .. })), "{sent:?}");
            let row = env.store.account(*id).await.expect("row");
            assert_ne!(row.state, AccountState::Quarantined);
        }
        let stats = second.supervisor_stats().await;
        assert_eq!(
            (stats.quarantined, stats.waiting_for_vault),
            (0, 0),
            "{stats:?}"
        );
        second.shutdown().await;
    })
    .await
    .expect("test bound");
}

/// Issue 11, item 11: a deleted account's restart series leave `/metrics` with it (ids are never
/// reused, so they would only pile up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_accounts_restart_series_leave_the_metrics() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550161";
        dc.add_user(UserSpec::new(phone, "Gone"));
        let id = user_account(&env, phone).await;
        let registry = prometheus::Registry::new();
        let fleet = Fleet::start_accounts(settings(), env.clone(), &registry)
            .await
            .expect("fleet");
        send_code(&fleet, id, phone).await;
        crash_and_await_restart(&fleet, id).await;
        assert_eq!(
            restart_series(&registry, id).len(),
            1,
            "the crash was counted"
        );
        env.store.delete_account(id).await.expect("delete row");
        fleet.remove(id).await.expect("remove");
        assert_eq!(
            restart_series(&registry, id).len(),
            0,
            "the deleted account's series are gone"
        );
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}

/// Issue 16: a quarantined account is counted as `quarantined` in the state gauges as soon as it
/// is quarantined, not only after the next process start (the quarantine alert reads them), and
/// the operator's restart that lifts it counts it under its state again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_shows_in_the_state_gauges_at_once() {
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550171";
        dc.add_user(UserSpec::new(phone, "Flaky"));
        let id = user_account(&env, phone).await;
        let registry = prometheus::Registry::new();
        let fleet = Fleet::start_accounts(settings(), env.clone(), &registry)
            .await
            .expect("fleet");
        send_code(&fleet, id, phone).await;
        assert_eq!(env.metrics.state_of(id), Some(AccountState::AwaitingCode));

        // Crash it until the restart budget is spent and the supervisor gives up on it.
        let mut crashes = 0u32;
        while fleet.supervisor_stats().await.quarantined == 0 {
            assert!(crashes <= settings().restart_max + 1, "never quarantined");
            let before = fleet.actor_id(id).expect("running");
            fleet.crash(id).expect("crash");
            crashes += 1;
            while fleet.supervisor_stats().await.quarantined == 0
                && fleet.actor_id(id).is_none_or(|now| now == before)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        assert_eq!(
            fleet.actor_id(id),
            None,
            "a quarantined account has no actor"
        );
        // The gauges follow once the quarantine is written; the bound is a safety net.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while env.metrics.state_of(id) != Some(AccountState::Quarantined)
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            env.metrics.state_of(id),
            Some(AccountState::Quarantined),
            "the state gauges do not show the quarantine"
        );

        fleet
            .restart(id)
            .await
            .expect("the operator lifts the quarantine");
        assert_eq!(env.metrics.state_of(id), Some(AccountState::AwaitingCode));
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}

/// Records, for every `telegram` span (one Telegram call), the chain of spans it sits in, each as
/// `name{fields}`.
struct SpanChains(Arc<std::sync::Mutex<Vec<String>>>);

struct SpanText(String);

#[derive(Default)]
struct FieldText(Vec<String>);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanChains
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldText::default();
        attrs.record(&mut fields);
        let name = attrs.metadata().name();
        span.extensions_mut()
            .insert(SpanText(format!("{name}{{{}}}", fields.0.join(","))));
        if name == "telegram" {
            let chain: Vec<String> = span
                .scope()
                .from_root()
                .map(|s| {
                    s.extensions()
                        .get::<SpanText>()
                        .map(|t| t.0.clone())
                        .unwrap_or_default()
                })
                .collect();
            self.0.lock().unwrap().push(chain.join(" > "));
        }
    }
}

/// Issue 12, item 7: one search follows a request end to end. The caller's span (the HTTP
/// request's, in the server) is the parent of the account command's span, which is the parent of
/// the Telegram call's span, although the call runs in the actor's own task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_span_reaches_its_telegram_call() {
    use tracing::Instrument;
    use tracing_subscriber::layer::SubscriberExt;
    let chains = Arc::new(std::sync::Mutex::new(Vec::new()));
    // The process-wide subscriber, not a thread-local one: a callsite another test of this
    // binary reached first with no subscriber would otherwise stay disabled (tracing caches
    // interest per callsite). Other tests' chains land here too; only this one's marker counts.
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(SpanChains(Arc::clone(&chains))),
    )
    .expect("the only test of this binary that sets a subscriber");
    tokio::time::timeout(BOUND, async {
        let dc = TestDc::start(TestDcConfig::default())
            .await
            .expect("testdc");
        let dir = tempfile::tempdir().expect("dir");
        let env = open_env(&dc, &dir).await;
        let phone = "+15550171";
        dc.add_user(UserSpec::new(phone, "Traced"));
        let id = user_account(&env, phone).await;
        let registry = prometheus::Registry::new();
        let fleet = Fleet::start_accounts(settings(), env.clone(), &registry)
            .await
            .expect("fleet");
        send_code(&fleet, id, phone).await;
        sign_in(&fleet, &dc, id, phone).await;

        let request = tracing::info_span!("request", marker = "r-77");
        send_me(&fleet, id, "traced")
            .instrument(request)
            .await
            .expect("sent");
        let chains = chains.lock().unwrap().clone();
        let want = format!(
            "request{{marker=r-77}} > account{{account_id={id},command=send_message}} > \
             telegram{{method=messages.sendMessage,dc="
        );
        assert!(
            chains.iter().any(|chain| chain.starts_with(&want)),
            "no Telegram call under the request's span: {chains:#?}"
        );
        fleet.shutdown().await;
    })
    .await
    .expect("test bound");
}
