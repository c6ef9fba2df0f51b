//! Authentication as an extractor: a handler that takes `AuthUser` cannot run unauthenticated.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tgfleet_persistence::{Role, UserId};

#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub role: Role,
    pub jti: String,
    pub exp: i64,
    /// The refresh-token family of the login this token came from.
    pub family: Option<String>,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthorized)?;
        let claims = state
            .jwt
            .verify(token.trim())
            .ok_or(ApiError::Unauthorized)?;
        let id: UserId = claims.sub.parse().map_err(|_| ApiError::Unauthorized)?;
        // One read covers both: this token logged out, or its login's family revoked (logout,
        // refresh-token reuse).
        let cache = &state.auth_cache;
        if cache
            .is_revoked(&claims.jti, claims.fam.as_deref(), claims.exp)
            .await?
        {
            return Err(ApiError::Unauthorized);
        }
        // The role comes from the database (through the cache every change goes through), not
        // the token, so a demotion or a disable takes effect at once rather than when the token
        // expires.
        let Some((role, disabled)) = cache.user(id).await? else {
            return Err(ApiError::Unauthorized);
        };
        if disabled {
            return Err(ApiError::Unauthorized);
        }
        state.limits.check_user(id)?;
        let auth = AuthUser {
            id,
            role,
            jti: claims.jti,
            exp: claims.exp,
            family: claims.fam,
        };
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}

/// An authenticated admin; a user gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(Self(user))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}
