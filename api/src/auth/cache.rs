//! What authentication and ownership read on every request, held in memory: whether an access
//! token is revoked, each user's role and disabled flag, each account's owner and kind. Kept
//! exact because this process is the only writer (the instance lock keeps a second one away)
//! and every write goes through here: the store is written, then the picture, and a reader
//! that missed only fills an empty slot, so a value it read before a write never replaces the
//! write's. A write whose answer is lost (it may have committed) is followed by a read of the
//! row. Several nodes on one PostgreSQL will add `LISTEN/NOTIFY` for the others' writes; until
//! then this rests on the instance lock (`persistence/src/lock.rs`) keeping a second server
//! away.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::{DashMap, DashSet};
use tgfleet_persistence::{
    AccountId, AccountKind, Role, Store, StoreError, StoreResult, User, UserId, UserPatch,
};

/// Access tokens remembered (revoked or not), and families revoked, before the expired ones are
/// first dropped; after a sweep, the next waits until the maps have doubled.
const SWEEP_AT: usize = 100_000;

pub struct AuthCache {
    store: Arc<dyn Store>,
    /// How long an access token lives (`auth.access_ttl_s`).
    access_ttl: Duration,
    /// jti → (revoked, the token's expiry as a Unix time).
    tokens: DashMap<String, (bool, i64)>,
    /// Refresh-token families revoked by this process (their access tokens are refused), and
    /// when (Unix time, the clock tokens expire by), so that they are forgotten once every
    /// access token they issued has expired.
    families: DashMap<String, i64>,
    users: DashMap<UserId, (Role, bool)>,
    /// `None`: deleted. Never filled by a miss, so an id read before it exists stays unknown.
    accounts: DashMap<AccountId, Option<(UserId, AccountKind)>>,
    /// User writes one at a time: two writers' store writes and picture writes could otherwise
    /// land in opposite orders.
    user_writes: tokio::sync::Mutex<()>,
    sweeping: DashSet<()>,
    /// Entries (tokens and families) above which the next miss or revocation sweeps.
    sweep_at: AtomicUsize,
}

impl AuthCache {
    pub fn new(store: Arc<dyn Store>, access_ttl: Duration) -> Self {
        Self {
            store,
            access_ttl,
            tokens: DashMap::new(),
            families: DashMap::new(),
            users: DashMap::new(),
            accounts: DashMap::new(),
            user_writes: tokio::sync::Mutex::new(()),
            sweeping: DashSet::new(),
            sweep_at: AtomicUsize::new(SWEEP_AT),
        }
    }

    /// Whether the access token `jti` (of login `family`, expiring at `exp`) is refused.
    pub async fn is_revoked(&self, jti: &str, family: Option<&str>, exp: i64) -> StoreResult<bool> {
        if family.is_some_and(|f| self.families.contains_key(f)) {
            return Ok(true);
        }
        if let Some(known) = self.tokens.get(jti) {
            return Ok(known.0);
        }
        let revoked = self.store.is_access_token_revoked(jti, family).await?;
        let known = self
            .tokens
            .entry(jti.to_owned())
            .or_insert((revoked, exp))
            .0;
        self.sweep_if_large();
        Ok(known)
    }

    /// Refuses the access token from now on, then writes that to the store, in a task of its
    /// own. The picture goes first because revocation only ever adds; the task keeps a client
    /// hanging up from leaving it refused here and accepted by the store (after a restart).
    pub async fn revoke_access_token(&self, jti: &str, exp: i64) -> StoreResult<()> {
        self.tokens.insert(jti.to_owned(), (true, exp));
        let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_else(chrono::Utc::now);
        let (store, jti) = (Arc::clone(&self.store), jti.to_owned());
        detached("revoking an access token", async move {
            store.revoke_access_token(&jti, expires).await
        })
        .await
    }

    /// Refuses every access token of the family from now on, then revokes it in the store (in
    /// a task of its own, as above).
    pub async fn revoke_family(&self, family: &str) -> StoreResult<u64> {
        self.families
            .insert(family.to_owned(), chrono::Utc::now().timestamp());
        self.sweep_if_large();
        let (store, family) = (Arc::clone(&self.store), family.to_owned());
        detached("revoking a login", async move {
            store.revoke_refresh_family(&family).await
        })
        .await
    }

    /// The user's role and disabled flag; `None`: no such user.
    pub async fn user(&self, id: UserId) -> StoreResult<Option<(Role, bool)>> {
        read_through(&self.users, id, async {
            let u = self.store.user_by_id(id).await?;
            Ok((u.role, u.disabled))
        })
        .await
    }

    /// Changes a user in the store and here, in a task of its own so that a caller hanging up
    /// cannot leave the two apart.
    pub async fn update_user(self: &Arc<Self>, id: UserId, patch: UserPatch) -> StoreResult<User> {
        let cache = Arc::clone(self);
        detached("updating a user", async move {
            let store = &cache.store;
            let _one = cache.user_writes.lock().await;
            match store.update_user(id, patch).await {
                Ok(user) => {
                    cache.users.insert(id, (user.role, user.disabled));
                    Ok(user)
                }
                Err(e) => {
                    // It may have committed all the same: what the store holds now counts.
                    match store.user_by_id(id).await {
                        Ok(u) => {
                            cache.users.insert(id, (u.role, u.disabled));
                        }
                        Err(_) => {
                            cache.users.remove(&id);
                        }
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    /// The account's owner and kind; `None`: no such account.
    pub async fn account(&self, id: AccountId) -> StoreResult<Option<(UserId, AccountKind)>> {
        let known = read_through(&self.accounts, id, async {
            let a = self.store.account(id).await?;
            Ok(Some((a.owner_id, a.kind)))
        })
        .await?;
        Ok(known.flatten())
    }

    /// Deletes the account's row and remembers that it is gone, in a task of its own (see
    /// [`Self::update_user`]).
    pub async fn delete_account(self: &Arc<Self>, id: AccountId) -> StoreResult<()> {
        let cache = Arc::clone(self);
        detached("deleting an account", async move {
            let store = &cache.store;
            let deleted = store.delete_account(id).await;
            if deleted.is_ok() {
                cache.accounts.insert(id, None);
                return deleted;
            }
            // Gone already, or perhaps deleted though the answer was lost: ask the store.
            match store.account(id).await {
                Err(StoreError::NotFound) => {
                    cache.accounts.insert(id, None);
                }
                Ok(_) => {}
                Err(_) => {
                    cache.accounts.remove(&id);
                }
            }
            deleted
        })
        .await
    }

    fn sweep_if_large(&self) {
        if self.tokens.len() + self.families.len() > self.sweep_at.load(Ordering::Relaxed) {
            self.sweep();
        }
    }

    /// Drops what concerns only expired access tokens: they fail verification before they get
    /// here. A family is kept for as long as the last access token it issued can live.
    fn sweep(&self) {
        // One sweeper at a time; the others go on.
        if !self.sweeping.insert(()) {
            return;
        }
        let now = chrono::Utc::now().timestamp();
        self.tokens.retain(|_, (_, exp)| *exp >= now);
        let keep = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2) + 60;
        self.families.retain(|_, at| at.saturating_add(keep) >= now);
        let left = self.tokens.len() + self.families.len();
        self.sweep_at
            .store((left * 2).max(SWEEP_AT), Ordering::Relaxed);
        self.sweeping.remove(&());
    }
}

/// What `map` holds for `key`, or what `read` finds (kept, unless a write came first); `None`
/// when the store has no such row, which is never kept.
async fn read_through<K, V>(
    map: &DashMap<K, V>,
    key: K,
    read: impl Future<Output = StoreResult<V>>,
) -> StoreResult<Option<V>>
where
    K: std::hash::Hash + Eq,
    V: Copy,
{
    if let Some(known) = map.get(&key) {
        return Ok(Some(*known));
    }
    match read.await {
        Ok(v) => Ok(Some(*map.entry(key).or_insert(v))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Runs a write that must finish in a task of its own: a caller hanging up (or its deadline)
/// cancels only the wait.
async fn detached<T: Send + 'static>(
    doing: &'static str,
    write: impl Future<Output = StoreResult<T>> + Send + 'static,
) -> StoreResult<T> {
    tokio::spawn(write)
        .await
        .map_err(|e| StoreError::Other(anyhow::anyhow!("{doing}: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_miss_never_replaces_what_a_write_put() {
        let users: DashMap<UserId, (Role, bool)> = DashMap::new();
        // A reader's store read (which saw the old value) is in flight when a write lands…
        let read = async {
            users.insert(7, (Role::User, true));
            Ok((Role::Admin, false))
        };
        // …and the reader then fills only an empty slot.
        assert_eq!(
            read_through(&users, 7, read).await.unwrap(),
            Some((Role::User, true))
        );
        let missing = async { Err(StoreError::NotFound) };
        assert_eq!(read_through(&users, 8, missing).await.unwrap(), None);
        assert!(!users.contains_key(&8), "a miss is not kept");
    }

    #[tokio::test]
    async fn expired_tokens_and_old_families_are_swept() {
        let store = tgfleet_persistence::SqliteStore::connect("sqlite::memory:")
            .await
            .unwrap();
        let cache = AuthCache::new(Arc::new(store), Duration::ZERO);
        let now = chrono::Utc::now().timestamp();
        cache.tokens.insert("old".into(), (true, now - 10));
        cache.tokens.insert("live".into(), (false, now + 600));
        cache.families.insert("gone".into(), now - 120);
        cache.families.insert("fresh".into(), now);
        cache.sweep();
        assert!(!cache.tokens.contains_key("old") && cache.tokens.contains_key("live"));
        assert!(cache.families.contains_key("fresh"));
        assert!(!cache.families.contains_key("gone"));
    }
}
