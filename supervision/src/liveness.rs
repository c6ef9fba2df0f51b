//! The supervisor's liveness check: every running actor is asked for its status now and then, a
//! bounded number at a time, off the supervisor's mailbox; one that does not answer in time is
//! reported silent (and restarted like a failure).

use std::sync::Arc;

use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use tgfleet_actors::{AccountMsg, Command, Status};
use tgfleet_persistence::AccountId;

use crate::messages::SupervisorMsg;
use crate::supervisor::SupervisorContext;

/// How many liveness checks of one supervisor are in flight at once: enough to check thousands of
/// idle actors within a second or two, few enough not to flood the runtime with timers.
const LIVENESS_CONCURRENCY: usize = 64;

/// Checks `actors` in a task; `LivenessDone` reports the end.
pub(crate) fn check(
    ctx: &Arc<SupervisorContext>,
    myself: &ActorRef<SupervisorMsg>,
    actors: Vec<(AccountId, ActorRef<AccountMsg>)>,
) {
    let timeout = ctx.settings.liveness_timeout;
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
                    // Only silence counts: an actor that is gone is handled by its exit event,
                    // and any answer, even an error, proves the mailbox moves.
                    if let Ok(CallResult::Timeout) = answer {
                        let _ = myself.cast(SupervisorMsg::Watchdog {
                            account_id,
                            expected: Some(actor.get_id()),
                            why: format!("no answer to a liveness check within {timeout:?}"),
                        });
                    }
                }
            })
            .await;
        let _ = myself.cast(SupervisorMsg::LivenessDone);
    });
}
