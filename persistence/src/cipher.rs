//! Sealing of account sessions (AEAD, account id bound as associated data).
//!
//! Every blob is XChaCha20-Poly1305 under a 256-bit key, with a versioned header:
//!
//! ```text
//! "TGS" | format 1 | scheme | scheme header | nonce (24) | ciphertext + tag (16)
//!   scheme 1 (local): no scheme header; the key is the local key file
//!   scheme 2 (vault): u16 BE length | wrapped data key ("vault:vN:…" from transit/datakey)
//! ```
//!
//! The associated data is a domain tag, the account id and the whole header, so a blob copied to
//! another account's row, or with any header byte changed, fails to open (`Tampered`). The tag
//! tells sessions from an account's own `api_hash` (`seal_api_hash`), sealed the same way.
//!
//! Vault uses envelope encryption rather than `transit/encrypt` per write: sessions are written on
//! every auth-key or update-state change, and a fleet start opens every session at once. Per-write
//! transit calls would put Vault's latency and availability on each of those paths (10k accounts
//! = 10k calls at start). With envelopes, one data key from `transit/datakey` seals many sessions;
//! opening needs one `transit/decrypt` per distinct wrapped key, cached by its bytes, so a cold
//! start costs a handful of calls and Vault can be briefly down without stopping session writes.
//! Rotation stays Vault's job: the wrapped key names the transit key version, so old blobs open
//! after `rotate`, `needs_rewrap` spots them, and the next `seal` uses a data key from the newest
//! version.

use anyhow::Context as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tgfleet_config::Secret;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use crate::model::AccountId;

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("session ciphertext does not open for this account")]
    Tampered,
    #[error("session ciphertext is malformed: {0}")]
    Malformed(String),
    #[error("secrets backend unavailable: {0}")]
    Unavailable(String),
}

const MAGIC: &[u8; 3] = b"TGS";
const FORMAT: u8 = 1;
const SCHEME_LOCAL: u8 = 1;
const SCHEME_VAULT: u8 = 2;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub(crate) const AAD_DOMAIN: &[u8] = b"tgfleet-session-v1";
pub(crate) const AAD_DOMAIN_API_HASH: &[u8] = b"tgfleet-api-hash-v1";
/// A proxy's URL, bound to the proxy's id (not an account's): its own domain keeps proxy 7's
/// URL from opening as account 7's session or api_hash.
pub(crate) const AAD_DOMAIN_PROXY_URL: &[u8] = b"tgfleet-proxy-url-v1";
/// An account's 2FA password, left with the fleet to answer SESSION_PASSWORD_NEEDED on a re-login.
pub(crate) const AAD_DOMAIN_TWO_FA: &[u8] = b"tgfleet-2fa-password-v1";

type Key = Zeroizing<[u8; 32]>;

/// Local key or Vault transit; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct SessionCipher {
    inner: Arc<Backend>,
}

enum Backend {
    Local(Key),
    Vault(Box<VaultEnvelope>),
}

impl std::fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Backend::Local(_) => f.write_str("SessionCipher(local)"),
            Backend::Vault(v) => write!(
                f,
                "SessionCipher(vault {} {}/{})",
                v.addr, v.mount, v.transit_key
            ),
        }
    }
}

impl SessionCipher {
    /// Loads the 256-bit key at `path`, creating it (mode 0600, parent directories included) when
    /// missing. Refuses a file that group or others may access, or one that is not 64 hex digits.
    pub fn local(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let key = local_key::load_or_create(path.as_ref())?;
        Ok(Self {
            inner: Arc::new(Backend::Local(key)),
        })
    }

    /// Connects to Vault's transit engine and fetches a first data key, which proves the address,
    /// token and key name before the service starts.
    pub async fn vault(params: VaultParams) -> Result<Self, CipherError> {
        let envelope = VaultEnvelope::connect(params, None).await?;
        Ok(Self {
            inner: Arc::new(Backend::Vault(Box::new(envelope))),
        })
    }

    /// As `vault`, with `params.token` from an AppRole `login` (`approle_login`): when that token
    /// can no longer be renewed (its role's `token_max_ttl` is near), the cipher logs in again.
    pub async fn vault_approle(
        params: VaultParams,
        login: AppRoleLogin,
    ) -> Result<Self, CipherError> {
        let envelope = VaultEnvelope::connect(params, Some(login)).await?;
        Ok(Self {
            inner: Arc::new(Backend::Vault(Box::new(envelope))),
        })
    }

    /// "local" or "vault", for health reports.
    pub fn describe(&self) -> &'static str {
        match &*self.inner {
            Backend::Local(_) => "local",
            Backend::Vault(_) => "vault",
        }
    }

    pub async fn seal(
        &self,
        account_id: AccountId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CipherError> {
        self.seal_in(AAD_DOMAIN, account_id, plaintext).await
    }

    pub async fn open(
        &self,
        account_id: AccountId,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        self.open_in(AAD_DOMAIN, account_id, sealed).await
    }

    /// Seals an account's own `api_hash` (an imported account's app). Same key and format as a
    /// session, but bound to another domain: the two blobs of one account cannot stand in for
    /// each other.
    pub async fn seal_api_hash(
        &self,
        account_id: AccountId,
        api_hash: &str,
    ) -> Result<Vec<u8>, CipherError> {
        self.seal_in(AAD_DOMAIN_API_HASH, account_id, api_hash.as_bytes())
            .await
    }

    pub async fn open_api_hash(
        &self,
        account_id: AccountId,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, CipherError> {
        self.open_text(AAD_DOMAIN_API_HASH, account_id, sealed, "api_hash")
            .await
    }

    /// Seals an account's two-step verification password, bound to the account like its
    /// session but in a domain of its own.
    pub async fn seal_two_fa_password(
        &self,
        account_id: AccountId,
        password: &str,
    ) -> Result<Vec<u8>, CipherError> {
        self.seal_in(AAD_DOMAIN_TWO_FA, account_id, password.as_bytes())
            .await
    }

    pub async fn open_two_fa_password(
        &self,
        account_id: AccountId,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, CipherError> {
        self.open_text(AAD_DOMAIN_TWO_FA, account_id, sealed, "2FA password")
            .await
    }

    async fn open_text(
        &self,
        domain: &[u8],
        account_id: AccountId,
        sealed: &[u8],
        what: &str,
    ) -> Result<Zeroizing<String>, CipherError> {
        let plain = self.open_in(domain, account_id, sealed).await?;
        std::str::from_utf8(&plain)
            .map(|s| Zeroizing::new(s.to_owned()))
            .map_err(|_| CipherError::Malformed(format!("the sealed {what} is not text")))
    }

    /// Seals a proxy's URL, credentials included, for the proxy `proxy_id`.
    pub async fn seal_proxy_url(
        &self,
        proxy_id: crate::ProxyId,
        url: &crate::ProxyUrl,
    ) -> Result<Vec<u8>, CipherError> {
        self.seal_in(AAD_DOMAIN_PROXY_URL, proxy_id, url.expose().as_bytes())
            .await
    }

    pub async fn open_proxy_url(
        &self,
        proxy_id: crate::ProxyId,
        sealed: &[u8],
    ) -> Result<crate::ProxyUrl, CipherError> {
        let plain = self.open_in(AAD_DOMAIN_PROXY_URL, proxy_id, sealed).await?;
        std::str::from_utf8(&plain)
            .ok()
            .and_then(|s| s.parse::<crate::ProxyUrl>().ok())
            .ok_or_else(|| CipherError::Malformed("the sealed proxy URL is not one".into()))
    }

    pub(crate) async fn seal_in(
        &self,
        domain: &[u8],
        account_id: AccountId,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CipherError> {
        match &*self.inner {
            Backend::Local(key) => Ok(seal_with(
                key,
                domain,
                account_id,
                header(SCHEME_LOCAL, &[]),
                plaintext,
            )),
            Backend::Vault(v) => {
                let dk = v.current_data_key().await?;
                Ok(seal_with(
                    &dk.key,
                    domain,
                    account_id,
                    header(SCHEME_VAULT, &dk.wrapped),
                    plaintext,
                ))
            }
        }
    }

    pub(crate) async fn open_in(
        &self,
        domain: &[u8],
        account_id: AccountId,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let blob = Blob::parse(sealed)?;
        match (&*self.inner, blob.scheme) {
            (Backend::Local(key), SCHEME_LOCAL) => open_with(key, domain, account_id, &blob),
            (Backend::Vault(v), SCHEME_VAULT) => {
                let key = v.unwrap_key(blob.wrapped).await?;
                open_with(&key, domain, account_id, &blob)
            }
            (backend, scheme) => Err(CipherError::Malformed(format!(
                "sealed by the {} backend, but this cipher is {}",
                scheme_name(scheme),
                match backend {
                    Backend::Local(_) => "local",
                    Backend::Vault(_) => "vault",
                }
            ))),
        }
    }

    /// True when the blob opens with this cipher but was wrapped by an older transit key version
    /// than the newest one this process knows: seal it again on the next write. Always false for
    /// the local key (it has one version) and for blobs this cipher cannot read at all.
    pub fn needs_rewrap(&self, sealed: &[u8]) -> bool {
        let Backend::Vault(v) = &*self.inner else {
            return false;
        };
        match Blob::parse(sealed) {
            Ok(blob) if blob.scheme == SCHEME_VAULT => wrapped_version(blob.wrapped)
                .is_some_and(|version| version < v.latest_version.load(Ordering::Relaxed)),
            _ => false,
        }
    }

    /// Vault: fetches a fresh data key now, so a rotation done by an operator is picked up at once
    /// instead of within `DATA_KEY_MAX_AGE`. Local: nothing to do.
    pub async fn refresh(&self) -> Result<(), CipherError> {
        match &*self.inner {
            Backend::Local(_) => Ok(()),
            Backend::Vault(v) => v.refresh().await.map(drop),
        }
    }

    /// Vault: reads the transit key's versions (a read; no data key is minted) and, when an
    /// operator has rotated it since, switches new seals to a data key of the newest version.
    /// Cheap enough for health checks and periodic maintenance. Local: nothing to do.
    pub async fn check(&self) -> Result<(), CipherError> {
        match &*self.inner {
            Backend::Local(_) => Ok(()),
            Backend::Vault(v) => v.check().await,
        }
    }

    /// Vault: the newest transit key version this process has seen (0 for the local key).
    pub fn key_version(&self) -> u64 {
        match &*self.inner {
            Backend::Local(_) => 0,
            Backend::Vault(v) => v.latest_version.load(Ordering::Relaxed),
        }
    }
}

fn scheme_name(scheme: u8) -> &'static str {
    match scheme {
        SCHEME_LOCAL => "local",
        SCHEME_VAULT => "vault",
        _ => "unknown",
    }
}

fn header(scheme: u8, wrapped: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(7 + wrapped.len());
    h.extend_from_slice(MAGIC);
    h.push(FORMAT);
    h.push(scheme);
    if scheme == SCHEME_VAULT {
        // Wrapped keys are ~90 bytes; `connect` refuses any that would not fit in u16.
        h.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
        h.extend_from_slice(wrapped);
    }
    h
}

fn aad(domain: &[u8], account_id: AccountId, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + 8 + header.len());
    aad.extend_from_slice(domain);
    aad.extend_from_slice(&account_id.to_be_bytes());
    aad.extend_from_slice(header);
    aad
}

fn seal_with(
    key: &Key,
    domain: &[u8],
    account_id: AccountId,
    header: Vec<u8>,
    plaintext: &[u8],
) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    // 192-bit random nonces: collisions are negligible however many sessions one key seals.
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(domain, account_id, &header);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        // Encryption fails only for messages beyond 256 GiB, which no session comes near.
        .unwrap_or_default();
    let mut out = header;
    out.reserve(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(
    key: &Key,
    domain: &[u8],
    account_id: AccountId,
    blob: &Blob<'_>,
) -> Result<Zeroizing<Vec<u8>>, CipherError> {
    let cipher = XChaCha20Poly1305::new(key.as_ref().into());
    let aad = aad(domain, account_id, blob.header);
    cipher
        .decrypt(
            XNonce::from_slice(blob.nonce),
            Payload {
                msg: blob.ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CipherError::Tampered)
}

/// A sealed blob split into its parts, borrowing from the input.
struct Blob<'a> {
    scheme: u8,
    header: &'a [u8],
    wrapped: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

impl<'a> Blob<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Self, CipherError> {
        let bad = |why: &str| CipherError::Malformed(why.to_owned());
        if sealed.len() < 5 || &sealed[..3] != MAGIC {
            return Err(bad("not a tgfleet session blob"));
        }
        if sealed[3] != FORMAT {
            return Err(CipherError::Malformed(format!(
                "format version {} is not supported (this build reads {FORMAT})",
                sealed[3]
            )));
        }
        let scheme = sealed[4];
        let (header_len, wrapped) = match scheme {
            SCHEME_LOCAL => (5, &sealed[5..5]),
            SCHEME_VAULT => {
                let len_bytes = sealed.get(5..7).ok_or_else(|| bad("truncated header"))?;
                let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
                let wrapped = sealed
                    .get(7..7 + len)
                    .ok_or_else(|| bad("truncated wrapped key"))?;
                (7 + len, wrapped)
            }
            other => return Err(CipherError::Malformed(format!("unknown scheme {other}"))),
        };
        if sealed.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(bad("truncated ciphertext"));
        }
        let (header, rest) = sealed.split_at(header_len);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        Ok(Self {
            scheme,
            header,
            wrapped,
            nonce,
            ciphertext,
        })
    }
}

/// The transit key version in a wrapped key (`vault:v3:…` → 3).
fn wrapped_version(wrapped: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(wrapped).ok()?;
    let rest = s.strip_prefix("vault:v")?;
    rest.split(':').next()?.parse().ok()
}

mod local_key {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    pub(super) fn load_or_create(path: &Path) -> anyhow::Result<Key> {
        match std::fs::metadata(path) {
            Ok(_) => load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
            Err(e) => {
                Err(e).with_context(|| format!("reading session key file {}", path.display()))
            }
        }
    }

    fn load(path: &Path) -> anyhow::Result<Key> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("reading session key file {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        anyhow::ensure!(
            mode & 0o077 == 0,
            "session key file {} has mode {mode:04o}: group and others must have no access \
             (run `chmod 600 {}`)",
            path.display(),
            path.display()
        );
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading session key file {}", path.display()))?,
        );
        let hex_key = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if hex_key.len() != 64 || hex::decode_to_slice(hex_key, key.as_mut()).is_err() {
            anyhow::bail!(
                "session key file {} is malformed: expected 64 hex digits (a 256-bit key)",
                path.display()
            );
        }
        Ok(key)
    }

    fn create(path: &Path) -> anyhow::Result<Key> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating directory {} for the session key", dir.display()))?;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        let text = Zeroizing::new(format!("{}\n", hex::encode(key.as_ref())));

        // Written to a private temporary name, then hard-linked into place: the key file never
        // exists half-written or with looser permissions, and two processes starting together
        // cannot both create it (the loser loads the winner's key).
        let tmp = dir.join(format!(
            ".session.key.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| -> anyhow::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::hard_link(&tmp, path)
                .with_context(|| format!("creating session key file {}", path.display()))
        })();
        let _ = std::fs::remove_file(&tmp);
        match result {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a new session key");
                Ok(key)
            }
            Err(_) if path.exists() => load(path),
            Err(e) => Err(e),
        }
    }
}

/// Where and how to reach Vault's (or OpenBao's) transit engine.
#[derive(Clone)]
pub struct VaultParams {
    /// e.g. `https://vault.internal:8200`
    pub addr: String,
    pub token: String,
    /// Name of the transit key that wraps the data keys.
    pub transit_key: String,
    /// Mount path of the transit engine, usually `transit`.
    pub mount: String,
}

impl std::fmt::Debug for VaultParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultParams")
            .field("addr", &self.addr)
            .field("token", &"<redacted>")
            .field("transit_key", &self.transit_key)
            .field("mount", &self.mount)
            .finish()
    }
}

/// One request to Vault should not hold a session write for long; a down Vault is reported as
/// `Unavailable` after this.
const VAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one data key seals new sessions before a fresh one is fetched. This bounds how long a
/// transit key rotation goes unnoticed by a running process, at one Vault call per period.
pub const DATA_KEY_MAX_AGE: Duration = Duration::from_secs(600);
/// Unwrapped data keys kept in memory. A process makes one data key per `DATA_KEY_MAX_AGE`, so
/// even months of history across restarts stay far below this; it only guards against a flood of
/// distinct wrapped keys (e.g. forged blobs) growing memory without bound.
const UNWRAP_CACHE_MAX: usize = 4096;

fn vault_client(addr: &str, token: &str) -> Result<VaultClient, CipherError> {
    // vaultrs panics on an address it cannot parse; check it first.
    url::Url::parse(addr).map_err(|e| {
        CipherError::Unavailable(format!("Vault address {addr:?} is not a URL: {e}"))
    })?;
    let settings = VaultClientSettingsBuilder::default()
        .address(addr)
        .token(token)
        .timeout(Some(VAULT_TIMEOUT))
        .build()
        .map_err(|e| CipherError::Unavailable(format!("configuring the Vault client: {e}")))?;
    VaultClient::new(settings)
        .map_err(|e| CipherError::Unavailable(format!("building the Vault client: {e}")))
}

/// Maps a Vault client error; `doing` names the step for the message.
fn vault_err(addr: &str, doing: &str, e: ClientError) -> CipherError {
    match e {
        ClientError::APIError { code, errors } => CipherError::Unavailable(format!(
            "{doing} at {addr}: Vault answered {code}: {}",
            errors.join("; ")
        )),
        other => {
            // The chain carries the useful part ("connection refused", "timed out").
            let chain = anyhow::Error::new(other);
            CipherError::Unavailable(format!("{doing} at {addr}: {chain:#}"))
        }
    }
}

struct DataKey {
    key: Key,
    wrapped: Vec<u8>,
    fetched: Instant,
}

/// The client Vault calls go through, replaced when an AppRole login issues a new token.
type ClientSlot = Arc<std::sync::RwLock<Arc<VaultClient>>>;

fn current_client(slot: &ClientSlot) -> Arc<VaultClient> {
    slot.read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}

struct VaultEnvelope {
    client: ClientSlot,
    addr: String,
    mount: String,
    transit_key: String,
    /// The data key new seals use; behind an async mutex so that a refresh is one Vault call even
    /// when many actors seal at that moment.
    current: tokio::sync::Mutex<Arc<DataKey>>,
    /// Wrapped-key bytes → data key, so each distinct wrapped key costs one `transit/decrypt`.
    unwrapped: std::sync::Mutex<HashMap<Vec<u8>, Arc<Key>>>,
    /// Serialises cache misses so concurrent opens of one wrapped key make one Vault call.
    unwrap_gate: tokio::sync::Mutex<()>,
    latest_version: AtomicU64,
    /// Renews a token that expires (AppRole, a child token with a TTL) before it does; `None`
    /// for a token without a TTL (root, a periodic token renewed elsewhere).
    renewer: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for VaultEnvelope {
    fn drop(&mut self) {
        if let Some(task) = &self.renewer {
            task.abort();
        }
    }
}

/// Renews the token at half its remaining TTL, for as long as the cipher lives. A failure is
/// retried soon (Vault may be sealed or restarting) while the token is still valid. With an
/// AppRole `login`, a token that Vault renews for at most half its first TTL (its max TTL is
/// near), or refuses to renew, is replaced by a new login before it runs out.
async fn renew_token(
    slot: ClientSlot,
    addr: String,
    mut ttl: Duration,
    login: Option<AppRoleLogin>,
) {
    let mut full = ttl;
    let mut failures = 0u32;
    loop {
        let wait = if failures == 0 {
            ttl / 2
        } else {
            // Retry soon while the token may still be valid, then ever less often.
            Duration::from_secs(2u64.saturating_pow(failures.min(6)))
        };
        tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        let client = current_client(&slot);
        let log_in_again = match vaultrs::token::renew_self(&*client, None).await {
            Ok(auth) => {
                failures = 0;
                ttl = Duration::from_secs(auth.lease_duration);
                tracing::debug!(ttl_s = auth.lease_duration, "renewed the Vault token");
                let ending = !auth.renewable || auth.lease_duration == 0;
                if ending && login.is_none() {
                    return;
                }
                ending || ttl * 2 <= full
            }
            Err(e) => {
                let refused = matches!(e, ClientError::APIError { code: 403, .. });
                let e = vault_err(&addr, "renewing the Vault token", e);
                tracing::warn!(error = %e, "could not renew the Vault token; retrying");
                failures = failures.saturating_add(1);
                refused
            }
        };
        let Some(login) = login.as_ref().filter(|_| log_in_again) else {
            continue;
        };
        let fresh = match approle_auth(&addr, login).await {
            Ok(auth) => vault_client(&addr, &auth.client_token)
                .map(|client| (client, Duration::from_secs(auth.lease_duration))),
            Err(e) => Err(e),
        };
        match fresh {
            Ok((client, lease)) => {
                *slot
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(client);
                (ttl, full, failures) = (lease, lease, 0);
                tracing::info!(
                    ttl_s = lease.as_secs(),
                    "logged in to Vault again with AppRole"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not log in to Vault again with AppRole; retrying");
                failures = failures.saturating_add(1);
            }
        }
    }
}

impl VaultEnvelope {
    async fn connect(
        params: VaultParams,
        login: Option<AppRoleLogin>,
    ) -> Result<Self, CipherError> {
        let client = vault_client(&params.addr, &params.token)?;
        let first = new_data_key(&client, &params.addr, &params.mount, &params.transit_key).await?;
        let version = wrapped_version(&first.wrapped).unwrap_or(0);
        let this = Self {
            client: Arc::new(std::sync::RwLock::new(Arc::new(client))),
            addr: params.addr,
            mount: params.mount,
            transit_key: params.transit_key,
            current: tokio::sync::Mutex::new(Arc::new(first)),
            unwrapped: std::sync::Mutex::new(HashMap::new()),
            unwrap_gate: tokio::sync::Mutex::new(()),
            latest_version: AtomicU64::new(version),
            renewer: None,
        };
        let mut this = this;
        // A token with a TTL (AppRole logins, child tokens) expires under a long-running
        // service unless someone renews it: we do, well before it runs out.
        match vaultrs::token::lookup_self(&*this.client()).await {
            Ok(info) if info.renewable && info.ttl > 0 => {
                this.renewer = Some(tokio::spawn(renew_token(
                    this.client.clone(),
                    this.addr.clone(),
                    Duration::from_secs(info.ttl),
                    login,
                )));
            }
            Ok(_) => {}
            Err(e) => {
                let e = vault_err(&this.addr, "looking up the Vault token", e);
                tracing::warn!(error = %e, "cannot tell whether the Vault token expires");
            }
        }
        {
            let current = this.current.lock().await;
            this.remember(&current.wrapped, &current.key);
        }
        Ok(this)
    }

    fn client(&self) -> Arc<VaultClient> {
        current_client(&self.client)
    }

    async fn current_data_key(&self) -> Result<Arc<DataKey>, CipherError> {
        let mut current = self.current.lock().await;
        if current.fetched.elapsed() < DATA_KEY_MAX_AGE {
            return Ok(current.clone());
        }
        match self.fetch().await {
            Ok(fresh) => {
                *current = fresh.clone();
                Ok(fresh)
            }
            // An old data key is still a sound key: keep sealing with it while Vault is away,
            // and try again on the next seal.
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the Vault data key; keeping the current one");
                Ok(current.clone())
            }
        }
    }

    async fn refresh(&self) -> Result<Arc<DataKey>, CipherError> {
        let mut current = self.current.lock().await;
        let fresh = self.fetch().await?;
        *current = fresh.clone();
        Ok(fresh)
    }

    async fn check(&self) -> Result<(), CipherError> {
        let info = vaultrs::transit::key::read(&*self.client(), &self.mount, &self.transit_key)
            .await
            .map_err(|e| vault_err(&self.addr, "reading the transit key", e))?;
        let newest = match &info.keys {
            vaultrs::api::transit::responses::ReadKeyData::Symmetric(versions) => versions
                .keys()
                .filter_map(|v| v.parse::<u64>().ok())
                .max()
                .unwrap_or(0),
            vaultrs::api::transit::responses::ReadKeyData::Asymmetric(_) => {
                return Err(CipherError::Unavailable(format!(
                    "transit key {} is asymmetric; sessions need a symmetric key",
                    self.transit_key
                )))
            }
        };
        self.latest_version.fetch_max(newest, Ordering::Relaxed);
        let current_version = {
            let current = self.current.lock().await;
            wrapped_version(&current.wrapped).unwrap_or(0)
        };
        if newest > current_version {
            self.refresh().await?;
        }
        Ok(())
    }

    async fn fetch(&self) -> Result<Arc<DataKey>, CipherError> {
        let dk = Arc::new(
            new_data_key(&self.client(), &self.addr, &self.mount, &self.transit_key).await?,
        );
        if let Some(v) = wrapped_version(&dk.wrapped) {
            self.latest_version.fetch_max(v, Ordering::Relaxed);
        }
        self.remember(&dk.wrapped, &dk.key);
        Ok(dk)
    }

    fn cached(&self, wrapped: &[u8]) -> Option<Arc<Key>> {
        self.unwrapped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(wrapped)
            .cloned()
    }

    fn remember(&self, wrapped: &[u8], key: &Key) {
        let mut cache = self
            .unwrapped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.len() >= UNWRAP_CACHE_MAX {
            cache.clear();
        }
        cache.insert(wrapped.to_vec(), Arc::new(Zeroizing::new(**key)));
    }

    async fn unwrap_key(&self, wrapped: &[u8]) -> Result<Arc<Key>, CipherError> {
        if let Some(key) = self.cached(wrapped) {
            return Ok(key);
        }
        let _gate = self.unwrap_gate.lock().await;
        if let Some(key) = self.cached(wrapped) {
            return Ok(key);
        }
        let version = wrapped_version(wrapped).ok_or_else(|| {
            CipherError::Malformed("wrapped key is not a Vault ciphertext".into())
        })?;
        let wrapped_str = std::str::from_utf8(wrapped)
            .map_err(|_| CipherError::Malformed("wrapped key is not text".into()))?;
        let resp = vaultrs::transit::data::decrypt(
            &*self.client(),
            &self.mount,
            &self.transit_key,
            wrapped_str,
            None,
        )
        .await
        .map_err(|e| match e {
            // Vault refuses a ciphertext it did not produce with 400: the blob was altered.
            ClientError::APIError { code: 400, errors } => {
                tracing::warn!(errors = ?errors, "Vault refused to unwrap a session data key");
                CipherError::Tampered
            }
            other => vault_err(&self.addr, "unwrapping a session data key", other),
        })?;
        let key = decode_key(&resp.plaintext)?;
        // Another process may have rotated and sealed with a newer version than we have seen.
        self.latest_version.fetch_max(version, Ordering::Relaxed);
        self.remember(wrapped, &key);
        Ok(Arc::new(key))
    }
}

async fn new_data_key(
    client: &VaultClient,
    addr: &str,
    mount: &str,
    transit_key: &str,
) -> Result<DataKey, CipherError> {
    let resp = vaultrs::transit::generate::data_key(
        client,
        mount,
        transit_key,
        vaultrs::api::transit::requests::DataKeyType::Plaintext,
        None,
    )
    .await
    .map_err(|e| {
        vault_err(
            addr,
            &format!("generating a data key with transit key {mount}/{transit_key}"),
            e,
        )
    })?;
    let plaintext = Zeroizing::new(resp.plaintext.ok_or_else(|| {
        CipherError::Unavailable("Vault returned a data key without its plaintext".into())
    })?);
    let key = decode_key(&plaintext)?;
    let wrapped = resp.ciphertext.into_bytes();
    if wrapped.len() > u16::MAX as usize || wrapped_version(&wrapped).is_none() {
        return Err(CipherError::Unavailable(
            "Vault returned a wrapped data key in an unexpected form".into(),
        ));
    }
    Ok(DataKey {
        key,
        wrapped,
        fetched: Instant::now(),
    })
}

fn decode_key(b64: &str) -> Result<Key, CipherError> {
    use base64::Engine as _;
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| {
                CipherError::Unavailable("Vault returned a data key that is not base64".into())
            })?,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return Err(CipherError::Unavailable(format!(
            "Vault returned a {}-byte data key; a 256-bit key is required (transit key type aes256-gcm96 or chacha20-poly1305)",
            bytes.len()
        )));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// An AppRole login: what a service presents instead of a token.
#[derive(Clone)]
pub struct AppRoleLogin {
    /// Mount path of the AppRole auth method, usually `approle`.
    pub mount: String,
    pub role_id: String,
    pub secret_id: Secret,
    /// Where the SecretID was read from, when a file: read again at every login, so a SecretID
    /// that is used once or expires can be replaced there by whoever issues them.
    pub secret_id_file: Option<std::path::PathBuf>,
}

/// Logs in with AppRole and returns the token Vault issued. The token has the role's TTL; a cipher
/// made with it by `SessionCipher::vault_approle` renews it at half its TTL and logs in again near
/// the role's `token_max_ttl`.
pub async fn approle_login(addr: &str, login: &AppRoleLogin) -> Result<Secret, CipherError> {
    Ok(Secret::new(approle_auth(addr, login).await?.client_token))
}

async fn approle_auth(
    addr: &str,
    login: &AppRoleLogin,
) -> Result<vaultrs::api::AuthInfo, CipherError> {
    let client = vault_client(addr, "")?;
    let fresh = match &login.secret_id_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map(|text| Secret::new(text.trim()))
                .map_err(|e| {
                    CipherError::Unavailable(format!(
                        "reading vault.secret_id_file {}: {e}",
                        path.display()
                    ))
                })?,
        ),
        None => None,
    };
    let secret_id = fresh.as_ref().unwrap_or(&login.secret_id);
    vaultrs::auth::approle::login(&client, &login.mount, &login.role_id, secret_id.expose())
        .await
        .map_err(|e| {
            vault_err(
                addr,
                &format!("logging in with AppRole at auth/{}", login.mount),
                e,
            )
        })
}

/// Secrets the API reads from a KV v2 path when `secrets.backend = "vault"`.
#[derive(Debug, Clone, Default)]
pub struct VaultSecrets {
    pub jwt_secret: Option<Secret>,
    pub api_hash: Option<Secret>,
}

impl VaultSecrets {
    /// Reads fields `jwt_secret` and `api_hash` from `<kv_mount>/data/<kv_path>`. Missing fields are
    /// `None` (the caller decides which it needs); an unreachable Vault or a missing path is
    /// `Unavailable`.
    pub async fn read(
        params: &VaultParams,
        kv_mount: &str,
        kv_path: &str,
    ) -> Result<Self, CipherError> {
        let client = vault_client(&params.addr, &params.token)?;
        let mut data: HashMap<String, serde_json::Value> =
            vaultrs::kv2::read(&client, kv_mount, kv_path)
                .await
                .map_err(|e| {
                    vault_err(
                        &params.addr,
                        &format!("reading KV v2 secret {kv_mount}/{kv_path}"),
                        e,
                    )
                })?;
        let mut take = |field: &str| match data.remove(field) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(Secret::new(s))),
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(_)) => Ok(None),
            Some(_) => Err(CipherError::Malformed(format!(
                "KV v2 secret {kv_mount}/{kv_path}: field {field} is not a string"
            ))),
        };
        Ok(Self {
            jwt_secret: take("jwt_secret")?,
            api_hash: take("api_hash")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_versions() {
        assert_eq!(wrapped_version(b"vault:v1:abc"), Some(1));
        assert_eq!(wrapped_version(b"vault:v12:abc"), Some(12));
        assert_eq!(wrapped_version(b"vault:x:abc"), None);
        assert_eq!(wrapped_version(&[0xff, 0xfe]), None);
    }

    #[test]
    fn malformed_blobs_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"TGS",
            b"XYZ\x01\x01",
            b"TGS\x09\x01",
            b"TGS\x01\x07",
            b"TGS\x01\x02\xff\xff",
            b"TGS\x01\x01short",
        ] {
            assert!(
                matches!(Blob::parse(bad), Err(CipherError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[tokio::test]
    async fn local_roundtrip_binds_account_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let cipher = SessionCipher::local(dir.path().join("k")).unwrap();
        let sealed = cipher.seal(7, b"auth key bytes").await.unwrap();
        assert_eq!(
            &cipher.open(7, &sealed).await.unwrap()[..],
            b"auth key bytes"
        );
        assert!(matches!(
            cipher.open(8, &sealed).await,
            Err(CipherError::Tampered)
        ));
        for i in [3usize, 4, 10, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(cipher.open(7, &t).await.is_err(), "byte {i}");
        }
        assert!(!cipher.needs_rewrap(&sealed));
        assert_eq!(cipher.describe(), "local");
        assert_eq!(format!("{cipher:?}"), "SessionCipher(local)");
    }
}
