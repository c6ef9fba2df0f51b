//! State shared by all listeners and connections of one testdc.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::mpsc;

use crate::mtp::{AuthKey, KeyId};
use crate::persist::Persist;
use crate::updates::UpdateLimits;
use crate::world::{Binding, FaultState, World};
use crate::TestDcConfig;

/// The world, locked. Taking it mutably marks it changed, so a persisted testdc writes exactly
/// the changes out, without every mutation site having to remember to.
pub struct WorldGuard<'a> {
    world: MutexGuard<'a, World>,
    dirty: &'a AtomicBool,
}

impl Deref for WorldGuard<'_> {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl DerefMut for WorldGuard<'_> {
    fn deref_mut(&mut self) -> &mut World {
        self.dirty.store(true, Ordering::Relaxed);
        &mut self.world
    }
}

/// Updates for one user's live connections.
#[derive(Debug)]
pub struct Delivery {
    pub user: i64,
    /// Serialized `Updates`.
    pub bytes: Vec<u8>,
    /// The channel and pts these updates carry, if any: once they reach a live connection, a
    /// later getDifference tells this user to resume that channel from there.
    pub channel: Option<(i64, i32)>,
}

/// Something another task wants a connection to do.
#[derive(Debug)]
pub enum Push {
    /// Send these serialized `Updates` as a bare (non-RPC) message.
    Updates(Vec<u8>),
    /// Close the TCP connection now.
    Close,
}

/// One `initConnection` as it arrived, and on which connection and key.
#[derive(Debug, Clone)]
pub struct InitRecord {
    /// Increases by one per record, so a reader can ask for what came after what it saw.
    pub seq: u64,
    pub conn: u64,
    pub dc_id: i32,
    pub key_id: KeyId,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The user logged in on the key at the time, if any (a key signs in after its first
    /// connection; readers look the user up again).
    pub user_at_init: Option<i64>,
    pub init: crate::rpc::ClientInit,
}

/// Records of `initConnection` kept, newest last. A test reads a handful; a long-running sandbox
/// must not grow without bound, and 4,096 covers every connection of a fleet of thousands
/// connecting once.
pub const MAX_INIT_RECORDS: usize = 4096;

pub struct ConnEntry {
    pub dc_id: i32,
    pub key_id: Option<KeyId>,
    pub session_id: Option<i64>,
    pub tx: mpsc::UnboundedSender<Push>,
}

pub struct Shared {
    pub cfg: TestDcConfig,
    pub addrs: Vec<(i32, SocketAddr)>,
    pub keys: RwLock<HashMap<KeyId, Arc<AuthKey>>>,
    world: Mutex<World>,
    faults: Mutex<FaultState>,
    limits: Mutex<UpdateLimits>,
    /// Set when the world or the keys changed since they were last written out.
    dirty: AtomicBool,
    /// Where the world is kept across restarts (`TestDcConfig::state_dir`), if anywhere.
    pub persist: Option<Persist>,
    pub conns: Mutex<HashMap<u64, ConnEntry>>,
    /// What each connection's initConnection carried (see [`InitRecord`]).
    inits: Mutex<VecDeque<InitRecord>>,
    next_init: AtomicU64,
    pub next_conn: AtomicU64,
    pub live: AtomicUsize,
    pub requests: AtomicU64,
    pub swallowed: AtomicU64,
    /// File parts received (saveFilePart and saveBigFilePart), so a test can tell an upload
    /// from a send by reference.
    pub file_parts: AtomicU64,
    /// Where uploaded files' bytes are kept: `<state_dir>/files`, or a directory of this process
    /// removed with it.
    pub files_dir: std::path::PathBuf,
    files_dir_owned: bool,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.files_dir_owned {
            let _ = std::fs::remove_dir_all(&self.files_dir);
        }
    }
}

impl Shared {
    pub fn new(
        cfg: TestDcConfig,
        addrs: Vec<(i32, SocketAddr)>,
        world: World,
        keys: Vec<[u8; 256]>,
        persist: Option<Persist>,
    ) -> Self {
        let keys = keys
            .into_iter()
            .map(|data| {
                let key = AuthKey::new(data);
                (key.id, Arc::new(key))
            })
            .collect();
        let (files_dir, files_dir_owned) = match &cfg.state_dir {
            Some(dir) => (dir.join("files"), false),
            None => (
                std::env::temp_dir().join(format!(
                    "testdc-files-{}-{:016x}",
                    std::process::id(),
                    rand::random::<u64>()
                )),
                true,
            ),
        };
        Self {
            files_dir,
            files_dir_owned,
            file_parts: AtomicU64::new(0),
            cfg,
            addrs,
            keys: RwLock::new(keys),
            world: Mutex::new(world),
            faults: Mutex::new(FaultState::default()),
            limits: Mutex::new(UpdateLimits::default()),
            dirty: AtomicBool::new(false),
            persist,
            conns: Mutex::new(HashMap::new()),
            inits: Mutex::new(VecDeque::new()),
            next_init: AtomicU64::new(1),
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            swallowed: AtomicU64::new(0),
        }
    }

    /// The world lock. A panic elsewhere must not take the whole DC down, so poisoning is ignored.
    pub fn world(&self) -> WorldGuard<'_> {
        WorldGuard {
            world: self.world.lock().unwrap_or_else(|e| e.into_inner()),
            dirty: &self.dirty,
        }
    }

    pub fn faults(&self) -> MutexGuard<'_, FaultState> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The catch-up thresholds in force (a copy: reading them must not hold a lock).
    pub fn limits(&self) -> UpdateLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_limits(&self, limits: UpdateLimits) {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner()) = limits;
    }

    /// Is this connection's traffic swallowed (globally, or because its key is logged in as a
    /// black-holed phone)?
    pub fn black_holed(&self, key: Option<KeyId>, dc: i32) -> bool {
        {
            let f = self.faults();
            if f.black_hole {
                return true;
            }
            if f.phone_black_holes.is_empty() {
                return false;
            }
        }
        let phone = key.and_then(|k| self.world().bound_user(k, dc).and_then(|u| u.phone.clone()));
        self.faults().black_holed(phone.as_deref())
    }

    /// Writes the world and keys out if they changed and this testdc is persisted. Blocking
    /// (a small file, renamed into place); call it from a blocking context or accept the stall.
    pub fn persist_now(&self) {
        let Some(persist) = &self.persist else {
            return;
        };
        let _one_writer = persist.lock();
        // Cleared before the snapshot: a change made while writing marks it dirty again.
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        let snapshot = {
            let keys: Vec<[u8; 256]> = self
                .keys
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .map(|k| k.data)
                .collect();
            let world = self.world.lock().unwrap_or_else(|e| e.into_inner());
            crate::persist::encode(&self.addrs, &keys, &world)
        };
        if let Err(e) = snapshot.and_then(|bytes| persist.write(&bytes)) {
            self.dirty.store(true, Ordering::Release);
            tracing::error!("testdc: writing {} failed: {e:#}", persist.path().display());
        }
    }

    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    pub fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps what a connection's initConnection carried, dropping the oldest record past
    /// [`MAX_INIT_RECORDS`].
    pub fn record_init(&self, conn: u64, dc_id: i32, key_id: KeyId, init: crate::rpc::ClientInit) {
        let user_at_init = self.world().bound_user(key_id, dc_id).map(|u| u.id);
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut inits = self.inits.lock().unwrap_or_else(|e| e.into_inner());
        // Taken under the lock, so records are in `seq` order.
        let seq = self.next_init.fetch_add(1, Ordering::Relaxed);
        if inits.len() >= MAX_INIT_RECORDS {
            inits.pop_front();
        }
        inits.push_back(InitRecord {
            seq,
            conn,
            dc_id,
            key_id,
            at_ms,
            user_at_init,
            init,
        });
    }

    /// Every kept initConnection record, oldest first.
    pub fn inits(&self) -> Vec<InitRecord> {
        let inits = self.inits.lock().unwrap_or_else(|e| e.into_inner());
        inits.iter().cloned().collect()
    }

    pub fn key(&self, id: &KeyId) -> Option<Arc<AuthKey>> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn register_key(&self, data: [u8; 256]) {
        let key = AuthKey::new(data);
        self.keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.id, Arc::new(key));
        self.dirty.store(true, Ordering::Release);
        // The client uses the key as soon as this returns; a crash right after must not forget it.
        self.persist_now();
    }

    pub fn push_to(&self, targets: &[(KeyId, i32)], push: impl Fn() -> Push) {
        let conns = self.conns();
        for entry in conns.values() {
            if let Some(key) = entry.key_id {
                if targets.contains(&(key, entry.dc_id)) {
                    let _ = entry.tx.send(push());
                }
            }
        }
    }

    /// Sends each delivery to its user's live connections, in order; call it with the world
    /// unlocked. The channel pts that reached a connection are recorded as told.
    pub fn deliver(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let wanted: HashSet<i64> = deliveries.iter().map(|d| d.user).collect();
        // One pass over the bindings, not one per recipient: a channel can have many members.
        let targets: HashMap<(KeyId, i32), i64> = self
            .world()
            .bindings
            .iter()
            .filter_map(|(k, b)| match b {
                Binding::User(u) if wanted.contains(u) => Some((*k, *u)),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let mut reached = HashSet::new();
        {
            let conns = self.conns();
            for entry in conns.values() {
                let Some(&user) = entry.key_id.and_then(|k| targets.get(&(k, entry.dc_id))) else {
                    continue;
                };
                for d in deliveries.iter().filter(|d| d.user == user) {
                    if entry.tx.send(Push::Updates(d.bytes.clone())).is_ok() {
                        reached.insert(user);
                    }
                }
            }
        }
        let told: Vec<(i64, (i64, i32))> = deliveries
            .iter()
            .filter(|d| reached.contains(&d.user))
            .filter_map(|d| Some((d.user, d.channel?)))
            .collect();
        if told.is_empty() {
            return;
        }
        let mut w = self.world();
        for (user, (channel, pts)) in told {
            if let Some(u) = w.users.get_mut(&user) {
                u.told(channel, pts);
            }
        }
    }

    /// Closes every connection, or only those whose auth key is logged in as `user`.
    pub fn drop_connections(&self, user: Option<i64>) -> usize {
        let targets = user.map(|u| self.world().sessions_of(u));
        let conns = self.conns();
        let mut n = 0;
        for entry in conns.values() {
            let hit = match (&targets, entry.key_id) {
                (None, _) => true,
                (Some(t), Some(key)) => t.contains(&(key, entry.dc_id)),
                (Some(_), None) => false,
            };
            if hit && entry.tx.send(Push::Close).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Strict mode: is this key live on the same DC under another session id?
    pub fn duplicated(&self, conn_id: u64, key: KeyId, dc: i32, session: i64) -> bool {
        self.conns().iter().any(|(id, e)| {
            *id != conn_id
                && e.key_id == Some(key)
                && e.dc_id == dc
                && e.session_id.is_some_and(|s| s != session)
        })
    }

    pub fn bump_requests(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}
