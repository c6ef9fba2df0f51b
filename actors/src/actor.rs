//! The account actor.
//!
//! # Contract with the supervisor
//!
//! How an `AccountActor` ends tells its supervisor what to do:
//!
//! * **It fails** (a panic in a handler, an `Err` from a handler, or an `Err` from `pre_start`):
//!   ractor reports `ActorFailed` (or `spawn` returns `StartupFailed`). Something unexpected
//!   happened; **restart it in place** (same account id, same [`AccountArgs`]). Everything durable
//!   — session keys, the pending login, dedupe keys — is reloaded from the store, so a restart
//!   loses nothing but in-flight requests (their callers see the reply port dropped).
//! * **It stops normally** with a reason (`ActorTerminated` with `Some(reason)`): the account is in
//!   a final state and the actor already wrote it to the account row and the integration log.
//!   **Do not restart it**; an operator's explicit restart (or a new login) may. The reasons are
//!   [`StopReason`]s: `unauthorized`, `banned`, `logged_out`, `duplicated`, `deleted`.
//! * A stop requested by the supervisor itself (fleet shutdown, account deleted) is also a normal
//!   stop; the actor persists its session first (`post_stop`).

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tgfleet_persistence::{AccountUpdate, LogLevel, StoreError};

use crate::commands::AccountRequest;
use crate::effect::Line;
use crate::env::AccountArgs;
pub use crate::executor::AccountActorState;
use crate::executor::Finish;
use crate::lifecycle;
use crate::protocol::{Dependency, DependencyDown};
use crate::session::StoreSession;
use crate::state::State;
pub use crate::stop::StopReason;

/// One Telegram account. Stateless itself; all state lives in [`AccountActorState`].
pub struct AccountActor;

/// Messages an account actor understands.
pub enum AccountMsg {
    /// A command from the API (through the registry), with its reply port. Always answered,
    /// never with a panic.
    Request(AccountRequest),
    /// Test and chaos hook: panics inside the handler, exactly as a bug would, so supervisors and
    /// the "pending login survives a crash" guarantee can be exercised.
    Crash,
    /// The actor's own events (finished Telegram calls, client lifecycle, timers).
    Internal(InternalMsg),
}

/// Opaque to other crates: only the actor and its own tasks send these.
pub struct InternalMsg(pub(crate) Event);

pub(crate) enum Event {
    /// An operation finished (in its task), with what its command needs to decide the outcome.
    OpDone { id: u64, finish: Box<dyn Finish> },
    /// The grammers runner task ended: the client is dead and must be rebuilt.
    RunnerExited { generation: u64, panicked: bool },
    /// The home connection closed (testdc/Telegram dropped it).
    ConnectionClosed { generation: u64 },
    /// updateLoginToken: a pending QR token was scanned.
    LoginTokenUpdated { generation: u64 },
    /// Periodic liveness check.
    Watchdog,
    /// A scheduled re-check of a reconnecting / flood-waiting account.
    CheckNow,
    /// Sent to itself after reaching a final state, so requests already queued are still
    /// answered (with the final state's error) before the actor stops.
    StopNow(StopReason),
}

impl std::fmt::Debug for AccountMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Requests may carry codes, passwords and bot tokens: never print their contents.
            Self::Request(request) => write!(f, "{request:?}"),
            Self::Crash => f.write_str("Crash"),
            Self::Internal(_) => f.write_str("Internal"),
        }
    }
}

impl Actor for AccountActor {
    type Msg = AccountMsg;
    type State = AccountActorState;
    type Arguments = AccountArgs;

    /// Loads the account row and its session; no Telegram I/O here (a failed `pre_start` is a
    /// failed spawn, and the supervisor should see Telegram trouble as states, not spawn errors).
    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: AccountArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let AccountArgs { account_id, env } = args;
        // What an earlier actor of this account still had on its way lands first.
        env.writes.settle(account_id).await;
        // Only an outage is the store's; a bad row is this account's failure like any other.
        let row = env.store.account(account_id).await.map_err(|e| match e {
            StoreError::Unavailable(message) => ActorProcessingErr::from(DependencyDown {
                dependency: Dependency::Store,
                message,
            }),
            other => ActorProcessingErr::from(other),
        })?;
        let session = StoreSession::load_or_create(account_id, std::sync::Arc::clone(&env))
            .await
            .map_err(|e| match e.dependency() {
                Some(dependency) => ActorProcessingErr::from(DependencyDown {
                    dependency,
                    message: e.to_string(),
                }),
                None => ActorProcessingErr::from(e),
            })?;
        let app = crate::session::app_for(&env, &row)
            .await
            .map_err(|e| match e.dependency() {
                Some(dependency) => ActorProcessingErr::from(DependencyDown {
                    dependency,
                    message: e.to_string(),
                }),
                None => ActorProcessingErr::from(e),
            })?;
        let proxy =
            crate::session::proxy_for(&env, &row)
                .await
                .map_err(|e| match e.dependency() {
                    Some(dependency) => ActorProcessingErr::from(DependencyDown {
                        dependency,
                        message: e.to_string(),
                    }),
                    None => ActorProcessingErr::from(e),
                })?;
        let was = row.state;
        let implied = State::implied(
            session.pending_login().as_ref(),
            session.self_user_id().is_some(),
        );
        let start = State::at_start(
            was,
            row.flood_wait_until,
            implied,
            // A receiving account never rests: its updates would wait for the next call.
            env.limits.hibernate_after.is_some() && !row.receives(),
        );
        let mut state = AccountActorState::new(env, app, proxy, row, start.clone(), session);
        if start.account_state() != was {
            let message = format!("account actor started in state {}", start.account_state());
            let line = Line::new(LogLevel::Info, "actor_started", message);
            state.transition_from(&myself, was, start, AccountUpdate::default(), line);
        } else {
            state.env.metrics.set_state(account_id, was);
        }
        let effects = lifecycle::expire_stale_login(&state.view());
        state.execute(&myself, effects).await;
        // Written before the actor counts as started: whoever started it reads the row next.
        state.settle().await;
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let effects = lifecycle::on_start(&state.view());
        state.execute(&myself, effects).await;
        state.flush();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AccountMsg::Crash => {
                panic!(
                    "AccountMsg::Crash: crash requested for account {}",
                    state.id
                )
            }
            // Ending (a final state, or hibernation): answer with what the account has become.
            AccountMsg::Request(request) if state.state.is_ending() => {
                let error = state.ending_error();
                state.answer_after_writes(move || request.refuse(error));
            }
            // Boxed: the handler futures are large state machines, and inline they would size
            // every idle actor's task for its busiest moment.
            AccountMsg::Request(request) => Box::pin(request.dispatch(state, &myself)).await,
            AccountMsg::Internal(InternalMsg(event)) => {
                Box::pin(state.on_event(&myself, event)).await
            }
        }
        state.flush();
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Every change is already written when it happens; this only catches a write that
        // failed earlier, so a clean stop leaves the newest state behind.
        if let Err(e) = Box::pin(state.session.persist()).await {
            tracing::warn!(account_id = state.id, error = %e, "final session write failed");
        }
        state.client = None;
        // A clean stop leaves its row and log written.
        Box::pin(state.settle()).await;
        Ok(())
    }
}
