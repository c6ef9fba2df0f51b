//! Turns settings into running parts: the store (migrated), the session cipher, secrets, metrics
//! and the fleet. Each failure is one line naming what is wrong; nothing half-started survives it.

use crate::auth::JwtKeys;
use crate::metrics::{register_process_metrics, HttpMetrics};
use crate::ratelimit::RateLimits;
use crate::state::{AppState, Sandbox};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tgfleet_config::{SecretsBackend, Settings};
use tgfleet_persistence::{
    AppRoleLogin, InstanceLock, LockError, MediaStorage, SessionCipher, Store, VaultParams,
    VaultSecrets,
};
use tgfleet_supervision::account::{AccountLimits, TelegramParams, TelegramTarget};
use tgfleet_supervision::{AccountSetup, Fleet, SupervisionSettings};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data directory {path}: {cause}")]
    DataDir { path: String, cause: String },
    /// `cause` names the (redacted) URL already.
    #[error("database: {cause}")]
    Database { cause: String },
    #[error("session key: {0}")]
    SessionKey(String),
    #[error("vault: {0}")]
    Vault(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("JWT secret: {0}")]
    JwtSecret(String),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("{0}")]
    Telegram(String),
    #[error("fleet: {0}")]
    Fleet(String),
    #[error("media storage: {0}")]
    Media(String),
    /// Another process holds the database's single-process lock.
    #[error("{0}")]
    AlreadyRunning(String),
}

fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// The sandbox's application credentials: testdc accepts any, these just make it obvious.
pub(crate) const SANDBOX_API_ID: i32 = 17349;
const SANDBOX_API_HASH: &str = "0000000000000000000000000000sbox";

pub async fn build_state(mut settings: Settings) -> Result<AppState, StartupError> {
    // `serve` checks this before anything starts; a caller that set `sandbox` itself (tests,
    // embedders) gets the same refusal here.
    settings
        .validate_telegram_target()
        .map_err(|e| StartupError::Telegram(e.to_string()))?;
    tgfleet_persistence::create_private_dir(&settings.data_dir).map_err(|e| {
        StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            cause: e.to_string(),
        }
    })?;

    let db_url = settings.database_url();
    // Before anything reads or writes a session: a second process must not get that far.
    let instance_lock = InstanceLock::acquire(db_url.expose())
        .await
        .map_err(|e| match e {
            LockError::Held { .. } => StartupError::AlreadyRunning(e.to_string()),
            LockError::Other(cause) => StartupError::Database { cause },
        })?;
    let store = tgfleet_persistence::connect(db_url.expose())
        .await
        .map_err(|e| StartupError::Database {
            cause: one_line(&e),
        })?;

    let cipher = match settings.secrets.backend {
        SecretsBackend::Local => {
            let key_path = settings.session_key_path();
            let rotation = tgfleet_persistence::sealed::KeyFiles::beside(&key_path);
            if let Some(file) = rotation.unfinished() {
                // Some sessions are sealed with the new key and some with the old; this process
                // would open only some of them. Running the rotation again finishes it.
                return Err(StartupError::SessionKey(format!(
                    "a key rotation is unfinished ({} exists): run `tgfleet keys rotate` again \
                     to finish it, then start the server",
                    file.display()
                )));
            }
            if !key_path.exists() {
                // A new key would open none of the sessions sealed with the lost one, and every
                // account would fail later, one by one; say it once, now.
                let sealed = store
                    .count_sessions()
                    .await
                    .map_err(|e| StartupError::Database {
                        cause: e.to_string(),
                    })?;
                if sealed > 0 {
                    return Err(StartupError::SessionKey(format!(
                        "{} is missing, but the database holds {sealed} sessions sealed with it; \
                         restore the key from your backup (a new key would open none of them)",
                        key_path.display()
                    )));
                }
            }
            SessionCipher::local(key_path).map_err(|e| StartupError::SessionKey(one_line(&e)))?
        }
        SecretsBackend::Vault => {
            let (params, approle) = vault_params(&settings).await?;
            // Secrets not given in the config come from the KV v2 path.
            let secrets =
                VaultSecrets::read(&params, &settings.vault.kv_mount, &settings.vault.kv_path)
                    .await
                    .map_err(|e| StartupError::Vault(e.to_string()))?;
            if settings.auth.jwt_secret.is_none() {
                // The same bound as a configured secret: Vault is where a production secret
                // lives, so it must not be the one place a short one slips through.
                if let Some(secret) = &secrets.jwt_secret {
                    tgfleet_config::AuthSettings::check_jwt_secret(secret.expose()).map_err(
                        |why| {
                            StartupError::JwtSecret(format!(
                                "jwt_secret in Vault KV {}/{} {why}",
                                settings.vault.kv_mount, settings.vault.kv_path
                            ))
                        },
                    )?;
                }
                settings.auth.jwt_secret = secrets.jwt_secret;
            }
            // A fake Telegram never gets the real credentials, even from Vault.
            let fake = settings.sandbox || settings.telegram.testdc_control.is_some();
            if settings.telegram.api_hash.is_none() && !fake {
                settings.telegram.api_hash = secrets.api_hash;
            }
            vault_cipher(params, approle).await?
        }
    };

    let registry = prometheus::Registry::new();
    register_process_metrics(&registry).map_err(|e| StartupError::Metrics(one_line(&e)))?;
    crate::auth::password::register_metrics(&registry)
        .map_err(|e| StartupError::Metrics(one_line(&e)))?;
    let http_metrics =
        HttpMetrics::register(&registry).map_err(|e| StartupError::Metrics(one_line(&e)))?;
    let event_metrics = crate::events::metrics::EventMetrics::register(&registry)
        .map_err(|e| StartupError::Metrics(one_line(&e)))?;
    if let Some(store_metrics) = store.metrics() {
        store_metrics
            .register(&registry)
            .map_err(|e| StartupError::Metrics(one_line(&e.into())))?;
    }

    let jwt_secret = jwt_secret(&settings).map_err(|e| StartupError::JwtSecret(one_line(&e)))?;
    let jwt = JwtKeys::new(
        &jwt_secret,
        settings.auth.access_ttl_s,
        settings.auth.refresh_ttl_s,
    );
    let limits = RateLimits::new(
        settings.auth.auth_rate_per_minute,
        settings.auth.user_rate_per_second,
        settings.import.items_per_minute_per_user,
    );

    let media =
        MediaStorage::from_settings(&settings).map_err(|e| StartupError::Media(one_line(&e)))?;
    crate::auth::password::warm_up().await;
    let (telegram, sandbox) = telegram_target(&settings).await?;
    let fleet = match &telegram {
        Some(telegram) => Some(
            start_fleet(
                &settings,
                media.clone(),
                store.clone(),
                cipher.clone(),
                telegram.clone(),
                &registry,
            )
            .await
            .map_err(|e| StartupError::Fleet(one_line(&e)))?,
        ),
        None => {
            tracing::warn!(
                "telegram.api_id / telegram.api_hash are not set: account routes answer 503 \
                 TELEGRAM_NOT_CONFIGURED (try `serve --sandbox`)"
            );
            None
        }
    };

    let import_probes = Arc::new(tokio::sync::Semaphore::new(
        settings.import.max_concurrent_probes,
    ));
    let auth_cache = crate::auth::cache::AuthCache::new(
        Arc::clone(&store),
        std::time::Duration::from_secs(settings.auth.access_ttl_s),
    );
    Ok(AppState {
        settings: Arc::new(settings),
        store,
        cipher,
        jwt,
        limits,
        fleet,
        sandbox,
        media,
        posts_due: Arc::default(),
        metrics_registry: registry,
        http_metrics,
        event_metrics,
        started_at: Instant::now(),
        instance_lock: Arc::new(instance_lock),
        import_probes,
        account_creation: Arc::default(),
        auth_cache: Arc::new(auth_cache),
    })
}

/// Vault's address, transit key and a token: the configured one, or one from an AppRole login,
/// which is returned too so that the cipher can log in again (`vault_cipher`).
pub async fn vault_params(
    settings: &Settings,
) -> Result<(VaultParams, Option<AppRoleLogin>), StartupError> {
    let addr = settings.vault.addr.clone().unwrap_or_default();
    let mut approle = None;
    let token = match (&settings.vault.token, &settings.vault.role_id) {
        (Some(token), _) if !token.is_empty() => token.expose().to_owned(),
        (_, Some(role_id)) => {
            let given = settings
                .vault
                .secret_id
                .as_ref()
                .filter(|s| !s.expose().is_empty());
            let secret_id = match (given, &settings.vault.secret_id_file) {
                (Some(secret_id), _) => secret_id.clone(),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path).map_err(|e| {
                        StartupError::Vault(format!(
                            "reading vault.secret_id_file {}: {e}",
                            path.display()
                        ))
                    })?;
                    tgfleet_config::Secret::new(text.trim())
                }
                (None, None) => tgfleet_config::Secret::new(""),
            };
            let login = AppRoleLogin {
                mount: settings.vault.approle_mount.clone(),
                role_id: role_id.clone(),
                secret_id,
                secret_id_file: given
                    .is_none()
                    .then(|| settings.vault.secret_id_file.clone())
                    .flatten(),
            };
            let token = tgfleet_persistence::approle_login(&addr, &login)
                .await
                .map_err(|e| StartupError::Vault(e.to_string()))?;
            approle = Some(login);
            token.expose().to_owned()
        }
        _ => String::new(),
    };
    let params = VaultParams {
        addr,
        token,
        mount: settings.vault.transit_mount.clone(),
        transit_key: settings.vault.transit_key.clone(),
    };
    Ok((params, approle))
}

/// The Vault cipher for `vault_params`' answer.
pub async fn vault_cipher(
    params: VaultParams,
    approle: Option<AppRoleLogin>,
) -> Result<SessionCipher, StartupError> {
    match approle {
        Some(login) => SessionCipher::vault_approle(params, login).await,
        None => SessionCipher::vault(params).await,
    }
    .map_err(|e| StartupError::Vault(e.to_string()))
}

/// Real Telegram when credentials are configured, the in-process testdc under `--sandbox`, a
/// standalone testdc with `telegram.testdc_control`, nothing otherwise.
async fn telegram_target(
    settings: &Settings,
) -> Result<(Option<TelegramParams>, Option<Sandbox>), StartupError> {
    if settings.sandbox {
        let (params, dc) = sandbox_target(settings).await?;
        return Ok((Some(params), Some(dc)));
    }
    if let Some(url) = &settings.telegram.testdc_control {
        let target = crate::testdc_remote::target(url)
            .await
            .map_err(StartupError::Sandbox)?;
        tracing::info!(control = %url, ?target, "a standalone testdc stands in for Telegram");
        let params = TelegramParams {
            api_id: SANDBOX_API_ID,
            api_hash: SANDBOX_API_HASH.into(),
            target,
        };
        return Ok((Some(params), None));
    }
    match (
        settings.telegram.api_id,
        settings.telegram.api_hash.as_ref(),
    ) {
        (Some(api_id), Some(hash)) => Ok((
            Some(TelegramParams {
                api_id,
                api_hash: hash.expose().to_owned(),
                target: TelegramTarget::Production,
            }),
            None,
        )),
        _ => Ok((None, None)),
    }
}

/// The in-process testdc, its world kept in `data_dir/sandbox`.
#[cfg(feature = "sandbox")]
async fn sandbox_target(settings: &Settings) -> Result<(TelegramParams, Sandbox), StartupError> {
    use tgfleet_testdc::{TestDc, TestDcConfig};
    let dc = TestDc::start(TestDcConfig {
        sandbox_directory: true,
        // Sessions keep the DC addresses and keys they were given: the sandbox must come back
        // with them after a restart, or every account reconnects for ever.
        state_dir: Some(settings.data_dir.join("sandbox")),
        ..TestDcConfig::default()
    })
    .await
    .map_err(|e| StartupError::Sandbox(one_line(&e)))?;
    let registrar = dc.clone();
    let params = TelegramParams {
        api_id: SANDBOX_API_ID,
        api_hash: SANDBOX_API_HASH.into(),
        target: TelegramTarget::TestDc {
            dcs: dc.dc_addrs(),
            register_key: Arc::new(move |key| registrar.register_auth_key(key)),
        },
    };
    tracing::info!(dcs = ?dc.dc_addrs(), "sandbox: in-process testdc stands in for Telegram");
    Ok((params, dc))
}

#[cfg(not(feature = "sandbox"))]
async fn sandbox_target(_: &Settings) -> Result<(TelegramParams, Sandbox), StartupError> {
    Err(StartupError::Sandbox(
        "this build has no sandbox (it was built without the `sandbox` cargo feature); \
         configure telegram.api_id and telegram.api_hash, or use a build with the feature"
            .into(),
    ))
}

async fn start_fleet(
    settings: &Settings,
    media: MediaStorage,
    store: Arc<dyn Store>,
    cipher: SessionCipher,
    telegram: TelegramParams,
    registry: &prometheus::Registry,
) -> anyhow::Result<Fleet> {
    let f = &settings.fleet;
    let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    let limits = AccountLimits {
        call_timeout: Duration::from_secs(f.call_timeout_s),
        flood_wait_threshold: Duration::from_secs(f.flood_wait_threshold_s.into()),
        pacing: governor::Quota::per_second(nz(f.calls_per_second)).allow_burst(nz(f.calls_burst)),
        watchdog_period: Duration::from_secs(f.watchdog_period_s),
        hibernate_after: (f.hibernate_after_s > 0)
            .then(|| Duration::from_secs(f.hibernate_after_s)),
        ..AccountLimits::default()
    };
    let setup = AccountSetup {
        store,
        cipher,
        telegram,
        limits,
        media: Some(media),
    };
    let supervision = SupervisionSettings {
        shards: f.shards as usize,
        restart_max: f.restart_max,
        restart_window: Duration::from_secs(f.restart_window_s),
        start_rate: nz(f.starts_per_second),
        // A request may wait out one short flood wait and then make its call: the fleet's bound
        // must cover both, or it would answer "timeout" for a call that is about to succeed.
        call_timeout: Duration::from_secs(
            2 * f.call_timeout_s + u64::from(f.flood_wait_threshold_s) + 5,
        ),
        hibernation: f.hibernate_after_s > 0,
        ..SupervisionSettings::default()
    };
    Fleet::start_service(supervision, setup, registry).await
}

/// `auth.jwt_secret` (from the config or Vault KV) when set; otherwise a random secret generated
/// once and kept in the data dir (mode 0600), so tokens survive a restart of a local install.
fn jwt_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    crate::secret_file::load_or_create(&settings.jwt_secret_path(), 64)
}
