//! A message sent by a testdc user from outside any session (control API `POST /messages`,
//! [`crate::TestDc::send_message`]): incoming traffic for the accounts under test while they
//! are connected, disconnected or stopped. It is stored and numbered exactly as one sent over
//! MTProto, so catch-up replays it; and since no session of the sender made the request, every
//! live session of the sender hears of it too, as Telegram tells a user's other devices.

use grammers_tl_types::{self as tl, Serializable};

use super::{incoming_updates, post, user_tl, Outgoing, Reply};
use crate::shared::{Delivery, Shared};
use crate::world::{normalize_phone, random_i64, PeerRef, World};

/// Bot-API-style channel ids are `-(10^12 + id)`.
const CHANNEL_ID_OFFSET: i64 = 1_000_000_000_000;
/// Telegram's longest text message.
const TEXT_MAX: usize = 4096;

/// What [`crate::TestDc::send_message`] stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SentMessage {
    /// The message's id in the sender's box (private chat) or in the channel.
    pub message_id: i32,
    /// The sender's pts (private chat) or the channel's, after the message.
    pub pts: i32,
    pub date: i32,
    /// A private message's copy in the recipient's box: its id there and the recipient's pts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_message_id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient_pts: Option<i32>,
    /// The channel posted in (Telegram's bare id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
}

/// Why a message was refused: the HTTP status the control API answers, and a Telegram-like code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct SendError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl SendError {
    fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
        }
    }

    fn not_found(to: &str) -> Self {
        Self::new(404, "PEER_ID_INVALID", format!("no user or channel {to}"))
    }
}

/// Whom `to` names: `+phone`, `@username`, or a Bot-API chat id (users > 0, channels
/// `-100…`). testdc has no basic groups, so any other negative id names nobody.
fn recipient(w: &World, to: &str) -> Result<PeerRef, SendError> {
    let to = to.trim();
    let peer = if let Some(name) = to.strip_prefix('@') {
        w.usernames.get(&name.to_lowercase()).copied()
    } else if to.starts_with('+') {
        w.user_by_phone(to)
            .filter(|u| u.registered)
            .map(|u| PeerRef::User(u.id))
    } else {
        let Ok(n) = to.parse::<i64>() else {
            return Err(SendError::new(
                400,
                "PEER_ID_INVALID",
                "to must be +phone, @username or a chat id",
            ));
        };
        match n {
            n if n > 0 => w.users.contains_key(&n).then_some(PeerRef::User(n)),
            n if n < -CHANNEL_ID_OFFSET => Some(PeerRef::Channel(-n - CHANNEL_ID_OFFSET)),
            _ => None,
        }
    };
    let exists = match peer {
        Some(PeerRef::User(id)) => w.users.contains_key(&id),
        Some(PeerRef::Channel(id)) => w.channels.contains_key(&id),
        None => false,
    };
    match peer {
        Some(p) if exists => Ok(p),
        _ => Err(SendError::not_found(to)),
    }
}

/// The sender, created on first use as a sandbox phone is.
fn sender(w: &mut World, from_phone: &str) -> Result<i64, SendError> {
    let digits = normalize_phone(from_phone);
    if !(5..=15).contains(&digits.len()) {
        return Err(SendError::new(
            400,
            "PHONE_NUMBER_INVALID",
            "from_phone must have 5 to 15 digits",
        ));
    }
    let id = match w.user_by_phone(&digits) {
        Some(u) => u.id,
        None => w.sandbox_user(&digits, 2),
    };
    match w.users.get(&id) {
        Some(u) if u.banned => Err(SendError::new(
            403,
            "USER_DEACTIVATED_BAN",
            "the sender is banned",
        )),
        Some(u) if !u.registered => Err(SendError::new(
            403,
            "USER_DEACTIVATED",
            "the sender has no account yet",
        )),
        Some(_) => Ok(id),
        None => Err(SendError::new(500, "INTERNAL", "the sender vanished")),
    }
}

fn check_text(text: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(SendError::new(400, "MESSAGE_EMPTY", "text is empty"));
    }
    if text.chars().count() > TEXT_MAX {
        return Err(SendError::new(
            400,
            "MESSAGE_TOO_LONG",
            format!("text holds at most {TEXT_MAX} characters"),
        ));
    }
    Ok(())
}

/// Stores a text message from the user with `from_phone` to `to` and tells everyone concerned.
pub fn send(
    shared: &Shared,
    from_phone: &str,
    to: &str,
    text: &str,
) -> Result<SentMessage, SendError> {
    check_text(text)?;
    let (sent, deliveries) = {
        let mut w = shared.world();
        let target = recipient(&w, to)?;
        // A phone new to testdc is no channel's member: refused before its user is made, so a
        // refused send leaves the world as it was.
        if matches!(target, PeerRef::Channel(_))
            && w.user_by_phone(&normalize_phone(from_phone)).is_none()
        {
            return Err(SendError::new(
                403,
                "CHAT_WRITE_FORBIDDEN",
                "the sender is not a member of this channel",
            ));
        }
        let me = sender(&mut w, from_phone)?;
        if let PeerRef::Channel(cid) = target {
            // Only a member writes into a channel (and in a broadcast one only who may post).
            if !w.channels[&cid].members.contains(&me) {
                return Err(SendError::new(
                    403,
                    "CHAT_WRITE_FORBIDDEN",
                    "the sender is not a member of this channel",
                ));
            }
        }
        let out = Outgoing {
            random_id: random_i64(),
            text: text.to_owned(),
            entities: Vec::new(),
            reply_to: None,
            silent: false,
            no_webpage: true,
            media: None,
            grouped_id: None,
        };
        let posted = post(&mut w, me, target, out).map_err(|reply| match reply {
            Reply::Error(code, name) => {
                let message = format!("Telegram would answer {code} {name}");
                SendError::new(if code == 403 { 403 } else { 400 }, &name, message)
            }
            _ => SendError::new(500, "INTERNAL", "unexpected answer"),
        })?;
        let mut deliveries = posted.pushes;
        let own = match target {
            PeerRef::User(other) => w.users.get(&me).and_then(|u| {
                let rec = u.history.last()?;
                let peer = w.users.get(&other).map(|o| user_tl(o, me));
                Some(Delivery {
                    user: me,
                    bytes: incoming_updates(rec, false, peer).to_bytes(),
                    channel: None,
                })
            }),
            PeerRef::Channel(cid) => Some(Delivery {
                user: me,
                bytes: tl::enums::Updates::Updates(tl::types::Updates {
                    updates: vec![posted.update],
                    users: posted.users,
                    chats: posted.chats,
                    date: posted.date,
                    seq: 0,
                })
                .to_bytes(),
                channel: Some((cid, posted.pts)),
            }),
        };
        deliveries.extend(own);
        let sent = SentMessage {
            message_id: posted.id,
            pts: posted.pts,
            date: posted.date,
            recipient_message_id: posted.copy.map(|(id, _)| id),
            recipient_pts: posted.copy.map(|(_, pts)| pts),
            channel_id: match target {
                PeerRef::Channel(cid) => Some(cid),
                PeerRef::User(_) => None,
            },
        };
        (sent, deliveries)
    };
    shared.deliver(deliveries);
    Ok(sent)
}
