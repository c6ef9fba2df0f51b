//! What an account does on its own, as pure decisions over a [`View`]: connecting when it starts,
//! healing a dropped client, re-checks, the watchdog, hibernating and waking, and giving up a
//! login that can no longer finish. `executor.rs` carries the effects out.

use tgfleet_persistence::{AccountUpdate, LogLevel};

use std::time::Duration;

use crate::commands::View;
use crate::effect::{Effect, Line};
use crate::env::AccountLimits;
use crate::session::PendingLogin;
use crate::state::State;

/// Right after the actor is up.
pub(crate) fn on_start(view: &View) -> Vec<Effect> {
    let mut effects = Vec::new();
    if view.state.is_live() {
        // Connect now: an authorized account should be reachable without waiting for a request.
        effects.push(Effect::CheckHealth);
    } else if view.qr_pending() {
        // The token may have been scanned while no actor was listening.
        effects.push(Effect::PollQr);
    }
    // Also for a hibernated account: an actor started for one by a status read must end again.
    effects.push(Effect::StartWatchdog);
    effects
}

/// A login whose code was sent (or whose QR token ran out) longer than `pending_login_ttl` ago
/// cannot finish: forget it and go back to `new`, so the row no longer says a login is waiting
/// and the next boot does not start this account again. The actor stays to serve whatever call
/// started it (typically a request for a new code).
pub(crate) fn expire_stale_login(view: &View) -> Vec<Effect> {
    let since = match &view.pending {
        Some(PendingLogin::Code { sent_at, .. }) => *sent_at,
        Some(PendingLogin::Qr { expires_at, .. }) => *expires_at,
        _ => return Vec::new(),
    };
    let age = (view.now - since).to_std().unwrap_or_default();
    if age < view.limits.pending_login_ttl {
        return Vec::new();
    }
    let message = format!(
        "the login started {} min ago and its code is no longer valid; start the login again",
        age.as_secs() / 60
    );
    vec![
        Effect::ForgetPendingLogin,
        Effect::Become {
            to: State::New,
            update: AccountUpdate {
                last_error: Some(Some(message.clone())),
                ..Default::default()
            },
            log: Line::new(LogLevel::Warn, "login_expired", message).code("PHONE_CODE_EXPIRED"),
        },
    ]
}

/// The grammers runner of the current client ended: rebuild and see where the account is.
pub(crate) fn on_runner_exited(view: &View, panicked: bool) -> Vec<Effect> {
    let how = if panicked { "crashed" } else { "ended" };
    let mut effects = vec![
        Effect::DropClient,
        Effect::Log {
            line: Line::new(
                LogLevel::Warn,
                "client_restarted",
                format!("the Telegram client {how}; rebuilding it"),
            )
            .code("CLIENT_CRASHED"),
            details: serde_json::json!({ "panicked": panicked }),
        },
    ];
    if view.state.is_live() {
        effects.push(Effect::CheckHealth);
    } else if view.qr_pending() {
        effects.push(Effect::PollQr);
    }
    effects
}

/// The home connection closed. Heard only while updates are on: during a login (updateLoginToken
/// must get through), or for a logged-in account until its client's first call mutes them; later
/// drops are healed by the next call.
pub(crate) fn on_connection_closed(view: &View) -> Vec<Effect> {
    if view.state.is_live() && !view.check_scheduled {
        vec![Effect::CheckHealth]
    } else if view.qr_pending() {
        vec![Effect::PollQr]
    } else {
        Vec::new()
    }
}

/// updateLoginToken: a pending QR token was scanned.
pub(crate) fn on_login_token(view: &View) -> Vec<Effect> {
    if view.qr_pending() {
        vec![Effect::PollQr]
    } else {
        Vec::new()
    }
}

/// A scheduled re-check is due.
pub(crate) fn on_check(view: &View) -> Vec<Effect> {
    if view.state.is_live() {
        vec![Effect::CheckHealth]
    } else {
        Vec::new()
    }
}

/// How long reconnect attempt `attempt` waits: doubling from `reconnect_backoff_min`, capped at
/// `reconnect_backoff_max`, then 50–100 % of that by `jitter` (0.0–1.0, drawn by the executor),
/// so a fleet that lost Telegram at once does not come back at once.
pub(crate) fn reconnect_delay(limits: &AccountLimits, attempt: u32, jitter: f64) -> Duration {
    let exp = limits
        .reconnect_backoff_min
        .saturating_mul(1u32 << attempt.min(20));
    let capped = exp.min(limits.reconnect_backoff_max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// The periodic watchdog: hibernate an idle account, or probe one that has been quiet.
pub(crate) fn on_watchdog(view: &View) -> Vec<Effect> {
    if should_hibernate(view) {
        return hibernate(view);
    }
    let quiet = view.since_ok >= view.limits.watchdog_period;
    if view.state.is_live() && quiet && !view.check_scheduled {
        vec![Effect::CheckHealth]
    } else {
        Vec::new()
    }
}

/// An idle, healthy, authorized account with nothing in flight may hibernate (again: an actor
/// started for a hibernated account by a status read goes back as it came). One that receives
/// updates never does: idle for calls is not idle for what comes in, and a disconnected account
/// would hear of a message only at its next call.
pub(crate) fn should_hibernate(view: &View) -> bool {
    view.limits.hibernate_after.is_some_and(|after| {
        matches!(view.state, State::Active | State::Hibernated)
            && view.authorized
            && !view.row.receives()
            && view.ops_in_flight == 0
            && !view.check_scheduled
            && view.since_request >= after
    })
}

/// A hibernated account is a row and a sealed session, with no task, channel or connection in
/// memory; its next request starts a new actor, which reconnects with the same auth key. The end
/// is a drain, not a stop, so no request is lost on the way: requests already queued are
/// answered `Hibernating` (the fleet sends them to the next actor) and later ones are refused at
/// the mailbox, which the fleet also retries.
fn hibernate(view: &View) -> Vec<Effect> {
    let write = if matches!(view.state, State::Hibernated) {
        Effect::Set(State::Hibernating)
    } else {
        let idle = view.since_request.as_secs();
        Effect::Become {
            to: State::Hibernating,
            update: AccountUpdate::default(),
            log: Line::new(
                LogLevel::Info,
                "hibernated",
                format!("no call for {idle} s: disconnected until the next call"),
            ),
        }
    };
    vec![write, Effect::Hibernate]
}

/// A request reached a hibernated account: it is `active` again at once, and the request's own
/// Telegram call opens the connection (a failure there is an ordinary `reconnecting`).
pub(crate) fn wake(view: &View) -> Vec<Effect> {
    if !(matches!(view.state, State::Hibernated) && view.authorized) {
        return Vec::new();
    }
    vec![
        Effect::StartWatchdog,
        Effect::Become {
            to: State::Active,
            update: AccountUpdate::default(),
            log: Line::new(
                LogLevel::Info,
                "woken",
                "a call woke the hibernated account; reconnecting",
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_view::{limits, row, view};

    #[test]
    fn an_idle_active_account_hibernates_and_a_busy_one_does_not() {
        let mut limits = limits();
        limits.hibernate_after = Some(Duration::from_secs(60));
        let row = row();
        let active = State::Active;
        let mut v = view(&active, &limits, &row);
        v.since_request = Duration::from_secs(61);
        assert!(matches!(
            &on_watchdog(&v)[..],
            [Effect::Become { to: State::Hibernating, log, .. }, Effect::Hibernate] if log.event == "hibernated"
        ));
        v.ops_in_flight = 1;
        assert!(!should_hibernate(&v));
        v.ops_in_flight = 0;
        v.check_scheduled = true;
        assert!(!should_hibernate(&v));
        v.check_scheduled = false;
        v.since_request = Duration::from_secs(59);
        assert!(!should_hibernate(&v));
        // Up for a status read only: back to sleep without writing the row again.
        let hibernated = State::Hibernated;
        let mut v = view(&hibernated, &limits, &row);
        v.since_request = Duration::from_secs(61);
        assert_eq!(
            on_watchdog(&v),
            vec![Effect::Set(State::Hibernating), Effect::Hibernate]
        );
    }

    #[test]
    fn an_account_that_receives_updates_never_hibernates() {
        let mut limits = limits();
        limits.hibernate_after = Some(Duration::from_secs(60));
        let mut row = row();
        row.receive_updates = Some(true);
        let active = State::Active;
        let mut v = view(&active, &limits, &row);
        v.since_request = Duration::from_secs(3600);
        assert!(!should_hibernate(&v));
        assert!(!matches!(&on_watchdog(&v)[..], [Effect::Become { .. }, ..]));
        // A bot receives by default; switched off, it rests like any other.
        let mut bot = row.clone();
        bot.kind = tgfleet_persistence::AccountKind::Bot;
        bot.receive_updates = None;
        let v2 = View { row: &bot, ..v };
        assert!(!should_hibernate(&v2));
        let mut off = bot.clone();
        off.receive_updates = Some(false);
        let v3 = View { row: &off, ..v2 };
        assert!(should_hibernate(&v3));
    }

    #[test]
    fn the_watchdog_probes_a_quiet_live_account_once() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let mut v = view(&active, &limits, &row);
        v.since_ok = limits.watchdog_period;
        assert_eq!(on_watchdog(&v), vec![Effect::CheckHealth]);
        v.check_scheduled = true;
        assert!(on_watchdog(&v).is_empty());
        let new = State::New;
        let mut v = view(&new, &limits, &row);
        v.since_ok = limits.watchdog_period;
        assert!(on_watchdog(&v).is_empty());
    }

    #[test]
    fn a_request_wakes_only_an_authorized_hibernated_account() {
        let limits = limits();
        let row = row();
        let hibernated = State::Hibernated;
        assert!(matches!(
            &wake(&view(&hibernated, &limits, &row))[..],
            [
                Effect::StartWatchdog,
                Effect::Become {
                    to: State::Active,
                    ..
                }
            ]
        ));
        assert!(wake(&view(&State::Active, &limits, &row)).is_empty());
    }

    #[test]
    fn a_code_sent_longer_ago_than_the_ttl_is_forgotten() {
        let limits = limits();
        let row = row();
        let awaiting = State::AwaitingCode;
        let mut v = view(&awaiting, &limits, &row);
        let code = |sent_at| PendingLogin::Code {
            phone: "+15550001".parse().unwrap(),
            phone_code_hash: "h".into(),
            code_type: "app".into(),
            timeout_s: None,
            sent_at,
        };
        v.pending = Some(code(v.now - chrono::Duration::minutes(59)));
        assert!(expire_stale_login(&v).is_empty());
        v.pending = Some(code(v.now - chrono::Duration::minutes(61)));
        assert!(matches!(
            &expire_stale_login(&v)[..],
            [Effect::ForgetPendingLogin, Effect::Become { to: State::New, log, .. }] if log.event == "login_expired"
        ));
    }

    #[test]
    fn a_dead_runner_is_rebuilt_and_the_account_rechecked() {
        let limits = limits();
        let row = row();
        let active = State::Active;
        let effects = on_runner_exited(&view(&active, &limits, &row), true);
        assert_eq!(effects[0], Effect::DropClient);
        assert_eq!(effects.last(), Some(&Effect::CheckHealth));
        let qr = State::AwaitingQr;
        let mut v = view(&qr, &limits, &row);
        v.pending = Some(PendingLogin::Qr {
            expires_at: v.now,
            url: None,
        });
        assert_eq!(on_runner_exited(&v, false).last(), Some(&Effect::PollQr));
        assert_eq!(on_login_token(&v), vec![Effect::PollQr]);
    }

    #[test]
    fn reconnect_attempts_back_off_doubling_up_to_the_cap_with_jitter() {
        let mut limits = limits();
        limits.reconnect_backoff_min = Duration::from_secs(1);
        limits.reconnect_backoff_max = Duration::from_secs(60);
        let at = |attempt, jitter| reconnect_delay(&limits, attempt, jitter);
        assert_eq!(at(0, 1.0), Duration::from_secs(1));
        assert_eq!(at(1, 1.0), Duration::from_secs(2));
        assert_eq!(at(5, 1.0), Duration::from_secs(32));
        assert_eq!(at(6, 1.0), Duration::from_secs(60), "capped");
        assert_eq!(at(u32::MAX, 1.0), Duration::from_secs(60), "no overflow");
        // Jitter takes off at most half, never adds.
        assert_eq!(at(3, 0.0), Duration::from_secs(4));
        assert_eq!(at(3, 0.5), Duration::from_secs(6));
        assert_eq!(at(3, 7.0), Duration::from_secs(8));
    }
}
