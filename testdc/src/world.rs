//! The data centre's directory and everything an RPC can change: users and bots, which auth key
//! is logged in as whom on which DC, pending logins, messages and channels; and, kept apart from
//! it because they are not Telegram's state and must never be persisted, the injected faults.
//!
//! One mutex guards the world. Every operation is a few map lookups, so contention stays low even
//! with thousands of connections, and one lock makes the login state machine easy to reason about.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};

use num_bigint::BigUint;
use rand::Rng;

use crate::mtp::KeyId;
use crate::srp;
use crate::updates::{Change, UpdateLog};

pub fn unix_now() -> i32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i32)
        .unwrap_or(0)
}

/// Digits only: `+1 (415) 555-0132` and `14155550132` are the same account.
pub fn normalize_phone(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

#[derive(Serialize, Deserialize)]
pub struct PasswordRec {
    pub password: String,
    pub salt1: Vec<u8>,
    pub salt2: Vec<u8>,
    /// `g^x mod p`, computed on first use because it costs 100k PBKDF2 rounds (and so never
    /// persisted: it follows from the rest).
    #[serde(skip)]
    pub verifier: Option<BigUint>,
}

#[derive(Serialize, Deserialize)]
pub struct MsgRec {
    pub id: i32,
    pub pts: i32,
    /// The other side of the conversation (the user themself for "Saved Messages").
    pub peer_user: i64,
    pub from_user: i64,
    pub out: bool,
    pub text: String,
    pub date: i32,
    #[serde(default)]
    pub media: Option<FileRec>,
    #[serde(default)]
    pub grouped_id: Option<i64>,
    #[serde(default)]
    pub entities: Vec<EntityRec>,
    #[serde(default)]
    pub edit_date: Option<i32>,
    #[serde(default)]
    pub pinned: bool,
    /// The same message's id in the other side's history (each user numbers its own messages);
    /// `None` in Saved Messages, or where the other side is gone.
    #[serde(default)]
    pub pair: Option<i32>,
}

#[derive(Serialize, Deserialize)]
pub struct UserRec {
    pub id: i64,
    pub access_hash: i64,
    pub phone: Option<String>,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub password: Option<PasswordRec>,
    pub dc_id: i32,
    pub registered: bool,
    pub bot: bool,
    pub banned: bool,
    pub pts: i32,
    pub last_msg_id: i32,
    pub history: Vec<MsgRec>,
    /// What moved `pts`, for getDifference.
    #[serde(default)]
    pub updates: UpdateLog,
    /// The pts of each channel this user's live connections (or answers to its own requests)
    /// last carried: where a getDifference tells it to resume that channel from.
    #[serde(default)]
    pub channel_pts_told: BTreeMap<i64, i32>,
}

#[derive(Serialize, Deserialize)]
pub struct ChannelMsg {
    pub id: i32,
    pub from_user: i64,
    pub text: String,
    pub date: i32,
    #[serde(default)]
    pub entities: Vec<EntityRec>,
    #[serde(default)]
    pub edit_date: Option<i32>,
    #[serde(default)]
    pub pinned: bool,
    /// The photo or document it carries, as it was when sent.
    #[serde(default)]
    pub media: Option<FileRec>,
    /// The album it belongs to.
    #[serde(default)]
    pub grouped_id: Option<i64>,
}

/// A file "Telegram" holds: what an upload became, a photo or a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRec {
    pub id: i64,
    pub access_hash: i64,
    /// The current file reference; an older one is FILE_REFERENCE_EXPIRED.
    pub file_reference: Vec<u8>,
    pub photo: bool,
    /// Lower-case hex SHA-256 of the bytes that were uploaded.
    pub sha256: String,
    pub size: i64,
    pub mime: String,
    pub file_name: String,
    /// What the document's attributes made it: `video`, `audio`, `voice`, `animation`, or
    /// `document`; `photo` for a photo.
    pub kind: String,
    pub date: i32,
    pub owner: i64,
    /// The DC that keeps the file: the uploader's.
    #[serde(default = "default_dc")]
    pub dc_id: i32,
}

/// A file being uploaded in parts (`upload.saveFilePart` / `saveBigFilePart`).
pub struct Upload {
    /// `file_total_parts` of a big file (every part repeats it).
    pub big_total: Option<i32>,
    /// Parts that came before the ones ahead of them, held until the gap is filled.
    pub pending: std::collections::BTreeMap<i32, Vec<u8>>,
    /// The parts written so far, in order: the next one expected is `next`.
    pub next: i32,
    pub part_size: usize,
    /// Set once a part shorter than `part_size` came: it must be the last.
    pub short_part: Option<i32>,
    pub hasher: sha2::Sha256,
    pub size: u64,
    pub spool: std::fs::File,
    pub spool_path: std::path::PathBuf,
}

#[derive(Serialize, Deserialize)]
pub struct ChannelRec {
    pub id: i64,
    pub access_hash: i64,
    pub title: String,
    pub username: Option<String>,
    pub broadcast: bool,
    pub creator: i64,
    pub members: Vec<i64>,
    pub date: i32,
    pub pts: i32,
    pub history: Vec<ChannelMsg>,
    #[serde(default)]
    pub about: String,
    /// Admins besides the creator, with the rights they were given.
    #[serde(default)]
    pub admins: Vec<AdminRec>,
    /// Hashes of invite links (`t.me/+HASH`) that let anyone join.
    #[serde(default)]
    pub invites: Vec<String>,
    /// What moved `pts`, for getChannelDifference.
    #[serde(default)]
    pub updates: UpdateLog,
    /// The highest message id ever given: a deleted message's id is never given again.
    #[serde(default)]
    pub last_msg_id: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdminRec {
    pub user: i64,
    /// Who promoted it: an admin may change only the admins it appointed.
    #[serde(default)]
    pub promoted_by: i64,
    /// The rights' names as ChatAdminRights spells its flags (`post_messages`, …).
    pub rights: Vec<String>,
}

impl EntityRec {
    /// The entity as a reader receives it (a mention in its received form).
    pub fn to_tl(&self) -> tl::enums::MessageEntity {
        let (offset, length) = (self.offset, self.length);
        match self.kind.as_str() {
            "bold" => tl::types::MessageEntityBold { offset, length }.into(),
            "italic" => tl::types::MessageEntityItalic { offset, length }.into(),
            "underline" => tl::types::MessageEntityUnderline { offset, length }.into(),
            "strike" => tl::types::MessageEntityStrike { offset, length }.into(),
            "spoiler" => tl::types::MessageEntitySpoiler { offset, length }.into(),
            "code" => tl::types::MessageEntityCode { offset, length }.into(),
            "pre" => tl::types::MessageEntityPre {
                offset,
                length,
                language: self.language.clone().unwrap_or_default(),
            }
            .into(),
            "text_url" => tl::types::MessageEntityTextUrl {
                offset,
                length,
                url: self.url.clone().unwrap_or_default(),
            }
            .into(),
            "blockquote" => tl::types::MessageEntityBlockquote {
                offset,
                length,
                collapsed: self.collapsed,
            }
            .into(),
            "input_mention_name" => tl::types::MessageEntityMentionName {
                offset,
                length,
                user_id: self.user_id.unwrap_or_default(),
            }
            .into(),
            _ => tl::types::MessageEntityUnknown { offset, length }.into(),
        }
    }
}

impl UserRec {
    /// Records a change to this user's box, moving its pts; returns the new pts.
    pub fn log(&mut self, pts_count: i32, date: i32, change: Change) -> i32 {
        self.pts = self.updates.push(self.pts, pts_count, date, change);
        self.pts
    }

    /// This user's client now knows channel `channel` up to `pts`.
    pub fn told(&mut self, channel: i64, pts: i32) {
        let at = self.channel_pts_told.entry(channel).or_insert(pts);
        *at = (*at).max(pts);
    }
}

impl ChannelRec {
    /// Records a change to the channel's box, moving its pts; returns the new pts.
    pub fn log(&mut self, pts_count: i32, date: i32, change: Change) -> i32 {
        self.pts = self.updates.push(self.pts, pts_count, date, change);
        self.pts
    }

    /// The id the next message gets (a deleted message's id is never reused).
    pub fn next_msg_id(&mut self) -> i32 {
        let last = self.history.last().map_or(0, |m| m.id);
        self.last_msg_id = self.last_msg_id.max(last) + 1;
        self.last_msg_id
    }

    /// The creator can do anything; an admin what its rights say.
    pub fn may(&self, user: i64, right: &str) -> bool {
        self.creator == user
            || self
                .admins
                .iter()
                .any(|a| a.user == user && a.rights.iter().any(|r| r == right))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Binding {
    /// Logged in as this user.
    User(i64),
    /// Code (or QR scan) accepted, the account's 2FA password is still owed.
    PasswordPending(i64),
    /// Authorization revoked from outside; answered with this kind's 401 error name.
    Revoked(crate::RevokeKind),
}

#[derive(Serialize, Deserialize)]
pub struct PendingCode {
    pub phone_code_hash: String,
    pub code: String,
    pub key_id: KeyId,
    /// Wall-clock, not `Instant`: a code must keep its age across a restart of the DC.
    pub issued: SystemTime,
    /// The code was right but the number has no account yet: `auth.signUp` may follow.
    pub signup_allowed: bool,
}

pub struct QrToken {
    pub key_id: KeyId,
    pub dc_id: i32,
    pub expires: i32,
    pub scanned_by: Option<i64>,
}

pub struct SrpPending {
    pub srp_id: i64,
    pub user_id: i64,
    pub challenge: srp::Challenge,
}

pub struct FloodRule {
    pub method: String,
    pub phone: Option<String>,
    pub until: Instant,
}

/// Longest `delay` a fault may ask for: longer only stalls the caller's own requests past every
/// client timeout, and nothing a test needs.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// Longest flood wait a fault may inject (a day, like Telegram's longest).
pub const MAX_FLOOD_SECONDS: u32 = 86_400;
/// Fault rules held for one phone, and for the whole DC: every rule is checked on every
/// request, so a caller adding rules in a loop must not slow every other account down.
pub const MAX_RULES_PER_PHONE: usize = 16;
pub const MAX_RULES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultLimit {
    PerPhone,
    Total,
}

/// Injected faults: global ones (black hole, delay) and per-phone ones.
#[derive(Default)]
pub struct FaultState {
    pub black_hole: bool,
    pub delay: Duration,
    pub phone_black_holes: HashSet<String>,
    pub phone_delays: HashMap<String, Duration>,
    pub floods: Vec<FloodRule>,
}

impl FaultState {
    fn prune(&mut self) {
        let now = Instant::now();
        self.floods.retain(|r| r.until > now);
    }

    pub fn live_rules(&mut self) -> usize {
        self.prune();
        self.rules()
    }

    fn rules(&self) -> usize {
        self.floods.len() + self.phone_black_holes.len() + self.phone_delays.len()
    }

    fn rules_of(&self, phone: &str) -> usize {
        self.floods
            .iter()
            .filter(|r| r.phone.as_deref() == Some(phone))
            .count()
            + usize::from(self.phone_black_holes.contains(phone))
            + usize::from(self.phone_delays.contains_key(phone))
    }

    /// Room for one more rule (for `phone` when given)?
    fn room(&mut self, phone: Option<&str>) -> Result<(), FaultLimit> {
        self.prune();
        if self.rules() >= MAX_RULES {
            return Err(FaultLimit::Total);
        }
        if let Some(p) = phone {
            if self.rules_of(p) >= MAX_RULES_PER_PHONE {
                return Err(FaultLimit::PerPhone);
            }
        }
        Ok(())
    }

    /// Adds (or, for the same method and phone, replaces) a flood rule.
    pub fn add_flood(&mut self, rule: FloodRule) -> Result<(), FaultLimit> {
        self.prune();
        if let Some(old) = self
            .floods
            .iter_mut()
            .find(|r| r.method == rule.method && r.phone == rule.phone)
        {
            *old = rule;
            return Ok(());
        }
        self.room(rule.phone.as_deref())?;
        self.floods.push(rule);
        Ok(())
    }

    pub fn set_phone_black_hole(&mut self, phone: &str, on: bool) -> Result<(), FaultLimit> {
        if !on {
            self.phone_black_holes.remove(phone);
            return Ok(());
        }
        if !self.phone_black_holes.contains(phone) {
            self.room(Some(phone))?;
            self.phone_black_holes.insert(phone.to_owned());
        }
        Ok(())
    }

    pub fn set_phone_delay(&mut self, phone: &str, delay: Duration) -> Result<(), FaultLimit> {
        if delay.is_zero() {
            self.phone_delays.remove(phone);
            return Ok(());
        }
        if !self.phone_delays.contains_key(phone) {
            self.room(Some(phone))?;
        }
        self.phone_delays.insert(phone.to_owned(), delay);
        Ok(())
    }

    /// Lifts every rule of one phone.
    pub fn clear_phone(&mut self, phone: &str) {
        self.floods.retain(|r| r.phone.as_deref() != Some(phone));
        self.phone_black_holes.remove(phone);
        self.phone_delays.remove(phone);
    }

    pub fn black_holed(&self, phone: Option<&str>) -> bool {
        self.black_hole || phone.is_some_and(|p| self.phone_black_holes.contains(p))
    }

    pub fn delay_for(&self, phone: Option<&str>) -> Duration {
        let own = phone
            .and_then(|p| self.phone_delays.get(p).copied())
            .unwrap_or_default();
        self.delay.max(own)
    }

    pub fn flood_remaining(&mut self, method: &str, phone: Option<&str>) -> Option<u32> {
        if self.floods.is_empty() {
            return None;
        }
        let now = Instant::now();
        self.floods.retain(|r| r.until > now);
        self.floods
            .iter()
            .filter(|r| r.method == method)
            .filter(|r| match (&r.phone, phone) {
                (None, _) => true,
                (Some(want), Some(have)) => *want == normalize_phone(have),
                (Some(_), None) => false,
            })
            .map(|r| {
                let left = r.until - now;
                // Round up so a client never sees FLOOD_WAIT_0 while the wait still holds.
                (left.as_millis().div_ceil(1000)) as u32
            })
            .max()
    }
}

/// A message some account sent, as the control API reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub from_user_id: i64,
    pub from_phone: Option<String>,
    pub to: PeerRef,
    pub text: String,
    pub random_id: i64,
    pub message_id: i32,
    pub date: i32,
    /// The formatting as the sender sent it.
    #[serde(default)]
    pub entities: Vec<EntityRec>,
    #[serde(default)]
    pub reply_to: Option<i32>,
    #[serde(default)]
    pub silent: bool,
    #[serde(default)]
    pub no_webpage: bool,
    /// The photo or document it carries.
    #[serde(default)]
    pub media: Option<FileRec>,
    #[serde(default)]
    pub grouped_id: Option<i64>,
}

/// One formatting entity of a message, as "Telegram" received it: offsets and lengths in UTF-16
/// code units, `kind` named after the TL constructor (`bold`, `text_url`, `input_mention_name`…).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRec {
    pub kind: String,
    pub offset: i32,
    pub length: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default)]
    pub collapsed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum PeerRef {
    User(i64),
    Channel(i64),
}

/// Specification of a user account for [`crate::TestDc::add_user`].
#[derive(Clone, Debug, serde::Deserialize)]
pub struct UserSpec {
    pub phone: String,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_dc")]
    pub dc_id: i32,
    #[serde(default = "default_true")]
    pub registered: bool,
}

fn default_dc() -> i32 {
    2
}
fn default_true() -> bool {
    true
}

impl UserSpec {
    pub fn new(phone: &str, first_name: &str) -> Self {
        Self {
            phone: phone.into(),
            first_name: first_name.into(),
            last_name: None,
            username: None,
            password: None,
            dc_id: 2,
            registered: true,
        }
    }
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.into());
        self
    }
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.into());
        self
    }
    pub fn dc(mut self, dc_id: i32) -> Self {
        self.dc_id = dc_id;
        self
    }
    pub fn unregistered(mut self) -> Self {
        self.registered = false;
        self
    }
}

pub struct World {
    pub users: HashMap<i64, UserRec>,
    pub phones: HashMap<String, i64>,
    pub usernames: HashMap<String, PeerRef>,
    pub bot_tokens: HashMap<String, i64>,
    pub channels: HashMap<i64, ChannelRec>,
    pub bindings: HashMap<(KeyId, i32), Binding>,
    pub codes: HashMap<String, PendingCode>,
    pub last_codes: HashMap<String, String>,
    /// The app (`api_id`, `api_hash`) the last `auth.sendCode` for a phone spoke for: what a
    /// test checks an account's login against (not persisted: a restart forgets it).
    pub last_code_apps: HashMap<String, (i32, String)>,
    pub qr_tokens: HashMap<Vec<u8>, QrToken>,
    pub srp: HashMap<(KeyId, i32), SrpPending>,
    pub exported_auths: HashMap<(i64, Vec<u8>), i32>,
    pub sent: HashMap<(i64, i64), Vec<u8>>,
    pub messages: Vec<StoredMessage>,
    /// Photos and documents by id.
    pub files: HashMap<i64, FileRec>,
    /// Uploads in progress by (user, file_id); not kept across restarts (nor are Telegram's).
    pub uploads: HashMap<(i64, i64), Upload>,
    pub(crate) next_user_id: i64,
    pub(crate) next_channel_id: i64,
}

pub fn random_i64() -> i64 {
    rand::thread_rng().gen()
}

fn random_access_hash() -> i64 {
    // Zero reads as "no access hash" in places; keep it out.
    loop {
        let v = random_i64();
        if v != 0 {
            return v;
        }
    }
}

impl World {
    pub fn new() -> Self {
        Self {
            users: HashMap::new(),
            phones: HashMap::new(),
            usernames: HashMap::new(),
            bot_tokens: HashMap::new(),
            channels: HashMap::new(),
            bindings: HashMap::new(),
            codes: HashMap::new(),
            last_codes: HashMap::new(),
            last_code_apps: HashMap::new(),
            qr_tokens: HashMap::new(),
            srp: HashMap::new(),
            exported_auths: HashMap::new(),
            sent: HashMap::new(),
            messages: Vec::new(),
            files: HashMap::new(),
            uploads: HashMap::new(),
            next_user_id: 100_000,
            next_channel_id: 1_000_000,
        }
    }

    pub fn add_user(&mut self, spec: UserSpec) -> i64 {
        let phone = normalize_phone(&spec.phone);
        if let Some(&id) = self.phones.get(&phone) {
            // Re-adding a phone updates the account in place so tests can reconfigure it.
            if let Some(u) = self.users.get_mut(&id) {
                u.first_name = spec.first_name;
                u.last_name = spec.last_name;
                u.dc_id = spec.dc_id;
                u.registered = spec.registered;
                u.password = spec.password.map(new_password);
            }
            if let Some(name) = spec.username {
                self.set_username(PeerRef::User(id), &name);
            }
            return id;
        }
        self.next_user_id += 1;
        let id = self.next_user_id;
        self.users.insert(
            id,
            UserRec {
                id,
                access_hash: random_access_hash(),
                phone: Some(phone.clone()),
                first_name: spec.first_name,
                last_name: spec.last_name,
                username: None,
                password: spec.password.map(new_password),
                dc_id: spec.dc_id,
                registered: spec.registered,
                bot: false,
                banned: false,
                pts: 1,
                last_msg_id: 0,
                history: Vec::new(),
                updates: UpdateLog::starting_at(1),
                channel_pts_told: BTreeMap::new(),
            },
        );
        self.phones.insert(phone, id);
        if let Some(name) = spec.username {
            self.set_username(PeerRef::User(id), &name);
        }
        id
    }

    pub fn add_bot(&mut self, token: &str, username: &str, dc_id: i32) -> i64 {
        if let Some(&id) = self.bot_tokens.get(token) {
            return id;
        }
        // Bot ids, like Telegram's, are the number before the colon when it parses.
        let id = token
            .split(':')
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|id| *id > 0 && !self.users.contains_key(id))
            .unwrap_or_else(|| {
                self.next_user_id += 1;
                self.next_user_id
            });
        self.users.insert(
            id,
            UserRec {
                id,
                access_hash: random_access_hash(),
                phone: None,
                first_name: username.trim_start_matches('@').to_owned(),
                last_name: None,
                username: None,
                password: None,
                dc_id,
                registered: true,
                bot: true,
                banned: false,
                pts: 1,
                last_msg_id: 0,
                history: Vec::new(),
                updates: UpdateLog::starting_at(1),
                channel_pts_told: BTreeMap::new(),
            },
        );
        self.bot_tokens.insert(token.to_owned(), id);
        self.set_username(PeerRef::User(id), username);
        id
    }

    pub fn set_username(&mut self, peer: PeerRef, name: &str) {
        let name = name.trim_start_matches('@').to_owned();
        self.usernames.insert(name.to_lowercase(), peer);
        match peer {
            PeerRef::User(id) => {
                if let Some(u) = self.users.get_mut(&id) {
                    u.username = Some(name);
                }
            }
            PeerRef::Channel(id) => {
                if let Some(c) = self.channels.get_mut(&id) {
                    c.username = Some(name);
                }
            }
        }
    }

    pub fn user_by_phone(&self, phone: &str) -> Option<&UserRec> {
        self.phones
            .get(&normalize_phone(phone))
            .and_then(|id| self.users.get(id))
    }

    /// Creates the account a sandbox phone gets on first use.
    pub fn sandbox_user(&mut self, phone: &str, dc_id: i32) -> i64 {
        let digits = normalize_phone(phone);
        let tail = &digits[digits.len().saturating_sub(4)..];
        let mut spec = UserSpec::new(&digits, "Sandbox").dc(dc_id);
        spec.last_name = Some(tail.to_owned());
        if digits.ends_with('9') {
            spec.password = Some("sandbox-2fa".into());
        }
        self.add_user(spec)
    }

    pub fn create_channel(&mut self, creator: i64, title: &str, broadcast: bool) -> i64 {
        self.next_channel_id += 1;
        let id = self.next_channel_id;
        self.channels.insert(
            id,
            ChannelRec {
                id,
                access_hash: random_access_hash(),
                title: title.to_owned(),

                username: None,
                broadcast,
                creator,
                members: vec![creator],
                date: unix_now(),
                pts: 1,
                history: Vec::new(),
                about: String::new(),
                admins: Vec::new(),
                invites: Vec::new(),
                updates: UpdateLog::starting_at(1),
                last_msg_id: 0,
            },
        );
        id
    }

    /// Gives every box whose log cannot replay up to its pts (a world written before boxes had
    /// logs) a fresh log from where it stands: a client behind it is then too long, not told
    /// that nothing happened.
    pub fn settle_update_logs(&mut self) {
        for u in self.users.values_mut() {
            if !u.updates.consistent_with(u.pts) {
                u.updates = UpdateLog::starting_at(u.pts);
            }
        }
        for c in self.channels.values_mut() {
            if !c.updates.consistent_with(c.pts) {
                c.updates = UpdateLog::starting_at(c.pts);
            }
        }
    }

    pub fn binding(&self, key: KeyId, dc: i32) -> Option<&Binding> {
        self.bindings.get(&(key, dc))
    }

    pub fn bound_user(&self, key: KeyId, dc: i32) -> Option<&UserRec> {
        match self.bindings.get(&(key, dc)) {
            Some(Binding::User(id)) => self.users.get(id),
            _ => None,
        }
    }

    /// The (key, dc) pairs currently logged in as `user`.
    pub fn sessions_of(&self, user: i64) -> Vec<(KeyId, i32)> {
        self.bindings
            .iter()
            .filter(|(_, b)| **b == Binding::User(user))
            .map(|(k, _)| *k)
            .collect()
    }

    pub fn new_code(&mut self, fixed: Option<&str>) -> String {
        match fixed {
            Some(c) => c.to_owned(),
            None => format!("{:05}", rand::thread_rng().gen_range(0..100_000)),
        }
    }

    pub fn new_qr_token(&mut self, key_id: KeyId, dc_id: i32) -> (Vec<u8>, i32) {
        let mut token = vec![0u8; 32];
        rand::thread_rng().fill(&mut token[..]);
        let expires = unix_now() + 60;
        // One live token per (key, DC), as with Telegram: a new export replaces the old one.
        self.qr_tokens
            .retain(|_, t| !(t.key_id == key_id && t.dc_id == dc_id));
        self.qr_tokens.insert(
            token.clone(),
            QrToken {
                key_id,
                dc_id,
                expires,
                scanned_by: None,
            },
        );
        (token, expires)
    }
}

fn new_password(password: String) -> PasswordRec {
    let mut salt1 = vec![0u8; 40];
    let mut salt2 = vec![0u8; 16];
    rand::thread_rng().fill(&mut salt1[..]);
    rand::thread_rng().fill(&mut salt2[..]);
    PasswordRec {
        password,
        salt1,
        salt2,
        verifier: None,
    }
}
