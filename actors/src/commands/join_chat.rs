//! Joining a chat: a public one by its name (contacts.resolveUsername, then channels.joinChannel)
//! or any by an invite link (messages.importChatInvite). The answer is the joined chat.

use grammers_session::Session;
use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_channel};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::{self, Chat, JoinLink};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct JoinChat {
    pub link: JoinLink,
}

impl Handler for JoinChat {
    type Reply = Chat;
    type Op = Self;
    type Done = Chat;
    const NAME: &'static str = "join_chat";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Chat> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Chat, OpFailure> {
        // Both answer messages.chatInviteJoinResult in this layer.
        let joined = match op.link {
            JoinLink::Username(name) => {
                let channel = resolve_channel(&tg, &Peer::Username(name)).await?;
                tg.call(&tl::functions::channels::JoinChannel { channel })
                    .await
                    .map_err(refusal)?
            }
            JoinLink::Invite(hash) => tg
                .call(&tl::functions::messages::ImportChatInvite { hash })
                .await
                .map_err(refusal)?,
        };
        let updates = match joined {
            tl::enums::messages::ChatInviteJoinResult::Ok(joined) => joined.updates,
            // A link that asks an admin's approval (or a bot's web view) joins nothing yet.
            // A bot must check the account first (a web view), which an API call cannot do.
            tl::enums::messages::ChatInviteJoinResult::WebView(_) => {
                return Err(OpFailure::user(AccountError::ChatRefused(
                    "INVITE_BOT_CHECK_REQUIRED",
                )))
            }
        };
        let chats = match updates {
            tl::enums::Updates::Updates(u) => u.chats,
            tl::enums::Updates::Combined(u) => u.chats,
            _ => Vec::new(),
        };
        let Some((joined, info)) = chats.iter().find_map(chat::from_tl_chat) else {
            return Err(OpFailure::user(AccountError::Internal(
                "Telegram's answer to the join carried no chat".into(),
            )));
        };
        // Joined at Telegram already: a cache write that fails must not report it as not joined.
        if let Err(e) = Session::cache_peers(&*tg.session, vec![info]).await {
            tracing::warn!(error = %e, "caching the joined chat");
        }
        Ok(joined)
    }

    fn on_done(_view: &View, chat: Chat) -> Decided<Chat> {
        Decided::answer(Ok(chat))
    }
}
