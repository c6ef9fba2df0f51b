//! An account's chats: its dialogs, and channels or supergroups it creates. Chat ids are Bot API
//! style (users > 0, basic groups < 0, channels `-100…`), so a frontend can store them and send
//! into a chat with `POST …/messages {peer: chat_id}`.

use super::fleet;
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
use tgfleet_supervision::account::{Chat, ChatKind, CreateChat, ListChats};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatView {
    /// Bot API style: users > 0, basic groups < 0, channels and supergroups `-100…`.
    pub chat_id: i64,
    /// `channel`, `supergroup`, `group` or `user`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub username: Option<String>,
    /// `creator`, `admin` or `member`; absent for a private chat.
    pub role: Option<String>,
    pub members_count: Option<i32>,
}

impl From<Chat> for ChatView {
    fn from(c: Chat) -> Self {
        Self {
            chat_id: c.chat_id,
            kind: c.kind.as_str().to_owned(),
            title: c.title,
            username: c.username,
            role: c.role.map(|r| r.as_str().to_owned()),
            members_count: c.members_count,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChatList {
    pub chats: Vec<ChatView>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChatsQuery {
    /// Only chats of this type: `channel`, `supergroup`, `group` or `user`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Newest dialogs first, 1–100 (default 100).
    pub limit: Option<u32>,
}

const KINDS: &str = "must be channel, supergroup, group or user";

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/chats", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"), ChatsQuery),
    responses((status = 200, body = ChatList), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiQuery(q): ApiQuery<ChatsQuery>,
) -> Result<Json<ChatList>, ApiError> {
    check_account_access(&state, &user, id).await?;
    let kind = q.kind.as_deref().map(str::parse::<ChatKind>);
    let limit = q.limit.unwrap_or(100);
    let mut v = Validator::default();
    v.check(!matches!(kind, Some(Err(()))), "type", KINDS);
    v.check((1..=100).contains(&limit), "limit", "must be 1 to 100");
    v.finish()?;
    let request = ListChats {
        kind: kind.and_then(Result::ok),
        limit,
    };
    let chats = fleet(&state)?.call(id, request).await?;
    Ok(Json(ChatList {
        chats: chats.into_iter().map(ChatView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChatRequest {
    /// `channel` (broadcast: only admins post) or `supergroup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 1–128 characters.
    pub title: String,
    /// Up to 255 characters.
    pub about: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/chats", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    request_body = CreateChatRequest,
    responses((status = 201, body = ChatView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<CreateChatRequest>,
) -> Result<(StatusCode, Json<ChatView>), ApiError> {
    check_account_access(&state, &user, id).await?;
    let broadcast = match req.kind.as_str() {
        "channel" => Some(true),
        "supergroup" => Some(false),
        _ => None,
    };
    let about = req.about.unwrap_or_default();
    let title_chars = req.title.trim().chars().count();
    let mut v = Validator::default();
    v.check(broadcast.is_some(), "type", "must be channel or supergroup");
    v.check(
        (1..=128).contains(&title_chars),
        "title",
        "must be 1 to 128 characters",
    );
    v.check(
        about.chars().count() <= 255,
        "about",
        "must be at most 255 characters",
    );
    v.finish()?;
    let request = CreateChat {
        broadcast: broadcast.unwrap_or(true),
        title: req.title.trim().to_owned(),
        about,
    };
    let chat = fleet(&state)?.call(id, request).await?;
    Ok((StatusCode::CREATED, Json(chat.into())))
}
