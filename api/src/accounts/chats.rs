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
use tgfleet_supervision::account::{
    Chat, ChatKind, CreateChat, EditChat, GetChat, InviteLink, JoinChat, JoinLink, LeaveChat,
    ListChats, Peer, SetAdmin, ADMIN_RIGHTS,
};
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
    /// The description; only when one chat is read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
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
            about: c.about,
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
    /// A public name (`t.me/<username>`): 5–32 letters, digits and underscores, starting with a
    /// letter. If Telegram refuses it, no chat is created.
    pub username: Option<String>,
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
    let username = req
        .username
        .as_deref()
        .map(|u| u.strip_prefix('@').unwrap_or(u).to_owned());
    v.check(
        username.as_deref().is_none_or(username_ok),
        "username",
        USERNAME_RULE,
    );
    v.finish()?;
    let request = CreateChat {
        broadcast: broadcast.unwrap_or(true),
        title: req.title.trim().to_owned(),
        about,
        username,
    };
    let chat = fleet(&state)?.call(id, request).await?;
    Ok((StatusCode::CREATED, Json(chat.into())))
}

const USERNAME_RULE: &str =
    "must be 5 to 32 letters, digits and underscores, starting with a letter, not ending in _";

fn username_ok(name: &str) -> bool {
    (5..=32).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

const CHAT_FORMS: &str = "must be a chat id (-100… for channels) or @username";

/// `{chat}` of a path: a Bot API style id or `@username` (not `me` or a phone).
pub(crate) fn chat_ref(raw: &str) -> Result<Peer, ApiError> {
    match raw.parse::<Peer>() {
        Ok(peer @ (Peer::Id(_) | Peer::Username(_))) => Ok(peer),
        _ => Err(ApiError::field("chat", CHAT_FORMS)),
    }
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username")),
    responses((status = 200, body = ChatView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat)): ApiPath<(AccountId, String)>,
) -> Result<Json<ChatView>, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let chat = fleet(&state)?.call(id, GetChat { chat }).await?;
    Ok(Json(chat.into()))
}

/// Title first, then about: a failure of the second leaves the first applied (read the chat to
/// see where it stands).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditChatRequest {
    /// 1–128 characters.
    pub title: Option<String>,
    /// Up to 255 characters; empty clears it.
    pub about: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/telegram/accounts/{id}/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username")),
    request_body = EditChatRequest,
    responses((status = 200, body = ChatView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat)): ApiPath<(AccountId, String)>,
    ApiJson(req): ApiJson<EditChatRequest>,
) -> Result<Json<ChatView>, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let title = req.title.as_deref().map(str::trim);
    let mut v = Validator::default();
    v.check(
        title.is_some() || req.about.is_some(),
        "title",
        "send a title, an about, or both",
    );
    v.check(
        title.is_none_or(|t| (1..=128).contains(&t.chars().count())),
        "title",
        "must be 1 to 128 characters",
    );
    v.check(
        req.about.as_ref().is_none_or(|a| a.chars().count() <= 255),
        "about",
        "must be at most 255 characters",
    );
    v.finish()?;
    let request = EditChat {
        chat,
        title: title.map(str::to_owned),
        about: req.about,
    };
    let chat = fleet(&state)?.call(id, request).await?;
    Ok(Json(chat.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LeaveQuery {
    /// `true`: delete the chat for everyone (its creator only) instead of leaving it.
    pub delete: Option<bool>,
}

#[utoipa::path(delete, path = "/api/v1/telegram/accounts/{id}/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username"), LeaveQuery),
    responses((status = 204, description = "left (or deleted)"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn leave(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat)): ApiPath<(AccountId, String)>,
    ApiQuery(q): ApiQuery<LeaveQuery>,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let request = LeaveChat {
        chat,
        delete: q.delete == Some(true),
    };
    fleet(&state)?.call(id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// `@name`, `t.me/name` or an invite link `t.me/+hash`.
    pub link: String,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/chats/join", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    request_body = JoinRequest,
    responses((status = 200, body = ChatView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn join(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<JoinRequest>,
) -> Result<Json<ChatView>, ApiError> {
    check_account_access(&state, &user, id).await?;
    let link = req
        .link
        .parse::<JoinLink>()
        .map_err(|why| ApiError::field("link", why))?;
    let chat = fleet(&state)?.call(id, JoinChat { link }).await?;
    Ok(Json(chat.into()))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteLinkView {
    pub link: String,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/invite-link", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username")),
    responses((status = 201, body = InviteLinkView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn invite_link(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat)): ApiPath<(AccountId, String)>,
) -> Result<(StatusCode, Json<InviteLinkView>), ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let link = fleet(&state)?.call(id, InviteLink { chat }).await?;
    Ok((StatusCode::CREATED, Json(InviteLinkView { link })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminRequest {
    /// At least one of change_info, post_messages, edit_messages, delete_messages, ban_users,
    /// invite_users, pin_messages, add_admins, anonymous, manage_call, other, manage_topics,
    /// post_stories, edit_stories, delete_stories.
    pub rights: Vec<String>,
}

/// `{user}` of an admin route: `@username`, `+phone` or a user id.
fn admin_user(raw: &str) -> Result<Peer, ApiError> {
    match raw.parse::<Peer>() {
        Ok(Peer::Id(id)) if id <= 0 => Err(()),
        Ok(Peer::Me) => Err(()),
        Ok(peer) => Ok(peer),
        Err(_) => Err(()),
    }
    .map_err(|()| ApiError::field("user", "must be @username, +phone or a user id"))
}

#[utoipa::path(put, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/admins/{user}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username"),
           ("user" = String, Path, description = "@username, +phone or user id of a member")),
    request_body = AdminRequest,
    responses((status = 204, description = "promoted with exactly these rights"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn promote(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, member)): ApiPath<(AccountId, String, String)>,
    ApiJson(req): ApiJson<AdminRequest>,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let member = admin_user(&member)?;
    let unknown: Vec<&str> = req
        .rights
        .iter()
        .map(String::as_str)
        .filter(|r| !ADMIN_RIGHTS.contains(r))
        .collect();
    let mut v = Validator::default();
    v.check(
        !req.rights.is_empty(),
        "rights",
        "name at least one right (DELETE demotes)",
    );
    v.check(
        unknown.is_empty(),
        "rights",
        format!(
            "unknown rights {unknown:?}; known: {}",
            ADMIN_RIGHTS.join(", ")
        ),
    );
    v.finish()?;
    let request = SetAdmin {
        chat,
        user: member,
        rights: req.rights,
    };
    fleet(&state)?.call(id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/admins/{user}", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id (-100… for channels) or @username"),
           ("user" = String, Path, description = "@username, +phone or user id of an admin")),
    responses((status = 204, description = "no longer an admin"), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn demote(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, member)): ApiPath<(AccountId, String, String)>,
) -> Result<StatusCode, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let member = admin_user(&member)?;
    let request = SetAdmin {
        chat,
        user: member,
        rights: Vec::new(),
    };
    fleet(&state)?.call(id, request).await?;
    Ok(StatusCode::NO_CONTENT)
}
