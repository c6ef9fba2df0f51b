//! `tgfleet_actor_restarts_total{account_id,reason}`. Registered into a caller-supplied
//! `prometheus::Registry` (never the global one), like the actors' metrics, so several fleets can
//! live in one process.

use prometheus::{IntCounterVec, Opts, Registry};
use tgfleet_actors::Dependency;
use tgfleet_persistence::AccountId;

/// Why an actor was restarted in place; the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartReason {
    /// The actor failed (a panic or an error out of a handler, or `pre_start` failed).
    Failed,
    /// The actor reported itself silent, or did not answer a liveness check.
    Watchdog,
    /// An operator asked for it (`Fleet::restart`).
    Operator,
}

impl RestartReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Watchdog => "watchdog",
            Self::Operator => "operator",
        }
    }
}

/// Cheap to clone; every clone updates the same series.
#[derive(Clone)]
pub struct SupervisionMetrics {
    restarts: IntCounterVec,
    dependency_waits: IntCounterVec,
}

impl SupervisionMetrics {
    /// Creates the supervision metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let restarts = IntCounterVec::new(
            Opts::new(
                "tgfleet_actor_restarts_total",
                "Account actors restarted in place, by account and reason",
            ),
            &["account_id", "reason"],
        )?;
        registry.register(Box::new(restarts.clone()))?;
        let dependency_waits = IntCounterVec::new(
            Opts::new(
                "tgfleet_dependency_waits_total",
                "Account starts put off because the store or Vault did not answer (retried, never \
                 counted toward quarantine), by dependency",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(dependency_waits.clone()))?;
        // Both at 0 from the start, so `increase()` sees the first wait of an outage (a series
        // born at 1 has no earlier sample to increase from).
        for dependency in [Dependency::Store, Dependency::Vault] {
            dependency_waits.with_label_values(&[dependency.as_str()]);
        }
        Ok(Self {
            restarts,
            dependency_waits,
        })
    }

    pub(crate) fn count_dependency_wait(&self, dependency: Dependency) {
        self.dependency_waits
            .with_label_values(&[dependency.as_str()])
            .inc();
    }

    /// A deleted account's series go with it: ids are not reused, so they would only pile up.
    pub(crate) fn forget(&self, account_id: AccountId) {
        let id = account_id.to_string();
        for reason in [
            RestartReason::Failed,
            RestartReason::Watchdog,
            RestartReason::Operator,
        ] {
            let _ = self.restarts.remove_label_values(&[&id, reason.as_str()]);
        }
    }

    pub(crate) fn count_restart(&self, account_id: AccountId, reason: RestartReason) {
        self.restarts
            .with_label_values(&[&account_id.to_string(), reason.as_str()])
            .inc();
    }

    /// The counter's current value, for tests and health reports.
    pub fn restarts(&self, account_id: AccountId, reason: RestartReason) -> u64 {
        self.restarts
            .with_label_values(&[&account_id.to_string(), reason.as_str()])
            .get()
    }
}
