//! channels.editTitle and messages.editChatAbout: a channel's or supergroup's title and
//! description. An unchanged value is no error; the answer is the chat as it now is.

use grammers_tl_types as tl;

use super::chat_calls::{channel_peer, refusal, resolve_channel};
use super::get_chat::full_chat;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::Chat;
use crate::client::Tg;
use crate::peer::Peer;

#[derive(Debug, Clone)]
pub struct EditChat {
    pub chat: Peer,
    pub title: Option<String>,
    pub about: Option<String>,
}

impl Handler for EditChat {
    type Reply = Chat;
    type Op = Self;
    type Done = Chat;
    const NAME: &'static str = "edit_chat";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Chat> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Chat, OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        let unchanged = |f: &OpFailure, name: &str| f.cause.as_ref().is_some_and(|c| c.is(name));
        if let Some(title) = op.title {
            let edited = tg
                .call(&tl::functions::channels::EditTitle {
                    channel: channel.clone(),
                    title,
                })
                .await
                .map_err(refusal);
            match edited {
                Err(f) if !unchanged(&f, "CHAT_NOT_MODIFIED") => return Err(f),
                _ => {}
            }
        }
        if let Some(about) = op.about {
            let edited = tg
                .call(&tl::functions::messages::EditChatAbout {
                    peer: channel_peer(&channel),
                    about,
                })
                .await
                .map_err(refusal);
            match edited {
                Err(f) if !unchanged(&f, "CHAT_ABOUT_NOT_MODIFIED") => return Err(f),
                _ => {}
            }
        }
        full_chat(&tg, channel).await
    }

    fn on_done(_view: &View, chat: Chat) -> Decided<Chat> {
        Decided::answer(Ok(chat))
    }
}
