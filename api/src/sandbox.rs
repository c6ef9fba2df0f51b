//! Routes that exist only under `serve --sandbox`: the in-process testdc's login codes, fault
//! injection and incoming messages, so every flow can be played over HTTP without Telegram.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tgfleet_supervision::account::Phone;
use tgfleet_testdc::{FaultBody, TestDc};
use utoipa::{OpenApi, ToSchema};

/// The sandbox's part of the OpenAPI document (`crate::openapi::full` adds it).
#[derive(OpenApi)]
#[openapi(paths(code, fault, message, scan_qr))]
pub struct SandboxDoc;

fn testdc(state: &AppState) -> Result<&TestDc, ApiError> {
    state.sandbox.as_ref().ok_or(ApiError::NotFound("route"))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxCode {
    pub code: String,
}

#[utoipa::path(get, path = "/api/v1/sandbox/codes/{phone}", tag = "sandbox", security(("bearer" = [])),
    params(("phone" = String, Path, description = "E.164 phone")),
    responses((status = 200, body = SandboxCode), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn code(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(phone): ApiPath<String>,
) -> Result<Json<SandboxCode>, ApiError> {
    let dc = testdc(&state)?;
    let phone = phone
        .parse::<Phone>()
        .map(Phone::into_string)
        .map_err(|_| ApiError::NotFound("code"))?;
    // Even in a shared sandbox, one user must not finish another's login: only the owner of an
    // account on this phone (or an admin) reads its code.
    if !user.is_admin() && !owns_phone(&state, user.id, &phone).await? {
        return Err(ApiError::NotFound("code"));
    }
    dc.last_code(&phone)
        .map(|code| Json(SandboxCode { code }))
        .ok_or(ApiError::NotFound("code"))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    DropConnections,
    FloodWait,
    BlackHole,
    Delay,
    Revoke,
    Ban,
    Clear,
}

impl FaultKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::DropConnections => "drop_connections",
            Self::FloodWait => "flood_wait",
            Self::BlackHole => "black_hole",
            Self::Delay => "delay",
            Self::Revoke => "revoke",
            Self::Ban => "ban",
            Self::Clear => "clear",
        }
    }
}

async fn owns_phone(state: &AppState, user_id: i64, phone: &str) -> Result<bool, ApiError> {
    owns_account(state, user_id, |a| {
        a.phone.as_ref().map(Phone::as_str) == Some(phone)
    })
    .await
}

/// Whether one of the user's accounts matches `pred`.
async fn owns_account(
    state: &AppState,
    user_id: i64,
    pred: impl Fn(&tgfleet_persistence::Account) -> bool,
) -> Result<bool, ApiError> {
    let mut after = None;
    loop {
        let page = state
            .store
            .list_accounts(tgfleet_persistence::AccountFilter {
                owner_id: Some(user_id),
                state: None,
                after_id: after,
                limit: 500,
            })
            .await?;
        if page.iter().any(&pred) {
            return Ok(true);
        }
        if page.len() < 500 {
            return Ok(false);
        }
        after = page.last().map(|a| a.id);
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxFault {
    pub kind: FaultKind,
    /// Only this phone's connections or calls (every kind); omit for all (admins only).
    pub phone: Option<String>,
    /// The method a flood wait applies to, e.g. `messages.sendMessage`.
    pub method: Option<String>,
    /// flood_wait: at most 86400; delay: at most 60.
    pub seconds: Option<u32>,
    /// delay: at most 60000.
    pub millis: Option<u64>,
    /// black_hole: on (default) or off.
    pub on: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/sandbox/faults", tag = "sandbox", security(("bearer" = [])),
    request_body = SandboxFault,
    responses((status = 200, description = "what the fault did", body = Object),
              (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, description = "FAULT_NEEDS_PHONE: only admins inject faults for every account", body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody),
              (status = 422, description = "INVALID_FAULT, FAULT_DELAY_TOO_LONG, FAULT_FLOOD_WAIT_TOO_LONG, TOO_MANY_FAULTS", body = crate::openapi::ErrorBody)))]
pub async fn fault(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SandboxFault>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dc = testdc(&state)?;
    let phone = match req.phone.as_deref() {
        None => None,
        Some(p) => Some(p.parse::<Phone>().map(Phone::into_string).map_err(|_| {
            ApiError::Unprocessable {
                code: "INVALID_FAULT",
                message: "phone must be + and 7 to 15 digits".into(),
            }
        })?),
    };
    // A shared sandbox is still shared: a user's faults reach only the user's own phones, and
    // a fault without a phone (every account on the DC) is an admin's.
    if !user.is_admin() {
        match &phone {
            None => {
                return Err(ApiError::ForbiddenCode {
                    code: "FAULT_NEEDS_PHONE",
                    message: "name one of your accounts' phones: a fault without one acts on \
                              every account, which only an admin may do"
                        .into(),
                })
            }
            // 404 as for a code: whether someone else uses a phone is not this user's business.
            Some(p) if !owns_phone(&state, user.id, p).await? => {
                return Err(ApiError::NotFound("phone"))
            }
            Some(_) => {}
        }
    }
    let body = FaultBody {
        kind: req.kind.as_str().to_owned(),
        phone,
        method: req.method,
        seconds: req.seconds,
        millis: req.millis,
        on: req.on,
        revoke_kind: None,
    };
    tgfleet_testdc::apply_fault(dc, body)
        .map(Json)
        .map_err(|e| ApiError::Unprocessable {
            code: e.code,
            message: e.message,
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxMessage {
    /// The testdc user who sends: any phone (its user is created on first use), but not the
    /// phone of another tgfleet user's account.
    pub from_phone: String,
    /// To whom: `+phone`, `@username` or a Bot-API chat id — one of your accounts, or a
    /// channel (`-100…`) the sender is a member of. Admins may name any user.
    #[schema(value_type = String, example = "@my_bot")]
    pub to: serde_json::Value,
    pub text: String,
}

#[utoipa::path(post, path = "/api/v1/sandbox/messages", tag = "sandbox", security(("bearer" = [])),
    request_body = SandboxMessage,
    responses((status = 200, description = "what testdc stored: message_id, pts, date, recipient_message_id?, recipient_pts?, channel_id?", body = Object),
              (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, description = "CHAT_WRITE_FORBIDDEN, USER_DEACTIVATED_BAN, SENDER_NOT_YOURS", body = crate::openapi::ErrorBody),
              (status = 404, description = "no such user or channel, or not one of your accounts", body = crate::openapi::ErrorBody),
              (status = 422, description = "MESSAGE_EMPTY, MESSAGE_TOO_LONG, PHONE_NUMBER_INVALID", body = crate::openapi::ErrorBody)))]
/// A testdc user sends a text message to an account (or posts into a channel), as if from
/// another phone: incoming traffic for the accounts that receive updates. Works while an
/// account is stopped too; it catches up when it connects.
pub async fn message(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SandboxMessage>,
) -> Result<Json<tgfleet_testdc::SentMessage>, ApiError> {
    let dc = testdc(&state)?;
    let to = match &req.to {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) if n.is_i64() => n.to_string(),
        _ => {
            return Err(ApiError::Unprocessable {
                code: "PEER_ID_INVALID",
                message: "to must be +phone, @username or a chat id".into(),
            })
        }
    };
    // testdc reads only the digits of a phone: the same form is what is checked here.
    let from = phone_of(&req.from_phone, "from_phone")?;
    let well_formed = to.starts_with('@') || to.starts_with('+') || to.parse::<i64>().is_ok();
    if !well_formed {
        return Err(ApiError::Unprocessable {
            code: "PEER_ID_INVALID",
            message: "to must be +phone, @username or a chat id".into(),
        });
    }
    if !user.is_admin() {
        check_sandbox_sender(&state, user.id, &from, "from_phone").await?;
        if !to.starts_with("-100") && !names_own_account(&state, user.id, &to).await? {
            // 404 as for a code: whether someone else uses a name is not this user's business.
            return Err(ApiError::NotFound("chat"));
        }
    }
    dc.send_message(from.as_str(), &to, &req.text)
        .map(Json)
        .map_err(|e| match e.status {
            404 => ApiError::NotFound("chat"),
            403 => ApiError::ForbiddenCode {
                code: leak(e.code),
                message: e.message,
            },
            400..=499 => ApiError::Unprocessable {
                code: leak(e.code),
                message: e.message,
            },
            _ => ApiError::Internal(anyhow::anyhow!("testdc: {e}")),
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxScan {
    /// One of your accounts, waiting for a QR scan (`POST …/login/qr`).
    pub account_id: tgfleet_persistence::AccountId,
    /// The phone that scans: any phone (a new sandbox user on first use) that is not another
    /// user's account. One ending in 9 has a 2FA password, so the login then asks for it.
    pub phone: String,
}

#[utoipa::path(post, path = "/api/v1/sandbox/qr/scan", tag = "sandbox", security(("bearer" = [])),
    request_body = SandboxScan,
    responses((status = 204, description = "scanned: the account logs in (or asks for the 2FA password)"),
              (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, description = "SENDER_NOT_YOURS", body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody),
              (status = 409, description = "NOT_AWAITING_QR: the account is not waiting for a QR scan", body = crate::openapi::ErrorBody),
              (status = 422, description = "PHONE_NUMBER_INVALID, QR_SCAN_FAILED", body = crate::openapi::ErrorBody)))]
/// A phone "scans" the account's current login QR code, as the Telegram app on another device
/// would: what the QR flow needs a second device for, in one call.
pub async fn scan_qr(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<SandboxScan>,
) -> Result<axum::http::StatusCode, ApiError> {
    let dc = testdc(&state)?;
    let phone = phone_of(&req.phone, "phone")?;
    // The account first: someone else's is 404 whatever the phone.
    let url = crate::accounts::login::current_qr_url(&state, &user, req.account_id).await?;
    if !user.is_admin() {
        check_sandbox_sender(&state, user.id, &phone, "phone").await?;
    }
    let token = TestDc::login_token(&url)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a QR login URL without a token")))?;
    dc.scan_qr(&token, phone.as_str())
        .map_err(|e| ApiError::Unprocessable {
            code: "QR_SCAN_FAILED",
            message: format!("{e:#}"),
        })?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// testdc's codes are a small fixed set; the API's error codes are `&'static str`.
fn leak(code: String) -> &'static str {
    match code.as_str() {
        "PEER_ID_INVALID" => "PEER_ID_INVALID",
        "PHONE_NUMBER_INVALID" => "PHONE_NUMBER_INVALID",
        "MESSAGE_EMPTY" => "MESSAGE_EMPTY",
        "MESSAGE_TOO_LONG" => "MESSAGE_TOO_LONG",
        "CHAT_WRITE_FORBIDDEN" => "CHAT_WRITE_FORBIDDEN",
        "USER_DEACTIVATED_BAN" => "USER_DEACTIVATED_BAN",
        "USER_DEACTIVATED" => "USER_DEACTIVATED",
        _ => "SANDBOX_SEND_FAILED",
    }
}

/// A user may not speak as another user's account, in whatever state it is (one halfway
/// through a login, or logged out, still has its testdc user).
/// A phone field of a sandbox body, in the one form testdc reads (+ and digits).
fn phone_of(text: &str, field: &str) -> Result<Phone, ApiError> {
    text.parse::<Phone>().map_err(|_| ApiError::Unprocessable {
        code: "PHONE_NUMBER_INVALID",
        message: format!("{field} must be + and 7 to 15 digits"),
    })
}

async fn check_sandbox_sender(
    state: &AppState,
    user_id: i64,
    from: &Phone,
    field: &str,
) -> Result<(), ApiError> {
    let mut after = None;
    loop {
        let page = state
            .store
            .list_accounts(tgfleet_persistence::AccountFilter {
                owner_id: None,
                state: None,
                after_id: after,
                limit: 500,
            })
            .await?;
        if page
            .iter()
            .any(|a| a.owner_id != user_id && a.phone.as_ref() == Some(from))
        {
            return Err(ApiError::ForbiddenCode {
                code: "SENDER_NOT_YOURS",
                message: format!("{field} is another user's account"),
            });
        }
        if page.len() < 500 {
            return Ok(());
        }
        after = page.last().map(|a| a.id);
    }
}

async fn names_own_account(state: &AppState, user_id: i64, to: &str) -> Result<bool, ApiError> {
    if let Some(name) = to.strip_prefix('@') {
        let name = name.to_lowercase();
        return owns_account(state, user_id, |a| {
            a.username.as_deref().map(str::to_lowercase).as_deref() == Some(name.as_str())
        })
        .await;
    }
    if to.starts_with('+') {
        let Ok(phone) = to.parse::<Phone>() else {
            return Ok(false);
        };
        return owns_phone(state, user_id, phone.as_str()).await;
    }
    match to.parse::<i64>() {
        Ok(id) => owns_account(state, user_id, |a| a.tg_user_id == Some(id)).await,
        Err(_) => Ok(false),
    }
}
