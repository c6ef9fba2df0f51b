//! What happens to a private chat's messages after they are sent, as Telegram answers it: each
//! side holds its own copy under its own id, so an edit, a pin or a deletion for both reaches
//! the other side's copy too, and the other side hears of it as an update.

use grammers_tl_types::{self as tl, Serializable};

use super::{caller, entities_of, err, ok, private_message_tl, resolve_input_peer, Ctx, Reply};
use crate::shared::Delivery;
use crate::updates::Change;
use crate::world::{unix_now, PeerRef, World};

/// Whether `peer` addresses a user (then the private handlers answer, not the channel ones).
pub(super) fn is_private(peer: &tl::enums::InputPeer) -> bool {
    matches!(
        peer,
        tl::enums::InputPeer::PeerSelf
            | tl::enums::InputPeer::User(_)
            | tl::enums::InputPeer::UserFromMessage(_)
    )
}

/// The other side of the private chat `peer` names, for the caller.
fn other_of(w: &World, me: i64, peer: &tl::enums::InputPeer) -> Result<i64, Reply> {
    match resolve_input_peer(w, me, peer)? {
        PeerRef::User(other) => Ok(other),
        PeerRef::Channel(_) => Err(err(400, "PEER_ID_INVALID")),
    }
}

/// What the other side of a private chat is told once the world is unlocked.
fn tell(ctx: &Ctx<'_>, told: Vec<(i64, Vec<u8>)>) {
    ctx.shared.deliver(
        told.into_iter()
            .map(|(user, bytes)| Delivery {
                user,
                bytes,
                channel: None,
            })
            .collect(),
    );
}

fn updates(update: tl::enums::Update, users: Vec<tl::enums::User>) -> tl::enums::Updates {
    tl::enums::Updates::Updates(tl::types::Updates {
        updates: vec![update],
        users,
        chats: Vec::new(),
        date: unix_now(),
        seq: 0,
    })
}

pub(super) fn edit_message(ctx: &Ctx<'_>, r: tl::functions::messages::EditMessage) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let other = tri!(other_of(&w, me, &r.peer));
        let Some(m) = w.users[&me]
            .history
            .iter()
            .find(|m| m.id == r.id && m.peer_user == other)
        else {
            return err(400, "MESSAGE_ID_INVALID");
        };
        // In a private chat only the sender edits a message.
        if m.from_user != me {
            return err(403, "MESSAGE_AUTHOR_REQUIRED");
        }
        let captioned = m.media.is_some();
        let text = tri!(super::channel_posts::edited_text(r.message, captioned));
        let entities = tri!(entities_of(
            &w,
            me,
            &text,
            r.entities.as_deref().unwrap_or(&[])
        ));
        if m.text == text && m.entities == entities {
            return err(400, "MESSAGE_NOT_MODIFIED");
        }
        let pair = m.pair;
        let now = unix_now();
        let mut edited = Vec::new();
        for (user, id) in [(me, Some(r.id)), (other, pair.filter(|_| other != me))] {
            let Some(id) = id else { continue };
            let Some(u) = w.users.get_mut(&user) else {
                continue;
            };
            let Some(m) = u.history.iter_mut().find(|m| m.id == id) else {
                continue;
            };
            m.text = text.clone();
            m.entities = entities.clone();
            m.edit_date = Some(now);
            let message = private_message_tl(m);
            let pts = u.log(1, now, Change::EditMessage { id });
            let update = tl::types::UpdateEditMessage {
                message,
                pts,
                pts_count: 1,
            };
            edited.push((user, update));
        }
        // Each side is told of both users as it sees them (only itself is `is_self`).
        let users = |viewer: i64| -> Vec<_> {
            [me, other]
                .iter()
                .filter_map(|id| w.users.get(id))
                .map(|u| super::user_tl(u, viewer))
                .collect()
        };
        let mut reply = None;
        let mut told = Vec::new();
        for (user, update) in edited {
            let bytes = updates(update.into(), users(user));
            if user == me {
                reply = Some(ok(bytes));
            } else {
                told.push((user, bytes.to_bytes()));
            }
        }
        (
            reply.unwrap_or_else(|| err(400, "MESSAGE_ID_INVALID")),
            told,
        )
    };
    tell(ctx, told);
    reply
}

/// messages.deleteMessages: ids of the caller's own message box (private chats and basic
/// groups; a channel's are channels.deleteMessages). `revoke` deletes the other side's copy too.
pub(super) fn delete_messages(ctx: &Ctx<'_>, r: tl::functions::messages::DeleteMessages) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let Some(u) = w.users.get_mut(&me) else {
            return err(401, "AUTH_KEY_UNREGISTERED");
        };
        // Telegram skips ids that are not (any more) in the box.
        let mut theirs: Vec<(i64, i32)> = Vec::new();
        let mut mine = Vec::new();
        u.history.retain(|m| {
            let gone = r.id.contains(&m.id);
            if gone {
                mine.push(m.id);
                if r.revoke && m.peer_user != me {
                    theirs.extend(m.pair.map(|pair| (m.peer_user, pair)));
                }
            }
            !gone
        });
        let count = mine.len() as i32;
        if count > 0 {
            u.log(count, unix_now(), Change::DeleteMessages { ids: mine });
        }
        let answer = tl::types::messages::AffectedMessages {
            pts: u.pts,
            pts_count: count,
        };
        let mut told = Vec::new();
        let mut others: Vec<i64> = theirs.iter().map(|(user, _)| *user).collect();
        others.dedup();
        for other in others {
            let ids: Vec<i32> = theirs
                .iter()
                .filter(|(user, _)| *user == other)
                .map(|(_, id)| *id)
                .collect();
            let Some(o) = w.users.get_mut(&other) else {
                continue;
            };
            let mut gone = Vec::new();
            o.history.retain(|m| {
                let hit = ids.contains(&m.id);
                if hit {
                    gone.push(m.id);
                }
                !hit
            });
            let count = gone.len() as i32;
            if count == 0 {
                continue;
            }
            let pts = o.log(
                count,
                unix_now(),
                Change::DeleteMessages { ids: gone.clone() },
            );
            let update = tl::types::UpdateDeleteMessages {
                messages: gone,
                pts,
                pts_count: count,
            };
            told.push((other, updates(update.into(), Vec::new()).to_bytes()));
        }
        (
            ok(tl::enums::messages::AffectedMessages::Messages(answer)),
            told,
        )
    };
    tell(ctx, told);
    reply
}

/// messages.updatePinnedMessage in a private chat: pinned for both sides unless `pm_oneside`.
pub(super) fn update_pinned(
    ctx: &Ctx<'_>,
    r: tl::functions::messages::UpdatePinnedMessage,
) -> Reply {
    let (reply, told) = {
        let mut w = ctx.shared.world();
        let me = tri!(caller(&w, ctx));
        let other = tri!(other_of(&w, me, &r.peer));
        let Some(pair) = w.users[&me]
            .history
            .iter()
            .find(|m| m.id == r.id && m.peer_user == other)
            .map(|m| m.pair)
        else {
            return err(400, "MESSAGE_ID_INVALID");
        };
        let both = !r.pm_oneside && other != me;
        let mut reply = None;
        let mut told = Vec::new();
        for (user, id, peer) in [(me, Some(r.id), other), (other, pair.filter(|_| both), me)] {
            let Some(id) = id else { continue };
            let Some(u) = w.users.get_mut(&user) else {
                continue;
            };
            let Some(m) = u.history.iter_mut().find(|m| m.id == id) else {
                continue;
            };
            // Pinning what is pinned (or unpinning what is not) changes nothing and is no error.
            m.pinned = !r.unpin;
            let change = Change::PinnedMessages {
                ids: vec![id],
                pinned: !r.unpin,
                peer_user: Some(peer),
            };
            let pts = u.log(1, unix_now(), change);
            let update = tl::types::UpdatePinnedMessages {
                pinned: !r.unpin,
                peer: tl::types::PeerUser { user_id: peer }.into(),
                messages: vec![id],
                pts,
                pts_count: 1,
            };
            let answer = updates(update.into(), Vec::new());
            if user == me {
                reply = Some(ok(answer));
            } else {
                told.push((user, answer.to_bytes()));
            }
        }
        (
            reply.unwrap_or_else(|| err(400, "MESSAGE_ID_INVALID")),
            told,
        )
    };
    tell(ctx, told);
    reply
}

/// messages.getMessages: messages of the caller's own box by id (private chats and basic
/// groups), an empty message for an id that is not there.
pub(super) fn get_messages(ctx: &Ctx<'_>, r: tl::functions::messages::GetMessages) -> Reply {
    let w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let Some(u) = w.users.get(&me) else {
        return err(401, "AUTH_KEY_UNREGISTERED");
    };
    let mut others = vec![me];
    let messages =
        r.id.iter()
            .map(|wanted| {
                let tl::enums::InputMessage::Id(wanted) = wanted else {
                    return tl::types::MessageEmpty {
                        id: 0,
                        peer_id: None,
                    }
                    .into();
                };
                match u.history.iter().find(|m| m.id == wanted.id) {
                    Some(m) => {
                        others.push(m.peer_user);
                        private_message_tl(m)
                    }
                    None => tl::types::MessageEmpty {
                        id: wanted.id,
                        peer_id: None,
                    }
                    .into(),
                }
            })
            .collect();
    others.dedup();
    let users = others
        .iter()
        .filter_map(|id| w.users.get(id))
        .map(|u| super::user_tl(u, me))
        .collect();
    ok(tl::enums::messages::Messages::Messages(
        tl::types::messages::Messages {
            messages,
            topics: Vec::new(),
            chats: Vec::new(),
            users,
        },
    ))
}
