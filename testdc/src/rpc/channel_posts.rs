//! What happens to a channel's messages after they are sent, as Telegram answers it: edits,
//! deletion and pinning, each under the channel's rights (an admin with the right, or the
//! message's own author where Telegram allows it).

use grammers_tl_types as tl;

use super::{
    answered, caller, channel_message_tl, channel_of, entities_of, err, ok, to_members, Ctx, Reply,
};
use crate::updates::Change;
use crate::world::{unix_now, ChannelRec, World};

/// Whether `me` may change message `id` of `c` with `right` (an author may change its own
/// messages where it may still post; in a group, always).
fn may_change(c: &ChannelRec, me: i64, id: i32, right: &str) -> Result<(), Reply> {
    let Some(m) = c.history.iter().find(|m| m.id == id) else {
        return Err(err(400, "MESSAGE_ID_INVALID"));
    };
    let own = m.from_user == me && (!c.broadcast || c.may(me, "post_messages"));
    // In a group nobody edits another's message; deleting one takes the right.
    let by_right = (c.broadcast || right != "edit_messages") && c.may(me, right);
    if own || by_right {
        Ok(())
    } else {
        Err(err(403, "MESSAGE_AUTHOR_REQUIRED"))
    }
}

/// The channel an InputChannel names, for a member (see `channel_of`).
fn input_channel_of(w: &World, me: i64, channel: &tl::enums::InputChannel) -> Result<i64, Reply> {
    let tl::enums::InputChannel::Channel(input) = channel else {
        return Err(err(400, "CHANNEL_INVALID"));
    };
    let peer = tl::types::InputPeerChannel {
        channel_id: input.channel_id,
        access_hash: input.access_hash,
    }
    .into();
    channel_of(w, me, &peer)
}

/// An edit's new text as Telegram checks it: a media message's text is its caption, which may
/// be empty and holds at most 1024 characters; any other text is 1–4096.
pub(super) fn edited_text(text: Option<String>, captioned: bool) -> Result<String, Reply> {
    let Some(text) = text else {
        return Err(err(400, "MESSAGE_EMPTY"));
    };
    if text.trim().is_empty() && !captioned {
        return Err(err(400, "MESSAGE_EMPTY"));
    }
    if captioned && text.chars().count() > 1024 {
        return Err(err(400, "MEDIA_CAPTION_TOO_LONG"));
    }
    if text.chars().count() > 4096 {
        return Err(err(400, "MESSAGE_TOO_LONG"));
    }
    Ok(text)
}

pub(super) fn edit_message(ctx: &Ctx<'_>, r: tl::functions::messages::EditMessage) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let cid = tri!(channel_of(&w, me, &r.peer));
        tri!(may_change(&w.channels[&cid], me, r.id, "edit_messages"));
        let captioned = w.channels[&cid]
            .history
            .iter()
            .any(|m| m.id == r.id && m.media.is_some());
        let text = tri!(edited_text(r.message, captioned));
        let entities = tri!(entities_of(
            &w,
            me,
            &text,
            r.entities.as_deref().unwrap_or(&[])
        ));
        let Some(c) = w.channels.get_mut(&cid) else {
            return err(400, "CHANNEL_INVALID");
        };
        let Some(at) = c.history.iter().position(|m| m.id == r.id) else {
            return err(400, "MESSAGE_ID_INVALID");
        };
        if c.history[at].text == text && c.history[at].entities == entities {
            return err(400, "MESSAGE_NOT_MODIFIED");
        }
        let now = unix_now();
        c.history[at].text = text;
        c.history[at].entities = entities;
        c.history[at].edit_date = Some(now);
        let pts = c.log(1, now, Change::EditMessage { id: r.id });
        answered(&mut w, me, cid, pts);
        let c = &w.channels[&cid];
        let edited = |c: &ChannelRec, viewer: i64| -> tl::enums::Update {
            tl::types::UpdateEditChannelMessage {
                message: channel_message_tl(c, &c.history[at], viewer),
                pts,
                pts_count: 1,
            }
            .into()
        };
        let told = to_members(&w, cid, Some(me), pts, &[], edited);
        let reply = ok(tl::enums::Updates::Updates(tl::types::Updates {
            updates: vec![edited(c, me)],
            users: Vec::new(),
            chats: vec![super::channel_tl(c, me)],
            date: now,
            seq: 0,
        }));
        (reply, told)
    };
    ctx.shared.deliver(told);
    reply
}

pub(super) fn delete_messages(ctx: &Ctx<'_>, r: tl::functions::channels::DeleteMessages) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let cid = tri!(input_channel_of(&w, me, &r.channel));
        for id in &r.id {
            // Telegram skips ids that are already gone; one it may not delete refuses the call.
            match may_change(&w.channels[&cid], me, *id, "delete_messages") {
                Ok(()) => {}
                Err(Reply::Error(400, name)) if name == "MESSAGE_ID_INVALID" => {}
                Err(_) => return err(403, "MESSAGE_DELETE_FORBIDDEN"),
            }
        }
        let Some(c) = w.channels.get_mut(&cid) else {
            return err(400, "CHANNEL_INVALID");
        };
        let mut gone = Vec::new();
        c.history.retain(|m| {
            let hit = r.id.contains(&m.id);
            if hit {
                gone.push(m.id);
            }
            !hit
        });
        let count = gone.len() as i32;
        let mut told = Vec::new();
        if count > 0 {
            let change = Change::DeleteMessages { ids: gone.clone() };
            let pts = c.log(count, unix_now(), change);
            answered(&mut w, me, cid, pts);
            told = to_members(&w, cid, Some(me), pts, &[], |_, _| {
                tl::types::UpdateDeleteChannelMessages {
                    channel_id: cid,
                    messages: gone.clone(),
                    pts,
                    pts_count: count,
                }
                .into()
            });
        }
        let reply = ok(tl::enums::messages::AffectedMessages::Messages(
            tl::types::messages::AffectedMessages {
                pts: w.channels[&cid].pts,
                pts_count: count,
            },
        ));
        (reply, told)
    };
    ctx.shared.deliver(told);
    reply
}

pub(super) fn update_pinned(
    ctx: &Ctx<'_>,
    r: tl::functions::messages::UpdatePinnedMessage,
) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let cid = tri!(channel_of(&w, me, &r.peer));
        let Some(c) = w.channels.get_mut(&cid) else {
            return err(400, "CHANNEL_INVALID");
        };
        if !c.may(me, "pin_messages") {
            return err(400, "CHAT_ADMIN_REQUIRED");
        }
        let Some(m) = c.history.iter_mut().find(|m| m.id == r.id) else {
            return err(400, "MESSAGE_ID_INVALID");
        };
        // Pinning what is pinned (or unpinning what is not) changes nothing and is no error.
        m.pinned = !r.unpin;
        let change = Change::PinnedMessages {
            ids: vec![r.id],
            pinned: !r.unpin,
            peer_user: None,
        };
        let pts = c.log(1, unix_now(), change);
        answered(&mut w, me, cid, pts);
        let pinned = |_: &ChannelRec, _: i64| -> tl::enums::Update {
            tl::types::UpdatePinnedChannelMessages {
                pinned: !r.unpin,
                channel_id: cid,
                messages: vec![r.id],
                pts,
                pts_count: 1,
            }
            .into()
        };
        let told = to_members(&w, cid, Some(me), pts, &[], pinned);
        let reply = ok(tl::enums::Updates::Updates(tl::types::Updates {
            updates: vec![pinned(&w.channels[&cid], me)],
            users: Vec::new(),
            chats: Vec::new(),
            date: unix_now(),
            seq: 0,
        }));
        (reply, told)
    };
    ctx.shared.deliver(told);
    reply
}

/// channels.getMessages: a channel's messages by id, for a member; an empty message for an id
/// that is not there.
pub(super) fn get_messages(ctx: &Ctx<'_>, r: tl::functions::channels::GetMessages) -> Reply {
    let w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let cid = tri!(input_channel_of(&w, me, &r.channel));
    let c = &w.channels[&cid];
    let messages: Vec<tl::enums::Message> =
        r.id.iter()
            .map(|wanted| {
                let found = match wanted {
                    tl::enums::InputMessage::Id(wanted) => c
                        .history
                        .iter()
                        .find(|m| m.id == wanted.id)
                        .ok_or(wanted.id),
                    _ => Err(0),
                };
                match found {
                    Ok(m) => channel_message_tl(c, m, me),
                    Err(id) => tl::types::MessageEmpty { id, peer_id: None }.into(),
                }
            })
            .collect();
    let users = w
        .users
        .get(&me)
        .map(|u| super::user_tl(u, me))
        .into_iter()
        .collect();
    ok(tl::enums::messages::Messages::ChannelMessages(
        tl::types::messages::ChannelMessages {
            inexact: false,
            pts: c.pts,
            count: messages.len() as i32,
            offset_id_offset: None,
            messages,
            topics: Vec::new(),
            chats: vec![super::channel_tl(c, me)],
            users,
        },
    ))
}
