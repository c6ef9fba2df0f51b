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
