//! Spawning an account's actor: child names (which carry the generation, so late events of an
//! older actor are told apart), and the spawn task that checks the account in the store first.

use std::sync::Arc;

use ractor::{ActorRef, SpawnErr};
use tgfleet_actors::{AccountMsg, Dependency, DependencyDown};
use tgfleet_persistence::{AccountId, AccountState, StoreError};

use crate::child::ChildSpec;
use crate::journal::{self, StoreWriter};
use crate::messages::SupervisorMsg;
use crate::slot::StartError;
use crate::supervisor::SupervisorContext;

/// Starts spawn tasks.
pub(crate) struct Spawner {
    /// Generations are unique per supervisor, never per account only: a removed and re-created
    /// slot must not reuse a name whose late events might still be in flight.
    next_generation: u64,
    pub(crate) writer: StoreWriter,
}

pub(crate) fn child_name(prefix: &str, account_id: AccountId, generation: u64) -> String {
    format!("{prefix}/account/{account_id}/{generation}")
}

/// The account id and generation of one of our children, from its name.
pub(crate) fn parse_child_name(prefix: &str, name: &str) -> Option<(AccountId, u64)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix("/account/")?;
    let (id, generation) = rest.split_once('/')?;
    Some((id.parse().ok()?, generation.parse().ok()?))
}

impl Spawner {
    pub(crate) fn new() -> Self {
        Self {
            // From 1: a timer armed for generation 0 matches no slot.
            next_generation: 1,
            writer: StoreWriter::spawn(),
        }
    }

    /// Starts a task that spawns the account's actor and reports `Spawned`. Returns the new
    /// generation, which the slot takes.
    pub(crate) fn spawn(
        &mut self,
        ctx: &Arc<SupervisorContext>,
        myself: &ActorRef<SupervisorMsg>,
        account_id: AccountId,
        lift_quarantine: bool,
    ) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        let spec = ChildSpec {
            account_id,
            name: child_name(&ctx.name_prefix, account_id, generation),
            supervisor: myself.get_cell(),
        };
        let ctx = Arc::clone(ctx);
        let writer = self.writer.clone();
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = start_child(&ctx, &writer, spec, lift_quarantine).await;
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Spawned {
                result: Ok(orphan),
                ..
            })) = myself.cast(SupervisorMsg::Spawned {
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
}

/// The body of a spawn task: check the account in the store, lift its quarantine if an operator
/// asked, then spawn its actor.
async fn start_child(
    ctx: &SupervisorContext,
    writer: &StoreWriter,
    spec: ChildSpec,
    lift_quarantine: bool,
) -> Result<ActorRef<AccountMsg>, StartError> {
    let account_id = spec.account_id;
    // No earlier actor's write can still be on its way here: a quarantine is written only
    // after them (`Effect::Quarantine`), and the new actor's `pre_start` waits for them too.
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
