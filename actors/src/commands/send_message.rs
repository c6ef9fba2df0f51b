//! A message to a peer (`me`, `@username`, `+phone`, an id): text by messages.sendMessage, one
//! media item with its caption by messages.sendMedia, 2–10 as an album by sendMultiMedia. With a
//! dedupe key the random_id is fixed and durable before the first attempt, so a client's re-send
//! after a lost answer cannot post twice; a re-send while the first is in flight waits for its
//! answer.

use grammers_tl_types as tl;
use serde::Serialize;

use super::chat_calls::{refusal, resolve_peer};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::formatting::FormattedText;
use crate::peer::Peer;
use crate::protocol::AccountError;
use crate::upload;
use tgfleet_persistence::Media;

#[derive(Clone)]
pub struct SendMessage {
    pub peer: Peer,
    /// The text and its formatting (plain text converts with `.into()`); with media, the
    /// caption (of an album's first item).
    pub text: FormattedText,
    /// Library items to send: one is a media message, 2–10 an album.
    pub media: Vec<Media>,
    /// Makes client re-sends idempotent.
    pub dedupe_key: Option<String>,
    /// A random_id fixed and kept by the caller (a post's delivery keeps it in its row), so
    /// that every attempt is the same message to Telegram, which drops a repeat.
    pub random_id: Option<i64>,
    pub options: SendOptions,
}

/// How a message is sent, besides what it says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendOptions {
    /// The message it answers, in the same chat.
    pub reply_to: Option<i32>,
    /// Delivered without a notification sound.
    pub silent: bool,
    /// Show a preview of the first link (Telegram's default); `false` sends none.
    pub no_link_preview: bool,
}

impl std::fmt::Debug for SendMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendMessage")
            .field("peer", &self.peer)
            .field("text", &"<redacted>")
            .field(
                "media",
                &self.media.iter().map(|m| &m.id).collect::<Vec<_>>(),
            )
            .field("dedupe_key", &self.dedupe_key)
            .field("random_id", &self.random_id)
            .field("options", &self.options)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub message_id: i32,
    /// Every message of an album, in order (the first is `message_id`); empty otherwise.
    pub message_ids: Vec<i32>,
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
            media,
            dedupe_key,
            random_id: fixed_random_id,
            options,
        } = op;
        let tg = &tg;
        use rand::Rng;
        // The random_id is fixed (and durable) before the first attempt: Telegram drops a second
        // message with the same random_id, so a re-send after a lost answer cannot duplicate it.
        let random_id = match (&dedupe_key, fixed_random_id) {
            (_, Some(random_id)) => random_id,
            (Some(key), None) => match tg.session.sent_record(key).await? {
                Some(sent) if !sent.message_ids.is_empty() => {
                    return Ok(Sent::new(
                        sent.message_ids[0],
                        sent.message_ids[1..].to_vec(),
                    ));
                }
                Some(sent) => sent.random_id,
                None => {
                    let random_id = rand::thread_rng().gen();
                    tg.session.begin_send(key, random_id).await?;
                    random_id
                }
            },
            (None, None) => rand::thread_rng().gen(),
        };
        let input_peer = resolve_peer(tg, &peer).await?;
        let entities = input_entities(tg, text.entities);
        if !media.is_empty() {
            let ids = send_media(
                tg,
                &input_peer,
                &media,
                text.text,
                entities,
                random_id,
                options,
            )
            .await?;
            if let Some(key) = &dedupe_key {
                tg.session.complete_send(key, &ids).await?;
            }
            return Ok(Sent::new(ids[0], ids[1..].to_vec()));
        }
        let request = tl::functions::messages::SendMessage {
            no_webpage: options.no_link_preview,
            silent: options.silent,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: input_peer,
            reply_to: options.reply_to.map(reply_to),
            message: text.text,
            random_id,
            reply_markup: None,
            entities: (!entities.is_empty()).then_some(entities),
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
            tg.session.complete_send(key, &[message_id]).await?;
        }
        Ok(Sent::new(message_id, Vec::new()))
    }

    fn on_done(_view: &View, sent: Sent) -> Decided<Sent> {
        Decided::answer(Ok(sent))
    }
}

impl Sent {
    fn new(message_id: i32, more: Vec<i32>) -> Self {
        let message_ids = if more.is_empty() {
            Vec::new()
        } else {
            std::iter::once(message_id).chain(more).collect()
        };
        Self {
            message_id,
            message_ids,
        }
    }
}

/// The random_id of an album's item `index`: derived from the one kept for the whole send, so a
/// re-send repeats every item's id and Telegram drops them all as repeats.
fn item_random_id(random_id: i64, index: usize) -> i64 {
    random_id.wrapping_add(index as i64)
}

/// Sends `media` (uploading what this account has not sent before) with `caption`; the message
/// ids, an album's in order. A stale file reference is refreshed by uploading again, once.
async fn send_media(
    tg: &Tg,
    peer: &tl::enums::InputPeer,
    media: &[Media],
    caption: String,
    entities: Vec<tl::enums::MessageEntity>,
    random_id: i64,
    options: SendOptions,
) -> Result<Vec<i32>, OpFailure> {
    let mut fresh = false;
    loop {
        let mut files = Vec::with_capacity(media.len());
        for item in media {
            files.push(
                upload::telegram_file(tg, peer, item, fresh)
                    .await?
                    .input_media(),
            );
        }
        let entities = (!entities.is_empty()).then(|| entities.clone());
        let sent = if let [file] = &files[..] {
            tg.call(&tl::functions::messages::SendMedia {
                silent: options.silent,
                background: false,
                clear_draft: false,
                noforwards: false,
                update_stickersets_order: false,
                invert_media: false,
                allow_paid_floodskip: false,
                peer: peer.clone(),
                reply_to: options.reply_to.map(reply_to),
                media: file.clone(),
                message: caption.clone(),
                random_id,
                reply_markup: None,
                entities,
                schedule_date: None,
                schedule_repeat_period: None,
                send_as: None,
                quick_reply_shortcut: None,
                effect: None,
                allow_paid_stars: None,
                suggested_post: None,
            })
            .await
        } else {
            let multi_media = files
                .iter()
                .enumerate()
                .map(|(i, file)| {
                    let first = i == 0;
                    tl::types::InputSingleMedia {
                        media: file.clone(),
                        random_id: item_random_id(random_id, i),
                        message: if first {
                            caption.clone()
                        } else {
                            String::new()
                        },
                        entities: if first { entities.clone() } else { None },
                    }
                    .into()
                })
                .collect();
            tg.call(&tl::functions::messages::SendMultiMedia {
                silent: options.silent,
                background: false,
                clear_draft: false,
                noforwards: false,
                update_stickersets_order: false,
                invert_media: false,
                allow_paid_floodskip: false,
                peer: peer.clone(),
                reply_to: options.reply_to.map(reply_to),
                multi_media,
                schedule_date: None,
                send_as: None,
                quick_reply_shortcut: None,
                effect: None,
                allow_paid_stars: None,
            })
            .await
        };
        let updates = match sent {
            Ok(updates) => updates,
            Err(e) if !fresh && upload::is_stale_reference(&e) => {
                tracing::info!("a file reference expired: uploading again");
                fresh = true;
                continue;
            }
            Err(e) => return Err(refusal(e)),
        };
        let ids: Option<Vec<i32>> = (0..media.len())
            .map(|i| {
                let rid = if media.len() == 1 {
                    random_id
                } else {
                    item_random_id(random_id, i)
                };
                sent_message_id(&updates, rid)
            })
            .collect();
        return match ids {
            Some(ids) if !ids.is_empty() => Ok(ids),
            _ => Err(OpFailure::user(AccountError::Internal(
                "Telegram's answer carried no message id".into(),
            ))),
        };
    }
}

fn reply_to(message_id: i32) -> tl::enums::InputReplyTo {
    tl::types::InputReplyToMessage {
        reply_to_msg_id: message_id,
        top_msg_id: None,
        reply_to_peer_id: None,
        quote_text: None,
        quote_entities: None,
        quote_offset: None,
        monoforum_peer_id: None,
        todo_item_id: None,
        poll_option: None,
    }
    .into()
}

/// Entities as a sender writes them: a user mention (`tg://user?id=`) goes as the input form
/// Telegram takes, with the access hash the session knows for that user.
pub(crate) fn input_entities(
    tg: &Tg,
    entities: Vec<tl::enums::MessageEntity>,
) -> Vec<tl::enums::MessageEntity> {
    entities
        .into_iter()
        .map(|e| match e {
            tl::enums::MessageEntity::MentionName(m) => {
                let access_hash = grammers_session::types::PeerId::user(m.user_id)
                    .and_then(|id| tg.session.cached_peer(id))
                    .and_then(|info| info.auth())
                    .map(|auth| auth.hash())
                    .unwrap_or(0);
                tl::types::InputMessageEntityMentionName {
                    offset: m.offset,
                    length: m.length,
                    user_id: tl::types::InputUser {
                        user_id: m.user_id,
                        access_hash,
                    }
                    .into(),
                }
                .into()
            }
            other => other,
        })
        .collect()
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
