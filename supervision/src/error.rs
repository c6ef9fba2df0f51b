//! What a `Fleet` call can answer besides the actor's own reply.

use std::time::Duration;

use tgfleet_actors::{AccountError, Dependency};
use tgfleet_persistence::AccountId;

/// Why an account that exists cannot take a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnavailableKind {
    /// Its actor is being started (first start, or a restart in place).
    Starting,
    /// Its actor failed and waits out its restart backoff.
    Restarting,
    /// Too many restarts: it stays down until an operator restarts it.
    Quarantined,
    /// An operator stop is in progress.
    Stopping,
    /// The fleet is shutting down.
    ShuttingDown,
    /// The actor did not answer within the call timeout.
    Timeout,
    /// The actor went away while the request was in flight; the request may or may not have run.
    ActorStopped,
    /// The supervisor or the store could not be reached.
    Internal,
    /// A dependency (store, Vault) is down; the account starts once it answers again.
    Dependency(Dependency),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FleetError {
    #[error("account {0} does not exist")]
    NotFound(AccountId),
    #[error("account {account_id} is unavailable: {message}")]
    Unavailable {
        account_id: AccountId,
        kind: UnavailableKind,
        message: String,
        /// When a retry is likely to succeed (the end of a restart backoff), for `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The actor's own answer, passed through unchanged.
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl FleetError {
    pub(crate) fn unavailable(
        account_id: AccountId,
        kind: UnavailableKind,
        message: impl Into<String>,
    ) -> Self {
        Self::Unavailable {
            account_id,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// A stable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "ACCOUNT_NOT_FOUND",
            Self::Unavailable {
                kind: UnavailableKind::Quarantined,
                ..
            } => "ACCOUNT_QUARANTINED",
            Self::Unavailable {
                kind: UnavailableKind::Timeout,
                ..
            } => "ACCOUNT_TIMEOUT",
            Self::Unavailable {
                kind: UnavailableKind::Dependency(dependency),
                ..
            } => dependency.code(),
            Self::Unavailable { .. } => "ACCOUNT_UNAVAILABLE",
            Self::Account(e) => e.code(),
        }
    }
}
