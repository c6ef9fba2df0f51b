//! The `Fleet` handle: what the API (and tests) use to reach account actors.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorRef};
use tgfleet_actors::{
    AccountEnv, AccountError, AccountLimits, AccountMsg, Command, TelegramParams,
};
use tgfleet_persistence::{AccountFilter, AccountId, AccountState, SessionCipher, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::child::{AccountActorFactory, ChildFactory};
use crate::error::{FleetError, UnavailableKind};
use crate::messages::SupervisorMsg;
use crate::metrics::SupervisionMetrics;
use crate::settings::SupervisionSettings;
use crate::stats::SupervisorStats;
use crate::supervisor::{is_alive, AccountRegistry, Supervisor, SupervisorContext};

/// Accounts read per page at start-up: small enough to keep memory flat with a huge fleet, large
/// enough that paging costs nothing next to the paced starts.
const STARTUP_PAGE: u32 = 500;

/// Makes every fleet's actor names unique in the process (ractor's name registry is global).
static FLEET_SEQ: AtomicU64 = AtomicU64::new(0);

/// Health figures of all supervisors together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetStats {
    /// Supervisors alive.
    pub supervisors: usize,
    /// Supervisors that did not answer (dead or wedged).
    pub supervisors_unreachable: usize,
    pub children: usize,
    pub starting: usize,
    pub backing_off: usize,
    pub quarantined: usize,
    /// Accounts whose start waits for the store, or for Vault, to answer again.
    pub waiting_for_store: usize,
    pub waiting_for_vault: usize,
    /// Restarts in place since this fleet started.
    pub restarts: u64,
}

/// What the accounts of a service share: where their rows and sealed sessions are, how sessions
/// are sealed, which Telegram they reach and their limits.
pub struct AccountSetup {
    pub store: Arc<dyn Store>,
    pub cipher: SessionCipher,
    pub telegram: TelegramParams,
    pub limits: AccountLimits,
    /// The media library's storage, which accounts read when they send media.
    pub media: Option<tgfleet_persistence::MediaStorage>,
}

/// Cheap to clone; every clone talks to the same fleet.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    /// The accounts' shared environment, when this fleet runs the real account actors; the
    /// session commands (import, export) need it.
    pub(crate) env: Option<Arc<AccountEnv>>,
    registry: Arc<AccountRegistry>,
    factory: Arc<dyn ChildFactory>,
    metrics: SupervisionMetrics,
    supervisors: Vec<ActorRef<SupervisorMsg>>,
    settings: SupervisionSettings,
    accepting: AtomicBool,
    startup: Mutex<Option<JoinHandle<()>>>,
    startup_done: watch::Receiver<bool>,
}

impl Fleet {
    /// Starts the supervisors with `factory` spawning the account actors, then, in the background
    /// and paced, every persisted account that is authorized or has a pending login. Returns as
    /// soon as the supervisors run, so the API can be up at once.
    pub async fn start(
        settings: SupervisionSettings,
        store: Arc<dyn Store>,
        factory: Arc<dyn ChildFactory>,
        metrics: SupervisionMetrics,
    ) -> anyhow::Result<Fleet> {
        Self::start_with(settings, store, factory, metrics, None).await
    }

    async fn start_with(
        settings: SupervisionSettings,
        store: Arc<dyn Store>,
        factory: Arc<dyn ChildFactory>,
        metrics: SupervisionMetrics,
        env: Option<Arc<AccountEnv>>,
    ) -> anyhow::Result<Fleet> {
        let supervisor_count = settings.shards.max(1);
        let seq = FLEET_SEQ.fetch_add(1, Ordering::Relaxed);
        let registry: Arc<AccountRegistry> = Arc::new(DashMap::new());
        let ctx = Arc::new(SupervisorContext {
            name_prefix: format!("tgfleet-{seq}"),
            settings: settings.clone(),
            store: store.clone(),
            factory: factory.clone(),
            registry: registry.clone(),
            metrics: metrics.clone(),
        });
        let mut supervisors = Vec::with_capacity(supervisor_count);
        for index in 0..supervisor_count {
            let spawned = Actor::spawn(
                Some(format!("tgfleet-{seq}/supervisor/{index}")),
                Supervisor { ctx: ctx.clone() },
                (),
            )
            .await;
            match spawned {
                Ok((supervisor, _join)) => supervisors.push(supervisor),
                Err(e) => {
                    for supervisor in &supervisors {
                        supervisor.stop(None);
                    }
                    return Err(anyhow::anyhow!("starting supervisor {index}: {e}"));
                }
            }
        }
        let (done_tx, done_rx) = watch::channel(false);
        let fleet = Fleet {
            inner: Arc::new(Inner {
                env,
                registry,
                factory,
                metrics,
                supervisors,
                settings,
                accepting: AtomicBool::new(true),
                startup: Mutex::new(None),
                startup_done: done_rx,
            }),
        };
        let startup = tokio::spawn({
            let fleet = fleet.clone();
            async move {
                if let Err(e) = fleet.start_persisted(store).await {
                    tracing::error!(error = format!("{e:#}"), "starting persisted accounts");
                }
                let _ = done_tx.send(true);
            }
        });
        *fleet.lock_startup() = Some(startup);
        Ok(fleet)
    }

    /// [`Fleet::start`] with the real [`tgfleet_actors::AccountActor`]; the supervision metrics
    /// go into `metrics_registry`.
    pub async fn start_accounts(
        settings: SupervisionSettings,
        env: Arc<AccountEnv>,
        metrics_registry: &prometheus::Registry,
    ) -> anyhow::Result<Fleet> {
        let metrics = SupervisionMetrics::register(metrics_registry)?;
        let store = env.store.clone();
        Self::start_with(
            settings,
            store,
            Arc::new(AccountActorFactory::new(env.clone())),
            metrics,
            Some(env),
        )
        .await
    }

    /// The fleet of a running service: its accounts' environment built from `setup`, every
    /// metric (the accounts' and the supervisors') in `metrics_registry`.
    pub async fn start_service(
        settings: SupervisionSettings,
        setup: AccountSetup,
        metrics_registry: &prometheus::Registry,
    ) -> anyhow::Result<Fleet> {
        let mut env = AccountEnv::new(
            setup.store,
            setup.cipher,
            setup.telegram,
            setup.limits,
            metrics_registry,
        )?;
        env.media = setup.media;
        Self::start_accounts(settings, Arc::new(env), metrics_registry).await
    }

    pub(crate) fn env(&self) -> Option<&Arc<AccountEnv>> {
        self.inner.env.as_ref()
    }

    /// How long `url` takes to connect to the DC accounts connect to, or why it cannot. A fleet
    /// without real account actors (tests' stand-ins) has no DC: every proxy passes.
    pub async fn check_proxy(
        &self,
        url: &tgfleet_persistence::ProxyUrl,
    ) -> Result<Duration, String> {
        let Some(env) = self.env() else {
            return Ok(Duration::ZERO);
        };
        let dc = tgfleet_actors::proxy::check_address(&env.telegram.target)?;
        tgfleet_actors::proxy::check(url, dc).await
    }

    /// Sends `request` to the account's actor (starting it if it has none) and returns its
    /// answer. Bounded by the call timeout, start included.
    pub async fn call<C: Command>(
        &self,
        account_id: AccountId,
        command: C,
    ) -> Result<C::Reply, FleetError> {
        self.call_with_extra_time(account_id, command, Duration::ZERO)
            .await
    }

    /// [`Fleet::call`] for a command that takes longer by nature (an upload of `extra`'s worth).
    pub async fn call_with_extra_time<C: Command>(
        &self,
        account_id: AccountId,
        command: C,
        extra: Duration,
    ) -> Result<C::Reply, FleetError> {
        let timeout = self.inner.settings.call_timeout + extra;
        // The request's span, carried into the actor and its Telegram call (`into_request`).
        let span = tracing::info_span!("account", account_id, command = C::NAME);
        let call = self.call_unbounded(account_id, command).instrument(span);
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(FleetError::unavailable(
                account_id,
                UnavailableKind::Timeout,
                format!("no answer within {} s", timeout.as_secs_f32()),
            )),
        }
    }

    async fn call_unbounded<C: Command>(
        &self,
        account_id: AccountId,
        command: C,
    ) -> Result<C::Reply, FleetError> {
        // Retried only when the request certainly did not run: it never reached the actor (it
        // died, or was draining to hibernate, between lookup and send), or the actor answered
        // `Hibernating`. Each retry goes to the next actor, so a few are plenty.
        let mut retries_left = 3u32;
        loop {
            let actor = self.resolve(account_id).await?;
            let attempt = command.clone();
            match actor
                .call(
                    |reply| AccountMsg::Request(attempt.into_request(reply)),
                    None,
                )
                .await
            {
                Ok(CallResult::Success(Err(AccountError::Hibernating))) if retries_left > 0 => {
                    retries_left -= 1;
                }
                Ok(CallResult::Success(answer)) => return answer.map_err(FleetError::Account),
                Ok(CallResult::SenderError) => {
                    return Err(FleetError::unavailable(
                        account_id,
                        UnavailableKind::ActorStopped,
                        "the account actor went away before answering; the request may or may not have run",
                    ))
                }
                Ok(CallResult::Timeout) => {
                    return Err(FleetError::unavailable(
                        account_id,
                        UnavailableKind::Timeout,
                        "the account actor did not answer in time",
                    ))
                }
                Err(_) if retries_left > 0 => {
                    retries_left -= 1;
                    // Make sure the slow path, not the stale fast-path entry, answers next.
                    self.inner
                        .registry
                        .remove_if(&account_id, |_, a| a.get_id() == actor.get_id());
                }
                Err(_) => {
                    return Err(FleetError::unavailable(
                        account_id,
                        UnavailableKind::ActorStopped,
                        "the account actor stopped before the request reached it",
                    ))
                }
            }
        }
    }

    /// Starts the account's actor unless it runs; answers once it is up.
    pub async fn ensure_started(&self, account_id: AccountId) -> Result<(), FleetError> {
        self.bounded(account_id, self.inner.settings.call_timeout, async {
            self.resolve(account_id).await.map(|_| ())
        })
        .await
    }

    /// Stops the account's actor (it persists first). Not restarted until the next call or start.
    pub async fn stop(&self, account_id: AccountId) -> Result<(), FleetError> {
        self.stop_with_reason(account_id, "stopped").await
    }

    /// Stops the account's actor with a reason the actor sees (e.g. `deleted`).
    pub async fn stop_with_reason(
        &self,
        account_id: AccountId,
        reason: &str,
    ) -> Result<(), FleetError> {
        let supervisor = self.supervisor(account_id).clone();
        let reason = reason.to_string();
        // A stop is bounded by the kill that follows the shutdown timeout; a little on top.
        let limit = self.inner.settings.shutdown_timeout + Duration::from_secs(5);
        self.bounded(account_id, limit, async move {
            ask(&supervisor, account_id, |reply| SupervisorMsg::Stop {
                account_id,
                reason,
                reply,
            })
            .await?
        })
        .await
    }

    /// The account was deleted (its row is gone): stops its actor and drops its metric series,
    /// so a fleet with churn does not keep series of accounts that no longer exist.
    pub async fn remove(&self, account_id: AccountId) -> Result<(), FleetError> {
        let stopped = self.stop_with_reason(account_id, "deleted").await;
        self.inner.factory.deleted(account_id);
        self.inner.metrics.forget(account_id);
        stopped
    }

    /// An operator's restart in place; also lifts a quarantine and resets the restart budget.
    /// Answers once the new actor is up.
    pub async fn restart(&self, account_id: AccountId) -> Result<(), FleetError> {
        self.check_accepting(account_id)?;
        let supervisor = self.supervisor(account_id).clone();
        let limit = self.inner.settings.call_timeout + self.inner.settings.shutdown_timeout;
        self.bounded(account_id, limit, async move {
            ask(&supervisor, account_id, |reply| SupervisorMsg::Restart {
                account_id,
                reply,
            })
            .await?
        })
        .await
    }

    /// Makes the account's running actor panic (tests, chaos drills).
    pub fn crash(&self, account_id: AccountId) -> Result<(), FleetError> {
        let actor = self
            .running(account_id)
            .ok_or_else(|| not_running(account_id))?;
        actor
            .send_message(AccountMsg::Crash)
            .map_err(|_| not_running(account_id))
    }

    /// The watchdog hook: the account's actor is known to be silent or dead; restart it in place
    /// (reason `watchdog`). Counts toward the restart intensity like a failure.
    pub fn report_silent(&self, account_id: AccountId, why: &str) {
        let _ = self.supervisor(account_id).cast(SupervisorMsg::Watchdog {
            account_id,
            expected: None,
            why: why.to_string(),
        });
    }

    /// The id of the account's live actor, if it has one (a restart changes it).
    pub fn actor_id(&self, account_id: AccountId) -> Option<ActorId> {
        self.running(account_id).map(|a| a.get_id())
    }

    /// Live account actors.
    pub fn actor_count(&self) -> usize {
        self.inner
            .registry
            .iter()
            .filter(|entry| is_alive(entry.value()))
            .count()
    }

    pub async fn supervisor_stats(&self) -> FleetStats {
        let mut total = FleetStats::default();
        for supervisor in &self.inner.supervisors {
            let answer = supervisor
                .call(SupervisorMsg::Stats, Some(Duration::from_secs(2)))
                .await;
            match answer {
                Ok(CallResult::Success(SupervisorStats {
                    children,
                    starting,
                    backing_off,
                    quarantined,
                    waiting_for_store,
                    waiting_for_vault,
                    restarts,
                })) => {
                    total.supervisors += 1;
                    total.waiting_for_store += waiting_for_store;
                    total.waiting_for_vault += waiting_for_vault;
                    total.children += children;
                    total.starting += starting;
                    total.backing_off += backing_off;
                    total.quarantined += quarantined;
                    total.restarts += restarts;
                }
                _ => total.supervisors_unreachable += 1,
            }
        }
        total
    }

    /// Waits until the start-up pass over persisted accounts has handed every one to its
    /// supervisor (their actors may still be starting).
    pub async fn startup_finished(&self) {
        let mut done = self.inner.startup_done.clone();
        let _ = done.wait_for(|finished| *finished).await;
    }

    /// Stops accepting requests, stops every actor (each persists its session in `post_stop`;
    /// one that takes longer than the shutdown timeout is killed) and the supervisors, then
    /// returns. Calling it again does nothing.
    pub async fn shutdown(&self) {
        if !self.inner.accepting.swap(false, Ordering::SeqCst) {
            return;
        }
        if let Some(startup) = self.lock_startup().take() {
            startup.abort();
        }
        let limit = self.inner.settings.shutdown_timeout + Duration::from_secs(5);
        let stops = self.inner.supervisors.iter().map(|supervisor| async move {
            let _ = supervisor.call(SupervisorMsg::Shutdown, Some(limit)).await;
            // Anything still linked dies with its supervisor.
            if supervisor
                .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
                .await
                .is_err()
            {
                supervisor.kill();
            }
        });
        futures::future::join_all(stops).await;
        self.inner.registry.clear();
        tracing::info!("fleet stopped");
    }

    async fn start_persisted(&self, store: Arc<dyn Store>) -> anyhow::Result<()> {
        // At least 1 ns: a zero period would make the interval timer panic.
        let period = (Duration::from_secs(1) / self.inner.settings.start_rate.get())
            .max(Duration::from_nanos(1));
        let mut pace = tokio::time::interval(period);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut after_id = None;
        let mut started = 0usize;
        let mut resting = 0usize;
        loop {
            let page = store
                .list_accounts(AccountFilter {
                    after_id,
                    limit: STARTUP_PAGE,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("listing accounts after {after_id:?}: {e}"))?;
            let Some(last) = page.last() else { break };
            after_id = Some(last.id);
            for account in page.iter() {
                if !self.inner.accepting.load(Ordering::SeqCst) {
                    return Ok(());
                }
                // A receiving account is started even if it hibernated before it was switched
                // to receive: it never rests.
                let hibernated = account.state == AccountState::Hibernated
                    && self.inner.settings.hibernation
                    && !account.receives();
                if hibernated || !wants_start(account.state) {
                    // No actor, no connection (a hibernated account's first call starts it), and
                    // no pacing, so a fleet of mostly resting accounts is up at once; it still
                    // counts in the state gauges.
                    self.inner.factory.resting(account.id, account.state);
                    resting += usize::from(hibernated);
                    continue;
                }
                pace.tick().await;
                let _ = self.supervisor(account.id).cast(SupervisorMsg::Start {
                    account_id: account.id,
                });
                started += 1;
            }
            if page.len() < STARTUP_PAGE as usize {
                break;
            }
        }
        tracing::info!(
            started,
            hibernated = resting,
            "persisted accounts handed to their supervisors"
        );
        Ok(())
    }

    async fn resolve(&self, account_id: AccountId) -> Result<ActorRef<AccountMsg>, FleetError> {
        self.check_accepting(account_id)?;
        if let Some(actor) = self.running(account_id) {
            return Ok(actor);
        }
        let supervisor = self.supervisor(account_id);
        ask(supervisor, account_id, |reply| SupervisorMsg::Resolve {
            account_id,
            reply,
        })
        .await?
    }

    /// The fast path: the registry's entry, if its actor is still alive.
    fn running(&self, account_id: AccountId) -> Option<ActorRef<AccountMsg>> {
        let actor = self.inner.registry.get(&account_id)?.value().clone();
        is_alive(&actor).then_some(actor)
    }

    fn supervisor(&self, account_id: AccountId) -> &ActorRef<SupervisorMsg> {
        let index = account_id.rem_euclid(self.inner.supervisors.len() as i64) as usize;
        &self.inner.supervisors[index]
    }

    fn check_accepting(&self, account_id: AccountId) -> Result<(), FleetError> {
        if self.inner.accepting.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(FleetError::unavailable(
                account_id,
                UnavailableKind::ShuttingDown,
                "the fleet is shutting down",
            ))
        }
    }

    async fn bounded<T>(
        &self,
        account_id: AccountId,
        limit: Duration,
        work: impl std::future::Future<Output = Result<T, FleetError>>,
    ) -> Result<T, FleetError> {
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(FleetError::unavailable(
                account_id,
                UnavailableKind::Timeout,
                format!("no answer within {} s", limit.as_secs_f32()),
            ))
        })
    }

    fn lock_startup(&self) -> std::sync::MutexGuard<'_, Option<JoinHandle<()>>> {
        self.inner.startup.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Authorized accounts and pending logins come back with the fleet; the pending login lives in
/// the persisted session, so its actor can finish it.
fn wants_start(state: AccountState) -> bool {
    state.is_authorized()
        || matches!(
            state,
            AccountState::AwaitingCode | AccountState::AwaitingPassword | AccountState::AwaitingQr
        )
}

fn not_running(account_id: AccountId) -> FleetError {
    FleetError::unavailable(
        account_id,
        UnavailableKind::ActorStopped,
        "the account has no running actor",
    )
}

/// One request to a supervisor; its failure to answer becomes `Unavailable`.
async fn ask<T: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg>,
    account_id: AccountId,
    msg: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
) -> Result<T, FleetError> {
    match supervisor.call(msg, None).await {
        Ok(CallResult::Success(answer)) => Ok(answer),
        _ => Err(FleetError::unavailable(
            account_id,
            UnavailableKind::Internal,
            "the account's supervisor is not running",
        )),
    }
}
