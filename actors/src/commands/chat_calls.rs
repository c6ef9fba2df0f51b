//! What the chat commands share: turning a parsed peer or chat into what Telegram addresses
//! (resolving a username or phone, and caching the access hashes it answers), and Telegram's
//! refusals of chat operations as stable codes a caller can act on.

use grammers_session::types::{PeerAuth, PeerId, PeerInfo, PeerRef};
use grammers_session::Session;
use grammers_tl_types as tl;

use super::OpFailure;
use crate::client::{CallError, Tg};
use crate::peer::Peer;
use crate::protocol::AccountError;

/// Telegram's refusals of a chat operation that are the caller's to act on, answered with their
/// own name as the code (anything else stays a generic Telegram error).
pub const CHAT_REFUSALS: [&str; 41] = [
    "BOT_METHOD_INVALID",
    "MEDIA_CAPTION_TOO_LONG",
    "FILE_REFERENCE_EXPIRED",
    "CHAT_SEND_MEDIA_FORBIDDEN",
    "MESSAGE_ID_INVALID",
    "MESSAGE_AUTHOR_REQUIRED",
    "MESSAGE_DELETE_FORBIDDEN",
    "MESSAGE_EMPTY",
    "REPLY_MESSAGE_ID_INVALID",
    "ENTITY_BOUNDS_INVALID",
    "ENTITY_MENTION_USER_INVALID",
    "INVITE_REQUEST_SENT",
    "INVITE_HASH_EMPTY",
    "CHANNELS_ADMIN_PUBLIC_TOO_MUCH",
    "USERNAME_PURCHASE_AVAILABLE",
    "USERNAME_NOT_MODIFIED",
    "ADMINS_TOO_MUCH",
    "USER_NOT_MUTUAL_CONTACT",
    "USER_CHANNELS_TOO_MUCH",
    "USERS_TOO_MUCH",
    "USER_ID_INVALID",
    "USER_PRIVACY_RESTRICTED",
    "RIGHT_FORBIDDEN",
    "CHAT_SEND_PLAIN_FORBIDDEN",
    "CHAT_ADMIN_REQUIRED",
    "CHAT_WRITE_FORBIDDEN",
    "CHAT_NOT_MODIFIED",
    "CHAT_ABOUT_NOT_MODIFIED",
    "CHAT_ABOUT_TOO_LONG",
    "CHAT_TITLE_EMPTY",
    "CHANNEL_PRIVATE",
    "CHANNEL_INVALID",
    "CHANNELS_TOO_MUCH",
    "USER_BANNED_IN_CHANNEL",
    "USER_NOT_PARTICIPANT",
    "USER_ALREADY_PARTICIPANT",
    "USER_CREATOR",
    "INVITE_HASH_INVALID",
    "INVITE_HASH_EXPIRED",
    "USERNAME_OCCUPIED",
    "USERNAME_INVALID",
];

/// A failed call, with a known chat refusal named as such.
pub(crate) fn refusal(cause: CallError) -> OpFailure {
    let known = match &cause {
        CallError::Rpc(rpc) => CHAT_REFUSALS.iter().find(|n| rpc.is(n)).copied(),
        _ => None,
    };
    let mut failure = OpFailure::from(cause);
    if let Some(name) = known {
        failure.error = AccountError::ChatRefused(name);
    }
    failure
}

/// A chat or channel a chat command works on: a channel or supergroup (basic groups and private
/// chats have none of these operations).
pub(crate) async fn resolve_channel(
    tg: &Tg,
    chat: &Peer,
) -> Result<tl::enums::InputChannel, OpFailure> {
    match resolve_peer(tg, chat).await? {
        tl::enums::InputPeer::Channel(c) => Ok(tl::types::InputChannel {
            channel_id: c.channel_id,
            access_hash: c.access_hash,
        }
        .into()),
        _ => Err(OpFailure::user(AccountError::PeerInvalid(
            "not a channel or supergroup".into(),
        ))),
    }
}

/// The InputPeer of a channel Telegram addresses by InputChannel.
pub(crate) fn channel_peer(channel: &tl::enums::InputChannel) -> tl::enums::InputPeer {
    match channel {
        tl::enums::InputChannel::Channel(c) => tl::types::InputPeerChannel {
            channel_id: c.channel_id,
            access_hash: c.access_hash,
        }
        .into(),
        _ => tl::enums::InputPeer::Empty,
    }
}

/// A parsed peer → the peer to send to (resolving a username or phone through Telegram).
pub(crate) async fn resolve_peer(tg: &Tg, peer: &Peer) -> Result<tl::enums::InputPeer, OpFailure> {
    let invalid = |why: &str| OpFailure::user(AccountError::PeerInvalid(why.to_owned()));
    let resolved = match peer {
        Peer::Me => return Ok(tl::enums::InputPeer::PeerSelf),
        Peer::Username(username) => {
            if let Some(known) = tg.session.resolved_username(&username.to_lowercase()) {
                if let Some(auth) = known.auth() {
                    return Ok(PeerRef {
                        id: known.id(),
                        auth,
                    }
                    .into());
                }
            }
            tg.call(&tl::functions::contacts::ResolveUsername {
                username: username.clone(),
                referer: None,
            })
            .await
        }
        Peer::Phone(phone) => {
            tg.call(&tl::functions::contacts::ResolvePhone {
                phone: phone.digits().to_owned(),
            })
            .await
        }
        Peer::Id(id) => {
            let Some(peer_id) = PeerId::from_bot_api_dialog_id(*id) else {
                return Err(invalid("not a valid peer id"));
            };
            // With a cached access hash the peer is addressable; without, Telegram may still
            // accept it (contacts, bots' chats) through ambient authority.
            let auth = tg
                .session
                .cached_peer(peer_id)
                .and_then(|info| info.auth())
                .unwrap_or_default();
            return Ok(PeerRef { id: peer_id, auth }.into());
        }
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(e)
            if e.is("USERNAME_NOT_OCCUPIED")
                || e.is("USERNAME_INVALID")
                || e.is("PHONE_NOT_OCCUPIED")
                || e.is("PHONE_NUMBER_INVALID") =>
        {
            return Err(OpFailure {
                error: AccountError::PeerInvalid(e.code()),
                cause: Some(e),
            })
        }
        Err(e) => return Err(refusal(e)),
    };
    let tl::enums::contacts::ResolvedPeer::Peer(resolved) = resolved;
    let mut infos = Vec::new();
    for user in &resolved.users {
        if let tl::enums::User::User(u) = user {
            infos.push(PeerInfo::User {
                id: u.id,
                auth: u.access_hash.map(PeerAuth::from_hash),
                bot: Some(u.bot),
                is_self: None,
            });
        }
    }
    for chat in &resolved.chats {
        match chat {
            tl::enums::Chat::Channel(c) => infos.push(PeerInfo::Channel {
                id: c.id,
                auth: c.access_hash.map(PeerAuth::from_hash),
                kind: None,
            }),
            tl::enums::Chat::Chat(c) => infos.push(PeerInfo::Chat { id: c.id }),
            _ => {}
        }
    }
    let target = PeerId::from(&resolved.peer);
    let auth = infos
        .iter()
        .find(|i| i.id() == target)
        .and_then(|i| i.auth())
        .unwrap_or_default();
    Session::cache_peers(&*tg.session, infos).await?;
    if let Peer::Username(username) = peer {
        tg.session
            .remember_username(username.to_lowercase(), target);
    }
    Ok(PeerRef { id: target, auth }.into())
}
