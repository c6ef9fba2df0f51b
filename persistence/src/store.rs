//! The storage boundary. One implementation per backend, each with its own embedded migrations.

use crate::model::*;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Session blobs passed here are always sealed by `SessionCipher`; a store never sees plaintext.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// "sqlite" or "postgres", for health reports.
    fn backend(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;

    // users
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<User>;
    async fn user_by_email(&self, email: &str) -> StoreResult<User>;
    async fn list_users(&self, after_id: Option<UserId>, limit: u32) -> StoreResult<Vec<User>>;
    async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User>;
    async fn count_users(&self) -> StoreResult<i64>;

    // refresh tokens and revoked access tokens
    async fn insert_refresh_token(&self, token: RefreshToken) -> StoreResult<()>;
    async fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshToken>;
    /// Marks one token revoked; returns false when it already was (the caller treats that as reuse).
    async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<bool>;
    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64>;
    async fn revoke_access_token(&self, jti: &str, expires_at: DateTime<Utc>) -> StoreResult<()>;
    async fn is_access_token_revoked(&self, jti: &str) -> StoreResult<bool>;

    // Telegram accounts
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;
    async fn account(&self, id: AccountId) -> StoreResult<Account>;
    async fn list_accounts(&self, filter: AccountFilter) -> StoreResult<Vec<Account>>;
    async fn update_account(&self, id: AccountId, update: AccountUpdate) -> StoreResult<Account>;
    /// Deletes the account, its session and nothing else, in one transaction.
    async fn delete_account(&self, id: AccountId) -> StoreResult<()>;
    async fn count_accounts_by_state(&self) -> StoreResult<Vec<(AccountState, i64)>>;

    // sealed sessions
    async fn put_session(&self, account_id: AccountId, sealed: &[u8]) -> StoreResult<()>;
    async fn session(&self, account_id: AccountId) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_session(&self, account_id: AccountId) -> StoreResult<()>;

    // integration log
    async fn append_log(&self, entry: NewLogEntry) -> StoreResult<i64>;
    async fn list_logs(&self, filter: LogFilter) -> StoreResult<Vec<LogEntry>>;
    async fn error_stats(&self, since: DateTime<Utc>) -> StoreResult<ErrorStats>;
}

/// Opens the store a URL names (`sqlite://…` or `postgres://…`) and runs its migrations.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let _ = url;
    anyhow::bail!("not implemented yet")
}
