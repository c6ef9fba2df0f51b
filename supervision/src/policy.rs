//! Restart intensity and backoff as plain functions, so they are tested without actors or clocks.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The recent restarts of one account, for its restart intensity.
#[derive(Debug, Default)]
pub(crate) struct RestartHistory {
    at: VecDeque<Instant>,
}

impl RestartHistory {
    /// Records a wanted restart at `now`. Returns the restart's number within the window (1 for
    /// the first), or `None` when `max` restarts already happened within `window`: the caller then
    /// quarantines instead of restarting.
    pub(crate) fn admit(&mut self, now: Instant, max: u32, window: Duration) -> Option<u32> {
        while let Some(&first) = self.at.front() {
            if now.saturating_duration_since(first) >= window {
                self.at.pop_front();
            } else {
                break;
            }
        }
        if self.at.len() >= max as usize {
            return None;
        }
        self.at.push_back(now);
        Some(self.at.len() as u32)
    }

    /// Forgets every restart: an operator's restart grants a fresh budget.
    pub(crate) fn clear(&mut self) {
        self.at.clear();
    }
}

/// The delay before restart number `attempt` (1-based within the intensity window). The first
/// restart is immediate: one crash is one bug hit once, and a restart in place should cost
/// milliseconds, not a second (the restart itself takes ~2 ms; a 1 s first backoff made p99 ≈ 1 s
/// in `benches/restart_in_place.rs`). From the second on, `base · 2^(attempt-2)` capped at `max`,
/// with "equal jitter": a uniformly drawn value in the upper half of that. The jitter keeps
/// accounts that failed together (a DC outage) from restarting in lockstep; keeping the lower half
/// out makes each delay at least as long as the one before (until the cap), so backoff grows, and
/// a crash loop still reaches the intensity limit only after seconds, not milliseconds.
/// `jitter` is a draw from `[0, 1)`.
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    if attempt <= 1 {
        return Duration::ZERO;
    }
    let exp = attempt.saturating_sub(2).min(31);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_bounds_and_caps() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(30);
        assert_eq!(backoff_delay(1, base, max, 0.7), Duration::ZERO);
        assert_eq!(backoff_delay(2, base, max, 0.0), Duration::from_millis(500));
        assert_eq!(backoff_delay(2, base, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(4, base, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(10, base, max, 1.0), max);
        assert_eq!(backoff_delay(u32::MAX, base, max, 0.0), max / 2);
        // Whatever the draws, a later attempt never waits less than an earlier one.
        for attempt in 1..8 {
            let worst_now = backoff_delay(attempt, base, max, 1.0);
            let best_next = backoff_delay(attempt + 1, base, max, 0.0);
            assert!(best_next >= worst_now.min(max / 2), "attempt {attempt}");
        }
    }

    #[test]
    fn intensity_allows_max_restarts_per_window() {
        let mut history = RestartHistory::default();
        let t0 = Instant::now();
        let window = Duration::from_secs(60);
        for n in 1..=5 {
            assert_eq!(history.admit(t0, 5, window), Some(n));
        }
        assert_eq!(history.admit(t0 + Duration::from_secs(59), 5, window), None);
        // Once the window has slid past the first restarts, restarts are allowed again.
        assert_eq!(history.admit(t0 + window, 5, window), Some(1));
        history.clear();
        assert_eq!(history.admit(t0 + window, 5, window), Some(1));
    }
}
