//! Rows as the rest of tgfleet sees them, independent of the backend.

pub use crate::device::{DeviceIdentity, DevicePatch};
use crate::phone::Phone;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type UserId = i64;
pub type AccountId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    User,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub username: Option<String>,
    /// argon2 PHC string; never leaves the process.
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub username: Option<String>,
    pub password_hash: String,
    pub role: Role,
}

#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

/// A refresh token is stored only as a hash; `family_id` ties every rotation of one login
/// together so reuse of a revoked token can revoke them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: String,
    pub user_id: UserId,
    pub family_id: String,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    User,
    Bot,
}

/// The account states of DESIGN.md; stored as their snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountState {
    New,
    AwaitingCode,
    AwaitingPassword,
    AwaitingQr,
    Active,
    Reconnecting,
    FloodWait,
    Unauthorized,
    Banned,
    Quarantined,
    Hibernated,
    LoggedOut,
    Stopped,
}

impl AccountState {
    pub const ALL: [AccountState; 13] = [
        Self::New,
        Self::AwaitingCode,
        Self::AwaitingPassword,
        Self::AwaitingQr,
        Self::Active,
        Self::Reconnecting,
        Self::FloodWait,
        Self::Unauthorized,
        Self::Banned,
        Self::Quarantined,
        Self::Hibernated,
        Self::LoggedOut,
        Self::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::AwaitingCode => "awaiting_code",
            Self::AwaitingPassword => "awaiting_password",
            Self::AwaitingQr => "awaiting_qr",
            Self::Active => "active",
            Self::Reconnecting => "reconnecting",
            Self::FloodWait => "flood_wait",
            Self::Unauthorized => "unauthorized",
            Self::Banned => "banned",
            Self::Quarantined => "quarantined",
            Self::Hibernated => "hibernated",
            Self::LoggedOut => "logged_out",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// States in which the account holds a Telegram authorization that a fleet start should revive.
    pub fn is_authorized(self) -> bool {
        matches!(
            self,
            Self::Active | Self::Reconnecting | Self::FloodWait | Self::Hibernated
        )
    }
}

impl std::fmt::Display for AccountState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub owner_id: UserId,
    pub label: Option<String>,
    pub kind: AccountKind,
    pub phone: Option<Phone>,
    pub state: AccountState,
    pub tg_user_id: Option<i64>,
    pub username: Option<String>,
    pub dc_id: Option<i32>,
    pub flood_wait_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub restarts: i64,
    /// Receives Telegram's updates into the event log; `None` follows the kind (see
    /// [`Account::receives`]).
    pub receive_updates: Option<bool>,
    /// What every connection of the account tells Telegram in initConnection.
    pub device: DeviceIdentity,
    /// The account's own Telegram app (an imported session's, given with it), used instead of
    /// the fleet's for its connections and logins. Its `api_hash` is sealed, read only by the
    /// account's actor (`Store::account_api_hash`), and in no `Account`.
    pub api_id: Option<i32>,
    /// The proxy every connection of the account goes through; none goes without it.
    pub proxy_id: Option<ProxyId>,
    /// Whether the owner left the account's 2FA password with the fleet (sealed, read only by the
    /// account's actor through `Store::account_two_fa_password`, and in no `Account`).
    pub two_fa_stored: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// Whether the account receives its updates: as its owner set, else bots do (their users
    /// write to them) and user accounts, which mostly publish, stay lean.
    pub fn receives(&self) -> bool {
        self.receive_updates
            .unwrap_or(self.kind == AccountKind::Bot)
    }
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub owner_id: UserId,
    pub label: Option<String>,
    pub kind: AccountKind,
    pub phone: Option<Phone>,
}

/// An account made from an imported session, written with its session and fingerprint in one
/// transaction (`Store::create_imported_account`).
pub struct ImportedAccount {
    pub new: NewAccount,
    pub tg_user_id: i64,
    pub username: Option<String>,
    pub dc_id: i32,
    /// Hex SHA-256 of the auth key.
    pub fingerprint: String,
    /// Seals the session for the new account's id (the id is part of what is sealed, and the
    /// store assigns it inside the transaction). The store never sees the plaintext.
    pub seal: SealForAccount,
    /// The identity the session was checked with; `None` draws one.
    pub device: Option<DeviceIdentity>,
    /// The app the session came with, if it came with one.
    pub app: Option<ImportedApp>,
    /// The proxy the session was checked through, which the account keeps.
    pub proxy_id: Option<ProxyId>,
    /// Seals the 2FA password the session came with, if it came with one.
    pub seal_two_fa_password: Option<SealForAccount>,
}

/// An imported account's own Telegram app: its id, and its `api_hash` sealed like the session.
pub struct ImportedApp {
    pub api_id: i32,
    pub seal_api_hash: SealForAccount,
}

pub type SealForAccount = Box<
    dyn FnOnce(
            AccountId,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = anyhow::Result<Vec<u8>>> + Send>,
        > + Send,
>;

/// Why `Store::create_imported_account` wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportConflict {
    /// An authorized account holds the session's phone.
    Phone,
    /// An account holds this auth key already.
    Session(AccountId),
}

/// A partial update; `None` leaves a column as it is. Double options clear a column with `Some(None)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountUpdate {
    pub state: Option<AccountState>,
    pub phone: Option<Option<Phone>>,
    pub tg_user_id: Option<Option<i64>>,
    pub username: Option<Option<String>>,
    pub dc_id: Option<Option<i32>>,
    pub flood_wait_until: Option<Option<DateTime<Utc>>>,
    pub last_error: Option<Option<String>>,
    /// Added to the restart counter.
    pub add_restarts: i64,
    /// Why the state changes, for its `account.state_changed` event (no column of its own).
    pub cause: Option<String>,
    pub receive_updates: Option<bool>,
    /// The identity's fields to change, each written on its own so two edits of different
    /// fields both stand. Boxed: an update goes with every state change, which almost never
    /// carries one.
    pub device: Option<Box<DevicePatch>>,
    /// Binds the account to a proxy (`Some(Some(id))`) or unbinds it (`Some(None)`).
    pub proxy_id: Option<Option<ProxyId>>,
    /// Stores the account's 2FA password, sealed for it (`Some(Some(blob))`), or forgets it.
    pub two_fa_sealed: Option<Option<Vec<u8>>>,
}

impl AccountUpdate {
    /// What the row becomes once this update is written (the store's `updated_at` aside).
    pub fn apply_to(&self, row: &mut Account) {
        if let Some(state) = self.state {
            row.state = state;
        }
        if let Some(phone) = &self.phone {
            row.phone.clone_from(phone);
        }
        if let Some(tg_user_id) = self.tg_user_id {
            row.tg_user_id = tg_user_id;
        }
        if let Some(username) = &self.username {
            row.username.clone_from(username);
        }
        if let Some(dc_id) = self.dc_id {
            row.dc_id = dc_id;
        }
        if let Some(until) = self.flood_wait_until {
            row.flood_wait_until = until;
        }
        if let Some(last_error) = &self.last_error {
            row.last_error.clone_from(last_error);
        }
        row.restarts += self.add_restarts;
        if let Some(receive) = self.receive_updates {
            row.receive_updates = Some(receive);
        }
        if let Some(patch) = &self.device {
            row.device = patch.applied_to(&row.device);
        }
        if let Some(proxy_id) = self.proxy_id {
            row.proxy_id = proxy_id;
        }
        if let Some(sealed) = &self.two_fa_sealed {
            row.two_fa_stored = sealed.is_some();
        }
    }
}

pub type ProxyId = i64;

/// What the last check of a proxy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyState {
    /// Not checked yet.
    Unchecked,
    /// It reached a Telegram DC.
    Ok,
    /// It did not (down, refusing us, or unable to reach the DC).
    Unreachable,
}

impl ProxyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Ok => "ok",
            Self::Unreachable => "unreachable",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unchecked" => Some(Self::Unchecked),
            "ok" => Some(Self::Ok),
            "unreachable" => Some(Self::Unreachable),
            _ => None,
        }
    }
}

/// A proxy of the pool. Its URL is sealed and in no `Proxy` (`Store::proxy_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub id: ProxyId,
    pub owner_id: UserId,
    pub label: Option<String>,
    pub state: ProxyState,
    pub latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new proxy: its URL sealed for the id the store assigns, inside the insert's transaction.
pub struct NewProxy {
    pub owner_id: UserId,
    pub label: Option<String>,
    pub seal_url: SealForAccount,
}

/// What one `Idempotency-Key` of an account's sends came to (`sent_messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub dedupe_key: String,
    /// Drawn before the first attempt; every repeat of the send carries it.
    pub random_id: i64,
    /// What Telegram gave the send (an album's in order); empty before it answered.
    pub message_ids: Vec<i32>,
}

/// What one check of a proxy found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHealth {
    pub state: ProxyState,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub owner_id: Option<UserId>,
    pub state: Option<AccountState>,
    /// Keyset paging: only ids greater than this.
    pub after_id: Option<AccountId>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Debug, Self::Info, Self::Warn, Self::Error]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// One row of the integration log. Never holds a code, password, token or session.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub event: String,
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
    pub error_code: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct NewLogEntry {
    pub level: LogLevel,
    pub event: String,
    pub account_id: Option<AccountId>,
    pub user_id: Option<UserId>,
    pub error_code: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub account_id: Option<AccountId>,
    /// Only rows about this user or about accounts they own (a non-admin's view).
    pub owner_id: Option<UserId>,
    /// Entries at this level or above.
    pub min_level: Option<LogLevel>,
    pub event: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Keyset paging, newest first: only ids lower than this.
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorStats {
    /// (error code, count), most frequent first.
    pub by_code: Vec<(String, i64)>,
    /// (account id, count), most frequent first.
    pub by_account: Vec<(AccountId, i64)>,
}

/// What Telegram shows a media item as; decided from the bytes at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Photo,
    Video,
    Animation,
    Audio,
    Voice,
    Document,
}

impl MediaKind {
    pub const ALL: [MediaKind; 6] = [
        MediaKind::Photo,
        MediaKind::Video,
        MediaKind::Animation,
        MediaKind::Audio,
        MediaKind::Voice,
        MediaKind::Document,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Photo => "photo",
            MediaKind::Video => "video",
            MediaKind::Animation => "animation",
            MediaKind::Audio => "audio",
            MediaKind::Voice => "voice",
            MediaKind::Document => "document",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One file of a user's media library. `id` is a UUIDv7 string, so ids sort by upload time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub id: String,
    pub owner_id: UserId,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: i64,
    pub mime: String,
    pub kind: MediaKind,
    pub file_name: String,
    /// Where the bytes are in the media storage.
    pub storage_key: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct MediaFilter {
    /// Only this owner's items (None: everyone's, for an admin).
    pub owner_id: Option<UserId>,
    /// Keyset cursor: items with a smaller id (older), newest first.
    pub before_id: Option<String>,
    pub limit: u32,
}

/// A post's state: `scheduled` until its first delivery starts, `publishing` while any is
/// pending, then what its deliveries came to; `cancelled` by its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostState {
    Scheduled,
    Publishing,
    Published,
    PartiallyFailed,
    Failed,
    Cancelled,
}

impl PostState {
    pub const ALL: [PostState; 6] = [
        PostState::Scheduled,
        PostState::Publishing,
        PostState::Published,
        PostState::PartiallyFailed,
        PostState::Failed,
        PostState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Scheduled => "scheduled",
            PostState::Publishing => "publishing",
            PostState::Published => "published",
            PostState::PartiallyFailed => "partially_failed",
            PostState::Failed => "failed",
            PostState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Sending,
            DeliveryState::Sent,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What is posted, to which targets, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// UUIDv7, so ids sort by creation.
    pub id: String,
    pub owner_id: UserId,
    pub state: PostState,
    pub text: String,
    pub parse_mode: Option<String>,
    /// Media library ids.
    pub media: Vec<String>,
    pub silent: bool,
    pub link_preview: bool,
    pub publish_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One target of a post: an account sending into a chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub post_id: String,
    pub idx: i32,
    pub account_id: AccountId,
    /// The chat as the post named it (a Bot API id or `@username`).
    pub chat: String,
    pub state: DeliveryState,
    /// Fixed before the first send: every attempt is the same message to Telegram.
    pub random_id: i64,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub message_ids: Vec<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub owner_id: Option<UserId>,
    pub state: Option<PostState>,
    /// Keyset cursor: posts with a smaller id (older), newest first.
    pub before_id: Option<String>,
    pub limit: u32,
}

/// A change to a scheduled post (each `None` keeps its value).
#[derive(Debug, Clone, Default)]
pub struct PostEdit {
    pub text: Option<String>,
    pub parse_mode: Option<Option<String>>,
    pub media: Option<Vec<String>>,
    pub silent: Option<bool>,
    pub link_preview: Option<bool>,
    pub publish_at: Option<DateTime<Utc>>,
}

/// What one attempt at a delivery came to.
#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub state: DeliveryState,
    pub next_attempt_at: DateTime<Utc>,
    pub message_ids: Vec<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// The kinds of event the log keeps (`type` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    MessageReceived,
    MessageEdited,
    MessageDeleted,
    AccountStateChanged,
    AccountFloodWait,
    PostDeliverySucceeded,
    PostDeliveryFailed,
    PostPublished,
    WebhookDisabled,
    Ping,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::MessageReceived,
        EventType::MessageEdited,
        EventType::MessageDeleted,
        EventType::AccountStateChanged,
        EventType::AccountFloodWait,
        EventType::PostDeliverySucceeded,
        EventType::PostDeliveryFailed,
        EventType::PostPublished,
        EventType::WebhookDisabled,
        EventType::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MessageReceived => "message.received",
            EventType::MessageEdited => "message.edited",
            EventType::MessageDeleted => "message.deleted",
            EventType::AccountStateChanged => "account.state_changed",
            EventType::AccountFloodWait => "account.flood_wait",
            EventType::PostDeliverySucceeded => "post.delivery_succeeded",
            EventType::PostDeliveryFailed => "post.delivery_failed",
            EventType::PostPublished => "post.published",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::Ping => "ping",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An event to append to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    pub account_id: Option<AccountId>,
    /// Who may see it (besides admins).
    pub owner_id: UserId,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
    /// Two events with the same key are one: the second append writes nothing.
    pub dedupe_key: Option<String>,
}

/// An event as the log keeps it; `id` increases in the order events were committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub account_id: Option<AccountId>,
    #[serde(skip)]
    pub owner_id: UserId,
    pub occurred_at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// Which events to read: those after `after`, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after: i64,
    pub limit: u32,
    /// Only events this user may see; `None` for all (an admin).
    pub owner_id: Option<UserId>,
    /// Only these accounts' events (empty: any).
    pub account_ids: Vec<AccountId>,
    /// Only these types (empty: any).
    pub types: Vec<EventType>,
}

/// A webhook endpoint. `secret` and `previous_secret` are sealed by the `SessionCipher`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// UUIDv7.
    pub id: String,
    pub owner_id: UserId,
    pub url: String,
    /// Event type names, or `"*"` for all.
    pub events: Vec<String>,
    /// `None`: every account the owner may see.
    pub account_ids: Option<Vec<AccountId>>,
    pub description: Option<String>,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    /// The last event id looked at for this endpoint.
    pub cursor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a webhook (each `None` keeps its value). `enabled: Some(true)` also clears the
/// failure record, so a re-enabled endpoint gets a new day.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub account_ids: Option<Option<Vec<AccountId>>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookDeliveryState {
    Pending,
    Succeeded,
    Dead,
}

impl WebhookDeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookDeliveryState::Pending => "pending",
            WebhookDeliveryState::Succeeded => "succeeded",
            WebhookDeliveryState::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Dead]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One event queued for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub webhook_id: String,
    pub event_id: i64,
    /// The event's account, 0 for none: deliveries of one key go in order.
    pub account_key: i64,
    pub state: WebhookDeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What one attempt left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Retrying,
    Dead,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retrying => "retrying",
            AttemptOutcome::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Succeeded, Self::Retrying, Self::Dead]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One row of an endpoint's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub id: i64,
    pub webhook_id: String,
    pub event_id: i64,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status: Option<i32>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    pub next_attempt_at: Option<DateTime<Utc>>,
}
