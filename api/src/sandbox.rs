//! Routes that exist only under `serve --sandbox`: the in-process testdc's login codes and fault
//! injection, so every flow can be played over HTTP without Telegram.

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
#[openapi(paths(code, fault))]
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
        if page
            .iter()
            .any(|a| a.phone.as_ref().map(Phone::as_str) == Some(phone))
        {
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
