//! What a failed operation does to the account, whichever command ran it: `classify` names the
//! consequence, this turns it into effects.

use tgfleet_persistence::{AccountUpdate, LogLevel};

use super::{Class, OpFailure, View};
use crate::classify::{classify, Consequence};
use crate::client::CallError;
use crate::effect::{Delay, Effect, Line};
use crate::protocol::AccountError;
use crate::state::State;
use crate::stop::StopReason;

/// The cause a bound account's network failure is given (`account.state_changed`, the log).
pub const PROXY_UNREACHABLE: &str = "proxy_unreachable";

/// The effects of `failure` of the operation `name`, and the caller's error.
pub(crate) fn decide(
    view: &View,
    name: &'static str,
    class: Class,
    failure: OpFailure,
) -> (Vec<Effect>, AccountError) {
    let OpFailure { error, cause } = failure;
    let login = class == Class::Login;
    let event = if login {
        "login_failed"
    } else {
        "telegram_error"
    };
    let describe = cause.as_ref().map(CallError::describe).unwrap_or_default();
    // Every connection of a bound account goes through its proxy, so a connection that cannot
    // be made is first of all the proxy's (dead, refusing us, or cut off from the DC); the
    // account waits for it and never tries without it.
    let cause_code = match &cause {
        // A proxy that accepts and then says nothing (black-holed) shows as a timeout.
        Some(CallError::Network { .. } | CallError::Timeout) if view.row.proxy_id.is_some() => {
            Some(PROXY_UNREACHABLE.to_owned())
        }
        other => other.as_ref().map(CallError::code),
    };
    let op = serde_json::json!({ "op": name });
    let mut effects = Vec::new();
    // The state as the effects so far leave it.
    let mut current = view.state.clone();
    match classify(cause.as_ref(), view.authorized) {
        Consequence::Stop(reason) => {
            let message = match reason {
                StopReason::Unauthorized => format!("{describe}: the session was revoked"),
                StopReason::Duplicated => "AUTH_KEY_DUPLICATED: this session is in use by \
                    another client at the same time (another process on this database, or an \
                    exported copy); the session is kept: stop the other client, then restart \
                    the account"
                    .into(),
                _ => describe.clone(),
            };
            let code = match &cause {
                Some(CallError::Rpc(rpc)) => Some(rpc.name.clone()),
                _ => cause_code,
            };
            let error = match (reason, &cause) {
                (StopReason::Unauthorized, _) => AccountError::Unauthorized,
                (StopReason::Banned, _) => AccountError::Banned,
                (_, Some(CallError::Rpc(rpc))) => AccountError::Telegram {
                    code: rpc.code,
                    name: rpc.name.clone(),
                },
                _ => error,
            };
            return (stop(reason, Some(message), code), error);
        }
        Consequence::Reconnect { rebuild } => {
            if rebuild {
                // The runner is gone (or the connection is wedged): start over.
                effects.push(Effect::DropClient);
            }
            if view.authorized && view.state.is_live() {
                let attempt = match view.state {
                    State::Reconnecting { attempt, .. } => attempt.saturating_add(1),
                    _ => 1,
                };
                let to = State::Reconnecting {
                    attempt,
                    cause: describe.clone(),
                };
                if matches!(view.state, State::Reconnecting { .. }) {
                    effects.push(Effect::Set(to));
                } else {
                    let mut line = Line::new(
                        LogLevel::Warn,
                        "reconnecting",
                        format!("Telegram unreachable ({describe}); reconnecting"),
                    );
                    line.error_code = cause_code;
                    effects.push(Effect::Become {
                        to,
                        update: AccountUpdate {
                            last_error: Some(Some(describe.clone())),
                            ..Default::default()
                        },
                        log: line,
                    });
                }
                effects.push(Effect::ScheduleCheck(Delay::Backoff { attempt }));
            } else {
                let mut line =
                    Line::new(LogLevel::Warn, event, format!("{name} failed: {describe}"));
                line.error_code = cause_code;
                effects.push(Effect::Log { line, details: op });
            }
        }
        Consequence::FloodWait {
            seconds,
            account_wide,
        } => {
            // At the store's precision (PostgreSQL keeps microseconds), so memory and row agree.
            let until = chrono::SubsecRound::trunc_subsecs(
                view.now + chrono::Duration::seconds(i64::from(seconds)),
                6,
            );
            let later = view.row.flood_wait_until.is_none_or(|u| u < until);
            let to = if account_wide {
                State::FloodWait { until }
            } else {
                current.clone()
            };
            if later || to.account_state() != current.account_state() {
                let message = match &cause {
                    Some(CallError::FloodWait { method, .. }) => {
                        format!("FLOOD_WAIT of {seconds} s on {method}")
                    }
                    _ => format!("FLOOD_WAIT of {seconds} s"),
                };
                current = to.clone();
                effects.push(Effect::Become {
                    to,
                    update: AccountUpdate {
                        flood_wait_until: Some(Some(until)),
                        ..Default::default()
                    },
                    log: Line::new(LogLevel::Warn, "flood_wait", message).code("FLOOD_WAIT"),
                });
            }
            if account_wide {
                effects.push(Effect::ScheduleCheck(Delay::Exactly(
                    std::time::Duration::from_secs(u64::from(seconds)),
                )));
            }
        }
        Consequence::Refused => {
            let line = match &cause {
                Some(other) => {
                    Line::new(LogLevel::Warn, event, format!("{name} failed: {describe}"))
                        .code(other.code())
                }
                None => Line::new(
                    LogLevel::Info,
                    event,
                    format!("{name} refused: {}", error.code()),
                )
                .code(error.code()),
            };
            effects.push(Effect::Log { line, details: op });
        }
    }
    // A failed login step may have changed the pending login (an expired code is dropped).
    if login && !view.authorized {
        let to = view.session_state();
        if to.account_state() != current.account_state() {
            effects.push(Effect::Become {
                to,
                update: AccountUpdate::default(),
                log: Line::new(
                    LogLevel::Info,
                    event,
                    format!("{name} failed: {}", error.code()),
                )
                .code(error.code()),
            });
        }
    }
    (effects, error)
}

/// Ends the account in a final state: written, logged, and (for a dead authorization) wiped.
pub(crate) fn stop(
    reason: StopReason,
    last_error: Option<String>,
    error_code: Option<String>,
) -> Vec<Effect> {
    let level = if reason == StopReason::LoggedOut {
        LogLevel::Info
    } else {
        LogLevel::Error
    };
    let message = match &last_error {
        Some(e) => format!("account stopped ({reason}): {e}"),
        None => format!("account stopped ({reason})"),
    };
    let mut line = Line::new(level, "account_stopped", message);
    line.error_code = error_code;
    let mut effects = vec![Effect::Become {
        to: State::Final(reason),
        update: AccountUpdate {
            last_error: Some(last_error),
            ..Default::default()
        },
        log: line,
    }];
    // A revoked or banned authorization is dead: keeping its key would make every later start
    // believe the account is logged in, and refuse a new login. Wipe it, so the owner can log
    // the account in again from scratch. A duplicated key is not dead (Telegram only refused it
    // on a second connection): wiping it would turn a second process into a lost account.
    if matches!(reason, StopReason::Unauthorized | StopReason::Banned) {
        effects.push(Effect::WipeSession);
    }
    effects
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_view::{limits, row, view};
    use crate::session::PendingLogin;

    fn rpc(code: i32, name: &str) -> CallError {
        CallError::Rpc(grammers_mtsender::RpcError::from(
            grammers_tl_types::types::RpcError {
                error_code: code,
                error_message: name.into(),
            },
        ))
    }

    fn fail(cause: CallError) -> OpFailure {
        OpFailure::from(cause)
    }

    #[test]
    fn a_timeout_of_an_active_account_reconnects_with_a_growing_backoff() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let (effects, error) = decide(
            &view(&active, &limits, &row),
            "send_message",
            Class::Call,
            fail(CallError::Timeout),
        );
        assert_eq!(error.code(), "TELEGRAM_TIMEOUT");
        // A timed-out client can hang even grammers' own shutdown: it is dropped first.
        assert_eq!(effects[0], Effect::DropClient);
        assert!(matches!(
            &effects[1],
            Effect::Become { to: State::Reconnecting { attempt: 1, .. }, log, .. } if log.event == "reconnecting"
        ));
        assert_eq!(
            effects[2],
            Effect::ScheduleCheck(Delay::Backoff { attempt: 1 })
        );
        // Already reconnecting: the next attempt is counted, not written or logged again.
        let reconnecting = State::Reconnecting {
            attempt: 3,
            cause: "timeout".into(),
        };
        let (effects, _) = decide(
            &view(&reconnecting, &limits, &row),
            "health",
            Class::Health,
            fail(CallError::Timeout),
        );
        assert!(matches!(
            &effects[1],
            Effect::Set(State::Reconnecting { attempt: 4, .. })
        ));
        assert_eq!(
            effects[2],
            Effect::ScheduleCheck(Delay::Backoff { attempt: 4 })
        );
    }

    #[test]
    fn a_revoked_session_stops_the_account_and_wipes_its_key() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let (effects, error) = decide(
            &view(&active, &limits, &row),
            "send_message",
            Class::Call,
            fail(rpc(401, "AUTH_KEY_UNREGISTERED")),
        );
        assert_eq!(error.code(), "ACCOUNT_UNAUTHORIZED");
        assert!(matches!(
            &effects[0],
            Effect::Become {
                to: State::Final(StopReason::Unauthorized),
                ..
            }
        ));
        assert_eq!(effects[1], Effect::WipeSession);
    }

    #[test]
    fn a_duplicated_key_stops_the_account_and_keeps_its_key() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let (effects, _) = decide(
            &view(&active, &limits, &row),
            "health",
            Class::Health,
            fail(rpc(406, "AUTH_KEY_DUPLICATED")),
        );
        assert!(matches!(
            &effects[..],
            [Effect::Become {
                to: State::Final(StopReason::Duplicated),
                ..
            }]
        ));
    }

    #[test]
    fn a_flood_wait_on_one_method_is_recorded_and_the_account_stays_active() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let (effects, error) = decide(
            &view(&active, &limits, &row),
            "send_message",
            Class::Call,
            fail(CallError::FloodWait {
                method: "messages.sendMessage".into(),
                seconds: 3600,
            }),
        );
        assert_eq!(error.code(), "FLOOD_WAIT");
        assert!(matches!(
            &effects[..],
            [Effect::Become { to: State::Active, update, .. }] if update.flood_wait_until.is_some()
        ));
    }

    #[test]
    fn an_account_wide_flood_wait_waits_and_rechecks_when_it_ends() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let (effects, _) = decide(
            &view(&active, &limits, &row),
            "health",
            Class::Health,
            fail(CallError::FloodWait {
                method: "updates.getState".into(),
                seconds: 3600,
            }),
        );
        let Effect::Become {
            to: State::FloodWait { until },
            update,
            ..
        } = &effects[0]
        else {
            panic!("{effects:?}");
        };
        assert_eq!(update.flood_wait_until, Some(Some(*until)));
        assert_eq!(
            effects[1],
            Effect::ScheduleCheck(Delay::Exactly(std::time::Duration::from_secs(3600)))
        );
    }

    #[test]
    fn an_expired_code_takes_the_login_back_to_new() {
        let limits = limits();
        let row = row();
        let awaiting = State::AwaitingCode;
        let mut v = view(&awaiting, &limits, &row);
        // The operation dropped the pending login before it reported.
        v.pending = None;
        let (effects, error) = decide(
            &v,
            "sign_in",
            Class::Login,
            OpFailure {
                error: AccountError::CodeExpired,
                cause: Some(rpc(400, "PHONE_CODE_EXPIRED")),
            },
        );
        assert_eq!(error.code(), "PHONE_CODE_EXPIRED");
        assert!(matches!(
            effects.last(),
            Some(Effect::Become { to: State::New, .. })
        ));
        // A mistyped code keeps the login where it is.
        v.pending = Some(PendingLogin::Password {
            hint: None,
            phone: None,
        });
        let password = State::AwaitingPassword;
        v.state = &password;
        let (effects, _) = decide(
            &v,
            "check_password",
            Class::Login,
            OpFailure {
                error: AccountError::PasswordInvalid,
                cause: Some(rpc(400, "PASSWORD_HASH_INVALID")),
            },
        );
        assert!(
            effects.iter().all(|e| !matches!(e, Effect::Become { .. })),
            "{effects:?}"
        );
    }
}
