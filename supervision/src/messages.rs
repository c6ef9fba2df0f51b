//! What a supervisor is asked (by the fleet handle, its spawn tasks and its own timers), and the
//! handles its slots hold.

use ractor::{ActorId, ActorRef, RpcReplyPort};
use tgfleet_actors::AccountMsg;
use tgfleet_persistence::AccountId;

use crate::error::FleetError;
use crate::slot::{Handles, StartError};
use crate::stats::SupervisorStats;

pub(crate) type ActorReply = RpcReplyPort<Result<ActorRef<AccountMsg>, FleetError>>;
pub(crate) type DoneReply = RpcReplyPort<Result<(), FleetError>>;

pub(crate) enum SupervisorMsg {
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
    Stats(RpcReplyPort<SupervisorStats>),
    /// Stop every child (they persist in `post_stop`) and answer when none is left.
    Shutdown(RpcReplyPort<()>),
}

/// Whoever waits for an account's actor to be up.
pub(crate) enum Waiter {
    Actor(ActorReply),
    Done(DoneReply),
}

impl Waiter {
    pub(crate) fn answer(self, result: Result<ActorRef<AccountMsg>, FleetError>) {
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

/// The real handles a slot holds.
pub(crate) struct Live;

impl Handles for Live {
    type Actor = ActorRef<AccountMsg>;
    type Waiter = Waiter;
    type Done = DoneReply;

    fn done_waiter(done: DoneReply) -> Waiter {
        Waiter::Done(done)
    }
}
