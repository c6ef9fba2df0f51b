//! Catch-up as Telegram answers it: updates.getDifference replays the caller's own box from its
//! update log (pages of [`UpdateLimits::difference_page`] changes as differenceSlice, a gap past
//! the threshold as differenceTooLong) and names every channel that moved since as
//! updateChannelTooLong; updates.getChannelDifference then replays that channel's log in pages
//! of the client's `limit`.
//!
//! What a page holds is the state the client missed, not every step of it: a message created
//! and deleted in the same page is not delivered (its deletion is), and an edit of a message
//! delivered in the same page is already in it. Every other change is replayed with the pts and
//! pts_count it was pushed with.

use std::collections::HashSet;

use grammers_tl_types as tl;

use super::{
    caller, channel_message_tl, channel_tl, err, ok, private_message_tl, state_of, user_tl, Ctx,
    Reply,
};
use crate::tlb;
use crate::updates::{
    Change, UpdateLimits, UpdateRec, CHANNEL_DIFFERENCE_LIMIT_DEFAULT, CHANNEL_DIFFERENCE_LIMIT_MAX,
};
use crate::world::{unix_now, ChannelRec, UserRec, World};

/// What one page of changes renders to.
#[derive(Default)]
struct Rendered {
    new_messages: Vec<tl::enums::Message>,
    other_updates: Vec<tl::enums::Update>,
    users: Vec<i64>,
}

impl Rendered {
    fn user(&mut self, id: i64) {
        if !self.users.contains(&id) {
            self.users.push(id);
        }
    }
}

/// Ids a page creates and still holds at its end, and ids it deletes.
fn page_ids(page: &[&UpdateRec]) -> (HashSet<i32>, HashSet<i32>) {
    let deleted: HashSet<i32> = page
        .iter()
        .filter_map(|e| match &e.change {
            Change::DeleteMessages { ids } => Some(ids.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    let created = page
        .iter()
        .filter_map(|e| match e.change {
            Change::NewMessage { id } if !deleted.contains(&id) => Some(id),
            _ => None,
        })
        .collect();
    (created, deleted)
}

/// The changes after `pts`, at most `events` of them and (with `pts_limit`) no further than
/// `pts + pts_limit` but always one; and whether more remain.
fn page_of<'a>(
    changes: impl Iterator<Item = &'a UpdateRec>,
    pts: i32,
    events: usize,
    pts_limit: Option<i32>,
) -> (Vec<&'a UpdateRec>, bool) {
    let mut page = Vec::new();
    for e in changes {
        let past_pts = pts_limit.is_some_and(|l| e.pts - pts > l);
        if page.len() >= events || (past_pts && !page.is_empty()) {
            return (page, true);
        }
        page.push(e);
    }
    (page, false)
}

fn render_private(u: &UserRec, page: &[&UpdateRec]) -> Rendered {
    let (created, deleted) = page_ids(page);
    // Ids only grow, so the history is sorted by id.
    let find = |id: i32| {
        u.history
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|i| &u.history[i])
    };
    let mut out = Rendered::default();
    for e in page {
        let (pts, pts_count) = (e.pts, e.pts_count);
        match &e.change {
            Change::NewMessage { id } => {
                if let Some(m) = find(*id).filter(|_| !deleted.contains(id)) {
                    out.new_messages.push(private_message_tl(m));
                    out.user(m.peer_user);
                    out.user(m.from_user);
                }
            }
            Change::EditMessage { id } => {
                if let Some(m) = find(*id).filter(|_| !created.contains(id)) {
                    let message = private_message_tl(m);
                    out.other_updates.push(
                        tl::types::UpdateEditMessage {
                            message,
                            pts,
                            pts_count,
                        }
                        .into(),
                    );
                    out.user(m.peer_user);
                    out.user(m.from_user);
                }
            }
            Change::DeleteMessages { ids } => out.other_updates.push(
                tl::types::UpdateDeleteMessages {
                    messages: ids.clone(),
                    pts,
                    pts_count,
                }
                .into(),
            ),
            Change::PinnedMessages {
                ids,
                pinned,
                peer_user,
            } => {
                let peer = peer_user.unwrap_or(u.id);
                out.user(peer);
                out.other_updates.push(
                    tl::types::UpdatePinnedMessages {
                        pinned: *pinned,
                        peer: tl::types::PeerUser { user_id: peer }.into(),
                        messages: ids.clone(),
                        pts,
                        pts_count,
                    }
                    .into(),
                );
            }
        }
    }
    out
}

fn render_channel(c: &ChannelRec, viewer: i64, page: &[&UpdateRec]) -> Rendered {
    let (created, deleted) = page_ids(page);
    let find = |id: i32| {
        c.history
            .binary_search_by_key(&id, |m| m.id)
            .ok()
            .map(|i| &c.history[i])
    };
    let mut out = Rendered::default();
    for e in page {
        let (pts, pts_count) = (e.pts, e.pts_count);
        match &e.change {
            Change::NewMessage { id } => {
                if let Some(m) = find(*id).filter(|_| !deleted.contains(id)) {
                    out.new_messages.push(channel_message_tl(c, m, viewer));
                    out.user(m.from_user);
                }
            }
            Change::EditMessage { id } => {
                if let Some(m) = find(*id).filter(|_| !created.contains(id)) {
                    out.other_updates.push(
                        tl::types::UpdateEditChannelMessage {
                            message: channel_message_tl(c, m, viewer),
                            pts,
                            pts_count,
                        }
                        .into(),
                    );
                    out.user(m.from_user);
                }
            }
            Change::DeleteMessages { ids } => out.other_updates.push(
                tl::types::UpdateDeleteChannelMessages {
                    channel_id: c.id,
                    messages: ids.clone(),
                    pts,
                    pts_count,
                }
                .into(),
            ),
            Change::PinnedMessages { ids, pinned, .. } => out.other_updates.push(
                tl::types::UpdatePinnedChannelMessages {
                    pinned: *pinned,
                    channel_id: c.id,
                    messages: ids.clone(),
                    pts,
                    pts_count,
                }
                .into(),
            ),
        }
    }
    out
}

fn users_tl(w: &World, ids: &[i64], viewer: i64) -> Vec<tl::enums::User> {
    ids.iter()
        .filter_map(|id| w.users.get(id))
        .map(|u| user_tl(u, viewer))
        .collect()
}

/// The channels of `u` that moved since a client state dated `date`, each with the pts to
/// resume from (grammers takes it over its own): what its connections were last told, but
/// nothing dated after the client's state, which it cannot have applied (a push that met a
/// connection already closing); for a channel never told, where it stood before `date`.
fn moved_channels(w: &World, u: &UserRec, date: i32) -> Vec<(i64, i32)> {
    let mut moved: Vec<(i64, i32)> = w
        .channels
        .values()
        .filter(|c| c.members.contains(&u.id))
        .filter_map(|c| {
            let from = match u.channel_pts_told.get(&c.id) {
                Some(&told) => told.min(c.updates.pts_through(date)),
                None => c.updates.pts_before(date),
            };
            (from < c.pts).then_some((c.id, from))
        })
        .collect();
    moved.sort_unstable();
    moved
}

pub(super) fn get_difference(ctx: &Ctx<'_>, r: tl::functions::updates::GetDifference) -> Reply {
    let limits = ctx.shared.limits();
    let w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let Some(u) = w.users.get(&me) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    if r.pts <= 0 {
        return err(400, "PERSISTENT_TIMESTAMP_EMPTY");
    }
    // A pts this DC never gave (a client of a world that was reset).
    if r.pts > u.pts {
        return err(400, "PERSISTENT_TIMESTAMP_INVALID");
    }
    let threshold = r
        .pts_total_limit
        .filter(|l| *l > 0)
        .map_or(limits.difference_too_long, |l| {
            l.min(limits.difference_too_long)
        });
    if u.pts - r.pts > threshold || !u.updates.covers(r.pts) {
        return ok(tl::enums::updates::Difference::TooLong(
            tl::types::updates::DifferenceTooLong { pts: u.pts },
        ));
    }
    ok(difference(&w, u, &r, &limits))
}

fn difference(
    w: &World,
    u: &UserRec,
    r: &tl::functions::updates::GetDifference,
    limits: &UpdateLimits,
) -> tl::enums::updates::Difference {
    let pts_limit = r.pts_limit.filter(|l| *l > 0);
    let (page, more) = page_of(
        u.updates.since(r.pts),
        r.pts,
        limits.difference_page,
        pts_limit,
    );
    // Channels come with the last page, once the client's own box is replayed.
    let moved = if more {
        Vec::new()
    } else {
        moved_channels(w, u, r.date)
    };
    if page.is_empty() && moved.is_empty() {
        return tl::enums::updates::Difference::Empty(tl::types::updates::DifferenceEmpty {
            date: unix_now(),
            seq: 0,
        });
    }
    let mut out = render_private(u, &page);
    let mut chats = Vec::new();
    for (channel_id, pts) in moved {
        out.other_updates.push(
            tl::types::UpdateChannelTooLong {
                channel_id,
                pts: Some(pts),
            }
            .into(),
        );
        // The client needs the access hash to ask for the channel's difference.
        if let Some(c) = w.channels.get(&channel_id) {
            chats.push(channel_tl(c, u.id));
        }
    }
    let users = users_tl(w, &out.users, u.id);
    match page.last().filter(|_| more) {
        // The date stays the client's: the last page names the channels moved since then.
        Some(last) => tl::enums::updates::Difference::Slice(tl::types::updates::DifferenceSlice {
            new_messages: out.new_messages,
            new_encrypted_messages: Vec::new(),
            other_updates: out.other_updates,
            chats,
            users,
            intermediate_state: tl::types::updates::State {
                pts: last.pts,
                qts: 0,
                date: r.date,
                seq: 0,
                unread_count: 0,
            }
            .into(),
        }),
        None => tl::enums::updates::Difference::Difference(tl::types::updates::Difference {
            new_messages: out.new_messages,
            new_encrypted_messages: Vec::new(),
            other_updates: out.other_updates,
            chats,
            users,
            state: state_of(u),
        }),
    }
}

/// The channel an InputChannel names, for a member: CHANNEL_INVALID for none (or a wrong
/// access hash), CHANNEL_PRIVATE for one the caller is not in.
fn member_channel<'a>(
    w: &'a World,
    me: i64,
    channel: &tl::enums::InputChannel,
) -> Result<&'a ChannelRec, Reply> {
    let tl::enums::InputChannel::Channel(input) = channel else {
        return Err(err(400, "CHANNEL_INVALID"));
    };
    let Some(c) = w
        .channels
        .get(&input.channel_id)
        .filter(|c| c.access_hash == input.access_hash)
    else {
        return Err(err(400, "CHANNEL_INVALID"));
    };
    if !c.members.contains(&me) {
        return Err(err(400, "CHANNEL_PRIVATE"));
    }
    Ok(c)
}

/// updates.getChannelDifference. The filter is not applied (clients pass the empty one) and
/// `force` changes nothing: every answer is computed from the log.
pub(super) fn get_channel_difference(
    ctx: &Ctx<'_>,
    r: tl::functions::updates::GetChannelDifference,
) -> Reply {
    let limits = ctx.shared.limits();
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let (answer, told) = {
        let c = tri!(member_channel(&w, me, &r.channel));
        if r.pts <= 0 {
            return err(400, "PERSISTENT_TIMESTAMP_EMPTY");
        }
        if r.pts > c.pts {
            return err(400, "PERSISTENT_TIMESTAMP_INVALID");
        }
        let limit = match r.limit {
            l if l <= 0 => CHANNEL_DIFFERENCE_LIMIT_DEFAULT,
            l => l.min(CHANNEL_DIFFERENCE_LIMIT_MAX),
        };
        if c.pts - r.pts > limits.channel_difference_too_long || !c.updates.covers(r.pts) {
            (channel_too_long(&w, c, me, limit), (c.id, c.pts))
        } else {
            channel_difference(&w, c, me, r.pts, limit)
        }
    };
    super::answered(&mut w, me, told.0, told.1);
    ok(answer)
}

/// One page of a channel's changes after `pts`, and the pts the client is then at.
fn channel_difference(
    w: &World,
    c: &ChannelRec,
    me: i64,
    pts: i32,
    limit: i32,
) -> (tl::enums::updates::ChannelDifference, (i64, i32)) {
    let (page, more) = page_of(c.updates.since(pts), pts, limit as usize, None);
    let Some(last) = page.last() else {
        return (
            tl::enums::updates::ChannelDifference::Empty(
                tl::types::updates::ChannelDifferenceEmpty {
                    r#final: true,
                    pts: c.pts,
                    timeout: None,
                },
            ),
            (c.id, c.pts),
        );
    };
    let out = render_channel(c, me, &page);
    // grammers 0.11 ends the channel's catch-up before it applies a final page's
    // other_updates, and then drops them as already seen (their pts is not past the page's):
    // a page that carries edits or deletions is never final, and the next (empty) one is.
    let r#final = !more && out.other_updates.is_empty();
    let answer = tl::types::updates::ChannelDifference {
        r#final,
        pts: last.pts,
        timeout: None,
        new_messages: out.new_messages,
        other_updates: out.other_updates,
        chats: vec![channel_tl(c, me)],
        users: users_tl(w, &out.users, me),
    };
    (answer.into(), (c.id, last.pts))
}

/// channelDifferenceTooLong: the dialog at the channel's pts and its newest messages.
fn channel_too_long(
    w: &World,
    c: &ChannelRec,
    me: i64,
    limit: i32,
) -> tl::enums::updates::ChannelDifference {
    let newest: Vec<_> = c
        .history
        .iter()
        .rev()
        .take(limit.min(CHANNEL_DIFFERENCE_LIMIT_DEFAULT) as usize)
        .collect();
    let mut authors = Vec::new();
    for m in &newest {
        if !authors.contains(&m.from_user) {
            authors.push(m.from_user);
        }
    }
    let top = c.history.last().map_or(0, |m| m.id);
    tl::types::updates::ChannelDifferenceTooLong {
        r#final: true,
        timeout: None,
        // grammers takes the pts from the dialog, and panics on one without.
        dialog: tlb::dialog(
            tl::types::PeerChannel { channel_id: c.id }.into(),
            top,
            Some(c.pts),
        ),
        messages: newest
            .iter()
            .map(|m| channel_message_tl(c, m, me))
            .collect(),
        chats: vec![channel_tl(c, me)],
        users: users_tl(w, &authors, me),
    }
    .into()
}

#[cfg(test)]
mod tests;
