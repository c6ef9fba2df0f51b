//! A chat of an account as the API shows it: a dialog or a channel the account made, with a Bot
//! API style id (users > 0, basic groups < 0, channels `-100…`) a frontend can store.

use grammers_session::types::{ChannelKind, PeerAuth, PeerId, PeerInfo};
use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    /// A broadcast channel: only admins post.
    Channel,
    /// A channel that works as a group (`megagroup`).
    Supergroup,
    /// A basic group.
    Group,
    /// A private chat with a user or a bot.
    User,
}

impl ChatKind {
    pub const ALL: [ChatKind; 4] = [Self::Channel, Self::Supergroup, Self::Group, Self::User];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Supergroup => "supergroup",
            Self::Group => "group",
            Self::User => "user",
        }
    }
}

impl std::str::FromStr for ChatKind {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or(())
    }
}

/// What the account may do in a group or channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    Creator,
    Admin,
    Member,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creator => "creator",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// Bot API style: users > 0, basic groups < 0, channels and supergroups `-100…`.
    pub chat_id: i64,
    #[serde(rename = "type")]
    pub kind: ChatKind,
    pub title: String,
    pub username: Option<String>,
    /// `None` for a private chat.
    pub role: Option<ChatRole>,
    pub members_count: Option<i32>,
}

fn role(creator: bool, admin: bool) -> ChatRole {
    if creator {
        ChatRole::Creator
    } else if admin {
        ChatRole::Admin
    } else {
        ChatRole::Member
    }
}

/// A group or channel Telegram sent, and what the session caches of it (its access hash, so the
/// chat is addressable by id afterwards). `None` for chats the account cannot see.
pub(crate) fn from_tl_chat(chat: &tl::enums::Chat) -> Option<(Chat, PeerInfo)> {
    match chat {
        tl::enums::Chat::Channel(c) if !c.left => {
            let kind = if c.megagroup {
                ChatKind::Supergroup
            } else {
                ChatKind::Channel
            };
            let chat_id = PeerId::channel(c.id)?.bot_api_dialog_id()?;
            let info = PeerInfo::Channel {
                id: c.id,
                auth: c.access_hash.map(PeerAuth::from_hash),
                kind: Some(if c.megagroup {
                    ChannelKind::Megagroup
                } else {
                    ChannelKind::Broadcast
                }),
            };
            Some((
                Chat {
                    chat_id,
                    kind,
                    title: c.title.clone(),
                    username: c.username.clone(),
                    role: Some(role(c.creator, c.admin_rights.is_some())),
                    members_count: c.participants_count,
                },
                info,
            ))
        }
        tl::enums::Chat::Chat(c) if !c.left && !c.deactivated => Some((
            Chat {
                chat_id: PeerId::chat(c.id)?.bot_api_dialog_id()?,
                kind: ChatKind::Group,
                title: c.title.clone(),
                username: None,
                role: Some(role(c.creator, c.admin_rights.is_some())),
                members_count: Some(c.participants_count),
            },
            PeerInfo::Chat { id: c.id },
        )),
        _ => None,
    }
}

/// A private chat with `user`.
pub(crate) fn from_tl_user(user: &tl::enums::User) -> Option<(Chat, PeerInfo)> {
    let tl::enums::User::User(u) = user else {
        return None;
    };
    let title = [u.first_name.as_deref(), u.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Some((
        Chat {
            chat_id: PeerId::user(u.id)?.bot_api_dialog_id()?,
            kind: ChatKind::User,
            title,
            username: u.username.clone(),
            role: None,
            members_count: None,
        },
        PeerInfo::User {
            id: u.id,
            auth: u.access_hash.map(PeerAuth::from_hash),
            bot: Some(u.bot),
            is_self: u.is_self.then_some(true),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_as_their_api_names() {
        for kind in ChatKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!("megagroup".parse::<ChatKind>(), Err(()));
    }
}
