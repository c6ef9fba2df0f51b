//! A chat's messages: its history (newest first, paged by id), and what happens to a message
//! after it was sent — a new text, deletion, pinning. Sending is `POST …/messages`.

use super::chats::chat_ref;
use super::fleet;
use super::messages::formatted;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::AccountId;
use tgfleet_supervision::account::{
    ChatMessage, DeleteMessage, EditMessage, Entity, History, PinMessage,
};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntityView {
    /// Bot API names: bold, italic, underline, strikethrough, spoiler, code, pre, text_link,
    /// text_mention, url, mention, hashtag, blockquote, expandable_blockquote.
    #[serde(rename = "type")]
    pub kind: String,
    /// In UTF-16 code units, as Telegram counts (an emoji is two).
    pub offset: i32,
    pub length: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

impl From<Entity> for EntityView {
    fn from(e: Entity) -> Self {
        Self {
            kind: e.kind.to_owned(),
            offset: e.offset,
            length: e.length,
            url: e.url,
            user_id: e.user_id,
            language: e.language,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: i32,
    /// Unix seconds.
    pub date: i32,
    /// Sent by this account.
    pub out: bool,
    pub text: String,
    pub entities: Vec<EntityView>,
    pub reply_to: Option<i32>,
    pub grouped_id: Option<i64>,
    pub views: Option<i32>,
    pub forwards: Option<i32>,
    pub edit_date: Option<i32>,
    pub pinned: bool,
    /// Its photo or document; the bytes are at `…/messages/{msg}/media`.
    pub media: Option<MediaView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    /// `photo`, `video`, `animation`, `audio`, `voice`, `document`, or `other` (no file).
    pub kind: String,
    pub mime: Option<String>,
    pub size: Option<i64>,
    pub file_name: Option<String>,
}

impl From<ChatMessage> for MessageView {
    fn from(m: ChatMessage) -> Self {
        Self {
            id: m.id,
            date: m.date,
            out: m.out,
            text: m.text,
            entities: m.entities.into_iter().map(EntityView::from).collect(),
            reply_to: m.reply_to,
            grouped_id: m.grouped_id,
            views: m.views,
            forwards: m.forwards,
            edit_date: m.edit_date,
            pinned: m.pinned,
            media: m.media.map(|i| MediaView {
                kind: i.kind.to_owned(),
                mime: i.mime,
                size: i.size,
                file_name: i.file_name,
            }),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<MessageView>,
    /// `before_id` of the next page; absent on the last one. A page can hold fewer than
    /// `limit` messages and still not be the last (service messages are not listed).
    pub next_before_id: Option<i32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// 1–100 (default 50).
    pub limit: Option<u32>,
    /// Only messages older than this id: the next page after the last id of this one.
    pub before_id: Option<i32>,
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"), HistoryQuery),
    responses((status = 200, body = MessageList), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat)): ApiPath<(AccountId, String)>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<MessageList>, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let limit = q.limit.unwrap_or(50);
    let mut v = Validator::default();
    v.check((1..=100).contains(&limit), "limit", "must be 1 to 100");
    v.check(
        q.before_id.is_none_or(|b| b > 0),
        "before_id",
        "must be a message id (> 0)",
    );
    v.finish()?;
    let request = History {
        chat,
        limit,
        before_id: q.before_id,
    };
    let page = fleet(&state)?.call(id, request).await?;
    Ok(Json(MessageList {
        messages: page.messages.into_iter().map(MessageView::from).collect(),
        next_before_id: page.next_before_id,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageRequest {
    /// The new text, 1–4096 characters once formatting is read.
    pub text: String,
    /// `html` or `markdown`, as for sending.
    pub parse_mode: Option<String>,
    /// `false`: no preview of the first link (as for sending; an edit sets it anew).
    pub link_preview: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"),
           ("msg" = i32, Path, description = "message id")),
    request_body = EditMessageRequest,
    responses((status = 204, description = "the message says the new text"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, message_id)): ApiPath<(AccountId, String, i32)>,
    ApiJson(req): ApiJson<EditMessageRequest>,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    // A caption is shorter (1024); Telegram says so (MEDIA_CAPTION_TOO_LONG) for a media post.
    let text = formatted(
        req.text,
        req.parse_mode.as_deref(),
        "text",
        super::messages::TEXT_MAX,
    )?;
    let request = EditMessage {
        chat,
        message_id,
        text,
        no_link_preview: req.link_preview == Some(false),
    };
    fleet(&state)?.call(id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"),
           ("msg" = i32, Path, description = "message id")),
    responses((status = 204, description = "deleted for everyone"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, message_id)): ApiPath<(AccountId, String, i32)>,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    fleet(&state)?
        .call(id, DeleteMessage { chat, message_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PinQuery {
    /// `true`: pin without notifying the members.
    pub silent: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/pin", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"),
           ("msg" = i32, Path, description = "message id"), PinQuery),
    responses((status = 204, description = "pinned"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn pin(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, message_id)): ApiPath<(AccountId, String, i32)>,
    ApiQuery(q): ApiQuery<PinQuery>,
) -> Result<StatusCode, ApiError> {
    pin_or_unpin(
        state,
        user,
        id,
        chat,
        message_id,
        true,
        q.silent == Some(true),
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/pin", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"),
           ("msg" = i32, Path, description = "message id")),
    responses((status = 204, description = "not pinned"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn unpin(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, message_id)): ApiPath<(AccountId, String, i32)>,
) -> Result<StatusCode, ApiError> {
    pin_or_unpin(state, user, id, chat, message_id, false, false).await
}

async fn pin_or_unpin(
    state: AppState,
    user: AuthUser,
    id: AccountId,
    chat: String,
    message_id: i32,
    pin: bool,
    silent: bool,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let request = PinMessage {
        chat,
        message_id,
        pin,
        silent,
    };
    fleet(&state)?.call(id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
