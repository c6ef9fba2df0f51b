use crate::audit::Audit;
use crate::auth::password;
use crate::auth::tokens::{self, hash_refresh_token};
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::ApiJson;
use crate::state::AppState;
use crate::users::UserView;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tgfleet_config::Registration;
use tgfleet_persistence::{NewUser, RefreshToken, Role, StoreError, User};
use utoipa::ToSchema;

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Its family is revoked too when given. Without it, the family of the login the access
    /// token belongs to is revoked; the access token itself is revoked either way.
    pub refresh_token: Option<String>,
}

/// `Debug` shows the shape, never the tokens: a logged pair would be a login for anyone who reads
/// the log.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;

pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Deliberately loose: one `@`, something on each side, a dot in the domain. The real test of an
/// address is mail reaching it, which is not this service's business.
pub fn email_is_valid(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 254
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub fn validate_credentials(v: &mut Validator, email: &str, password: &str) {
    v.check(email_is_valid(email), "email", "must be an email address");
    v.check(
        password.chars().count() >= MIN_PASSWORD,
        "password",
        format!("must be at least {MIN_PASSWORD} characters"),
    );
    v.check(
        password.len() <= MAX_PASSWORD,
        "password",
        format!("must be at most {MAX_PASSWORD} bytes"),
    );
}

#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 403, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if state.settings.auth.registration == Registration::Closed {
        return Err(ApiError::ForbiddenCode {
            code: "REGISTRATION_CLOSED",
            message: "registration is closed; ask an administrator".into(),
        });
    }
    let email = normalize_email(&req.email);
    let mut v = Validator::default();
    validate_credentials(&mut v, &email, &req.password);
    if let Some(name) = &req.username {
        v.check(
            (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control),
            "username",
            "must be 1 to 64 printable characters",
        );
    }
    v.finish()?;
    let user = create_user(
        state.store.as_ref(),
        email,
        req.password,
        req.username,
        Role::User,
    )
    .await?;
    Audit::info("user_registered", "user registered")
        .user(user.id)
        .record(&state)
        .await;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

/// Shared by registration and `tgfleet users create`.
pub async fn create_user(
    store: &dyn tgfleet_persistence::Store,
    email: String,
    password_plain: String,
    username: Option<String>,
    role: Role,
) -> Result<User, ApiError> {
    let password_hash = password::hash(password_plain).await?;
    match store
        .create_user(NewUser {
            email,
            username,
            password_hash,
            role,
        })
        .await
    {
        Ok(u) => Ok(u),
        Err(StoreError::Conflict(_)) => Err(ApiError::Conflict {
            code: "EMAIL_TAKEN",
            message: "a user with this email already exists".into(),
        }),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let email = normalize_email(&req.email);
    let found = match state.store.user_by_email(&email).await {
        Ok(u) => Some(u),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let phc = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let ok = password::verify(req.password, phc).await?;
    let user = match found {
        Some(u) if ok && !u.disabled => u,
        other => {
            let mut audit =
                Audit::warn("login_failed", "failed login").error_code("INVALID_CREDENTIALS");
            if let Some(u) = &other {
                audit = audit.user(u.id);
            }
            audit.record(&state).await;
            return Err(ApiError::InvalidCredentials);
        }
    };
    let pair = issue_pair(&state, &user, uuid::Uuid::new_v4().to_string()).await?;
    Audit::info("login", "user logged in")
        .user(user.id)
        .record(&state)
        .await;
    Ok(Json(pair))
}

async fn issue_pair(
    state: &AppState,
    user: &User,
    family_id: String,
) -> Result<TokenPair, ApiError> {
    let (access_token, claims) = state.jwt.issue_access(user.id, user.role, &family_id)?;
    let (refresh_token, token_hash) = tokens::new_refresh_token();
    let now = Utc::now();
    let inserted = state
        .store
        .insert_refresh_token(RefreshToken {
            token_hash,
            user_id: user.id,
            family_id,
            expires_at: now + state.jwt.refresh_ttl,
            revoked_at: None,
            created_at: now,
        })
        .await;
    match inserted {
        Ok(()) => {}
        // The family was revoked while this rotation ran (a replayed token): no new pair.
        Err(tgfleet_persistence::StoreError::Conflict(_)) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    }
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: claims.exp - claims.iat,
    })
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody)))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let hash = hash_refresh_token(&req.refresh_token);
    let token = match state.store.refresh_token(&hash).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    // A revoked token presented again means it was copied: whoever holds the family is cut off.
    let reused = token.revoked_at.is_some() || !state.store.revoke_refresh_token(&hash).await?;
    if reused {
        let revoked = state.auth_cache.revoke_family(&token.family_id).await?;
        Audit::warn(
            "refresh_token_reused",
            "revoked refresh token reused; family revoked",
        )
        .user(token.user_id)
        .error_code("REFRESH_TOKEN_REUSED")
        .details(serde_json::json!({ "revoked": revoked }))
        .record(&state)
        .await;
        return Err(ApiError::Unauthorized);
    }
    if token.expires_at <= Utc::now() {
        return Err(ApiError::Unauthorized);
    }
    let user = match state.store.user_by_id(token.user_id).await {
        Ok(u) if !u.disabled => u,
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    let pair = issue_pair(&state, &user, token.family_id).await?;
    Audit::info("token_refreshed", "tokens refreshed")
        .user(user.id)
        .record(&state)
        .await;
    Ok(Json(pair))
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    request_body(content = LogoutRequest, description = "optional"),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: without it, the access token's own login is logged out.
    let body: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::Unprocessable {
            code: "INVALID_BODY",
            message: e.to_string(),
        })?
    };
    let cache = &state.auth_cache;
    cache.revoke_access_token(&user.jti, user.exp).await?;
    if let Some(family) = &user.family {
        cache.revoke_family(family).await?;
    }
    if let Some(rt) = body.refresh_token {
        let hash = hash_refresh_token(&rt);
        // Only the caller's own token: logout must not become a way to revoke someone else's.
        if let Ok(t) = state.store.refresh_token(&hash).await {
            if t.user_id == user.id && user.family.as_ref() != Some(&t.family_id) {
                cache.revoke_family(&t.family_id).await?;
            }
        }
    }
    Audit::info("logout", "user logged out")
        .user(user.id)
        .record(&state)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<UserView>, ApiError> {
    let u = state.store.user_by_id(user.id).await?;
    Ok(Json(UserView::from(&u)))
}
