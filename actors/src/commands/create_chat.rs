//! channels.createChannel: a new broadcast channel or supergroup, created by the account (its
//! role is `creator`) and addressable by the id it answers.

use grammers_session::Session;
use grammers_tl_types as tl;

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::{self, Chat};
use crate::protocol::AccountError;

use crate::client::Tg;

#[derive(Debug, Clone)]
pub struct CreateChat {
    /// `true`: a broadcast channel; `false`: a supergroup.
    pub broadcast: bool,
    pub title: String,
    pub about: String,
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
            .await?;
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
        Session::cache_peers(&*tg.session, vec![info]).await?;
        Ok(created)
    }

    fn on_done(_view: &View, chat: Chat) -> Decided<Chat> {
        Decided::answer(Ok(chat))
    }
}
