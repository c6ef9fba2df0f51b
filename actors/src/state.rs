//! The one state of an account actor. Every decision (`commands/`, `lifecycle.rs`) reads it and
//! every transition replaces it whole, so no flag beside it can say something else.
//!
//! What a login step needs in order to go on (phone, `phone_code_hash`, the QR token) is not
//! copied here: it lives in the sealed session, the only place that survives a crash, and the
//! state only says which step the account is at.

use chrono::{DateTime, Utc};
use tgfleet_persistence::AccountState;

use crate::session::PendingLogin;
use crate::stop::StopReason;

/// Where one account is. `account_state` is what the account row and the API show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No authorization, no login under way.
    New,
    /// auth.sendCode answered; the code is awaited.
    AwaitingCode,
    /// The code (or a QR scan) was accepted and the 2FA password is awaited.
    AwaitingPassword,
    /// A QR token is out; a scan completes the login.
    AwaitingQr,
    /// Authorized, and Telegram answers.
    Active,
    /// Authorized, and Telegram did not answer the last call: re-checked after a backoff.
    Reconnecting {
        /// Failed checks in a row (the backoff grows with it).
        attempt: u32,
        /// Why, as the integration log said it.
        cause: String,
    },
    /// Authorized, and Telegram asked the whole account to wait.
    FloodWait { until: DateTime<Utc> },
    /// Authorized, with no connection until its next call (an actor is up only for a status read).
    Hibernated,
    /// Going into hibernation: the mailbox drains and the actor ends itself.
    Hibernating,
    /// The session was revoked; a new login may start.
    Unauthorized,
    /// The Telegram account is deactivated; a new login may start.
    Banned,
    /// Stopping on its own for `StopReason`: nothing but the stop runs any more.
    Final(StopReason),
}

impl State {
    /// Every kind of state, one each, in the order ARCHITECTURE.md lists them.
    pub const NAMES: [&'static str; 12] = [
        "New",
        "AwaitingCode",
        "AwaitingPassword",
        "AwaitingQr",
        "Active",
        "Reconnecting",
        "FloodWait",
        "Hibernated",
        "Hibernating",
        "Unauthorized",
        "Banned",
        "Final",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Self::New => "New",
            Self::AwaitingCode => "AwaitingCode",
            Self::AwaitingPassword => "AwaitingPassword",
            Self::AwaitingQr => "AwaitingQr",
            Self::Active => "Active",
            Self::Reconnecting { .. } => "Reconnecting",
            Self::FloodWait { .. } => "FloodWait",
            Self::Hibernated => "Hibernated",
            Self::Hibernating => "Hibernating",
            Self::Unauthorized => "Unauthorized",
            Self::Banned => "Banned",
            Self::Final(_) => "Final",
        }
    }

    /// What the account row says while the actor is in this state.
    pub fn account_state(&self) -> AccountState {
        match self {
            Self::New => AccountState::New,
            Self::AwaitingCode => AccountState::AwaitingCode,
            Self::AwaitingPassword => AccountState::AwaitingPassword,
            Self::AwaitingQr => AccountState::AwaitingQr,
            Self::Active => AccountState::Active,
            Self::Reconnecting { .. } => AccountState::Reconnecting,
            Self::FloodWait { .. } => AccountState::FloodWait,
            Self::Hibernated | Self::Hibernating => AccountState::Hibernated,
            Self::Unauthorized => AccountState::Unauthorized,
            Self::Banned => AccountState::Banned,
            Self::Final(reason) => reason.final_state(),
        }
    }

    /// Authorized with a connection kept (or being regained).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Self::Active | Self::Reconnecting { .. } | Self::FloodWait { .. }
        )
    }

    /// The actor is ending (final state or hibernation): requests no longer run.
    pub fn is_ending(&self) -> bool {
        matches!(self, Self::Final(_) | Self::Hibernating)
    }

    /// The state the session alone implies, when no connection problem is in the way: its
    /// pending login's step, else whether it holds an authorization.
    pub fn implied(pending: Option<&PendingLogin>, authorized: bool) -> State {
        match pending {
            Some(PendingLogin::Code { .. }) => State::AwaitingCode,
            Some(PendingLogin::Password { .. }) => State::AwaitingPassword,
            Some(PendingLogin::Qr { .. }) => State::AwaitingQr,
            None if authorized => State::Active,
            None => State::New,
        }
    }

    /// The state a freshly loaded actor is in, from what the row said and what the session
    /// implies (the session is the truth about logins; the row may lag behind a crash).
    /// `flood_wait_until` is the row's.
    pub fn at_start(
        row: AccountState,
        flood_wait_until: Option<DateTime<Utc>>,
        implied: State,
        hibernation_on: bool,
    ) -> State {
        // A hibernated account stays so across restarts and fleet starts (a cold start of many
        // hibernated accounts opens no connections), unless hibernation was switched off.
        let keeps_row = matches!(
            row,
            AccountState::Active | AccountState::Reconnecting | AccountState::FloodWait
        ) || (row == AccountState::Hibernated && hibernation_on);
        match implied {
            State::Active if keeps_row => match row {
                // Why it was reconnecting is gone with the old actor; the first check says anew.
                AccountState::Reconnecting => State::Reconnecting {
                    attempt: 0,
                    cause: "restarted while reconnecting".into(),
                },
                // The wait's end is in the row; the first check finds out whether it still holds.
                AccountState::FloodWait => State::FloodWait {
                    until: flood_wait_until.unwrap_or_else(Utc::now),
                },
                AccountState::Hibernated => State::Hibernated,
                _ => State::Active,
            },
            // An account that lost its authorization keeps saying why (unauthorized, banned)
            // until a new login starts, rather than looking brand new.
            State::New if row == AccountState::Unauthorized => State::Unauthorized,
            State::New if row == AccountState::Banned => State::Banned,
            implied => implied,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<State> {
        vec![
            State::New,
            State::AwaitingCode,
            State::AwaitingPassword,
            State::AwaitingQr,
            State::Active,
            State::Reconnecting {
                attempt: 1,
                cause: "timeout".into(),
            },
            State::FloodWait { until: Utc::now() },
            State::Hibernated,
            State::Hibernating,
            State::Unauthorized,
            State::Banned,
            State::Final(StopReason::LoggedOut),
        ]
    }

    #[test]
    fn names_list_every_state_once() {
        let names: Vec<_> = one_of_each().iter().map(State::name).collect();
        assert_eq!(names, State::NAMES);
    }

    /// Every state the API can show comes from one of the actor's states, except `quarantined`,
    /// which only the supervisor holds (an account with no actor).
    #[test]
    fn every_account_state_but_quarantined_is_an_actor_state() {
        let mut shown: Vec<AccountState> = one_of_each().iter().map(State::account_state).collect();
        for reason in [
            StopReason::Unauthorized,
            StopReason::Banned,
            StopReason::Duplicated,
            StopReason::Deleted,
        ] {
            shown.push(State::Final(reason).account_state());
        }
        for state in AccountState::ALL {
            assert_eq!(
                shown.contains(&state),
                state != AccountState::Quarantined,
                "{state}"
            );
        }
    }

    /// ARCHITECTURE.md's table of account states is this enum: same names, same order.
    #[test]
    fn architecture_md_lists_these_states() {
        let doc = include_str!("../../ARCHITECTURE.md");
        let table: Vec<&str> = doc
            .lines()
            .skip_while(|l| !l.starts_with("### Account states"))
            .filter_map(|l| l.strip_prefix("| `State::"))
            .filter_map(|l| l.split(['`', ' ', '{', '(']).next())
            .collect();
        assert_eq!(
            table,
            State::NAMES,
            "ARCHITECTURE.md's account states table"
        );
    }

    #[test]
    fn start_state_follows_the_session_and_keeps_what_the_row_knows() {
        use AccountState as Row;
        let start = |row, implied| State::at_start(row, None, implied, true);
        assert_eq!(start(Row::Active, State::Active), State::Active);
        assert!(matches!(
            start(Row::Reconnecting, State::Active),
            State::Reconnecting { .. }
        ));
        assert_eq!(start(Row::Hibernated, State::Active), State::Hibernated);
        assert_eq!(
            State::at_start(Row::Hibernated, None, State::Active, false),
            State::Active
        );
        let until = Utc::now() + chrono::Duration::seconds(60);
        assert_eq!(
            State::at_start(Row::FloodWait, Some(until), State::Active, true),
            State::FloodWait { until }
        );
        // The row lagged behind a crash: the session's login step wins.
        assert_eq!(start(Row::New, State::AwaitingCode), State::AwaitingCode);
        assert_eq!(start(Row::Active, State::New), State::New);
        assert_eq!(start(Row::Unauthorized, State::New), State::Unauthorized);
        assert_eq!(start(Row::Banned, State::New), State::Banned);
        assert_eq!(start(Row::Banned, State::AwaitingCode), State::AwaitingCode);
        assert_eq!(start(Row::LoggedOut, State::New), State::New);
        // A stopped account (a duplicated key) that an operator restarts is live again.
        assert_eq!(start(Row::Stopped, State::Active), State::Active);
    }
}
