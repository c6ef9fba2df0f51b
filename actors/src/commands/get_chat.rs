//! channels.getFullChannel: one channel or supergroup of the account, with its description and
//! member count.

use grammers_session::Session;
use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_channel};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::{self, Chat};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct GetChat {
    /// A Bot API style id (`-100…`) or `@username`.
    pub chat: Peer,
}

impl Handler for GetChat {
    type Reply = Chat;
    type Op = Self;
    type Done = Chat;
    const NAME: &'static str = "get_chat";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Chat> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Chat, OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        full_chat(&tg, channel).await
    }

    fn on_done(_view: &View, chat: Chat) -> Decided<Chat> {
        Decided::answer(Ok(chat))
    }
}

/// The channel as Telegram now shows it to the account.
pub(crate) async fn full_chat(
    tg: &Tg,
    channel: tl::enums::InputChannel,
) -> Result<Chat, OpFailure> {
    let wanted = match &channel {
        tl::enums::InputChannel::Channel(c) => Some(c.channel_id),
        _ => None,
    };
    let tl::enums::messages::ChatFull::Full(full) = tg
        .call(&tl::functions::channels::GetFullChannel { channel })
        .await
        .map_err(refusal)?;
    // The answer may carry the linked discussion group too: take the channel asked for.
    let found = full.chats.iter().find_map(|c| match c {
        tl::enums::Chat::Channel(ch) if Some(ch.id) != wanted => None,
        other => chat::from_tl_chat(other),
    });
    let Some((mut chat, info)) = found else {
        return Err(OpFailure::user(AccountError::ChatRefused(
            "CHANNEL_PRIVATE",
        )));
    };
    Session::cache_peers(&*tg.session, vec![info]).await?;
    if let tl::enums::ChatFull::ChannelFull(f) = full.full_chat {
        chat.about = Some(f.about);
        chat.members_count = f.participants_count.or(chat.members_count);
    }
    Ok(chat)
}
