//! Each message box's update log: every change that moved a user's or a channel's pts, in pts
//! order, so that updates.getDifference and updates.getChannelDifference replay exactly what a
//! client missed, with the same pts and pts_count the change was pushed (or answered) with.
//!
//! A box's pts only ever moves through [`UpdateLog::push`]: the log is what keeps the sequence
//! gap-free, and a client that trusts pts + pts_count (grammers drops a duplicate and waits for
//! a gap to fill) must see the numbers a later getDifference replays.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Changes kept per box. A client further behind than that is told its difference is too long,
/// as Telegram tells one that was away for long; it bounds the world the way the rest of it is
/// bounded by what tests put in.
pub const LOG_KEEP: usize = 10_000;
/// Changes answered per updates.getDifference page (Telegram's pages are about this size);
/// more missing makes a differenceSlice.
pub const DIFFERENCE_PAGE: usize = 100;
/// A common-box gap (in pts) past which updates.getDifference answers differenceTooLong.
pub const DIFFERENCE_TOO_LONG: i32 = 10_000;
/// A channel gap (in pts) past which updates.getChannelDifference answers
/// channelDifferenceTooLong.
pub const CHANNEL_DIFFERENCE_TOO_LONG: i32 = 10_000;
/// Most changes one getChannelDifference answers (Telegram's documented maximum `limit`).
pub const CHANNEL_DIFFERENCE_LIMIT_MAX: i32 = 100_000;
/// The `limit` a getChannelDifference without one gets.
pub const CHANNEL_DIFFERENCE_LIMIT_DEFAULT: i32 = 100;

/// What one change did to a box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    NewMessage {
        id: i32,
    },
    EditMessage {
        id: i32,
    },
    DeleteMessages {
        ids: Vec<i32>,
    },
    PinnedMessages {
        ids: Vec<i32>,
        pinned: bool,
        /// The other side of the private chat (a channel's pins name the channel itself).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer_user: Option<i64>,
    },
}

/// One change, numbered as the client was (or would have been) told it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRec {
    /// The box's pts after the change.
    pub pts: i32,
    pub pts_count: i32,
    pub date: i32,
    pub change: Change,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateLog {
    /// The box's pts before the oldest change kept (its pts when none is kept): a client at an
    /// older pts cannot be replayed to.
    pub base: i32,
    pub entries: VecDeque<UpdateRec>,
}

impl UpdateLog {
    pub fn starting_at(pts: i32) -> Self {
        Self {
            base: pts,
            entries: VecDeque::new(),
        }
    }

    /// The box's pts as the log has it.
    pub fn pts(&self) -> i32 {
        self.entries.back().map_or(self.base, |e| e.pts)
    }

    /// Records a change of `pts_count` to a box now at `current`; returns the box's new pts.
    ///
    /// A log that disagrees with its box (a world written before boxes had logs) cannot replay
    /// anything, so it starts afresh from the box's pts instead of inventing a gap.
    pub fn push(&mut self, current: i32, pts_count: i32, date: i32, change: Change) -> i32 {
        if self.pts() != current {
            self.base = current;
            self.entries.clear();
        }
        let pts = current + pts_count;
        self.entries.push_back(UpdateRec {
            pts,
            pts_count,
            date,
            change,
        });
        while self.entries.len() > LOG_KEEP {
            if let Some(old) = self.entries.pop_front() {
                self.base = old.pts;
            }
        }
        pts
    }

    /// Whether a client at `pts` can be replayed to from this log.
    pub fn covers(&self, pts: i32) -> bool {
        pts >= self.base
    }

    /// The changes a client at `pts` has not seen, oldest first.
    pub fn since(&self, pts: i32) -> impl Iterator<Item = &UpdateRec> {
        let from = self.entries.partition_point(|e| e.pts <= pts);
        self.entries.range(from..)
    }

    /// The box's pts before its first change dated `date` or later: where a client whose
    /// state is dated `date` is assumed to be (a change of the same second may be unseen).
    pub fn pts_before(&self, date: i32) -> i32 {
        self.entries
            .iter()
            .rev()
            .find(|e| e.date < date)
            .map_or(self.base, |e| e.pts)
    }

    /// The box's pts after its last change dated `date` or earlier: a client whose state is
    /// dated `date` cannot have applied anything later (every push is dated when it is sent).
    pub fn pts_through(&self, date: i32) -> i32 {
        self.entries
            .iter()
            .rev()
            .find(|e| e.date <= date)
            .map_or(self.base, |e| e.pts)
    }

    /// Whether the pts from `base` through every change is gap-free and ends at `pts`.
    pub fn consistent_with(&self, pts: i32) -> bool {
        let mut at = self.base;
        for e in &self.entries {
            if e.pts_count < 0 || e.pts != at + e.pts_count {
                return false;
            }
            at = e.pts;
        }
        at == pts
    }
}

/// How far catch-up goes before it gives up: the thresholds and page size above, overridable
/// (control API `POST /limits`, [`crate::TestDc::set_update_limits`]) so that a test reaches
/// them with a few messages. Not persisted: they belong to the run that set them, like faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateLimits {
    /// Changes per getDifference page.
    #[serde(default = "default_page")]
    pub difference_page: usize,
    /// A common-box gap (pts) past which getDifference answers differenceTooLong.
    #[serde(default = "default_too_long")]
    pub difference_too_long: i32,
    /// A channel gap (pts) past which getChannelDifference answers channelDifferenceTooLong.
    #[serde(default = "default_channel_too_long")]
    pub channel_difference_too_long: i32,
}

fn default_page() -> usize {
    DIFFERENCE_PAGE
}
fn default_too_long() -> i32 {
    DIFFERENCE_TOO_LONG
}
fn default_channel_too_long() -> i32 {
    CHANNEL_DIFFERENCE_TOO_LONG
}

impl Default for UpdateLimits {
    fn default() -> Self {
        Self {
            difference_page: DIFFERENCE_PAGE,
            difference_too_long: DIFFERENCE_TOO_LONG,
            channel_difference_too_long: CHANNEL_DIFFERENCE_TOO_LONG,
        }
    }
}

impl UpdateLimits {
    /// Refuses limits no client could catch up under: a page must hold a change, and a gap of
    /// one change must be replayable.
    pub fn check(&self) -> Result<(), String> {
        if self.difference_page == 0 || self.difference_page > LOG_KEEP {
            return Err(format!("difference_page must be 1 to {LOG_KEEP}"));
        }
        if self.difference_too_long < 1 || self.channel_difference_too_long < 1 {
            return Err("the too-long thresholds must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: i32) -> Change {
        Change::NewMessage { id }
    }

    #[test]
    fn pushes_number_changes_without_gaps() {
        let mut log = UpdateLog::starting_at(1);
        assert_eq!(log.push(1, 1, 10, new(1)), 2);
        assert_eq!(
            log.push(2, 3, 11, Change::DeleteMessages { ids: vec![1, 2, 3] }),
            5
        );
        assert_eq!(log.push(5, 1, 12, Change::EditMessage { id: 4 }), 6);
        assert!(log.consistent_with(6));
        assert!(!log.consistent_with(7));
        let pts: Vec<i32> = log.since(2).map(|e| e.pts).collect();
        assert_eq!(pts, vec![5, 6]);
        assert_eq!(log.since(6).count(), 0);
        assert_eq!(log.since(1).count(), 3);
    }

    #[test]
    fn a_log_that_disagrees_with_its_box_starts_again_from_the_box() {
        // A world written before boxes had logs: the box is at 40, the log knows nothing.
        let mut log = UpdateLog::default();
        assert_eq!(log.push(40, 1, 10, new(7)), 41);
        assert_eq!(log.base, 40);
        assert!(log.consistent_with(41));
        assert!(!log.covers(39));
        assert!(log.covers(40));
    }

    #[test]
    fn the_log_keeps_the_newest_changes_and_moves_its_base() {
        let mut log = UpdateLog::starting_at(1);
        let mut pts = 1;
        for id in 0..(LOG_KEEP as i32 + 5) {
            pts = log.push(pts, 1, 10, new(id));
        }
        assert_eq!(log.entries.len(), LOG_KEEP);
        assert_eq!(log.base, 6);
        assert!(log.consistent_with(pts));
        assert!(!log.covers(5));
        assert!(log.covers(6));
    }

    #[test]
    fn pts_before_a_date_is_where_a_client_of_that_date_stands() {
        let mut log = UpdateLog::starting_at(1);
        log.push(1, 1, 100, new(1));
        log.push(2, 1, 105, new(2));
        log.push(3, 1, 105, new(3));
        assert_eq!(log.pts_before(100), 1);
        assert_eq!(log.pts_before(101), 2);
        // Changes of the client's own second count as unseen.
        assert_eq!(log.pts_before(105), 2);
        assert_eq!(log.pts_before(106), 4);
        assert_eq!(log.pts_through(99), 1);
        assert_eq!(log.pts_through(100), 2);
        assert_eq!(log.pts_through(105), 4);
    }

    #[test]
    fn limits_refuse_what_no_client_could_catch_up_under() {
        assert!(UpdateLimits::default().check().is_ok());
        let zero_page = UpdateLimits {
            difference_page: 0,
            ..Default::default()
        };
        assert!(zero_page.check().is_err());
        let zero_gap = UpdateLimits {
            channel_difference_too_long: 0,
            ..Default::default()
        };
        assert!(zero_gap.check().is_err());
    }
}
