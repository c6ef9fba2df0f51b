//! What every login command shares: the Telegram steps that finish a login (a 303 migration, the
//! 2FA password step, the authorization), the reply of a login step, and what a step's outcome
//! does to the account.

use chrono::{DateTime, Utc};
use grammers_session::types::{PeerAuth, PeerInfo, UpdatesState};
use grammers_session::Session;
use grammers_tl_types as tl;
use serde::Serialize;
use tgfleet_persistence::Phone;
use tgfleet_persistence::{AccountState, AccountUpdate, LogLevel};

use super::{OpFailure, View};
use crate::client::{CallError, Tg};
use crate::effect::{Effect, Line};
use crate::protocol::AccountError;
use crate::session::PendingLogin;
use crate::state::State;

/// Where a login is after a step: `active`, or `awaiting_password` (with the password's hint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginStep {
    pub state: AccountState,
    pub hint: Option<String>,
}

/// The Telegram account a login ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedInUser {
    pub user_id: i64,
    /// Bots have none.
    pub phone: Option<Phone>,
    pub username: Option<String>,
    pub dc_id: i32,
    pub bot: bool,
    /// The 2FA step was answered with the password the owner left with the fleet.
    pub by_stored_password: bool,
}

/// What a login step's Telegram side achieved.
#[derive(Debug)]
pub(crate) enum Step {
    CodeSent {
        code_type: String,
        timeout_s: Option<u32>,
    },
    PasswordNeeded {
        hint: Option<String>,
        /// Why the stored 2FA password did not finish the login, when one was tried.
        stored: Option<StoredRefused>,
    },
    Qr {
        url: String,
        expires_at: DateTime<Utc>,
    },
    /// A QR poll found no accepted token yet.
    QrPending,
    LoggedIn(LoggedInUser),
}

/// Why a stored 2FA password did not answer the password step.
#[derive(Debug)]
pub(crate) enum StoredRefused {
    /// Telegram said it is wrong: it is forgotten, so no later login spends an attempt on it.
    Wrong,
    /// It could not be tried (unreadable, a busy hasher, …): kept for the next login.
    Unusable(String),
}

/// What `step` does to the account; `how` names the login in the log ("code", "QR code", …).
pub(crate) fn step_effects(view: &View, step: &Step, how: &'static str) -> Vec<Effect> {
    let become_ =
        |to: State, update: AccountUpdate, event: &'static str, message: String| Effect::Become {
            to,
            update,
            log: Line::new(LogLevel::Info, event, message),
        };
    match step {
        Step::CodeSent { code_type, .. } => {
            // The row names the phone being logged in (a user's list, the sandbox's codes) once
            // Telegram accepted it; it holds the phone only when authorized.
            let phone = match &view.pending {
                Some(PendingLogin::Code { phone, .. }) => Some(Some(phone.clone())),
                _ => None,
            };
            vec![become_(
                State::AwaitingCode,
                AccountUpdate {
                    phone,
                    ..Default::default()
                },
                "login_code_sent",
                format!("login code sent ({code_type})"),
            )]
        }
        Step::PasswordNeeded { stored, .. } => vec![become_(
            State::AwaitingPassword,
            AccountUpdate {
                two_fa_sealed: matches!(stored, Some(StoredRefused::Wrong)).then_some(None),
                ..Default::default()
            },
            "login_password_needed",
            match stored {
                None => "two-step verification password needed".into(),
                Some(StoredRefused::Wrong) => "two-step verification password needed: the \
                    stored one did not do (Telegram refused it; it is forgotten)"
                    .into(),
                Some(StoredRefused::Unusable(why)) => format!(
                    "two-step verification password needed: the stored one did not do ({why})"
                ),
            },
        )],
        Step::Qr { expires_at, .. } => vec![become_(
            State::AwaitingQr,
            AccountUpdate::default(),
            "login_qr_exported",
            format!("QR login token exported, valid until {expires_at}"),
        )],
        Step::QrPending => Vec::new(),
        Step::LoggedIn(user) => vec![Effect::CompleteLogin {
            user: user.clone(),
            how: match (user.by_stored_password, how) {
                (true, "QR code") => "QR code and the stored 2FA password",
                (true, _) => "code and the stored 2FA password",
                (false, how) => how,
            },
        }],
    }
}

/// The reply of a step that ends in a login or in the password step.
pub(crate) fn login_step(view: &View, step: &Step) -> Result<LoginStep, AccountError> {
    match step {
        Step::LoggedIn(_) => Ok(LoginStep {
            state: AccountState::Active,
            hint: None,
        }),
        Step::PasswordNeeded { hint, .. } => Ok(LoginStep {
            state: AccountState::AwaitingPassword,
            hint: hint.clone(),
        }),
        Step::QrPending => Ok(LoginStep {
            state: view.state.account_state(),
            hint: None,
        }),
        Step::CodeSent { .. } | Step::Qr { .. } => Err(AccountError::Internal(
            "a login step answered with another step's outcome".into(),
        )),
    }
}

/// Follows a `*_MIGRATE_X` (303) answer: the account's home DC is elsewhere.
pub(crate) async fn migrate(tg: &Tg, new_dc: Option<u32>) -> Result<(), OpFailure> {
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
pub(crate) async fn call_migrating<R: tl::RemoteCall + tl::Identifiable>(
    tg: &Tg,
    request: &R,
) -> Result<R::Return, OpFailure> {
    match tg.call(request).await {
        Err(CallError::Rpc(e)) if e.code == 303 => {
            migrate(tg, e.value).await?;
            Ok(tg.call(request).await?)
        }
        other => Ok(other?),
    }
}

pub(crate) async fn password_needed(tg: &Tg, phone: Option<Phone>) -> Result<Step, OpFailure> {
    let password: tl::types::account::Password = tg
        .call(&tl::functions::account::GetPassword {})
        .await?
        .into();
    // A password the owner left with the fleet answers the step at once, so a re-login of an
    // imported account needs only its code. Whatever keeps it from doing so (wrong, unreadable,
    // a busy hasher) leaves the step to whoever is logging in, as without one.
    let stored = match stored_password(tg).await {
        Ok(None) => None,
        Ok(Some(stored)) => {
            match super::check_password::prove(tg, password.clone(), stored).await {
                Ok(Step::LoggedIn(mut user)) => {
                    user.by_stored_password = true;
                    return Ok(Step::LoggedIn(user));
                }
                Ok(other) => return Ok(other),
                Err(failure) => Some(match failure.error {
                    AccountError::PasswordInvalid => StoredRefused::Wrong,
                    other => StoredRefused::Unusable(other.to_string()),
                }),
            }
        }
        Err(why) => Some(StoredRefused::Unusable(why)),
    };
    tg.session
        .set_pending_login(Some(PendingLogin::Password {
            hint: password.hint.clone(),
            phone,
        }))
        .await?;
    Ok(Step::PasswordNeeded {
        hint: password.hint,
        stored,
    })
}

/// The account's stored 2FA password, opened here in the account core like its session.
async fn stored_password(tg: &Tg) -> Result<Option<zeroize::Zeroizing<String>>, String> {
    let sealed = tg
        .env
        .store
        .account_two_fa_password(tg.account_id)
        .await
        .map_err(|e| format!("it could not be read: {e}"))?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    tg.env
        .cipher
        .open_two_fa_password(tg.account_id, &sealed)
        .await
        .map(Some)
        .map_err(|e| format!("it could not be opened: {e}"))
}

pub(crate) async fn authorization_result(
    tg: &Tg,
    auth: tl::enums::auth::Authorization,
) -> Result<Step, OpFailure> {
    match auth {
        tl::enums::auth::Authorization::Authorization(auth) => complete_login(tg, auth).await,
        tl::enums::auth::Authorization::SignUpRequired(_) => {
            Err(OpFailure::user(AccountError::PhoneNotRegistered))
        }
    }
}

/// What grammers' private `complete_login` does: fetch the update state, cache the self user
/// (with `is_self`, which `Session::peer(PeerId::self_user())` answers from), store the update
/// state; plus: the pending login is finished.
pub(crate) async fn complete_login(
    tg: &Tg,
    auth: tl::types::auth::Authorization,
) -> Result<Step, OpFailure> {
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
    Ok(Step::LoggedIn(LoggedInUser {
        user_id: user.id,
        phone: user.phone.as_deref().and_then(Phone::from_telegram),
        username: user.username,
        dc_id: tg.session.home_dc(),
        bot: user.bot,
        by_stored_password: false,
    }))
}
