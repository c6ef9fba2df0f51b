//! The dispatcher's picture of the store's pending deliveries: per (endpoint, account) queue,
//! a window of its oldest pending events, and which queue heads fall due when.
//!
//! The store stays the arbiter: a head is sent only after its claim `UPDATE` returned it, so a
//! picture that is behind (a replay, a patch) costs a reload, never an out-of-order or double
//! delivery. Keeping it here is what turns "find what is due" from a query over the whole
//! backlog into a look at the front of a sorted set.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tgfleet_persistence::QueuedDelivery;

/// How many pending events of one queue are held in memory; the rest wait in the store, so a
/// receiver down for a day costs no memory.
pub const WINDOW: u32 = 256;

/// (endpoint id, account key).
pub type QueueKey = (Arc<str>, i64);

#[derive(Default)]
struct Queue {
    /// Oldest first: (event id, due at).
    pending: VecDeque<(i64, DateTime<Utc>)>,
    /// The store holds pending events of this queue after `pending`.
    more: bool,
    /// The event being attempted: the head, or (after a replay queued older events in front
    /// of it) one behind it; nothing else of the queue goes before it ends.
    busy: Option<i64>,
}

/// How an attempt of a queue's head ended, as far as the queue is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Delivered or dead-lettered: the next event goes on.
    Done,
    /// The head stays and is due again at this time.
    DueAt(DateTime<Utc>),
}

#[derive(Default)]
pub struct Queues {
    map: HashMap<QueueKey, Queue>,
    /// Every queue that is not busy and has a head, once, by its head's due time.
    timeline: BTreeSet<(DateTime<Utc>, QueueKey)>,
}

impl Queues {
    /// Appends a newly queued event (ids increase per queue; an id at or below the tail is
    /// already known, and is left out).
    pub fn push(&mut self, key: QueueKey, event_id: i64, due: DateTime<Utc>) {
        let q = self.map.entry(key.clone()).or_default();
        if q.more || q.pending.back().is_some_and(|(id, _)| *id >= event_id) {
            return;
        }
        if q.pending.len() >= WINDOW as usize {
            q.more = true;
            return;
        }
        q.pending.push_back((event_id, due));
        if q.pending.len() == 1 && q.busy.is_none() {
            self.timeline.insert((due, key));
        }
    }

    /// Replaces what is known of `webhook_id`'s queues (of one account key, or all) by what
    /// the store holds; a head in flight stays busy.
    pub fn reload(&mut self, webhook_id: &str, account_key: Option<i64>, rows: &[QueuedDelivery]) {
        let gone: Vec<QueueKey> = self
            .map
            .keys()
            .filter(|(w, k)| &**w == webhook_id && account_key.is_none_or(|a| a == *k))
            .cloned()
            .collect();
        let mut busy = Vec::new();
        for key in gone {
            if let Some(q) = self.map.remove(&key) {
                if let Some(id) = q.busy {
                    busy.push((key.clone(), id));
                } else if let Some(&(_, due)) = q.pending.front() {
                    self.timeline.remove(&(due, key));
                }
            }
        }
        let mut hook: Option<Arc<str>> = None;
        for row in rows {
            let id = match &hook {
                Some(h) if **h == *row.webhook_id => Arc::clone(h),
                _ => {
                    let h: Arc<str> = Arc::from(row.webhook_id.as_str());
                    hook = Some(Arc::clone(&h));
                    h
                }
            };
            let q = self.map.entry((id, row.account_key)).or_default();
            q.pending.push_back((row.event_id, row.next_attempt_at));
            q.more |= row.more;
        }
        for (key, id) in busy {
            // The queue waits for its attempt in flight, wherever the store now has it.
            if let Some(q) = self.map.get_mut(&key) {
                q.busy = Some(id);
            }
        }
        let keys: Vec<QueueKey> = self
            .map
            .iter()
            .filter(|((w, k), q)| {
                &**w == webhook_id && account_key.is_none_or(|a| a == *k) && q.busy.is_none()
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            self.schedule(&key);
        }
    }

    /// Forgets an endpoint's queues (deleted or disabled).
    pub fn drop_webhook(&mut self, webhook_id: &str) {
        self.map.retain(|(w, _), _| &**w != webhook_id);
        self.timeline.retain(|(_, (w, _))| &**w != webhook_id);
    }

    /// Forgets one queue: its claim found the store elsewhere, and it is reloaded.
    pub fn forget(&mut self, key: &QueueKey) {
        if let Some(q) = self.map.remove(key) {
            if let Some(&(_, due)) = q.pending.front() {
                self.timeline.remove(&(due, key.clone()));
            }
        }
    }

    /// Takes up to `n` heads due at `now` and marks their queues busy.
    pub fn take_due(&mut self, now: DateTime<Utc>, n: usize) -> Vec<(QueueKey, i64)> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(first) = self.timeline.first() else {
                break;
            };
            if first.0 > now {
                break;
            }
            let Some((_, key)) = self.timeline.pop_first() else {
                break;
            };
            if let Some(q) = self.map.get_mut(&key) {
                // A queue in flight is rescheduled by its attempt's end.
                if let (None, Some(&(id, _))) = (q.busy, q.pending.front()) {
                    q.busy = Some(id);
                    out.push((key, id));
                }
            }
        }
        out
    }

    /// When the next head falls due.
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.timeline.first().map(|(due, _)| *due)
    }

    /// An attempt of `event_id` ended. Returns true when the queue's window ran dry while the
    /// store holds more: the caller reloads it.
    pub fn finish(&mut self, key: &QueueKey, event_id: i64, how: Finish) -> bool {
        let Some(q) = self.map.get_mut(key) else {
            return false;
        };
        if q.busy != Some(event_id) {
            // Not what the queue waits for (a reload came between): nothing to do.
            return false;
        }
        q.busy = None;
        if let Some(i) = q.pending.iter().position(|(id, _)| *id == event_id) {
            match how {
                Finish::Done => {
                    q.pending.remove(i);
                }
                Finish::DueAt(at) => q.pending[i].1 = at,
            }
        }
        if q.pending.is_empty() {
            let refill = q.more;
            self.map.remove(key);
            return refill;
        }
        self.schedule(key);
        false
    }

    fn schedule(&mut self, key: &QueueKey) {
        if let Some(q) = self.map.get(key) {
            if let (None, Some(&(_, due))) = (q.busy, q.pending.front()) {
                self.timeline.insert((due, key.clone()));
            }
        }
    }

    /// How many events are held, for tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.map.values().map(|q| q.pending.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(w: &str, a: i64) -> QueueKey {
        (Arc::from(w), a)
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn one_head_per_queue_is_due_and_the_next_follows_its_finish() {
        let mut q = Queues::default();
        q.push(key("a", 1), 1, at(0));
        q.push(key("a", 1), 2, at(0));
        q.push(key("a", 2), 3, at(0));
        let due = q.take_due(at(0), 10);
        assert_eq!(due, [(key("a", 1), 1), (key("a", 2), 3)]);
        assert!(
            q.take_due(at(0), 10).is_empty(),
            "heads in flight block their queues"
        );
        assert!(!q.finish(&key("a", 1), 1, Finish::Done));
        assert_eq!(q.take_due(at(0), 10), [(key("a", 1), 2)]);
    }

    #[test]
    fn a_retry_waits_for_its_time_and_keeps_the_queue_behind_it() {
        let mut q = Queues::default();
        q.push(key("a", 1), 1, at(0));
        q.push(key("a", 1), 2, at(0));
        q.take_due(at(0), 1);
        q.finish(&key("a", 1), 1, Finish::DueAt(at(5)));
        assert!(q.take_due(at(4), 10).is_empty());
        assert_eq!(q.next_due(), Some(at(5)));
        assert_eq!(q.take_due(at(5), 10), [(key("a", 1), 1)]);
    }

    #[test]
    fn a_full_window_leaves_the_rest_in_the_store_and_asks_for_a_refill() {
        let mut q = Queues::default();
        for id in 1..=i64::from(WINDOW) + 5 {
            q.push(key("a", 1), id, at(0));
        }
        assert_eq!(q.held(), WINDOW as usize);
        for id in 1..i64::from(WINDOW) {
            assert_eq!(q.take_due(at(0), 1), [(key("a", 1), id)]);
            assert!(!q.finish(&key("a", 1), id, Finish::Done));
        }
        q.take_due(at(0), 1);
        assert!(q.finish(&key("a", 1), i64::from(WINDOW), Finish::Done));
    }

    #[test]
    fn a_reload_keeps_a_head_in_flight_busy_and_replaces_the_rest() {
        let mut q = Queues::default();
        q.push(key("a", 1), 5, at(0));
        q.push(key("a", 2), 9, at(0));
        assert_eq!(q.take_due(at(0), 1), [(key("a", 1), 5)]);
        let row = |account_key, event_id| QueuedDelivery {
            webhook_id: "a".into(),
            account_key,
            event_id,
            next_attempt_at: at(0),
            more: false,
        };
        // A replay queued 3 and 4 before 9; 5 is still in flight.
        q.reload(
            "a",
            None,
            &[row(1, 5), row(1, 6), row(2, 3), row(2, 4), row(2, 9)],
        );
        assert_eq!(q.take_due(at(0), 10), [(key("a", 2), 3)]);
        q.finish(&key("a", 1), 5, Finish::Done);
        assert_eq!(q.take_due(at(0), 10), [(key("a", 1), 6)]);
        q.drop_webhook("a");
        assert_eq!(q.held(), 0);
        assert!(q.next_due().is_none());
    }
}
