//! `tgfleet_actor_restarts_total{account_id,reason}`. Registered into a caller-supplied
//! `prometheus::Registry` (never the global one), like the actors' metrics, so several fleets can
//! live in one process.

use prometheus::{IntCounterVec, Opts, Registry};
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
        Ok(Self { restarts })
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
