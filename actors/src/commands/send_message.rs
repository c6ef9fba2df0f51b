//! messages.sendMessage to a peer (`me`, `@username`, `+phone`, an id). With a dedupe key the
//! random_id is fixed and durable before the first attempt, so a client's re-send after a lost
//! answer cannot post twice; a re-send while the first is in flight waits for its answer.

use grammers_session::types::{PeerAuth, PeerId, PeerInfo, PeerRef};
use grammers_session::Session;
use grammers_tl_types as tl;
use serde::Serialize;

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;
use crate::session::SentRecord;

#[derive(Clone)]
pub struct SendMessage {
    pub peer: Peer,
    pub text: String,
    /// Makes client re-sends idempotent.
    pub dedupe_key: Option<String>,
}

impl std::fmt::Debug for SendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMessage")
            .field("peer", &self.peer)
            .field("text", &"<redacted>")
            .field("dedupe_key", &self.dedupe_key)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub message_id: i32,
}

impl Handler for SendMessage {
    type Reply = Sent;
    type Op = Self;
    type Done = Sent;
    const NAME: &'static str = "send_message";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Sent> {
        view.call_allowed().map(|()| self).into()
    }

    fn joins(op: &Self) -> Option<String> {
        op.dedupe_key.clone()
    }

    async fn run(op: Self, tg: Tg) -> Result<Sent, OpFailure> {
        let SendMessage {
            peer,
            text,
            dedupe_key,
        } = op;
        let tg = &tg;
        use rand::Rng;
        // The random_id is fixed (and durable) before the first attempt: Telegram drops a second
        // message with the same random_id, so a re-send after a lost answer cannot duplicate it.
        let random_id = match &dedupe_key {
            Some(key) => match tg.session.sent_record(key) {
                Some(SentRecord {
                    message_id: Some(id),
                    ..
                }) => return Ok(Sent { message_id: id }),
                Some(record) => record.random_id,
                None => {
                    let random_id = rand::thread_rng().gen();
                    tg.session
                        .begin_send(
                            SentRecord {
                                key: key.clone(),
                                random_id,
                                message_id: None,
                            },
                            tg.env.limits.dedupe_capacity,
                        )
                        .await?;
                    random_id
                }
            },
            None => rand::thread_rng().gen(),
        };
        let input_peer = resolve_peer(tg, &peer).await?;
        let request = tl::functions::messages::SendMessage {
            no_webpage: false,
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: input_peer,
            reply_to: None,
            message: text,
            random_id,
            reply_markup: None,
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
            rich_message: None,
        };
        let updates = tg.call(&request).await?;
        let Some(message_id) = sent_message_id(&updates, random_id) else {
            return Err(OpFailure::user(AccountError::Internal(
                "Telegram's answer carried no message id".into(),
            )));
        };
        if let Some(key) = &dedupe_key {
            tg.session.complete_send(key, message_id).await?;
        }
        Ok(Sent { message_id })
    }

    fn on_done(_view: &View, sent: Sent) -> Decided<Sent> {
        Decided::answer(Ok(sent))
    }
}

fn sent_message_id(updates: &tl::enums::Updates, random_id: i64) -> Option<i32> {
    use tl::enums::{Update, Updates};
    let from_list = |list: &[Update]| {
        list.iter()
            .find_map(|u| match u {
                Update::MessageId(m) if m.random_id == random_id => Some(m.id),
                _ => None,
            })
            .or_else(|| {
                list.iter().find_map(|u| match u {
                    Update::NewMessage(m) => match &m.message {
                        tl::enums::Message::Message(msg) => Some(msg.id),
                        _ => None,
                    },
                    _ => None,
                })
            })
    };
    match updates {
        Updates::UpdateShortSentMessage(u) => Some(u.id),
        Updates::Updates(u) => from_list(&u.updates),
        Updates::Combined(u) => from_list(&u.updates),
        Updates::UpdateShort(u) => from_list(std::slice::from_ref(&u.update)),
        _ => None,
    }
}

/// A parsed peer → the peer to send to (resolving a username or phone through Telegram).
async fn resolve_peer(tg: &Tg, peer: &Peer) -> Result<tl::enums::InputPeer, OpFailure> {
    let invalid = |why: &str| OpFailure::user(AccountError::PeerInvalid(why.to_owned()));
    let resolved = match peer {
        Peer::Me => return Ok(tl::enums::InputPeer::PeerSelf),
        Peer::Username(username) => {
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
        Err(e) => return Err(e.into()),
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
    Ok(PeerRef { id: target, auth }.into())
}
