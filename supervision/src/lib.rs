//! Supervision of the account actors: one-for-one supervisors that restart a failed actor in place
//! (same account id, state reloaded from the store) with backoff and a restart intensity beyond
//! which the account is quarantined; the registry that routes each request to the one actor of
//! its account; and the [`Fleet`] handle the API uses.

pub mod child;
pub mod error;
mod fleet;
mod journal;
pub mod metrics;
mod policy;
mod settings;
mod shard;

pub use child::{AccountActorFactory, ChildFactory, ChildSpec, SpawnFuture};
pub use error::{FleetError, UnavailableKind};
pub use fleet::{Fleet, FleetStats};
pub use metrics::{RestartReason, SupervisionMetrics};
pub use policy::backoff_delay;
pub use settings::SupervisionSettings;
pub use shard::{ShardStats, WATCHDOG_STOP_REASON};
