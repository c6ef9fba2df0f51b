//! State shared by all listeners and connections of one testdc.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::mpsc;

use crate::mtp::{AuthKey, KeyId};
use crate::world::World;
use crate::TestDcConfig;

/// Something another task wants a connection to do.
#[derive(Debug)]
pub enum Push {
    /// Send these serialized `Updates` as a bare (non-RPC) message.
    Updates(Vec<u8>),
    /// Close the TCP connection now.
    Close,
}

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
    pub conns: Mutex<HashMap<u64, ConnEntry>>,
    pub next_conn: AtomicU64,
    pub live: AtomicUsize,
    pub requests: AtomicU64,
    pub swallowed: AtomicU64,
}

impl Shared {
    pub fn new(cfg: TestDcConfig, addrs: Vec<(i32, SocketAddr)>) -> Self {
        Self {
            cfg,
            addrs,
            keys: RwLock::new(HashMap::new()),
            world: Mutex::new(World::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            swallowed: AtomicU64::new(0),
        }
    }

    /// The world lock. A panic elsewhere must not take the whole DC down, so poisoning is ignored.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn conns(&self) -> MutexGuard<'_, HashMap<u64, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
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

    pub fn push_to_user(&self, user: i64, updates: Vec<u8>) {
        let targets = self.world().sessions_of(user);
        self.push_to(&targets, || Push::Updates(updates.clone()));
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
