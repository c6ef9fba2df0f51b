use crate::secret::{DatabaseUrl, Secret};
use crate::ConfigError;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything tgfleet reads at start-up. Every section has embedded defaults, so no file is needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub api: ApiSettings,
    pub metrics: MetricsSettings,
    pub database: DatabaseSettings,
    pub secrets: SecretsSettings,
    pub vault: VaultSettings,
    pub telegram: TelegramSettings,
    pub auth: AuthSettings,
    pub fleet: FleetSettings,
    pub accounts: AccountsSettings,
    pub import: ImportSettings,
    pub media: MediaSettings,
    pub posts: PostsSettings,
    pub events: EventsSettings,
    pub webhooks: WebhooksSettings,
    pub log: LogSettings,
    pub console: ConsoleSettings,
    /// Turns on the Swagger UI at `/docs`; never in production.
    pub debug: bool,
    /// Set by `serve --sandbox` only, never by a file or the environment: an in-process testdc
    /// stands in for Telegram and the `/api/v1/sandbox/…` routes exist. A config key would let a
    /// stray `TGFLEET__SANDBOX=true` silently swap a production fleet's Telegram for a fake one.
    #[serde(skip)]
    pub sandbox: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            api: ApiSettings::default(),
            metrics: MetricsSettings::default(),
            database: DatabaseSettings::default(),
            secrets: SecretsSettings::default(),
            vault: VaultSettings::default(),
            telegram: TelegramSettings::default(),
            auth: AuthSettings::default(),
            fleet: FleetSettings::default(),
            accounts: AccountsSettings::default(),
            import: ImportSettings::default(),
            media: MediaSettings::default(),
            posts: PostsSettings::default(),
            events: EventsSettings::default(),
            webhooks: WebhooksSettings::default(),
            log: LogSettings::default(),
            console: ConsoleSettings::default(),
            debug: false,
            sandbox: false,
        }
    }
}

impl Settings {
    /// `database.url`, or SQLite inside `data_dir` when it is not set.
    pub fn database_url(&self) -> DatabaseUrl {
        match &self.database.url {
            Some(url) => url.clone(),
            None => DatabaseUrl(Secret::new(format!(
                "sqlite://{}/tgfleet.db",
                self.data_dir.display()
            ))),
        }
    }

    pub fn session_key_path(&self) -> PathBuf {
        self.data_dir.join("session.key")
    }

    /// The directory of the local media storage.
    pub fn media_dir(&self) -> PathBuf {
        self.media
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("media"))
    }

    pub fn jwt_secret_path(&self) -> PathBuf {
        self.data_dir.join("jwt.secret")
    }

    /// Checks that span keys or need more than a type: one error, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("accounts.max_per_user", self.accounts.max_per_user as u64),
            (
                "accounts.max_pending_logins_per_user",
                self.accounts.max_pending_logins_per_user as u64,
            ),
            (
                "import.max_concurrent_probes",
                self.import.max_concurrent_probes as u64,
            ),
            (
                "import.items_per_minute_per_user",
                self.import.items_per_minute_per_user as u64,
            ),
            ("events.retention_h", self.events.retention_h),
            ("webhooks.timeout_ms", self.webhooks.timeout_ms),
            ("webhooks.retry_initial_ms", self.webhooks.retry_initial_ms),
            ("webhooks.retry_max_ms", self.webhooks.retry_max_ms),
            ("webhooks.parallel", self.webhooks.parallel as u64),
            ("webhooks.max_per_user", self.webhooks.max_per_user as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::new(key, "must be at least 1"));
            }
        }
        if let Some(url) = &self.database.url {
            let url = url.expose();
            if !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
            {
                return Err(ConfigError::new(
                    "database.url",
                    "must start with sqlite:, postgres:// or postgresql://",
                ));
            }
        }
        if let Some(url) = &self.events.amqp_url {
            if !url.expose().starts_with("amqp://") {
                return Err(ConfigError::new(
                    "events.amqp_url",
                    "must start with amqp:// (amqps:// is not built in)",
                ));
            }
            let exchange = &self.events.amqp_exchange;
            if exchange.is_empty() || exchange.len() > 255 || exchange.starts_with("amq.") {
                return Err(ConfigError::new(
                    "events.amqp_exchange",
                    "must be 1–255 bytes and not start with the broker's reserved \"amq.\"",
                ));
            }
        }
        if self.secrets.backend == SecretsBackend::Vault {
            if self.vault.addr.as_deref().unwrap_or("").is_empty() {
                return Err(ConfigError::new(
                    "vault.addr",
                    "required when secrets.backend = \"vault\"",
                ));
            }
            let token = self.vault.token.as_ref().is_some_and(|t| !t.is_empty());
            let role = self.vault.role_id.as_deref().is_some_and(|r| !r.is_empty());
            let secret_id = self.vault.secret_id.as_ref().is_some_and(|s| !s.is_empty());
            let secret_id_file = self.vault.secret_id_file.is_some();
            match (token, role) {
                (false, false) => {
                    return Err(ConfigError::new(
                        "vault.token",
                        "required when secrets.backend = \"vault\" (or an AppRole login: \
                         vault.role_id with vault.secret_id or vault.secret_id_file)",
                    ))
                }
                (true, true) => {
                    return Err(ConfigError::new(
                        "vault.role_id",
                        "set either vault.token or an AppRole login, not both",
                    ))
                }
                (false, true) if secret_id == secret_id_file => {
                    return Err(ConfigError::new(
                        "vault.secret_id",
                        "an AppRole login needs exactly one of vault.secret_id and \
                         vault.secret_id_file",
                    ))
                }
                _ => {}
            }
        }
        if self.posts.max_attempts == 0 || self.posts.parallel_accounts == 0 {
            return Err(ConfigError::new(
                "posts",
                "max_attempts and parallel_accounts must be at least 1",
            ));
        }
        if self.media.max_size_bytes == 0 {
            return Err(ConfigError::new(
                "media.max_size_bytes",
                "must be at least 1",
            ));
        }
        if self.media.storage == MediaStorageKind::S3 && self.media.s3.bucket.is_empty() {
            return Err(ConfigError::new(
                "media.s3.bucket",
                "required when media.storage = \"s3\"",
            ));
        }
        if let Some(id) = self.telegram.api_id {
            if id <= 0 {
                return Err(ConfigError::new(
                    "telegram.api_id",
                    "must be a positive number",
                ));
            }
        }
        if let Some(hash) = &self.telegram.api_hash {
            let h = hash.expose();
            if h.len() != 32 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    "telegram.api_hash",
                    "must be the 32 hex digits my.telegram.org shows",
                ));
            }
        }
        if let Some(secret) = &self.auth.jwt_secret {
            AuthSettings::check_jwt_secret(secret.expose())
                .map_err(|why| ConfigError::new("auth.jwt_secret", why))?;
        }
        if self.auth.access_ttl_s == 0 || self.auth.refresh_ttl_s <= self.auth.access_ttl_s {
            return Err(ConfigError::new(
                "auth.refresh_ttl_s",
                "access_ttl_s must be positive and shorter than refresh_ttl_s",
            ));
        }
        if !(1..=1_000_000).contains(&self.api.max_connections) {
            return Err(ConfigError::new(
                "api.max_connections",
                "must be between 1 and 1000000",
            ));
        }
        if self.api.header_read_timeout_s == 0 {
            return Err(ConfigError::new(
                "api.header_read_timeout_s",
                "must be at least 1",
            ));
        }
        if self.api.request_timeout_s == 0 {
            return Err(ConfigError::new(
                "api.request_timeout_s",
                "must be at least 1",
            ));
        }
        if self.fleet.shards == 0 {
            return Err(ConfigError::new("fleet.shards", "must be at least 1"));
        }
        if self.fleet.starts_per_second == 0 {
            return Err(ConfigError::new(
                "fleet.starts_per_second",
                "must be at least 1",
            ));
        }
        if self.fleet.calls_per_second == 0 {
            return Err(ConfigError::new(
                "fleet.calls_per_second",
                "must be at least 1",
            ));
        }
        if self.fleet.calls_burst < self.fleet.calls_per_second {
            return Err(ConfigError::new(
                "fleet.calls_burst",
                "must be at least fleet.calls_per_second",
            ));
        }
        if self.fleet.call_timeout_s == 0 {
            return Err(ConfigError::new(
                "fleet.call_timeout_s",
                "must be at least 1",
            ));
        }
        self.validate_telegram_target()
    }

    /// Which Telegram the fleet may talk to: real Telegram (api_id/api_hash), the in-process
    /// sandbox (`--sandbox`) or a standalone testdc (`telegram.testdc_control`) — exactly one.
    /// Two of them together means the operator meant one and got the other, so start-up refuses
    /// instead of picking. Run again after `--sandbox` is applied.
    pub fn validate_telegram_target(&self) -> Result<(), ConfigError> {
        let real = self.telegram.api_id.is_some() || self.telegram.api_hash.is_some();
        if let Some(url) = &self.telegram.testdc_control {
            if !control_url_is_loopback(url) {
                return Err(ConfigError::new(
                    "telegram.testdc_control",
                    "must be http://127.0.0.1:PORT, http://[::1]:PORT or http://localhost:PORT: \
                     a testdc's control API is unauthenticated and its DCs are fake, so never \
                     on another host",
                ));
            }
        }
        if self.sandbox {
            if real {
                return Err(ConfigError::new(
                    "--sandbox",
                    "given while telegram.api_id / telegram.api_hash are configured: did you \
                     mean the sandbox's fake Telegram or the real one? Drop the flag or the \
                     credentials",
                ));
            }
            if self.telegram.testdc_control.is_some() {
                return Err(ConfigError::new(
                    "--sandbox",
                    "given while telegram.testdc_control is set: did you mean the in-process \
                     sandbox or that standalone testdc? Drop one",
                ));
            }
        }
        if self.telegram.testdc_control.is_some() && real {
            return Err(ConfigError::new(
                "telegram.testdc_control",
                "set beside telegram.api_id / telegram.api_hash: did you mean that fake testdc \
                 or real Telegram? Remove one",
            ));
        }
        Ok(())
    }
}

/// `http://HOST:PORT[/]` with HOST a loopback address: an IP literal, or `localhost`.
fn control_url_is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    if let Ok(addr) = host_port.parse::<SocketAddr>() {
        return addr.ip().is_loopback() && addr.port() != 0;
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => {
            host.eq_ignore_ascii_case("localhost") && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

/// What one user may hold. Admins are not limited.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountsSettings {
    /// Accounts one user may have (any state). Each is a row, and once logged in an actor and a
    /// Telegram connection: 100 covers a team's fleet, while a leaked token cannot make a
    /// million of them.
    pub max_per_user: u32,
    /// Logins one user may have halfway (awaiting a code, password or QR scan) at once. Each
    /// holds an actor and a live connection until it finishes or its code expires; 10 covers
    /// onboarding several phones at a time.
    pub max_pending_logins_per_user: u32,
}

impl Default for AccountsSettings {
    fn default() -> Self {
        Self {
            max_per_user: 100,
            max_pending_logins_per_user: 10,
        }
    }
}

/// Bounds on session import, whose every item opens a fresh Telegram connection to check the
/// session before it is stored.
/// How posts are delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostsSettings {
    /// A delivery waits out Telegram's flood waits until it is this late (seconds after its
    /// publish time); later than that it fails with FLOOD_WAIT. An hour covers the flood waits
    /// a busy account meets, while a post is not published a day late without anyone noticing.
    pub max_delay_s: u64,
    /// Attempts at a delivery that meets transient trouble (Telegram unreachable, a timeout)
    /// before it fails; they back off from 2 s up to 5 minutes, so 10 attempts span ~20 minutes.
    pub max_attempts: u32,
    /// Accounts delivering at once: each sends its deliveries one after another, at its own
    /// pacing; more accounts than this wait their turn.
    pub parallel_accounts: usize,
}

impl Default for PostsSettings {
    fn default() -> Self {
        Self {
            max_delay_s: 3600,
            max_attempts: 10,
            parallel_accounts: 64,
        }
    }
}

/// The event log that SSE, webhooks and the broker sink read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// Events older than this are deleted: a client or endpoint away for longer misses them.
    pub retention_h: u64,
    /// The broker sink: every event is also published to this RabbitMQ (AMQP 0-9-1) server, e.g.
    /// `amqp://user:password@127.0.0.1:5672/%2f`. Unset, there is no sink. A secret: the URL
    /// holds the password, and only its host is ever logged.
    pub amqp_url: Option<Secret>,
    /// The durable topic exchange tgfleet declares at start and publishes to, with routing key
    /// `account.<account_id>.<type>` (`account.none.<type>` for events of no account).
    pub amqp_exchange: String,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            retention_h: 72,
            amqp_url: None,
            amqp_exchange: "tgfleet.events".to_owned(),
        }
    }
}

/// How webhook endpoints are called.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSettings {
    /// Lets endpoints live on loopback, private and link-local addresses (a receiver on this
    /// machine or a private network). Off, such targets are refused when created and, for names
    /// that resolve to one, on every connection: a user cannot make tgfleet call into the
    /// network it runs in. `serve --sandbox` turns it on.
    pub allow_private_targets: bool,
    /// One attempt's whole time (connect, send, answer).
    pub timeout_ms: u64,
    /// The first retry's delay; each next one doubles, up to `retry_max_ms`, with jitter.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// A delivery still failing this long after its first attempt is dead-lettered.
    pub give_up_after_s: u64,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub disable_after_s: u64,
    /// How long the previous secret keeps signing after a rotation.
    pub secret_overlap_s: u64,
    /// Attempts in flight at once, over all endpoints.
    pub parallel: usize,
    /// Endpoints one user may have.
    pub max_per_user: usize,
}

impl Default for WebhooksSettings {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            timeout_ms: 10_000,
            retry_initial_ms: 5_000,
            retry_max_ms: 3_600_000,
            give_up_after_s: 86_400,
            disable_after_s: 86_400,
            secret_overlap_s: 86_400,
            parallel: 32,
            max_per_user: 20,
        }
    }
}

/// The media library: where uploaded files are kept and how big one may be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    pub storage: MediaStorageKind,
    /// The directory of `storage = "local"`; `<data_dir>/media` when unset.
    pub dir: Option<PathBuf>,
    /// Largest file one upload may be: 2 GiB is what Telegram takes from a user account (a bot
    /// may send at most 50 MB, checked when it sends).
    pub max_size_bytes: u64,
    pub s3: S3Settings,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            storage: MediaStorageKind::Local,
            dir: None,
            max_size_bytes: 2 << 30,
            s3: S3Settings::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStorageKind {
    /// A directory on this machine.
    Local,
    /// An S3-compatible bucket (AWS, MinIO, Ceph, R2…).
    S3,
}

/// An S3-compatible bucket. Credentials left unset come from the usual AWS environment
/// (`AWS_ACCESS_KEY_ID`, …, instance metadata).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    /// The endpoint of a non-AWS server, e.g. `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    /// Keys under this prefix only, so one bucket can serve several installs.
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportSettings {
    /// Probe connections open at once, across every request and user of the process. 32 keeps
    /// an import of thousands well under a minute while a burst cannot open thousands of
    /// outbound sockets.
    pub max_concurrent_probes: usize,
    /// Seconds an item waits for a probe slot before its request answers 503 `IMPORT_BUSY`
    /// with `Retry-After`.
    pub probe_queue_timeout_s: u64,
    /// Items one user may import per minute (admins too: it protects Telegram's view of us).
    pub items_per_minute_per_user: u32,
}

impl Default for ImportSettings {
    fn default() -> Self {
        Self {
            max_concurrent_probes: 32,
            probe_queue_timeout_s: 10,
            items_per_minute_per_user: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    /// Origins a browser frontend may call from; none by default, so no cross-origin page can.
    pub cors_origins: Vec<String>,
    /// Largest request body accepted; session imports are the biggest legitimate bodies.
    pub body_limit_bytes: usize,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Without this, behind a proxy every
    /// client shares the proxy's address and so one per-IP login limit; trusting any sender's
    /// header instead would let a guesser pick a fresh "address" per attempt.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Open HTTP connections at most; more wait in the kernel's listen backlog (taking no file
    /// descriptor of ours) until one closes. Every connection costs a descriptor, and the
    /// descriptors are shared with the Telegram sockets (one per connected account): without a
    /// cap, slow or idle clients can take them all and the fleet can no longer reconnect. 1024 is
    /// far more than API clients need (they reuse keep-alive connections, and a reverse proxy
    /// pools a few), and small next to the descriptor limit a fleet runs with: tgfleet raises
    /// its soft limit to the hard one at start-up (systemd's default hard limit is 524288), and
    /// warns when this cap would take more than half of what it got (under a plain soft limit
    /// of 1024, lower this or raise `LimitNOFILE`/`ulimit -n`).
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers, from the moment the connection is
    /// open or idle: also the keep-alive idle timeout between requests. A person's client sends
    /// its headers in one packet; 10 s covers a slow mobile link many times over, and a client
    /// that sends half a header and waits (slowloris) holds a connection 10 s, not for ever.
    /// Behind a reverse proxy, keep the proxy's upstream keep-alive timeout below this.
    pub header_read_timeout_s: u64,
    /// Seconds one request may take, body upload included; past it the client gets 503
    /// `REQUEST_TIMEOUT`. The slowest legitimate requests (a login step or send that waits out a
    /// flood wait and retries, ~55 s at the fleet's defaults; an import of 100 sessions) finish
    /// well inside 120 s, while a body trickled a byte at a time cannot hold a request open.
    pub request_timeout_s: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_origins: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            trusted_proxies: Vec::new(),
            max_connections: 1024,
            header_read_timeout_s: 10,
            request_timeout_s: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: SocketAddr,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// The operator console: a web page at `/` on the API listener, a client of the public API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Off: `/` and `/console/…` answer 404 like any unknown route; the API is unchanged.
    pub enabled: bool,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; unset means SQLite in `data_dir`.
    pub url: Option<DatabaseUrl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretsBackend {
    #[default]
    Local,
    Vault,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSettings {
    pub backend: SecretsBackend,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultSettings {
    pub addr: Option<String>,
    /// A token, or instead an AppRole login (`role_id` with `secret_id` or `secret_id_file`).
    pub token: Option<Secret>,
    pub role_id: Option<String>,
    pub secret_id: Option<Secret>,
    /// A file holding the SecretID (as an orchestrator delivers it); read at every start.
    pub secret_id_file: Option<PathBuf>,
    /// Mount path of the AppRole auth method, usually `approle`.
    pub approle_mount: String,
    pub transit_mount: String,
    pub transit_key: String,
    pub kv_mount: String,
    /// KV v2 path holding `jwt_secret` and `api_hash`.
    pub kv_path: String,
}

impl Default for VaultSettings {
    fn default() -> Self {
        Self {
            addr: None,
            token: None,
            role_id: None,
            secret_id: None,
            secret_id_file: None,
            approle_mount: "approle".into(),
            transit_mount: "transit".into(),
            transit_key: "tgfleet-sessions".into(),
            kv_mount: "secret".into(),
            kv_path: "tgfleet".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramSettings {
    pub api_id: Option<i32>,
    pub api_hash: Option<Secret>,
    /// The loopback control API of a standalone testdc (`tgfleet testdc --control ADDR`), as
    /// `http://127.0.0.1:PORT`: the fleet then talks to that testdc's DCs instead of Telegram and
    /// registers each new session's auth keys with it (`POST /keys`). For tests and benchmarks
    /// whose fake DC must outlive a tgfleet process (kill -9 and restart); never for production:
    /// refused on a non-loopback host, beside api_id/api_hash, and together with `--sandbox`.
    pub testdc_control: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    #[default]
    Open,
    Closed,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    pub registration: Registration,
    /// Unset: generated at first start and kept in `data_dir/jwt.secret` (or read from Vault KV).
    pub jwt_secret: Option<Secret>,
    /// Short, because a stolen access token cannot be recalled before it expires except by logout.
    pub access_ttl_s: u64,
    pub refresh_ttl_s: u64,
    /// Attempts per minute per client IP on register/login/refresh: enough for a person, too few for guessing.
    pub auth_rate_per_minute: u32,
    /// Requests per second per user on every other route.
    pub user_rate_per_second: u32,
}

impl AuthSettings {
    /// Shortest HS256 secret accepted, wherever it comes from (config, environment, Vault KV):
    /// 32 bytes is the hash's own width, and anything shorter can be guessed offline from one
    /// token.
    pub const MIN_JWT_SECRET: usize = 32;

    /// The one length check, for a configured secret and one read from Vault alike; the error
    /// names the length, never the secret.
    pub fn check_jwt_secret(secret: &str) -> Result<(), String> {
        if secret.len() < Self::MIN_JWT_SECRET {
            return Err(format!(
                "is {} characters; it must be at least {} characters",
                secret.len(),
                Self::MIN_JWT_SECRET
            ));
        }
        Ok(())
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            jwt_secret: None,
            access_ttl_s: 15 * 60,
            refresh_ttl_s: 30 * 24 * 3600,
            auth_rate_per_minute: 20,
            user_rate_per_second: 50,
        }
    }
}

/// Knobs of the account actors and their supervisors.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// Supervisors the accounts are spread over, so one failure never reaches them all.
    pub shards: u32,
    /// Paced start-up: Telegram frowns on thousands of connections opened in one burst.
    pub starts_per_second: u32,
    /// Every Telegram call is bounded: grammers has no timeouts of its own.
    pub call_timeout_s: u64,
    /// Flood waits up to this many seconds are waited out; longer ones fail fast with 429.
    pub flood_wait_threshold_s: u32,
    /// Outbound Telegram calls per account per second, and the burst allowed above it: Telegram
    /// answers bursts with flood waits far longer than the burst saved.
    pub calls_per_second: u32,
    pub calls_burst: u32,
    /// Idle accounts are pinged this often; a silent one is rebuilt.
    pub watchdog_period_s: u64,
    /// An active account with no API call for this many seconds is hibernated: disconnected
    /// (no client, no buffers) until its next call, which reconnects it transparently. 0 (the
    /// default) never hibernates: tgfleet cannot know which accounts need live updates, and a
    /// hibernated account notices a revoked session only on its next call.
    pub hibernate_after_s: u64,
    /// Restarts tolerated within `restart_window_s` before an account is quarantined.
    pub restart_max: u32,
    pub restart_window_s: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        Self {
            shards: 8,
            starts_per_second: 200,
            call_timeout_s: 20,
            flood_wait_threshold_s: 10,
            calls_per_second: 5,
            calls_burst: 10,
            watchdog_period_s: 120,
            hibernate_after_s: 0,
            restart_max: 5,
            restart_window_s: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `tgfleet=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
    /// Integration-log rows older than this many days are deleted (0 keeps them forever): a
    /// busy fleet writes a row per reconnect and flood wait, and the table must not grow forever.
    pub retention_days: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
            retention_days: 30,
        }
    }
}

#[cfg(test)]
// figment's `Jail` closures return its (large) error type.
#[allow(clippy::result_large_err)]
mod amqp_tests {
    use figment::Jail;

    #[test]
    fn the_broker_sink_is_off_by_default_and_set_from_the_environment() {
        Jail::expect_with(|jail| {
            let s = crate::load(None).expect("defaults load");
            assert!(s.events.amqp_url.is_none());
            assert_eq!(s.events.amqp_exchange, "tgfleet.events");
            jail.set_env(
                "TGFLEET__EVENTS__AMQP_URL",
                "amqp://tgfleet:hunter2@127.0.0.1:5672/%2f",
            );
            jail.set_env("TGFLEET__EVENTS__AMQP_EXCHANGE", "fleet.events");
            let s = crate::load(None).expect("loads");
            let url = s.events.amqp_url.as_ref().expect("set");
            assert_eq!(url.expose(), "amqp://tgfleet:hunter2@127.0.0.1:5672/%2f");
            assert_eq!(s.events.amqp_exchange, "fleet.events");
            assert!(
                !format!("{s:?}").contains("hunter2"),
                "the password is never printed"
            );
            Ok(())
        });
    }

    #[test]
    fn a_broker_url_or_exchange_that_cannot_work_stops_start_up() {
        Jail::expect_with(|jail| {
            jail.set_env("TGFLEET__EVENTS__AMQP_URL", "http://127.0.0.1:5672");
            assert_eq!(crate::load(None).unwrap_err().key, "events.amqp_url");
            jail.set_env("TGFLEET__EVENTS__AMQP_URL", "amqp://127.0.0.1:5672/%2f");
            jail.set_env("TGFLEET__EVENTS__AMQP_EXCHANGE", "amq.topic");
            assert_eq!(crate::load(None).unwrap_err().key, "events.amqp_exchange");
            jail.create_file("t.toml", "[events]\namqp_exchnage = \"x\"\n")?;
            let err = crate::load(Some(std::path::Path::new("t.toml"))).unwrap_err();
            assert!(err.message.contains("amqp_exchnage"), "{err}");
            Ok(())
        });
    }
}
