//! Admin routes over users, and the view of a user every route shows.

use crate::audit::Audit;
use crate::auth::AdminUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{Role, User, UserId, UserPatch};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub username: Option<String>,
    #[schema(value_type = crate::openapi::RoleDoc)]
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            username: u.username.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    pub next_cursor: Option<i64>,
}

/// Keyset paging: a full page means there may be more, starting after its last id.
pub fn next_cursor<T>(items: &[T], limit: u32, id: impl Fn(&T) -> i64) -> Option<i64> {
    if items.len() == limit as usize {
        items.last().map(id)
    } else {
        None
    }
}

pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::BadRequest {
            code: "INVALID_QUERY",
            message: "limit must be between 1 and 500".into(),
        }),
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = UserPage), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = page_limit(q.limit)?;
    let users = state.store.list_users(q.cursor, limit).await?;
    let next_cursor = next_cursor(&users, limit, |u| u.id);
    Ok(Json(UserPage {
        items: users.iter().map(UserView::from).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchRequest {
    #[schema(value_type = Option<crate::openapi::RoleDoc>)]
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = i64, Path, description = "user id")),
    request_body = UserPatchRequest,
    responses((status = 200, body = UserView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(req): ApiJson<UserPatchRequest>,
) -> Result<Json<UserView>, ApiError> {
    // An admin locking themselves out would leave nobody able to undo it.
    if id == admin.id && (req.role == Some(Role::User) || req.disabled == Some(true)) {
        return Err(ApiError::Conflict {
            code: "SELF_LOCKOUT",
            message: "an administrator cannot demote or disable themselves".into(),
        });
    }
    let before = state.store.user_by_id(id).await.map_err(|e| match e {
        tgfleet_persistence::StoreError::NotFound => ApiError::NotFound("user"),
        other => other.into(),
    })?;
    let user = state
        .auth_cache
        .update_user(
            id,
            UserPatch {
                role: req.role,
                disabled: req.disabled,
            },
        )
        .await?;
    if before.role != user.role {
        Audit::info(
            "role_changed",
            format!("role changed to {:?}", user.role).to_lowercase(),
        )
        .user(admin.id)
        .details(serde_json::json!({ "target_user_id": id, "role": user.role }))
        .record(&state)
        .await;
    }
    if before.disabled != user.disabled {
        Audit::info(
            if user.disabled {
                "user_disabled"
            } else {
                "user_enabled"
            },
            "user access changed",
        )
        .user(admin.id)
        .details(serde_json::json!({ "target_user_id": id }))
        .record(&state)
        .await;
    }
    Ok(Json(UserView::from(&user)))
}

/// A random password for `tgfleet users create` when none is piped in: 24 URL-safe characters
/// (144 bits).
pub fn generate_password() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 18];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `tgfleet users create`: the same rules and hashing as registration, recorded in the audit log.
pub async fn create_from_cli(
    store: std::sync::Arc<dyn tgfleet_persistence::Store>,
    email: &str,
    password: String,
    role: Role,
) -> anyhow::Result<User> {
    use crate::auth::routes::{create_user, normalize_email, validate_credentials};
    let email = normalize_email(email);
    let mut v = crate::error::Validator::default();
    validate_credentials(&mut v, &email, &password);
    if let Err(ApiError::Validation(fields)) = v.finish() {
        let list: Vec<String> = fields
            .iter()
            .map(|f| format!("{} {}", f.field, f.message))
            .collect();
        anyhow::bail!("{}", list.join("; "));
    }
    let user = create_user(store.as_ref(), email, password, None, role)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    store
        .append_log(tgfleet_persistence::NewLogEntry {
            level: tgfleet_persistence::LogLevel::Info,
            event: "user_created".into(),
            account_id: None,
            user_id: Some(user.id),
            error_code: None,
            message: format!("user created from the command line with role {role:?}")
                .to_lowercase(),
            details: serde_json::Value::Null,
        })
        .await?;
    Ok(user)
}
