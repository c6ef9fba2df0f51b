//! Webhooks (`/api/v1/webhooks`): a user's endpoints for the event log, signed per the Standard
//! Webhooks specification (`sign.rs`), never pointed into tgfleet's own network (`target.rs`),
//! delivered at least once and in order per account by `dispatch.rs`.

pub mod dispatch;
pub mod queues;
pub mod sign;
pub mod target;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{
    AccountId, AttemptOutcome, EventType, NewEvent, StoreError, Webhook, WebhookAttempt,
    WebhookPatch,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::logs::check_account_access;
use crate::state::AppState;

const DESCRIPTION_MAX: usize = 500;
const ACCOUNTS_MAX: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// http(s) URL the events are POSTed to.
    pub url: String,
    /// Event types, or `["*"]` for all.
    pub events: Vec<String>,
    /// Only these accounts' events (default: all the caller's accounts).
    pub account_ids: Option<Vec<AccountId>>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `null` for all the caller's accounts.
    #[serde(default, with = "crate::extract::double_option")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub account_ids: Option<Option<Vec<AccountId>>>,
    #[serde(default, with = "crate::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` re-enables an endpoint that was disabled (and gives it a new day of retries).
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub account_ids: Option<Vec<AccountId>>,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why it is disabled (a day of failures, or its owner).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs beside the current one (after a rotation).
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: shown once, here. Verify each request's `webhook-signature` with it.
    pub secret: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SecretRotated {
    /// The new `whsec_…` secret, shown once.
    pub secret: String,
    /// The previous secret signs too until then.
    pub previous_secret_until: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub id: i64,
    pub event_id: i64,
    /// 1 for the first attempt at this event.
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The endpoint's HTTP status; none when no answer came.
    pub status: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// `succeeded`, `retrying` (see `next_attempt_at`) or `dead` (no more attempts).
    pub outcome: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttemptPage {
    pub deliveries: Vec<AttemptView>,
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AttemptQuery {
    /// `succeeded`, `retrying` or `dead`.
    pub state: Option<String>,
    /// 1–100, default 50.
    pub limit: Option<u32>,
    pub cursor: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Every event from this id on is delivered again (those the log still keeps).
    pub since_event_id: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub since_event_id: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PingSent {
    /// The `ping` event's id: its delivery shows in the endpoint's delivery log.
    pub event_id: i64,
}

fn view(h: Webhook) -> WebhookView {
    let now = Utc::now();
    WebhookView {
        id: h.id,
        url: h.url,
        events: h.events,
        account_ids: h.account_ids,
        description: h.description,
        enabled: h.enabled,
        disabled_reason: h.disabled_reason,
        failing_since: h.failing_since,
        previous_secret_until: h.previous_until.filter(|u| *u > now),
        created_at: h.created_at,
    }
}

fn attempt_view(a: WebhookAttempt) -> AttemptView {
    AttemptView {
        id: a.id,
        event_id: a.event_id,
        attempt: a.attempt,
        at: a.at,
        status: a.status,
        latency_ms: a.latency_ms,
        error: a.error,
        outcome: a.outcome.as_str().to_owned(),
        next_attempt_at: a.next_attempt_at,
    }
}

fn check_events(v: &mut Validator, events: &[String]) {
    v.check(
        !events.is_empty(),
        "events",
        "at least one event type, or \"*\"",
    );
    for name in events {
        v.check(
            name == "*" || EventType::parse(name).is_some(),
            "events",
            format!(
                "unknown event type {name:?}; known: {}",
                crate::events::known_types()
            ),
        );
    }
}

async fn check_accounts(
    state: &AppState,
    user: &AuthUser,
    ids: Option<&Vec<AccountId>>,
) -> Result<(), ApiError> {
    let Some(ids) = ids else { return Ok(()) };
    let mut v = Validator::default();
    v.check(
        (1..=ACCOUNTS_MAX).contains(&ids.len()),
        "account_ids",
        "1 to 1000 account ids, or leave it out for all",
    );
    v.finish()?;
    for id in ids {
        check_account_access(state, user, *id).await?;
    }
    Ok(())
}

/// The endpoint, when the caller owns it or is an admin; someone else's is "not found".
async fn owned(state: &AppState, user: &AuthUser, id: &str) -> Result<Webhook, ApiError> {
    match state.store.webhook(id).await {
        Ok(h) if user.is_admin() || h.owner_id == user.id => Ok(h),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("webhook")),
        Err(e) => Err(e.into()),
    }
}

async fn seal_secret(state: &AppState, id: &str, secret: &str) -> Result<Vec<u8>, ApiError> {
    state
        .cipher
        .seal(dispatch::secret_aad(id), secret.as_bytes())
        .await
        .map_err(|e| ApiError::sealing_failed("the webhook secret", e))
}

fn url_error(why: String) -> ApiError {
    ApiError::Unprocessable {
        code: "WEBHOOK_TARGET_INVALID",
        message: format!("url: {why}"),
    }
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookCreated), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let mut v = Validator::default();
    check_events(&mut v, &req.events);
    v.check(
        req.description
            .as_ref()
            .is_none_or(|d| d.chars().count() <= DESCRIPTION_MAX),
        "description",
        "at most 500 characters",
    );
    v.finish()?;
    let allow_private = state.settings.webhooks.allow_private_targets;
    target::check_url(&req.url, allow_private).map_err(url_error)?;
    check_accounts(&state, &user, req.account_ids.as_ref()).await?;
    let _creating = state.account_creation.lock(user.id).await;
    let existing = state.store.list_webhooks(Some(user.id)).await?;
    if existing.len() >= state.settings.webhooks.max_per_user {
        return Err(ApiError::Conflict {
            code: "WEBHOOK_LIMIT",
            message: format!(
                "at most {} webhooks per user (webhooks.max_per_user)",
                state.settings.webhooks.max_per_user
            ),
        });
    }
    let id = uuid::Uuid::now_v7().to_string();
    let secret = sign::new_secret();
    let now = Utc::now();
    let hook = Webhook {
        secret: seal_secret(&state, &id, &secret).await?,
        id,
        owner_id: user.id,
        url: req.url,
        events: req.events,
        account_ids: req.account_ids,
        description: req.description,
        previous_secret: None,
        previous_until: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        // From now on: what happened before the endpoint existed is a replay away.
        cursor: state.store.last_event_id().await?,
        created_at: now,
        updated_at: now,
    };
    state.store.create_webhook(hook.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: view(hook),
            secret: secret.to_string(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<WebhookList>, ApiError> {
    let hooks = state
        .store
        .list_webhooks((!user.is_admin()).then_some(user.id))
        .await?;
    Ok(Json(WebhookList {
        webhooks: hooks.into_iter().map(view).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(view(owned(&state, &user, &id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")), request_body = EditWebhook,
    responses((status = 200, body = WebhookView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<EditWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    owned(&state, &user, &id).await?;
    let mut v = Validator::default();
    if let Some(events) = &req.events {
        check_events(&mut v, events);
    }
    if let Some(Some(d)) = &req.description {
        v.check(
            d.chars().count() <= DESCRIPTION_MAX,
            "description",
            "at most 500 characters",
        );
    }
    v.finish()?;
    if let Some(url) = &req.url {
        target::check_url(url, state.settings.webhooks.allow_private_targets).map_err(url_error)?;
    }
    if let Some(ids) = &req.account_ids {
        check_accounts(&state, &user, ids.as_ref()).await?;
    }
    let patch = WebhookPatch {
        url: req.url,
        events: req.events,
        account_ids: req.account_ids,
        description: req.description,
        enabled: req.enabled,
    };
    Ok(Json(view(state.store.update_webhook(&id, patch).await?)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    owned(&state, &user, &id).await?;
    state.store.delete_webhook(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 200, body = SecretRotated), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SecretRotated>, ApiError> {
    owned(&state, &user, &id).await?;
    let secret = sign::new_secret();
    let sealed = seal_secret(&state, &id, &secret).await?;
    let until =
        Utc::now() + chrono::Duration::seconds(state.settings.webhooks.secret_overlap_s as i64);
    let hook = state
        .store
        .rotate_webhook_secret(&id, sealed, until)
        .await?;
    Ok(Json(SecretRotated {
        secret: secret.to_string(),
        previous_secret_until: hook.previous_until.unwrap_or(until),
    }))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id"), AttemptQuery),
    responses((status = 200, body = AttemptPage), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<AttemptQuery>,
) -> Result<Json<AttemptPage>, ApiError> {
    owned(&state, &user, &id).await?;
    let mut v = Validator::default();
    let outcome = q.state.as_deref().map(AttemptOutcome::parse);
    v.check(
        !matches!(outcome, Some(None)),
        "state",
        "must be succeeded, retrying or dead",
    );
    let limit = q.limit.unwrap_or(50);
    v.check((1..=100).contains(&limit), "limit", "must be 1–100");
    v.finish()?;
    let attempts = state
        .store
        .webhook_attempts(&id, outcome.flatten(), q.cursor, limit)
        .await?;
    let next_cursor = (attempts.len() == limit as usize)
        .then(|| attempts.last().map(|a| a.id))
        .flatten();
    Ok(Json(AttemptPage {
        deliveries: attempts.into_iter().map(attempt_view).collect(),
        next_cursor,
    }))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/replay", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")), request_body = Replay,
    responses((status = 202, body = Replayed), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Replay>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    owned(&state, &user, &id).await?;
    let mut v = Validator::default();
    v.check(
        req.since_event_id >= 1,
        "since_event_id",
        "an event id (1 or more)",
    );
    v.finish()?;
    state.store.replay_webhook(&id, req.since_event_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Replayed {
            since_event_id: req.since_event_id,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path, description = "webhook id")),
    responses((status = 202, body = PingSent), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn test(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<PingSent>), ApiError> {
    let hook = owned(&state, &user, &id).await?;
    let ids = state
        .store
        .append_events(vec![NewEvent {
            kind: EventType::Ping,
            account_id: None,
            owner_id: hook.owner_id,
            occurred_at: Utc::now(),
            data: serde_json::json!({ "webhook_id": hook.id, "url": hook.url }),
            dedupe_key: None,
        }])
        .await?;
    let event_id = ids
        .first()
        .copied()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the ping event was not written")))?;
    Ok((StatusCode::ACCEPTED, Json(PingSent { event_id })))
}
