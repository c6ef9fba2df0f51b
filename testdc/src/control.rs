//! The loopback control HTTP API of a standalone testdc (what tests in another process, and the
//! `--sandbox` API, use instead of the in-process handle).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::world::{FaultLimit, MAX_DELAY, MAX_FLOOD_SECONDS, MAX_RULES, MAX_RULES_PER_PHONE};
use crate::{RevokeKind, SendError, TestDc, TestDcConfig, UpdateLimits, UserSpec};

fn bad_request(msg: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": "BAD_REQUEST", "message": msg.into()}})),
    )
        .into_response()
}

fn not_found(msg: impl Into<String>) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": {"code": "NOT_FOUND", "message": msg.into()}})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct KeyBody {
    key: String,
}

/// Accepts the 256-byte key as hex or (standard or URL-safe) base64.
fn decode_key(text: &str) -> Option<[u8; 256]> {
    let text = text.trim();
    let bytes = hex::decode(text)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
        .or_else(|| base64::engine::general_purpose::URL_SAFE.decode(text).ok())?;
    bytes.try_into().ok()
}

async fn post_key(State(dc): State<TestDc>, Json(body): Json<KeyBody>) -> Response {
    match decode_key(&body.key) {
        Some(key) => {
            dc.register_auth_key(key);
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad_request("key must be 256 bytes, hex or base64"),
    }
}

async fn get_code(State(dc): State<TestDc>, Path(phone): Path<String>) -> Response {
    match dc.last_code(&phone) {
        Some(code) => Json(json!({ "code": code })).into_response(),
        None => not_found("no code was sent to this phone"),
    }
}

async fn post_user(State(dc): State<TestDc>, Json(spec): Json<UserSpec>) -> Response {
    let id = dc.add_user(spec);
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

#[derive(Deserialize)]
struct BotBody {
    token: String,
    username: String,
    #[serde(default)]
    dc_id: Option<i32>,
}

async fn post_bot(State(dc): State<TestDc>, Json(b): Json<BotBody>) -> Response {
    let id = dc.add_bot_on(&b.token, &b.username, b.dc_id.unwrap_or(2));
    (StatusCode::CREATED, Json(json!({ "id": id }))).into_response()
}

#[derive(Deserialize)]
struct ScanBody {
    /// The token as in `tg://login?token=…` (URL-safe base64), or hex.
    token: String,
    phone: String,
}

async fn post_scan(State(dc): State<TestDc>, Json(b): Json<ScanBody>) -> Response {
    let Some(token) = TestDc::login_token(&b.token) else {
        return bad_request("token must be base64url or hex");
    };
    match dc.scan_qr(&token, &b.phone) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => bad_request(format!("{e:#}")),
    }
}

/// `{"kind": …, "phone"?, "method"?, "seconds"?, "millis"?, "on"?, "revoke_kind"?}`
#[derive(Deserialize)]
pub struct FaultBody {
    pub kind: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub seconds: Option<u32>,
    #[serde(default)]
    pub millis: Option<u64>,
    #[serde(default)]
    pub on: Option<bool>,
    #[serde(default)]
    pub revoke_kind: Option<RevokeKind>,
}

/// Why a fault was refused: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    pub code: &'static str,
    pub message: String,
}

impl FaultError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_FAULT",
            message: message.into(),
        }
    }
}

impl From<FaultLimit> for FaultError {
    fn from(limit: FaultLimit) -> Self {
        let message = match limit {
            FaultLimit::PerPhone => format!(
                "this phone already has {MAX_RULES_PER_PHONE} fault rules; clear some first"
            ),
            FaultLimit::Total => {
                format!("the DC already holds {MAX_RULES} fault rules; clear some first")
            }
        };
        Self {
            code: "TOO_MANY_FAULTS",
            message,
        }
    }
}

/// Applies a fault described in the JSON shape the control API (and the sandbox API) accept.
/// With a `phone`, every kind acts on that phone alone; without one, on the whole DC.
pub fn apply_fault(dc: &TestDc, f: FaultBody) -> Result<serde_json::Value, FaultError> {
    let faults = dc.faults();
    let phone = f.phone.as_deref();
    match f.kind.as_str() {
        "drop_connections" => Ok(json!({ "dropped": faults.drop_connections(phone) })),
        "flood_wait" => {
            let method = f.method.as_deref().unwrap_or("messages.sendMessage");
            if method.is_empty() || method.len() > 64 {
                return Err(FaultError::invalid("method must be 1 to 64 characters"));
            }
            let seconds = f.seconds.unwrap_or(60);
            if seconds > MAX_FLOOD_SECONDS {
                return Err(FaultError {
                    code: "FAULT_FLOOD_WAIT_TOO_LONG",
                    message: format!("a flood wait lasts at most {MAX_FLOOD_SECONDS} s"),
                });
            }
            faults.try_flood_wait(method, phone, seconds)?;
            Ok(json!({}))
        }
        "black_hole" => {
            let on = f.on.unwrap_or(true);
            match phone {
                Some(p) => faults.black_hole_phone(p, on)?,
                None => faults.black_hole(on),
            }
            Ok(json!({}))
        }
        "delay" => {
            let d = match (f.millis, f.seconds) {
                (Some(ms), _) => Duration::from_millis(ms),
                (None, Some(s)) => Duration::from_secs(s as u64),
                (None, None) => Duration::from_secs(1),
            };
            if d > MAX_DELAY {
                return Err(FaultError {
                    code: "FAULT_DELAY_TOO_LONG",
                    message: format!("a delay lasts at most {} s", MAX_DELAY.as_secs()),
                });
            }
            match phone {
                Some(p) => faults.delay_phone(p, d)?,
                None => faults.delay(d),
            }
            Ok(json!({}))
        }
        "revoke" => {
            let phone = phone.ok_or_else(|| FaultError::invalid("revoke needs a phone"))?;
            faults
                .revoke(
                    phone,
                    f.revoke_kind.unwrap_or(RevokeKind::AuthKeyUnregistered),
                )
                .map_err(|e| FaultError::invalid(e.to_string()))?;
            Ok(json!({}))
        }
        "ban" => {
            let phone = phone.ok_or_else(|| FaultError::invalid("ban needs a phone"))?;
            faults
                .ban(phone)
                .map_err(|e| FaultError::invalid(e.to_string()))?;
            Ok(json!({}))
        }
        "clear" => {
            match phone {
                Some(p) => faults.clear_phone(p),
                None => faults.clear(),
            }
            Ok(json!({}))
        }
        other => Err(FaultError::invalid(format!("unknown fault kind {other:?}"))),
    }
}

async fn post_fault(State(dc): State<TestDc>, Json(f): Json<FaultBody>) -> Response {
    match apply_fault(&dc, f) {
        Ok(v) => Json(v).into_response(),
        Err(e) if e.code == "INVALID_FAULT" => bad_request(e.message),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": {"code": e.code, "message": e.message}})),
        )
            .into_response(),
    }
}

async fn get_messages(State(dc): State<TestDc>) -> Response {
    Json(dc.messages()).into_response()
}

/// A chat as `POST /messages` takes it: `"+phone"`, `"@username"`, or a Bot-API chat id as a
/// number or a string (users > 0, channels `-100…`).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ChatRef {
    Id(i64),
    Name(String),
}

/// `POST /messages {from_phone, to, text}`.
#[derive(Deserialize)]
pub struct SendBody {
    pub from_phone: String,
    pub to: ChatRef,
    pub text: String,
}

fn send_error(e: SendError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"error": {"code": e.code, "message": e.message}})),
    )
        .into_response()
}

/// A testdc user sends a text message: 200 `{message_id, pts, date, recipient_message_id?,
/// recipient_pts?, channel_id?}`; 404 for an unknown recipient, 403 (CHAT_WRITE_FORBIDDEN) for
/// a channel the sender may not post in, 400 for an empty or too long text or a bad phone.
async fn post_message(State(dc): State<TestDc>, Json(b): Json<SendBody>) -> Response {
    let to = match b.to {
        ChatRef::Id(id) => id.to_string(),
        ChatRef::Name(name) => name,
    };
    match dc.send_message(&b.from_phone, &to, &b.text) {
        Ok(sent) => Json(sent).into_response(),
        Err(e) => send_error(e),
    }
}

async fn get_limits(State(dc): State<TestDc>) -> Response {
    Json(dc.update_limits()).into_response()
}

/// `POST /limits {difference_page?, difference_too_long?, channel_difference_too_long?}`: the
/// catch-up page size (changes per getDifference page, default 100) and the gaps (in pts) past
/// which getDifference answers differenceTooLong and getChannelDifference
/// channelDifferenceTooLong (default 10,000 each). A field left out takes its default, so `{}`
/// restores them all. Answers the limits now in force.
async fn post_limits(State(dc): State<TestDc>, Json(limits): Json<UpdateLimits>) -> Response {
    match dc.set_update_limits(limits) {
        Ok(()) => Json(dc.update_limits()).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn get_chat_messages(State(dc): State<TestDc>, Path(chat): Path<String>) -> Response {
    match dc.chat_messages(&chat) {
        Some(messages) => Json(json!({ "messages": messages })).into_response(),
        None => not_found(format!("no chat {chat}")),
    }
}

async fn post_expire_files(State(dc): State<TestDc>) -> Response {
    Json(json!({ "files": dc.expire_file_references() })).into_response()
}

#[derive(Deserialize)]
struct ConnectionsQuery {
    /// Only the connections of this user's keys.
    phone: Option<String>,
    /// Only records after this `seq`.
    after: Option<u64>,
}

/// `GET /connections?phone=&after=`: what each connection's initConnection carried (device,
/// system and app versions, languages, api_id, layer), with its DC, key and logged-in user,
/// oldest first — so a test asserts what "Telegram" was told, connection by connection.
async fn get_connections(
    State(dc): State<TestDc>,
    axum::extract::Query(q): axum::extract::Query<ConnectionsQuery>,
) -> Response {
    let after = q.after.unwrap_or(0);
    let connections: Vec<_> = dc
        .connection_inits(q.phone.as_deref())
        .into_iter()
        .filter(|c| c.seq > after)
        .collect();
    Json(json!({ "connections": connections })).into_response()
}

async fn get_stats(State(dc): State<TestDc>) -> Response {
    let addrs: Vec<_> = dc
        .dc_addrs()
        .into_iter()
        .map(|(id, a)| json!({"id": id, "addr": a.to_string()}))
        .collect();
    Json(json!({ "stats": dc.stats(), "dcs": addrs, "connections": dc.connection_count() }))
        .into_response()
}

/// The control API as a router, for embedding (e.g. behind the sandbox routes).
pub fn control_router(dc: TestDc) -> Router {
    Router::new()
        .route("/keys", post(post_key))
        .route("/codes/{phone}", get(get_code))
        .route("/users", post(post_user))
        .route("/bots", post(post_bot))
        .route("/qr/scan", post(post_scan))
        .route("/faults", post(post_fault))
        .route("/messages", get(get_messages).post(post_message))
        .route("/limits", get(get_limits).post(post_limits))
        .route("/stats", get(get_stats))
        .route("/connections", get(get_connections))
        .route("/chats/{chat}/messages", get(get_chat_messages))
        .route("/files/expire", post(post_expire_files))
        .with_state(dc)
}

/// Runs a testdc with its control API on `control_addr` until `shutdown` resolves.
pub async fn run_standalone(
    cfg: TestDcConfig,
    control_addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let dc = TestDc::start(cfg).await?;
    let listener = tokio::net::TcpListener::bind(control_addr).await?;
    tracing::info!(
        control = %listener.local_addr()?,
        dcs = ?dc.dc_addrs(),
        "testdc running"
    );
    let result = axum::serve(listener, control_router(dc.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    dc.shutdown().await;
    Ok(result?)
}
