//! Moving sessions in and out: `POST /api/v1/telegram/accounts/import` takes sessions logged in
//! by Telethon, Pyrogram or another tgfleet and makes each an account; `GET …/{id}/export` hands
//! one out again. Parsing is in [`formats`]; the check against Telegram and the sealed session
//! layout are the account core's, reached through the fleet
//! (`Fleet::check_session`, `Fleet::create_imported`, `Fleet::export_session`).

/// The session string formats live with the rest of session import, where the CLI reads them too.
pub use tgfleet_supervision::account::formats;
pub mod session_file;

use crate::audit::Audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use formats::{fingerprint, ParseError, SessionFormat};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tgfleet_persistence::{
    AccountId, AccountKind, AccountState, ImportConflict, NewAccount, ProxyUrl, StoreError,
};
use tgfleet_supervision::account::{
    App, ForeignSession, ImportAs, ImportError, Status, TwoFaPassword,
};
use tgfleet_supervision::{ExportError, Fleet};
use utoipa::{IntoParams, ToSchema};

/// Sessions per import request. Each one costs a Telegram round trip (the authorization check)
/// plus a few database writes; at `PROBE_CONCURRENCY` parallel checks of well under a second each,
/// 100 finish in seconds, inside any HTTP client's timeout, and the body stays far below the
/// 1 MiB body limit (a session string is under 500 bytes). Bigger lists go in several requests;
/// the CLI does that.
pub const MAX_IMPORT_BATCH: usize = 100;
/// Authorization checks in flight per request: enough to hide Telegram's latency, few enough that
/// one import does not open a burst of connections Telegram would flood-limit.
const PROBE_CONCURRENCY: usize = 8;
/// Bound on one authorization check (grammers has no timeouts of its own).
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

// No `Debug`: its items carry live sessions that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// 1 to 100 sessions.
    pub sessions: Vec<ImportItem>,
}

// No `Debug`: `session` is a live login that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportItem {
    /// `telethon`, `pyrogram`, `tgfleet` or `session_file`. A string, not an enum, so an unknown
    /// format is one item's error rather than the whole request's.
    #[schema(example = "telethon")]
    pub format: String,
    /// The session string (Telethon StringSession, Pyrogram session string, tgfleet export), or
    /// for `session_file` a whole Telethon or Pyrogram `.session` file (SQLite) in base64 — read
    /// in memory, never written to disk; an unreadable one is `SESSION_FILE_INVALID`.
    pub session: String,
    pub label: Option<String>,
    /// The app the session was logged in with, when known: its connections and any later login
    /// then speak for that app instead of the fleet's. Both or neither; the api_hash is kept
    /// sealed and never shown again.
    pub api_id: Option<i32>,
    /// 32 hex digits, as my.telegram.org gives it.
    pub api_hash: Option<String>,
    /// The device identity the session was used with, so Telegram keeps seeing the same device;
    /// fields left out (or the whole object) are drawn as for a new account.
    pub device: Option<super::DeviceEdit>,
    /// One of the caller's proxies (`/api/v1/proxies`): the session is checked through it and
    /// the account keeps it, so no connection of the account leaves without it.
    pub proxy_id: Option<tgfleet_persistence::ProxyId>,
    /// Instead of `proxy_id`: a `socks5://[user:password@]host:port` URL. The caller's proxy
    /// with that URL is used, or one is added to their pool (and checked) for it, so sessions
    /// that came with the same proxy share one.
    #[schema(example = "socks5://user:secret@203.0.113.7:1080")]
    pub proxy: Option<String>,
    /// The account's 2FA password, when it came with the session: kept sealed (never shown
    /// again), it answers the password step of a later re-login by itself.
    pub two_fa_password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImportStatus {
    /// Stored, and its actor started.
    Imported,
    /// This session (same auth key), or an account for the same phone, is already in the fleet.
    Duplicate,
    /// The string or the session is unusable; `code` and `error` say why. Retrying will not help.
    Invalid,
    /// Telegram could not be asked (timeout, unreachable) or an internal step failed: nothing
    /// was kept, and the same item may be sent again.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImportResult {
    pub status: ImportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// The account's state after its actor started (`active` for a live session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub state: Option<AccountState>,
    /// Stable SCREAMING_SNAKE_CASE code of a non-imported item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImportResult {
    fn imported(id: AccountId, state: AccountState) -> Self {
        Self {
            status: ImportStatus::Imported,
            account_id: Some(id),
            state: Some(state),
            code: None,
            error: None,
        }
    }
    fn not(status: ImportStatus, code: &str, error: impl Into<String>) -> Self {
        Self {
            status,
            account_id: None,
            state: None,
            code: Some(code.to_owned()),
            error: Some(error.into()),
        }
    }
    fn duplicate(account_id: Option<AccountId>, code: &str, error: impl Into<String>) -> Self {
        Self {
            account_id,
            ..Self::not(ImportStatus::Duplicate, code, error)
        }
    }
}

/// One entry per item, in the request's order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportResponse {
    pub results: Vec<ImportResult>,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/import", tag = "accounts", security(("bearer" = [])),
    request_body = ImportRequest,
    responses((status = 200, body = ImportResponse, description = "one result per item; items fail independently"),
              (status = 401, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<ImportResponse>, ApiError> {
    // Sessions are checked against the Telegram the fleet's accounts reach, never one worked
    // out again here (a second derivation once missed `telegram.testdc_control`).
    let fleet = super::fleet(&state)?.clone();
    let mut v = Validator::default();
    v.check(
        !req.sessions.is_empty(),
        "sessions",
        "send at least one session",
    );
    v.check(
        req.sessions.len() <= MAX_IMPORT_BATCH,
        "sessions",
        format!("at most {MAX_IMPORT_BATCH} sessions per request; send the rest in more requests"),
    );
    v.finish()?;

    // Parse everything first: malformed items are answered without touching Telegram, and a key
    // that appears twice in one request is imported once.
    let mut seen = HashSet::new();
    // Sessions made for Telegram's test servers belong on a fake DC, never on the real one.
    let test_servers = fleet.on_test_dc();
    let mut work = Vec::with_capacity(req.sessions.len());
    for mut item in req.sessions {
        let introduced = introduced_as(&mut item);
        let proxy = proxy_of(&mut item);
        let parsed = if item.format == session_file::FORMAT {
            read_file_item(&item).await
        } else {
            parse_item(&item, test_servers)
        };
        let parsed = parsed.and_then(|session| {
            let introduced = introduced?;
            let proxy = proxy?;
            let fp = fingerprint(&session.auth_key);
            if seen.insert(fp.clone()) {
                Ok((session, fp, introduced, proxy))
            } else {
                Err(ImportResult::duplicate(
                    None,
                    "DUPLICATE_IN_REQUEST",
                    "the same session appears earlier in this request",
                ))
            }
        });
        work.push((parsed, item.label, item.format));
    }
    // Admission: one process-wide probe slot within the queueing bound (an overloaded process
    // says so at once instead of holding requests), then the user's budget of items.
    let queue = Duration::from_secs(state.settings.import.probe_queue_timeout_s);
    match tokio::time::timeout(queue, state.import_probes.clone().acquire_owned()).await {
        Ok(Ok(_permit)) => {}
        _ => return Err(import_busy(queue)),
    }
    // Taken once admitted, so a busy refusal costs the user nothing.
    state.limits.check_import_items(user.id, work.len())?;
    // Each item lands whole or not at all, and the batch runs in its own task: a client that
    // hangs up does not cancel an item between its Telegram check and its write.
    let task = tokio::spawn({
        let (state, user) = (state.clone(), user.clone());
        async move {
            let proxies = proxies_by_url(&state, &user, &work).await;
            stream::iter(work)
                .map(|(parsed, label, format)| {
                    let (state, user, fleet, proxies) = (&state, &user, &fleet, &proxies);
                    async move {
                        let parsed = parsed.and_then(|(session, fp, introduced, proxy)| {
                            let proxy_id = match proxy {
                                ProxyChoice::Direct => None,
                                ProxyChoice::Id(id) => Some(id),
                                ProxyChoice::Url(url) => Some(proxies[url.expose()].clone()?),
                            };
                            Ok((session, fp, introduced, proxy_id))
                        });
                        match parsed {
                            Err(result) => result,
                            Ok((session, fp, introduced, proxy_id)) => {
                                let item = Item {
                                    session,
                                    fp,
                                    label,
                                    introduced,
                                    proxy_id,
                                };
                                import_one(state, user, fleet, item, &format).await
                            }
                        }
                    }
                })
                .buffered(PROBE_CONCURRENCY)
                .collect::<Vec<_>>()
                .await
        }
    });
    let results = task
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("session import task: {e}")))?;
    let imported = results
        .iter()
        .filter(|r| r.status == ImportStatus::Imported)
        .count();
    Audit::info(
        "sessions_import_batch",
        format!("session import: {imported} of {} imported", results.len()),
    )
    .user(user.id)
    .details(serde_json::json!({ "items": results.len(), "imported": imported }))
    .record(&state)
    .await;
    Ok(Json(ImportResponse { results }))
}

/// How an item's account reaches Telegram.
enum ProxyChoice {
    Direct,
    Id(tgfleet_persistence::ProxyId),
    /// Resolved to the caller's proxy with this URL, or a new one, once per request.
    Url(ProxyUrl),
}

/// INVALID_PROXY for both `proxy_id` and `proxy`, INVALID_PROXY_URL for a URL grammers cannot dial.
fn proxy_of(item: &mut ImportItem) -> Result<ProxyChoice, ImportResult> {
    match (item.proxy_id, item.proxy.take()) {
        (None, None) => Ok(ProxyChoice::Direct),
        (Some(id), None) => Ok(ProxyChoice::Id(id)),
        (None, Some(url)) => url.parse().map(ProxyChoice::Url).map_err(|e| {
            ImportResult::not(
                ImportStatus::Invalid,
                "INVALID_PROXY_URL",
                format!("proxy: {e}; expected socks5://[user:password@]host:port"),
            )
        }),
        (Some(_), Some(_)) => Err(ImportResult::not(
            ImportStatus::Invalid,
            "INVALID_PROXY",
            "proxy_id or proxy, not both",
        )),
    }
}

type Parsed = Result<(ForeignSession, String, ImportAs, ProxyChoice), ImportResult>;

/// The pool's proxy for each distinct URL the items name, found or added once for the request;
/// an item whose proxy could not be had fails (nothing of it is kept) and may be sent again.
async fn proxies_by_url(
    state: &AppState,
    user: &AuthUser,
    work: &[(Parsed, Option<String>, String)],
) -> HashMap<String, Result<tgfleet_persistence::ProxyId, ImportResult>> {
    let mut urls: Vec<&ProxyUrl> = Vec::new();
    for (parsed, ..) in work {
        if let Ok((.., ProxyChoice::Url(url))) = parsed {
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    if urls.is_empty() {
        return HashMap::new();
    }
    let failed = |url: &ProxyUrl, e: &ApiError| {
        ImportResult::not(
            ImportStatus::Failed,
            e.code(),
            format!("proxy {url}: {e}; nothing was kept, send it again"),
        )
    };
    match crate::proxies::find_or_add(state, user.id, &urls).await {
        Ok(found) => urls
            .iter()
            .zip(found)
            .map(|(url, proxy)| (url.expose().to_owned(), proxy.map_err(|e| failed(url, &e))))
            .collect(),
        Err(e) => urls
            .iter()
            .map(|url| (url.expose().to_owned(), Err(failed(url, &e))))
            .collect(),
    }
}

/// The app and identity an item asks for: INVALID_APP / INVALID_DEVICE when malformed.
fn introduced_as(item: &mut ImportItem) -> Result<ImportAs, ImportResult> {
    let app =
        match (item.api_id, item.api_hash.take()) {
            (None, None) => None,
            (Some(api_id), Some(api_hash))
                if api_id > 0
                    && api_hash.len() == 32
                    && api_hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(App {
                    api_id,
                    api_hash: api_hash.to_ascii_lowercase(),
                })
            }
            _ => return Err(ImportResult::not(
                ImportStatus::Invalid,
                "INVALID_APP",
                "api_id (a positive number) and api_hash (32 hex digits) come together, or not \
                 at all",
            )),
        };
    let patch = item
        .device
        .take()
        .unwrap_or_default()
        .checked()
        .map_err(|e| {
            let why = match e {
                ApiError::Validation(fields) => fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                other => other.to_string(),
            };
            ImportResult::not(ImportStatus::Invalid, "INVALID_DEVICE", why)
        })?;
    let device = patch
        .completed()
        .map_err(|why| ImportResult::not(ImportStatus::Invalid, "INVALID_DEVICE", why))?;
    let two_fa_password = item
        .two_fa_password
        .take()
        .map(TwoFaPassword::checked)
        .transpose()
        .map_err(|why| ImportResult::not(ImportStatus::Invalid, "INVALID_TWO_FA_PASSWORD", why))?;
    Ok(ImportAs {
        device,
        app,
        proxy: None,
        two_fa_password,
    })
}

/// A `session_file` item: the file's own checks, and the label's as for a string.
async fn read_file_item(item: &ImportItem) -> Result<ForeignSession, ImportResult> {
    check_label(item)?;
    session_file::read_base64(&item.session)
        .await
        .map_err(|message| {
            ImportResult::not(ImportStatus::Invalid, "SESSION_FILE_INVALID", message)
        })
}

fn check_label(item: &ImportItem) -> Result<(), ImportResult> {
    if item.label.as_ref().is_some_and(|l| l.chars().count() > 128) {
        return Err(ImportResult::not(
            ImportStatus::Invalid,
            "INVALID_LABEL",
            "label must be at most 128 characters",
        ));
    }
    Ok(())
}

fn parse_item(item: &ImportItem, sandbox: bool) -> Result<ForeignSession, ImportResult> {
    let refuse = |e: ParseError| ImportResult::not(ImportStatus::Invalid, e.code, e.message);
    let format = match item.format.parse::<SessionFormat>() {
        Ok(format) => format,
        Err(()) => {
            let other = &item.format;
            return Err(ImportResult::not(
                ImportStatus::Invalid,
                "UNKNOWN_FORMAT",
                format!(
                    "format {:?} is not one of telethon, pyrogram, tgfleet, session_file",
                    other.chars().take(32).collect::<String>()
                ),
            ));
        }
    };
    check_label(item)?;
    let parsed = formats::parse(format, &item.session).map_err(refuse)?;
    if parsed.test_mode && !sandbox {
        return Err(ImportResult::not(
            ImportStatus::Invalid,
            "TEST_SERVERS_UNSUPPORTED",
            "this session is for Telegram's test servers, which this fleet does not use",
        ));
    }
    Ok(parsed.session)
}

/// One parsed item on its way in.
struct Item {
    session: ForeignSession,
    fp: String,
    label: Option<String>,
    introduced: ImportAs,
    proxy_id: Option<tgfleet_persistence::ProxyId>,
}

async fn import_one(
    state: &AppState,
    user: &AuthUser,
    fleet: &Fleet,
    item: Item,
    format: &str,
) -> ImportResult {
    match try_import(state, user, fleet, item).await {
        Ok(result) => {
            if let Some(id) = result
                .account_id
                .filter(|_| result.status == ImportStatus::Imported)
            {
                Audit::info("session_imported", "session imported; account started")
                    .user(user.id)
                    .account(id)
                    .details(serde_json::json!({ "format": format }))
                    .record(state)
                    .await;
            }
            result
        }
        Err(e) => {
            // The cause chain goes to the log, like any internal error; the item says "failed".
            tracing::error!(error = format!("{e:#}"), "importing a session");
            ImportResult::not(
                ImportStatus::Failed,
                "INTERNAL",
                "internal error; nothing was kept, try again",
            )
        }
    }
}

fn import_busy(queue: Duration) -> ApiError {
    ApiError::Unavailable {
        code: "IMPORT_BUSY",
        message: format!(
            "every session check of this process is busy and none freed up within {} s; \
             nothing was imported, send the request again",
            queue.as_secs()
        ),
        retry_after_s: Some(queue.as_secs().max(1)),
    }
}

/// `Err` only for internal failures; every expected outcome is an `ImportResult`.
async fn try_import(
    state: &AppState,
    user: &AuthUser,
    fleet: &Fleet,
    item: Item,
) -> anyhow::Result<ImportResult> {
    let Item {
        session,
        fp,
        label,
        mut introduced,
        proxy_id,
    } = item;
    let fp = fp.as_str();
    if let Some(holder) = state.store.account_by_session_fingerprint(fp).await? {
        return Ok(duplicate_of(state, user, holder).await);
    }
    if let Some(proxy_id) = proxy_id {
        if let Err(e) = super::check_bindable_proxy(state, user, proxy_id, user.id).await {
            return Ok(ImportResult::not(
                ImportStatus::Invalid,
                e.code(),
                e.to_string(),
            ));
        }
        let sealed = state.store.proxy_url(proxy_id).await?;
        let url = state.cipher.open_proxy_url(proxy_id, &sealed).await?;
        introduced.proxy = Some((proxy_id, url));
    }
    // The probe opens a Telegram connection: it waits for one of the process's probe slots.
    let queue = Duration::from_secs(state.settings.import.probe_queue_timeout_s);
    let Ok(Ok(permit)) =
        tokio::time::timeout(queue, state.import_probes.clone().acquire_owned()).await
    else {
        return Ok(ImportResult::not(
            ImportStatus::Failed,
            "IMPORT_BUSY",
            "every session check of this process is busy; nothing was kept, send it again",
        ));
    };
    let prepared = fleet
        .check_session(&session, PROBE_TIMEOUT, introduced)
        .await;
    drop(permit);
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return Ok(refused(&e)),
    };
    // The session moves into the fleet below; what the row needs is copied out first.
    let identity = prepared.identity.clone();
    let phone = identity.phone.clone();
    let new = NewAccount {
        owner_id: user.id,
        label,
        kind: if identity.bot {
            AccountKind::Bot
        } else {
            AccountKind::User
        },
        phone,
    };
    let _counted = state.account_creation.lock(user.id).await;
    if let Err(e) = super::check_account_quota(state, user).await {
        return Ok(ImportResult::not(
            ImportStatus::Invalid,
            e.code(),
            e.to_string(),
        ));
    }
    let imported = fleet.create_imported(prepared, new, fp.to_owned()).await?;
    let id = match imported {
        Ok(id) => id,
        Err(ImportConflict::Phone) => {
            return Ok(ImportResult::duplicate(
                None,
                "PHONE_TAKEN",
                "another live account of this fleet already uses this session's phone",
            ))
        }
        Err(ImportConflict::Session(holder)) => return Ok(duplicate_of(state, user, holder).await),
    };
    // The actor reads the session (authorized: the self user is in it) and goes active.
    let started = async {
        fleet.ensure_started(id).await?;
        fleet.call(id, Status).await
    }
    .await;
    let account_state = match started {
        Ok(s) => s.state,
        Err(e) => {
            // Stored and claimed: the account exists; the supervisor keeps trying to start it.
            tracing::warn!(account_id = id, error = %e, "imported account did not answer yet");
            state.store.account(id).await?.state
        }
    };
    Ok(ImportResult::imported(id, account_state))
}

async fn duplicate_of(state: &AppState, user: &AuthUser, holder: AccountId) -> ImportResult {
    // Only the holder's owner (or an admin) learns which account it is.
    let visible = match state.store.account(holder).await {
        Ok(a) => user.is_admin() || a.owner_id == user.id,
        Err(_) => false,
    };
    ImportResult::duplicate(
        visible.then_some(holder),
        "DUPLICATE_SESSION",
        "this session is already held by an account of this fleet",
    )
}

fn refused(e: &ImportError) -> ImportResult {
    let status = if e.is_transient() {
        ImportStatus::Failed
    } else {
        ImportStatus::Invalid
    };
    ImportResult::not(status, e.code(), e.to_string())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `telethon` or `tgfleet` (default).
    pub format: Option<String>,
    /// Must be `true`: an export is a working login to the Telegram account.
    pub confirm: Option<bool>,
}

// No `Debug`: `session` is a live login that must never be printed.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExportResponse {
    #[schema(value_type = crate::openapi::SessionFormatDoc)]
    pub format: SessionFormat,
    /// A live login: whoever holds it is logged in as this account. Using it while the fleet
    /// runs the account puts the key on two connections (Telegram answers AUTH_KEY_DUPLICATED).
    pub session: String,
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/export", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"), ExportQuery),
    responses((status = 200, body = ExportResponse), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<
    (
        [(axum::http::HeaderName, &'static str); 1],
        Json<ExportResponse>,
    ),
    ApiError,
> {
    // Pyrogram strings carry no DC address, so a session is exported as tgfleet or Telethon.
    let format = match q.format.as_deref().map(str::parse::<SessionFormat>) {
        None => Some(SessionFormat::Tgfleet),
        Some(Ok(f @ (SessionFormat::Tgfleet | SessionFormat::Telethon))) => Some(f),
        Some(_) => None,
    };
    let mut v = Validator::default();
    v.check(format.is_some(), "format", "must be telethon or tgfleet");
    v.finish()?;
    let format = format.unwrap_or(SessionFormat::Tgfleet);
    check_account_access(&state, &user, id).await?;
    if q.confirm != Some(true) {
        return Err(ApiError::Unprocessable {
            code: "EXPORT_NOT_CONFIRMED",
            message: "an export is a working login to this Telegram account: repeat the request \
                      with confirm=true"
                .into(),
        });
    }
    let not_exportable = |why: String| ApiError::Conflict {
        code: "SESSION_NOT_EXPORTABLE",
        message: why,
    };
    let session = super::fleet(&state)?
        .export_session(id)
        .await
        .map_err(|e| match e {
            ExportError::NotExportable(why) => not_exportable(why),
            ExportError::Fleet(e) => e.into(),
        })?;
    let text = match format {
        SessionFormat::Telethon => {
            formats::encode_telethon(&session).map_err(|e| not_exportable(e.message))?
        }
        _ => formats::encode_tgfleet(&session),
    };
    // From now on the key is outside: an import of it into this fleet is a duplicate.
    match state
        .store
        .claim_session_fingerprint(id, &fingerprint(&session.auth_key))
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Audit::warn("session_exported", "session exported")
        .user(user.id)
        .account(id)
        .details(serde_json::json!({ "format": format.as_str() }))
        .record(&state)
        .await;
    // A working login credential: no browser or proxy cache may keep a copy.
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(ExportResponse {
            format,
            session: text,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::marker::PhantomData;

    /// `printable()` is the inherent method when `T: Debug`, the trait's `false` otherwise.
    struct Probe<T>(PhantomData<T>);
    trait NotPrintable {
        fn printable(&self) -> bool {
            false
        }
    }
    impl<T> NotPrintable for Probe<T> {}
    impl<T: std::fmt::Debug> Probe<T> {
        #[allow(dead_code)]
        fn printable(&self) -> bool {
            true
        }
    }

    #[test]
    fn bodies_that_carry_sessions_cannot_be_printed() {
        assert!(!Probe::<ImportRequest>(PhantomData).printable());
        assert!(!Probe::<ImportItem>(PhantomData).printable());
        assert!(!Probe::<ExportResponse>(PhantomData).printable());
        // The probe itself can tell: a result (no session in it) is printable.
        assert!(Probe::<ImportResult>(PhantomData).printable());
    }
}
