//! Flood control of one account: per-method "blocked until", owned by the account (never global,
//! so one account's flood wait cannot slow another).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a caller should do before invoking `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not blocked: call now.
    Open,
    /// Blocked for at most the threshold: wait this long (in the calling task), then call.
    WaitFor(Duration),
    /// Blocked for longer than the threshold: fail fast with the remaining seconds (rounded up).
    Blocked { seconds: u32 },
}

/// Per-method flood-wait deadlines. Uses tokio's clock so tests can pause and advance time.
#[derive(Debug, Default)]
pub struct FloodControl {
    until: Mutex<HashMap<String, Instant>>,
}

impl FloodControl {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records Telegram's FLOOD_WAIT_X on `method`. A shorter wait never shortens a longer one.
    pub fn block(&self, method: &str, seconds: u32) -> Instant {
        let until = Instant::now() + Duration::from_secs(u64::from(seconds));
        let mut map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(method.to_owned()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
        *entry
    }

    /// Decides what a call of `method` should do now, given the wait-out `threshold`.
    pub fn gate(&self, method: &str, threshold: Duration) -> Gate {
        let now = Instant::now();
        let mut map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        // Expired entries are dropped so the map only ever holds live blocks.
        map.retain(|_, until| *until > now);
        match map.get(method) {
            None => Gate::Open,
            Some(until) => {
                let remaining = *until - now;
                if remaining <= threshold {
                    Gate::WaitFor(remaining)
                } else {
                    Gate::Blocked {
                        seconds: remaining.as_secs_f64().ceil() as u32,
                    }
                }
            }
        }
    }

    /// The latest deadline of any blocked method, as time from now.
    pub fn longest_remaining(&self) -> Option<Duration> {
        let now = Instant::now();
        let map = self.until.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max()
    }

    /// Whether `method` is blocked right now.
    pub fn is_blocked(&self, method: &str) -> bool {
        !matches!(self.gate(method, Duration::ZERO), Gate::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THRESHOLD: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn short_waits_are_waited_out_long_ones_fail_fast_until_they_expire() {
        let flood = FloodControl::new();
        assert_eq!(flood.gate("messages.sendMessage", THRESHOLD), Gate::Open);

        flood.block("messages.sendMessage", 5);
        assert_eq!(
            flood.gate("messages.sendMessage", THRESHOLD),
            Gate::WaitFor(Duration::from_secs(5))
        );

        flood.block("contacts.resolveUsername", 300);
        assert_eq!(
            flood.gate("contacts.resolveUsername", THRESHOLD),
            Gate::Blocked { seconds: 300 }
        );
        // Other methods of the same account are unaffected.
        assert_eq!(flood.gate("updates.getState", THRESHOLD), Gate::Open);

        tokio::time::advance(Duration::from_secs(295)).await;
        assert_eq!(
            flood.gate("contacts.resolveUsername", THRESHOLD),
            Gate::WaitFor(Duration::from_secs(5))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            flood.gate("contacts.resolveUsername", THRESHOLD),
            Gate::Open
        );
        assert_eq!(flood.longest_remaining(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_wait_does_not_shorten_a_longer_one() {
        let flood = FloodControl::new();
        flood.block("messages.sendMessage", 120);
        flood.block("messages.sendMessage", 3);
        assert_eq!(
            flood.gate("messages.sendMessage", THRESHOLD),
            Gate::Blocked { seconds: 120 }
        );
    }
}
