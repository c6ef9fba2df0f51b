//! One supervisor: it owns the accounts whose id maps to it. Every start, restart and stop of
//! such an account goes through this actor's mailbox, one message at a time, which is what makes
//! "at most one actor per account id" hold; it is also the only writer of these accounts' entries
//! in the shared registry map.
//!
//! What a message does to an account is decided in `slot.rs` (pure); this file only turns
//! messages into slot events and carries out the effects. Nothing slow happens in a handler:
//! spawning (`spawn.rs`), store writes (`journal.rs`) and liveness checks (`liveness.rs`) run in
//! tasks that report back by message, and restart delays are `send_after` timers.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, ActorStatus, RpcReplyPort, SupervisionEvent,
};
use rand::Rng;
use tgfleet_actors::{AccountMsg, Dependency};
use tgfleet_persistence::{AccountId, AccountState, Store};
use tokio::time::Instant;

use crate::child::ChildFactory;
use crate::journal;
use crate::messages::{Live, SupervisorMsg, Waiter};
use crate::metrics::SupervisionMetrics;
use crate::settings::SupervisionSettings;
use crate::slot::{self, Ctx, Effect, Event, Exit, Phase};
use crate::spawn::{parse_child_name, Spawner};
use crate::stats::stats;

/// Which actor serves which account, read by `Fleet::call` without asking the supervisor.
pub(crate) type AccountRegistry = DashMap<AccountId, ActorRef<AccountMsg>>;

/// What one supervisor shares with the fleet handle.
pub(crate) struct SupervisorContext {
    /// Prefix of child names, unique per fleet in the process (ractor's registry is global).
    pub(crate) name_prefix: String,
    pub(crate) settings: SupervisionSettings,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) factory: Arc<dyn ChildFactory>,
    pub(crate) registry: Arc<AccountRegistry>,
    pub(crate) metrics: SupervisionMetrics,
}

pub(crate) struct Supervisor {
    pub(crate) ctx: Arc<SupervisorContext>,
}

type Slot = slot::Slot<Live>;

pub(crate) struct SupervisorState {
    pub(crate) slots: HashMap<AccountId, Slot>,
    spawner: Spawner,
    shutting_down: bool,
    shutdown_waiters: Vec<RpcReplyPort<()>>,
    liveness_running: bool,
    pub(crate) restarts: u64,
}

pub(crate) fn is_alive(actor: &ActorRef<AccountMsg>) -> bool {
    matches!(
        actor.get_status(),
        ActorStatus::Starting | ActorStatus::Running | ActorStatus::Upgrading
    )
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        _args: (),
    ) -> Result<SupervisorState, ActorProcessingErr> {
        // A zero period would make the interval timer panic; treat it as "off".
        if let Some(period) = self.ctx.settings.liveness_interval.filter(|p| !p.is_zero()) {
            myself.send_interval(period, || SupervisorMsg::LivenessTick);
        }
        Ok(SupervisorState {
            slots: HashMap::new(),
            spawner: Spawner::new(),
            shutting_down: false,
            shutdown_waiters: Vec::new(),
            liveness_running: false,
            restarts: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Children die with their supervisor; their entries must not outlive them.
        for account_id in state.slots.keys() {
            self.ctx.registry.remove(account_id);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (account_id, event) = match message {
            SupervisorMsg::Resolve { account_id, reply } => {
                let alive = self.running_alive(state, account_id);
                let waiter = Some(Waiter::Actor(reply));
                (account_id, Event::Resolve { waiter, alive })
            }
            SupervisorMsg::Start { account_id } => {
                let alive = self.running_alive(state, account_id);
                let waiter = None;
                (account_id, Event::Resolve { waiter, alive })
            }
            SupervisorMsg::Stop {
                account_id,
                reason,
                reply,
            } => (account_id, Event::Stop { reason, reply }),
            SupervisorMsg::Restart { account_id, reply } => (account_id, Event::Restart { reply }),
            SupervisorMsg::Watchdog {
                account_id,
                expected,
                why,
            } => {
                let checked = state.slots.get(&account_id).is_some_and(|slot| {
                    matches!(&slot.phase, Phase::Running { actor }
                        if expected.is_none_or(|id| id == actor.get_id()))
                });
                if !checked || state.shutting_down {
                    return Ok(());
                }
                tracing::warn!(account_id, %why, "account actor is silent; restarting it");
                (account_id, Event::Silent)
            }
            SupervisorMsg::Spawned {
                account_id,
                generation,
                result,
            } => (account_id, Event::Spawned { generation, result }),
            SupervisorMsg::RestartDue {
                account_id,
                generation,
            } => (account_id, Event::RestartDue { generation }),
            SupervisorMsg::KillIfStuck {
                account_id,
                generation,
            } => (account_id, Event::KillIfStuck { generation }),
            SupervisorMsg::LivenessTick => {
                self.liveness_tick(&myself, state);
                return Ok(());
            }
            SupervisorMsg::LivenessDone => {
                state.liveness_running = false;
                return Ok(());
            }
            SupervisorMsg::Stats(reply) => {
                let _ = reply.send(stats(state));
                return Ok(());
            }
            SupervisorMsg::Shutdown(reply) => {
                state.shutting_down = true;
                state.shutdown_waiters.push(reply);
                let ids: Vec<AccountId> = state.slots.keys().copied().collect();
                for account_id in ids {
                    self.apply(&myself, state, account_id, Event::Shutdown);
                }
                self.check_shutdown_done(state);
                return Ok(());
            }
        };
        self.apply(&myself, state, account_id, event);
        self.check_shutdown_done(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
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

impl Supervisor {
    fn running_alive(&self, state: &SupervisorState, account_id: AccountId) -> bool {
        state
            .slots
            .get(&account_id)
            .and_then(|slot| slot.phase.actor())
            .is_some_and(is_alive)
    }

    /// The one way a slot changes: `slot::on` decides, this carries out.
    fn apply(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        account_id: AccountId,
        event: Event<Live>,
    ) {
        let ctx = Ctx {
            account_id,
            settings: &self.ctx.settings,
            shutting_down: state.shutting_down,
            now: Instant::now(),
            jitter: rand::thread_rng().gen(),
        };
        let slot = state.slots.remove(&account_id);
        let (slot, effects) = slot::on(slot, event, &ctx);
        if let Some(slot) = slot {
            state.slots.insert(account_id, slot);
        }
        for effect in effects {
            self.execute(myself, state, account_id, effect);
        }
    }

    fn execute(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        account_id: AccountId,
        effect: Effect<Live>,
    ) {
        // Spawns start at generation 1 (`Spawner`), so 0 (no slot) matches no later timer.
        let generation = state.slots.get(&account_id).map_or(0, |s| s.generation);
        match effect {
            Effect::Answer(waiters, result) => {
                for waiter in waiters {
                    waiter.answer(result.clone());
                }
            }
            Effect::AnswerStops(waiters, result) => {
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
            Effect::Spawn { lift_quarantine } => {
                let generation =
                    state
                        .spawner
                        .spawn(&self.ctx, myself, account_id, lift_quarantine);
                if let Some(slot) = state.slots.get_mut(&account_id) {
                    slot.generation = generation;
                }
            }
            Effect::Register(actor) => {
                tracing::debug!(account_id, generation, "account actor up");
                self.ctx.registry.insert(account_id, actor);
            }
            Effect::Unregister(actor) => {
                self.ctx
                    .registry
                    .remove_if(&account_id, |_, a| a.get_id() == actor.get_id());
            }
            Effect::StopActor(actor, reason) => actor.stop(Some(reason)),
            Effect::KillActor(actor) => actor.kill(),
            Effect::KillLater => {
                myself.send_after(self.ctx.settings.shutdown_timeout, move || {
                    SupervisorMsg::KillIfStuck {
                        account_id,
                        generation,
                    }
                });
            }
            Effect::RestartAfter(delay) => {
                myself.send_after(delay, move || SupervisorMsg::RestartDue {
                    account_id,
                    generation,
                });
            }
            Effect::CountRestart {
                reason,
                attempt,
                delay,
                detail,
            } => {
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
            Effect::Quarantine { detail } => {
                let s = &self.ctx.settings;
                // After the dead actor's last writes, or one of them would end the quarantine.
                let settled = self.ctx.factory.settled(account_id);
                let quarantine = journal::quarantine(
                    self.ctx.store.clone(),
                    account_id,
                    s.restart_max,
                    s.restart_window,
                    detail,
                );
                let factory = Arc::clone(&self.ctx.factory);
                state.spawner.writer.submit(async move {
                    settled.await;
                    quarantine.await;
                    // The failed actor's state leaves the gauges when it is dropped, which
                    // ractor does after telling the supervisor; after the store write here it
                    // comes later still. Without this the account would show as quarantined
                    // only at the next process start. A lift runs after it on this writer, so
                    // the lifted account's new actor sets its state last.
                    factory.resting(account_id, AccountState::Quarantined);
                });
            }
            Effect::DependencyWait { down, first } => {
                self.ctx.metrics.count_dependency_wait(down.dependency);
                if first {
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
        }
    }

    fn child_exited(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
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
        self.apply(
            myself,
            state,
            account_id,
            Event::Exited { generation, exit },
        );
    }

    fn liveness_tick(&self, myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState) {
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
        crate::liveness::check(&self.ctx, myself, actors);
    }

    fn check_shutdown_done(&self, state: &mut SupervisorState) {
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
}
