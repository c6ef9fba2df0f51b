//! What a receiving account hears from Telegram, as events in the log.
//!
//! grammers' own update machinery (`UpdatesReceiver`, its `MessageBoxes`) keeps the pts/qts/seq
//! and each channel's pts, notices gaps and fills them with `updates.getDifference` /
//! `getChannelDifference` (slices and "too long" included); this module turns what it yields
//! into events, appends them, and only then writes the update state into the sealed session —
//! so a crash between the two replays those updates, and the log's dedupe key (account, chat,
//! message, kind) writes each of them once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;

use grammers_mtsender::{InvocationError, SenderPoolHandle, UpdatesConfiguration, UpdatesReceiver};
use grammers_session::storages::erase;
use grammers_session::types::{PeerId, PeerInfo};
use grammers_session::updates::UpdatesLike;
use grammers_session::Session as _;
use grammers_tl_types as tl;
use serde_json::json;
use tgfleet_persistence::{AccountId, EventType, NewEvent, Store, UserId};

use crate::session::StoreSession;

/// The chat a peer is, Bot API style (users > 0, basic groups < 0, channels `-100…`).
fn chat_id(peer: &tl::enums::Peer) -> Option<i64> {
    match peer {
        tl::enums::Peer::User(u) => PeerId::user(u.user_id)?.bot_api_dialog_id(),
        tl::enums::Peer::Chat(c) => PeerId::chat(c.chat_id)?.bot_api_dialog_id(),
        tl::enums::Peer::Channel(c) => PeerId::channel(c.channel_id)?.bot_api_dialog_id(),
    }
}

/// Who sent a message, as a Bot API id (`None` for a channel post without a signature).
fn sender_id(m: &tl::types::Message) -> Option<i64> {
    match &m.from_id {
        Some(peer) => chat_id(peer),
        // A private message names no sender: it is from the chat's other side, or from us.
        None if !m.out => match &m.peer_id {
            tl::enums::Peer::User(_) => chat_id(&m.peer_id),
            _ => None,
        },
        None => None,
    }
}

/// The events one update is: new and edited messages, deleted ones; `None` for updates the
/// log does not keep (typing, read receipts, …).
pub fn events_of(
    update: &tl::enums::Update,
    account_id: AccountId,
    owner_id: UserId,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<NewEvent> {
    use tl::enums::Update as U;
    let event = |kind: EventType, key: String, data: serde_json::Value| NewEvent {
        kind,
        account_id: Some(account_id),
        owner_id,
        occurred_at: now,
        data,
        dedupe_key: Some(key),
    };
    let message = |kind: EventType, m: &tl::enums::Message, edit: bool| {
        let tl::enums::Message::Message(raw) = m else {
            return None;
        };
        let chat = chat_id(&raw.peer_id)?;
        let view = crate::message::from_tl(m)?;
        let tag = match (edit, raw.edit_date) {
            (false, _) => "new".to_owned(),
            // Each edit is its own event: keyed by when it was made.
            (true, at) => format!("edit{}", at.unwrap_or(raw.date)),
        };
        Some(event(
            kind,
            format!("{account_id}:{chat}:{}:{tag}", raw.id),
            json!({
                "chat_id": chat,
                "sender_id": sender_id(raw),
                "message": view,
            }),
        ))
    };
    let deleted = |chat: Option<i64>, ids: &[i32], pts: i32| {
        // Deletes in a private chat or basic group do not say where: Telegram gives only ids.
        let where_ = chat.map_or("private".to_owned(), |c| c.to_string());
        event(
            EventType::MessageDeleted,
            format!("{account_id}:{where_}:{pts}:deleted"),
            json!({ "chat_id": chat, "message_ids": ids }),
        )
    };
    match update {
        U::NewMessage(u) => message(EventType::MessageReceived, &u.message, false)
            .into_iter()
            .collect(),
        U::NewChannelMessage(u) => message(EventType::MessageReceived, &u.message, false)
            .into_iter()
            .collect(),
        U::EditMessage(u) => message(EventType::MessageEdited, &u.message, true)
            .into_iter()
            .collect(),
        U::EditChannelMessage(u) => message(EventType::MessageEdited, &u.message, true)
            .into_iter()
            .collect(),
        U::DeleteMessages(u) => vec![deleted(None, &u.messages, u.pts)],
        U::DeleteChannelMessages(u) => {
            let chat = PeerId::channel(u.channel_id).and_then(|p| p.bot_api_dialog_id());
            vec![deleted(chat, &u.messages, u.pts)]
        }
        _ => Vec::new(),
    }
}

/// Where a receiving account's events go.
pub(crate) struct Receiving {
    pub store: Arc<dyn Store>,
    pub account_id: AccountId,
    pub owner_id: UserId,
}

/// How long an append that failed (the database away) waits before it is tried again; the
/// update state is not written meanwhile, so nothing is lost.
const APPEND_RETRY: Duration = Duration::from_secs(1);
/// getDifference answers in pages of this many updates.
const CATCH_UP_PAGE: usize = 100;
/// The most updates one append takes (a catch-up page is 100; a burst is capped here).
const BATCH_MAX: usize = 1000;
/// A call of grammers' update machinery (a getDifference) has no timeout of its own.
const DIFFERENCE_TIMEOUT: Duration = Duration::from_secs(60);
/// The update state is written at most this often while updates keep coming, and this long
/// after the last of a burst. Each write seals and rewrites the whole session; written after
/// every batch, 20 busy bots' writes held SQLite's one write lock against the log and the
/// webhook dispatcher (`benches/events_throughput.rs`). A state written late loses nothing:
/// after a crash the catch-up fetches again what came since, and the log's dedupe key keeps
/// each update once.
const SYNC_EVERY: Duration = Duration::from_millis(500);

/// Receives until the client goes: each batch grammers yields is appended to the log, then the
/// update state is written.
pub(crate) async fn run(
    to: Receiving,
    handle: SenderPoolHandle,
    session: Arc<StoreSession>,
    updates: tokio::sync::mpsc::Receiver<UpdatesLike>,
) {
    let id = to.account_id;
    let config = UpdatesConfiguration { catch_up: true };
    let mut receiver =
        match UpdatesReceiver::create(handle, erase(Arc::clone(&session)), updates, config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(account_id = id, error = %e, "cannot receive updates");
                return;
            }
        };
    // When the state was last written; `unsynced`: updates were appended since.
    let mut synced_at = Instant::now();
    let mut unsynced = false;
    loop {
        let wait = if unsynced {
            SYNC_EVERY.saturating_sub(synced_at.elapsed())
        } else {
            DIFFERENCE_TIMEOUT
        };
        let (mut batch, mut chats) = match tokio::time::timeout(wait, receiver.next()).await {
            Ok(Ok((batch, _users, chats))) => (batch, chats),
            Ok(Err(InvocationError::Dropped(_))) => {
                if unsynced {
                    sync(&receiver, id).await;
                }
                return;
            }
            Ok(Err(e)) => {
                // A failed getDifference: the next round asks again.
                tracing::warn!(account_id = id, error = %e, "receiving updates");
                tokio::time::sleep(APPEND_RETRY).await;
                continue;
            }
            // Quiet for a while, or a getDifference that hung: either way, wait again (a
            // hung call is dropped here, and grammers asks again when its deadline passes).
            // What was appended and not yet covered by the stored state is covered now.
            Err(_) => {
                if unsynced {
                    sync(&receiver, id).await;
                    synced_at = Instant::now();
                    unsynced = false;
                }
                continue;
            }
        };
        // Everything else already there joins this batch: a burst costs one append and one
        // state write per batch instead of per update, so this loop keeps up with grammers'
        // bounded channel, which drops pushes that do not fit (the gap is refilled only when a
        // later update reveals it). Polling once is safe: what `next` has taken from the
        // channel is buffered before it can wait, and a getDifference cut short is asked again.
        let mut closed = false;
        while batch.len() < BATCH_MAX {
            match receiver.next().now_or_never() {
                Some(Ok((more, _users, more_chats))) => {
                    batch.extend(more);
                    chats.extend(more_chats);
                }
                Some(Err(InvocationError::Dropped(_))) => {
                    closed = true;
                    break;
                }
                Some(Err(_)) | None => break,
            }
        }
        // A channel this account was added to by someone else is known only from its updates:
        // its access hash must be kept, or the next gap in it cannot be filled (grammers'
        // getChannelDifference reads the hash from the session).
        let channels: Vec<PeerInfo> = chats
            .into_iter()
            .filter(|c| matches!(c, tl::enums::Chat::Channel(ch) if !ch.min))
            .map(PeerInfo::from)
            .collect();
        if !channels.is_empty() {
            if let Err(e) = session.cache_peers(channels).await {
                tracing::warn!(account_id = id, error = %e, "caching channels");
            }
        }
        let now = chrono::Utc::now();
        let events: Vec<NewEvent> = batch
            .iter()
            .flat_map(|(update, _)| events_of(update, id, to.owner_id, now))
            .collect();
        while let Err(e) = to.store.append_events(events.clone()).await {
            tracing::warn!(account_id = id, error = %e, "appending received events; retrying");
            tokio::time::sleep(APPEND_RETRY).await;
        }
        // A full page is a catch-up going on: written now, so that the timer does not cut the
        // next page's getDifference short (it would be asked again, one call more).
        if closed || batch.len() >= CATCH_UP_PAGE || synced_at.elapsed() >= SYNC_EVERY {
            sync(&receiver, id).await;
            synced_at = Instant::now();
            unsynced = false;
        } else {
            unsynced = true;
        }
        if closed {
            return;
        }
    }
}

/// Writes the update state into the sealed session.
async fn sync(receiver: &UpdatesReceiver, id: AccountId) {
    if let Err(e) = receiver.sync_update_state().await {
        tracing::warn!(account_id = id, error = %e, "writing the update state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_message(
        id: i32,
        peer: tl::enums::Peer,
        from: Option<tl::enums::Peer>,
    ) -> tl::enums::Message {
        tl::types::Message {
            out: false,
            mentioned: false,
            media_unread: false,
            silent: false,
            post: false,
            from_scheduled: false,
            legacy: false,
            edit_hide: false,
            pinned: false,
            noforwards: false,
            invert_media: false,
            offline: false,
            video_processing_pending: false,
            paid_suggested_post_stars: false,
            paid_suggested_post_ton: false,
            id,
            from_id: from,
            from_boosts_applied: None,
            from_rank: None,
            peer_id: peer,
            saved_peer_id: None,
            fwd_from: None,
            via_bot_id: None,
            via_business_bot_id: None,
            guestchat_via_from: None,
            reply_to: None,
            date: 1_700_000_000,
            message: "hello".into(),
            media: None,
            reply_markup: None,
            entities: Some(vec![tl::types::MessageEntityBold {
                offset: 0,
                length: 5,
            }
            .into()]),
            views: None,
            forwards: None,
            replies: None,
            edit_date: None,
            post_author: None,
            grouped_id: None,
            reactions: None,
            restriction_reason: None,
            ttl_period: None,
            quick_reply_shortcut_id: None,
            effect: None,
            factcheck: None,
            report_delivery_until_date: None,
            paid_message_stars: None,
            suggested_post: None,
            schedule_repeat_period: None,
            summary_from_language: None,
            rich_message: None,
        }
        .into()
    }

    #[test]
    fn a_private_message_is_received_from_its_chat_once_per_key() {
        let peer: tl::enums::Peer = tl::types::PeerUser { user_id: 42 }.into();
        let update: tl::enums::Update = tl::types::UpdateNewMessage {
            message: text_message(7, peer, None),
            pts: 3,
            pts_count: 1,
        }
        .into();
        let now = chrono::Utc::now();
        let events = events_of(&update, 5, 9, now);
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.account_id, e.owner_id),
            (EventType::MessageReceived, Some(5), 9)
        );
        assert_eq!(e.dedupe_key.as_deref(), Some("5:42:7:new"));
        assert_eq!(e.data["chat_id"], 42);
        assert_eq!(e.data["sender_id"], 42);
        assert_eq!(e.data["message"]["text"], "hello");
        assert_eq!(e.data["message"]["entities"][0]["type"], "bold");
        // The same update replayed by a catch-up is the same key.
        assert_eq!(events_of(&update, 5, 9, now)[0].dedupe_key, e.dedupe_key);
    }

    #[test]
    fn channel_posts_edits_and_deletes_are_events_of_their_chat() {
        let channel: tl::enums::Peer = tl::types::PeerChannel { channel_id: 1234 }.into();
        let now = chrono::Utc::now();
        let post: tl::enums::Update = tl::types::UpdateNewChannelMessage {
            message: text_message(11, channel.clone(), None),
            pts: 8,
            pts_count: 1,
        }
        .into();
        let e = &events_of(&post, 5, 9, now)[0];
        assert_eq!(e.data["chat_id"], -1_000_000_001_234_i64);
        assert!(e.data["sender_id"].is_null());
        let mut edited = text_message(11, channel, None);
        if let tl::enums::Message::Message(m) = &mut edited {
            m.edit_date = Some(1_700_000_100);
        }
        let edit: tl::enums::Update = tl::types::UpdateEditChannelMessage {
            message: edited,
            pts: 9,
            pts_count: 1,
        }
        .into();
        let e = &events_of(&edit, 5, 9, now)[0];
        assert_eq!(e.kind, EventType::MessageEdited);
        assert_eq!(
            e.dedupe_key.as_deref(),
            Some("5:-1000000001234:11:edit1700000100")
        );
        let gone: tl::enums::Update = tl::types::UpdateDeleteChannelMessages {
            channel_id: 1234,
            messages: vec![11, 12],
            pts: 10,
            pts_count: 2,
        }
        .into();
        let e = &events_of(&gone, 5, 9, now)[0];
        assert_eq!(e.kind, EventType::MessageDeleted);
        assert_eq!(e.data["message_ids"], json!([11, 12]));
        let typing: tl::enums::Update = tl::types::UpdateUserTyping {
            user_id: 1,
            top_msg_id: None,
            action: tl::enums::SendMessageAction::SendMessageTypingAction,
        }
        .into();
        assert!(events_of(&typing, 5, 9, now).is_empty());
    }
}
