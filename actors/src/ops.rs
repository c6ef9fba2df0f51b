//! The Telegram side of every request, as plain async functions over a [`Tg`] handle: they run
//! in tasks spawned by the actor (never in its mailbox) and report a [`Done`] or an [`OpFailure`].
//! Each login step persists the pending login itself before it returns, so the state is durable
//! by the time the actor replies.

use base64::Engine;
use chrono::{DateTime, Utc};
use grammers_crypto::two_factor_auth::{calculate_2fa, check_p_and_g};
use grammers_session::types::{PeerAuth, PeerId, PeerInfo, PeerRef, UpdatesState};
use grammers_session::Session;
use grammers_tl_types as tl;

use crate::client::{CallError, Tg};
use crate::protocol::AccountError;
use crate::session::{PendingLogin, SentRecord, SessionError};

/// What a finished operation achieved.
#[derive(Debug)]
pub enum Done {
    CodeSent {
        code_type: String,
        timeout_s: Option<u32>,
    },
    PasswordNeeded {
        hint: Option<String>,
    },
    Qr {
        url: String,
        expires_at: DateTime<Utc>,
    },
    /// A QR poll found no accepted token yet.
    QrPending,
    LoggedIn(LoggedInUser),
    Sent {
        message_id: i32,
    },
    LoggedOut,
    /// The health check (updates.getState) answered.
    Alive,
}

#[derive(Debug, Clone)]
pub struct LoggedInUser {
    pub user_id: i64,
    /// `+` and digits, as the store keeps phones; bots have none.
    pub phone: Option<String>,
    pub username: Option<String>,
    pub dc_id: i32,
    pub bot: bool,
}

/// What the caller sees, and the Telegram-level cause the actor turns into a state.
#[derive(Debug)]
pub struct OpFailure {
    pub error: AccountError,
    pub cause: Option<CallError>,
}

impl OpFailure {
    fn user(error: AccountError) -> Self {
        Self { error, cause: None }
    }
}

impl From<CallError> for OpFailure {
    fn from(cause: CallError) -> Self {
        Self {
            error: generic_error(&cause),
            cause: Some(cause),
        }
    }
}

impl From<SessionError> for OpFailure {
    fn from(e: SessionError) -> Self {
        CallError::Session(e.to_string()).into()
    }
}

/// The caller-facing error of a Telegram failure no step handled specifically.
pub fn generic_error(cause: &CallError) -> AccountError {
    match cause {
        CallError::FloodWait { method, seconds } => AccountError::FloodWait {
            method: method.clone(),
            seconds: *seconds,
        },
        CallError::Timeout => AccountError::Timeout,
        CallError::Network { .. } => AccountError::Reconnecting,
        CallError::Session(detail) => AccountError::Internal(detail.clone()),
        CallError::Rpc(e) => {
            if is_revoked(e) {
                AccountError::Unauthorized
            } else if e.is("USER_DEACTIVATED*") || e.is("PHONE_NUMBER_BANNED") {
                AccountError::Banned
            } else {
                AccountError::Telegram {
                    code: e.code,
                    name: e.name.clone(),
                }
            }
        }
    }
}

/// Errors meaning the session's authorization is gone.
pub fn is_revoked(e: &grammers_mtsender::RpcError) -> bool {
    e.is("AUTH_KEY_UNREGISTERED")
        || e.is("SESSION_REVOKED")
        || e.is("SESSION_EXPIRED")
        || e.is("AUTH_KEY_INVALID")
}

type OpResult = Result<Done, OpFailure>;

/// How long a 2FA check waits for a hashing slot before it answers busy.
const SRP_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One SRP (PBKDF2) computation per core at a time, across every account of the process.
fn srp_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| tokio::sync::Semaphore::new(srp_slot_count()))
}

/// How many 2FA hashes may run at once: the cores this process may use.
pub fn srp_slot_count() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

static SRP_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static SRP_PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The most 2FA hashes that ever ran at once in this process (for tests and health).
pub fn srp_peak_in_flight() -> usize {
    SRP_PEAK.load(std::sync::atomic::Ordering::Relaxed)
}

struct SrpInFlight;

impl SrpInFlight {
    fn enter() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let now = SRP_IN_FLIGHT.fetch_add(1, Relaxed) + 1;
        SRP_PEAK.fetch_max(now, Relaxed);
        Self
    }
}

impl Drop for SrpInFlight {
    fn drop(&mut self) {
        SRP_IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Follows a `*_MIGRATE_X` (303) answer: the account's home DC is elsewhere.
async fn migrate(tg: &Tg, new_dc: Option<u32>) -> Result<(), OpFailure> {
    let Some(new_dc) = new_dc else {
        return Err(OpFailure::user(AccountError::Internal(
            "migration without a DC".into(),
        )));
    };
    let old_dc = tg.session.home_dc();
    Session::set_home_dc_id(&*tg.session, new_dc as i32).await?;
    // The old connection is of no further use to this account.
    tg.handle.disconnect_from_dc(old_dc);
    Ok(())
}

/// Calls `request`, following one 303 migration to the account's real home DC.
async fn call_migrating<R: tl::RemoteCall>(tg: &Tg, request: &R) -> Result<R::Return, OpFailure> {
    match tg.call(request).await {
        Err(CallError::Rpc(e)) if e.code == 303 => {
            migrate(tg, e.value).await?;
            Ok(tg.call(request).await?)
        }
        other => Ok(other?),
    }
}

pub async fn send_code(tg: &Tg, phone: String) -> OpResult {
    let request = tl::functions::auth::SendCode {
        phone_number: phone.clone(),
        api_id: tg.env.telegram.api_id,
        api_hash: tg.env.telegram.api_hash.clone(),
        settings: tl::types::CodeSettings {
            allow_flashcall: false,
            current_number: false,
            allow_app_hash: false,
            allow_missed_call: false,
            allow_firebase: false,
            unknown_number: false,
            logout_tokens: None,
            token: None,
            app_sandbox: None,
        }
        .into(),
    };
    let sent = match call_migrating(tg, &request).await {
        Ok(sent) => sent,
        Err(f) => {
            return Err(match &f.cause {
                Some(c) if c.is("PHONE_NUMBER_INVALID") => OpFailure {
                    error: AccountError::PhoneInvalid,
                    cause: f.cause,
                },
                _ => f,
            })
        }
    };
    use tl::enums::auth::SentCode;
    match sent {
        SentCode::Code(code) => {
            let code_type = code_type_name(&code.r#type).to_owned();
            let timeout_s = code.timeout.and_then(|t| u32::try_from(t).ok());
            tg.session
                .set_pending_login(Some(PendingLogin::Code {
                    phone,
                    phone_code_hash: code.phone_code_hash,
                    code_type: code_type.clone(),
                    timeout_s,
                    sent_at: Utc::now(),
                }))
                .await?;
            Ok(Done::CodeSent {
                code_type,
                timeout_s,
            })
        }
        SentCode::Success(success) => match success.authorization {
            tl::enums::auth::Authorization::Authorization(auth) => complete_login(tg, auth).await,
            tl::enums::auth::Authorization::SignUpRequired(_) => {
                Err(OpFailure::user(AccountError::PhoneNotRegistered))
            }
        },
        SentCode::PaymentRequired(_) => Err(OpFailure::user(AccountError::Telegram {
            code: 402,
            name: "PAYMENT_REQUIRED".into(),
        })),
    }
}

fn code_type_name(t: &tl::enums::auth::SentCodeType) -> &'static str {
    use tl::enums::auth::SentCodeType as T;
    match t {
        T::App(_) => "app",
        T::Sms(_) => "sms",
        T::Call(_) => "call",
        T::FlashCall(_) => "flash_call",
        T::MissedCall(_) => "missed_call",
        T::EmailCode(_) => "email_code",
        T::SetUpEmailRequired(_) => "set_up_email_required",
        T::FragmentSms(_) => "fragment_sms",
        T::FirebaseSms(_) => "firebase_sms",
        T::SmsWord(_) => "sms_word",
        T::SmsPhrase(_) => "sms_phrase",
    }
}

pub async fn sign_in(tg: &Tg, code: String) -> OpResult {
    let Some(PendingLogin::Code {
        phone,
        phone_code_hash,
        ..
    }) = tg.session.pending_login()
    else {
        return Err(OpFailure::user(AccountError::Internal(
            "no code login pending".into(),
        )));
    };
    let request = tl::functions::auth::SignIn {
        phone_number: phone.clone(),
        phone_code_hash,
        phone_code: Some(code),
        email_verification: None,
    };
    match tg.call(&request).await {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => complete_login(tg, auth).await,
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
            Err(OpFailure::user(AccountError::PhoneNotRegistered))
        }
        Err(e) if e.is("SESSION_PASSWORD_NEEDED") => password_needed(tg, Some(phone)).await,
        // grammers' own sign_in folds all PHONE_CODE_* into "invalid"; an expired code needs a
        // new send-code, a mistyped one only a retry, so they are told apart here.
        Err(e) if e.is("PHONE_CODE_EXPIRED") => {
            tg.session.set_pending_login(None).await?;
            Err(OpFailure {
                error: AccountError::CodeExpired,
                cause: Some(e),
            })
        }
        Err(e) if e.is("PHONE_CODE_INVALID") || e.is("PHONE_CODE_EMPTY") => Err(OpFailure {
            error: AccountError::CodeInvalid,
            cause: Some(e),
        }),
        Err(e) => Err(e.into()),
    }
}

async fn password_needed(tg: &Tg, phone: Option<String>) -> OpResult {
    let password: tl::types::account::Password = tg
        .call(&tl::functions::account::GetPassword {})
        .await?
        .into();
    tg.session
        .set_pending_login(Some(PendingLogin::Password {
            hint: password.hint.clone(),
            phone,
        }))
        .await?;
    Ok(Done::PasswordNeeded {
        hint: password.hint,
    })
}

pub async fn check_password(tg: &Tg, password: String) -> OpResult {
    if !matches!(
        tg.session.pending_login(),
        Some(PendingLogin::Password { .. })
    ) {
        return Err(OpFailure::user(AccountError::Internal(
            "no password step pending".into(),
        )));
    }
    // Fresh SRP parameters for every attempt: srp_id / srp_b are single-use on Telegram's side.
    let info: tl::types::account::Password = tg
        .call(&tl::functions::account::GetPassword {})
        .await?
        .into();
    let bad = |what: &str| OpFailure::user(AccountError::Internal(format!("2FA: {what}")));
    let Some(tl::enums::PasswordKdfAlgo::Sha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow(algo)) =
        info.current_algo
    else {
        return Err(bad("unsupported or missing password algorithm"));
    };
    let (Some(srp_b), Some(srp_id)) = (info.srp_b, info.srp_id) else {
        return Err(bad("server sent no SRP parameters"));
    };
    let secure_random = info.secure_random;
    // PBKDF2 with 100k rounds: CPU work that must not block the async runtime, and bounded like
    // argon2 (one per core), its slot held by the blocking job itself. grammers panics on
    // malformed parameters; the blocking task contains that, and p/g are checked first.
    let slot = match tokio::time::timeout(SRP_SLOT_WAIT, srp_slots().acquire()).await {
        Ok(Ok(slot)) => slot,
        _ => return Err(OpFailure::user(AccountError::Busy("2FA password checks"))),
    };
    let srp = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let _counted = SrpInFlight::enter();
        if !check_p_and_g(&algo.p, &algo.g) {
            return None;
        }
        Some(calculate_2fa(
            &algo.salt1,
            &algo.salt2,
            &algo.p,
            &algo.g,
            srp_b,
            secure_random,
            password,
        ))
    })
    .await;
    let (m1, g_a) = match srp {
        Ok(Some(v)) => v,
        Ok(None) => return Err(bad("server sent invalid SRP group")),
        Err(_) => return Err(bad("SRP computation failed")),
    };
    let request = tl::functions::auth::CheckPassword {
        password: tl::enums::InputCheckPasswordSrp::Srp(tl::types::InputCheckPasswordSrp {
            srp_id,
            a: g_a.to_vec(),
            m1: m1.to_vec(),
        }),
    };
    match tg.call(&request).await {
        Ok(tl::enums::auth::Authorization::Authorization(auth)) => complete_login(tg, auth).await,
        Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
            Err(OpFailure::user(AccountError::PhoneNotRegistered))
        }
        Err(e) if e.is("PASSWORD_HASH_INVALID") => Err(OpFailure {
            error: AccountError::PasswordInvalid,
            cause: Some(e),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Starts (or restarts) a QR login: a new token and its `tg://login` URL.
pub async fn qr_login(tg: &Tg) -> OpResult {
    export_login_token(tg, true).await
}

/// Checks whether a pending QR token was accepted (on updateLoginToken, after a reconnect or a
/// restart); completes the login if so.
pub async fn qr_poll(tg: &Tg) -> OpResult {
    export_login_token(tg, false).await
}

async fn export_login_token(tg: &Tg, fresh: bool) -> OpResult {
    let request = tl::functions::auth::ExportLoginToken {
        api_id: tg.env.telegram.api_id,
        api_hash: tg.env.telegram.api_hash.clone(),
        except_ids: Vec::new(),
    };
    match tg.call(&request).await {
        Ok(token) => login_token_result(tg, token, fresh).await,
        Err(e) if e.is("SESSION_PASSWORD_NEEDED") => password_needed(tg, None).await,
        Err(e) => Err(e.into()),
    }
}

async fn login_token_result(tg: &Tg, token: tl::enums::auth::LoginToken, fresh: bool) -> OpResult {
    use tl::enums::auth::LoginToken;
    match token {
        LoginToken::Token(t) => {
            let expires_at = DateTime::from_timestamp(i64::from(t.expires), 0).unwrap_or_default();
            let url = format!(
                "tg://login?token={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&t.token)
            );
            // The pending QR step follows the newest token: its expiry and its URL.
            tg.session
                .set_pending_login(Some(PendingLogin::Qr {
                    expires_at,
                    url: Some(url.clone()),
                }))
                .await?;
            if !fresh {
                return Ok(Done::QrPending);
            }
            Ok(Done::Qr { url, expires_at })
        }
        LoginToken::MigrateTo(m) => {
            // The scanning user lives in another DC: import the token there, which becomes home.
            migrate(tg, u32::try_from(m.dc_id).ok()).await?;
            let imported = match tg
                .call_in_dc(
                    m.dc_id,
                    &tl::functions::auth::ImportLoginToken { token: m.token },
                )
                .await
            {
                Ok(v) => v,
                Err(e) if e.is("SESSION_PASSWORD_NEEDED") => {
                    return password_needed(tg, None).await
                }
                Err(e) => return Err(e.into()),
            };
            match imported {
                LoginToken::Success(s) => authorization_result(tg, s.authorization).await,
                LoginToken::Token(_) => Ok(Done::QrPending),
                LoginToken::MigrateTo(_) => Err(OpFailure::user(AccountError::Internal(
                    "QR login migrated twice".into(),
                ))),
            }
        }
        LoginToken::Success(s) => authorization_result(tg, s.authorization).await,
    }
}

async fn authorization_result(tg: &Tg, auth: tl::enums::auth::Authorization) -> OpResult {
    match auth {
        tl::enums::auth::Authorization::Authorization(auth) => complete_login(tg, auth).await,
        tl::enums::auth::Authorization::SignUpRequired(_) => {
            Err(OpFailure::user(AccountError::PhoneNotRegistered))
        }
    }
}

pub async fn bot_sign_in(tg: &Tg, token: String) -> OpResult {
    let request = tl::functions::auth::ImportBotAuthorization {
        flags: 0,
        api_id: tg.env.telegram.api_id,
        api_hash: tg.env.telegram.api_hash.clone(),
        bot_auth_token: token,
    };
    match call_migrating(tg, &request).await {
        Ok(auth) => authorization_result(tg, auth).await,
        Err(f) => Err(match &f.cause {
            Some(c) if c.is("ACCESS_TOKEN_INVALID") || c.is("ACCESS_TOKEN_EXPIRED") => OpFailure {
                error: AccountError::BotTokenInvalid,
                cause: f.cause,
            },
            _ => f,
        }),
    }
}

/// What grammers' private `complete_login` does: fetch the update state, cache the self user
/// (with `is_self`, which `Session::peer(PeerId::self_user())` answers from), store the update
/// state; plus: the pending login is finished.
async fn complete_login(tg: &Tg, auth: tl::types::auth::Authorization) -> OpResult {
    // Best effort like grammers: the update state corrects itself as updates arrive.
    let state = tg.call(&tl::functions::updates::GetState {}).await.ok();
    let tl::enums::User::User(user) = auth.user else {
        return Err(OpFailure::user(AccountError::Internal(
            "Telegram returned an empty user on login".into(),
        )));
    };
    let updates = state.map(|tl::enums::updates::State::State(s)| UpdatesState {
        pts: s.pts,
        qts: s.qts,
        date: s.date,
        seq: s.seq,
        channels: Vec::new(),
    });
    // One sealed write for the whole outcome (see `finish_login`).
    tg.session
        .finish_login(
            PeerInfo::User {
                id: user.id,
                auth: Some(PeerAuth::from_hash(user.access_hash.unwrap_or(0))),
                bot: Some(user.bot),
                is_self: Some(true),
            },
            updates,
        )
        .await?;
    Ok(Done::LoggedIn(LoggedInUser {
        user_id: user.id,
        phone: user.phone.as_deref().and_then(|p| {
            crate::phone::normalize_phone(&format!("+{}", p.trim_start_matches('+')))
        }),
        username: user.username,
        dc_id: tg.session.home_dc(),
        bot: user.bot,
    }))
}

/// The liveness probe: cheap, needs an authorization, touches the home DC.
pub async fn health(tg: &Tg) -> OpResult {
    tg.call(&tl::functions::updates::GetState {}).await?;
    Ok(Done::Alive)
}

/// auth.logOut (best effort: the session is wiped whatever Telegram says), then the session.
pub async fn log_out(tg: &Tg) -> OpResult {
    match tg.call(&tl::functions::auth::LogOut {}).await {
        Ok(_) => {}
        // Telegram was not reached: the authorization is still alive there, so the key is kept
        // (wiping it would leave a live login nobody holds); the caller may retry.
        Err(e @ (CallError::Timeout | CallError::Network { .. })) => return Err(e.into()),
        // Telegram answered (revoked already, or refused): nothing more this key can end.
        Err(e) => {
            tracing::info!(account_id = tg.account_id, error = %e.describe(), "auth.logOut refused; wiping the session");
        }
    }
    tg.session.wipe().await?;
    Ok(Done::LoggedOut)
}

pub async fn send_message(
    tg: &Tg,
    peer: crate::peer::Peer,
    text: String,
    dedupe_key: Option<String>,
) -> OpResult {
    use rand::Rng;
    // The random_id is fixed (and durable) before the first attempt: Telegram drops a second
    // message with the same random_id, so a re-send after a lost answer cannot duplicate it.
    let random_id = match &dedupe_key {
        Some(key) => match tg.session.sent_record(key) {
            Some(SentRecord {
                message_id: Some(id),
                ..
            }) => return Ok(Done::Sent { message_id: id }),
            Some(record) => record.random_id,
            None => {
                let random_id = rand::thread_rng().gen();
                tg.session
                    .begin_send(
                        SentRecord {
                            key: key.clone(),
                            random_id,
                            message_id: None,
                        },
                        tg.env.limits.dedupe_capacity,
                    )
                    .await?;
                random_id
            }
        },
        None => rand::thread_rng().gen(),
    };
    let input_peer = resolve_peer(tg, &peer).await?;
    let request = tl::functions::messages::SendMessage {
        no_webpage: false,
        silent: false,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer: input_peer,
        reply_to: None,
        message: text,
        random_id,
        reply_markup: None,
        entities: None,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        allow_paid_stars: None,
        suggested_post: None,
        rich_message: None,
    };
    let updates = tg.call(&request).await?;
    let Some(message_id) = sent_message_id(&updates, random_id) else {
        return Err(OpFailure::user(AccountError::Internal(
            "Telegram's answer carried no message id".into(),
        )));
    };
    if let Some(key) = &dedupe_key {
        tg.session.complete_send(key, message_id).await?;
    }
    Ok(Done::Sent { message_id })
}

fn sent_message_id(updates: &tl::enums::Updates, random_id: i64) -> Option<i32> {
    use tl::enums::{Update, Updates};
    let from_list = |list: &[Update]| {
        list.iter()
            .find_map(|u| match u {
                Update::MessageId(m) if m.random_id == random_id => Some(m.id),
                _ => None,
            })
            .or_else(|| {
                list.iter().find_map(|u| match u {
                    Update::NewMessage(m) => match &m.message {
                        tl::enums::Message::Message(msg) => Some(msg.id),
                        _ => None,
                    },
                    _ => None,
                })
            })
    };
    match updates {
        Updates::UpdateShortSentMessage(u) => Some(u.id),
        Updates::Updates(u) => from_list(&u.updates),
        Updates::Combined(u) => from_list(&u.updates),
        Updates::UpdateShort(u) => from_list(std::slice::from_ref(&u.update)),
        _ => None,
    }
}

/// A parsed peer → the peer to send to (resolving a username or phone through Telegram).
async fn resolve_peer(
    tg: &Tg,
    peer: &crate::peer::Peer,
) -> Result<tl::enums::InputPeer, OpFailure> {
    use crate::peer::Peer;
    let invalid = |why: &str| OpFailure::user(AccountError::PeerInvalid(why.to_owned()));
    let resolved = match peer {
        Peer::Me => return Ok(tl::enums::InputPeer::PeerSelf),
        Peer::Username(username) => {
            tg.call(&tl::functions::contacts::ResolveUsername {
                username: username.clone(),
                referer: None,
            })
            .await
        }
        Peer::Phone(phone) => {
            tg.call(&tl::functions::contacts::ResolvePhone {
                phone: phone.trim_start_matches('+').to_owned(),
            })
            .await
        }
        Peer::Id(id) => {
            let Some(peer_id) = PeerId::from_bot_api_dialog_id(*id) else {
                return Err(invalid("not a valid peer id"));
            };
            // With a cached access hash the peer is addressable; without, Telegram may still
            // accept it (contacts, bots' chats) through ambient authority.
            let auth = tg
                .session
                .cached_peer(peer_id)
                .and_then(|info| info.auth())
                .unwrap_or_default();
            return Ok(PeerRef { id: peer_id, auth }.into());
        }
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(e)
            if e.is("USERNAME_NOT_OCCUPIED")
                || e.is("USERNAME_INVALID")
                || e.is("PHONE_NOT_OCCUPIED")
                || e.is("PHONE_NUMBER_INVALID") =>
        {
            return Err(OpFailure {
                error: AccountError::PeerInvalid(e.code()),
                cause: Some(e),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let tl::enums::contacts::ResolvedPeer::Peer(resolved) = resolved;
    let mut infos = Vec::new();
    for user in &resolved.users {
        if let tl::enums::User::User(u) = user {
            infos.push(PeerInfo::User {
                id: u.id,
                auth: u.access_hash.map(PeerAuth::from_hash),
                bot: Some(u.bot),
                is_self: None,
            });
        }
    }
    for chat in &resolved.chats {
        match chat {
            tl::enums::Chat::Channel(c) => infos.push(PeerInfo::Channel {
                id: c.id,
                auth: c.access_hash.map(PeerAuth::from_hash),
                kind: None,
            }),
            tl::enums::Chat::Chat(c) => infos.push(PeerInfo::Chat { id: c.id }),
            _ => {}
        }
    }
    let target = PeerId::from(&resolved.peer);
    let auth = infos
        .iter()
        .find(|i| i.id() == target)
        .and_then(|i| i.auth())
        .unwrap_or_default();
    Session::cache_peers(&*tg.session, infos).await?;
    Ok(PeerRef { id: target, auth }.into())
}
