//! What a failed Telegram call means for the account, decided in one place: a pure function of
//! the error and whether the session is authorized, so the whole table is tested without a DC.
//! The actor then carries the consequence out (states, logs, timers).

use crate::client::CallError;
use crate::stop::StopReason;

/// The account-level consequence of a failed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consequence {
    /// The authorization is over (revoked, banned) or must not be used here (duplicated): the
    /// actor stops in that final state.
    Stop(StopReason),
    /// Telegram was not reached. `rebuild`: drop the client first (a timed-out or dead runner
    /// can hang even grammers' own shutdown).
    Reconnect { rebuild: bool },
    /// Telegram asked to wait. `account_wide` when even the liveness probe of an authorized
    /// session is blocked; otherwise only that method waits and the rest keeps working.
    FloodWait { seconds: u32, account_wide: bool },
    /// An answer for this call only (a wrong code, a bad peer, our own refusal): the account
    /// itself is fine.
    Refused,
}

/// The consequence of `cause` (`None`: refused before Telegram was asked) for an account whose
/// session is `authorized` or not.
pub fn classify(cause: Option<&CallError>, authorized: bool) -> Consequence {
    match cause {
        Some(CallError::Rpc(rpc)) if authorized && is_revoked(rpc) => {
            Consequence::Stop(StopReason::Unauthorized)
        }
        Some(CallError::Rpc(rpc))
            if rpc.is("USER_DEACTIVATED*") || rpc.is("PHONE_NUMBER_BANNED") =>
        {
            Consequence::Stop(StopReason::Banned)
        }
        Some(CallError::Rpc(rpc)) if rpc.is("AUTH_KEY_DUPLICATED") => {
            Consequence::Stop(StopReason::Duplicated)
        }
        Some(CallError::Timeout) => Consequence::Reconnect { rebuild: true },
        Some(CallError::Network { runner_gone, .. }) => Consequence::Reconnect {
            rebuild: *runner_gone,
        },
        Some(CallError::FloodWait { method, seconds }) => Consequence::FloodWait {
            seconds: *seconds,
            account_wide: authorized && method == "updates.getState",
        },
        Some(CallError::Rpc(_)) | Some(CallError::Session(_)) | None => Consequence::Refused,
    }
}

/// Errors meaning the session's authorization is gone.
pub fn is_revoked(e: &grammers_mtsender::RpcError) -> bool {
    e.is("AUTH_KEY_UNREGISTERED")
        || e.is("SESSION_REVOKED")
        || e.is("SESSION_EXPIRED")
        || e.is("AUTH_KEY_INVALID")
}

#[cfg(test)]
mod tests {
    use super::*;
    use grammers_mtsender::RpcError;
    use grammers_tl_types as tl;

    fn rpc(code: i32, name: &str) -> CallError {
        CallError::Rpc(RpcError::from(tl::types::RpcError {
            error_code: code,
            error_message: name.into(),
        }))
    }

    fn flood(method: &str) -> CallError {
        CallError::FloodWait {
            method: method.into(),
            seconds: 42,
        }
    }

    fn network(runner_gone: bool) -> CallError {
        CallError::Network {
            detail: "reset".into(),
            runner_gone,
        }
    }

    #[test]
    fn every_failure_has_one_consequence() {
        use Consequence::*;
        let table: Vec<(Option<CallError>, bool, Consequence)> = vec![
            // The authorization ended at Telegram.
            (
                Some(rpc(401, "AUTH_KEY_UNREGISTERED")),
                true,
                Stop(StopReason::Unauthorized),
            ),
            (
                Some(rpc(401, "SESSION_REVOKED")),
                true,
                Stop(StopReason::Unauthorized),
            ),
            (
                Some(rpc(401, "SESSION_EXPIRED")),
                true,
                Stop(StopReason::Unauthorized),
            ),
            (
                Some(rpc(401, "AUTH_KEY_INVALID")),
                true,
                Stop(StopReason::Unauthorized),
            ),
            // …but before a login there is no authorization to lose.
            (Some(rpc(401, "AUTH_KEY_UNREGISTERED")), false, Refused),
            (
                Some(rpc(401, "USER_DEACTIVATED_BAN")),
                true,
                Stop(StopReason::Banned),
            ),
            (
                Some(rpc(401, "USER_DEACTIVATED")),
                true,
                Stop(StopReason::Banned),
            ),
            (
                Some(rpc(400, "PHONE_NUMBER_BANNED")),
                false,
                Stop(StopReason::Banned),
            ),
            (
                Some(rpc(406, "AUTH_KEY_DUPLICATED")),
                true,
                Stop(StopReason::Duplicated),
            ),
            (
                Some(rpc(406, "AUTH_KEY_DUPLICATED")),
                false,
                Stop(StopReason::Duplicated),
            ),
            // Not reached: reconnect, rebuilding the client when it may hang.
            (Some(CallError::Timeout), true, Reconnect { rebuild: true }),
            (Some(CallError::Timeout), false, Reconnect { rebuild: true }),
            (Some(network(true)), true, Reconnect { rebuild: true }),
            (Some(network(false)), true, Reconnect { rebuild: false }),
            // Flood waits: the whole account only when its liveness probe is blocked.
            (
                Some(flood("updates.getState")),
                true,
                FloodWait {
                    seconds: 42,
                    account_wide: true,
                },
            ),
            (
                Some(flood("updates.getState")),
                false,
                FloodWait {
                    seconds: 42,
                    account_wide: false,
                },
            ),
            (
                Some(flood("messages.sendMessage")),
                true,
                FloodWait {
                    seconds: 42,
                    account_wide: false,
                },
            ),
            // This call's answer only.
            (Some(rpc(400, "PHONE_CODE_INVALID")), false, Refused),
            (Some(rpc(400, "PEER_ID_INVALID")), true, Refused),
            (Some(rpc(500, "INTERDC_2_CALL_ERROR")), true, Refused),
            (Some(CallError::Session("disk full".into())), true, Refused),
            (None, true, Refused),
            (None, false, Refused),
        ];
        for (cause, authorized, expected) in table {
            assert_eq!(
                classify(cause.as_ref(), authorized),
                expected,
                "{cause:?}, authorized: {authorized}"
            );
        }
    }
}
