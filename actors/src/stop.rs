//! Why an account actor ended on its own: the reasons its supervisor reads to decide not to
//! restart it.

use std::fmt;

use tgfleet_persistence::AccountState;

/// Why an account actor stopped on its own (normal stop: no restart). The string form is the
/// ractor stop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Telegram revoked the session (AUTH_KEY_UNREGISTERED, SESSION_REVOKED).
    Unauthorized,
    /// USER_DEACTIVATED*.
    Banned,
    /// Logged out through the API; the session is wiped.
    LoggedOut,
    /// AUTH_KEY_DUPLICATED: the same session is in use elsewhere; restarting would make it worse.
    /// The key stays valid and is kept: the account waits in `stopped` for an operator.
    Duplicated,
    /// The account was deleted (the supervisor stops the actor with this reason).
    Deleted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Banned => "banned",
            Self::LoggedOut => "logged_out",
            Self::Duplicated => "duplicated",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Unauthorized,
            Self::Banned,
            Self::LoggedOut,
            Self::Duplicated,
            Self::Deleted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The account state an actor stopping for this reason leaves behind.
    pub fn final_state(self) -> AccountState {
        match self {
            Self::Unauthorized => AccountState::Unauthorized,
            Self::Banned => AccountState::Banned,
            Self::LoggedOut => AccountState::LoggedOut,
            Self::Duplicated | Self::Deleted => AccountState::Stopped,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
