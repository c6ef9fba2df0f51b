//! Channel and supergroup administration as Telegram answers it: full info, title and about,
//! leaving and deleting, joining a public channel or by invite link, invite links, admins and
//! their rights, public usernames. Errors are Telegram's names for the same refusals.

use grammers_tl_types as tl;

use super::{caller, channel_of, channel_tl, err, ok, Ctx, Reply};
use crate::tlb;
use crate::world::{random_i64, unix_now, AdminRec, ChannelRec, PeerRef, World};

/// The channel an InputChannel names, if its access hash is right; `member`: the caller must be
/// in it (Telegram's CHANNEL_PRIVATE otherwise).
fn channel_id(
    w: &World,
    me: i64,
    input: &tl::enums::InputChannel,
    member: bool,
) -> Result<i64, Reply> {
    let tl::enums::InputChannel::Channel(c) = input else {
        return Err(err(400, "CHANNEL_INVALID"));
    };
    match w.channels.get(&c.channel_id) {
        Some(rec) if rec.access_hash == c.access_hash => {
            if member && !rec.members.contains(&me) {
                Err(err(400, "CHANNEL_PRIVATE"))
            } else {
                Ok(rec.id)
            }
        }
        _ => Err(err(400, "CHANNEL_INVALID")),
    }
}

fn channel_mut(w: &mut World, id: i64) -> Result<&mut ChannelRec, Reply> {
    w.channels
        .get_mut(&id)
        .ok_or_else(|| err(400, "CHANNEL_INVALID"))
}

/// The Updates Telegram answers a change of a channel with: the channel as the caller now sees it.
fn updates_of(w: &World, id: i64, me: i64) -> tl::enums::Updates {
    let chats = w
        .channels
        .get(&id)
        .map(|c| vec![channel_tl(c, me)])
        .unwrap_or_default();
    tl::enums::Updates::Updates(tl::types::Updates {
        updates: vec![tl::types::UpdateChannel { channel_id: id }.into()],
        users: Vec::new(),
        chats,
        date: unix_now(),
        seq: 0,
    })
}

fn channel_updates(w: &World, id: i64, me: i64) -> Reply {
    ok(updates_of(w, id, me))
}

/// What channels.joinChannel and messages.importChatInvite answer in this layer.
fn joined(w: &World, id: i64, me: i64) -> Reply {
    ok(tl::enums::messages::ChatInviteJoinResult::Ok(
        tl::types::messages::ChatInviteJoinResultOk {
            updates: updates_of(w, id, me),
        },
    ))
}

pub(super) fn get_full_channel(ctx: &Ctx<'_>, r: tl::functions::channels::GetFullChannel) -> Reply {
    let w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, false));
    let c = &w.channels[&id];
    // A public channel shows itself to anyone; a private one only to its members.
    if c.username.is_none() && !c.members.contains(&me) {
        return err(400, "CHANNEL_PRIVATE");
    }
    ok(tl::enums::messages::ChatFull::Full(
        tl::types::messages::ChatFull {
            full_chat: tlb::channel_full(
                c.id,
                &c.about,
                c.members.len() as i32,
                c.admins.len() as i32 + 1,
                c.pts,
            ),
            chats: vec![channel_tl(c, me)],
            users: Vec::new(),
        },
    ))
}

pub(super) fn edit_title(ctx: &Ctx<'_>, r: tl::functions::channels::EditTitle) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, true));
    let title = r.title.trim();
    let c = tri!(channel_mut(&mut w, id));
    if !c.may(me, "change_info") {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    if title.is_empty() {
        return err(400, "CHAT_TITLE_EMPTY");
    }
    if c.title == title {
        return err(400, "CHAT_NOT_MODIFIED");
    }
    c.title = title.to_owned();
    channel_updates(&w, id, me)
}

pub(super) fn edit_about(ctx: &Ctx<'_>, r: tl::functions::messages::EditChatAbout) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_of(&w, me, &r.peer));
    let c = tri!(channel_mut(&mut w, id));
    if !c.may(me, "change_info") {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    if r.about.chars().count() > 255 {
        return err(400, "CHAT_ABOUT_TOO_LONG");
    }
    if c.about == r.about {
        return err(400, "CHAT_ABOUT_NOT_MODIFIED");
    }
    c.about = r.about;
    ok(true)
}

pub(super) fn leave_channel(ctx: &Ctx<'_>, r: tl::functions::channels::LeaveChannel) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, false));
    let c = tri!(channel_mut(&mut w, id));
    if !c.members.contains(&me) {
        return err(400, "USER_NOT_PARTICIPANT");
    }
    // As Telegram documents it: the creator deletes its channel, it does not leave it.
    if c.creator == me {
        return err(400, "USER_CREATOR");
    }
    c.members.retain(|m| *m != me);
    c.admins.retain(|a| a.user != me);
    channel_updates(&w, id, me)
}

pub(super) fn delete_channel(ctx: &Ctx<'_>, r: tl::functions::channels::DeleteChannel) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, true));
    if w.channels[&id].creator != me {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    if let Some(c) = w.channels.remove(&id) {
        if let Some(name) = c.username {
            w.usernames.remove(&name.to_lowercase());
        }
    }
    channel_updates(&w, id, me)
}

pub(super) fn join_channel(ctx: &Ctx<'_>, r: tl::functions::channels::JoinChannel) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, false));
    let c = tri!(channel_mut(&mut w, id));
    if c.members.contains(&me) {
        return err(400, "USER_ALREADY_PARTICIPANT");
    }
    // Only a public channel is open to anyone with its access hash; a private one needs a link.
    if c.username.is_none() {
        return err(400, "CHANNEL_PRIVATE");
    }
    c.members.push(me);
    joined(&w, id, me)
}

pub(super) fn export_invite(ctx: &Ctx<'_>, r: tl::functions::messages::ExportChatInvite) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_of(&w, me, &r.peer));
    let c = tri!(channel_mut(&mut w, id));
    if !c.may(me, "invite_users") {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    let hash = format!("{:016x}", random_i64() as u64);
    c.invites.push(hash.clone());
    ok(tl::enums::ExportedChatInvite::ChatInviteExported(
        tl::types::ChatInviteExported {
            revoked: false,
            permanent: true,
            request_needed: false,
            link: format!("https://t.me/+{hash}"),
            admin_id: me,
            date: unix_now(),
            start_date: None,
            expire_date: None,
            usage_limit: None,
            usage: None,
            requested: None,
            subscription_expired: None,
            title: None,
            subscription_pricing: None,
        },
    ))
}

pub(super) fn import_invite(ctx: &Ctx<'_>, hash: &str) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let Some(id) = w
        .channels
        .values()
        .find(|c| c.invites.iter().any(|h| h == hash))
        .map(|c| c.id)
    else {
        return err(400, "INVITE_HASH_INVALID");
    };
    let c = tri!(channel_mut(&mut w, id));
    if c.members.contains(&me) {
        return err(400, "USER_ALREADY_PARTICIPANT");
    }
    c.members.push(me);
    joined(&w, id, me)
}

pub(super) fn edit_admin(ctx: &Ctx<'_>, r: tl::functions::channels::EditAdmin) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, true));
    let target = match &r.user_id {
        tl::enums::InputUser::User(u) => match w.users.get(&u.user_id) {
            Some(rec) if rec.access_hash == u.access_hash => u.user_id,
            _ => return err(400, "USER_ID_INVALID"),
        },
        tl::enums::InputUser::UserSelf => me,
        _ => return err(400, "USER_ID_INVALID"),
    };
    let rights = tlb::rights_names(&r.admin_rights);
    let bot = w.users.get(&target).is_some_and(|u| u.bot);
    let c = tri!(channel_mut(&mut w, id));
    if !c.may(me, "add_admins") {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    if target == c.creator {
        return err(400, "USER_CREATOR");
    }
    // A bot cannot join a channel itself: making it an admin adds it, as on Telegram.
    if bot && !rights.is_empty() && !c.members.contains(&target) {
        c.members.push(target);
    }
    if !c.members.contains(&target) {
        return err(400, "USER_NOT_PARTICIPANT");
    }
    if c.creator != me {
        // An admin grants only rights it holds, and changes only the admins it appointed.
        if !rights.iter().all(|r| c.may(me, r)) {
            return err(403, "RIGHT_FORBIDDEN");
        }
        if c.admins
            .iter()
            .any(|a| a.user == target && a.promoted_by != me)
        {
            return err(400, "CHAT_ADMIN_REQUIRED");
        }
    }
    c.admins.retain(|a| a.user != target);
    if !rights.is_empty() {
        c.admins.push(AdminRec {
            user: target,
            promoted_by: me,
            rights,
        });
    }
    channel_updates(&w, id, me)
}

pub(super) fn update_username(ctx: &Ctx<'_>, r: tl::functions::channels::UpdateUsername) -> Reply {
    let mut w = ctx.shared.world();
    let me = tri!(caller(&w, ctx));
    let id = tri!(channel_id(&w, me, &r.channel, true));
    if w.channels[&id].creator != me {
        return err(400, "CHAT_ADMIN_REQUIRED");
    }
    let name = r.username.trim_start_matches('@');
    if !username_valid(name) {
        return err(400, "USERNAME_INVALID");
    }
    match w.usernames.get(&name.to_lowercase()) {
        Some(PeerRef::Channel(holder)) if *holder == id => {
            return err(400, "USERNAME_NOT_MODIFIED")
        }
        Some(_) => return err(400, "USERNAME_OCCUPIED"),
        None => {}
    }
    if let Some(old) = w.channels[&id].username.clone() {
        w.usernames.remove(&old.to_lowercase());
    }
    w.set_username(PeerRef::Channel(id), name);
    ok(true)
}

/// Whether a public name is free (for a new channel, `inputChannelEmpty`).
pub(super) fn check_username(ctx: &Ctx<'_>, r: tl::functions::channels::CheckUsername) -> Reply {
    let w = ctx.shared.world();
    let _ = tri!(caller(&w, ctx));
    let name = r.username.trim_start_matches('@');
    if !username_valid(name) {
        return err(400, "USERNAME_INVALID");
    }
    ok(!w.usernames.contains_key(&name.to_lowercase()))
}

fn username_valid(name: &str) -> bool {
    (5..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
