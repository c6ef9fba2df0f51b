//! The login steps over HTTP. Each step is a message to the account's actor, which persists the
//! pending login before answering — so a dropped HTTP connection, a crash or a restart between
//! two steps loses nothing.

use super::fleet;
use crate::audit::Audit;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{AccountId, AccountKind, AccountState};
use tgfleet_supervision::account::{CheckPassword, Command, Phone, QrCode, SendCode, SignIn};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendCodeRequest {
    pub phone: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeSent {
    /// Always `awaiting_code`.
    pub state: String,
    /// How Telegram delivered the code: app, sms, call, flash_call…
    pub code_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub code: String,
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginStep {
    /// `active`, or `awaiting_password` when the account has 2FA.
    pub state: String,
    /// The 2FA password hint, when Telegram has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QrLogin {
    /// Always `awaiting_qr`.
    pub state: String,
    /// `tg://login?token=…`, to show as a QR code to the Telegram app (Settings → Devices).
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

async fn user_account(
    state: &AppState,
    user: &AuthUser,
    id: AccountId,
) -> Result<tgfleet_persistence::Account, ApiError> {
    let account = check_account_access(state, user, id).await?;
    if account.kind == AccountKind::Bot {
        return Err(ApiError::Conflict {
            code: "WRONG_ACCOUNT_KIND",
            message: "bots log in with their token when created".into(),
        });
    }
    Ok(account)
}

/// Runs one login step and writes its outcome (never its secret) to the audit trail.
async fn step<C: Command>(
    state: &AppState,
    user: &AuthUser,
    id: AccountId,
    event: &'static str,
    request: C,
) -> Result<C::Reply, ApiError> {
    match fleet(state)?.call(id, request).await {
        Ok(reply) => {
            Audit::info(event, format!("login step {event} succeeded"))
                .user(user.id)
                .account(id)
                .record(state)
                .await;
            Ok(reply)
        }
        Err(e) => {
            Audit::warn(event, format!("login step {event} failed"))
                .user(user.id)
                .account(id)
                .error_code(e.code())
                .record(state)
                .await;
            Err(e.into())
        }
    }
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/login/code", tag = "login", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")), request_body = SendCodeRequest,
    responses((status = 200, body = CodeSent), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn send_code(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<SendCodeRequest>,
) -> Result<Json<CodeSent>, ApiError> {
    let account = user_account(&state, &user, id).await?;
    let phone: Phone = req
        .phone
        .parse()
        .map_err(|_| ApiError::field("phone", "must be + and 7 to 15 digits"))?;
    super::check_pending_login_quota(&state, &user, &account).await?;
    // Nothing is written here: the account holds the phone only once it is authorized (the
    // actor writes it then, and the store's unique index decides a race). This read only spares
    // a login that could never finish.
    if account.phone.as_ref() != Some(&phone) || !account.state.is_authorized() {
        super::refuse_phone_held_by_another(&state, Some(id), &phone).await?;
    }
    let sent = step(
        &state,
        &user,
        id,
        "login_code_requested",
        SendCode { phone },
    )
    .await?;
    Ok(Json(CodeSent {
        state: AccountState::AwaitingCode.as_str().into(),
        code_type: sent.code_type,
        timeout_s: sent.timeout_s,
    }))
}

fn login_step(reply: tgfleet_supervision::account::LoginStep) -> Result<Json<LoginStep>, ApiError> {
    Ok(Json(LoginStep {
        state: reply.state.as_str().into(),
        hint: reply.hint,
    }))
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/login/sign-in", tag = "login", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")), request_body = SignInRequest,
    responses((status = 200, body = LoginStep), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<SignInRequest>,
) -> Result<Json<LoginStep>, ApiError> {
    user_account(&state, &user, id).await?;
    let code = req.code.trim().to_owned();
    if code.is_empty() || code.len() > 16 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::field(
            "code",
            "must be the code Telegram sent (digits)",
        ));
    }
    login_step(step(&state, &user, id, "login_sign_in", SignIn { code }).await?)
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/login/password", tag = "login", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")), request_body = PasswordRequest,
    responses((status = 200, body = LoginStep), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn password(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<PasswordRequest>,
) -> Result<Json<LoginStep>, ApiError> {
    user_account(&state, &user, id).await?;
    if req.password.is_empty() || req.password.len() > 1024 {
        return Err(ApiError::field(
            "password",
            "must be the account's 2FA password",
        ));
    }
    login_step(
        step(
            &state,
            &user,
            id,
            "login_password",
            CheckPassword {
                password: req.password,
            },
        )
        .await?,
    )
}

async fn qr<C: Command<Reply = tgfleet_supervision::account::Qr>>(
    state: &AppState,
    user: &AuthUser,
    id: AccountId,
    request: C,
) -> Result<QrLogin, ApiError> {
    let account = user_account(state, user, id).await?;
    super::check_pending_login_quota(state, user, &account).await?;
    let qr = step(state, user, id, "login_qr_requested", request).await?;
    Ok(QrLogin {
        state: AccountState::AwaitingQr.as_str().into(),
        url: qr.url,
        expires_at: qr.expires_at,
    })
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/login/qr", tag = "login", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, body = QrLogin), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 429, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn qr_login(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<QrLogin>, ApiError> {
    Ok(Json(
        qr(&state, &user, id, tgfleet_supervision::account::QrLogin).await?,
    ))
}

/// The pending QR login URL of one of the caller's accounts, as the PNG route shows it; 409
/// `NOT_AWAITING_QR` unless a QR login is what the account waits for (a scan must not start one).
#[cfg(feature = "sandbox")]
pub(crate) async fn current_qr_url(
    state: &AppState,
    user: &AuthUser,
    id: AccountId,
) -> Result<String, ApiError> {
    let account = user_account(state, user, id).await?;
    if account.state != AccountState::AwaitingQr {
        return Err(ApiError::Conflict {
            code: "NOT_AWAITING_QR",
            message: format!(
                "the account is {}, not waiting for a QR scan: POST …/login/qr first",
                account.state.as_str()
            ),
        });
    }
    Ok(qr(state, user, id, QrCode).await?.url)
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/login/qr.png", tag = "login", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, content_type = "image/png", description = "the QR code of the current login URL"),
              (status = 401, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn qr_png(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<impl IntoResponse, ApiError> {
    // The pending token while it is valid: a page that reloads the image must show the code the
    // phone is about to scan, not replace it.
    let login = qr(&state, &user, id, QrCode).await?;
    let png = render_qr_png(&login.url)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    ))
}

/// 8 pixels per module with the 4-module quiet zone scanners expect.
pub fn render_qr_png(data: &str) -> Result<Vec<u8>, ApiError> {
    const SCALE: usize = 8;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(data.as_bytes())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding the QR code: {e}")))?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for y in my * SCALE..(my + 1) * SCALE {
                pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("writing the PNG header: {e}")))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("writing the PNG: {e}")))?;
    }
    Ok(out)
}
