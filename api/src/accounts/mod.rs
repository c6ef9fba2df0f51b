//! Telegram accounts: create, list, read, delete, restart, log out; the login steps live in
//! `login`, sending in `messages`. Someone else's account answers 404, exactly like a missing one.

pub mod chat_messages;
pub mod chats;
pub mod login;
pub mod message_media;
pub mod messages;
pub mod transfer;

use crate::audit::Audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{
    Account, AccountFilter, AccountId, AccountKind, AccountState, NewAccount, StoreError,
};
use tgfleet_supervision::account::{BotSignIn, DeviceIdentity, DevicePatch, LogOut, Phone};
use tgfleet_supervision::Fleet;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: AccountId,
    pub label: Option<String>,
    /// `user` or `bot`.
    #[schema(value_type = crate::openapi::AccountKindDoc)]
    pub kind: AccountKind,
    pub phone: Option<String>,
    /// new, awaiting_code, awaiting_password, awaiting_qr, active, reconnecting, flood_wait,
    /// unauthorized, banned, quarantined, hibernated, logged_out, stopped.
    #[schema(value_type = crate::openapi::AccountStateDoc)]
    pub state: AccountState,
    pub tg_user_id: Option<i64>,
    pub username: Option<String>,
    pub dc_id: Option<i32>,
    pub flood_wait_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub restarts: i64,
    /// Whether Telegram's updates (messages to it, edits, deletes) go into the event log:
    /// bots by default, user accounts when set with `PATCH`.
    pub receive_updates: bool,
    /// What every connection of the account tells Telegram (initConnection); drawn per account
    /// at creation, changed with `PATCH`.
    pub device: DeviceView,
    /// The account's own Telegram app (an imported session's), when it has one; its api_hash is
    /// kept sealed and never shown.
    pub api_id: Option<i32>,
    /// The pool's proxy every connection of the account goes through (none goes without it);
    /// set at creation or with `PATCH`.
    pub proxy_id: Option<tgfleet_persistence::ProxyId>,
    /// Whether the account's 2FA password is stored (sealed; never shown): a re-login that
    /// meets the password step answers it with that password, and needs only the code.
    pub two_fa_password_stored: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The device, system, app and languages an account's connections present to Telegram.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeviceView {
    #[schema(example = "Samsung SM-S918B")]
    pub device_model: String,
    #[schema(example = "SDK 34")]
    pub system_version: String,
    #[schema(example = "10.14.5")]
    pub app_version: String,
    #[schema(example = "en-US")]
    pub system_lang_code: String,
    #[schema(example = "en")]
    pub lang_code: String,
}

impl From<DeviceIdentity> for DeviceView {
    fn from(d: DeviceIdentity) -> Self {
        Self {
            device_model: d.device_model,
            system_version: d.system_version,
            app_version: d.app_version,
            system_lang_code: d.system_lang_code,
            lang_code: d.lang_code,
        }
    }
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        let receives = a.receives();
        Self {
            id: a.id,
            label: a.label,
            kind: a.kind,
            phone: a.phone.map(Phone::into_string),
            state: a.state,
            tg_user_id: a.tg_user_id,
            username: a.username,
            dc_id: a.dc_id,
            flood_wait_until: a.flood_wait_until,
            last_error: a.last_error,
            restarts: a.restarts,
            receive_updates: receives,
            device: a.device.into(),
            api_id: a.api_id,
            proxy_id: a.proxy_id,
            two_fa_password_stored: a.two_fa_stored,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// The store refuses a second live account on one phone (two would fight over one
/// authorization); this is how the API says so.
/// 403 ACCOUNT_QUOTA_EXCEEDED when a (non-admin) user already has `accounts.max_per_user`.
pub(crate) async fn check_account_quota(state: &AppState, user: &AuthUser) -> Result<(), ApiError> {
    if user.is_admin() {
        return Ok(());
    }
    let max = state.settings.accounts.max_per_user;
    let (total, _) = state.store.count_owned_accounts(user.id).await?;
    if total >= i64::from(max) {
        return Err(ApiError::ForbiddenCode {
            code: "ACCOUNT_QUOTA_EXCEEDED",
            message: format!(
                "you have {total} accounts, the most one user may have \
                 (accounts.max_per_user = {max}); delete one first"
            ),
        });
    }
    Ok(())
}

/// 403 PENDING_LOGIN_QUOTA_EXCEEDED when starting a login on `account` would give a (non-admin)
/// user more than `accounts.max_pending_logins_per_user` logins halfway.
pub async fn check_pending_login_quota(
    state: &AppState,
    user: &AuthUser,
    account: &tgfleet_persistence::Account,
) -> Result<(), ApiError> {
    let already_pending = matches!(
        account.state,
        AccountState::AwaitingCode | AccountState::AwaitingPassword | AccountState::AwaitingQr
    );
    if user.is_admin() || already_pending {
        return Ok(());
    }
    let max = state.settings.accounts.max_pending_logins_per_user;
    let (_, pending) = state.store.count_owned_accounts(account.owner_id).await?;
    if pending >= i64::from(max) {
        return Err(ApiError::ForbiddenCode {
            code: "PENDING_LOGIN_QUOTA_EXCEEDED",
            message: format!(
                "{pending} logins are waiting for a code, password or QR scan, the most one user \
                 may have (accounts.max_pending_logins_per_user = {max}); finish or delete one"
            ),
        });
    }
    Ok(())
}

/// 409 PHONE_TAKEN when an authorized account holds `phone`, other than `asking` (the account
/// logging in with it; `None` for one not created yet).
pub async fn refuse_phone_held_by_another(
    state: &AppState,
    asking: Option<AccountId>,
    phone: &Phone,
) -> Result<(), ApiError> {
    match state.store.account_holding_phone(phone).await? {
        Some(holder) if Some(holder) != asking => {
            Err(phone_conflict(StoreError::Conflict(String::new())))
        }
        _ => Ok(()),
    }
}

pub fn phone_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::Conflict {
            code: "PHONE_TAKEN",
            message: "another live account already uses this phone".into(),
        },
        other => other.into(),
    }
}

pub fn fleet(state: &AppState) -> Result<&Fleet, ApiError> {
    state
        .fleet
        .as_ref()
        .ok_or_else(ApiError::telegram_not_configured)
}

// No `Debug`: it carries a password, code, token or session that must never be printed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    pub label: Option<String>,
    #[schema(value_type = crate::openapi::AccountKindDoc)]
    pub kind: AccountKind,
    /// E.164, e.g. `+15550100199`; user accounts only.
    pub phone: Option<String>,
    /// Bot accounts only; the bot logs in at once.
    pub bot_token: Option<String>,
    /// One of the caller's proxies (`/api/v1/proxies`): every connection of the account, its
    /// first login call included, goes through it.
    pub proxy_id: Option<tgfleet_persistence::ProxyId>,
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts", tag = "accounts", security(("bearer" = [])),
    request_body = CreateAccountRequest,
    responses((status = 201, body = AccountView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 409, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody),
              (status = 429, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateAccountRequest>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let fleet = fleet(&state)?.clone();
    let mut v = Validator::default();
    let phone = req.phone.as_deref().map(|p| p.parse::<Phone>().ok());
    v.check(
        !matches!(phone, Some(None)),
        "phone",
        "must be + and 7 to 15 digits",
    );
    if let Some(label) = &req.label {
        v.check(
            label.chars().count() <= 128,
            "label",
            "must be at most 128 characters",
        );
    }
    match req.kind {
        AccountKind::Bot => {
            let token_ok = req
                .bot_token
                .as_deref()
                .is_some_and(bot_token_is_wellformed);
            v.check(
                token_ok,
                "bot_token",
                "a bot needs its token, as @BotFather gives it (123456:ABC…)",
            );
            v.check(req.phone.is_none(), "phone", "a bot has no phone");
        }
        AccountKind::User => {
            v.check(
                req.bot_token.is_none(),
                "bot_token",
                "only bots have tokens",
            );
        }
    }
    v.finish()?;
    if let Some(proxy_id) = req.proxy_id {
        check_bindable_proxy(&state, &user, proxy_id, user.id).await?;
    }
    let _counted = state.account_creation.lock(user.id).await;
    check_account_quota(&state, &user).await?;
    if let Some(Some(phone)) = &phone {
        refuse_phone_held_by_another(&state, None, phone).await?;
    }
    let account = state
        .store
        .create_account(NewAccount {
            owner_id: user.id,
            label: req.label,
            kind: req.kind,
            phone: phone.flatten(),
        })
        .await
        .map_err(phone_conflict)?;
    // Before anything can start the account's actor (the bot's sign-in below, a login), so its
    // first connection already goes through the proxy.
    let account = match req.proxy_id {
        Some(proxy_id) => {
            let bound = tgfleet_persistence::AccountUpdate {
                proxy_id: Some(Some(proxy_id)),
                ..Default::default()
            };
            match state.store.update_account(account.id, bound).await {
                Ok(account) => account,
                Err(e) => {
                    // The proxy vanished in between: no account that would connect without it.
                    state.auth_cache.delete_account(account.id).await?;
                    return Err(proxy_bind_error(e, proxy_id));
                }
            }
        }
        None => account,
    };
    Audit::info("account_created", "account created")
        .user(user.id)
        .account(account.id)
        .record(&state)
        .await;
    if let (AccountKind::Bot, Some(token)) = (req.kind, req.bot_token) {
        if let Err(e) = fleet.call(account.id, BotSignIn { token }).await {
            // A bot that cannot log in is not an account: leave no half-made row behind (row
            // first, as in `delete`).
            state.auth_cache.delete_account(account.id).await?;
            let _ = fleet.remove(account.id).await;
            Audit::warn("bot_sign_in_failed", "bot sign-in failed; account removed")
                .user(user.id)
                .account(account.id)
                .error_code(e.code())
                .record(&state)
                .await;
            return Err(e.into());
        }
        Audit::info("bot_signed_in", "bot signed in")
            .user(user.id)
            .account(account.id)
            .record(&state)
            .await;
    }
    let account = state.store.account(account.id).await?;
    Ok((StatusCode::CREATED, Json(account.into())))
}

/// 422 PROXY_NOT_FOUND unless `proxy_id` is a proxy the caller may bind `owner`'s accounts to:
/// one of the caller's own, and (an admin binding someone else's account) one of the account
/// owner's too — a proxy never carries another user's accounts, whose deletion it would then
/// block or undo.
pub(crate) async fn check_bindable_proxy(
    state: &AppState,
    user: &AuthUser,
    proxy_id: tgfleet_persistence::ProxyId,
    owner: tgfleet_persistence::UserId,
) -> Result<(), ApiError> {
    match state.store.proxy(proxy_id).await {
        Ok(p) if p.owner_id == owner && (user.is_admin() || p.owner_id == user.id) => Ok(()),
        Ok(_) | Err(StoreError::NotFound) => Err(proxy_bind_error(StoreError::NotFound, proxy_id)),
        Err(e) => Err(e.into()),
    }
}

fn proxy_bind_error(e: StoreError, proxy_id: tgfleet_persistence::ProxyId) -> ApiError {
    match e {
        // The foreign key's refusal: the proxy was deleted meanwhile.
        StoreError::NotFound => ApiError::Unprocessable {
            code: "PROXY_NOT_FOUND",
            message: format!("proxy_id: you have no proxy {proxy_id}"),
        },
        other => other.into(),
    }
}

fn bot_token_is_wellformed(token: &str) -> bool {
    let Some((id, secret)) = token.split_once(':') else {
        return false;
    };
    !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && (20..=100).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only accounts in this state.
    pub state: Option<String>,
    /// 1–500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    pub items: Vec<AccountView>,
    pub next_cursor: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts", tag = "accounts", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = AccountPage), (status = 400, body = crate::openapi::ErrorBody),
              (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AccountPage>, ApiError> {
    let limit = crate::users::page_limit(q.limit)?;
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s) => Some(AccountState::parse(s).ok_or(ApiError::BadRequest {
            code: "INVALID_QUERY",
            message: format!("unknown state {s:?}"),
        })?),
    };
    let accounts = state
        .store
        .list_accounts(AccountFilter {
            owner_id: (!user.is_admin()).then_some(user.id),
            state: wanted,
            after_id: q.cursor,
            limit,
        })
        .await?;
    let next_cursor = crate::users::next_cursor(&accounts, limit, |a| a.id);
    Ok(Json(AccountPage {
        items: accounts.into_iter().map(AccountView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, body = AccountView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(check_account_access(&state, &user, id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Keep the Telegram authorization alive (skip `auth.logOut`): for a session exported to
    /// run elsewhere. By default a deleted account is logged out, so no copy of its session
    /// keeps working.
    pub keep_authorization: Option<bool>,
}

#[utoipa::path(delete, path = "/api/v1/telegram/accounts/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"), DeleteQuery),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let account = check_account_access(&state, &user, id).await?;
    // A stopped (AUTH_KEY_DUPLICATED) or quarantined account still holds a live authorization.
    let holds_authorization = account.state.is_authorized()
        || (matches!(
            account.state,
            AccountState::Stopped | AccountState::Quarantined
        ) && account.tg_user_id.is_some());
    let log_out = holds_authorization && !q.keep_authorization.unwrap_or(false);
    // A client that hangs up must not leave an account logged out but not deleted (or the
    // reverse): the work runs in its own task, which this request only waits for.
    let task = tokio::spawn(delete_account(state, user.id, id, log_out));
    task.await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("deleting account {id}: {e}")))?
}

async fn delete_account(
    state: AppState,
    user_id: i64,
    id: AccountId,
    log_out: bool,
) -> Result<StatusCode, ApiError> {
    if log_out {
        if let Some(fleet) = &state.fleet {
            match fleet.call(id, LogOut).await {
                Ok(_) | Err(tgfleet_supervision::FleetError::NotFound(_)) => {}
                // Gone already for Telegram: nothing left to revoke.
                Err(tgfleet_supervision::FleetError::Account(
                    tgfleet_supervision::account::AccountError::Unauthorized
                    | tgfleet_supervision::account::AccountError::Banned,
                )) => {}
                Err(e) => {
                    // The key would stay valid at Telegram with no one left holding it here.
                    return Err(ApiError::Unavailable {
                        code: "LOGOUT_FAILED",
                        message: format!(
                            "could not log the account out of Telegram ({e}); nothing was \
                             deleted: retry, or delete with ?keep_authorization=true"
                        ),
                        retry_after_s: Some(5),
                    });
                }
            }
        }
    }
    // The row goes first: from then on no call can start a new actor for this id (the supervisor
    // finds no account), and the old actor's last writes fail on the foreign key instead of
    // bringing the session back. Then the old actor is stopped.
    state.auth_cache.delete_account(id).await?;
    if let Some(fleet) = &state.fleet {
        match fleet.remove(id).await {
            Ok(()) | Err(tgfleet_supervision::FleetError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(account_id = id, error = %e, "stopping a deleted account's actor")
            }
        }
    }
    let what = if log_out {
        "account logged out of Telegram, deleted and its session erased"
    } else {
        "account deleted and its session erased"
    };
    Audit::info("account_deleted", what)
        .user(user_id)
        .account(id)
        .record(&state)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditAccount {
    /// Receive Telegram's updates into the event log (default: bots yes, user accounts no).
    pub receive_updates: Option<bool>,
    /// Change some fields of the device identity; the others stay.
    pub device: Option<DeviceEdit>,
    /// Bind the account to one of the caller's proxies, or unbind it with `null` (it then
    /// connects directly). A connected account reconnects through the new route at once.
    #[serde(default, with = "crate::extract::double_option")]
    #[schema(value_type = Option<i64>)]
    pub proxy_id: Option<Option<tgfleet_persistence::ProxyId>>,
    /// Store the account's 2FA password (sealed, never shown again), so a re-login answers the
    /// password step by itself; `null` forgets it. 1 to 1024 bytes.
    #[serde(default, with = "crate::extract::double_option")]
    #[schema(value_type = Option<String>, example = "correct horse battery staple")]
    pub two_fa_password: Option<Option<tgfleet_supervision::account::TwoFaPassword>>,
}

/// Fields of a device identity to change. Texts: 1 to 64 characters after trimming, no control
/// characters. Language codes: BCP 47 style, `en`, `en-US`, `pt-br`, `zh-Hans-CN`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceEdit {
    #[schema(example = "Google Pixel 8 Pro")]
    pub device_model: Option<String>,
    #[schema(example = "SDK 34")]
    pub system_version: Option<String>,
    #[schema(example = "11.1.3")]
    pub app_version: Option<String>,
    #[schema(example = "de-DE")]
    pub system_lang_code: Option<String>,
    #[schema(example = "de")]
    pub lang_code: Option<String>,
}

impl DeviceEdit {
    /// The change, every field checked; 422 `VALIDATION_FAILED` naming each bad field
    /// (`device.lang_code`) otherwise.
    pub fn checked(self) -> Result<DevicePatch, ApiError> {
        DevicePatch {
            device_model: self.device_model,
            system_version: self.system_version,
            app_version: self.app_version,
            system_lang_code: self.system_lang_code,
            lang_code: self.lang_code,
        }
        .checked()
        .map_err(|errors| {
            ApiError::Validation(
                errors
                    .into_iter()
                    .map(|e| crate::error::FieldError {
                        field: device_field(e.field),
                        message: e.message,
                    })
                    .collect(),
            )
        })
    }
}

/// The request's name of a device field, as error answers show it.
fn device_field(field: &str) -> &'static str {
    match field {
        "device_model" => "device.device_model",
        "system_version" => "device.system_version",
        "app_version" => "device.app_version",
        "system_lang_code" => "device.system_lang_code",
        "lang_code" => "device.lang_code",
        _ => "device",
    }
}

/// Account settings. A new `device` is what every later connection of the account sends
/// Telegram; an account connected now is reconnected with it at once (a restart in place:
/// session and pending login kept), so the answer is what Telegram sees from here on. One with no
/// live actor (new, hibernated, quarantined, stopped) uses it when it next connects.
#[utoipa::path(patch, path = "/api/v1/telegram/accounts/{id}", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")), request_body = EditAccount,
    responses((status = 200, body = AccountView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody),
              (status = 422, description = "VALIDATION_FAILED (a device field, named in `fields` as `device.<field>`), INVALID_BODY", body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<EditAccount>,
) -> Result<Json<AccountView>, ApiError> {
    let before = check_account_access(&state, &user, id).await?;
    // Checked before anything is written: a refused request changes nothing.
    let patch = req
        .device
        .map(DeviceEdit::checked)
        .transpose()?
        .filter(|p| p.applied_to(&before.device) != before.device);
    let proxy_id = req.proxy_id.filter(|p| *p != before.proxy_id);
    if let Some(Some(proxy_id)) = proxy_id {
        check_bindable_proxy(&state, &user, proxy_id, before.owner_id).await?;
    }
    let two_fa_sealed = match req.two_fa_password {
        None => None,
        // Written even when the row read above had none: a password stored since then goes too.
        Some(None) => Some(None),
        Some(Some(password)) => Some(Some(
            state
                .cipher
                .seal_two_fa_password(id, password.expose())
                .await
                .map_err(|e| ApiError::sealing_failed("the 2FA password", e))?,
        )),
    };
    // Only the fields the request names are written, so a concurrent edit of other fields
    // stands; the identity shown and audited is the row's after the write.
    let update = tgfleet_persistence::AccountUpdate {
        receive_updates: req.receive_updates,
        device: patch.clone().map(Box::new),
        proxy_id,
        two_fa_sealed,
        ..Default::default()
    };
    if update == tgfleet_persistence::AccountUpdate::default() {
        return Ok(Json(before.into()));
    }
    // A client that hangs up must not leave the row changed and its actor on the old settings:
    // the write and the restart run in their own task, which this request only waits for.
    let task = tokio::spawn(apply_edit(
        state,
        user.id,
        id,
        before,
        update,
        patch.is_some(),
    ));
    let after = task
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("editing account {id}: {e}")))??;
    Ok(Json(after.into()))
}

/// Writes an account edit, records it and restarts the actor where the change needs a new
/// client.
pub(crate) async fn apply_edit(
    state: AppState,
    user_id: i64,
    id: AccountId,
    before: Account,
    update: tgfleet_persistence::AccountUpdate,
    device_changed: bool,
) -> Result<Account, ApiError> {
    let proxy_changed = update.proxy_id;
    let two_fa_changed = update.two_fa_sealed.as_ref().map(Option::is_some);
    let after = match state.store.update_account(id, update).await {
        Ok(after) => after,
        Err(e) => {
            return Err(match proxy_changed {
                Some(Some(proxy_id)) => proxy_bind_error(e, proxy_id),
                _ => e.into(),
            })
        }
    };
    if let Some(proxy_id) = proxy_changed {
        Audit::info(
            "account_proxy_changed",
            "proxy binding changed; the account's next connection uses it",
        )
        .user(user_id)
        .account(id)
        .details(serde_json::json!({ "proxy_id": proxy_id }))
        .record(&state)
        .await;
    }
    if let Some(stored) = two_fa_changed {
        // Read at the next password step; the running actor needs nothing.
        let (event, what) = if stored {
            (
                "account_two_fa_password_stored",
                "2FA password stored (sealed)",
            )
        } else {
            (
                "account_two_fa_password_forgotten",
                "stored 2FA password forgotten",
            )
        };
        Audit::info(event, what)
            .user(user_id)
            .account(id)
            .record(&state)
            .await;
    }
    // Recorded once written, whatever the reconnect below does: the row is what counts.
    let device = device_changed.then(|| after.device.clone());
    if let Some(device) = &device {
        Audit::info(
            "account_device_changed",
            "device identity changed; the account's next connection uses it",
        )
        .user(user_id)
        .account(id)
        .details(serde_json::json!({ "device": DeviceView::from(device.clone()) }))
        .record(&state)
        .await;
    }
    if after.receives() != before.receives() {
        // The actor reads its row when it starts: a restart in place (session and login kept)
        // connects it again, receiving or not; one that receives catches up on what it missed.
        fleet(&state)?.restart(id).await?;
    } else if device.is_some() || proxy_changed.is_some() {
        // grammers takes the identity and the proxy when a client is built, so only a new client sends the
        // new one: restart a running actor now, rather than leave its live connections (and
        // the reconnects of its current client) on the old identity. An account without an
        // actor is not started for this (nor lifted out of a quarantine): it reads its row
        // when it next starts.
        if let Some(fleet) = state.fleet.as_ref().filter(|f| f.actor_id(id).is_some()) {
            // The change is written and stands whatever happens here; an actor that could not
            // be restarted now takes it at its next start.
            if let Err(e) = fleet.restart(id).await {
                tracing::warn!(account_id = id, error = %e, "device identity or proxy changed; restarting the account to use it failed");
                if proxy_changed.is_some() {
                    // Left running, the actor would keep its old route (perhaps no proxy at
                    // all) while the row says otherwise: stopped, it reads the row when it
                    // next starts.
                    fleet.stop(id).await?;
                }
            }
        }
    }
    Ok(state.store.account(id).await?)
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/restart", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, body = AccountView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn restart(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<AccountView>, ApiError> {
    check_account_access(&state, &user, id).await?;
    fleet(&state)?.restart(id).await?;
    Audit::info(
        "account_restarted",
        "operator restarted the account in place",
    )
    .user(user.id)
    .account(id)
    .record(&state)
    .await;
    Ok(Json(state.store.account(id).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/logout", tag = "accounts", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id")),
    responses((status = 200, body = AccountView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<AccountView>, ApiError> {
    check_account_access(&state, &user, id).await?;
    fleet(&state)?.call(id, LogOut).await?;
    Audit::info(
        "account_logged_out",
        "logged out of Telegram; session wiped",
    )
    .user(user.id)
    .account(id)
    .record(&state)
    .await;
    Ok(Json(state.store.account(id).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_tokens_must_look_like_botfathers() {
        assert!(bot_token_is_wellformed(
            "123456:AAE-abcdefghijklmnopqrstu_vwxyz0123"
        ));
        for bad in [
            "",
            "123456",
            ":abc",
            "12a:AAEabcdefghijklmnopqrstuvwxyz",
            "1:short",
        ] {
            assert!(!bot_token_is_wellformed(bad), "{bad}");
        }
    }
}
