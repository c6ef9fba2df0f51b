//! An in-memory [`Store`] for tests on paused time.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::*;
use crate::phone::Phone;
use crate::store::{Store, StoreError, StoreResult};

/// Accounts, their sessions and logs in memory; everything else unsupported. Pure async (no
/// driver thread), so it works on paused time, which cannot wait for SQLite's own thread.
#[derive(Default)]
pub struct MemStore {
    inner: Mutex<MemInner>,
}

#[derive(Default)]
struct MemInner {
    accounts: Vec<Account>,
    sessions: HashMap<AccountId, Vec<u8>>,
    logs: Vec<LogEntry>,
}

fn unsupported<T>() -> StoreResult<T> {
    Err(StoreError::Other(anyhow::anyhow!(
        "not supported by MemStore"
    )))
}

impl MemStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add_account(&self, id: AccountId, state: AccountState) {
        let now: DateTime<Utc> = Utc::now();
        self.lock().accounts.push(Account {
            id,
            owner_id: 1,
            label: None,
            kind: AccountKind::User,
            phone: None,
            state,
            tg_user_id: None,
            username: None,
            dc_id: None,
            flood_wait_until: None,
            last_error: None,
            restarts: 0,
            receive_updates: None,
            device: DeviceIdentity::pick(id as u64),
            api_id: None,
            proxy_id: None,
            two_fa_stored: false,
            created_at: now,
            updated_at: now,
        });
    }
}

impl crate::store::MediaRecords for MemStore {}
impl crate::store::PostRecords for MemStore {}
impl crate::store::EventRecords for MemStore {}
impl crate::store::WebhookRecords for MemStore {}

#[async_trait]
impl Store for MemStore {
    fn backend(&self) -> &'static str {
        "memory"
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
    async fn create_user(&self, _: NewUser) -> StoreResult<User> {
        unsupported()
    }
    async fn user_by_id(&self, _: UserId) -> StoreResult<User> {
        unsupported()
    }
    async fn user_by_email(&self, _: &str) -> StoreResult<User> {
        unsupported()
    }
    async fn list_users(&self, _: Option<UserId>, _: u32) -> StoreResult<Vec<User>> {
        unsupported()
    }
    async fn update_user(&self, _: UserId, _: UserPatch) -> StoreResult<User> {
        unsupported()
    }
    async fn count_users(&self) -> StoreResult<i64> {
        unsupported()
    }
    async fn insert_refresh_token(&self, _: RefreshToken) -> StoreResult<()> {
        unsupported()
    }
    async fn refresh_token(&self, _: &str) -> StoreResult<RefreshToken> {
        unsupported()
    }
    async fn revoke_refresh_token(&self, _: &str) -> StoreResult<bool> {
        unsupported()
    }
    async fn revoke_refresh_family(&self, _: &str) -> StoreResult<u64> {
        unsupported()
    }
    async fn revoke_access_token(&self, _: &str, _: DateTime<Utc>) -> StoreResult<()> {
        unsupported()
    }
    async fn is_access_token_revoked(&self, _: &str, _: Option<&str>) -> StoreResult<bool> {
        unsupported()
    }
    async fn purge_revoked_families(&self, _: DateTime<Utc>) -> StoreResult<u64> {
        unsupported()
    }
    async fn purge_expired_tokens(&self, _: DateTime<Utc>) -> StoreResult<u64> {
        unsupported()
    }
    async fn purge_logs_before(&self, _: DateTime<Utc>) -> StoreResult<u64> {
        unsupported()
    }
    async fn create_account(&self, _: NewAccount) -> StoreResult<Account> {
        unsupported()
    }
    async fn account_api_hash(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>> {
        // No import here, so no account with its own app; an unknown id is still an error.
        self.account(id).await.map(|_| None)
    }

    async fn account(&self, id: AccountId) -> StoreResult<Account> {
        let inner = self.lock();
        inner
            .accounts
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .ok_or(StoreError::NotFound)
    }
    async fn list_accounts(&self, filter: AccountFilter) -> StoreResult<Vec<Account>> {
        let inner = self.lock();
        let mut rows: Vec<Account> = inner
            .accounts
            .iter()
            .filter(|a| filter.after_id.is_none_or(|after| a.id > after))
            .filter(|a| filter.state.is_none_or(|s| a.state == s))
            .cloned()
            .collect();
        rows.sort_by_key(|a| a.id);
        rows.truncate(filter.limit as usize);
        Ok(rows)
    }
    async fn update_account(&self, id: AccountId, update: AccountUpdate) -> StoreResult<Account> {
        let mut inner = self.lock();
        let a = inner
            .accounts
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(StoreError::NotFound)?;
        update.apply_to(a);
        a.updated_at = Utc::now();
        Ok(a.clone())
    }
    async fn delete_account(&self, _: AccountId) -> StoreResult<()> {
        unsupported()
    }
    async fn count_accounts_by_state(&self) -> StoreResult<Vec<(AccountState, i64)>> {
        unsupported()
    }
    async fn put_session(&self, id: AccountId, sealed: &[u8]) -> StoreResult<()> {
        self.lock().sessions.insert(id, sealed.to_vec());
        Ok(())
    }
    async fn session(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.lock().sessions.get(&id).cloned())
    }
    async fn delete_session(&self, id: AccountId) -> StoreResult<()> {
        self.lock().sessions.remove(&id);
        Ok(())
    }
    async fn count_sessions(&self) -> StoreResult<i64> {
        Ok(self.lock().sessions.len() as i64)
    }
    async fn account_holding_phone(&self, _: &Phone) -> StoreResult<Option<AccountId>> {
        unsupported()
    }
    async fn count_owned_accounts(&self, _: UserId) -> StoreResult<(i64, i64)> {
        unsupported()
    }
    async fn append_log(&self, entry: NewLogEntry) -> StoreResult<i64> {
        let mut inner = self.lock();
        let id = inner.logs.len() as i64 + 1;
        inner.logs.push(LogEntry {
            id,
            at: Utc::now(),
            level: entry.level,
            event: entry.event,
            account_id: entry.account_id,
            user_id: entry.user_id,
            error_code: entry.error_code,
            message: entry.message,
            details: entry.details,
        });
        Ok(id)
    }
    async fn list_logs(&self, filter: LogFilter) -> StoreResult<Vec<LogEntry>> {
        let inner = self.lock();
        let mut rows: Vec<LogEntry> = inner
            .logs
            .iter()
            .rev()
            .filter(|l| filter.account_id.is_none_or(|id| l.account_id == Some(id)))
            .filter(|l| filter.event.as_ref().is_none_or(|e| &l.event == e))
            .cloned()
            .collect();
        rows.truncate(filter.limit as usize);
        Ok(rows)
    }
    async fn error_stats(&self, _: DateTime<Utc>, _: Option<UserId>) -> StoreResult<ErrorStats> {
        unsupported()
    }
}
