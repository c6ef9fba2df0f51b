//! What a decision asks the actor to do. Decisions (`commands/`, `lifecycle.rs`) are pure and
//! return these; `executor.rs` is the only code that carries them out.

use std::time::Duration;

use tgfleet_persistence::{AccountUpdate, LogLevel};

use crate::commands::login::LoggedInUser;
use crate::state::State;

/// One integration-log line. Never holds a code, password, token or key.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub level: LogLevel,
    pub event: &'static str,
    pub error_code: Option<String>,
    pub message: String,
}

impl Line {
    pub fn new(level: LogLevel, event: &'static str, message: impl Into<String>) -> Self {
        Self {
            level,
            event,
            error_code: None,
            message: message.into(),
        }
    }

    pub fn code(mut self, error_code: impl Into<String>) -> Self {
        self.error_code = Some(error_code.into());
        self
    }
}

/// When a scheduled re-check fires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// The reconnect backoff for this attempt (with jitter, which the executor draws).
    Backoff {
        attempt: u32,
    },
    Exactly(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Move to `to`: the account row (with `update`), the state gauge, and `log` when the shown
    /// state changes or the line is a warning. Entering `State::Final` also ends the client and
    /// the actor.
    Become {
        to: State,
        update: AccountUpdate,
        log: Line,
    },
    /// A new state that the row does not show (another reconnect attempt): memory only.
    Set(State),
    Log {
        line: Line,
        details: serde_json::Value,
    },
    /// Write the finished login (it is refused when another account holds the phone, which the
    /// executor answers by logging this one out again).
    CompleteLogin {
        user: LoggedInUser,
        how: &'static str,
    },
    /// A re-check of a reconnecting or flood-waiting account (one at a time).
    ScheduleCheck(Delay),
    /// The client is useless (a dead runner, a broken connection): the next call builds a new one.
    DropClient,
    /// The authorization is dead: its key goes, so a new login can start from scratch.
    WipeSession,
    /// The pending login can no longer finish.
    ForgetPendingLogin,
    /// Start the liveness check (unless one runs).
    CheckHealth,
    /// Ask Telegram whether a pending QR token was scanned (after the running login step).
    PollQr,
    StartWatchdog,
    /// Disconnect, write `hibernated`, and drain the mailbox to end.
    Hibernate,
}
