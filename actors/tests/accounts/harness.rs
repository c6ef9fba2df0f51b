//! A testdc, a SQLite database and a session key in a temp dir, and helpers to run account
//! actors over them the way the fleet does (a "process" = one store connection + one env).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ractor::{Actor, ActorRef};
use tgfleet_actors::{
    AccountActor, AccountArgs, AccountEnv, AccountError, AccountLimits, AccountMsg, AccountStatus,
    Command, LoginStep, SendCode, SignIn, Status, TelegramParams, TelegramTarget,
};
use tgfleet_persistence::{
    AccountId, AccountKind, AccountState, LogFilter, NewAccount, NewUser, Role, SessionCipher,
    Store,
};
use tgfleet_testdc::{TestDc, TestDcConfig};
use tokio::task::JoinHandle;

/// Safety bound for anything awaited in a test; never an assertion about speed.
pub const BOUND: Duration = Duration::from_secs(60);

pub struct Harness {
    pub dc: TestDc,
    pub dir: tempfile::TempDir,
    pub env: Arc<AccountEnv>,
    pub registry: prometheus::Registry,
    owner: i64,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

impl Harness {
    pub async fn start() -> Self {
        Self::with_config(TestDcConfig::default(), AccountLimits::default()).await
    }

    pub async fn with_config(cfg: TestDcConfig, limits: AccountLimits) -> Self {
        init_tracing();
        let dc = TestDc::start(cfg).await.expect("testdc starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let (env, registry) = open_env(&dc, &dir, limits).await;
        let owner = env
            .store
            .create_user(NewUser {
                email: "owner@example.com".into(),
                username: None,
                password_hash: "x".into(),
                role: Role::User,
            })
            .await
            .expect("owner user")
            .id;
        Self {
            dc,
            dir,
            env,
            registry,
            owner,
        }
    }

    /// A second "process" over the same database and session key: new store connection, new
    /// cipher instance, new metrics registry.
    pub async fn new_process(&self) -> (Arc<AccountEnv>, prometheus::Registry) {
        open_env(&self.dc, &self.dir, self.env.limits.clone()).await
    }

    pub async fn account(&self, kind: AccountKind, phone: Option<&str>) -> AccountId {
        self.env
            .store
            .create_account(NewAccount {
                owner_id: self.owner,
                label: None,
                kind,
                phone: phone.map(|p| p.parse().expect("a test phone is E.164")),
            })
            .await
            .expect("account row")
            .id
    }
}

async fn open_env(
    dc: &TestDc,
    dir: &tempfile::TempDir,
    limits: AccountLimits,
) -> (Arc<AccountEnv>, prometheus::Registry) {
    let url = format!("sqlite://{}/tgfleet.db", dir.path().display());
    let store: Arc<dyn Store> = tgfleet_persistence::connect(&url)
        .await
        .expect("sqlite store");
    let cipher = SessionCipher::local(dir.path().join("session.key")).expect("session key");
    let registry = prometheus::Registry::new();
    let registrar = dc.clone();
    let env = Arc::new(
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
            &registry,
        )
        .expect("account env"),
    );
    (env, registry)
}

pub struct Running {
    pub actor: ActorRef<AccountMsg>,
    pub handle: JoinHandle<()>,
}

pub async fn spawn(env: &Arc<AccountEnv>, account_id: AccountId) -> Running {
    let (actor, handle) = Actor::spawn(
        None,
        AccountActor,
        AccountArgs {
            account_id,
            env: Arc::clone(env),
        },
    )
    .await
    .expect("account actor starts");
    Running { actor, handle }
}

impl Running {
    pub async fn call<C: Command>(&self, request: C) -> Result<C::Reply, AccountError> {
        call(&self.actor, request).await
    }

    pub async fn status(&self) -> AccountStatus {
        match self.call(Status).await {
            Ok(s) => s,
            other => panic!("status answered {other:?}"),
        }
    }

    /// Waits (bounded) until the account reaches `state`.
    pub async fn wait_for(&self, state: AccountState) -> AccountStatus {
        let deadline = tokio::time::Instant::now() + BOUND;
        loop {
            let status = self.status().await;
            if status.state == state {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "account never reached {state}; last status {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Panics the actor through its chaos hook and waits until it is gone.
    pub async fn crash(self) {
        let _ = self.actor.send_message(AccountMsg::Crash);
        tokio::time::timeout(BOUND, self.handle)
            .await
            .expect("crashed actor ends")
            .expect("actor task joins");
    }

    /// Stops the actor as a fleet shutdown would and waits until it is gone.
    pub async fn stop(self) {
        self.actor.stop(None);
        tokio::time::timeout(BOUND, self.handle)
            .await
            .expect("stopped actor ends")
            .expect("actor task joins");
    }
}

pub async fn call<C: Command>(
    actor: &ActorRef<AccountMsg>,
    request: C,
) -> Result<C::Reply, AccountError> {
    match actor
        .call(
            |reply| AccountMsg::Request(request.into_request(reply)),
            Some(BOUND),
        )
        .await
        .expect("actor reachable")
    {
        ractor::rpc::CallResult::Success(answer) => answer,
        other => panic!("actor did not answer: {other:?}"),
    }
}

/// The raw token bytes of a `tg://login?token=…` URL (what a phone's camera would read).
pub fn qr_token(url: &str) -> Vec<u8> {
    let token = url
        .strip_prefix("tg://login?token=")
        .expect("tg://login URL");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64url token")
}

/// Integration-log rows of an account, newest first.
pub async fn logs(env: &AccountEnv, account_id: AccountId) -> Vec<tgfleet_persistence::LogEntry> {
    env.store
        .list_logs(LogFilter {
            account_id: Some(account_id),
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("logs")
}

impl Harness {
    /// Creates an account for an existing testdc user and logs it in by code.
    pub async fn logged_in(&self, phone: &str) -> (AccountId, Running) {
        self.logged_in_with(&self.env, phone).await
    }

    /// Like `logged_in`, under a probe supervisor that reports how the actor ends.
    pub async fn logged_in_supervised(
        &self,
        phone: &str,
    ) -> (
        AccountId,
        Running,
        tokio::sync::mpsc::UnboundedReceiver<Ending>,
    ) {
        let id = self.account(AccountKind::User, Some(phone)).await;
        let (running, endings) = spawn_supervised(&self.env, id).await;
        self.sign_in_by_code(&running, phone).await;
        (id, running, endings)
    }

    pub async fn logged_in_with(&self, env: &Arc<AccountEnv>, phone: &str) -> (AccountId, Running) {
        let id = self.account(AccountKind::User, Some(phone)).await;
        let running = spawn(env, id).await;
        self.sign_in_by_code(&running, phone).await;
        (id, running)
    }

    /// Requests a login code for `phone` and returns the code testdc sent.
    pub async fn code_for(&self, running: &Running, phone: &str) -> String {
        running
            .call(SendCode {
                phone: phone.parse().expect("a phone"),
            })
            .await
            .expect("code sent");
        self.dc.last_code(phone).expect("testdc sent a code")
    }

    /// Logs `running` in with the code testdc sends to `phone`; it must end active.
    pub async fn sign_in_by_code(&self, running: &Running, phone: &str) {
        let code = self.code_for(running, phone).await;
        match running.call(SignIn { code }).await {
            Ok(LoginStep {
                state: AccountState::Active,
                ..
            }) => {}
            other => panic!("sign-in answered {other:?}"),
        }
    }
}

/// Spawns an account actor under a probe supervisor that reports how the actor ended.
pub async fn spawn_supervised(
    env: &Arc<AccountEnv>,
    account_id: AccountId,
) -> (Running, tokio::sync::mpsc::UnboundedReceiver<Ending>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (probe, _probe_handle) = Actor::spawn(None, Probe, tx).await.expect("probe");
    let (actor, handle) = Actor::spawn_linked(
        None,
        AccountActor,
        AccountArgs {
            account_id,
            env: Arc::clone(env),
        },
        probe.get_cell(),
    )
    .await
    .expect("account actor starts");
    (Running { actor, handle }, rx)
}

/// How a supervised account actor ended, as its supervisor sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    Stopped(Option<String>),
    Failed(String),
}

struct Probe;

impl Actor for Probe {
    type Msg = ();
    type State = tokio::sync::mpsc::UnboundedSender<Ending>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<Ending>;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        event: ractor::SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match event {
            ractor::SupervisionEvent::ActorTerminated(_, _, reason) => {
                let _ = tx.send(Ending::Stopped(reason));
            }
            ractor::SupervisionEvent::ActorFailed(_, err) => {
                let _ = tx.send(Ending::Failed(err.to_string()));
            }
            _ => {}
        }
        Ok(())
    }
}
