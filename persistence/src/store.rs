//! The storage boundary. One implementation per backend, each with its own embedded migrations.

use crate::model::*;
use crate::phone::Phone;
use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use std::sync::Arc;

mod events;
mod media;
mod metrics;
mod postgres;
mod posts;
mod sql;
mod sqlite;
mod webhooks;

pub use events::EventRecords;
pub use media::MediaRecords;
pub use metrics::StoreMetrics;
pub use posts::PostRecords;
pub use webhooks::{QueuedDelivery, WebhookBacklog, WebhookFailing, WebhookRecords};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row is missing, or a row it refers to is (a foreign key refused the write).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write (e.g. an email already registered).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database did not answer (connection refused or lost, pool exhausted): an outage,
    /// not a bad request; callers retry or answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Session blobs passed here are always sealed by `SessionCipher`; a store never sees plaintext.
#[async_trait]
pub trait Store:
    MediaRecords + PostRecords + EventRecords + WebhookRecords + Send + Sync + 'static
{
    /// "sqlite" or "postgres", for health reports.
    fn backend(&self) -> &'static str;
    /// What each operation costs (`tgfleet_store_queries_total{op}`, `tgfleet_store_seconds{op}`),
    /// for the app to register; `None` for a store that keeps no figures (test doubles).
    fn metrics(&self) -> Option<&StoreMetrics> {
        None
    }
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
    /// True when the access token `jti` was revoked, or the refresh-token family it was issued
    /// with (`family_id`, from its claims) was: one read for both.
    async fn is_access_token_revoked(
        &self,
        jti: &str,
        family_id: Option<&str>,
    ) -> StoreResult<bool>;
    /// Drops revoked access tokens and refresh tokens that expired before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64>;
    /// Forgets families revoked before `before`; returns how many. The caller passes now minus
    /// the refresh TTL: by then every token of the family has expired, so none can be presented.
    async fn purge_revoked_families(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    // Telegram accounts
    async fn create_account(&self, new: NewAccount) -> StoreResult<Account>;
    async fn account(&self, id: AccountId) -> StoreResult<Account>;
    /// The account's own `api_hash`, sealed (`SessionCipher::seal_api_hash`), when it has its own
    /// app ([`Account::api_id`]); only the account core opens it. No default: a store that
    /// forgot it would make such an account fail to start, never silently use the fleet's app.
    async fn account_api_hash(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>>;
    /// The account's 2FA password, sealed (`SessionCipher::seal_two_fa_password`), when its owner
    /// left one ([`Account::two_fa_stored`]); only the account core opens it.
    async fn account_two_fa_password(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>> {
        let _ = id;
        Ok(None)
    }
    async fn list_accounts(&self, filter: AccountFilter) -> StoreResult<Vec<Account>>;
    async fn update_account(&self, id: AccountId, update: AccountUpdate) -> StoreResult<Account>;
    /// Deletes the account, its session and nothing else, in one transaction.
    async fn delete_account(&self, id: AccountId) -> StoreResult<()>;
    /// The authorized account holding `phone` (normalised), if any: the states of the unique
    /// index in migration 0006.
    async fn account_holding_phone(&self, phone: &Phone) -> StoreResult<Option<AccountId>>;
    async fn count_accounts_by_state(&self) -> StoreResult<Vec<(AccountState, i64)>>;
    /// How many accounts `owner_id` has, and how many of them are halfway through a login
    /// (awaiting a code, password or QR scan): the per-user quotas.
    async fn count_owned_accounts(&self, owner_id: UserId) -> StoreResult<(i64, i64)>;

    // sealed sessions
    async fn put_session(&self, account_id: AccountId, sealed: &[u8]) -> StoreResult<()>;
    async fn session(&self, account_id: AccountId) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_session(&self, account_id: AccountId) -> StoreResult<()>;
    /// How many sealed sessions the database holds (a missing key with sessions is fatal).
    async fn count_sessions(&self) -> StoreResult<i64>;

    // session fingerprints (hex SHA-256 of an auth key): imports are idempotent by them, and a
    // session already held by an account of this fleet is refused. The rows go with the account.
    // Defaults answer "unsupported" so stores that predate them (test doubles) still compile.
    /// Records that `account_id` holds the session with `fingerprint`. `Conflict` when another
    /// account holds it; recording it again for the same account is success.
    async fn claim_session_fingerprint(
        &self,
        account_id: AccountId,
        fingerprint: &str,
    ) -> StoreResult<()> {
        let _ = (account_id, fingerprint);
        Err(StoreError::Other(anyhow::anyhow!(
            "this store does not keep session fingerprints"
        )))
    }
    /// Creates an authorized account from an imported session: the row (state `active`), its
    /// fingerprint claim and its sealed session land in one transaction, or nothing does (a
    /// crash or a dropped request leaves no row holding a phone or a claim without a session).
    async fn create_imported_account(
        &self,
        imported: ImportedAccount,
    ) -> StoreResult<Result<Account, ImportConflict>> {
        let _ = imported;
        Err(StoreError::Other(anyhow::anyhow!(
            "this store does not keep session fingerprints"
        )))
    }
    /// The account holding the session with `fingerprint`, if any.
    async fn account_by_session_fingerprint(
        &self,
        fingerprint: &str,
    ) -> StoreResult<Option<AccountId>> {
        let _ = fingerprint;
        Err(StoreError::Other(anyhow::anyhow!(
            "this store does not keep session fingerprints"
        )))
    }

    // sends by Idempotency-Key (defaults refuse, like those of fingerprints)
    /// What the send `dedupe_key` of `account_id` came to, if the account still keeps it.
    async fn sent_message(
        &self,
        account_id: AccountId,
        dedupe_key: &str,
    ) -> StoreResult<Option<SentMessage>> {
        let _ = (account_id, dedupe_key);
        Err(no_sent_messages())
    }
    /// Records `sent` in order, each as the account's newest key (replacing one with the same
    /// key), then forgets all but its newest `keep` keys, in one transaction. A send records its
    /// random_id this way before its first attempt (`message_ids` empty).
    async fn record_sent_messages(
        &self,
        account_id: AccountId,
        sent: Vec<SentMessage>,
        keep: u32,
    ) -> StoreResult<()> {
        let _ = (account_id, sent, keep);
        Err(no_sent_messages())
    }
    /// Records the message ids Telegram gave the send `dedupe_key`; nothing when the account
    /// no longer keeps it.
    async fn complete_sent_message(
        &self,
        account_id: AccountId,
        dedupe_key: &str,
        message_ids: &[i32],
    ) -> StoreResult<()> {
        let _ = (account_id, dedupe_key, message_ids);
        Err(no_sent_messages())
    }

    // proxies (defaults: a store without a proxy pool refuses, like one without fingerprints)
    /// Creates a proxy, its URL sealed for its new id in the same transaction.
    async fn create_proxy(&self, new: NewProxy) -> StoreResult<Proxy> {
        let _ = new;
        Err(no_proxies())
    }
    async fn proxy(&self, id: ProxyId) -> StoreResult<Proxy> {
        let _ = id;
        Err(no_proxies())
    }
    /// A user's proxies (every proxy with `None`), by id.
    async fn list_proxies(&self, owner_id: Option<UserId>) -> StoreResult<Vec<Proxy>> {
        let _ = owner_id;
        Err(no_proxies())
    }
    /// The proxy's sealed URL.
    async fn proxy_url(&self, id: ProxyId) -> StoreResult<Vec<u8>> {
        let _ = id;
        Err(no_proxies())
    }
    /// Sets the label (`Some(None)` clears it) and/or records a check.
    async fn update_proxy(
        &self,
        id: ProxyId,
        label: Option<Option<String>>,
        health: Option<ProxyHealth>,
    ) -> StoreResult<Proxy> {
        let _ = (id, label, health);
        Err(no_proxies())
    }
    /// The accounts bound to the proxy, by id.
    async fn accounts_on_proxy(&self, id: ProxyId) -> StoreResult<Vec<AccountId>> {
        let _ = id;
        Err(no_proxies())
    }
    /// Deletes the proxy. Accounts bound to it refuse the delete (`Conflict`) unless `unbind`,
    /// which unbinds them in the same transaction and returns them.
    async fn delete_proxy(&self, id: ProxyId, unbind: bool) -> StoreResult<Vec<AccountId>> {
        let _ = (id, unbind);
        Err(no_proxies())
    }

    // integration log
    async fn append_log(&self, entry: NewLogEntry) -> StoreResult<i64>;
    async fn list_logs(&self, filter: LogFilter) -> StoreResult<Vec<LogEntry>>;
    /// Deletes integration-log rows older than `before` (retention); returns how many.
    async fn purge_logs_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Counts since `since`; with `owner_id`, only over that user's accounts.
    async fn error_stats(
        &self,
        since: DateTime<Utc>,
        owner_id: Option<UserId>,
    ) -> StoreResult<ErrorStats>;
}

fn no_sent_messages() -> StoreError {
    StoreError::Other(anyhow::anyhow!(
        "this store does not keep sends by Idempotency-Key"
    ))
}

fn no_proxies() -> StoreError {
    StoreError::Other(anyhow::anyhow!("this store does not keep proxies"))
}

/// Opens the store a URL names (`sqlite://…`, `sqlite::memory:` or `postgres://…`) and runs its
/// migrations.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        let scheme = url.split(':').next().unwrap_or_default();
        anyhow::bail!(
            "database url scheme {scheme:?} is not supported (use sqlite://PATH or postgres://…)"
        )
    }
}

/// Creates `dir` and any missing parents readable by this user only (0700): the directory holds
/// the database, the session key and the lock. An existing directory keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Page size when a filter asks for `limit: 0`.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page any list call returns; a bigger `limit` is cut to this so one request cannot make
/// the store materialise a whole table. Callers that need everything page with the keyset cursor.
pub const MAX_PAGE: u32 = 1000;

pub(crate) fn page_limit(limit: u32) -> i64 {
    match limit {
        0 => DEFAULT_PAGE.into(),
        n => n.min(MAX_PAGE).into(),
    }
}

/// The store's clock: microsecond precision, because PostgreSQL keeps no more and a row read back
/// must equal the row written on both backends.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    t.with_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .unwrap_or(t)
}

/// Maps a driver error to the store's vocabulary, keeping `what` as context for the rest.
pub(crate) fn db_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what}: {}", db.message()))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        e @ (sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed) => StoreError::Unavailable(format!("{what}: {e}")),
        other => StoreError::Other(anyhow::Error::new(other).context(what)),
    }
}

/// The URL with any password replaced, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/tg?sslmode=require"),
            "postgres://app:***@db:5432/tg?sslmode=require"
        );
        assert_eq!(redact_url("postgres://app@db/tg"), "postgres://app@db/tg");
        assert_eq!(redact_url("sqlite://./data/x.db"), "sqlite://./data/x.db");
    }

    #[test]
    fn page_limits() {
        assert_eq!(page_limit(0), 100);
        assert_eq!(page_limit(5), 5);
        assert_eq!(page_limit(1_000_000), 1000);
    }
}
