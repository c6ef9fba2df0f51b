//! What the rest of tgfleet may ask of an account actor, and what it answers. The supervision
//! crate routes these; the API maps `AccountError` to HTTP statuses.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tgfleet_persistence::{AccountId, AccountState};

#[derive(Debug, Clone, Serialize)]
pub struct AccountStatus {
    pub account_id: AccountId,
    pub state: AccountState,
    pub tg_user_id: Option<i64>,
    pub username: Option<String>,
    pub dc_id: Option<i32>,
    pub flood_wait_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// Errors with a stable `code()` the API shows as-is.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AccountError {
    #[error("flood wait on {method}: retry in {seconds} s")]
    FloodWait { method: String, seconds: u32 },
    #[error("the login code is wrong")]
    CodeInvalid,
    #[error("the login code has expired; request a new one")]
    CodeExpired,
    #[error("the 2FA password is wrong")]
    PasswordInvalid,
    #[error("this phone number is not registered with Telegram")]
    PhoneNotRegistered,
    #[error("the phone number is invalid")]
    PhoneInvalid,
    #[error("another account of this fleet is logged in with this phone")]
    PhoneTaken,
    #[error("the bot token is invalid")]
    BotTokenInvalid,
    #[error("the peer could not be resolved: {0}")]
    PeerInvalid(String),
    #[error("not possible in state {state}: {expected}")]
    WrongState {
        state: AccountState,
        expected: &'static str,
    },
    #[error("the session was revoked by Telegram")]
    Unauthorized,
    #[error("the Telegram account is banned")]
    Banned,
    #[error("Telegram did not answer in time")]
    Timeout,
    #[error("Telegram is unreachable right now; the account is reconnecting")]
    Reconnecting,
    #[error("Telegram error {code} {name}")]
    Telegram { code: i32, name: String },
    /// Telegram refused a chat operation for a reason the caller can act on (not an admin, not
    /// a member, a bad invite link…); the code is Telegram's error name.
    #[error("Telegram refused: {0}")]
    ChatRefused(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
    /// A process-wide bound (2FA hashing) is full; retry shortly.
    #[error("too many {0} at once; retry in a few seconds")]
    Busy(&'static str),
    /// The actor was going into hibernation when the request reached it: the request did not
    /// run, and the fleet sends it again to the account's next actor. Never reaches a user.
    #[error("the account is going into hibernation; the request did not run")]
    Hibernating,
}

impl AccountError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::FloodWait { .. } => "FLOOD_WAIT",
            Self::CodeInvalid => "PHONE_CODE_INVALID",
            Self::CodeExpired => "PHONE_CODE_EXPIRED",
            Self::PasswordInvalid => "PASSWORD_HASH_INVALID",
            Self::PhoneNotRegistered => "PHONE_NUMBER_UNOCCUPIED",
            Self::PhoneInvalid => "PHONE_NUMBER_INVALID",
            Self::PhoneTaken => "PHONE_TAKEN",
            Self::BotTokenInvalid => "ACCESS_TOKEN_INVALID",
            Self::PeerInvalid(_) => "PEER_INVALID",
            Self::WrongState { .. } => "WRONG_ACCOUNT_STATE",
            Self::Unauthorized => "ACCOUNT_UNAUTHORIZED",
            Self::Banned => "ACCOUNT_BANNED",
            Self::Timeout => "TELEGRAM_TIMEOUT",
            Self::Reconnecting => "TELEGRAM_UNAVAILABLE",
            Self::Telegram { .. } => "TELEGRAM_ERROR",
            Self::ChatRefused(name) => name,
            Self::Internal(_) => "INTERNAL",
            Self::Busy(_) => "PASSWORD_CHECK_BUSY",
            Self::Hibernating => "ACCOUNT_HIBERNATING",
        }
    }
}

/// A piece of infrastructure an account needs and cannot fix by itself. Its outage is never the
/// account's fault: the supervisor retries with backoff and never counts it toward quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dependency {
    /// The database (SQLite file or PostgreSQL).
    Store,
    /// The secrets backend that opens sessions (Vault transit).
    Vault,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Store => "store",
            Self::Vault => "vault",
        }
    }

    /// The stable API error code for a request that needed it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Store => "STORE_UNAVAILABLE",
            Self::Vault => "VAULT_UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account actor could not start because a dependency is down (its `pre_start` error, which
/// the supervisor recognises by type).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{dependency} unavailable: {message}")]
pub struct DependencyDown {
    pub dependency: Dependency,
    pub message: String,
}
