//! The one error type handlers return. Clients see a stable code and a plain message; internal
//! causes go to the log only.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tgfleet_persistence::StoreError;
use tgfleet_supervision::account::AccountError;
use tgfleet_supervision::FleetError;

#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Collects field problems so a request reports all of them, not the first.
#[derive(Default)]
pub struct Validator(Vec<FieldError>);

impl Validator {
    pub fn check(&mut self, ok: bool, field: &'static str, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError {
                field,
                message: message.into(),
            });
        }
    }
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("authentication required: send a valid `Authorization: Bearer` access token")]
    Unauthorized,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("this route is for administrators")]
    Forbidden,
    #[error("{message}")]
    ForbiddenCode { code: &'static str, message: String },
    #[error("this route does not take that method")]
    MethodNotAllowed,
    #[error("send the body as application/json")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 413 with its own code (an upload over the media limit).
    #[error("{message}")]
    TooLarge { code: &'static str, message: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404 with its own code (`PROXY_NOT_FOUND`).
    #[error("{message}")]
    NotFoundCode { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 422 listing every bad field at once, so a form can mark them all.
    #[error("some fields are invalid")]
    Validation(Vec<FieldError>),
    #[error("too many requests; retry in {retry_after_s} s")]
    TooManyRequests {
        code: &'static str,
        retry_after_s: u64,
    },
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_s: Option<u64>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ForbiddenCode { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NotFoundCode { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge | Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } | Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::TooManyRequests { code, .. }
            | Self::Unavailable { code, .. }
            | Self::ForbiddenCode { code, .. }
            | Self::TooLarge { code, .. }
            | Self::NotFoundCode { code, .. } => code,
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Forbidden => "FORBIDDEN",
            Self::Validation(_) => "VALIDATION_FAILED",
            Self::NotFound(_) => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl ApiError {
    /// A 422 about one field of the request.
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field,
            message: message.into(),
        }])
    }

    /// 503 SECRETS_UNAVAILABLE: sealing `what` failed (Vault down, a key problem); nothing was
    /// written, and the same request may be sent again.
    pub fn sealing_failed(what: &str, e: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            code: "SECRETS_UNAVAILABLE",
            message: format!("could not seal {what}: {e}"),
            retry_after_s: Some(5),
        }
    }

    pub fn telegram_not_configured() -> Self {
        Self::Unavailable {
            code: "TELEGRAM_NOT_CONFIGURED",
            message:
                "telegram.api_id and telegram.api_hash are not configured (or run with --sandbox)"
                    .into(),
            retry_after_s: None,
        }
    }
}

impl From<FleetError> for ApiError {
    fn from(err: FleetError) -> Self {
        let code = err.code();
        match err {
            FleetError::NotFound(_) => Self::NotFound("account"),
            FleetError::Unavailable {
                message,
                retry_after,
                ..
            } => Self::Unavailable {
                code,
                message,
                retry_after_s: retry_after.map(|d| d.as_secs().max(1)),
            },
            FleetError::Account(e) => e.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        let code = err.code();
        let message = err.to_string();
        match err {
            AccountError::FloodWait { seconds, .. } => Self::TooManyRequests {
                code,
                retry_after_s: u64::from(seconds.max(1)),
            },
            AccountError::CodeInvalid
            | AccountError::CodeExpired
            | AccountError::PasswordInvalid
            | AccountError::PhoneNotRegistered
            | AccountError::PhoneInvalid
            | AccountError::BotTokenInvalid
            | AccountError::PeerInvalid(_) => Self::Unprocessable { code, message },
            AccountError::WrongState { .. }
            | AccountError::Unauthorized
            | AccountError::Banned
            | AccountError::PhoneTaken => Self::Conflict { code, message },
            AccountError::Timeout | AccountError::Reconnecting | AccountError::Busy(_) => {
                Self::Unavailable {
                    code,
                    message,
                    retry_after_s: Some(5),
                }
            }
            // The fleet retries it itself; seen here only if every retry met a hibernating actor.
            AccountError::Hibernating => Self::Unavailable {
                code,
                message,
                retry_after_s: Some(1),
            },
            // Telegram's refusals of a chat operation, by what the caller can do about them.
            AccountError::ChatRefused(
                "CHAT_ADMIN_REQUIRED"
                | "CHAT_WRITE_FORBIDDEN"
                | "CHAT_SEND_PLAIN_FORBIDDEN"
                | "CHAT_SEND_MEDIA_FORBIDDEN"
                | "USER_BANNED_IN_CHANNEL"
                | "USER_PRIVACY_RESTRICTED"
                | "RIGHT_FORBIDDEN"
                | "INVITE_BOT_CHECK_REQUIRED"
                | "MESSAGE_AUTHOR_REQUIRED"
                | "MESSAGE_DELETE_FORBIDDEN"
                | "CHANNEL_PRIVATE",
            ) => Self::ForbiddenCode { code, message },
            AccountError::ChatRefused(
                "USER_ALREADY_PARTICIPANT" | "USERNAME_OCCUPIED" | "INVITE_REQUEST_SENT",
            ) => Self::Conflict { code, message },
            AccountError::ChatRefused(_) => Self::Unprocessable { code, message },
            AccountError::Telegram { code: 400, .. } => Self::Unprocessable { code, message },
            // Telegram's "not allowed" is the caller's to act on, not an outage.
            AccountError::Telegram { code: 403, .. } => Self::ForbiddenCode { code, message },
            AccountError::Telegram { .. } => Self::Unavailable {
                code,
                message,
                retry_after_s: None,
            },
            AccountError::Internal(cause) => Self::Internal(anyhow::anyhow!(cause)),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("resource"),
            StoreError::Conflict(what) => Self::Conflict {
                code: "CONFLICT",
                message: format!("already exists: {what}"),
            },
            StoreError::Unavailable(message) => Self::Unavailable {
                code: "STORE_UNAVAILABLE",
                message,
                retry_after_s: Some(5),
            },
            StoreError::Other(e) => Self::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(cause) => {
                // The whole cause chain goes to the log; the client only learns that it failed.
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut error = json!({ "code": self.code(), "message": message });
        if let Self::Validation(fields) = &self {
            error["fields"] = json!(fields);
        }
        let body = Json(json!({ "error": error }));
        let mut response = (status, body).into_response();
        let retry_after = match self {
            Self::TooManyRequests { retry_after_s, .. } => Some(retry_after_s),
            Self::Unavailable { retry_after_s, .. } => retry_after_s,
            _ => None,
        };
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
