//! Counts of one supervisor's slots by phase.

use tgfleet_actors::Dependency;

use crate::slot::Phase;
use crate::supervisor::SupervisorState;

/// Counts of one supervisor, summed up by `Fleet::supervisor_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupervisorStats {
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

pub(crate) fn stats(state: &SupervisorState) -> SupervisorStats {
    let mut stats = SupervisorStats {
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
