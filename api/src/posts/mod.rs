//! Posts (`/api/v1/posts`): one text or media post to many (account, chat) targets, now or at
//! `publish_at`. A post and its deliveries are rows before anything is sent; the scheduler
//! (`scheduler.rs`) delivers them, exactly once each, across crashes and restarts.

pub mod scheduler;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{
    AccountId, Delivery, DeliveryState, Post, PostEdit, PostFilter, PostState, StoreError,
};
use tgfleet_supervision::account::{DeleteMessage, Peer, PEER_FORMS};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::messages::{
    check_content_shape, check_fits_account, content_text, owned_media_items,
};
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::logs::check_account_access;
use crate::state::AppState;

/// Targets one post may have.
const TARGETS_MAX: usize = 1000;

#[derive(Debug, Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub account_id: AccountId,
    /// A chat of that account: Bot API id (`-100…` for channels) or `@username`.
    pub chat: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePost {
    /// 1–1000 (account, chat) pairs, each at most once.
    pub targets: Vec<Target>,
    /// The text, or with `media` the caption; formatted as `parse_mode` says.
    pub text: Option<String>,
    /// `html` or `markdown`, as for messages.
    pub parse_mode: Option<String>,
    /// Media library ids: one item, or 2–10 as an album.
    pub media: Option<Vec<String>>,
    pub silent: Option<bool>,
    pub link_preview: Option<bool>,
    /// When to publish (RFC 3339); now when absent or past.
    pub publish_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditPost {
    pub text: Option<String>,
    pub parse_mode: Option<String>,
    pub media: Option<Vec<String>>,
    pub silent: Option<bool>,
    pub link_preview: Option<bool>,
    pub publish_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryError {
    /// Telegram's error name (`CHAT_WRITE_FORBIDDEN`, …) or tgfleet's own code.
    pub code: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeliveryView {
    pub account_id: AccountId,
    pub chat: String,
    /// `pending`, `sending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i32,
    /// What Telegram gave (an album has several).
    pub message_ids: Option<Vec<i32>>,
    pub error: Option<DeliveryError>,
    /// When a pending delivery is next tried.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostView {
    pub id: String,
    /// `scheduled`, `publishing`, `published`, `partially_failed`, `failed` or `cancelled`.
    pub state: String,
    pub publish_at: DateTime<Utc>,
    pub text: String,
    pub parse_mode: Option<String>,
    pub media: Vec<String>,
    pub silent: bool,
    pub link_preview: bool,
    pub created_at: DateTime<Utc>,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostList {
    pub posts: Vec<PostView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Also delete what was already sent.
    pub unpublish: Option<bool>,
}

fn view(post: Post, deliveries: Vec<Delivery>) -> PostView {
    PostView {
        id: post.id,
        state: post.state.as_str().to_owned(),
        publish_at: post.publish_at,
        text: post.text,
        parse_mode: post.parse_mode,
        media: post.media,
        silent: post.silent,
        link_preview: post.link_preview,
        created_at: post.created_at,
        deliveries: deliveries
            .into_iter()
            .map(|d| DeliveryView {
                account_id: d.account_id,
                chat: d.chat,
                state: d.state.as_str().to_owned(),
                attempts: d.attempts,
                message_ids: (!d.message_ids.is_empty()).then_some(d.message_ids),
                error: d.error_code.map(|code| DeliveryError {
                    code,
                    message: d.error_message.unwrap_or_default(),
                }),
                next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
            })
            .collect(),
    }
}

/// Checks a post's content the way a message's is checked, for each target's account.
async fn check_content(
    state: &AppState,
    user: &AuthUser,
    text: Option<String>,
    parse_mode: Option<&str>,
    media_ids: &[String],
    kinds: &[tgfleet_persistence::AccountKind],
) -> Result<(), ApiError> {
    let mut v = Validator::default();
    check_content_shape(&mut v, text.is_some(), media_ids);
    v.finish()?;
    let media = owned_media_items(state, user, media_ids).await?;
    for kind in kinds {
        check_fits_account(*kind, &media)?;
    }
    content_text(text, parse_mode, &media)?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/posts", tag = "posts", security(("bearer" = [])),
    request_body = CreatePost,
    responses((status = 201, body = PostView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreatePost>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    if state.fleet.is_none() {
        return Err(ApiError::telegram_not_configured());
    }
    let mut v = Validator::default();
    v.check(
        (1..=TARGETS_MAX).contains(&req.targets.len()),
        "targets",
        "1 to 1000 (account, chat) pairs",
    );
    let mut seen = std::collections::HashSet::new();
    for (i, t) in req.targets.iter().enumerate() {
        if t.chat.parse::<Peer>().is_err() {
            v.check(false, "targets", format!("targets[{i}].chat: {PEER_FORMS}"));
        }
        if !seen.insert((t.account_id, t.chat.as_str())) {
            v.check(false, "targets", format!("targets[{i}] is listed twice"));
        }
    }
    v.finish()?;
    // Each account once, however many of its chats the post goes to.
    let mut accounts: Vec<AccountId> = req.targets.iter().map(|t| t.account_id).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut kinds = Vec::new();
    for id in accounts {
        let account = check_account_access(&state, &user, id).await?;
        if !kinds.contains(&account.kind) {
            kinds.push(account.kind);
        }
    }
    let media = req.media.unwrap_or_default();
    let text = req.text;
    check_content(
        &state,
        &user,
        text.clone(),
        req.parse_mode.as_deref(),
        &media,
        &kinds,
    )
    .await?;
    let now = Utc::now();
    let publish_at = req.publish_at.filter(|at| *at > now).unwrap_or(now);
    let post = Post {
        id: uuid::Uuid::now_v7().to_string(),
        owner_id: user.id,
        state: PostState::Scheduled,
        text: text.unwrap_or_default(),
        parse_mode: req.parse_mode,
        media,
        silent: req.silent == Some(true),
        link_preview: req.link_preview != Some(false),
        publish_at,
        created_at: now,
        updated_at: now,
    };
    let deliveries: Vec<Delivery> = req
        .targets
        .into_iter()
        .enumerate()
        .map(|(i, t)| Delivery {
            post_id: post.id.clone(),
            idx: i as i32,
            account_id: t.account_id,
            chat: t.chat,
            state: DeliveryState::Pending,
            // Fixed now, before any send: every attempt is the same message to Telegram.
            random_id: rand::random(),
            attempts: 0,
            next_attempt_at: publish_at,
            message_ids: Vec::new(),
            error_code: None,
            error_message: None,
            updated_at: now,
        })
        .collect();
    let store = state.store.clone();
    let (p, d) = (post.clone(), deliveries.clone());
    // Recorded whole whether or not the client waits for the answer.
    tokio::spawn(async move { store.create_post(p, d).await })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("recording a post failed: {e}")))??;
    state.posts_due.notify_one();
    Ok((StatusCode::CREATED, Json(view(post, deliveries))))
}

/// The post, when the caller owns it or is an admin; someone else's is "not found".
async fn owned_post(
    state: &AppState,
    user: &AuthUser,
    id: &str,
) -> Result<(Post, Vec<Delivery>), ApiError> {
    match state.store.post(id).await {
        Ok((p, d)) if user.is_admin() || p.owner_id == user.id => Ok((p, d)),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("post")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/api/v1/posts", tag = "posts", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = PostList), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<PostList>, ApiError> {
    let mut v = Validator::default();
    let post_state = query.state.as_deref().map(PostState::parse);
    v.check(
        !matches!(post_state, Some(None)),
        "state",
        "must be scheduled, publishing, published, partially_failed, failed or cancelled",
    );
    let limit = query.limit.unwrap_or(20);
    v.check((1..=100).contains(&limit), "limit", "must be 1–100");
    v.finish()?;
    let posts = state
        .store
        .list_posts(PostFilter {
            owner_id: (!user.is_admin()).then_some(user.id),
            state: post_state.flatten(),
            before_id: query.cursor,
            limit,
        })
        .await?;
    let next_cursor = (posts.len() == limit as usize)
        .then(|| posts.last().map(|p| p.id.clone()))
        .flatten();
    let mut out = Vec::with_capacity(posts.len());
    for post in posts {
        let deliveries = state.store.deliveries(&post.id).await?;
        out.push(view(post, deliveries));
    }
    Ok(Json(PostList {
        posts: out,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "post id")),
    responses((status = 200, body = PostView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PostView>, ApiError> {
    let (post, deliveries) = owned_post(&state, &user, &id).await?;
    Ok(Json(view(post, deliveries)))
}

fn not_scheduled(post: &Post) -> ApiError {
    ApiError::Conflict {
        code: "POST_NOT_SCHEDULED",
        message: format!(
            "the post is {} now; only a scheduled post changes",
            post.state.as_str()
        ),
    }
}

#[utoipa::path(patch, path = "/api/v1/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "post id")),
    request_body = EditPost,
    responses((status = 200, body = PostView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<EditPost>,
) -> Result<Json<PostView>, ApiError> {
    let (post, deliveries) = owned_post(&state, &user, &id).await?;
    if post.state != PostState::Scheduled {
        return Err(not_scheduled(&post));
    }
    // The post as it would be, checked whole.
    let text = req.text.clone().unwrap_or_else(|| post.text.clone());
    let parse_mode = req.parse_mode.clone().or_else(|| post.parse_mode.clone());
    let media = req.media.clone().unwrap_or_else(|| post.media.clone());
    let mut kinds = Vec::new();
    for d in &deliveries {
        if let Ok(account) = state.store.account(d.account_id).await {
            if !kinds.contains(&account.kind) {
                kinds.push(account.kind);
            }
        }
    }
    let has_text = !text.is_empty() || media.is_empty();
    check_content(
        &state,
        &user,
        has_text.then_some(text),
        parse_mode.as_deref(),
        &media,
        &kinds,
    )
    .await?;
    let now = Utc::now();
    let edit = PostEdit {
        text: req.text,
        parse_mode: req.parse_mode.map(Some),
        media: req.media,
        silent: req.silent,
        link_preview: req.link_preview,
        publish_at: req.publish_at.map(|at| at.max(now)),
    };
    match state.store.edit_post(&id, edit).await? {
        Some(post) => {
            state.posts_due.notify_one();
            let deliveries = state.store.deliveries(&id).await?;
            Ok(Json(view(post, deliveries)))
        }
        // It started publishing since it was read.
        None => Err(not_scheduled(&owned_post(&state, &user, &id).await?.0)),
    }
}

#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "post id"), DeleteQuery),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let (post, _) = owned_post(&state, &user, &id).await?;
    if state.store.cancel_post(&id).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    if query.unpublish != Some(true) {
        return Err(not_scheduled(&post));
    }
    let fleet = state
        .fleet
        .clone()
        .ok_or_else(ApiError::telegram_not_configured)?;
    let store = state.store.clone();
    // Every sent message is deleted, whether or not the client waits; the post is cancelled
    // once none is left.
    tokio::spawn(async move {
        // Deliveries still running stop first, so none is sent after this.
        store.set_post_state(&id, PostState::Cancelled).await?;
        let deliveries = store.deliveries(&id).await?;
        let mut first_error = None;
        for d in deliveries.iter().filter(|d| d.state == DeliveryState::Sent) {
            let Ok(chat) = d.chat.parse::<Peer>() else {
                continue;
            };
            for &message_id in &d.message_ids {
                let command = DeleteMessage {
                    chat: chat.clone(),
                    message_id,
                };
                match fleet.call(d.account_id, command).await {
                    Ok(()) => {}
                    // Already gone is what was asked for.
                    Err(e) if e.code() == "MESSAGE_ID_INVALID" => {}
                    Err(e) => {
                        first_error.get_or_insert(ApiError::from(e));
                    }
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("unpublishing failed: {e}")))??;
    Ok(StatusCode::NO_CONTENT)
}
