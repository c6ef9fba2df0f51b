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
    /// `None` for a private chat, and for a public channel the account is not in.
    pub role: Option<ChatRole>,
    pub members_count: Option<i32>,
    /// Read with the full chat only (not in a dialog list).
    pub about: Option<String>,
}

/// How a chat is joined: its public name (`@name`, `t.me/name`) or an invite link
/// (`t.me/+HASH`, `t.me/joinchat/HASH`), with or without `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinLink {
    Username(String),
    Invite(String),
}

/// What a caller is told about a link that is none of the accepted forms.
pub const JOIN_LINK_FORMS: &str = "must be @name, t.me/name or an invite link t.me/+hash";

impl std::str::FromStr for JoinLink {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        let username = |name: &str| {
            crate::peer::is_username(name)
                .then(|| Self::Username(name.to_owned()))
                .ok_or(JOIN_LINK_FORMS)
        };
        if let Some(name) = raw.strip_prefix('@') {
            return username(name);
        }
        let path = raw
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let Some(path) = path
            .strip_prefix("t.me/")
            .or_else(|| path.strip_prefix("telegram.me/"))
        else {
            return Err(JOIN_LINK_FORMS);
        };
        let path = path.trim_end_matches('/');
        let invite = path
            .strip_prefix('+')
            .or_else(|| path.strip_prefix("joinchat/"));
        match invite {
            // `t.me/+15551234567` is a phone's link, not an invite.
            Some(hash)
                if !hash.is_empty()
                    && !hash.bytes().all(|b| b.is_ascii_digit())
                    && hash.len() <= 64
                    && hash
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Ok(Self::Invite(hash.to_owned()))
            }
            Some(_) => Err(JOIN_LINK_FORMS),
            None => username(path),
        }
    }
}

/// The admin rights a caller may name, as Telegram's ChatAdminRights spells its flags.
pub const ADMIN_RIGHTS: [&str; 15] = [
    "change_info",
    "post_messages",
    "edit_messages",
    "delete_messages",
    "ban_users",
    "invite_users",
    "pin_messages",
    "add_admins",
    "anonymous",
    "manage_call",
    "other",
    "manage_topics",
    "post_stories",
    "edit_stories",
    "delete_stories",
];

/// ChatAdminRights with exactly the named rights (names from [`ADMIN_RIGHTS`]; no names: none,
/// which demotes).
pub(crate) fn admin_rights(names: &[String]) -> tl::enums::ChatAdminRights {
    let has = |flag: &str| names.iter().any(|n| n == flag);
    tl::types::ChatAdminRights {
        change_info: has("change_info"),
        post_messages: has("post_messages"),
        edit_messages: has("edit_messages"),
        delete_messages: has("delete_messages"),
        ban_users: has("ban_users"),
        invite_users: has("invite_users"),
        pin_messages: has("pin_messages"),
        add_admins: has("add_admins"),
        anonymous: has("anonymous"),
        manage_call: has("manage_call"),
        other: has("other"),
        manage_topics: has("manage_topics"),
        post_stories: has("post_stories"),
        edit_stories: has("edit_stories"),
        delete_stories: has("delete_stories"),
        manage_direct_messages: false,
        manage_ranks: false,
        manage_linked_peers: false,
        manage_welcome_messages: false,
    }
    .into()
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
        // A channel the account is not in (`left`) reads with no role.
        tl::enums::Chat::Channel(c) => {
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
                    role: (!c.left).then(|| role(c.creator, c.admin_rights.is_some())),
                    members_count: c.participants_count,
                    about: None,
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
                about: None,
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
            about: None,
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

    #[test]
    fn join_links_are_names_or_invites() {
        let parse = |raw: &str| raw.parse::<JoinLink>();
        let name = |n: &str| Ok(JoinLink::Username(n.into()));
        let invite = |h: &str| Ok(JoinLink::Invite(h.into()));
        assert_eq!(parse("@daily_news"), name("daily_news"));
        assert_eq!(parse("t.me/daily_news"), name("daily_news"));
        assert_eq!(parse("https://t.me/daily_news/"), name("daily_news"));
        assert_eq!(parse("https://t.me/+AbC-d_9"), invite("AbC-d_9"));
        assert_eq!(parse("t.me/joinchat/AbCd"), invite("AbCd"));
        for bad in [
            "daily_news",
            "@abc",
            "https://example.org/daily_news",
            "t.me/+",
            "t.me/+a b",
            "t.me/news/123",
            "t.me/+15551234567",
            "",
        ] {
            assert_eq!(parse(bad), Err(JOIN_LINK_FORMS), "{bad:?}");
        }
    }
}
