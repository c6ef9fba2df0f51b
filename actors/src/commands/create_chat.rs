//! channels.createChannel: a new broadcast channel or supergroup, created by the account (its
//! role is `creator`) and addressable by the id it answers.

use grammers_session::types::PeerInfo;
use grammers_session::Session;
use grammers_tl_types as tl;

use super::chat_calls::refusal;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::{self, Chat};
use crate::client::Tg;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct CreateChat {
    /// `true`: a broadcast channel; `false`: a supergroup.
    pub broadcast: bool,
    pub title: String,
    pub about: String,
    /// A public name (`t.me/<username>`), set right after creation.
    pub username: Option<String>,
}

impl Handler for CreateChat {
    type Reply = Chat;
    type Op = Self;
    type Done = Chat;
    const NAME: &'static str = "create_chat";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Chat> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Chat, OpFailure> {
        if let Some(username) = &op.username {
            // Asked first, so a taken name (the common refusal) creates nothing at all.
            let free = tg
                .call(&tl::functions::channels::CheckUsername {
                    channel: tl::enums::InputChannel::Empty,
                    username: username.clone(),
                })
                .await
                .map_err(refusal)?;
            if !free {
                return Err(OpFailure::user(AccountError::ChatRefused(
                    "USERNAME_OCCUPIED",
                )));
            }
        }
        let updates = tg
            .call(&tl::functions::channels::CreateChannel {
                broadcast: op.broadcast,
                megagroup: !op.broadcast,
                for_import: false,
                forum: false,
                title: op.title,
                about: op.about,
                geo_point: None,
                address: None,
                ttl_period: None,
            })
            .await
            .map_err(refusal)?;
        let chats = match updates {
            tl::enums::Updates::Updates(u) => u.chats,
            tl::enums::Updates::Combined(u) => u.chats,
            _ => Vec::new(),
        };
        let Some((created, info)) = chats.iter().find_map(chat::from_tl_chat) else {
            return Err(OpFailure::user(AccountError::Internal(
                "Telegram's answer to channels.createChannel carried no channel".into(),
            )));
        };
        // The channel exists now: a cache write that fails must not report it as not created.
        if let Err(e) = Session::cache_peers(&*tg.session, vec![info.clone()]).await {
            tracing::warn!(error = %e, "caching the new channel");
        }
        let Some(username) = op.username else {
            return Ok(created);
        };
        let PeerInfo::Channel {
            id,
            auth: Some(auth),
            ..
        } = info
        else {
            return Err(OpFailure::user(AccountError::Internal(
                "the new channel came without its access hash".into(),
            )));
        };
        let channel: tl::enums::InputChannel = tl::types::InputChannel {
            channel_id: id,
            access_hash: auth.hash(),
        }
        .into();
        let named = tg
            .call(&tl::functions::channels::UpdateUsername {
                channel: channel.clone(),
                username: username.clone(),
            })
            .await
            .map_err(refusal);
        if let Err(failure) = named {
            // All or nothing: a channel without the name the caller asked for is not what it
            // asked for, so it goes again (best effort) and the refusal is the answer.
            if let Err(e) = tg
                .call(&tl::functions::channels::DeleteChannel { channel })
                .await
            {
                // Not all or nothing after all: say which channel is left, nameless.
                tracing::warn!(error = %e.describe(), "deleting a channel whose name was refused");
                return Err(OpFailure::user(AccountError::Internal(format!(
                    "the public name was refused ({}) and the new channel {} could not be \
                     deleted again ({}); delete or rename it",
                    failure.error.code(),
                    created.chat_id,
                    e.describe()
                ))));
            }
            return Err(failure);
        }
        Ok(Chat {
            username: Some(username),
            ..created
        })
    }

    fn on_done(_view: &View, chat: Chat) -> Decided<Chat> {
        Decided::answer(Ok(chat))
    }
}
