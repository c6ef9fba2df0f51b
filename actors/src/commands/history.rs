//! messages.getHistory: a chat's messages, newest first, older than a given id.

use grammers_session::types::{PeerId, PeerRef};
use grammers_session::Session;
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

/// One page of a chat's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<ChatMessage>,
    /// Where the next page starts (`before_id`), when Telegram may have more; service messages
    /// are not listed, so a page can be short and still not the last.
    pub next_before_id: Option<i32>,
}

impl Handler for History {
    type Reply = HistoryPage;
    type Op = Self;
    type Done = HistoryPage;
    const NAME: &'static str = "history";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, HistoryPage> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<HistoryPage, OpFailure> {
        let peer = resolve_peer(&tg, &op.chat).await?;
        let limit = op.limit.clamp(1, 100) as i32;
        let answer = tg
            .call(&tl::functions::messages::GetHistory {
                peer,
                offset_id: op.before_id.unwrap_or(0),
                offset_date: 0,
                add_offset: 0,
                limit,
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
        let lowest = messages.iter().map(message_id).min();
        let full = messages.len() >= limit as usize;
        Ok(HistoryPage {
            messages: messages.iter().filter_map(message::from_tl).collect(),
            next_before_id: lowest.filter(|_| full),
        })
    }

    fn on_done(_view: &View, page: HistoryPage) -> Decided<HistoryPage> {
        Decided::answer(Ok(page))
    }
}

fn message_id(m: &tl::enums::Message) -> i32 {
    match m {
        tl::enums::Message::Message(m) => m.id,
        tl::enums::Message::Service(m) => m.id,
        tl::enums::Message::Empty(m) => m.id,
    }
}

/// Message `id` of the chat `peer`, if that chat holds it. Outside channels message ids
/// number the account's whole message box, so the message found by id must also be in that
/// chat. By messages.getMessages / channels.getMessages, which bots may call too (getHistory
/// they may not).
pub(crate) async fn one_message(
    tg: &Tg,
    peer: tl::enums::InputPeer,
    id: i32,
) -> Result<Option<tl::enums::Message>, OpFailure> {
    let wanted = vec![tl::types::InputMessageId { id }.into()];
    let (answer, chat) = match &peer {
        tl::enums::InputPeer::Channel(c) => {
            let channel = tl::types::InputChannel {
                channel_id: c.channel_id,
                access_hash: c.access_hash,
            }
            .into();
            let answer = tg
                .call(&tl::functions::channels::GetMessages {
                    channel,
                    id: wanted,
                })
                .await;
            (answer, None)
        }
        other => {
            let mut chat = PeerRef::from(other).id;
            if chat == PeerId::self_user() {
                if let Some(me) = Session::peer(&*tg.session, PeerId::self_user()).await? {
                    chat = me.id();
                }
            }
            let answer = tg
                .call(&tl::functions::messages::GetMessages { id: wanted })
                .await;
            (answer, Some(chat))
        }
    };
    let messages = match answer.map_err(refusal)? {
        tl::enums::messages::Messages::Messages(m) => m.messages,
        tl::enums::messages::Messages::Slice(m) => m.messages,
        tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
        tl::enums::messages::Messages::NotModified(_) => Vec::new(),
    };
    Ok(messages
        .into_iter()
        .find(|m| message_id(m) == id && chat.is_none_or(|chat| message_chat(m) == Some(chat))))
}

fn message_chat(m: &tl::enums::Message) -> Option<PeerId> {
    match m {
        tl::enums::Message::Message(m) => Some(PeerId::from(&m.peer_id)),
        tl::enums::Message::Service(m) => Some(PeerId::from(&m.peer_id)),
        tl::enums::Message::Empty(_) => None,
    }
}
