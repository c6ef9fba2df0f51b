//! How a supervisor brings up the actor of one account. Supervision only needs "spawn the actor
//! of account N, linked to me": tests plug in a tiny actor, production plugs in `AccountActor`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use tgfleet_actors::{AccountActor, AccountArgs, AccountEnv, AccountMsg};
use tgfleet_persistence::{AccountId, AccountState};

/// What a factory is asked to spawn.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    pub account_id: AccountId,
    /// Unique in the process (fleet, account and generation): the supervisor recognises its
    /// child's failure events by this name, so the child must be spawned under it.
    pub name: String,
    /// Link the child to this cell (`Actor::spawn_linked`), or its failures go unnoticed.
    pub supervisor: ActorCell,
}

pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorRef<AccountMsg>, SpawnErr>> + Send>>;

/// Spawns the actor of one account. Called for the first start and for every restart in place;
/// the child must reload everything durable from the store, since nothing is carried over.
pub trait ChildFactory: Send + Sync + 'static {
    fn spawn(&self, spec: ChildSpec) -> SpawnFuture;

    /// An account the fleet leaves without an actor (at start-up: hibernated, or in a state
    /// that needs none: logged out, banned…; later: quarantined): it still exists, so the
    /// factory may count it (the production one puts it in the state gauges).
    fn resting(&self, _account_id: AccountId, _state: AccountState) {}

    /// The account was deleted: whatever the factory keeps about it (metric series) goes.
    fn deleted(&self, _account_id: AccountId) {}

    /// Resolves once every write an actor of this account queued is in the store, so a
    /// supervisor write (a quarantine, its lifting) lands after a dead actor's last ones.
    fn settled(&self, _account_id: AccountId) -> SettleFuture {
        Box::pin(std::future::ready(()))
    }
}

pub type SettleFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Any `Fn(ChildSpec) -> impl Future<…>` is a factory (handy in tests).
impl<F, Fut> ChildFactory for F
where
    F: Fn(ChildSpec) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<ActorRef<AccountMsg>, SpawnErr>> + Send + 'static,
{
    fn spawn(&self, spec: ChildSpec) -> SpawnFuture {
        Box::pin(self(spec))
    }
}

/// The production factory: an [`AccountActor`] with the fleet's shared environment.
pub struct AccountActorFactory {
    env: Arc<AccountEnv>,
}

impl AccountActorFactory {
    pub fn new(env: Arc<AccountEnv>) -> Self {
        Self { env }
    }
}

impl ChildFactory for AccountActorFactory {
    fn spawn(&self, spec: ChildSpec) -> SpawnFuture {
        let args = AccountArgs {
            account_id: spec.account_id,
            env: self.env.clone(),
        };
        Box::pin(async move {
            Actor::spawn_linked(Some(spec.name), AccountActor, args, spec.supervisor)
                .await
                .map(|(actor, _join)| actor)
        })
    }

    fn resting(&self, account_id: AccountId, state: AccountState) {
        self.env.metrics.set_state(account_id, state);
    }

    fn deleted(&self, account_id: AccountId) {
        self.env.metrics.forget(account_id);
        self.env.metrics.forget_calls(account_id);
    }

    fn settled(&self, account_id: AccountId) -> SettleFuture {
        let writes = Arc::clone(&self.env.writes);
        Box::pin(async move { writes.settle(account_id).await })
    }
}
