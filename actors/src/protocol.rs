//! What the rest of tgfleet may ask of an account actor, and what it answers. The supervision
//! crate routes these; the API maps `AccountError` to HTTP statuses.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tgfleet_persistence::{AccountId, AccountState};

/// A request routed to one account actor.
#[derive(Debug, Clone)]
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
    BotSignIn {
        token: String,
    },
    LogOut,
    /// `peer` is `me`, `@username`, `+phone` or a numeric id. `dedupe_key` makes client re-sends idempotent.
    SendMessage {
        peer: String,
        text: String,
        dedupe_key: Option<String>,
    },
    /// The actor's live view: state, identity, flood waits.
    Status,
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
            Self::BotTokenInvalid => "ACCESS_TOKEN_INVALID",
            Self::PeerInvalid(_) => "PEER_INVALID",
            Self::WrongState { .. } => "WRONG_ACCOUNT_STATE",
            Self::Unauthorized => "ACCOUNT_UNAUTHORIZED",
            Self::Banned => "ACCOUNT_BANNED",
            Self::Timeout => "TELEGRAM_TIMEOUT",
            Self::Reconnecting => "TELEGRAM_UNAVAILABLE",
            Self::Telegram { .. } => "TELEGRAM_ERROR",
            Self::Internal(_) => "INTERNAL",
            Self::Hibernating => "ACCOUNT_HIBERNATING",
        }
    }
}
