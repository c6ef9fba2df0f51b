//! messages.sendMessage to a peer (`me`, `@username`, `+phone`, an id). With a dedupe key the
//! random_id is fixed and durable before the first attempt, so a client's re-send after a lost
//! answer cannot post twice; a re-send while the first is in flight waits for its answer.

use grammers_tl_types as tl;
use serde::Serialize;

use super::chat_calls::{refusal, resolve_peer};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;
use crate::session::SentRecord;

#[derive(Clone)]
pub struct SendMessage {
    pub peer: Peer,
    pub text: String,
    /// Makes client re-sends idempotent.
    pub dedupe_key: Option<String>,
}

impl std::fmt::Debug for SendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMessage")
            .field("peer", &self.peer)
            .field("text", &"<redacted>")
            .field("dedupe_key", &self.dedupe_key)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub message_id: i32,
}

impl Handler for SendMessage {
    type Reply = Sent;
    type Op = Self;
    type Done = Sent;
    const NAME: &'static str = "send_message";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Sent> {
        view.call_allowed().map(|()| self).into()
    }

    fn joins(op: &Self) -> Option<String> {
        op.dedupe_key.clone()
    }

    async fn run(op: Self, tg: Tg) -> Result<Sent, OpFailure> {
        let SendMessage {
            peer,
            text,
            dedupe_key,
        } = op;
        let tg = &tg;
        use rand::Rng;
        // The random_id is fixed (and durable) before the first attempt: Telegram drops a second
        // message with the same random_id, so a re-send after a lost answer cannot duplicate it.
        let random_id = match &dedupe_key {
            Some(key) => match tg.session.sent_record(key) {
                Some(SentRecord {
                    message_id: Some(id),
                    ..
                }) => return Ok(Sent { message_id: id }),
                Some(record) => record.random_id,
                None => {
                    let random_id = rand::thread_rng().gen();
                    tg.session
                        .begin_send(
                            SentRecord {
                                key: key.clone(),
                                random_id,
                                message_id: None,
                            },
                            tg.env.limits.dedupe_capacity,
                        )
                        .await?;
                    random_id
                }
            },
            None => rand::thread_rng().gen(),
        };
        let input_peer = resolve_peer(tg, &peer).await?;
        let request = tl::functions::messages::SendMessage {
            no_webpage: false,
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: input_peer,
            reply_to: None,
            message: text,
            random_id,
            reply_markup: None,
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
            rich_message: None,
        };
        let updates = tg.call(&request).await.map_err(refusal)?;
        let Some(message_id) = sent_message_id(&updates, random_id) else {
            return Err(OpFailure::user(AccountError::Internal(
                "Telegram's answer carried no message id".into(),
            )));
        };
        if let Some(key) = &dedupe_key {
            tg.session.complete_send(key, message_id).await?;
        }
        Ok(Sent { message_id })
    }

    fn on_done(_view: &View, sent: Sent) -> Decided<Sent> {
        Decided::answer(Ok(sent))
    }
}

fn sent_message_id(updates: &tl::enums::Updates, random_id: i64) -> Option<i32> {
    use tl::enums::{Update, Updates};
    let from_list = |list: &[Update]| {
        list.iter()
            .find_map(|u| match u {
                Update::MessageId(m) if m.random_id == random_id => Some(m.id),
                _ => None,
            })
            .or_else(|| {
                list.iter().find_map(|u| match u {
                    Update::NewMessage(m) => match &m.message {
                        tl::enums::Message::Message(msg) => Some(msg.id),
                        _ => None,
                    },
                    _ => None,
                })
            })
    };
    match updates {
        Updates::UpdateShortSentMessage(u) => Some(u.id),
        Updates::Updates(u) => from_list(&u.updates),
        Updates::Combined(u) => from_list(&u.updates),
        Updates::UpdateShort(u) => from_list(std::slice::from_ref(&u.update)),
        _ => None,
    }
}
