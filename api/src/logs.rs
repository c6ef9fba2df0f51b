//! The integration log and error statistics. A user sees the rows of their own accounts and their
//! own audit rows; an admin sees all.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{AccountId, LogEntry, LogFilter, LogLevel, StoreError, UserId};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub account_id: Option<AccountId>,
    /// Minimum level: debug, info, warn or error.
    pub level: Option<String>,
    pub event: Option<String>,
    /// RFC 3339 time.
    pub since: Option<DateTime<Utc>>,
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (entries older than it).
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogView {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub level: String,
    pub event: String,
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
    pub error_code: Option<String>,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<LogEntry> for LogView {
    fn from(e: LogEntry) -> Self {
        Self {
            id: e.id,
            at: e.at,
            level: e.level.as_str().to_owned(),
            event: e.event,
            account_id: e.account_id,
            user_id: e.user_id,
            error_code: e.error_code,
            message: e.message,
            // Always an object, so clients can index it without a null check.
            details: match e.details {
                serde_json::Value::Null => serde_json::json!({}),
                other => other,
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LogPage {
    pub items: Vec<LogView>,
    pub next_cursor: Option<i64>,
}

/// The account's kind, once the caller may use it (its owner or an admin), from memory: what a
/// route that only hands the account a command needs, with no store read once warm. 404 for
/// someone else's account, as for a missing one.
pub async fn check_account_owner(
    state: &AppState,
    user: &AuthUser,
    account_id: AccountId,
) -> Result<tgfleet_persistence::AccountKind, ApiError> {
    match state.auth_cache.account(account_id).await? {
        Some((owner, kind)) if user.is_admin() || owner == user.id => Ok(kind),
        _ => Err(ApiError::NotFound("account")),
    }
}

/// 404 unless the caller owns the account (or is an admin): the same answer as for a missing one.
pub async fn check_account_access(
    state: &AppState,
    user: &AuthUser,
    account_id: AccountId,
) -> Result<tgfleet_persistence::Account, ApiError> {
    match state.store.account(account_id).await {
        Ok(a) if user.is_admin() || a.owner_id == user.id => Ok(a),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("account")),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(get, path = "/api/v1/telegram/logs", tag = "logs", security(("bearer" = [])),
    params(LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = crate::openapi::ErrorBody),
              (status = 401, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<LogPage>, ApiError> {
    let limit = crate::users::page_limit(q.limit)?;
    let min_level = match q.level.as_deref() {
        None => None,
        Some(l) => Some(LogLevel::parse(l).ok_or(ApiError::BadRequest {
            code: "INVALID_QUERY",
            message: "level must be debug, info, warn or error".into(),
        })?),
    };
    if let Some(id) = q.account_id {
        check_account_access(&state, &user, id).await?;
    }
    let filter = LogFilter {
        account_id: q.account_id,
        // A user sees rows about themselves and their accounts; the account check above already
        // covers an explicit account_id.
        owner_id: (!user.is_admin() && q.account_id.is_none()).then_some(user.id),
        min_level,
        event: q.event,
        since: q.since,
        before_id: q.cursor,
        limit,
    };
    let entries = state.store.list_logs(filter).await?;
    let next_cursor = crate::users::next_cursor(&entries, limit, |e| e.id);
    Ok(Json(LogPage {
        items: entries.into_iter().map(LogView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// RFC 3339 time; default 24 hours ago.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeCount {
    pub code: String,
    pub count: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountCount {
    pub account_id: AccountId,
    pub count: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorStatsView {
    pub since: DateTime<Utc>,
    pub by_code: Vec<CodeCount>,
    pub by_account: Vec<AccountCount>,
}

#[utoipa::path(get, path = "/api/v1/telegram/stats/errors", tag = "logs", security(("bearer" = [])),
    params(StatsQuery),
    responses((status = 200, body = ErrorStatsView), (status = 400, body = crate::openapi::ErrorBody),
              (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn error_stats(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<ErrorStatsView>, ApiError> {
    let since = q.since.unwrap_or_else(|| Utc::now() - Duration::hours(24));
    let owner = (!user.is_admin()).then_some(user.id);
    let stats = state.store.error_stats(since, owner).await?;
    let (by_code, by_account) = (stats.by_code, stats.by_account);
    Ok(Json(ErrorStatsView {
        since,
        by_code: by_code
            .into_iter()
            .map(|(code, count)| CodeCount { code, count })
            .collect(),
        by_account: by_account
            .into_iter()
            .map(|(account_id, count)| AccountCount { account_id, count })
            .collect(),
    }))
}
