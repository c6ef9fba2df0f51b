//! messages.getHistory: a chat's messages, newest first, older than a given id.

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_peer};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::message::{self, ChatMessage};
use crate::peer::Peer;

#[derive(Debug, Clone)]
pub struct History {
    pub chat: Peer,
    /// At most 100, as Telegram answers per page.
    pub limit: u32,
    /// Only messages older than this one (a page after the previous page's last id).
    pub before_id: Option<i32>,
}

impl Handler for History {
    type Reply = Vec<ChatMessage>;
    type Op = Self;
    type Done = Vec<ChatMessage>;
    const NAME: &'static str = "history";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Vec<ChatMessage>> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Vec<ChatMessage>, OpFailure> {
        let peer = resolve_peer(&tg, &op.chat).await?;
        let answer = tg
            .call(&tl::functions::messages::GetHistory {
                peer,
                offset_id: op.before_id.unwrap_or(0),
                offset_date: 0,
                add_offset: 0,
                limit: op.limit.clamp(1, 100) as i32,
                max_id: 0,
                min_id: 0,
                hash: 0,
            })
            .await
            .map_err(refusal)?;
        let messages = match answer {
            tl::enums::messages::Messages::Messages(m) => m.messages,
            tl::enums::messages::Messages::Slice(m) => m.messages,
            tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
            tl::enums::messages::Messages::NotModified(_) => Vec::new(),
        };
        Ok(messages.iter().filter_map(message::from_tl).collect())
    }

    fn on_done(_view: &View, messages: Vec<ChatMessage>) -> Decided<Vec<ChatMessage>> {
        Decided::answer(Ok(messages))
    }
}
