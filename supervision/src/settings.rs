//! The knobs of supervision. A plain struct: the config crate maps TOML/env onto it.

use std::num::NonZeroU32;
use std::time::Duration;

/// How the fleet supervises its account actors. Every value bounds something; the `Default`
/// says why it has the value it has.
#[derive(Debug, Clone)]
pub struct SupervisionSettings {
    /// Number of independent supervisors; an account id always maps to the same one. A supervisor
    /// that dies takes only its own children with it, and one supervisor's busy mailbox delays
    /// only its own accounts' starts and restarts.
    pub shards: usize,
    /// Restarts of one account allowed within `restart_window`; the failure after that
    /// quarantines the account instead of restarting it again.
    pub restart_max: u32,
    pub restart_window: Duration,
    /// Delay before the first restart; doubled for every further restart within the window.
    pub backoff_base: Duration,
    /// Cap of the restart delay.
    pub backoff_max: Duration,
    /// Accounts started per second when the fleet comes up.
    pub start_rate: NonZeroU32,
    /// Upper bound of one `Fleet` call, start of a stopped actor included.
    pub call_timeout: Duration,
    /// How often each supervisor checks that its actors still answer; `None` turns it off.
    pub liveness_interval: Option<Duration>,
    /// An actor that does not answer a liveness check within this is restarted (`watchdog`).
    pub liveness_timeout: Duration,
    /// How long `shutdown` waits for actors to stop (and persist) before killing them.
    pub shutdown_timeout: Duration,
    /// Accounts hibernate (`fleet.hibernate_after_s` > 0): a `hibernated` account is left
    /// without an actor at start-up, and its actor ending itself to hibernate is not a stop.
    pub hibernation: bool,
}

impl Default for SupervisionSettings {
    fn default() -> Self {
        Self {
            // 8 supervisors: a supervisor failure reaches at most 1/8 of the accounts, while each
            // one is only a task and a small map, so more would buy little.
            shards: 8,
            // 5 restarts in 60 s (Erlang/OTP's usual intensity order): enough to ride out a burst
            // of transient failures, yet with the backoff below an actor that crashes on every
            // start is quarantined within about half a minute instead of looping hot.
            restart_max: 5,
            restart_window: Duration::from_secs(60),
            // 1 s, 2 s, 4 s, 8 s, 16 s: the first restart is quick enough to be invisible to a
            // user, later ones give a failing dependency (DC, database) time to come back.
            backoff_base: Duration::from_secs(1),
            // 30 s: with a 60 s window the cap is never reached at the default intensity; it
            // matters only for a looser configured intensity, which should still not wait minutes.
            backoff_max: Duration::from_secs(30),
            // 20 starts/s: each start opens a connection and makes a few calls; Telegram is wary of
            // many new connections from one address at once. 1,000 accounts are up in under a minute.
            start_rate: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            // 45 s: above the actor's own Telegram call timeout (20 s) plus a short flood wait it
            // waits out (10 s) plus a start, so the actor's precise error normally wins and only a
            // stuck actor turns into `Unavailable`.
            call_timeout: Duration::from_secs(45),
            // Every 60 s: a mailbox check is one message per actor and costs nothing; the actor
            // watches its Telegram connection itself, this only catches a wedged actor.
            liveness_interval: Some(Duration::from_secs(60)),
            // 45 s, like a call: an actor busy with a slow but bounded Telegram call is not wedged.
            liveness_timeout: Duration::from_secs(45),
            // 10 s: persisting a session is one small database write; a stop that takes longer is
            // stuck on Telegram, and the state was already persisted after its last change.
            shutdown_timeout: Duration::from_secs(10),
            // Off, like `fleet.hibernate_after_s`'s default.
            hibernation: false,
        }
    }
}
