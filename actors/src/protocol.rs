//! What the rest of tgfleet may ask of an account actor, and what it answers. The supervision
//! crate routes these; the API maps `AccountError` to HTTP statuses.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tgfleet_persistence::{AccountId, AccountState};

/// A request routed to one account actor. Its `Debug` names the request and hides every code,
/// password, token and message text (requests end up in panics and traces).
#[derive(Clone)]
pub enum AccountRequest {
    /// auth.sendCode; the pending login (phone, phone_code_hash, code type) is persisted before replying.
    SendCode {
        phone: String,
    },
    SignIn {
        code: String,
    },
    CheckPassword {
        password: String,
    },
    /// auth.exportLoginToken; completes in the background on updateLoginToken.
    QrLogin,
    /// The pending QR login's current token (no Telegram call) while it is valid; a new one
    /// (as `QrLogin`) when there is none.
    QrCode,
    BotSignIn {
        token: String,
    },
    LogOut,
    /// `peer` is `me`, `@username`, `+phone` or a numeric id. `dedupe_key` makes client re-sends idempotent.
    SendMessage {
        peer: crate::peer::Peer,
        text: String,
        dedupe_key: Option<String>,
    },
    /// The actor's live view: state, identity, flood waits.
    Status,
}

impl std::fmt::Debug for AccountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HIDDEN: &str = "<redacted>";
        match self {
            Self::SendCode { phone } => f.debug_struct("SendCode").field("phone", phone).finish(),
            Self::SignIn { .. } => f.debug_struct("SignIn").field("code", &HIDDEN).finish(),
            Self::CheckPassword { .. } => f
                .debug_struct("CheckPassword")
                .field("password", &HIDDEN)
                .finish(),
            Self::QrLogin => f.write_str("QrLogin"),
            Self::QrCode => f.write_str("QrCode"),
            Self::BotSignIn { .. } => f.debug_struct("BotSignIn").field("token", &HIDDEN).finish(),
            Self::LogOut => f.write_str("LogOut"),
            Self::SendMessage {
                peer, dedupe_key, ..
            } => f
                .debug_struct("SendMessage")
                .field("peer", peer)
                .field("text", &HIDDEN)
                .field("dedupe_key", dedupe_key)
                .finish(),
            Self::Status => f.write_str("Status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_prints_its_secrets() {
        let secrets = [
            AccountRequest::SignIn {
                code: "31337".into(),
            },
            AccountRequest::CheckPassword {
                password: "hunter2-2fa".into(),
            },
            AccountRequest::BotSignIn {
                token: "123456:AAE-secret-token".into(),
            },
            AccountRequest::SendMessage {
                peer: crate::peer::Peer::Me,
                text: "private words".into(),
                dedupe_key: None,
            },
        ];
        for request in secrets {
            let shown = format!("{request:?} {request:#?}");
            for secret in ["31337", "hunter2-2fa", "AAE-secret-token", "private words"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub enum AccountReply {
    CodeSent {
        code_type: String,
        timeout_s: Option<u32>,
    },
    /// Login finished or moved on: `state` is `active` or `awaiting_password` (with `hint`).
    LoginStep {
        state: AccountState,
        hint: Option<String>,
    },
    Qr {
        url: String,
        expires_at: DateTime<Utc>,
    },
    Sent {
        message_id: i32,
    },
    LoggedOut,
    Status(AccountStatus),
}

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
