//! Test helpers: a tiny account actor that crashes, hangs or stops on command, and a fleet built
//! on it over a fresh SQLite store or (for tests on paused time) `testing::MemStore`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tgfleet_actors::{AccountMsg, AccountRequest, AccountStatus, SendMessage, Sent, Status};
pub use tgfleet_persistence::testing::MemStore;
use tgfleet_persistence::*;
use tgfleet_supervision::{ChildSpec, Fleet, SupervisionMetrics, SupervisionSettings};

/// What the test actors of one fleet did, per account.
#[derive(Default)]
pub struct Journal {
    inner: Mutex<JournalInner>,
}

#[derive(Default)]
struct JournalInner {
    starts: HashMap<AccountId, usize>,
    live: HashMap<AccountId, usize>,
    graceful_stops: HashMap<AccountId, usize>,
    hibernations_begun: HashMap<AccountId, usize>,
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, JournalInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn starts(&self, id: AccountId) -> usize {
        self.lock().starts.get(&id).copied().unwrap_or(0)
    }
    pub fn live(&self, id: AccountId) -> usize {
        self.lock().live.get(&id).copied().unwrap_or(0)
    }
    pub fn live_total(&self) -> usize {
        self.lock().live.values().sum()
    }
    pub fn hibernations_begun(&self, id: AccountId) -> usize {
        self.lock()
            .hibernations_begun
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
    pub fn graceful_stops(&self, id: AccountId) -> usize {
        self.lock().graceful_stops.get(&id).copied().unwrap_or(0)
    }
}

/// Stands in for `AccountActor`: reloads its account row on start (as the real one reloads its
/// session), panics on `Crash`, hangs on `SendMessage{text:"hang"}`, stops itself with reason
/// `logged_out` on `LogOut`, and answers `Status` from what it loaded. `SendMessage{text:
/// "hibernate"}` hibernates it as the real one does — drain, answering `Hibernating` to what is
/// still queued — but slowly (a 200 ms handler, a 300 ms exit), so tests can call into the gap.
pub struct TestActor {
    pub store: Arc<dyn Store>,
    pub journal: Arc<Journal>,
}

pub struct TestState {
    account: Account,
    hibernating: bool,
    /// Decremented in `post_stop` or, for a panic or kill, on drop.
    _live: LiveGuard,
}

struct LiveGuard {
    id: AccountId,
    journal: Arc<Journal>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let mut j = self.journal.lock();
        if let Some(n) = j.live.get_mut(&self.id) {
            *n -= 1;
        }
    }
}

impl Actor for TestActor {
    type Msg = AccountMsg;
    type State = TestState;
    type Arguments = AccountId;

    async fn pre_start(
        &self,
        _myself: ActorRef<AccountMsg>,
        id: AccountId,
    ) -> Result<TestState, ActorProcessingErr> {
        let account = self.store.account(id).await?;
        if account.label.as_deref() == Some("fails-to-start") {
            return Err("refusing to start".into());
        }
        {
            let mut j = self.journal.lock();
            *j.starts.entry(id).or_default() += 1;
            *j.live.entry(id).or_default() += 1;
        }
        Ok(TestState {
            account,
            hibernating: false,
            _live: LiveGuard {
                id,
                journal: self.journal.clone(),
            },
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AccountMsg>,
        message: AccountMsg,
        state: &mut TestState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AccountMsg::Request(request) if state.hibernating => {
                request.refuse(tgfleet_actors::AccountError::Hibernating);
            }
            AccountMsg::Request(AccountRequest::SendMessage(
                SendMessage { text, .. },
                reply,
                _,
            )) if text.text == "hibernate" => {
                *self
                    .journal
                    .lock()
                    .hibernations_begun
                    .entry(state.account.id)
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                state.hibernating = true;
                myself.drain()?;
                let _ = reply.send(Ok(Sent {
                    message_id: 1,
                    message_ids: Vec::new(),
                }));
            }
            AccountMsg::Crash => panic!("crash requested for account {}", state.account.id),
            AccountMsg::Request(AccountRequest::Status(_, reply, _)) => {
                let a = &state.account;
                let _ = reply.send(Ok(AccountStatus {
                    account_id: a.id,
                    state: a.state,
                    tg_user_id: a.tg_user_id,
                    username: a.username.clone(),
                    dc_id: a.dc_id,
                    flood_wait_until: a.flood_wait_until,
                    last_error: a.last_error.clone(),
                }));
            }
            AccountMsg::Request(AccountRequest::SendMessage(
                SendMessage { text, .. },
                _reply,
                _,
            )) if text.text == "hang" => {
                // A wedged handler: the mailbox stops moving.
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            AccountMsg::Request(AccountRequest::LogOut(_, reply, _)) => {
                let _ = reply.send(Ok(()));
                myself.stop(Some("logged_out".into()));
            }
            AccountMsg::Request(request) => {
                request.refuse(tgfleet_actors::AccountError::CodeInvalid);
            }
            AccountMsg::Internal(_) => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<AccountMsg>,
        state: &mut TestState,
    ) -> Result<(), ActorProcessingErr> {
        if state.hibernating {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let mut j = self.journal.lock();
        *j.graceful_stops.entry(state.account.id).or_default() += 1;
        Ok(())
    }
}

/// Polls of 10 ms before a wait gives up: generous, because the machine may be busy compiling;
/// a bound against hanging, never a statement about speed.
pub const POLLS: usize = 3000;

pub struct Harness {
    pub fleet: Fleet,
    pub store: Arc<dyn Store>,
    pub journal: Arc<Journal>,
    pub metrics: SupervisionMetrics,
    pub owner: UserId,
    _dir: Option<tempfile::TempDir>,
}

/// Settings for tests: short delays so real-clock tests finish quickly.
pub fn fast_settings() -> SupervisionSettings {
    SupervisionSettings {
        shards: 4,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(200),
        start_rate: std::num::NonZeroU32::new(1000).unwrap(),
        call_timeout: Duration::from_secs(5),
        liveness_interval: None,
        shutdown_timeout: Duration::from_secs(2),
        ..SupervisionSettings::default()
    }
}

pub async fn sqlite_store() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = connect(&url).await.expect("opening SQLite store");
    (store, dir)
}

pub async fn owner(store: &dyn Store) -> UserId {
    store
        .create_user(NewUser {
            email: "owner@example.com".into(),
            username: None,
            password_hash: "$argon2id$fake".into(),
            role: Role::User,
        })
        .await
        .expect("creating user")
        .id
}

impl Harness {
    pub async fn sqlite(settings: SupervisionSettings) -> Harness {
        let (store, dir) = sqlite_store().await;
        let owner = owner(&*store).await;
        Self::with_store(settings, store, owner, Some(dir)).await
    }

    pub async fn with_store(
        settings: SupervisionSettings,
        store: Arc<dyn Store>,
        owner: UserId,
        dir: Option<tempfile::TempDir>,
    ) -> Harness {
        let journal = Arc::new(Journal::default());
        let metrics = SupervisionMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let factory = {
            let store = store.clone();
            let journal = journal.clone();
            move |spec: ChildSpec| {
                let actor = TestActor {
                    store: store.clone(),
                    journal: journal.clone(),
                };
                async move {
                    Actor::spawn_linked(Some(spec.name), actor, spec.account_id, spec.supervisor)
                        .await
                        .map(|(a, _)| a)
                }
            }
        };
        let fleet = Fleet::start(settings, store.clone(), Arc::new(factory), metrics.clone())
            .await
            .expect("starting fleet");
        // Accounts a test creates from here on are its own business, not the start-up pass's.
        fleet.startup_finished().await;
        Harness {
            fleet,
            store,
            journal,
            metrics,
            owner,
            _dir: dir,
        }
    }

    pub async fn account(&self, state: AccountState) -> AccountId {
        self.account_labelled(state, None).await
    }

    pub async fn account_labelled(&self, state: AccountState, label: Option<&str>) -> AccountId {
        let account = self
            .store
            .create_account(NewAccount {
                owner_id: self.owner,
                label: label.map(Into::into),
                kind: AccountKind::User,
                phone: None,
            })
            .await
            .expect("creating account");
        self.store
            .update_account(
                account.id,
                AccountUpdate {
                    state: Some(state),
                    ..Default::default()
                },
            )
            .await
            .expect("setting state");
        account.id
    }

    pub async fn status(
        &self,
        id: AccountId,
    ) -> Result<AccountStatus, tgfleet_supervision::FleetError> {
        self.fleet.call(id, Status).await
    }

    /// Polls until `Status` answers (the actor is up again after a restart).
    pub async fn wait_answering(&self, id: AccountId) -> AccountStatus {
        for _ in 0..POLLS {
            if let Ok(s) = self.status(id).await {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("account {id} never answered again");
    }

    /// Polls until `cond` holds.
    pub async fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        for _ in 0..POLLS {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Crashes the account's actor and waits until a new one answers.
    pub async fn crash_and_wait(&self, id: AccountId) {
        let before = self.fleet.actor_id(id).expect("a running actor");
        self.fleet.crash(id).expect("crash sent");
        self.wait_until("a new actor", || {
            self.fleet.actor_id(id).is_some_and(|now| now != before)
        })
        .await;
    }

    pub async fn logs(&self, id: AccountId, event: &str) -> Vec<LogEntry> {
        self.store
            .list_logs(LogFilter {
                account_id: Some(id),
                event: Some(event.into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("listing logs")
    }
}

pub async fn mem_harness(settings: SupervisionSettings, store: Arc<MemStore>) -> Harness {
    Harness::with_store(settings, store, 1, None).await
}

/// Lets every ready task run (on paused time this never advances the clock by itself).
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}
