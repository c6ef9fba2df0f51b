//! argon2id hashing, always off the async runtime: one hash costs tens of milliseconds of CPU and
//! would otherwise stall every other request on that worker.

use crate::error::ApiError;
use anyhow::Context;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// OWASP's argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes at once are bounded by the cores: each takes 19 MiB and a core for tens of ms, so a
/// login flood from many addresses (the rate limit is per address) would otherwise start hundreds
/// of blocking threads and gigabytes of memory. Past the bound, callers queue briefly, then get 503.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Semaphore::new(cores.max(2))
    })
}

/// How long a request may queue for a hashing slot: a person notices 5 s; a flood gives up.
const SLOT_WAIT: Duration = Duration::from_secs(5);

async fn slot() -> Result<SemaphorePermit<'static>, ApiError> {
    match tokio::time::timeout(SLOT_WAIT, slots().acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Unavailable {
            code: "AUTH_BUSY",
            message: "too many logins at once; retry shortly".into(),
            retry_after_s: Some(1),
        }),
    }
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    let _slot = slot().await?;
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .context("password hashing task")
    .and_then(|r| r)
    .map_err(ApiError::Internal)
}

/// False for a wrong password and for a hash that does not parse (never a panic).
pub async fn verify(password: String, phc: String) -> Result<bool, ApiError> {
    let _slot = slot().await?;
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .context("password verification task")
    .map_err(ApiError::Internal)
}

/// A hash to verify against when the email is unknown, so a failed login takes as long either way
/// and does not reveal which emails exist. Computed once at start-up (`warm_up`), off the runtime.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(b"decoy password nobody has", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Computes the decoy hash on a blocking thread before the first login needs it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| {
        decoy_hash();
    })
    .await;
}
