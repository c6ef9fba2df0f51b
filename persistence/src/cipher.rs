//! Sealing of account sessions (AEAD, account id bound as associated data).

#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("session ciphertext does not open for this account")]
    Tampered,
    #[error("session ciphertext is malformed: {0}")]
    Malformed(String),
    #[error("secrets backend unavailable: {0}")]
    Unavailable(String),
}

/// Local key or Vault transit; see the implementations.
#[derive(Clone)]
pub struct SessionCipher {}

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
