//! testdc: a fake Telegram data centre that speaks real MTProto 2.0 to the real grammers client.
//!
//! grammers pins Telegram's RSA keys, so no local server can finish a DH key exchange. testdc
//! therefore works with **pre-shared auth keys**: create one with [`new_auth_key`], register it
//! with [`TestDc::register_auth_key`] (or `POST /keys` on the control port) and seed it into the
//! client's session with [`seed_session`]. The client then skips DH and talks to testdc as if it
//! were Telegram: DCs 1–5 on consecutive loopback ports, login by code / 2FA / QR / bot token,
//! DC migration, messages, and injectable faults.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use grammers_session::storages::MemorySession;
//! use tgfleet_testdc::{new_auth_key, seed_session, TestDc, TestDcConfig, UserSpec};
//!
//! let dc = TestDc::start(TestDcConfig::default()).await?;
//! dc.add_user(UserSpec::new("+15550001", "Alice"));
//! let key = new_auth_key();
//! dc.register_auth_key(key);
//! let session = Arc::new(MemorySession::default());
//! seed_session(&*session, &dc, 2, key).await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
//! // SenderPool::new(session, api_id) … as usual; the pool now talks to testdc.
//! # Ok(()) }
//! ```

mod conn;
mod control;
pub mod mtp;
mod persist;
pub mod probe;
mod rpc;
mod shared;
mod srp;
mod tlb;
mod updates;
mod world;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use control::{apply_fault, control_router, run_standalone, FaultBody, FaultError};
pub use rpc::control_send::{SendError, SentMessage};
pub use rpc::ClientInit;
pub use updates::{
    UpdateLimits, CHANNEL_DIFFERENCE_TOO_LONG, DIFFERENCE_PAGE, DIFFERENCE_TOO_LONG, LOG_KEEP,
};
pub use world::{
    EntityRec, FaultLimit, FileRec, PeerRef, StoredMessage, UserSpec, MAX_DELAY, MAX_FLOOD_SECONDS,
    MAX_RULES, MAX_RULES_PER_PHONE,
};

use shared::Shared;
use world::{normalize_phone, Binding};

/// How testdc is laid out and behaves. Plain data (no CLI types) so a binary can fill it in.
#[derive(Clone, Debug)]
pub struct TestDcConfig {
    /// Address every DC listens on (loopback by default).
    pub host: IpAddr,
    /// Port of DC 1; DC n listens on `base_port + n - 1`. `0` picks free ports.
    pub base_port: u16,
    /// Number of DCs (ids 1..=dc_count).
    pub dc_count: u8,
    /// Every login code is this, instead of five random digits.
    pub fixed_code: Option<String>,
    /// How long a login code stays valid; after it, `auth.signIn` answers PHONE_CODE_EXPIRED.
    pub code_lifetime: Duration,
    /// Answer AUTH_KEY_DUPLICATED when one key is live on two connections to the same DC with
    /// different session ids (what Telegram does when a session is used in two places at once).
    pub strict_duplicate_keys: bool,
    /// Unknown phones get an account on their first `auth.sendCode`; phones ending in 9 get the
    /// 2FA password `sandbox-2fa`.
    pub sandbox_directory: bool,
    /// Keep the world (users, auth keys, logins, pending codes, messages) and the DC ports in
    /// this directory, and start from them again: sessions keep the addresses and keys they were
    /// given, so a testdc that forgot them would strand every account. `None`: all in memory.
    pub state_dir: Option<PathBuf>,
}

impl Default for TestDcConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            dc_count: 5,
            fixed_code: None,
            code_lifetime: Duration::from_secs(300),
            strict_duplicate_keys: false,
            sandbox_directory: false,
            state_dir: None,
        }
    }
}

/// A running testdc. Cheap to clone; every clone controls the same DCs.
#[derive(Clone)]
pub struct TestDc {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Arc<std::sync::Mutex<Option<JoinSet<()>>>>,
}

/// A random 256-byte auth key.
pub fn new_auth_key() -> [u8; 256] {
    let mut key = [0u8; 256];
    rand::Rng::fill(&mut rand::thread_rng(), &mut key[..]);
    key
}

/// The error name `revoke` makes the revoked sessions see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RevokeKind {
    SessionRevoked,
    AuthKeyUnregistered,
}

impl RevokeKind {
    pub(crate) fn error_name(self) -> &'static str {
        match self {
            RevokeKind::SessionRevoked => "SESSION_REVOKED",
            RevokeKind::AuthKeyUnregistered => "AUTH_KEY_UNREGISTERED",
        }
    }
}

/// Fault injection. Every fault holds until cleared (flood waits also end when their time is up).
#[derive(Clone)]
pub struct Faults {
    shared: Arc<Shared>,
}

impl Faults {
    /// Closes every connection now, or only those logged in as `phone`. Returns how many.
    pub fn drop_connections(&self, phone: Option<&str>) -> usize {
        let user = match phone {
            Some(p) => match self.shared.world().user_by_phone(p).map(|u| u.id) {
                Some(id) => Some(id),
                None => return 0,
            },
            None => None,
        };
        self.shared.drop_connections(user)
    }

    /// Answer `method` (e.g. `"messages.sendMessage"`) with FLOOD_WAIT_X for `seconds`, for one
    /// phone or for everyone. X counts down as time passes. A second rule for the same method
    /// and phone replaces the first; past the rule caps the rule is dropped (see
    /// [`Faults::try_flood_wait`] to be told).
    pub fn flood_wait(&self, method: &str, phone: Option<&str>, seconds: u32) {
        if let Err(limit) = self.try_flood_wait(method, phone, seconds) {
            tracing::warn!(?limit, "testdc: flood rule dropped, too many fault rules");
        }
    }

    pub fn try_flood_wait(
        &self,
        method: &str,
        phone: Option<&str>,
        seconds: u32,
    ) -> Result<(), FaultLimit> {
        self.shared.faults().add_flood(world::FloodRule {
            method: method.to_owned(),
            phone: phone.map(normalize_phone),
            until: Instant::now() + Duration::from_secs(seconds as u64),
        })
    }

    /// Accept connections and requests but never answer any of them.
    pub fn black_hole(&self, on: bool) {
        self.shared.faults().black_hole = on;
    }

    /// [`Faults::black_hole`] for the requests of one phone only.
    pub fn black_hole_phone(&self, phone: &str, on: bool) -> Result<(), FaultLimit> {
        self.shared
            .faults()
            .set_phone_black_hole(&normalize_phone(phone), on)
    }

    /// Delay every reply by `delay` (zero turns it off).
    pub fn delay(&self, delay: Duration) {
        self.shared.faults().delay = delay;
    }

    /// [`Faults::delay`] for the requests of one phone only.
    pub fn delay_phone(&self, phone: &str, delay: Duration) -> Result<(), FaultLimit> {
        self.shared
            .faults()
            .set_phone_delay(&normalize_phone(phone), delay)
    }

    /// Fault rules held now (expired flood waits not counted).
    pub fn rule_count(&self) -> usize {
        self.shared.faults().live_rules()
    }

    /// Revoke every authorization of `phone`: its sessions get `kind` (401) on their next call.
    pub fn revoke(&self, phone: &str, kind: RevokeKind) -> anyhow::Result<()> {
        let mut w = self.shared.world();
        let id = w
            .user_by_phone(phone)
            .map(|u| u.id)
            .with_context(|| format!("no user with phone {phone}"))?;
        for (k, b) in w.bindings.iter_mut() {
            let _ = k;
            if matches!(b, Binding::User(u) | Binding::PasswordPending(u) if *u == id) {
                *b = Binding::Revoked(kind);
            }
        }
        Ok(())
    }

    /// Ban `phone`: its sessions get USER_DEACTIVATED_BAN, new logins PHONE_NUMBER_BANNED.
    pub fn ban(&self, phone: &str) -> anyhow::Result<()> {
        let mut w = self.shared.world();
        let id = w
            .user_by_phone(phone)
            .map(|u| u.id)
            .with_context(|| format!("no user with phone {phone}"))?;
        if let Some(u) = w.users.get_mut(&id) {
            u.banned = true;
        }
        Ok(())
    }

    /// Lift flood waits, black hole and delay (bans and revocations stay).
    pub fn clear(&self) {
        *self.shared.faults() = Default::default();
    }

    /// Lift one phone's own flood waits, black hole and delay.
    pub fn clear_phone(&self, phone: &str) {
        self.shared.faults().clear_phone(&normalize_phone(phone));
    }

    /// Requests swallowed by the black hole so far (lets tests wait until a call is in flight).
    pub fn swallowed(&self) -> u64 {
        self.shared.swallowed.load(Ordering::Relaxed)
    }
}

/// One connection's `initConnection` as testdc received it: what the client said it is, on which
/// connection, DC and auth key, and who is logged in on that key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionInit {
    /// Increases by one per connection recorded: what came after a `seq` came later.
    pub seq: u64,
    pub connection: u64,
    pub dc_id: i32,
    /// The auth key's id (hex of the low 8 bytes of its SHA-1).
    pub key_id: String,
    /// The user logged in on the key now (or, if none is now, when it connected): a key that
    /// connected before its login counts as the user it logged in as.
    pub user_id: Option<i64>,
    /// That user's phone, digits only.
    pub phone: Option<String>,
    /// Unix milliseconds.
    pub at_ms: i64,
    #[serde(flatten)]
    pub init: ClientInit,
}

/// Counters for the control API and benchmarks.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Stats {
    pub connections: usize,
    pub requests: u64,
    pub swallowed: u64,
    /// File parts received (saveFilePart / saveBigFilePart).
    pub file_parts: u64,
}

impl TestDc {
    /// Binds one listener per DC and starts serving. With a `state_dir` that holds a world, the
    /// DCs come back on the ports they had and with everything the world held.
    pub async fn start(cfg: TestDcConfig) -> anyhow::Result<TestDc> {
        anyhow::ensure!(cfg.dc_count >= 1, "dc_count must be at least 1");
        let (persist, loaded) = match &cfg.state_dir {
            Some(dir) => {
                let (p, l) = persist::open(dir)?;
                (Some(p), l)
            }
            None => (None, None),
        };
        let mut listeners = Vec::new();
        match &loaded {
            Some(l) => {
                for (dc, addr) in &l.addrs {
                    let listener = TcpListener::bind(addr).await.with_context(|| {
                        format!(
                            "DC {dc} must listen on {addr} again (its sessions know it from {}),                              but that port is taken",
                            persist.as_ref().map_or(String::new(), |p| p
                                .path()
                                .display()
                                .to_string())
                        )
                    })?;
                    listeners.push((*dc, listener));
                }
            }
            None => {
                for dc in 1..=cfg.dc_count as i32 {
                    let port = if cfg.base_port == 0 {
                        0
                    } else {
                        cfg.base_port
                            .checked_add((dc - 1) as u16)
                            .context("base_port + dc_count overflows")?
                    };
                    let addr = SocketAddr::new(cfg.host, port);
                    let listener = TcpListener::bind(addr)
                        .await
                        .with_context(|| format!("binding DC {dc} on {addr}"))?;
                    listeners.push((dc, listener));
                }
            }
        }
        let addrs = listeners
            .iter()
            .map(|(dc, l)| Ok((*dc, l.local_addr()?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        let fresh = loaded.is_none();
        let (world, keys) = match loaded {
            Some(l) => (l.world, l.keys),
            None => (world::World::new(), Vec::new()),
        };
        let shared = Arc::new(Shared::new(cfg, addrs, world, keys, persist));
        if fresh && shared.persist.is_some() {
            // The ports are chosen once: written out before any session can learn them.
            shared.mark_dirty();
            let s = Arc::clone(&shared);
            tokio::task::spawn_blocking(move || s.persist_now()).await?;
            anyhow::ensure!(
                !shared.is_dirty(),
                "could not write the testdc state (see the error above)"
            );
        }
        let (shutdown, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (dc, listener) in listeners {
            tasks.spawn(accept_loop(
                Arc::clone(&shared),
                listener,
                dc,
                shutdown.subscribe(),
            ));
        }
        if shared.persist.is_some() {
            tasks.spawn(flush_loop(Arc::clone(&shared), shutdown.subscribe()));
        }
        Ok(TestDc {
            shared,
            shutdown,
            tasks: Arc::new(std::sync::Mutex::new(Some(tasks))),
        })
    }

    pub fn config(&self) -> &TestDcConfig {
        &self.shared.cfg
    }

    /// Address of DC `dc_id`. Panics on a DC this testdc does not have (a test bug).
    pub fn dc_addr(&self, dc_id: i32) -> SocketAddr {
        self.shared
            .addrs
            .iter()
            .find(|(id, _)| *id == dc_id)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("testdc has no DC {dc_id}"))
    }

    pub fn dc_addrs(&self) -> Vec<(i32, SocketAddr)> {
        self.shared.addrs.clone()
    }

    /// Makes `key` valid on every DC of this testdc.
    pub fn register_auth_key(&self, key: [u8; 256]) {
        self.shared.register_key(key);
    }

    pub fn add_user(&self, spec: UserSpec) -> i64 {
        self.shared.world().add_user(spec)
    }

    /// Adds a bot homed on DC 2.
    pub fn add_bot(&self, token: &str, username: &str) -> i64 {
        self.add_bot_on(token, username, 2)
    }

    pub fn add_bot_on(&self, token: &str, username: &str, dc_id: i32) -> i64 {
        self.shared.world().add_bot(token, username, dc_id)
    }

    /// The last login code sent to `phone` (any formatting).
    pub fn last_code(&self, phone: &str) -> Option<String> {
        self.shared
            .world()
            .last_codes
            .get(&normalize_phone(phone))
            .cloned()
    }

    /// The app (`api_id`, `api_hash`) the last `auth.sendCode` for `phone` was sent for.
    pub fn last_code_app(&self, phone: &str) -> Option<(i32, String)> {
        self.shared
            .world()
            .last_code_apps
            .get(&normalize_phone(phone))
            .cloned()
    }

    /// A login token as a scanner reads it: a whole `tg://login?token=…` URL or the bare token,
    /// URL-safe base64 (as in the URL) or hex.
    pub fn login_token(text: &str) -> Option<Vec<u8>> {
        use base64::Engine;
        let token = text.split_once("token=").map_or(text, |(_, t)| t);
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .ok()
            .or_else(|| hex::decode(token).ok())
    }

    /// "Scans" a QR login token as the user with `phone`: the session that exported the token
    /// gets `updateLoginToken`, and its next `auth.exportLoginToken` logs it in.
    /// With a sandbox directory, a phone testdc has not seen yet is a new user, as for a code.
    pub fn scan_qr(&self, token: &[u8], phone: &str) -> anyhow::Result<()> {
        let target = {
            let mut w = self.shared.world();
            if self.shared.cfg.sandbox_directory && w.user_by_phone(phone).is_none() {
                w.sandbox_user(phone, 2);
            }
            let user = w
                .user_by_phone(phone)
                .filter(|u| u.registered && !u.banned)
                .map(|u| u.id)
                .with_context(|| format!("no active account with phone {phone}"))?;
            let now = world::unix_now();
            let t = w
                .qr_tokens
                .get_mut(token)
                .filter(|t| t.expires > now)
                .context("unknown or expired login token")?;
            t.scanned_by = Some(user);
            (t.key_id, t.dc_id)
        };
        let update =
            grammers_tl_types::enums::Updates::UpdateShort(grammers_tl_types::types::UpdateShort {
                update: grammers_tl_types::enums::Update::LoginToken,
                date: world::unix_now(),
            });
        let bytes = grammers_tl_types::Serializable::to_bytes(&update);
        self.shared
            .push_to(&[target], || shared::Push::Updates(bytes.clone()));
        Ok(())
    }

    /// The user with `from_phone` (created on first use, as a sandbox phone is) sends `text`
    /// to `to`: `+phone`, `@username`, or a Bot-API chat id (users > 0, channels `-100…`). A
    /// private message lands in both boxes and is pushed to the recipient's live connections
    /// (and the sender's); a channel post needs a member that may post there
    /// (CHAT_WRITE_FORBIDDEN, status 403, otherwise) and reaches every member. Either way it is
    /// numbered in the update logs, so an account that was offline gets it by getDifference.
    pub fn send_message(
        &self,
        from_phone: &str,
        to: &str,
        text: &str,
    ) -> Result<SentMessage, SendError> {
        rpc::control_send::send(&self.shared, from_phone, to, text)
    }

    /// The catch-up thresholds and page size in force.
    pub fn update_limits(&self) -> UpdateLimits {
        self.shared.limits()
    }

    /// Overrides the catch-up thresholds and page size (e.g. a too-long difference after a
    /// few messages); `UpdateLimits::default()` restores Telegram-like ones. Refuses limits no
    /// client could catch up under.
    pub fn set_update_limits(&self, limits: UpdateLimits) -> Result<(), String> {
        limits.check()?;
        self.shared.set_limits(limits);
        Ok(())
    }

    /// Everything accounts have sent, oldest first.
    pub fn messages(&self) -> Vec<StoredMessage> {
        self.shared.world().messages.clone()
    }

    /// What channel `channel_id` (Telegram's bare id) holds, oldest first, with its title and
    /// creator; `None` when there is no such channel.
    pub fn channel(&self, channel_id: i64) -> Option<ChannelSnapshot> {
        let w = self.shared.world();
        let c = w.channels.get(&channel_id)?;
        Some(ChannelSnapshot {
            title: c.title.clone(),
            broadcast: c.broadcast,
            creator: c.creator,
            texts: c.history.iter().map(|m| m.text.clone()).collect(),
            entities: c.history.iter().map(|m| m.entities.clone()).collect(),
            media: c.history.iter().map(|m| m.media.clone()).collect(),
            grouped_ids: c.history.iter().map(|m| m.grouped_id).collect(),
        })
    }

    /// What a chat holds, oldest first, as the control API's `GET /chats/{chat}/messages` shows
    /// it: a channel by its id (bare or `-100…`) or `@username`; a user's private chats by its
    /// phone (`+…`) or `@username` (every message sent to or from it).
    pub fn chat_messages(&self, chat: &str) -> Option<Vec<ChatMessageSnapshot>> {
        let w = self.shared.world();
        let peer = if let Some(name) = chat.strip_prefix('@') {
            *w.usernames.get(&name.to_lowercase())?
        } else if chat.starts_with('+') {
            PeerRef::User(*w.phones.get(&normalize_phone(chat))?)
        } else {
            let n: i64 = chat.parse().ok()?;
            PeerRef::Channel(if n < -1_000_000_000_000 {
                -n - 1_000_000_000_000
            } else {
                n
            })
        };
        Some(match peer {
            PeerRef::Channel(id) => w
                .channels
                .get(&id)?
                .history
                .iter()
                .map(|m| ChatMessageSnapshot {
                    id: m.id,
                    from_user_id: m.from_user,
                    date: m.date,
                    text: m.text.clone(),
                    entities: m.entities.clone(),
                    media: m.media.clone(),
                    grouped_id: m.grouped_id,
                    edit_date: m.edit_date,
                    pinned: m.pinned,
                })
                .collect(),
            PeerRef::User(id) => w
                .users
                .get(&id)?
                .history
                .iter()
                .map(|m| ChatMessageSnapshot {
                    id: m.id,
                    from_user_id: m.from_user,
                    date: m.date,
                    text: m.text.clone(),
                    entities: m.entities.clone(),
                    media: m.media.clone(),
                    grouped_id: m.grouped_id,
                    edit_date: m.edit_date,
                    pinned: m.pinned,
                })
                .collect(),
        })
    }

    /// Gives every file a new file reference, as Telegram does from time to time: a client
    /// holding an old one gets FILE_REFERENCE_EXPIRED. Returns how many files there are.
    pub fn expire_file_references(&self) -> usize {
        rpc::media::expire_file_references(&mut self.shared.world())
    }

    /// The bytes of a file testdc holds (an upload that became a photo or document).
    pub fn file_bytes(&self, file_id: i64) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.shared.files_dir.join(format!("{file_id:016x}")))
    }

    pub fn faults(&self) -> Faults {
        Faults {
            shared: Arc::clone(&self.shared),
        }
    }

    /// What every recorded connection's initConnection carried, oldest first (the newest
    /// 4,096). With `phone`, only connections whose key is that user's.
    pub fn connection_inits(&self, phone: Option<&str>) -> Vec<ConnectionInit> {
        let records = self.shared.inits();
        let wanted = phone.map(normalize_phone);
        let w = self.shared.world();
        records
            .into_iter()
            .filter_map(|r| {
                let user = w
                    .bound_user(r.key_id, r.dc_id)
                    .or_else(|| r.user_at_init.and_then(|id| w.users.get(&id)));
                let phone = user.and_then(|u| u.phone.as_deref()).map(normalize_phone);
                if wanted.is_some() && wanted != phone {
                    return None;
                }
                Some(ConnectionInit {
                    seq: r.seq,
                    connection: r.conn,
                    dc_id: r.dc_id,
                    key_id: hex::encode(r.key_id),
                    user_id: user.map(|u| u.id),
                    phone,
                    at_ms: r.at_ms,
                    init: r.init,
                })
            })
            .collect()
    }

    /// Open client connections across all DCs.
    pub fn connection_count(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.connection_count(),
            requests: self.shared.requests.load(Ordering::Relaxed),
            swallowed: self.shared.swallowed.load(Ordering::Relaxed),
            file_parts: self.shared.file_parts.load(Ordering::Relaxed),
        }
    }

    /// Stops listening and closes every connection.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut tasks) = tasks {
            while tasks.join_next().await.is_some() {}
        }
    }
}

/// Writes out changes made outside an RPC (control API, QR scans, …) shortly after they happen;
/// RPCs write theirs before answering.
async fn flush_loop(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if shared.is_dirty() {
            let s = Arc::clone(&shared);
            let _ = tokio::task::spawn_blocking(move || s.persist_now()).await;
        }
    }
    let _ = tokio::task::spawn_blocking(move || shared.persist_now()).await;
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    dc_id: i32,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(conn::serve(Arc::clone(&shared), stream, dc_id, shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(dc_id, "testdc accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    conns.shutdown().await;
}

/// Seeds a grammers session for `dc`: home DC `home_dc`, and for every DC of this testdc its
/// address plus `key` as the permanent auth key, so the client skips DH. Register the same key
/// with [`TestDc::register_auth_key`] (this function does not, so that a test can also check
/// what an unregistered key gets).
pub async fn seed_session<S>(
    session: &S,
    dc: &TestDc,
    home_dc: i32,
    key: [u8; 256],
) -> Result<(), S::Error>
where
    S: grammers_session::Session,
{
    seed_session_addrs(session, &dc.dc_addrs(), home_dc, key).await
}

/// [`seed_session`] for a testdc in another process, known only by its DC addresses.
pub async fn seed_session_addrs<S>(
    session: &S,
    addrs: &[(i32, SocketAddr)],
    home_dc: i32,
    key: [u8; 256],
) -> Result<(), S::Error>
where
    S: grammers_session::Session,
{
    for (id, addr) in addrs {
        let (ipv4, ipv6) = match addr {
            SocketAddr::V4(v4) => (
                *v4,
                SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0),
            ),
            SocketAddr::V6(v6) => (SocketAddrV4::new(Ipv4Addr::LOCALHOST, v6.port()), *v6),
        };
        session
            .set_dc_option(&grammers_session::types::DcOption {
                id: *id,
                ipv4,
                ipv6,
                auth_key: Some(key),
            })
            .await?;
    }
    session.set_home_dc_id(home_dc).await
}

/// A channel as testdc holds it (see [`TestDc::channel`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSnapshot {
    pub title: String,
    pub broadcast: bool,
    /// The creator's Telegram user id.
    pub creator: i64,
    /// Its messages' texts, oldest first.
    pub texts: Vec<String>,
    /// Each message's entities, in the same order.
    pub entities: Vec<Vec<EntityRec>>,
    /// Each message's photo or document.
    pub media: Vec<Option<world::FileRec>>,
    /// Each message's album.
    pub grouped_ids: Vec<Option<i64>>,
}

/// One message of a chat as testdc holds it (see [`TestDc::chat_messages`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessageSnapshot {
    pub id: i32,
    pub from_user_id: i64,
    pub date: i32,
    pub text: String,
    pub entities: Vec<EntityRec>,
    /// The photo or document, with the SHA-256 of the bytes that were uploaded.
    pub media: Option<world::FileRec>,
    pub grouped_id: Option<i64>,
    pub edit_date: Option<i32>,
    pub pinned: bool,
}

#[cfg(test)]
mod tests {
    use super::TestDc;

    #[test]
    fn a_login_token_is_read_from_its_url_or_bare_in_base64url_or_hex() {
        let token = vec![0xfb, 0xff, 0x00, 0x10, 0x7e];
        assert_eq!(
            TestDc::login_token("tg://login?token=-_8AEH4").as_ref(),
            Some(&token)
        );
        assert_eq!(TestDc::login_token("-_8AEH4=").as_ref(), Some(&token));
        assert_eq!(TestDc::login_token("fbff00107e").as_ref(), Some(&token));
        assert_eq!(TestDc::login_token("tg://login?token=%%"), None);
    }
}
