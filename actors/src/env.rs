//! What an account actor is started with: its id and the environment it shares with every other
//! account actor of the fleet (store, cipher, Telegram parameters, limits, metrics).

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use tgfleet_persistence::{AccountId, MediaStorage, SessionCipher, Store};

use crate::metrics::AccountMetrics;

/// The spawn arguments of an [`crate::AccountActor`]. The supervisor keeps these and re-uses them
/// for a restart in place: everything durable is reloaded from `env.store`.
#[derive(Clone)]
pub struct AccountArgs {
    pub account_id: AccountId,
    pub env: Arc<AccountEnv>,
}

/// Shared by every account actor of one fleet.
pub struct AccountEnv {
    pub store: Arc<dyn Store>,
    pub cipher: SessionCipher,
    pub telegram: TelegramParams,
    pub limits: AccountLimits,
    pub metrics: AccountMetrics,
    /// Each account's row and log writes, off its mailbox and in order.
    pub writes: Arc<crate::writes::AccountWrites>,
    /// Where the media library's bytes are, for sending them; `None` in a fleet without one
    /// (tests), where sending media answers `MEDIA_STORAGE_UNAVAILABLE`.
    pub media: Option<MediaStorage>,
    /// `telegram`'s app, one copy for every account that has no app of its own.
    fleet_app: Arc<App>,
}

impl AccountEnv {
    /// The environment of a fleet's accounts; their metrics go into `metrics_registry`.
    pub fn new(
        store: Arc<dyn Store>,
        cipher: SessionCipher,
        telegram: TelegramParams,
        limits: AccountLimits,
        metrics_registry: &prometheus::Registry,
    ) -> prometheus::Result<Self> {
        Ok(Self {
            store,
            cipher,
            fleet_app: Arc::new(App::of_fleet(&telegram)),
            telegram,
            limits,
            metrics: AccountMetrics::register(metrics_registry)?,
            writes: Default::default(),
            media: None,
        })
    }
}

impl AccountEnv {
    /// The fleet's own app (`telegram.api_id`, `telegram.api_hash`).
    pub fn fleet_app(&self) -> Arc<App> {
        Arc::clone(&self.fleet_app)
    }
}

/// The application credentials and where Telegram is.
#[derive(Clone)]
pub struct TelegramParams {
    pub api_id: i32,
    /// Sent with auth.sendCode / auth.importBotAuthorization; redacted in `Debug`.
    pub api_hash: String,
    pub target: TelegramTarget,
}

impl fmt::Debug for TelegramParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramParams")
            .field("api_id", &self.api_id)
            .field("api_hash", &"<redacted>")
            .field("target", &self.target)
            .finish()
    }
}

/// The Telegram application an account speaks for: its `api_id` goes into every
/// initConnection, its `api_hash` into every login call. The fleet's (`telegram.api_id`,
/// `telegram.api_hash`), or an imported account's own.
#[derive(Clone)]
pub struct App {
    pub api_id: i32,
    pub api_hash: String,
}

impl App {
    pub fn of_fleet(telegram: &TelegramParams) -> Self {
        Self {
            api_id: telegram.api_id,
            api_hash: telegram.api_hash.clone(),
        }
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("api_id", &self.api_id)
            .field("api_hash", &"<redacted>")
            .finish()
    }
}

/// Which data centres a new session starts with.
#[derive(Clone)]
pub enum TelegramTarget {
    /// Telegram's own DCs, as grammers knows them statically; keys come from the DH exchange.
    Production,
    /// A fake DC (testdc, `--sandbox`). grammers hard-codes Telegram's RSA keys, so no key exchange
    /// can finish against it: a new session instead generates a random 256-byte auth key per DC,
    /// hands it to `register_key` (testdc's `register_auth_key`) and seeds it into its DC options.
    TestDc {
        /// (dc id, address); the first one is the home DC of a new session.
        dcs: Vec<(i32, SocketAddr)>,
        register_key: Arc<dyn Fn([u8; 256]) + Send + Sync>,
    },
}

impl fmt::Debug for TelegramTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Production => f.write_str("Production"),
            Self::TestDc { dcs, .. } => f.debug_struct("TestDc").field("dcs", dcs).finish(),
        }
    }
}

/// Per-account limits. Every value bounds something that would otherwise be unbounded.
#[derive(Debug, Clone)]
pub struct AccountLimits {
    /// Upper bound of one Telegram call. grammers has no timeouts at all: a DC that accepts TCP and
    /// never answers would hang the call forever. 20 s is far above a healthy round trip (including
    /// an inter-DC migration) yet below what an HTTP client of the API waits before giving up.
    pub call_timeout: Duration,
    /// FLOOD_WAIT up to this long is waited out (in a task, never in the mailbox) and the call
    /// retried, so the caller just sees a slower answer. Longer ones fail fast with
    /// `AccountError::FloodWait` (HTTP 429 + Retry-After): an HTTP caller should not hang for
    /// minutes. 10 s keeps the worst added latency of an API request modest.
    pub flood_wait_threshold: Duration,
    /// Outbound pacing of this account's Telegram calls. Telegram answers bursts with flood waits
    /// that then last far longer than the burst saved; 5 calls/s with a burst of 10 is below what
    /// user accounts are known to trigger and leaves interactive use unaffected.
    pub pacing: Quota,
    /// An authorized account with no successful call for this long is pinged (updates.getState);
    /// a silent client is rebuilt. grammers itself only sends ping_delay_disconnect every 60 s and
    /// never notices a half-open connection; 120 s notices within minutes while costing a fleet
    /// of 1,000 idle accounts ~8 tiny calls per second.
    pub watchdog_period: Duration,
    /// First delay before re-checking a `reconnecting` account; doubled (with jitter) per failure.
    /// 1 s rides out a dropped TCP connection almost unnoticed.
    pub reconnect_backoff_min: Duration,
    /// Cap of the reconnect delay: 5 min keeps a long Telegram outage from becoming a reconnect
    /// storm of the whole fleet, while an account still comes back within minutes after it ends.
    pub reconnect_backoff_max: Duration,
    /// How many recent `dedupe_key`s of SendMessage an account remembers (`sent_messages`). A
    /// client re-send comes within seconds or minutes; 1,000 keys cover that at any sane sending
    /// rate and keep the table small.
    pub dedupe_capacity: usize,
    /// Peers (users, chats, channels with their access hashes) a session keeps; past it the
    /// oldest cached goes, and Telegram is asked again when it is needed.
    pub peer_cache_capacity: usize,
    /// An `active` account with no call (request or liveness check) for this long is
    /// *hibernated*: its grammers client (runner, connection, 1 MiB buffers) and its watchdog
    /// timer are dropped, and the next request reconnects it transparently. `None` (the
    /// default) keeps every authorized account connected, as an account whose updates matter
    /// must be. Checked on watchdog ticks, so it takes effect within one `watchdog_period` after.
    pub hibernate_after: Option<Duration>,
    /// A login waiting for its code (or a QR scan) longer than this is over: its code no longer
    /// works, so when the account's actor next starts (a fleet boot included) the login is
    /// forgotten and the account is `new` again, instead of being restarted at every boot as a
    /// login nobody can finish. An hour is well past a login code's validity and what a person
    /// takes to type one.
    pub pending_login_ttl: Duration,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(20),
            flood_wait_threshold: Duration::from_secs(10),
            pacing: Quota::per_second(NonZeroU32::new(5).expect("non-zero"))
                .allow_burst(NonZeroU32::new(10).expect("non-zero")),
            watchdog_period: Duration::from_secs(120),
            reconnect_backoff_min: Duration::from_secs(1),
            reconnect_backoff_max: Duration::from_secs(300),
            dedupe_capacity: 1000,
            peer_cache_capacity: 2000,
            hibernate_after: None,
            pending_login_ttl: Duration::from_secs(3600),
        }
    }
}
