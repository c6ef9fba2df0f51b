//! The grammers `Session` of one account, kept in memory and persisted sealed through the store.
//!
//! grammers reads `home_dc_id` and `dc_option` on every request, so everything is answered from
//! memory. Every change is serialized (JSON), sealed by the `SessionCipher` (account id bound) and
//! written with `Store::put_session` before the changing call returns. Writes coalesce: concurrent
//! changes queue on one flush lock and a change already covered by another caller's write is not
//! written again; a change that changes nothing is not written at all (grammers re-sets every DC
//! option after each new connection).
//!
//! Besides what grammers keeps (auth keys per DC, peers, update state), the session holds what
//! tgfleet must not lose across a dropped connection, a crash or a new process: the pending
//! login, and the SendMessage dedupe records.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use grammers_session::types::{
    ChannelState, DcOption, PeerId, PeerInfo, UpdateState, UpdatesState,
};
use grammers_session::{BoxFuture, Session, SessionData};
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{AccountId, Phone, SentMessage};

use crate::env::{AccountEnv, TelegramTarget};

/// Version of the serialized layout, so a later change can migrate old sessions.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(String),
    /// The database did not answer: an outage, not the session's fault.
    #[error("session store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("session cipher: {0}")]
    Cipher(String),
    /// The secrets backend could not be reached (sealed or unreachable Vault): not the session's
    /// fault, so the account waits for it instead of failing.
    #[error("session secrets backend: {0}")]
    SecretsUnavailable(String),
    #[error("session encoding: {0}")]
    Encoding(String),
    #[error("session setup: {0}")]
    Setup(String),
}

impl SessionError {
    fn from_store(e: tgfleet_persistence::StoreError) -> Self {
        match e {
            tgfleet_persistence::StoreError::Unavailable(m) => Self::StoreUnavailable(m),
            other => Self::Store(other.to_string()),
        }
    }

    fn from_cipher(e: tgfleet_persistence::CipherError) -> Self {
        match e {
            tgfleet_persistence::CipherError::Unavailable(m) => Self::SecretsUnavailable(m),
            other => Self::Cipher(other.to_string()),
        }
    }

    /// The dependency whose outage caused this, if any.
    pub fn dependency(&self) -> Option<crate::Dependency> {
        match self {
            Self::StoreUnavailable(_) => Some(crate::Dependency::Store),
            Self::SecretsUnavailable(_) => Some(crate::Dependency::Vault),
            Self::Store(_) | Self::Cipher(_) | Self::Encoding(_) | Self::Setup(_) => None,
        }
    }
}

/// The app the account behind `row` speaks for: its own when the row names one (an imported
/// session's), its api_hash opened here, in the account core, like the session; the fleet's
/// otherwise.
pub async fn app_for(
    env: &AccountEnv,
    row: &tgfleet_persistence::Account,
) -> Result<std::sync::Arc<crate::env::App>, SessionError> {
    let fleet = || env.fleet_app();
    let Some(api_id) = row.api_id else {
        return Ok(fleet());
    };
    let sealed = env
        .store
        .account_api_hash(row.id)
        .await
        .map_err(SessionError::from_store)?;
    let Some(sealed) = sealed else {
        // Written together by the import; a row with one and not the other was edited by hand
        // (or a store lost the column). Falling back to the fleet's app would make this
        // authorization speak for another app behind its owner's back: fail, so the account
        // ends quarantined with this message instead.
        return Err(SessionError::Setup(format!(
            "the account names its own app (api_id {api_id}) but its api_hash is missing"
        )));
    };
    let api_hash = env
        .cipher
        .open_api_hash(row.id, &sealed)
        .await
        .map_err(SessionError::from_cipher)?;
    Ok(std::sync::Arc::new(crate::env::App {
        api_id,
        api_hash: api_hash.to_string(),
    }))
}

/// The proxy the account behind `row` connects through, its URL opened here like the session.
/// A row bound to a proxy that cannot be read fails the account rather than connecting it
/// directly: an account bound to a proxy never shows Telegram this host's address.
pub async fn proxy_for(
    env: &AccountEnv,
    row: &tgfleet_persistence::Account,
) -> Result<Option<tgfleet_persistence::ProxyUrl>, SessionError> {
    let Some(proxy_id) = row.proxy_id else {
        return Ok(None);
    };
    let sealed = match env.store.proxy_url(proxy_id).await {
        Ok(sealed) => sealed,
        Err(tgfleet_persistence::StoreError::NotFound) => {
            return Err(SessionError::Setup(format!(
                "the account is bound to proxy {proxy_id}, which does not exist"
            )))
        }
        Err(e) => return Err(SessionError::from_store(e)),
    };
    let url = env
        .cipher
        .open_proxy_url(proxy_id, &sealed)
        .await
        .map_err(SessionError::from_cipher)?;
    Ok(Some(url))
}

/// A login that has started and not finished. Lives in the session so it survives everything.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum PendingLogin {
    /// auth.sendCode answered; `phone_code_hash` is bound to this session's auth key.
    Code {
        phone: Phone,
        phone_code_hash: String,
        code_type: String,
        timeout_s: Option<u32>,
        sent_at: DateTime<Utc>,
    },
    /// SESSION_PASSWORD_NEEDED after a code or a QR scan.
    Password {
        hint: Option<String>,
        phone: Option<Phone>,
    },
    /// auth.exportLoginToken answered; completes on updateLoginToken.
    Qr {
        expires_at: DateTime<Utc>,
        /// The newest token's `tg://login` URL, so showing the QR again shows this token instead
        /// of minting another (absent in sessions written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // phone_code_hash is a credential for the pending sign-in: never printed.
        match self {
            Self::Code { code_type, .. } => write!(f, "Code({code_type})"),
            Self::Password { .. } => f.write_str("Password"),
            Self::Qr { expires_at, .. } => write!(f, "Qr(until {expires_at})"),
        }
    }
}

/// A send by dedupe key as sessions written before `sent_messages` (migration 0015) kept it;
/// read once at load, handed to the store, and not written again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct LegacySent {
    key: String,
    random_id: i64,
    message_id: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more_ids: Vec<i32>,
}

impl From<LegacySent> for SentMessage {
    fn from(old: LegacySent) -> Self {
        Self {
            dedupe_key: old.key,
            random_id: old.random_id,
            message_ids: old.message_id.into_iter().chain(old.more_ids).collect(),
        }
    }
}

/// What is serialized, sealed and stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    home_dc: i32,
    dc_options: Vec<DcOption>,
    peers: Vec<PeerInfo>,
    updates: UpdatesState,
    login: Option<PendingLogin>,
    /// Only in sessions from before `sent_messages` (see [`LegacySent`]); written empty, so a
    /// binary from before it still reads the session.
    #[serde(default)]
    sent: Vec<LegacySent>,
}

impl Stored {
    fn decode(plain: &[u8]) -> Result<Self, SessionError> {
        let stored: Stored =
            serde_json::from_slice(plain).map_err(|e| SessionError::Encoding(e.to_string()))?;
        if stored.format != FORMAT {
            return Err(SessionError::Encoding(format!(
                "unknown session format {}",
                stored.format
            )));
        }
        Ok(stored)
    }
}

/// The part of a stored session that leaves the account core: the DCs and their auth keys and
/// who is logged in, for an export (and for tests and benches that check what was stored).
/// It holds auth keys, so `Debug` shows none and dropping it wipes them.
pub struct StoredKeys {
    pub home_dc: i32,
    pub dc_options: Vec<DcOption>,
    /// The logged-in user's id and whether it is a bot, when the session is authorized.
    pub self_user: Option<(i64, Option<bool>)>,
}

impl StoredKeys {
    /// The auth key of the home DC, the one the login is bound to.
    pub fn home_key(&self) -> Option<[u8; 256]> {
        self.dc_options
            .iter()
            .find(|o| o.id == self.home_dc)
            .and_then(|o| o.auth_key)
    }
}

fn wipe_keys(options: &mut [DcOption]) {
    use zeroize::Zeroize as _;
    for option in options {
        if let Some(key) = option.auth_key.as_mut() {
            key.zeroize();
        }
    }
}

impl Drop for StoredKeys {
    fn drop(&mut self) {
        wipe_keys(&mut self.dc_options);
    }
}

impl fmt::Debug for StoredKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKeys")
            .field("home_dc", &self.home_dc)
            .field(
                "dcs",
                &self.dc_options.iter().map(|o| o.id).collect::<Vec<_>>(),
            )
            .field("self_user", &self.self_user)
            .finish_non_exhaustive()
    }
}

/// Opens the sealed session the store holds for `account_id` (`None`: it has none).
pub async fn read_stored(
    store: &dyn tgfleet_persistence::Store,
    cipher: &tgfleet_persistence::SessionCipher,
    account_id: AccountId,
) -> Result<Option<StoredKeys>, SessionError> {
    let Some(sealed) = store
        .session(account_id)
        .await
        .map_err(SessionError::from_store)?
    else {
        return Ok(None);
    };
    let plain = zeroize::Zeroizing::new(
        cipher
            .open(account_id, &sealed)
            .await
            .map_err(SessionError::from_cipher)?,
    );
    let stored = Stored::decode(&plain)?;
    let self_user = stored.peers.iter().find_map(|p| match p {
        PeerInfo::User {
            id,
            bot,
            is_self: Some(true),
            ..
        } => Some((*id, *bot)),
        _ => None,
    });
    Ok(Some(StoredKeys {
        home_dc: stored.home_dc,
        dc_options: stored.dc_options,
        self_user,
    }))
}

/// A new session that was logged in elsewhere (an import): its DCs and keys, the user it is
/// logged in as and the update state, serialized in this module's format. The caller seals it.
pub(crate) fn imported_plain(
    home_dc: i32,
    dc_options: &[DcOption],
    self_user: PeerInfo,
    updates: UpdatesState,
) -> Result<zeroize::Zeroizing<Vec<u8>>, SessionError> {
    let mut stored = Stored {
        format: FORMAT,
        home_dc,
        dc_options: dc_options.to_vec(),
        peers: vec![self_user],
        updates,
        login: None,
        sent: Vec::new(),
    };
    let plain = serde_json::to_vec(&stored)
        .map(zeroize::Zeroizing::new)
        .map_err(|e| SessionError::Encoding(e.to_string()));
    wipe_keys(&mut stored.dc_options);
    plain
}

struct Inner {
    home_dc: i32,
    dc_options: HashMap<i32, DcOption>,
    peers: HashMap<PeerId, PeerInfo>,
    /// The cached peers, oldest first: past `peer_capacity` the oldest goes (never the self
    /// user), so an account that meets many chats keeps a bounded session.
    peer_order: VecDeque<PeerId>,
    peer_capacity: usize,
    self_user: Option<PeerId>,
    updates: UpdatesState,
    login: Option<PendingLogin>,
    /// Bumped by every change; compared with the persisted version to skip redundant writes.
    version: u64,
}

impl Inner {
    /// Adds or completes a peer; the self user also becomes this session's user. True when
    /// anything changed.
    fn cache_peer(&mut self, peer: PeerInfo) -> bool {
        let id = peer.id();
        if matches!(
            peer,
            PeerInfo::User {
                is_self: Some(true),
                ..
            }
        ) {
            self.self_user = Some(id);
        }
        match self.peers.get_mut(&id) {
            Some(known) => {
                let before = known.clone();
                known.extend_info(&peer);
                let changed = *known != before;
                // Seen again: the newest again, so a chat in use is the last to go.
                self.touch_peer(id);
                changed
            }
            None => {
                self.insert_peer(peer);
                true
            }
        }
    }

    fn insert_peer(&mut self, peer: PeerInfo) {
        let id = peer.id();
        if self.peers.insert(id, peer).is_none() {
            self.peer_order.push_back(id);
        }
        while self.peers.len() > self.peer_capacity.max(1) {
            let self_user = self.self_user;
            let Some(at) = self
                .peer_order
                .iter()
                .position(|p| Some(*p) != self_user && *p != id)
            else {
                break;
            };
            if let Some(oldest) = self.peer_order.remove(at) {
                self.peers.remove(&oldest);
            }
        }
    }

    fn touch_peer(&mut self, id: PeerId) {
        if self.peer_order.back() != Some(&id) {
            self.peer_order.retain(|p| *p != id);
            self.peer_order.push_back(id);
        }
    }

    fn remove_peer(&mut self, id: PeerId) {
        if self.peers.remove(&id).is_some() {
            self.peer_order.retain(|p| *p != id);
        }
    }

    fn set_update_state(&mut self, update: UpdateState) -> bool {
        let state = &mut self.updates;
        let before = state.clone();
        match update {
            UpdateState::All(all) => *state = all,
            UpdateState::Primary { pts, date, seq } => {
                state.pts = pts;
                state.date = date;
                state.seq = seq;
            }
            UpdateState::Secondary { qts } => state.qts = qts,
            UpdateState::Channel { id, pts } => {
                state.channels.retain(|c| c.id != id);
                state.channels.push(ChannelState { id, pts });
            }
        }
        *state != before
    }

    fn to_stored(&self) -> Stored {
        let mut dc_options: Vec<DcOption> = self.dc_options.values().cloned().collect();
        dc_options.sort_by_key(|o| o.id);
        Stored {
            format: FORMAT,
            home_dc: self.home_dc,
            dc_options,
            peers: self
                .peer_order
                .iter()
                .filter_map(|id| self.peers.get(id).cloned())
                .collect(),
            updates: self.updates.clone(),
            login: self.login.clone(),
            sent: Vec::new(),
        }
    }

    fn from_stored(stored: Stored, peer_capacity: usize) -> Self {
        let mut peers: HashMap<PeerId, PeerInfo> = HashMap::with_capacity(stored.peers.len());
        let mut peer_order = VecDeque::with_capacity(stored.peers.len());
        for peer in stored.peers {
            let id = peer.id();
            if peers.insert(id, peer).is_none() {
                peer_order.push_back(id);
            }
        }
        let self_user = peers
            .values()
            .find(|p| {
                matches!(
                    p,
                    PeerInfo::User {
                        is_self: Some(true),
                        ..
                    }
                )
            })
            .map(|p| p.id());
        Self {
            home_dc: stored.home_dc,
            dc_options: stored.dc_options.into_iter().map(|o| (o.id, o)).collect(),
            peers,
            peer_order,
            peer_capacity,
            self_user,
            updates: stored.updates,
            login: stored.login,
            version: 0,
        }
    }
}

/// The session of one account; shared (`Arc`) by the actor, its tasks and the grammers runner.
pub struct StoreSession {
    account_id: AccountId,
    env: Arc<AccountEnv>,
    inner: Mutex<Inner>,
    /// Version last written to the store; held across the write so writes never interleave.
    persisted: tokio::sync::Mutex<u64>,
    /// Set by `wipe`: nothing is written any more (a logged-out session must stay deleted).
    wiped: AtomicBool,
    /// DCs other than the home DC that this login was copied to (auth.importAuthorization),
    /// for files kept there. Not kept across restarts: a copy is cheap to make again.
    authorized_dcs: Mutex<std::collections::HashSet<i32>>,
    /// `@username` → the peer it resolved to, and when: a send to a username does not cost a
    /// `contacts.resolveUsername` (which Telegram limits hard) each time. Memory only, bounded
    /// by [`USERNAME_CACHE`] entries, each trusted for [`USERNAME_TTL`] (a name can change hands).
    usernames: Mutex<HashMap<String, (PeerId, std::time::Instant)>>,
}

/// The most `@username`s one account remembers.
pub const USERNAME_CACHE: usize = 256;
/// How long a resolved `@username` is trusted.
pub const USERNAME_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl StoreSession {
    /// Loads the account's session, or creates (and persists) a fresh one for the configured
    /// Telegram target.
    pub async fn load_or_create(
        account_id: AccountId,
        env: Arc<AccountEnv>,
    ) -> Result<Arc<Self>, SessionError> {
        let sealed = env
            .store
            .session(account_id)
            .await
            .map_err(SessionError::from_store)?;
        let mut migrated = false;
        let (inner, fresh) = match sealed {
            Some(sealed) => {
                let plain = env
                    .cipher
                    .open(account_id, &sealed)
                    .await
                    .map_err(SessionError::from_cipher)?;
                let capacity = env.limits.peer_cache_capacity;
                let mut stored = Stored::decode(&plain)?;
                let legacy = std::mem::take(&mut stored.sent);
                migrated = !legacy.is_empty();
                if migrated {
                    // Into the table first: the next session write drops them from the blob.
                    env.store
                        .record_sent_messages(
                            account_id,
                            legacy.into_iter().map(SentMessage::from).collect(),
                            keep_of(env.limits.dedupe_capacity),
                        )
                        .await
                        .map_err(SessionError::from_store)?;
                }
                (Inner::from_stored(stored, capacity), false)
            }
            None => (
                fresh_inner(&env.telegram.target, env.limits.peer_cache_capacity)?,
                true,
            ),
        };
        let session = Arc::new(Self {
            account_id,
            env,
            inner: Mutex::new(inner),
            persisted: tokio::sync::Mutex::new(0),
            wiped: AtomicBool::new(false),
            authorized_dcs: Mutex::default(),
            usernames: Mutex::default(),
        });
        if fresh || migrated {
            // A registered testdc key must be durable before it is used, or a crash right now
            // would leave an orphan key on the server and a different one in the next session.
            // Migrated sends leave the blob at once, so a later load cannot record them again
            // as newer than sends made since.
            session.lock().version = 1;
            session.persist().await?;
        }
        Ok(session)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update of plain data; the data
        // is still the best we have.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` and, if it reports a change, persists before returning.
    async fn change(&self, change: impl FnOnce(&mut Inner) -> bool) -> Result<(), SessionError> {
        {
            let mut inner = self.lock();
            if !change(&mut inner) {
                return Ok(());
            }
            inner.version += 1;
        }
        self.persist().await
    }

    /// Writes the current state unless a write of it (or a later one) already happened.
    pub async fn persist(&self) -> Result<(), SessionError> {
        let mut persisted = self.persisted.lock().await;
        if self.wiped.load(Ordering::SeqCst) {
            return Ok(());
        }
        let (version, plain) = {
            let inner = self.lock();
            if inner.version <= *persisted {
                return Ok(());
            }
            let plain = serde_json::to_vec(&inner.to_stored())
                .map_err(|e| SessionError::Encoding(e.to_string()))?;
            (inner.version, plain)
        };
        let sealed = self
            .env
            .cipher
            .seal(self.account_id, &plain)
            .await
            .map_err(SessionError::from_cipher)?;
        self.env
            .store
            .put_session(self.account_id, &sealed)
            .await
            .map_err(SessionError::from_store)?;
        *persisted = version;
        Ok(())
    }

    /// Deletes the stored session; from now on nothing is written (logout).
    pub async fn wipe(&self) -> Result<(), SessionError> {
        let _persisted = self.persisted.lock().await;
        self.wiped.store(true, Ordering::SeqCst);
        self.env
            .store
            .delete_session(self.account_id)
            .await
            .map_err(SessionError::from_store)
    }

    pub fn home_dc(&self) -> i32 {
        self.lock().home_dc
    }

    pub fn pending_login(&self) -> Option<PendingLogin> {
        self.lock().login.clone()
    }

    /// A login is done: the self user, the update state and the end of the pending login land
    /// in one sealed write, so a crash or a failed write leaves either the pending login (the
    /// step can be retried) or the finished login, never a logged-in user with a stale pending
    /// login.
    pub async fn finish_login(
        &self,
        self_user: PeerInfo,
        updates: Option<UpdatesState>,
    ) -> Result<(), SessionError> {
        let id = self_user.id();
        let before = {
            let mut inner = self.lock();
            let before = (
                inner.login.clone(),
                inner.self_user,
                inner.peers.get(&id).cloned(),
                inner.updates.clone(),
            );
            inner.cache_peer(self_user);
            if let Some(all) = updates {
                inner.set_update_state(UpdateState::All(all));
            }
            inner.login = None;
            inner.version += 1;
            before
        };
        let written = self.persist().await;
        if written.is_err() {
            // Not written, so not done: the session goes back to the pending login, and the
            // step can be retried (a later write must not store a login that never landed).
            let (login, self_user, peer, updates) = before;
            let mut inner = self.lock();
            inner.login = login;
            inner.self_user = self_user;
            match peer {
                Some(peer) => inner.insert_peer(peer),
                None => inner.remove_peer(id),
            };
            inner.updates = updates;
            inner.version += 1;
        }
        written
    }

    pub async fn set_pending_login(&self, login: Option<PendingLogin>) -> Result<(), SessionError> {
        self.change(|inner| {
            if inner.login == login {
                return false;
            }
            inner.login = login;
            true
        })
        .await
    }

    /// The logged-in user's id, if this session is authorized (as far as it knows).
    pub fn self_user_id(&self) -> Option<i64> {
        self.lock().self_user.and_then(|id| id.bare_id())
    }

    /// Forgets the logged-in user (Telegram said the authorization is gone).
    pub async fn forget_self_user(&self) -> Result<(), SessionError> {
        self.change(|inner| match inner.self_user.take() {
            Some(id) => {
                inner.remove_peer(id);
                true
            }
            None => false,
        })
        .await
    }

    /// A cached peer; a hit makes it the newest (memory only: the order is written with the
    /// next change, and a lost touch costs at most an earlier eviction).
    pub fn cached_peer(&self, id: PeerId) -> Option<PeerInfo> {
        let mut inner = self.lock();
        let found = inner.peers.get(&id).cloned();
        if found.is_some() {
            inner.touch_peer(id);
        }
        found
    }

    /// The peer `username` (lower case) resolved to within [`USERNAME_TTL`], if its access
    /// hash is still cached.
    pub fn resolved_username(&self, username: &str) -> Option<PeerInfo> {
        let id = {
            let mut names = self.usernames.lock().unwrap_or_else(|e| e.into_inner());
            match names.get(username) {
                Some((id, at)) if at.elapsed() < USERNAME_TTL => *id,
                Some(_) => {
                    names.remove(username);
                    return None;
                }
                None => return None,
            }
        };
        self.cached_peer(id)
    }

    /// Remembers what `username` (lower case) resolved to; past [`USERNAME_CACHE`] names the
    /// expired go, then the oldest.
    pub fn remember_username(&self, username: String, id: PeerId) {
        let mut names = self.usernames.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() >= USERNAME_CACHE && !names.contains_key(&username) {
            names.retain(|_, (_, at)| at.elapsed() < USERNAME_TTL);
            if names.len() >= USERNAME_CACHE {
                let oldest = names
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    names.remove(&k);
                }
            }
        }
        names.insert(username, (id, std::time::Instant::now()));
    }

    /// Whether this login works in `dc` (the home DC, or one it was copied to).
    pub fn authorized_in(&self, dc: i32) -> bool {
        dc == self.home_dc()
            || self
                .authorized_dcs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&dc)
    }

    pub fn mark_authorized_in(&self, dc: i32) {
        self.authorized_dcs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dc);
    }

    /// What the send `key` came to, if this account still keeps it (its newest
    /// `dedupe_capacity` keys, in the store's `sent_messages`).
    pub async fn sent_record(&self, key: &str) -> Result<Option<SentMessage>, SessionError> {
        self.env
            .store
            .sent_message(self.account_id, key)
            .await
            .map_err(SessionError::from_store)
    }

    /// Records (durably) the random_id of a dedupe key before its first send: one small row,
    /// not a rewrite of the sealed session.
    pub async fn begin_send(&self, key: &str, random_id: i64) -> Result<(), SessionError> {
        let sent = SentMessage {
            dedupe_key: key.to_owned(),
            random_id,
            message_ids: Vec::new(),
        };
        self.env
            .store
            .record_sent_messages(
                self.account_id,
                vec![sent],
                keep_of(self.env.limits.dedupe_capacity),
            )
            .await
            .map_err(SessionError::from_store)
    }

    /// Records the message ids Telegram gave the send (an album's in order).
    pub async fn complete_send(&self, key: &str, ids: &[i32]) -> Result<(), SessionError> {
        self.env
            .store
            .complete_sent_message(self.account_id, key, ids)
            .await
            .map_err(SessionError::from_store)
    }
}

/// How many dedupe keys an account keeps, as the store takes it.
fn keep_of(capacity: usize) -> u32 {
    u32::try_from(capacity.max(1)).unwrap_or(u32::MAX)
}

fn fresh_inner(target: &TelegramTarget, peer_capacity: usize) -> Result<Inner, SessionError> {
    let mut inner = Inner {
        home_dc: 0,
        dc_options: HashMap::new(),
        peers: HashMap::new(),
        peer_order: VecDeque::new(),
        peer_capacity,
        self_user: None,
        updates: UpdatesState::default(),
        login: None,
        version: 0,
    };
    match target {
        TelegramTarget::Production => {
            let data = SessionData::default();
            inner.home_dc = data.home_dc;
            inner.dc_options = data.dc_options;
        }
        TelegramTarget::TestDc { dcs, register_key } => {
            let Some((home, _)) = dcs.first() else {
                return Err(SessionError::Setup("testdc target without DCs".into()));
            };
            inner.home_dc = *home;
            for (id, addr) in dcs {
                let SocketAddr::V4(ipv4) = *addr else {
                    return Err(SessionError::Setup(format!(
                        "testdc DC {id} must have an IPv4 address, got {addr}"
                    )));
                };
                let key = new_auth_key();
                register_key(key);
                inner.dc_options.insert(
                    *id,
                    DcOption {
                        id: *id,
                        ipv4,
                        // What grammers itself derives from an IPv4-only config, so its
                        // re-set after help.getConfig is no change (and no write).
                        ipv6: SocketAddrV6::new(ipv4.ip().to_ipv6_mapped(), ipv4.port(), 0, 0),
                        auth_key: Some(key),
                    },
                );
            }
        }
    }
    Ok(inner)
}

fn new_auth_key() -> [u8; 256] {
    use rand::RngCore;
    let mut key = [0u8; 256];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

impl Session for StoreSession {
    type Error = SessionError;

    fn home_dc_id(&self) -> Result<i32, SessionError> {
        Ok(self.lock().home_dc)
    }

    fn set_home_dc_id(&self, dc_id: i32) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.change(move |inner| {
            let changed = inner.home_dc != dc_id;
            inner.home_dc = dc_id;
            changed
        }))
    }

    fn dc_option(&self, dc_id: i32) -> Result<Option<DcOption>, SessionError> {
        Ok(self.lock().dc_options.get(&dc_id).cloned())
    }

    fn set_dc_option(&self, dc_option: &DcOption) -> BoxFuture<'_, Result<(), SessionError>> {
        let dc_option = dc_option.clone();
        Box::pin(self.change(move |inner| {
            if inner.dc_options.get(&dc_option.id) == Some(&dc_option) {
                return false;
            }
            inner.dc_options.insert(dc_option.id, dc_option);
            true
        }))
    }

    fn peer(&self, peer: PeerId) -> BoxFuture<'_, Result<Option<PeerInfo>, SessionError>> {
        Box::pin(async move {
            let inner = self.lock();
            // The updates machinery asks for `self_user()` to learn who is logged in; the
            // built-in MemorySession answers None here.
            let id = if peer == PeerId::self_user() {
                match inner.self_user {
                    Some(id) => id,
                    None => return Ok(None),
                }
            } else {
                peer
            };
            Ok(inner.peers.get(&id).cloned())
        })
    }

    fn cache_peer(&self, peer: PeerInfo) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.change(move |inner| inner.cache_peer(peer)))
    }

    /// One sealed write for the whole batch (a page of dialogs is a hundred peers), not one each.
    fn cache_peers(&self, peers: Vec<PeerInfo>) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.change(move |inner| {
            peers
                .into_iter()
                .fold(false, |changed, peer| inner.cache_peer(peer) | changed)
        }))
    }

    fn updates_state(&self) -> BoxFuture<'_, Result<UpdatesState, SessionError>> {
        Box::pin(async move { Ok(self.lock().updates.clone()) })
    }

    fn set_update_state(&self, update: UpdateState) -> BoxFuture<'_, Result<(), SessionError>> {
        Box::pin(self.change(move |inner| inner.set_update_state(update)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(id: i64) -> PeerInfo {
        PeerInfo::Channel {
            id,
            auth: Some(grammers_session::types::PeerAuth::from_hash(id * 7)),
            kind: None,
        }
    }

    #[test]
    fn the_peer_cache_keeps_the_newest_and_the_self_user_and_survives_a_reload() {
        let mut inner = fresh_inner(&TelegramTarget::Production, 3).unwrap();
        inner.cache_peer(PeerInfo::User {
            id: 1,
            auth: None,
            bot: Some(false),
            is_self: Some(true),
        });
        for id in 10..20 {
            inner.cache_peer(channel(id));
        }
        let kept = |inner: &Inner| {
            let mut ids: Vec<_> = inner.peers.keys().copied().collect();
            ids.sort_by_key(|p| p.bot_api_dialog_id());
            ids
        };
        let expected = vec![
            PeerId::channel(19).unwrap(),
            PeerId::channel(18).unwrap(),
            PeerId::user(1).unwrap(),
        ];
        assert_eq!(kept(&inner), expected, "the self user and the two newest");
        assert_eq!(inner.peer_order.len(), 3);
        // Stored oldest first, reloaded in that order: the next eviction is the same.
        let mut reloaded = Inner::from_stored(inner.to_stored(), 3);
        assert_eq!(kept(&reloaded), expected);
        reloaded.cache_peer(channel(30));
        assert!(!reloaded.peers.contains_key(&PeerId::channel(18).unwrap()));
        assert!(reloaded.peers.contains_key(&PeerId::channel(30).unwrap()));
        assert_eq!(reloaded.self_user, PeerId::user(1));
        // A peer seen again is the newest: the one not seen since goes first.
        reloaded.cache_peer(channel(19));
        reloaded.cache_peer(channel(31));
        assert!(reloaded.peers.contains_key(&PeerId::channel(19).unwrap()));
        assert!(!reloaded.peers.contains_key(&PeerId::channel(30).unwrap()));
    }
}
