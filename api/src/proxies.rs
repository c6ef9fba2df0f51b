//! The proxy pool: SOCKS5 proxies an account's connections go through. A proxy's URL is sealed
//! at rest and never returned (nor logged: `ProxyUrl` shows only its endpoint); someone else's
//! proxy answers 404 like a missing one. Binding an account to a proxy is the account's `PATCH`
//! (or its creation) with `proxy_id`.

use crate::audit::Audit;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{
    NewProxy, Proxy, ProxyHealth, ProxyId, ProxyState, ProxyUrl, StoreError, UserId,
};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProxyView {
    pub id: ProxyId,
    pub label: Option<String>,
    /// `unchecked`, `ok` (its last check reached the Telegram DC) or `unreachable`.
    #[schema(value_type = String, example = "ok")]
    pub state: ProxyState,
    /// How long the last check took to reach the DC through it.
    pub latency_ms: Option<i64>,
    /// Why the last check failed.
    pub last_error: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<Proxy> for ProxyView {
    fn from(p: Proxy) -> Self {
        Self {
            id: p.id,
            label: p.label,
            state: p.state,
            latency_ms: p.latency_ms,
            last_error: p.last_error,
            checked_at: p.checked_at,
            created_at: p.created_at,
        }
    }
}

// No `Debug`: the URL may carry a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProxy {
    /// `socks5://[user:password@]host:port`
    #[schema(example = "socks5://user:secret@203.0.113.7:1080")]
    pub url: String,
    pub label: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditProxy {
    /// `null` clears it.
    #[serde(default, with = "crate::extract::double_option")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeleteQuery {
    /// Unbind the accounts using it first: their running actors on this node are stopped, and
    /// started again (a call, a restart) they connect directly; without it, a proxy in use is not
    /// deleted (409 PROXY_IN_USE).
    #[serde(default)]
    pub unbind: bool,
}

fn check_label(v: &mut Validator, label: Option<&str>) {
    if let Some(label) = label {
        v.check(
            label.chars().count() <= 128,
            "label",
            "must be at most 128 characters",
        );
    }
}

/// The proxy, if the caller may see it; 404 PROXY_NOT_FOUND otherwise.
pub(crate) async fn check_proxy_access(
    state: &AppState,
    user: &AuthUser,
    id: ProxyId,
) -> Result<Proxy, ApiError> {
    match state.store.proxy(id).await {
        Ok(p) if user.is_admin() || p.owner_id == user.id => Ok(p),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFoundCode {
            code: "PROXY_NOT_FOUND",
            message: format!("no proxy {id}"),
        }),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/proxies", tag = "proxies", security(("bearer" = [])),
    request_body = CreateProxy,
    responses((status = 201, body = ProxyView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, description = "INVALID_PROXY_URL, VALIDATION_FAILED", body = crate::openapi::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<CreateProxy>,
) -> Result<(StatusCode, Json<ProxyView>), ApiError> {
    let url = req
        .url
        .parse::<ProxyUrl>()
        .map_err(|e| ApiError::Unprocessable {
            code: "INVALID_PROXY_URL",
            message: format!("url: {e}; expected socks5://[user:password@]host:port"),
        })?;
    let mut v = Validator::default();
    check_label(&mut v, req.label.as_deref());
    v.finish()?;
    let proxy = add(&state, user.id, req.label, &url).await?;
    Ok((StatusCode::CREATED, Json(proxy.into())))
}

/// Adds `url` to `owner`'s pool and checks it.
async fn add(
    state: &AppState,
    owner: UserId,
    label: Option<String>,
    url: &ProxyUrl,
) -> Result<Proxy, ApiError> {
    let proxy = add_unchecked(state, owner, label, url).await?;
    record_check(state, proxy.id, url).await
}

async fn add_unchecked(
    state: &AppState,
    owner: UserId,
    label: Option<String>,
    url: &ProxyUrl,
) -> Result<Proxy, ApiError> {
    let cipher = state.cipher.clone();
    let sealed_url = url.clone();
    let proxy = state
        .store
        .create_proxy(NewProxy {
            owner_id: owner,
            label,
            seal_url: Box::new(move |id| {
                Box::pin(async move { Ok(cipher.seal_proxy_url(id, &sealed_url).await?) })
            }),
        })
        .await?;
    Audit::info("proxy_created", "proxy added to the pool")
        .user(owner)
        .details(serde_json::json!({ "proxy_id": proxy.id }))
        .record(state)
        .await;
    Ok(proxy)
}

/// For each of `urls`, `owner`'s proxy with that URL, or one added to their pool for it: the
/// sessions of an import that came with the same proxy share one entry of the pool. The pool is
/// read, and its URLs opened, once for them all; `Err` only when it cannot be read, otherwise
/// one outcome per URL.
pub(crate) async fn find_or_add(
    state: &AppState,
    owner: UserId,
    urls: &[&ProxyUrl],
) -> Result<Vec<Result<ProxyId, ApiError>>, ApiError> {
    let (mut found, added) = {
        // Finding and adding one at a time in this process, so two imports bringing the same new
        // URL add it once (another node, or a POST /proxies at the same moment, may still add a
        // second); the checks of new ones run after, without holding up the others.
        static ADDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = ADDING.lock().await;
        let mut known = Vec::new();
        for proxy in state.store.list_proxies(Some(owner)).await? {
            let sealed = state.store.proxy_url(proxy.id).await?;
            match state.cipher.open_proxy_url(proxy.id, &sealed).await {
                Ok(url) => known.push((url, proxy.id)),
                // One that no longer opens (a URL this version refuses, a key problem) is none
                // of these; the periodic check reports it.
                Err(e) => tracing::warn!(proxy_id = proxy.id, error = %e, "proxy URL unreadable"),
            }
        }
        let (mut found, mut added) = (Vec::with_capacity(urls.len()), Vec::new());
        for &url in urls {
            if let Some((_, id)) = known.iter().find(|(k, _)| k == url) {
                found.push(Ok(*id));
                continue;
            }
            let label = format!("imported {}", url.endpoint())
                .chars()
                .take(128)
                .collect();
            let proxy = add_unchecked(state, owner, Some(label), url).await;
            if let Ok(proxy) = &proxy {
                known.push((url.clone(), proxy.id));
                added.push(found.len());
            }
            found.push(proxy.map(|p| p.id));
        }
        (found, added)
    };
    for i in added {
        if let Ok(id) = found[i] {
            if let Err(e) = record_check(state, id, urls[i]).await {
                found[i] = Err(e);
            }
        }
    }
    Ok(found)
}

/// Checks `url` (can it reach the Telegram DC, how fast) and writes what it found.
pub(crate) async fn record_check(
    state: &AppState,
    id: ProxyId,
    url: &ProxyUrl,
) -> Result<Proxy, ApiError> {
    let Some(fleet) = state.fleet.as_ref() else {
        // No Telegram configured: nothing to check against; the proxy stays unchecked.
        return Ok(state.store.proxy(id).await?);
    };
    let health = match fleet.check_proxy(url).await {
        Ok(latency) => ProxyHealth {
            state: ProxyState::Ok,
            latency_ms: Some(i64::try_from(latency.as_millis()).unwrap_or(i64::MAX)),
            error: None,
            checked_at: Utc::now(),
        },
        Err(why) => ProxyHealth {
            state: ProxyState::Unreachable,
            latency_ms: None,
            error: Some(why),
            checked_at: Utc::now(),
        },
    };
    Ok(state.store.update_proxy(id, None, Some(health)).await?)
}

#[utoipa::path(get, path = "/api/v1/proxies", tag = "proxies", security(("bearer" = [])),
    responses((status = 200, body = Vec<ProxyView>), (status = 401, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<ProxyView>>, ApiError> {
    let owner = (!user.is_admin()).then_some(user.id);
    let proxies = state.store.list_proxies(owner).await?;
    Ok(Json(proxies.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/v1/proxies/{id}", tag = "proxies", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proxy id")),
    responses((status = 200, body = ProxyView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, description = "PROXY_NOT_FOUND", body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<ProxyId>,
) -> Result<Json<ProxyView>, ApiError> {
    Ok(Json(check_proxy_access(&state, &user, id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/proxies/{id}", tag = "proxies", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proxy id")), request_body = EditProxy,
    responses((status = 200, body = ProxyView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, description = "PROXY_NOT_FOUND", body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn edit(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<ProxyId>,
    ApiJson(req): ApiJson<EditProxy>,
) -> Result<Json<ProxyView>, ApiError> {
    let before = check_proxy_access(&state, &user, id).await?;
    let mut v = Validator::default();
    check_label(&mut v, req.label.as_ref().and_then(|l| l.as_deref()));
    v.finish()?;
    if req.label.is_none() {
        return Ok(Json(before.into()));
    }
    Ok(Json(
        state.store.update_proxy(id, req.label, None).await?.into(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/proxies/{id}", tag = "proxies", security(("bearer" = [])),
    params(("id" = i64, Path, description = "proxy id"), DeleteQuery),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, description = "PROXY_NOT_FOUND", body = crate::openapi::ErrorBody),
              (status = 409, description = "PROXY_IN_USE", body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<ProxyId>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    check_proxy_access(&state, &user, id).await?;
    let unbound = match state.store.delete_proxy(id, q.unbind).await {
        Ok(unbound) => unbound,
        Err(StoreError::Conflict(what)) => {
            return Err(ApiError::Conflict {
                code: "PROXY_IN_USE",
                message: format!("{what}; bind them elsewhere, or delete with ?unbind=true"),
            })
        }
        Err(StoreError::NotFound) => {
            return Err(ApiError::NotFoundCode {
                code: "PROXY_NOT_FOUND",
                message: format!("no proxy {id}"),
            })
        }
        Err(e) => return Err(e.into()),
    };
    // An unbound account's actor still holds the proxy's URL and keeps using it until it
    // restarts; restarting it now would make it connect directly, which its owner did not ask
    // for in so many words: it is stopped instead, and connects directly only once started.
    if let Some(fleet) = state.fleet.as_ref() {
        for account_id in &unbound {
            if fleet.actor_id(*account_id).is_some() {
                if let Err(e) = fleet.stop(*account_id).await {
                    tracing::warn!(account_id, error = %e, "proxy deleted; stopping its account failed");
                }
            }
        }
    }
    Audit::info("proxy_deleted", "proxy removed from the pool")
        .user(user.id)
        .details(serde_json::json!({ "proxy_id": id, "unbound_accounts": unbound }))
        .record(&state)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// How often every proxy of the pool is checked. A dead proxy's accounts find out at their next
/// call anyway; the check makes the idle ones (and the pool's `state`) find out too.
pub const CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Proxies checked at once: a check of a black-holed proxy waits out its whole timeout.
const CHECKS_AT_ONCE: usize = 16;

/// Checks the pool every [`CHECK_INTERVAL`] until `stop`.
pub async fn run_checks(state: AppState, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: a restarted server knows its proxies' state at once.
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = check_all(&state) => {}
        }
    }
}

/// One round: every proxy is checked and its state written; the running accounts of one found
/// unreachable check their own connection at once, so they leave `active` for `reconnecting`
/// (cause `proxy_unreachable`) now rather than at their next call. Failures are logged and
/// retried next round.
pub async fn check_all(state: &AppState) {
    use futures::StreamExt as _;
    let proxies = match state.store.list_proxies(None).await {
        Ok(proxies) => proxies,
        Err(e) => {
            tracing::warn!(error = %e, "listing proxies to check");
            return;
        }
    };
    futures::stream::iter(proxies)
        .for_each_concurrent(CHECKS_AT_ONCE, |proxy| async move {
            if let Err(e) = check_one(state, proxy.id).await {
                tracing::warn!(proxy_id = proxy.id, error = %e, "checking a proxy");
            }
        })
        .await;
}

async fn check_one(state: &AppState, id: ProxyId) -> Result<(), ApiError> {
    let sealed = state.store.proxy_url(id).await?;
    let url = state
        .cipher
        .open_proxy_url(id, &sealed)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("opening proxy {id}'s URL: {e}")))?;
    let checked = record_check(state, id, &url).await?;
    if checked.state != ProxyState::Unreachable {
        return Ok(());
    }
    let Some(fleet) = state.fleet.as_ref() else {
        return Ok(());
    };
    // Only accounts with an actor: one that is not running is not connected, and starting it
    // to find out would be a connection attempt of its own. At once, not one after another: each
    // check may take a call timeout, and the next round of every proxy waits for this one.
    let running: Vec<_> = state
        .store
        .accounts_on_proxy(id)
        .await?
        .into_iter()
        .filter(|a| fleet.actor_id(*a).is_some())
        .collect();
    futures::future::join_all(running.into_iter().map(|account_id| async move {
        let _ = fleet
            .call(account_id, tgfleet_supervision::account::CheckConnection)
            .await;
    }))
    .await;
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignProxies {
    /// The caller's accounts to bind, at most 10,000.
    pub account_ids: Vec<tgfleet_persistence::AccountId>,
    /// The caller's proxies to spread them over, in this order: account i gets proxy
    /// i mod len.
    pub proxy_ids: Vec<ProxyId>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub account_id: tgfleet_persistence::AccountId,
    pub proxy_id: ProxyId,
}

/// Accounts one bulk assignment binds at most: each is a write and maybe a restart.
const MAX_ASSIGN: usize = 10_000;

/// Spreads accounts over proxies evenly (round robin, in the order given): each account is
/// bound as its own `PATCH` would bind it (a connected one reconnects through its new proxy at
/// once). Every id is checked before anything is written, so a refused request changes nothing.
#[utoipa::path(post, path = "/api/v1/proxies/assign", tag = "proxies", security(("bearer" = [])),
    request_body = AssignProxies,
    responses((status = 200, body = Vec<Assignment>), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, description = "an account is not the caller's", body = crate::openapi::ErrorBody),
              (status = 422, description = "PROXY_NOT_FOUND, VALIDATION_FAILED", body = crate::openapi::ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(req): ApiJson<AssignProxies>,
) -> Result<Json<Vec<Assignment>>, ApiError> {
    let mut v = Validator::default();
    v.check(
        !req.proxy_ids.is_empty(),
        "proxy_ids",
        "name at least one proxy",
    );
    v.check(
        !req.account_ids.is_empty() && req.account_ids.len() <= MAX_ASSIGN,
        "account_ids",
        "name 1 to 10000 accounts",
    );
    let mut seen = std::collections::HashSet::new();
    v.check(
        req.account_ids.iter().all(|id| seen.insert(*id)),
        "account_ids",
        "an account may be named once",
    );
    v.finish()?;
    // The caller's own proxies first: someone else's is 422 before any account is looked at.
    if !user.is_admin() {
        for proxy_id in &req.proxy_ids {
            crate::accounts::check_bindable_proxy(&state, &user, *proxy_id, user.id).await?;
        }
    }
    let mut accounts = Vec::with_capacity(req.account_ids.len());
    for id in &req.account_ids {
        accounts.push(crate::logs::check_account_access(&state, &user, *id).await?);
    }
    let owners: std::collections::BTreeSet<_> = accounts.iter().map(|a| a.owner_id).collect();
    for proxy_id in &req.proxy_ids {
        for owner in &owners {
            crate::accounts::check_bindable_proxy(&state, &user, *proxy_id, *owner).await?;
        }
    }
    // In a task of its own, like one PATCH: a client that hangs up leaves no account bound and
    // its actor on the old route.
    let user_id = user.id;
    let proxy_ids = req.proxy_ids;
    let task = tokio::spawn(async move {
        let mut assigned = Vec::with_capacity(accounts.len());
        for (i, before) in accounts.into_iter().enumerate() {
            let proxy_id = proxy_ids[i % proxy_ids.len()];
            let id = before.id;
            if before.proxy_id != Some(proxy_id) {
                let update = tgfleet_persistence::AccountUpdate {
                    proxy_id: Some(Some(proxy_id)),
                    ..Default::default()
                };
                crate::accounts::apply_edit(state.clone(), user_id, id, before, update, false)
                    .await?;
            }
            assigned.push(Assignment {
                account_id: id,
                proxy_id,
            });
        }
        Ok::<_, ApiError>(assigned)
    });
    let assigned = task
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("assigning proxies: {e}")))??;
    Ok(Json(assigned))
}
