//! One supervisor ("shard"): it owns the accounts whose id maps to it. Every start, restart and
//! stop of such an account goes through this actor's mailbox, one message at a time, which is what
//! makes "at most one actor per account id" hold; it is also the only writer of these accounts'
//! entries in the shared registry map.
//!
//! Nothing slow happens in a handler: spawning (the child's `pre_start`), store writes and
//! liveness checks run in tasks that report back by message, and restart delays are
//! `send_after` timers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use rand::Rng;
use tgfleet_actors::{AccountMsg, Command, Dependency, DependencyDown, Status};
use tgfleet_persistence::{AccountId, AccountState, Store, StoreError};
use tokio::time::Instant;

use crate::child::{ChildFactory, ChildSpec};
use crate::error::{FleetError, UnavailableKind};
use crate::journal::{self, StoreWriter};
use crate::metrics::{RestartReason, SupervisionMetrics};
use crate::policy::{backoff_delay, RestartHistory};
use crate::settings::SupervisionSettings;

/// A child that stops itself with this reason (or fails with an error starting with it) asks to
/// be restarted in place as silent: the hook for the actor's own watchdog.
pub const WATCHDOG_STOP_REASON: &str = "watchdog";

/// ractor's exit reason for an actor that drained its mailbox; account actors drain themselves
/// only to hibernate.
const DRAINED_STOP_REASON: &str = "Drained";

/// How many liveness checks of one supervisor are in flight at once: enough to check thousands of
/// idle actors within a second or two, few enough not to flood the runtime with timers.
const LIVENESS_CONCURRENCY: usize = 64;

pub(crate) type Registry = DashMap<AccountId, ActorRef<AccountMsg>>;

/// What one supervisor shares with the fleet handle.
pub(crate) struct ShardContext {
    /// Prefix of child names, unique per fleet in the process (ractor's registry is global).
    pub(crate) name_prefix: String,
    pub(crate) settings: SupervisionSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) factory: Arc<dyn ChildFactory>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) metrics: SupervisionMetrics,
}

pub(crate) struct Shard {
    pub(crate) ctx: Arc<ShardContext>,
}

/// Counts of one supervisor, summed up by `Fleet::supervisor_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Live children (running, or being stopped or restarted).
    pub children: usize,
    pub starting: usize,
    /// Children that failed and wait out their restart backoff.
    pub backing_off: usize,
    pub quarantined: usize,
    /// Accounts whose start waits for the store to answer again (not counted as failures).
    pub waiting_for_store: usize,
    /// Accounts whose start waits for Vault to answer again (not counted as failures).
    pub waiting_for_vault: usize,
    /// Restarts in place since the fleet started.
    pub restarts: u64,
}

pub(crate) type ActorReply = RpcReplyPort<Result<ActorRef<AccountMsg>, FleetError>>;
pub(crate) type DoneReply = RpcReplyPort<Result<(), FleetError>>;

pub(crate) enum ShardMsg {
    /// The live actor of an account, started first if it has none.
    Resolve {
        account_id: AccountId,
        reply: ActorReply,
    },
    /// Start without waiting (fleet start-up).
    Start {
        account_id: AccountId,
    },
    Stop {
        account_id: AccountId,
        reason: String,
        reply: DoneReply,
    },
    /// An operator's restart in place; also lifts a quarantine. Answers once the new actor runs.
    Restart {
        account_id: AccountId,
        reply: DoneReply,
    },
    /// Restart a silent actor (`expected`: only if it is still this one).
    Watchdog {
        account_id: AccountId,
        expected: Option<ActorId>,
        why: String,
    },
    /// A spawn task finished.
    Spawned {
        account_id: AccountId,
        generation: u64,
        result: Result<ActorRef<AccountMsg>, StartError>,
    },
    /// A restart backoff ran out.
    RestartDue {
        account_id: AccountId,
        generation: u64,
    },
    /// A requested stop took too long: kill the actor.
    KillIfStuck {
        account_id: AccountId,
        generation: u64,
    },
    LivenessTick,
    LivenessDone,
    Stats(RpcReplyPort<ShardStats>),
    /// Stop every child (they persist in `post_stop`) and answer when none is left.
    Shutdown(RpcReplyPort<()>),
}

#[derive(Debug)]
pub(crate) enum StartError {
    NotFound,
    Quarantined,
    /// The store or Vault did not answer: retried with backoff, never counted as a failure.
    Dependency(DependencyDown),
    /// The child's `pre_start` failed: counts as a failure.
    Spawn(String),
}

/// Whoever waits for an account's actor to be up.
enum Waiter {
    Actor(ActorReply),
    Done(DoneReply),
}

impl Waiter {
    fn answer(self, result: Result<ActorRef<AccountMsg>, FleetError>) {
        match self {
            Self::Actor(port) => {
                let _ = port.send(result);
            }
            Self::Done(port) => {
                let _ = port.send(result.map(|_| ()));
            }
        }
    }
}

fn answer_all(waiters: Vec<Waiter>, result: Result<ActorRef<AccountMsg>, FleetError>) {
    for waiter in waiters {
        waiter.answer(result.clone());
    }
}

enum Phase {
    /// A spawn task is in flight.
    Starting {
        waiters: Vec<Waiter>,
        /// Stop requests that came in meanwhile: the new actor is stopped as soon as it is up.
        stop_waiters: Vec<DoneReply>,
    },
    Running {
        actor: ActorRef<AccountMsg>,
    },
    /// The running actor is ending on its own (hibernating, or failing) and calls came in
    /// meanwhile: its exit decides what they get — a new actor at once if it hibernated or
    /// stopped, the restart policy if it failed.
    Exiting {
        actor: ActorRef<AccountMsg>,
        waiters: Vec<Waiter>,
    },
    /// The actor was asked to go (operator restart) or killed (watchdog); on its exit it is
    /// started again.
    Restarting {
        actor: ActorRef<AccountMsg>,
        reason: RestartReason,
        waiters: Vec<Waiter>,
    },
    Stopping {
        actor: ActorRef<AccountMsg>,
        waiters: Vec<DoneReply>,
    },
    Backoff {
        until: Instant,
        /// `Some`: not a failure of the account but an outage of what it needs; the wait grows
        /// with `Slot::dependency_attempts` and never leads to quarantine.
        waiting_for: Option<Dependency>,
    },
    Quarantined,
}

struct Slot {
    /// Generation of the newest actor spawned for this account; part of its name, so events of
    /// older actors are recognised and ignored.
    generation: u64,
    phase: Phase,
    history: RestartHistory,
    /// Starts in a row that found a dependency down; reset once an actor runs.
    dependency_attempts: u32,
}

pub(crate) struct ShardState {
    slots: HashMap<AccountId, Slot>,
    spawner: Spawner,
    shutting_down: bool,
    shutdown_waiters: Vec<RpcReplyPort<()>>,
    liveness_running: bool,
    restarts: u64,
}

/// Starts spawn tasks. Kept apart from `slots` so a slot can be changed while spawning.
struct Spawner {
    /// Generations are unique per supervisor, never per account only: a removed and re-created
    /// slot must not reuse a name whose late events might still be in flight.
    next_generation: u64,
    writer: StoreWriter,
}

/// How a child ended.
enum Exit {
    Failed(String),
    Stopped(Option<String>),
}

pub(crate) fn child_name(prefix: &str, account_id: AccountId, generation: u64) -> String {
    format!("{prefix}/account/{account_id}/{generation}")
}

/// The account id and generation of one of our children, from its name.
fn parse_child_name(prefix: &str, name: &str) -> Option<(AccountId, u64)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix("/account/")?;
    let (id, generation) = rest.split_once('/')?;
    Some((id.parse().ok()?, generation.parse().ok()?))
}

pub(crate) fn is_alive(actor: &ActorRef<AccountMsg>) -> bool {
    matches!(
        actor.get_status(),
        ActorStatus::Starting | ActorStatus::Running | ActorStatus::Upgrading
    )
}

fn retry_after(until: Instant) -> Duration {
    until.saturating_duration_since(Instant::now())
}

impl Actor for Shard {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<ShardMsg>,
        _args: (),
    ) -> Result<ShardState, ActorProcessingErr> {
        // A zero period would make the interval timer panic; treat it as "off".
        if let Some(period) = self.ctx.settings.liveness_interval.filter(|p| !p.is_zero()) {
            myself.send_interval(period, || ShardMsg::LivenessTick);
        }
        Ok(ShardState {
            slots: HashMap::new(),
            spawner: Spawner {
                next_generation: 0,
                writer: StoreWriter::spawn(),
            },
            shutting_down: false,
            shutdown_waiters: Vec::new(),
            liveness_running: false,
            restarts: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ShardMsg>,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        // Children die with their supervisor; their entries must not outlive them.
        for account_id in state.slots.keys() {
            self.ctx.registry.remove(account_id);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ShardMsg>,
        message: ShardMsg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ShardMsg::Resolve { account_id, reply } => {
                self.resolve(&myself, state, account_id, Some(Waiter::Actor(reply)))
            }
            ShardMsg::Start { account_id } => self.resolve(&myself, state, account_id, None),
            ShardMsg::Stop {
                account_id,
                reason,
                reply,
            } => self.stop(&myself, state, account_id, reason, reply),
            ShardMsg::Restart { account_id, reply } => {
                self.operator_restart(&myself, state, account_id, reply)
            }
            ShardMsg::Watchdog {
                account_id,
                expected,
                why,
            } => self.watchdog(state, account_id, expected, why),
            ShardMsg::Spawned {
                account_id,
                generation,
                result,
            } => self.spawned(&myself, state, account_id, generation, result),
            ShardMsg::RestartDue {
                account_id,
                generation,
            } => self.restart_due(&myself, state, account_id, generation),
            ShardMsg::KillIfStuck {
                account_id,
                generation,
            } => {
                if let Some(slot) = state.slots.get(&account_id) {
                    if slot.generation == generation {
                        if let Phase::Stopping { actor, .. } | Phase::Restarting { actor, .. } =
                            &slot.phase
                        {
                            tracing::warn!(
                                account_id,
                                "account actor did not stop in time; killing it"
                            );
                            actor.kill();
                        }
                    }
                }
            }
            ShardMsg::LivenessTick => self.liveness_tick(&myself, state),
            ShardMsg::LivenessDone => state.liveness_running = false,
            ShardMsg::Stats(reply) => {
                let _ = reply.send(stats(state));
            }
            ShardMsg::Shutdown(reply) => self.shutdown(&myself, state, reply),
        }
        self.check_shutdown_done(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ShardMsg>,
        event: SupervisionEvent,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden because the default stops the supervisor (and so every sibling) on any
        // child's exit.
        let (cell, exit) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Exit::Failed(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, Exit::Stopped(reason)),
            _ => return Ok(()),
        };
        self.child_exited(&myself, state, &cell, exit);
        self.check_shutdown_done(state);
        Ok(())
    }
}

impl Shard {
    fn settings(&self) -> &SupervisionSettings {
        &self.ctx.settings
    }

    fn resolve(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        waiter: Option<Waiter>,
    ) {
        if state.shutting_down {
            if let Some(w) = waiter {
                w.answer(Err(shutting_down(account_id)));
            }
            return;
        }
        let Some(slot) = state.slots.get_mut(&account_id) else {
            let waiters = waiter.into_iter().collect();
            self.start_new(myself, state, account_id, waiters, false);
            return;
        };
        let Some(waiter) = waiter else { return };
        match &mut slot.phase {
            Phase::Running { actor } if is_alive(actor) => waiter.answer(Ok(actor.clone())),
            // Its exit event is on the way; the call waits for what follows it.
            Phase::Running { actor } => {
                slot.phase = Phase::Exiting {
                    actor: actor.clone(),
                    waiters: vec![waiter],
                }
            }
            Phase::Starting { waiters, .. }
            | Phase::Restarting { waiters, .. }
            | Phase::Exiting { waiters, .. } => waiters.push(waiter),
            Phase::Stopping { .. } => waiter.answer(Err(FleetError::unavailable(
                account_id,
                UnavailableKind::Stopping,
                "the account actor is being stopped",
            ))),
            Phase::Backoff {
                until,
                waiting_for: None,
            } => waiter.answer(Err(backing_off(account_id, *until))),
            Phase::Backoff {
                until,
                waiting_for: Some(dependency),
            } => waiter.answer(Err(dependency_down(account_id, *dependency, *until))),
            Phase::Quarantined => waiter.answer(Err(self.quarantined(account_id))),
        }
    }

    /// Creates the slot of an account that has none and starts its actor.
    fn start_new(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        waiters: Vec<Waiter>,
        lift_quarantine: bool,
    ) {
        let generation = self.spawn_child(myself, &mut state.spawner, account_id, lift_quarantine);
        state.slots.insert(
            account_id,
            Slot {
                generation,
                phase: Phase::Starting {
                    waiters,
                    stop_waiters: Vec::new(),
                },
                history: RestartHistory::default(),
                dependency_attempts: 0,
            },
        );
    }

    /// Spawns a new actor for an account that keeps its slot (restart history included) and puts
    /// the slot into `Starting` with `waiters`.
    fn respawn(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        waiters: Vec<Waiter>,
        lift_quarantine: bool,
    ) {
        let generation = self.spawn_child(myself, &mut state.spawner, account_id, lift_quarantine);
        if let Some(slot) = state.slots.get_mut(&account_id) {
            slot.generation = generation;
            slot.phase = Phase::Starting {
                waiters,
                stop_waiters: Vec::new(),
            };
        }
    }

    /// Starts a task that spawns the account's actor and reports `Spawned`. Returns the new
    /// generation; the caller puts the slot into `Starting` with it.
    fn spawn_child(
        &self,
        myself: &ActorRef<ShardMsg>,
        spawner: &mut Spawner,
        account_id: AccountId,
        lift_quarantine: bool,
    ) -> u64 {
        let generation = spawner.next_generation;
        spawner.next_generation += 1;
        let spec = ChildSpec {
            account_id,
            name: child_name(&self.ctx.name_prefix, account_id, generation),
            supervisor: myself.get_cell(),
        };
        let ctx = self.ctx.clone();
        let writer = spawner.writer.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = start_child(&ctx, &writer, spec, lift_quarantine).await;
            if let Err(ractor::MessagingErr::SendErr(ShardMsg::Spawned {
                result: Ok(orphan),
                ..
            })) = myself.cast(ShardMsg::Spawned {
                account_id,
                generation,
                result,
            }) {
                // The supervisor is gone; an actor nobody routes to must not live on.
                orphan.stop(Some("supervisor gone".into()));
            }
        });
        generation
    }

    fn spawned(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        generation: u64,
        result: Result<ActorRef<AccountMsg>, StartError>,
    ) {
        let current = state.slots.get(&account_id).is_some_and(|s| {
            s.generation == generation && matches!(s.phase, Phase::Starting { .. })
        });
        if !current {
            // It died before we heard of it (its exit was handled already), or it was superseded:
            // either way nothing may route to it.
            if let Ok(actor) = result {
                actor.stop(Some("superseded".into()));
            }
            return;
        }
        let Some(slot) = state.slots.get_mut(&account_id) else {
            return;
        };
        let Phase::Starting {
            waiters,
            stop_waiters,
        } = std::mem::replace(&mut slot.phase, Phase::Quarantined)
        else {
            return;
        };
        match result {
            Ok(actor) => {
                if state.shutting_down || !stop_waiters.is_empty() {
                    let kind = if state.shutting_down {
                        UnavailableKind::ShuttingDown
                    } else {
                        UnavailableKind::Stopping
                    };
                    answer_all(
                        waiters,
                        Err(FleetError::unavailable(
                            account_id,
                            kind,
                            "the account actor is being stopped",
                        )),
                    );
                    self.begin_stop(
                        myself,
                        account_id,
                        slot,
                        actor,
                        "stopped".into(),
                        stop_waiters,
                    );
                    return;
                }
                tracing::debug!(account_id, generation, "account actor up");
                if slot.dependency_attempts > 0 {
                    tracing::info!(
                        account_id,
                        "account started again after its dependency recovered"
                    );
                    slot.dependency_attempts = 0;
                }
                self.ctx.registry.insert(account_id, actor.clone());
                slot.phase = Phase::Running {
                    actor: actor.clone(),
                };
                answer_all(waiters, Ok(actor));
            }
            Err(StartError::NotFound) => {
                state.slots.remove(&account_id);
                answer_all(waiters, Err(FleetError::NotFound(account_id)));
                answer_stops(stop_waiters);
            }
            Err(StartError::Quarantined) => {
                answer_all(waiters, Err(self.quarantined(account_id)));
                if stop_waiters.is_empty() {
                    slot.phase = Phase::Quarantined;
                } else {
                    state.slots.remove(&account_id);
                    answer_stops(stop_waiters);
                }
            }
            Err(StartError::Dependency(down)) => {
                if state.shutting_down || !stop_waiters.is_empty() {
                    state.slots.remove(&account_id);
                    answer_all(waiters, Err(shutting_down(account_id)));
                    answer_stops(stop_waiters);
                    return;
                }
                self.wait_for_dependency(myself, state, account_id, down, waiters);
            }
            Err(StartError::Spawn(message)) => {
                if state.shutting_down || !stop_waiters.is_empty() {
                    state.slots.remove(&account_id);
                    answer_all(waiters, Err(shutting_down(account_id)));
                    answer_stops(stop_waiters);
                    return;
                }
                tracing::warn!(account_id, error = %message, "account actor failed to start");
                self.failed(
                    myself,
                    state,
                    account_id,
                    RestartReason::Failed,
                    message,
                    waiters,
                );
            }
        }
    }

    fn child_exited(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        cell: &ActorCell,
        exit: Exit,
    ) {
        let Some((account_id, generation)) = cell
            .get_name()
            .and_then(|name| parse_child_name(&self.ctx.name_prefix, &name))
        else {
            tracing::warn!(actor = %cell.get_id(), "exit of an unknown child ignored");
            return;
        };
        // Whatever happens next, this actor is never routed to again.
        self.ctx
            .registry
            .remove_if(&account_id, |_, actor| actor.get_id() == cell.get_id());
        let Some(slot) = state.slots.get_mut(&account_id) else {
            return;
        };
        if slot.generation != generation {
            return;
        }
        let phase = std::mem::replace(&mut slot.phase, Phase::Quarantined);
        let (waiters, restart_reason) = match phase {
            Phase::Starting {
                waiters,
                stop_waiters,
                ..
            } => {
                // Died before its `Spawned` report arrived; that report will be ignored.
                if state.shutting_down || !stop_waiters.is_empty() {
                    state.slots.remove(&account_id);
                    answer_all(waiters, Err(shutting_down(account_id)));
                    answer_stops(stop_waiters);
                    return;
                }
                (waiters, None)
            }
            Phase::Running { .. } => (Vec::new(), None),
            Phase::Exiting { waiters, .. } => (waiters, None),
            Phase::Restarting {
                reason, waiters, ..
            } => (waiters, Some(reason)),
            Phase::Stopping { waiters, .. } => {
                state.slots.remove(&account_id);
                answer_stops(waiters);
                return;
            }
            phase @ (Phase::Backoff { .. } | Phase::Quarantined) => {
                slot.phase = phase;
                return;
            }
        };
        if state.shutting_down {
            state.slots.remove(&account_id);
            answer_all(waiters, Err(shutting_down(account_id)));
            return;
        }
        match (restart_reason, exit) {
            (Some(RestartReason::Operator), _) => {
                // The operator's restart: back at once, no backoff, no intensity.
                self.respawn(myself, state, account_id, waiters, false);
            }
            (Some(reason), exit) => {
                let detail = match exit {
                    Exit::Failed(e) => e,
                    Exit::Stopped(r) => r.unwrap_or_default(),
                };
                self.failed(myself, state, account_id, reason, detail, waiters);
            }
            (None, Exit::Failed(error)) => {
                let reason = if error.starts_with(WATCHDOG_STOP_REASON) {
                    RestartReason::Watchdog
                } else {
                    RestartReason::Failed
                };
                tracing::warn!(account_id, %error, "account actor failed");
                self.failed(myself, state, account_id, reason, error, waiters);
            }
            (None, Exit::Stopped(Some(reason))) if reason == WATCHDOG_STOP_REASON => {
                self.failed(
                    myself,
                    state,
                    account_id,
                    RestartReason::Watchdog,
                    reason,
                    waiters,
                );
            }
            (None, Exit::Stopped(reason)) if !waiters.is_empty() => {
                // Calls arrived while it ended on its own: a new actor answers them, in whatever
                // state the account was left (a hibernated one reconnects, a logged-out one
                // says so) — better than an error for a call that did not run.
                tracing::debug!(
                    account_id,
                    reason = reason.as_deref().unwrap_or(""),
                    "account actor ended with calls waiting; starting a new one"
                );
                self.respawn(myself, state, account_id, waiters, false);
            }
            (None, Exit::Stopped(reason)) => {
                // A normal stop is the actor's own decision (hibernated, unauthorized, banned,
                // logged out…): the account rests in that state and is not restarted.
                if reason.as_deref() == Some(DRAINED_STOP_REASON) {
                    tracing::debug!(account_id, "account actor hibernated");
                } else {
                    tracing::info!(
                        account_id,
                        reason = reason.as_deref().unwrap_or(""),
                        "account actor stopped"
                    );
                }
                state.slots.remove(&account_id);
                answer_all(
                    waiters,
                    Err(FleetError::unavailable(
                        account_id,
                        UnavailableKind::ActorStopped,
                        format!(
                            "the account actor stopped ({})",
                            reason.as_deref().unwrap_or("no reason given")
                        ),
                    )),
                );
            }
        }
    }

    /// A failure (crash, failed start, watchdog): restart after a backoff, or quarantine once the
    /// restart intensity is exceeded.
    fn failed(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        reason: RestartReason,
        detail: String,
        waiters: Vec<Waiter>,
    ) {
        let settings = self.settings();
        let Some(slot) = state.slots.get_mut(&account_id) else {
            return;
        };
        let now = Instant::now();
        match slot
            .history
            .admit(now, settings.restart_max, settings.restart_window)
        {
            None => {
                tracing::error!(
                    account_id,
                    "restart intensity exceeded; account quarantined"
                );
                slot.phase = Phase::Quarantined;
                answer_all(waiters, Err(self.quarantined(account_id)));
                state.spawner.writer.submit(journal::quarantine(
                    self.ctx.store.clone(),
                    account_id,
                    settings.restart_max,
                    settings.restart_window,
                    detail,
                ));
            }
            Some(attempt) => {
                let jitter: f64 = rand::thread_rng().gen();
                let delay =
                    backoff_delay(attempt, settings.backoff_base, settings.backoff_max, jitter);
                // A misconfigured huge backoff must not overflow the clock.
                let until = now.checked_add(delay).unwrap_or(now);
                slot.phase = Phase::Backoff {
                    until,
                    waiting_for: None,
                };
                let generation = slot.generation;
                tracing::warn!(
                    account_id,
                    reason = reason.as_str(),
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "account actor restarts after a backoff"
                );
                myself.send_after(delay, move || ShardMsg::RestartDue {
                    account_id,
                    generation,
                });
                answer_all(waiters, Err(backing_off(account_id, until)));
                self.count_restart(state, account_id, reason, Some(attempt), delay, detail);
            }
        }
    }

    /// The store or Vault is down: try again after a growing backoff, without touching the
    /// restart history (an outage of ours is not the account's fault and must not quarantine it).
    fn wait_for_dependency(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        down: DependencyDown,
        waiters: Vec<Waiter>,
    ) {
        let settings = self.settings();
        let Some(slot) = state.slots.get_mut(&account_id) else {
            return;
        };
        slot.dependency_attempts = slot.dependency_attempts.saturating_add(1);
        let attempt = slot.dependency_attempts;
        let jitter: f64 = rand::thread_rng().gen();
        // Attempt 1 of `backoff_delay` is immediate, which would spin on an outage.
        let delay = backoff_delay(
            attempt.saturating_add(1),
            settings.backoff_base,
            settings.backoff_max,
            jitter,
        );
        let now = Instant::now();
        let until = now.checked_add(delay).unwrap_or(now);
        slot.phase = Phase::Backoff {
            until,
            waiting_for: Some(down.dependency),
        };
        let generation = slot.generation;
        myself.send_after(delay, move || ShardMsg::RestartDue {
            account_id,
            generation,
        });
        answer_all(
            waiters,
            Err(dependency_down(account_id, down.dependency, until)),
        );
        self.ctx.metrics.count_dependency_wait(down.dependency);
        if attempt == 1 {
            tracing::warn!(
                account_id,
                dependency = down.dependency.as_str(),
                error = %down.message,
                "account waits for its dependency; retrying with backoff"
            );
            if down.dependency != Dependency::Store {
                // The store answers, so the account can say why it is not running.
                state.spawner.writer.submit(journal::dependency_down(
                    self.ctx.store.clone(),
                    account_id,
                    down,
                ));
            }
        }
    }

    fn count_restart(
        &self,
        state: &mut ShardState,
        account_id: AccountId,
        reason: RestartReason,
        attempt: Option<u32>,
        delay: Duration,
        detail: String,
    ) {
        state.restarts += 1;
        self.ctx.metrics.count_restart(account_id, reason);
        state.spawner.writer.submit(journal::record_restart(
            self.ctx.store.clone(),
            account_id,
            reason,
            attempt,
            delay,
            detail,
        ));
    }

    fn restart_due(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        generation: u64,
    ) {
        if state.shutting_down {
            return;
        }
        let due = state.slots.get(&account_id).is_some_and(|slot| {
            slot.generation == generation && matches!(slot.phase, Phase::Backoff { .. })
        });
        if !due {
            // An operator restart or a stop came first.
            return;
        }
        self.respawn(myself, state, account_id, Vec::new(), false);
    }

    fn operator_restart(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        reply: DoneReply,
    ) {
        if state.shutting_down {
            let _ = reply.send(Err(shutting_down(account_id)));
            return;
        }
        let Some(slot) = state.slots.get_mut(&account_id) else {
            // Not running here; the store may still say quarantined (e.g. after a fleet restart).
            self.start_new(myself, state, account_id, vec![Waiter::Done(reply)], true);
            return;
        };
        // An operator's restart grants a fresh restart budget.
        slot.history.clear();
        match &mut slot.phase {
            Phase::Running { actor } => {
                let actor = actor.clone();
                let generation = slot.generation;
                // New calls wait for the new actor instead of reaching the one going away.
                self.ctx
                    .registry
                    .remove_if(&account_id, |_, a| a.get_id() == actor.get_id());
                actor.stop(Some("operator restart".into()));
                slot.phase = Phase::Restarting {
                    actor,
                    reason: RestartReason::Operator,
                    waiters: vec![Waiter::Done(reply)],
                };
                self.kill_later(myself, account_id, generation);
                self.count_restart(
                    state,
                    account_id,
                    RestartReason::Operator,
                    None,
                    Duration::ZERO,
                    String::new(),
                );
            }
            Phase::Starting { waiters, .. }
            | Phase::Restarting { waiters, .. }
            | Phase::Exiting { waiters, .. } => waiters.push(Waiter::Done(reply)),
            Phase::Stopping { .. } => {
                let _ = reply.send(Err(FleetError::unavailable(
                    account_id,
                    UnavailableKind::Stopping,
                    "the account actor is being stopped",
                )));
            }
            Phase::Backoff { .. } | Phase::Quarantined => {
                let lift = matches!(slot.phase, Phase::Quarantined);
                self.respawn(myself, state, account_id, vec![Waiter::Done(reply)], lift);
                tracing::info!(account_id, lift, "operator restart");
            }
        }
    }

    fn watchdog(
        &self,
        state: &mut ShardState,
        account_id: AccountId,
        expected: Option<ActorId>,
        why: String,
    ) {
        if state.shutting_down {
            return;
        }
        let Some(slot) = state.slots.get_mut(&account_id) else {
            return;
        };
        let Phase::Running { actor } = &slot.phase else {
            return;
        };
        if expected.is_some_and(|id| id != actor.get_id()) {
            return;
        }
        tracing::warn!(account_id, %why, "account actor is silent; restarting it");
        let actor = actor.clone();
        // Killed, not stopped: a silent actor may be stuck inside a handler, and a stop would
        // queue behind it. Its state was persisted after its last change.
        actor.kill();
        self.ctx
            .registry
            .remove_if(&account_id, |_, a| a.get_id() == actor.get_id());
        slot.phase = Phase::Restarting {
            actor,
            reason: RestartReason::Watchdog,
            waiters: Vec::new(),
        };
    }

    fn stop(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        account_id: AccountId,
        reason: String,
        reply: DoneReply,
    ) {
        let Some(slot) = state.slots.get_mut(&account_id) else {
            let _ = reply.send(Ok(()));
            return;
        };
        match &mut slot.phase {
            Phase::Running { actor } => {
                let actor = actor.clone();
                self.begin_stop(myself, account_id, slot, actor, reason, vec![reply]);
            }
            Phase::Starting { stop_waiters, .. } => stop_waiters.push(reply),
            Phase::Stopping { waiters, .. } => waiters.push(reply),
            Phase::Exiting { .. } | Phase::Restarting { .. } => {
                let (actor, waiters) = match std::mem::replace(&mut slot.phase, Phase::Quarantined)
                {
                    Phase::Exiting { actor, waiters }
                    | Phase::Restarting { actor, waiters, .. } => (actor, waiters),
                    _ => return,
                };
                answer_all(
                    waiters,
                    Err(FleetError::unavailable(
                        account_id,
                        UnavailableKind::Stopping,
                        "the account actor is being stopped",
                    )),
                );
                // Already going (asked to stop, killed, or ending on its own); its exit ends
                // the stop.
                slot.phase = Phase::Stopping {
                    actor,
                    waiters: vec![reply],
                };
            }
            Phase::Backoff { .. } | Phase::Quarantined => {
                state.slots.remove(&account_id);
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn begin_stop(
        &self,
        myself: &ActorRef<ShardMsg>,
        account_id: AccountId,
        slot: &mut Slot,
        actor: ActorRef<AccountMsg>,
        reason: String,
        waiters: Vec<DoneReply>,
    ) {
        // Out of the registry at once: new calls must not reach an actor that is going away.
        self.ctx
            .registry
            .remove_if(&account_id, |_, a| a.get_id() == actor.get_id());
        actor.stop(Some(reason));
        slot.phase = Phase::Stopping { actor, waiters };
        self.kill_later(myself, account_id, slot.generation);
    }

    fn kill_later(&self, myself: &ActorRef<ShardMsg>, account_id: AccountId, generation: u64) {
        myself.send_after(self.settings().shutdown_timeout, move || {
            ShardMsg::KillIfStuck {
                account_id,
                generation,
            }
        });
    }

    fn liveness_tick(&self, myself: &ActorRef<ShardMsg>, state: &mut ShardState) {
        if state.liveness_running || state.shutting_down {
            return;
        }
        let actors: Vec<(AccountId, ActorRef<AccountMsg>)> = state
            .slots
            .iter()
            .filter_map(|(id, slot)| match &slot.phase {
                Phase::Running { actor } => Some((*id, actor.clone())),
                _ => None,
            })
            .collect();
        if actors.is_empty() {
            return;
        }
        state.liveness_running = true;
        let timeout = self.settings().liveness_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            futures::stream::iter(actors)
                .for_each_concurrent(LIVENESS_CONCURRENCY, |(account_id, actor)| {
                    let myself = myself.clone();
                    async move {
                        let answer = actor
                            .call(
                                |reply| AccountMsg::Request(Status.into_request(reply)),
                                Some(timeout),
                            )
                            .await;
                        // Only silence counts: an actor that is gone is handled by its exit
                        // event, and any answer, even an error, proves the mailbox moves.
                        if let Ok(CallResult::Timeout) = answer {
                            let _ = myself.cast(ShardMsg::Watchdog {
                                account_id,
                                expected: Some(actor.get_id()),
                                why: format!("no answer to a liveness check within {timeout:?}"),
                            });
                        }
                    }
                })
                .await;
            let _ = myself.cast(ShardMsg::LivenessDone);
        });
    }

    fn shutdown(
        &self,
        myself: &ActorRef<ShardMsg>,
        state: &mut ShardState,
        reply: RpcReplyPort<()>,
    ) {
        state.shutting_down = true;
        state.shutdown_waiters.push(reply);
        let ids: Vec<AccountId> = state.slots.keys().copied().collect();
        for account_id in ids {
            let Some(slot) = state.slots.get_mut(&account_id) else {
                continue;
            };
            match std::mem::replace(&mut slot.phase, Phase::Quarantined) {
                Phase::Running { actor } => {
                    self.begin_stop(
                        myself,
                        account_id,
                        slot,
                        actor,
                        "shutdown".into(),
                        Vec::new(),
                    );
                }
                Phase::Restarting { actor, waiters, .. } => {
                    answer_all(waiters, Err(shutting_down(account_id)));
                    self.begin_stop(
                        myself,
                        account_id,
                        slot,
                        actor,
                        "shutdown".into(),
                        Vec::new(),
                    );
                }
                Phase::Exiting { actor, waiters } => {
                    // Ending already; its exit finds the supervisor shutting down.
                    answer_all(waiters, Err(shutting_down(account_id)));
                    slot.phase = Phase::Exiting {
                        actor,
                        waiters: Vec::new(),
                    };
                }
                // A start in flight is stopped when it reports (see `spawned`).
                phase @ (Phase::Starting { .. } | Phase::Stopping { .. }) => slot.phase = phase,
                Phase::Backoff { .. } | Phase::Quarantined => {
                    state.slots.remove(&account_id);
                }
            }
        }
    }

    fn check_shutdown_done(&self, state: &mut ShardState) {
        if state.shutting_down && state.slots.is_empty() && !state.shutdown_waiters.is_empty() {
            let waiters = std::mem::take(&mut state.shutdown_waiters);
            let writer = state.spawner.writer.clone();
            // Answer once the store writes queued so far (restart counts, quarantines) are done,
            // so a process that exits right after shutdown loses none of them.
            tokio::spawn(async move {
                writer.run(async {}).await;
                for waiter in waiters {
                    let _ = waiter.send(());
                }
            });
        }
    }

    fn quarantined(&self, account_id: AccountId) -> FleetError {
        let s = self.settings();
        FleetError::unavailable(
            account_id,
            UnavailableKind::Quarantined,
            format!(
                "quarantined after more than {} restarts within {} s; an operator restart lifts it",
                s.restart_max,
                s.restart_window.as_secs()
            ),
        )
    }
}

fn answer_stops(waiters: Vec<DoneReply>) {
    for waiter in waiters {
        let _ = waiter.send(Ok(()));
    }
}

fn shutting_down(account_id: AccountId) -> FleetError {
    FleetError::unavailable(
        account_id,
        UnavailableKind::ShuttingDown,
        "the fleet is shutting down",
    )
}

fn backing_off(account_id: AccountId, until: Instant) -> FleetError {
    let wait = retry_after(until);
    FleetError::Unavailable {
        account_id,
        kind: UnavailableKind::Restarting,
        message: format!(
            "the account actor failed and is restarted in {} ms",
            wait.as_millis()
        ),
        retry_after: Some(wait),
    }
}

fn dependency_down(account_id: AccountId, dependency: Dependency, until: Instant) -> FleetError {
    let wait = retry_after(until);
    FleetError::Unavailable {
        account_id,
        kind: UnavailableKind::Dependency(dependency),
        message: format!(
            "the {dependency} is unavailable; the account starts when it answers again \
             (next try in {} ms)",
            wait.as_millis()
        ),
        retry_after: Some(wait),
    }
}

fn stats(state: &ShardState) -> ShardStats {
    let mut stats = ShardStats {
        restarts: state.restarts,
        ..Default::default()
    };
    for slot in state.slots.values() {
        match slot.phase {
            Phase::Running { .. }
            | Phase::Exiting { .. }
            | Phase::Restarting { .. }
            | Phase::Stopping { .. } => stats.children += 1,
            Phase::Starting { .. } => stats.starting += 1,
            Phase::Backoff {
                waiting_for: None, ..
            } => stats.backing_off += 1,
            Phase::Backoff {
                waiting_for: Some(Dependency::Store),
                ..
            } => stats.waiting_for_store += 1,
            Phase::Backoff {
                waiting_for: Some(Dependency::Vault),
                ..
            } => stats.waiting_for_vault += 1,
            Phase::Quarantined => stats.quarantined += 1,
        }
    }
    stats
}

/// The body of a spawn task: check the account in the store, lift its quarantine if an operator
/// asked, then spawn its actor.
async fn start_child(
    ctx: &ShardContext,
    writer: &StoreWriter,
    spec: ChildSpec,
    lift_quarantine: bool,
) -> Result<ActorRef<AccountMsg>, StartError> {
    let account_id = spec.account_id;
    if lift_quarantine {
        // Through the writer, so it lands after a quarantine still queued there.
        let store = ctx.store.clone();
        match writer
            .run(journal::lift_quarantine(store, account_id))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(StoreError::NotFound)) => return Err(StartError::NotFound),
            Some(Err(e @ StoreError::Unavailable(_))) => return Err(store_down(e)),
            Some(Err(e)) => return Err(StartError::Spawn(e.to_string())),
            None => return Err(store_down("store writer gone")),
        }
    }
    match ctx.store.account(account_id).await {
        Ok(account) if account.state == AccountState::Quarantined => {
            return Err(StartError::Quarantined)
        }
        Ok(_) => {}
        Err(StoreError::NotFound) => return Err(StartError::NotFound),
        // An outage is waited out; any other store error is a failure of this account's start.
        Err(e @ StoreError::Unavailable(_)) => return Err(store_down(e)),
        Err(e) => return Err(StartError::Spawn(e.to_string())),
    }
    ctx.factory.spawn(spec).await.map_err(|e| match &e {
        SpawnErr::StartupFailed(inner) => match inner.downcast_ref::<DependencyDown>() {
            Some(down) => StartError::Dependency(down.clone()),
            None => StartError::Spawn(e.to_string()),
        },
        _ => StartError::Spawn(e.to_string()),
    })
}

fn store_down(e: impl std::fmt::Display) -> StartError {
    StartError::Dependency(DependencyDown {
        dependency: Dependency::Store,
        message: e.to_string(),
    })
}
