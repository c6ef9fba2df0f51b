//! One account's place in its supervisor: which phase it is in (starting, running, backing off,
//! quarantined, …), and what every event does to it, as one pure function
//! [`on`]`(slot, event) → (slot, effects)`. It never touches an actor, a timer or the store: the
//! supervisor (`supervisor.rs`) carries the effects out. Generic over the handles it only moves
//! (actors, reply ports), so the whole table is tested with plain values.

use std::time::Duration;

use tgfleet_actors::{Dependency, DependencyDown};
use tgfleet_persistence::AccountId;
use tokio::time::Instant;

use crate::error::{FleetError, UnavailableKind};
use crate::metrics::RestartReason;
use crate::policy::{backoff_delay, RestartHistory};
use crate::settings::SupervisionSettings;

/// A child that stops itself with this reason (or fails with an error starting with it) asks to
/// be restarted in place as silent: the hook for the actor's own watchdog.
pub const WATCHDOG_STOP_REASON: &str = "watchdog";

/// ractor's exit reason for an actor that drained its mailbox; account actors drain themselves
/// only to hibernate.
pub(crate) const DRAINED_STOP_REASON: &str = "Drained";

/// The handles a slot holds without looking into them.
pub(crate) trait Handles {
    type Actor: Clone;
    /// Someone waiting for the account's actor.
    type Waiter;
    /// Someone waiting for a stop.
    type Done;
    /// An operator's restart waits like a call, answered once the new actor runs.
    fn done_waiter(done: Self::Done) -> Self::Waiter;
}

pub(crate) enum Phase<H: Handles> {
    /// A spawn task is in flight.
    Starting {
        waiters: Vec<H::Waiter>,
        /// Stop requests that came in meanwhile: the new actor is stopped as soon as it is up.
        stop_waiters: Vec<H::Done>,
    },
    Running {
        actor: H::Actor,
    },
    /// The running actor is ending on its own (hibernating, or failing) and calls came in
    /// meanwhile: its exit decides what they get — a new actor at once if it hibernated or
    /// stopped, the restart policy if it failed.
    Exiting {
        actor: H::Actor,
        waiters: Vec<H::Waiter>,
    },
    /// The actor was asked to go (operator restart) or killed (watchdog); on its exit it is
    /// started again.
    Restarting {
        actor: H::Actor,
        reason: RestartReason,
        waiters: Vec<H::Waiter>,
    },
    Stopping {
        actor: H::Actor,
        waiters: Vec<H::Done>,
    },
    Backoff {
        until: Instant,
        /// `Some`: not a failure of the account but an outage of what it needs; the wait grows
        /// with `Slot::dependency_attempts` and never leads to quarantine.
        waiting_for: Option<Dependency>,
    },
    Quarantined,
}

impl<H: Handles> Phase<H> {
    #[cfg(test)]
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Starting { .. } => "starting",
            Self::Running { .. } => "running",
            Self::Exiting { .. } => "exiting",
            Self::Restarting { .. } => "restarting",
            Self::Stopping { .. } => "stopping",
            Self::Backoff {
                waiting_for: None, ..
            } => "backoff",
            Self::Backoff {
                waiting_for: Some(_),
                ..
            } => "waiting_for_dependency",
            Self::Quarantined => "quarantined",
        }
    }

    /// The actor this phase holds, if any.
    pub(crate) fn actor(&self) -> Option<&H::Actor> {
        match self {
            Self::Running { actor }
            | Self::Exiting { actor, .. }
            | Self::Restarting { actor, .. }
            | Self::Stopping { actor, .. } => Some(actor),
            Self::Starting { .. } | Self::Backoff { .. } | Self::Quarantined => None,
        }
    }
}

pub(crate) struct Slot<H: Handles> {
    /// Generation of the newest actor spawned for this account; part of its name, so events of
    /// older actors are recognised and ignored. Set by the supervisor when it spawns.
    pub(crate) generation: u64,
    pub(crate) phase: Phase<H>,
    pub(crate) history: RestartHistory,
    /// Starts in a row that found a dependency down; reset once an actor runs.
    pub(crate) dependency_attempts: u32,
}

/// Why a spawn produced no actor.
#[derive(Debug)]
pub(crate) enum StartError {
    NotFound,
    Quarantined,
    /// The store or Vault did not answer: retried with backoff, never counted as a failure.
    Dependency(DependencyDown),
    /// The child's `pre_start` failed: counts as a failure.
    Spawn(String),
}

/// How a child ended.
#[derive(Debug, Clone)]
pub(crate) enum Exit {
    Failed(String),
    Stopped(Option<String>),
}

pub(crate) enum Event<H: Handles> {
    /// A call wants the actor (`None`: start it, nobody waits). `alive`: the running actor, if
    /// any, still runs (its exit may be on the way).
    Resolve {
        waiter: Option<H::Waiter>,
        alive: bool,
    },
    Stop {
        reason: String,
        reply: H::Done,
    },
    /// An operator's restart in place; also lifts a quarantine.
    Restart {
        reply: H::Done,
    },
    /// The running actor is silent (and is the one that was checked).
    Silent,
    Spawned {
        generation: u64,
        result: Result<H::Actor, StartError>,
    },
    Exited {
        generation: u64,
        exit: Exit,
    },
    RestartDue {
        generation: u64,
    },
    KillIfStuck {
        generation: u64,
    },
    Shutdown,
}

pub(crate) enum Effect<H: Handles> {
    Answer(Vec<H::Waiter>, Result<H::Actor, FleetError>),
    AnswerStops(Vec<H::Done>, Result<(), FleetError>),
    /// Spawn a new actor (a new generation) for the slot.
    Spawn {
        lift_quarantine: bool,
    },
    /// Route calls to it.
    Register(H::Actor),
    /// Route no call to it any more.
    Unregister(H::Actor),
    StopActor(H::Actor, String),
    /// Killed, not stopped: a silent actor may be stuck inside a handler, and a stop would queue
    /// behind it. Its state was persisted after its last change.
    KillActor(H::Actor),
    /// Kill the actor if it has not stopped within the shutdown timeout.
    KillLater,
    RestartAfter(Duration),
    CountRestart {
        reason: RestartReason,
        attempt: Option<u32>,
        delay: Duration,
        detail: String,
    },
    /// Write the quarantine (row and log).
    Quarantine {
        detail: String,
    },
    /// Count the wait; on its first attempt, log it (and write it when the store answers).
    DependencyWait {
        down: DependencyDown,
        first: bool,
    },
}

#[cfg(test)]
impl<H: Handles> Effect<H> {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Answer(_, Ok(_)) => "answer_ok",
            Self::Answer(_, Err(_)) => "answer_err",
            Self::AnswerStops(..) => "answer_stops",
            Self::Spawn {
                lift_quarantine: false,
            } => "spawn",
            Self::Spawn {
                lift_quarantine: true,
            } => "spawn_lifting_quarantine",
            Self::Register(_) => "register",
            Self::Unregister(_) => "unregister",
            Self::StopActor(..) => "stop_actor",
            Self::KillActor(_) => "kill_actor",
            Self::KillLater => "kill_later",
            Self::RestartAfter(_) => "restart_after",
            Self::CountRestart { .. } => "count_restart",
            Self::Quarantine { .. } => "quarantine",
            Self::DependencyWait { .. } => "dependency_wait",
        }
    }
}

/// What a decision may read besides the slot.
pub(crate) struct Ctx<'a> {
    pub(crate) account_id: AccountId,
    pub(crate) settings: &'a SupervisionSettings,
    pub(crate) shutting_down: bool,
    pub(crate) now: Instant,
    /// A draw from `[0, 1)` for the backoff's jitter.
    pub(crate) jitter: f64,
}

type Next<H> = (Option<Slot<H>>, Vec<Effect<H>>);

/// What a slot keeps across phases.
struct Books {
    generation: u64,
    history: RestartHistory,
    dependency_attempts: u32,
}

/// What `event` does to the account's slot (`None`: it has none, or its slot ends).
pub(crate) fn on<H: Handles>(slot: Option<Slot<H>>, event: Event<H>, ctx: &Ctx) -> Next<H> {
    let mut fx = Vec::new();
    let Some(Slot {
        generation,
        phase,
        history,
        dependency_attempts,
    }) = slot
    else {
        let slot = on_absent(event, ctx, &mut fx);
        return (slot, fx);
    };
    let mut books = Books {
        generation,
        history,
        dependency_attempts,
    };
    let next = step(phase, event, &mut books, ctx, &mut fx);
    let slot = next.map(|phase| Slot {
        generation: books.generation,
        phase,
        history: books.history,
        dependency_attempts: books.dependency_attempts,
    });
    (slot, fx)
}

fn new_slot<H: Handles>(phase: Phase<H>) -> Slot<H> {
    Slot {
        generation: 0,
        phase,
        history: RestartHistory::default(),
        dependency_attempts: 0,
    }
}

fn on_absent<H: Handles>(event: Event<H>, ctx: &Ctx, fx: &mut Vec<Effect<H>>) -> Option<Slot<H>> {
    let id = ctx.account_id;
    match event {
        Event::Resolve { waiter, .. } if ctx.shutting_down => {
            fx.push(Effect::Answer(
                waiter.into_iter().collect(),
                Err(shutting_down(id)),
            ));
            None
        }
        Event::Resolve { waiter, .. } => {
            fx.push(Effect::Spawn {
                lift_quarantine: false,
            });
            Some(new_slot(starting(waiter.into_iter().collect())))
        }
        Event::Restart { reply } if ctx.shutting_down => {
            fx.push(Effect::AnswerStops(vec![reply], Err(shutting_down(id))));
            None
        }
        Event::Restart { reply } => {
            // Not running here; the store may still say quarantined (e.g. after a fleet restart).
            fx.push(Effect::Spawn {
                lift_quarantine: true,
            });
            Some(new_slot(starting(vec![H::done_waiter(reply)])))
        }
        Event::Stop { reply, .. } => {
            fx.push(Effect::AnswerStops(vec![reply], Ok(())));
            None
        }
        Event::Spawned {
            result: Ok(orphan), ..
        } => {
            // Its slot went meanwhile: nothing may route to it.
            fx.push(Effect::StopActor(orphan, "superseded".into()));
            None
        }
        Event::Spawned { .. }
        | Event::Silent
        | Event::Exited { .. }
        | Event::RestartDue { .. }
        | Event::KillIfStuck { .. }
        | Event::Shutdown => None,
    }
}

fn starting<H: Handles>(waiters: Vec<H::Waiter>) -> Phase<H> {
    Phase::Starting {
        waiters,
        stop_waiters: Vec::new(),
    }
}

fn respawn<H: Handles>(waiters: Vec<H::Waiter>, fx: &mut Vec<Effect<H>>) -> Phase<H> {
    fx.push(Effect::Spawn {
        lift_quarantine: false,
    });
    starting(waiters)
}

/// Out of the registry at once (new calls must not reach an actor that is going away), asked to
/// stop, and killed if it takes too long.
fn begin_stop<H: Handles>(
    actor: H::Actor,
    reason: String,
    waiters: Vec<H::Done>,
    fx: &mut Vec<Effect<H>>,
) -> Phase<H> {
    fx.push(Effect::Unregister(actor.clone()));
    fx.push(Effect::StopActor(actor.clone(), reason));
    fx.push(Effect::KillLater);
    Phase::Stopping { actor, waiters }
}

fn step<H: Handles>(
    phase: Phase<H>,
    event: Event<H>,
    books: &mut Books,
    ctx: &Ctx,
    fx: &mut Vec<Effect<H>>,
) -> Option<Phase<H>> {
    let id = ctx.account_id;
    let current = |g: u64, books: &Books| g == books.generation;
    Some(match (phase, event) {
        // --- calls -------------------------------------------------------------------------
        (phase, Event::Resolve { waiter, .. }) if ctx.shutting_down => {
            fx.push(Effect::Answer(
                waiter.into_iter().collect(),
                Err(shutting_down(id)),
            ));
            phase
        }
        (phase, Event::Resolve { waiter: None, .. }) => phase,
        (
            Phase::Running { actor },
            Event::Resolve {
                waiter: Some(w),
                alive: true,
            },
        ) => {
            fx.push(Effect::Answer(vec![w], Ok(actor.clone())));
            Phase::Running { actor }
        }
        // Its exit event is on the way; the call waits for what follows it.
        (
            Phase::Running { actor },
            Event::Resolve {
                waiter: Some(w),
                alive: false,
            },
        ) => Phase::Exiting {
            actor,
            waiters: vec![w],
        },
        (
            Phase::Starting {
                mut waiters,
                stop_waiters,
            },
            Event::Resolve {
                waiter: Some(w), ..
            },
        ) => {
            waiters.push(w);
            Phase::Starting {
                waiters,
                stop_waiters,
            }
        }
        (
            Phase::Restarting {
                actor,
                reason,
                mut waiters,
            },
            Event::Resolve {
                waiter: Some(w), ..
            },
        ) => {
            waiters.push(w);
            Phase::Restarting {
                actor,
                reason,
                waiters,
            }
        }
        (
            Phase::Exiting { actor, mut waiters },
            Event::Resolve {
                waiter: Some(w), ..
            },
        ) => {
            waiters.push(w);
            Phase::Exiting { actor, waiters }
        }
        (
            phase @ Phase::Stopping { .. },
            Event::Resolve {
                waiter: Some(w), ..
            },
        ) => {
            fx.push(Effect::Answer(vec![w], Err(stopping(id))));
            phase
        }
        (
            phase @ Phase::Backoff { .. },
            Event::Resolve {
                waiter: Some(w), ..
            },
        )
        | (
            phase @ Phase::Quarantined,
            Event::Resolve {
                waiter: Some(w), ..
            },
        ) => {
            let error = match &phase {
                Phase::Backoff {
                    until,
                    waiting_for: Some(dependency),
                } => dependency_down(id, *dependency, *until, ctx.now),
                Phase::Backoff { until, .. } => backing_off(id, *until, ctx.now),
                _ => quarantined(ctx),
            };
            fx.push(Effect::Answer(vec![w], Err(error)));
            phase
        }

        // --- stop ----------------------------------------------------------------------------
        (Phase::Running { actor }, Event::Stop { reason, reply }) => {
            begin_stop(actor, reason, vec![reply], fx)
        }
        (
            Phase::Starting {
                waiters,
                mut stop_waiters,
            },
            Event::Stop { reply, .. },
        ) => {
            stop_waiters.push(reply);
            Phase::Starting {
                waiters,
                stop_waiters,
            }
        }
        (Phase::Stopping { actor, mut waiters }, Event::Stop { reply, .. }) => {
            waiters.push(reply);
            Phase::Stopping { actor, waiters }
        }
        // Already going (asked to stop, killed, or ending on its own); its exit ends the stop.
        (Phase::Exiting { actor, waiters }, Event::Stop { reply, .. })
        | (Phase::Restarting { actor, waiters, .. }, Event::Stop { reply, .. }) => {
            fx.push(Effect::Answer(waiters, Err(stopping(id))));
            Phase::Stopping {
                actor,
                waiters: vec![reply],
            }
        }
        (Phase::Backoff { .. } | Phase::Quarantined, Event::Stop { reply, .. }) => {
            fx.push(Effect::AnswerStops(vec![reply], Ok(())));
            return None;
        }

        // --- operator restart ----------------------------------------------------------------
        (phase, Event::Restart { reply }) if ctx.shutting_down => {
            fx.push(Effect::AnswerStops(vec![reply], Err(shutting_down(id))));
            phase
        }
        (phase, Event::Restart { reply }) => {
            // An operator's restart grants a fresh restart budget.
            books.history.clear();
            let waiter = H::done_waiter(reply);
            match phase {
                Phase::Running { actor } => {
                    // New calls wait for the new actor instead of reaching the one going away.
                    fx.push(Effect::Unregister(actor.clone()));
                    fx.push(Effect::StopActor(actor.clone(), "operator restart".into()));
                    fx.push(Effect::KillLater);
                    fx.push(Effect::CountRestart {
                        reason: RestartReason::Operator,
                        attempt: None,
                        delay: Duration::ZERO,
                        detail: String::new(),
                    });
                    Phase::Restarting {
                        actor,
                        reason: RestartReason::Operator,
                        waiters: vec![waiter],
                    }
                }
                Phase::Starting {
                    mut waiters,
                    stop_waiters,
                } => {
                    waiters.push(waiter);
                    Phase::Starting {
                        waiters,
                        stop_waiters,
                    }
                }
                Phase::Restarting {
                    actor,
                    reason,
                    mut waiters,
                } => {
                    waiters.push(waiter);
                    Phase::Restarting {
                        actor,
                        reason,
                        waiters,
                    }
                }
                Phase::Exiting { actor, mut waiters } => {
                    waiters.push(waiter);
                    Phase::Exiting { actor, waiters }
                }
                Phase::Stopping { actor, waiters } => {
                    fx.push(Effect::Answer(vec![waiter], Err(stopping(id))));
                    Phase::Stopping { actor, waiters }
                }
                Phase::Backoff { .. } => respawn(vec![waiter], fx),
                Phase::Quarantined => {
                    tracing::info!(account_id = id, "operator restart lifts the quarantine");
                    fx.push(Effect::Spawn {
                        lift_quarantine: true,
                    });
                    starting(vec![waiter])
                }
            }
        }

        // --- a silent actor --------------------------------------------------------------------
        (Phase::Running { actor }, Event::Silent) if !ctx.shutting_down => {
            fx.push(Effect::KillActor(actor.clone()));
            fx.push(Effect::Unregister(actor.clone()));
            Phase::Restarting {
                actor,
                reason: RestartReason::Watchdog,
                waiters: Vec::new(),
            }
        }
        (phase, Event::Silent) => phase,

        // --- a spawn reports -------------------------------------------------------------------
        (
            Phase::Starting {
                waiters,
                stop_waiters,
            },
            Event::Spawned { generation, result },
        ) if current(generation, books) => {
            return spawned(waiters, stop_waiters, result, books, ctx, fx);
        }
        // It died before we heard of it (its exit was handled already), or it was superseded:
        // either way nothing may route to it.
        (phase, Event::Spawned { result, .. }) => {
            if let Ok(orphan) = result {
                fx.push(Effect::StopActor(orphan, "superseded".into()));
            }
            phase
        }

        // --- an actor ends -----------------------------------------------------------------
        (phase, Event::Exited { generation, exit }) if current(generation, books) => {
            return exited(phase, exit, books, ctx, fx);
        }
        (phase, Event::Exited { .. }) => phase,

        // --- timers ------------------------------------------------------------------------
        (Phase::Backoff { .. }, Event::RestartDue { generation })
            if current(generation, books) && !ctx.shutting_down =>
        {
            respawn(Vec::new(), fx)
        }
        // An operator restart or a stop came first.
        (phase, Event::RestartDue { .. }) => phase,
        (
            phase @ (Phase::Stopping { .. } | Phase::Restarting { .. }),
            Event::KillIfStuck { generation },
        ) if current(generation, books) => {
            tracing::warn!(
                account_id = id,
                "account actor did not stop in time; killing it"
            );
            if let Some(actor) = phase.actor() {
                fx.push(Effect::KillActor(actor.clone()));
            }
            phase
        }
        (phase, Event::KillIfStuck { .. }) => phase,

        // --- shutdown ------------------------------------------------------------------------
        (Phase::Running { actor }, Event::Shutdown) => {
            begin_stop(actor, "shutdown".into(), Vec::new(), fx)
        }
        (Phase::Restarting { actor, waiters, .. }, Event::Shutdown) => {
            fx.push(Effect::Answer(waiters, Err(shutting_down(id))));
            begin_stop(actor, "shutdown".into(), Vec::new(), fx)
        }
        (Phase::Exiting { actor, waiters }, Event::Shutdown) => {
            // Ending already; its exit finds the supervisor shutting down.
            fx.push(Effect::Answer(waiters, Err(shutting_down(id))));
            Phase::Exiting {
                actor,
                waiters: Vec::new(),
            }
        }
        // A start in flight is stopped when it reports (see `spawned`).
        (phase @ (Phase::Starting { .. } | Phase::Stopping { .. }), Event::Shutdown) => phase,
        (Phase::Backoff { .. } | Phase::Quarantined, Event::Shutdown) => return None,
    })
}

fn spawned<H: Handles>(
    waiters: Vec<H::Waiter>,
    stop_waiters: Vec<H::Done>,
    result: Result<H::Actor, StartError>,
    books: &mut Books,
    ctx: &Ctx,
    fx: &mut Vec<Effect<H>>,
) -> Option<Phase<H>> {
    let id = ctx.account_id;
    let unwanted = ctx.shutting_down || !stop_waiters.is_empty();
    match result {
        Ok(actor) if unwanted => {
            let kind = if ctx.shutting_down {
                UnavailableKind::ShuttingDown
            } else {
                UnavailableKind::Stopping
            };
            fx.push(Effect::Answer(
                waiters,
                Err(FleetError::unavailable(
                    id,
                    kind,
                    "the account actor is being stopped",
                )),
            ));
            Some(begin_stop(actor, "stopped".into(), stop_waiters, fx))
        }
        Ok(actor) => {
            if books.dependency_attempts > 0 {
                tracing::info!(
                    account_id = id,
                    "account started again after its dependency recovered"
                );
                books.dependency_attempts = 0;
            }
            fx.push(Effect::Register(actor.clone()));
            fx.push(Effect::Answer(waiters, Ok(actor.clone())));
            Some(Phase::Running { actor })
        }
        Err(StartError::NotFound) => {
            fx.push(Effect::Answer(waiters, Err(FleetError::NotFound(id))));
            fx.push(Effect::AnswerStops(stop_waiters, Ok(())));
            None
        }
        Err(StartError::Quarantined) => {
            fx.push(Effect::Answer(waiters, Err(quarantined(ctx))));
            // While shutting down the slot goes: a shutdown waits until no slot is left.
            if stop_waiters.is_empty() && !ctx.shutting_down {
                Some(Phase::Quarantined)
            } else {
                fx.push(Effect::AnswerStops(stop_waiters, Ok(())));
                None
            }
        }
        Err(StartError::Dependency(_) | StartError::Spawn(_)) if unwanted => {
            fx.push(Effect::Answer(waiters, Err(shutting_down(id))));
            fx.push(Effect::AnswerStops(stop_waiters, Ok(())));
            None
        }
        Err(StartError::Dependency(down)) => {
            Some(wait_for_dependency(down, waiters, books, ctx, fx))
        }
        Err(StartError::Spawn(message)) => {
            tracing::warn!(account_id = id, error = %message, "account actor failed to start");
            Some(failed(
                RestartReason::Failed,
                message,
                waiters,
                books,
                ctx,
                fx,
            ))
        }
    }
}

fn exited<H: Handles>(
    phase: Phase<H>,
    exit: Exit,
    books: &mut Books,
    ctx: &Ctx,
    fx: &mut Vec<Effect<H>>,
) -> Option<Phase<H>> {
    let id = ctx.account_id;
    let (waiters, restart_reason) = match phase {
        Phase::Starting {
            waiters,
            stop_waiters,
        } => {
            // Died before its `Spawned` report arrived; that report will be ignored.
            if ctx.shutting_down || !stop_waiters.is_empty() {
                fx.push(Effect::Answer(waiters, Err(shutting_down(id))));
                fx.push(Effect::AnswerStops(stop_waiters, Ok(())));
                return None;
            }
            (waiters, None)
        }
        Phase::Running { .. } => (Vec::new(), None),
        Phase::Exiting { waiters, .. } => (waiters, None),
        Phase::Restarting {
            reason, waiters, ..
        } => (waiters, Some(reason)),
        Phase::Stopping { waiters, .. } => {
            fx.push(Effect::AnswerStops(waiters, Ok(())));
            return None;
        }
        phase @ (Phase::Backoff { .. } | Phase::Quarantined) => return Some(phase),
    };
    if ctx.shutting_down {
        fx.push(Effect::Answer(waiters, Err(shutting_down(id))));
        return None;
    }
    Some(match (restart_reason, exit) {
        // The operator's restart: back at once, no backoff, no intensity.
        (Some(RestartReason::Operator), _) => respawn(waiters, fx),
        (Some(reason), exit) => {
            let detail = match exit {
                Exit::Failed(e) => e,
                Exit::Stopped(r) => r.unwrap_or_default(),
            };
            failed(reason, detail, waiters, books, ctx, fx)
        }
        (None, Exit::Failed(error)) => {
            let reason = if error.starts_with(WATCHDOG_STOP_REASON) {
                RestartReason::Watchdog
            } else {
                RestartReason::Failed
            };
            tracing::warn!(account_id = id, %error, "account actor failed");
            failed(reason, error, waiters, books, ctx, fx)
        }
        (None, Exit::Stopped(Some(reason))) if reason == WATCHDOG_STOP_REASON => {
            failed(RestartReason::Watchdog, reason, waiters, books, ctx, fx)
        }
        (None, Exit::Stopped(reason)) if !waiters.is_empty() => {
            // Calls arrived while it ended on its own: a new actor answers them, in whatever
            // state the account was left (a hibernated one reconnects, a logged-out one says
            // so) — better than an error for a call that did not run.
            tracing::debug!(
                account_id = id,
                reason = reason.as_deref().unwrap_or(""),
                "account actor ended with calls waiting; starting a new one"
            );
            respawn(waiters, fx)
        }
        (None, Exit::Stopped(reason)) => {
            // A normal stop is the actor's own decision (hibernated, unauthorized, banned, logged
            // out…): the account rests in that state and is not restarted.
            if reason.as_deref() == Some(DRAINED_STOP_REASON) {
                tracing::debug!(account_id = id, "account actor hibernated");
            } else {
                tracing::info!(
                    account_id = id,
                    reason = reason.as_deref().unwrap_or(""),
                    "account actor stopped"
                );
            }
            return None;
        }
    })
}

/// A failure (crash, failed start, watchdog): restart after a backoff, or quarantine once the
/// restart intensity is exceeded.
fn failed<H: Handles>(
    reason: RestartReason,
    detail: String,
    waiters: Vec<H::Waiter>,
    books: &mut Books,
    ctx: &Ctx,
    fx: &mut Vec<Effect<H>>,
) -> Phase<H> {
    let s = ctx.settings;
    let id = ctx.account_id;
    match books
        .history
        .admit(ctx.now, s.restart_max, s.restart_window)
    {
        None => {
            tracing::error!(
                account_id = id,
                "restart intensity exceeded; account quarantined"
            );
            fx.push(Effect::Answer(waiters, Err(quarantined(ctx))));
            fx.push(Effect::Quarantine { detail });
            Phase::Quarantined
        }
        Some(attempt) => {
            let delay = backoff_delay(attempt, s.backoff_base, s.backoff_max, ctx.jitter);
            // A misconfigured huge backoff must not overflow the clock.
            let until = ctx.now.checked_add(delay).unwrap_or(ctx.now);
            tracing::warn!(
                account_id = id,
                reason = reason.as_str(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "account actor restarts after a backoff"
            );
            fx.push(Effect::RestartAfter(delay));
            fx.push(Effect::Answer(
                waiters,
                Err(backing_off(id, until, ctx.now)),
            ));
            fx.push(Effect::CountRestart {
                reason,
                attempt: Some(attempt),
                delay,
                detail,
            });
            Phase::Backoff {
                until,
                waiting_for: None,
            }
        }
    }
}

/// The store or Vault is down: try again after a growing backoff, without touching the restart
/// history (an outage of ours is not the account's fault and must not quarantine it).
fn wait_for_dependency<H: Handles>(
    down: DependencyDown,
    waiters: Vec<H::Waiter>,
    books: &mut Books,
    ctx: &Ctx,
    fx: &mut Vec<Effect<H>>,
) -> Phase<H> {
    let s = ctx.settings;
    books.dependency_attempts = books.dependency_attempts.saturating_add(1);
    let attempt = books.dependency_attempts;
    // Attempt 1 of `backoff_delay` is immediate, which would spin on an outage.
    let delay = backoff_delay(
        attempt.saturating_add(1),
        s.backoff_base,
        s.backoff_max,
        ctx.jitter,
    );
    let until = ctx.now.checked_add(delay).unwrap_or(ctx.now);
    let dependency = down.dependency;
    fx.push(Effect::RestartAfter(delay));
    fx.push(Effect::Answer(
        waiters,
        Err(dependency_down(ctx.account_id, dependency, until, ctx.now)),
    ));
    fx.push(Effect::DependencyWait {
        down,
        first: attempt == 1,
    });
    Phase::Backoff {
        until,
        waiting_for: Some(dependency),
    }
}

fn stopping(account_id: AccountId) -> FleetError {
    FleetError::unavailable(
        account_id,
        UnavailableKind::Stopping,
        "the account actor is being stopped",
    )
}

pub(crate) fn shutting_down(account_id: AccountId) -> FleetError {
    FleetError::unavailable(
        account_id,
        UnavailableKind::ShuttingDown,
        "the fleet is shutting down",
    )
}

fn quarantined(ctx: &Ctx) -> FleetError {
    let s = ctx.settings;
    FleetError::unavailable(
        ctx.account_id,
        UnavailableKind::Quarantined,
        format!(
            "quarantined after more than {} restarts within {} s; an operator restart lifts it",
            s.restart_max,
            s.restart_window.as_secs()
        ),
    )
}

fn backing_off(account_id: AccountId, until: Instant, now: Instant) -> FleetError {
    let wait = until.saturating_duration_since(now);
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

fn dependency_down(
    account_id: AccountId,
    dependency: Dependency,
    until: Instant,
    now: Instant,
) -> FleetError {
    let wait = until.saturating_duration_since(now);
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

#[cfg(test)]
mod tests {
    //! Every phase meets every event, while running and while shutting down; the table below is
    //! the supervisor's whole behaviour per account, one row per pair.
    use super::*;

    struct Fake;

    impl Handles for Fake {
        type Actor = u32;
        type Waiter = &'static str;
        type Done = &'static str;
        fn done_waiter(done: &'static str) -> &'static str {
            done
        }
    }

    const GENERATION: u64 = 5;

    fn phases() -> Vec<Option<Phase<Fake>>> {
        let now = Instant::now();
        vec![
            None,
            Some(Phase::Starting {
                waiters: vec!["call"],
                stop_waiters: Vec::new(),
            }),
            Some(Phase::Starting {
                waiters: vec!["call"],
                stop_waiters: vec!["stop"],
            }),
            Some(Phase::Running { actor: 1 }),
            Some(Phase::Exiting {
                actor: 1,
                waiters: vec!["call"],
            }),
            Some(Phase::Restarting {
                actor: 1,
                reason: RestartReason::Operator,
                waiters: vec!["call"],
            }),
            Some(Phase::Restarting {
                actor: 1,
                reason: RestartReason::Watchdog,
                waiters: Vec::new(),
            }),
            Some(Phase::Stopping {
                actor: 1,
                waiters: vec!["stop"],
            }),
            Some(Phase::Backoff {
                until: now + Duration::from_secs(1),
                waiting_for: None,
            }),
            Some(Phase::Backoff {
                until: now + Duration::from_secs(1),
                waiting_for: Some(Dependency::Vault),
            }),
            Some(Phase::Quarantined),
        ]
    }

    fn down() -> DependencyDown {
        DependencyDown {
            dependency: Dependency::Vault,
            message: "sealed".into(),
        }
    }

    /// One of each event (and of each outcome an event carries), with a label.
    fn events() -> Vec<(&'static str, Event<Fake>)> {
        let stale = GENERATION - 1;
        vec![
            (
                "resolve",
                Event::Resolve {
                    waiter: Some("new"),
                    alive: true,
                },
            ),
            (
                "resolve/dead",
                Event::Resolve {
                    waiter: Some("new"),
                    alive: false,
                },
            ),
            (
                "start",
                Event::Resolve {
                    waiter: None,
                    alive: true,
                },
            ),
            (
                "stop",
                Event::Stop {
                    reason: "deleted".into(),
                    reply: "stop2",
                },
            ),
            ("restart", Event::Restart { reply: "op" }),
            ("silent", Event::Silent),
            (
                "spawned/ok",
                Event::Spawned {
                    generation: GENERATION,
                    result: Ok(2),
                },
            ),
            (
                "spawned/stale",
                Event::Spawned {
                    generation: stale,
                    result: Ok(2),
                },
            ),
            (
                "spawned/not_found",
                Event::Spawned {
                    generation: GENERATION,
                    result: Err(StartError::NotFound),
                },
            ),
            (
                "spawned/quarantined",
                Event::Spawned {
                    generation: GENERATION,
                    result: Err(StartError::Quarantined),
                },
            ),
            (
                "spawned/dependency",
                Event::Spawned {
                    generation: GENERATION,
                    result: Err(StartError::Dependency(down())),
                },
            ),
            (
                "spawned/failed",
                Event::Spawned {
                    generation: GENERATION,
                    result: Err(StartError::Spawn("boom".into())),
                },
            ),
            (
                "exited/failed",
                Event::Exited {
                    generation: GENERATION,
                    exit: Exit::Failed("panic".into()),
                },
            ),
            (
                "exited/watchdog",
                Event::Exited {
                    generation: GENERATION,
                    exit: Exit::Stopped(Some(WATCHDOG_STOP_REASON.into())),
                },
            ),
            (
                "exited/stopped",
                Event::Exited {
                    generation: GENERATION,
                    exit: Exit::Stopped(Some("banned".into())),
                },
            ),
            (
                "exited/stale",
                Event::Exited {
                    generation: stale,
                    exit: Exit::Failed("panic".into()),
                },
            ),
            (
                "restart_due",
                Event::RestartDue {
                    generation: GENERATION,
                },
            ),
            ("restart_due/stale", Event::RestartDue { generation: stale }),
            (
                "kill_if_stuck",
                Event::KillIfStuck {
                    generation: GENERATION,
                },
            ),
            ("shutdown", Event::Shutdown),
        ]
    }

    fn label(phase: &Option<Phase<Fake>>) -> String {
        match phase {
            None => "none".into(),
            Some(Phase::Starting { stop_waiters, .. }) if !stop_waiters.is_empty() => {
                "starting+stop".into()
            }
            Some(Phase::Restarting { reason, .. }) => format!("restarting/{}", reason.as_str()),
            Some(p) => p.name().into(),
        }
    }

    fn outcome(slot: &Option<Slot<Fake>>, effects: &[Effect<Fake>]) -> String {
        let next = match slot {
            None => "gone".into(),
            Some(s) => label(&Some(match &s.phase {
                Phase::Starting {
                    waiters,
                    stop_waiters,
                } => Phase::Starting {
                    waiters: waiters.clone(),
                    stop_waiters: stop_waiters.clone(),
                },
                Phase::Running { actor } => Phase::Running { actor: *actor },
                Phase::Exiting { actor, .. } => Phase::Exiting {
                    actor: *actor,
                    waiters: Vec::new(),
                },
                Phase::Restarting { actor, reason, .. } => Phase::Restarting {
                    actor: *actor,
                    reason: *reason,
                    waiters: Vec::new(),
                },
                Phase::Stopping { actor, .. } => Phase::Stopping {
                    actor: *actor,
                    waiters: Vec::new(),
                },
                Phase::Backoff { until, waiting_for } => Phase::Backoff {
                    until: *until,
                    waiting_for: *waiting_for,
                },
                Phase::Quarantined => Phase::Quarantined,
            })),
        };
        let effects: Vec<String> = effects
            .iter()
            .map(|e| match e {
                Effect::Answer(w, _) | Effect::AnswerStops(w, _) if w.is_empty() => {
                    format!("{}()", e.name())
                }
                Effect::Answer(w, _) | Effect::AnswerStops(w, _) => {
                    format!("{}({})", e.name(), w.join(","))
                }
                other => other.name().to_owned(),
            })
            .collect();
        format!("{next} [{}]", effects.join(" "))
    }

    fn table(shutting_down: bool) -> String {
        let settings = SupervisionSettings::default();
        let mut rows = String::new();
        for (phase_at, phase) in phases().into_iter().enumerate() {
            for (event_at, (event_label, _)) in events().into_iter().enumerate() {
                let slot = phases()
                    .into_iter()
                    .nth(phase_at)
                    .flatten()
                    .map(|phase| Slot {
                        generation: GENERATION,
                        phase,
                        history: RestartHistory::default(),
                        dependency_attempts: 0,
                    });
                let event = events()
                    .into_iter()
                    .nth(event_at)
                    .map(|(_, e)| e)
                    .expect("event");
                let ctx = Ctx {
                    account_id: 7,
                    settings: &settings,
                    shutting_down,
                    now: Instant::now(),
                    jitter: 0.5,
                };
                let (next, effects) = on(slot, event, &ctx);
                rows.push_str(&format!(
                    "{} + {event_label} → {}\n",
                    label(&phase),
                    outcome(&next, &effects)
                ));
            }
        }
        rows
    }

    /// `slot_phases.txt` is the expected table. After a deliberate change of behaviour, write
    /// the new one with `TGFLEET_WRITE_SLOT_TABLE=1 cargo test -p tgfleet-supervision --lib` and
    /// review its diff like code.
    #[test]
    fn every_phase_meets_every_event() {
        let actual = format!(
            "# running\n{}\n# shutting down\n{}",
            table(false),
            table(true)
        );
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/slot_phases.txt");
        if std::env::var_os("TGFLEET_WRITE_SLOT_TABLE").is_some() {
            std::fs::write(path, &actual).expect("writing the table");
        }
        let expected = include_str!("slot_phases.txt");
        for (row, (want, got)) in expected.lines().zip(actual.lines()).enumerate() {
            assert_eq!(want, got, "row {} of slot_phases.txt", row + 1);
        }
        assert_eq!(expected.lines().count(), actual.lines().count());
    }
}
