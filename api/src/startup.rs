//! Turns settings into running parts: the store (migrated), the session cipher, metrics.
//! Each failure is one line naming what is wrong; nothing half-started survives it.

use crate::auth::JwtKeys;
use crate::metrics::{register_process_metrics, HttpMetrics};
use crate::ratelimit::RateLimits;
use crate::state::AppState;
use std::sync::Arc;
use std::time::Instant;
use tgfleet_config::{SecretsBackend, Settings};
use tgfleet_persistence::cipher::VaultParams;
use tgfleet_persistence::SessionCipher;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data directory {path}: {cause}")]
    DataDir { path: String, cause: String },
    #[error("database {url}: {cause}")]
    Database { url: String, cause: String },
    #[error("session key: {0}")]
    SessionKey(String),
    #[error("vault: {0}")]
    Vault(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("JWT secret: {0}")]
    JwtSecret(String),
}

/// `auth.jwt_secret` when set; otherwise a random secret generated once and kept in the data dir
/// (mode 0600), so tokens survive a restart of a local install.
fn jwt_secret(settings: &Settings) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &settings.auth.jwt_secret {
        return Ok(secret.expose().as_bytes().to_vec());
    }
    let path = settings.jwt_secret_path();
    crate::secret_file::load_or_create(&path, 64)
}

fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    std::fs::create_dir_all(&settings.data_dir).map_err(|e| StartupError::DataDir {
        path: settings.data_dir.display().to_string(),
        cause: e.to_string(),
    })?;

    let db_url = settings.database_url();
    let store = tgfleet_persistence::connect(db_url.expose())
        .await
        .map_err(|e| StartupError::Database {
            url: db_url.redacted(),
            cause: one_line(&e),
        })?;

    let cipher = match settings.secrets.backend {
        SecretsBackend::Local => SessionCipher::local(&settings.session_key_path())
            .map_err(|e| StartupError::SessionKey(e.to_string()))?,
        SecretsBackend::Vault => {
            let params = VaultParams {
                addr: settings.vault.addr.clone().unwrap_or_default(),
                token: settings
                    .vault
                    .token
                    .as_ref()
                    .map(|t| t.expose().to_owned())
                    .unwrap_or_default(),
                mount: settings.vault.transit_mount.clone(),
                transit_key: settings.vault.transit_key.clone(),
            };
            SessionCipher::vault(params)
                .await
                .map_err(|e| StartupError::Vault(e.to_string()))?
        }
    };

    let registry = prometheus::Registry::new();
    register_process_metrics(&registry).map_err(|e| StartupError::Metrics(one_line(&e)))?;
    let http_metrics =
        HttpMetrics::register(&registry).map_err(|e| StartupError::Metrics(one_line(&e)))?;

    let jwt_secret = jwt_secret(&settings).map_err(|e| StartupError::JwtSecret(one_line(&e)))?;
    let jwt = JwtKeys::new(
        &jwt_secret,
        settings.auth.access_ttl_s,
        settings.auth.refresh_ttl_s,
    );
    let limits = RateLimits::new(
        settings.auth.auth_rate_per_minute,
        settings.auth.user_rate_per_second,
    );

    Ok(AppState {
        settings: Arc::new(settings),
        store,
        cipher,
        jwt,
        limits,
        registry,
        http_metrics,
        started_at: Instant::now(),
    })
}
