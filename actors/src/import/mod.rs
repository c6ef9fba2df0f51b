//! Sessions that were logged in elsewhere (Telethon, Pyrogram, a tgfleet export) turned into the
//! sealed session format [`crate::session::StoreSession`] loads, and back.
//!
//! An imported auth key is checked against Telegram before it becomes an account: one call
//! (`users.getUsers([inputUserSelf])`) on a short-lived client proves the key is still authorized,
//! and names the logged-in user. The actor decides "active" from the self user in the session,
//! and a Telethon string does not carry the user id, so without that call an import would start
//! as `new` and never be usable. The probe client is gone before the account's actor starts, so
//! the key is never live on two connections at once (AUTH_KEY_DUPLICATED).

pub mod formats;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use grammers_mtsender::{ConnectionParams, InvocationError, SenderPool};
use grammers_session::storages::MemorySession;
use grammers_session::types::{DcOption, PeerAuth, PeerInfo, UpdatesState};
use grammers_session::SessionData;
use grammers_tl_types as tl;
use tgfleet_persistence::{
    DeviceIdentity, ImportedAccount, ImportedApp, NewAccount, Phone, SessionCipher,
};
use zeroize::Zeroizing;

use crate::env::{App, TelegramParams, TelegramTarget};
use crate::session::{self, StoredKeys};

/// What every supported foreign format boils down to. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ForeignSession {
    /// The home DC: the one the auth key is bound to the user on.
    pub dc_id: i32,
    /// Where that DC was reached (Telethon keeps it; Pyrogram does not).
    pub addr: Option<SocketAddr>,
    pub auth_key: [u8; 256],
    /// The logged-in user, when the format keeps it (Pyrogram, tgfleet).
    pub user_id: Option<i64>,
    pub bot: Option<bool>,
}

impl fmt::Debug for ForeignSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForeignSession")
            .field("dc_id", &self.dc_id)
            .field("addr", &self.addr)
            .field("auth_key", &"<redacted>")
            .field("user_id", &self.user_id)
            .field("bot", &self.bot)
            .finish()
    }
}

/// Who Telegram says is logged in with an imported key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: i64,
    pub username: Option<String>,
    /// When Telegram shows it (it does to the user themself).
    pub phone: Option<Phone>,
    pub bot: bool,
    pub dc_id: i32,
}

/// A checked session, serialized in the store's session format and ready to be sealed for an
/// account. Only the account core reads the plaintext (it holds the auth key): it is wiped on
/// drop and never printed.
pub struct PreparedSession {
    plain: Zeroizing<Vec<u8>>,
    pub identity: Identity,
    /// Who the session was checked as, and the account will go on being.
    introduced: ImportAs,
}

/// What an imported session shows Telegram: from its check on, so the key's authorization sees
/// one device from the first connection this fleet makes with it.
#[derive(Debug, Clone)]
pub struct ImportAs {
    pub device: DeviceIdentity,
    /// The app the session came with (its api_id and api_hash), if it came with one; the
    /// fleet's otherwise.
    pub app: Option<App>,
    /// The pool's proxy the session is checked through and the account then keeps: with one,
    /// the probe connects only through it, like every connection of the account after it.
    pub proxy: Option<(tgfleet_persistence::ProxyId, tgfleet_persistence::ProxyUrl)>,
    /// The account's 2FA password, when it came with the session (a seller's `.json` "twoFA"):
    /// sealed with the account, and tried when a re-login meets SESSION_PASSWORD_NEEDED.
    pub two_fa_password: Option<TwoFaPassword>,
}

/// A 2FA password on its way to being sealed: wiped on drop, never printed.
#[derive(Clone)]
pub struct TwoFaPassword(Zeroizing<String>);

impl TwoFaPassword {
    pub fn new(password: String) -> Self {
        Self(Zeroizing::new(password))
    }

    /// 1 to 1024 bytes: Telegram sets no shorter bound, and nothing longer is anyone's password.
    pub fn checked(password: String) -> Result<Self, &'static str> {
        let password = Self::new(password);
        if password.0.is_empty() || password.0.len() > 1024 {
            return Err("a 2FA password is 1 to 1024 bytes long");
        }
        Ok(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl<'de> serde::Deserialize<'de> for TwoFaPassword {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::checked(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for TwoFaPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TwoFaPassword(<redacted>)")
    }
}

impl PreparedSession {
    /// The new account's row, fingerprint claim and session, for
    /// `Store::create_imported_account`: the session is sealed for the id the store assigns,
    /// inside its transaction, and the plaintext is wiped once sealed.
    pub fn into_account(
        self,
        cipher: SessionCipher,
        new: NewAccount,
        fingerprint: String,
    ) -> ImportedAccount {
        let Self {
            plain,
            identity,
            introduced:
                ImportAs {
                    device,
                    app,
                    proxy,
                    two_fa_password,
                },
        } = self;
        let seal_two_fa_password = two_fa_password.map(|password| {
            let cipher = cipher.clone();
            let seal: tgfleet_persistence::SealForAccount = Box::new(move |id| {
                Box::pin(
                    async move { Ok(cipher.seal_two_fa_password(id, password.expose()).await?) },
                )
            });
            seal
        });
        let app = app.map(|app| {
            let cipher = cipher.clone();
            ImportedApp {
                api_id: app.api_id,
                seal_api_hash: Box::new(move |id| {
                    Box::pin(async move { Ok(cipher.seal_api_hash(id, &app.api_hash).await?) })
                }),
            }
        });
        ImportedAccount {
            new,
            tg_user_id: identity.user_id,
            username: identity.username,
            dc_id: identity.dc_id,
            fingerprint,
            seal: Box::new(move |id| Box::pin(async move { Ok(cipher.seal(id, &plain).await?) })),
            device: Some(device),
            app,
            proxy_id: proxy.map(|(id, _)| id),
            seal_two_fa_password,
        }
    }
}

impl fmt::Debug for PreparedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedSession")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("DC {0} is not a data centre of this fleet's Telegram")]
    UnknownDc(i32),
    #[error("the session is not logged in any more ({0}): it was logged out or revoked")]
    NotAuthorized(String),
    #[error("the Telegram account of this session is banned ({0})")]
    Banned(String),
    #[error("the session belongs to Telegram user {actual}, not {claimed} as it says")]
    UserMismatch { claimed: i64, actual: i64 },
    #[error("Telegram did not answer within {0} s")]
    Timeout(u64),
    #[error("Telegram is unreachable: {0}")]
    Unreachable(String),
    #[error("Telegram error {0}")]
    Telegram(String),
    #[error("the stored session cannot be exported: {0}")]
    Unexportable(String),
}

impl ImportError {
    /// Stable code for API answers and the audit trail.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownDc(_) => "UNKNOWN_DC",
            Self::NotAuthorized(_) => "SESSION_NOT_AUTHORIZED",
            Self::Banned(_) => "ACCOUNT_BANNED",
            Self::UserMismatch { .. } => "SESSION_USER_MISMATCH",
            Self::Timeout(_) => "TELEGRAM_TIMEOUT",
            Self::Unreachable(_) => "TELEGRAM_UNAVAILABLE",
            Self::Telegram(_) => "TELEGRAM_ERROR",
            Self::Unexportable(_) => "SESSION_UNEXPORTABLE",
        }
    }

    /// Whether trying the same session again later may succeed (Telegram was not reachable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout(_) | Self::Unreachable(_))
    }
}

/// The DC options a session for `target` starts with, the imported key seeded into the home DC.
/// On testdc the key is registered there too, so the fake DC accepts it.
pub fn dc_options_for(
    target: &TelegramTarget,
    foreign: &ForeignSession,
) -> Result<Vec<DcOption>, ImportError> {
    let mut options: Vec<DcOption> = match target {
        // Against real Telegram the string's address is never used: it is whatever the uploader
        // wrote, and trusting it would let any API user make the server connect to internal
        // hosts (or to a fake DC of theirs that claims someone else's phone). grammers' own DC
        // table is the truth; `help.getConfig` refreshes it on the first connection.
        TelegramTarget::Production => SessionData::default().dc_options.into_values().collect(),
        TelegramTarget::TestDc { dcs, register_key } => {
            // The fleet decides where "Telegram" is; the string's address is not trusted here.
            register_key(foreign.auth_key);
            dcs.iter().map(|(id, addr)| option_at(*id, *addr)).collect()
        }
    };
    let home = options
        .iter_mut()
        .find(|o| o.id == foreign.dc_id)
        .ok_or(ImportError::UnknownDc(foreign.dc_id))?;
    home.auth_key = Some(foreign.auth_key);
    options.sort_by_key(|o| o.id);
    Ok(options)
}

fn option_at(id: i32, addr: SocketAddr) -> DcOption {
    let mut option = DcOption {
        id,
        ipv4: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        ipv6: SocketAddrV6::new(Ipv4Addr::UNSPECIFIED.to_ipv6_mapped(), 0, 0, 0),
        auth_key: None,
    };
    set_addr(&mut option, addr);
    option
}

fn set_addr(option: &mut DcOption, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            option.ipv4 = v4;
            // What grammers derives from an IPv4-only config (see session.rs), so its re-set of
            // the options after help.getConfig changes nothing.
            option.ipv6 = SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0);
        }
        SocketAddr::V6(v6) => option.ipv6 = v6,
    }
}

/// Checks `foreign` against Telegram, introduced as `introduced` says, and serializes it as a
/// session of this fleet.
pub async fn prepare(
    telegram: &TelegramParams,
    foreign: &ForeignSession,
    timeout: Duration,
    introduced: ImportAs,
) -> Result<PreparedSession, ImportError> {
    let dc_options = dc_options_for(&telegram.target, foreign)?;
    let api_id = introduced
        .app
        .as_ref()
        .map_or(telegram.api_id, |app| app.api_id);
    // The identity and route the account will have; the probe reads no updates.
    let params = crate::client::connection_params(
        &introduced.device,
        introduced.proxy.as_ref().map(|(_, url)| url),
        NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
    );
    let (user, updates) = probe(api_id, params, foreign.dc_id, &dc_options, timeout).await?;
    if let Some(claimed) = foreign.user_id {
        if claimed != user.id {
            return Err(ImportError::UserMismatch {
                claimed,
                actual: user.id,
            });
        }
    }
    let identity = Identity {
        user_id: user.id,
        username: user.username.clone(),
        phone: user.phone.as_deref().and_then(Phone::from_telegram),
        bot: user.bot,
        dc_id: foreign.dc_id,
    };
    let plain = session::imported_plain(
        foreign.dc_id,
        &dc_options,
        PeerInfo::User {
            id: user.id,
            auth: Some(PeerAuth::from_hash(user.access_hash.unwrap_or(0))),
            bot: Some(user.bot),
            is_self: Some(true),
        },
        updates.unwrap_or_default(),
    )
    .map_err(|e| ImportError::Unexportable(e.to_string()))?;
    Ok(PreparedSession {
        plain,
        identity,
        introduced,
    })
}

/// The portable fields of a stored session, for an export.
pub fn exportable(stored: &StoredKeys) -> Result<ForeignSession, ImportError> {
    let home = stored
        .dc_options
        .iter()
        .find(|o| o.id == stored.home_dc)
        .ok_or_else(|| ImportError::Unexportable("the home DC has no address".into()))?;
    let auth_key = home
        .auth_key
        .ok_or_else(|| ImportError::Unexportable("the home DC has no auth key".into()))?;
    let (user_id, bot) = stored
        .self_user
        .ok_or_else(|| ImportError::Unexportable("the session is not logged in".into()))?;
    Ok(ForeignSession {
        dc_id: stored.home_dc,
        addr: Some(SocketAddr::V4(home.ipv4)),
        auth_key,
        user_id: Some(user_id),
        bot,
    })
}

/// Aborts the probe's runner however the probe ends (grammers has no timeouts, and `quit()` can
/// hang on a black-holed connection).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn probe(
    api_id: i32,
    params: ConnectionParams,
    home_dc: i32,
    dc_options: &[DcOption],
    timeout: Duration,
) -> Result<(tl::types::User, Option<UpdatesState>), ImportError> {
    let data = SessionData {
        home_dc,
        dc_options: dc_options.iter().map(|o| (o.id, o.clone())).collect(),
        ..SessionData::default()
    };
    let SenderPool {
        runner,
        handle,
        updates,
    } = SenderPool::with_configuration(Arc::new(MemorySession::from(data)), api_id, params);
    let _runner = AbortOnDrop(tokio::spawn(runner.run()).abort_handle());
    // Updates pushed to the probe are of no interest; the bounded channel just drops extras.
    let _updates = updates;
    let handle = handle.thin;
    let secs = timeout.as_secs().max(1);
    let me = tokio::time::timeout(
        timeout,
        handle.invoke_in_dc(
            home_dc,
            &tl::functions::users::GetUsers {
                id: vec![tl::enums::InputUser::UserSelf],
            },
        ),
    )
    .await
    .map_err(|_| ImportError::Timeout(secs))?
    .map_err(classify)?;
    let user = match me.into_iter().next() {
        Some(tl::enums::User::User(user)) => user,
        _ => {
            return Err(ImportError::NotAuthorized(
                "Telegram returned no user for this session".into(),
            ))
        }
    };
    if user.deleted {
        return Err(ImportError::Banned("the account was deleted".into()));
    }
    // Best effort, as grammers does after a login: the update state corrects itself later.
    let updates = match tokio::time::timeout(
        timeout,
        handle.invoke_in_dc(home_dc, &tl::functions::updates::GetState {}),
    )
    .await
    {
        Ok(Ok(tl::enums::updates::State::State(s))) => Some(UpdatesState {
            pts: s.pts,
            qts: s.qts,
            date: s.date,
            seq: s.seq,
            channels: Vec::new(),
        }),
        _ => None,
    };
    Ok((user, updates))
}

fn classify(err: InvocationError) -> ImportError {
    match err {
        InvocationError::Rpc(rpc) => {
            let name = rpc.name.clone();
            if name.starts_with("USER_DEACTIVATED") {
                ImportError::Banned(name)
            } else if rpc.code == 401
                || name.starts_with("AUTH_KEY")
                || name.starts_with("SESSION_")
            {
                ImportError::NotAuthorized(name)
            } else {
                ImportError::Telegram(format!("{} {}", rpc.code, name))
            }
        }
        // Transport 404: the server does not know this auth key at all.
        InvocationError::Transport(e) if e.to_string().contains("404") => {
            ImportError::NotAuthorized("auth key unknown to Telegram".into())
        }
        InvocationError::Transport(e) => ImportError::Unreachable(e.to_string()),
        InvocationError::Io(e) => ImportError::Unreachable(e.to_string()),
        other => ImportError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{AccountEnv, AccountLimits};
    use crate::session::StoreSession;
    use tgfleet_persistence::{AccountKind, NewAccount, NewUser, Role, SessionCipher};

    fn foreign(dc_id: i32, addr: Option<SocketAddr>) -> ForeignSession {
        ForeignSession {
            dc_id,
            addr,
            auth_key: [7; 256],
            user_id: Some(42),
            bot: Some(false),
        }
    }

    #[test]
    fn production_options_ignore_the_foreign_address_and_take_the_key() {
        let planted: SocketAddr = "169.254.169.254:80".parse().unwrap();
        let options =
            dc_options_for(&TelegramTarget::Production, &foreign(2, Some(planted))).unwrap();
        let home = options.iter().find(|o| o.id == 2).unwrap();
        let builtin = SessionData::default().dc_options[&2].ipv4;
        assert_eq!(
            home.ipv4, builtin,
            "Telegram's own address, not the string's"
        );
        assert_ne!(SocketAddr::V4(home.ipv4), planted);
        assert_eq!(home.auth_key, Some([7; 256]));
        assert!(options
            .iter()
            .filter(|o| o.id != 2)
            .all(|o| o.auth_key.is_none()));
        assert_eq!(
            dc_options_for(&TelegramTarget::Production, &foreign(9, None)),
            Err(ImportError::UnknownDc(9))
        );
    }

    #[test]
    fn testdc_options_use_the_fleets_addresses_and_register_the_key() {
        let registered = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&registered);
        let target = TelegramTarget::TestDc {
            dcs: vec![
                (1, "127.0.0.1:4001".parse().unwrap()),
                (2, "127.0.0.1:4002".parse().unwrap()),
            ],
            register_key: Arc::new(move |k| seen.lock().unwrap().push(k)),
        };
        let elsewhere: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let options = dc_options_for(&target, &foreign(2, Some(elsewhere))).unwrap();
        assert_eq!(options[1].ipv4.port(), 4002);
        assert_eq!(registered.lock().unwrap().len(), 1);
    }

    /// What this module writes is what `StoreSession` loads: authorized, same home DC and key,
    /// and it exports back to the same fields.
    #[tokio::test]
    async fn prepared_sessions_load_as_authorized_store_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = tgfleet_persistence::connect("sqlite::memory:")
            .await
            .unwrap();
        let cipher = SessionCipher::local(dir.path().join("session.key")).unwrap();
        let owner = store
            .create_user(NewUser {
                email: "import@x.test".into(),
                username: None,
                password_hash: "x".into(),
                role: Role::User,
            })
            .await
            .unwrap();
        let addr: SocketAddr = "127.0.0.1:4002".parse().unwrap();
        let f = foreign(2, Some(addr));
        let options = dc_options_for(&TelegramTarget::Production, &f).unwrap();
        let plain = session::imported_plain(
            2,
            &options,
            PeerInfo::User {
                id: 42,
                auth: Some(PeerAuth::from_hash(5)),
                bot: Some(false),
                is_self: Some(true),
            },
            UpdatesState::default(),
        )
        .unwrap();
        let prepared = PreparedSession {
            plain,
            identity: Identity {
                user_id: 42,
                username: None,
                phone: None,
                bot: false,
                dc_id: 2,
            },
            introduced: ImportAs {
                device: DeviceIdentity::pick(3),
                app: Some(App {
                    api_id: 777,
                    api_hash: "0123456789abcdef0123456789abcdef".into(),
                }),
                proxy: None,
                two_fa_password: Some(TwoFaPassword::new("correct horse".into())),
            },
        };
        let new = NewAccount {
            owner_id: owner.id,
            label: None,
            kind: AccountKind::User,
            phone: None,
        };
        let account = store
            .create_imported_account(prepared.into_account(cipher.clone(), new, "fp".into()))
            .await
            .unwrap()
            .unwrap();
        let env = Arc::new(
            AccountEnv::new(
                store.clone(),
                cipher.clone(),
                TelegramParams {
                    api_id: 1,
                    api_hash: "x".into(),
                    target: TelegramTarget::Production,
                },
                AccountLimits::default(),
                &prometheus::Registry::new(),
            )
            .expect("account env"),
        );
        // The app and the identity it was checked as are the account's from now on; the
        // api_hash is sealed in the row and opened only here.
        assert_eq!(account.device, DeviceIdentity::pick(3));
        assert_eq!(account.api_id, Some(777));
        let sealed = store.account_api_hash(account.id).await.unwrap().unwrap();
        assert!(!sealed
            .windows(32)
            .any(|w| w == b"0123456789abcdef0123456789abcdef"));
        assert!(account.two_fa_stored);
        let sealed = store
            .account_two_fa_password(account.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!sealed.windows(13).any(|w| w == b"correct horse"));
        assert_eq!(
            cipher
                .open_two_fa_password(account.id, &sealed)
                .await
                .unwrap()
                .as_str(),
            "correct horse"
        );
        let app = session::app_for(&env, &account).await.unwrap();
        assert_eq!(
            (app.api_id, app.api_hash.as_str()),
            (777, "0123456789abcdef0123456789abcdef")
        );
        let session = StoreSession::load_or_create(account.id, env).await.unwrap();
        assert_eq!(session.self_user_id(), Some(42));
        assert_eq!(session.home_dc(), 2);
        assert_eq!(session.pending_login(), None);
        let stored = session::read_stored(&*store, &cipher, account.id)
            .await
            .unwrap()
            .expect("a stored session");
        let back = exportable(&stored).unwrap();
        assert_eq!(
            (back.dc_id, back.auth_key, back.user_id),
            (f.dc_id, f.auth_key, f.user_id)
        );
    }
}
