//! auth.exportLoginToken: a QR login. `QrLogin` mints a token; `QrCode` shows the pending one
//! while it is valid (a page reloading the image must show the code the phone is about to scan)
//! and mints one only when there is none. The scan completes in the background (`qr_poll.rs`).

use base64::Engine;
use chrono::{DateTime, Utc};
use grammers_tl_types as tl;
use serde::Serialize;

use super::login::{self, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::AccountError;
use crate::session::PendingLogin;

#[derive(Debug, Clone)]
pub struct QrLogin;

#[derive(Debug, Clone)]
pub struct QrCode;

/// A login token to show as a QR code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Qr {
    /// `tg://login?token=…`
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

impl Handler for QrLogin {
    type Reply = Qr;
    type Op = ();
    type Done = Step;
    const NAME: &'static str = "qr_login";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<(), Qr> {
        view.login_step_allowed().into()
    }

    async fn run((): (), tg: Tg) -> Result<Step, OpFailure> {
        export_login_token(&tg, true).await
    }

    fn on_done(view: &View, step: Step) -> Decided<Qr> {
        let effects = login::step_effects(view, &step, "QR code");
        let answer = match step {
            Step::Qr { url, expires_at } => Ok(Qr { url, expires_at }),
            // An earlier token was scanned meanwhile: the login moved on, there is no code to show.
            Step::PasswordNeeded { .. } => Err(AccountError::WrongState {
                state: tgfleet_persistence::AccountState::AwaitingPassword,
                expected: "a QR code to show (it was scanned; send the 2FA password)",
            }),
            Step::LoggedIn(_) => Err(AccountError::WrongState {
                state: tgfleet_persistence::AccountState::Active,
                expected: "a QR code to show (it was scanned; the account is logged in)",
            }),
            _ => Err(view.wrong_state("a QR code to show; request a new one")),
        };
        Decided { effects, answer }
    }
}

impl Handler for QrCode {
    type Reply = Qr;
    type Op = ();
    type Done = Step;
    const NAME: &'static str = "qr_code";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<(), Qr> {
        match &view.pending {
            Some(PendingLogin::Qr {
                expires_at,
                url: Some(url),
            }) if *expires_at > view.now && !view.authorized => Admission::Answer(Ok(Qr {
                url: url.clone(),
                expires_at: *expires_at,
            })),
            // No token to show: start the QR login like `QrLogin`.
            _ => QrLogin.admit(view),
        }
    }

    async fn run((): (), tg: Tg) -> Result<Step, OpFailure> {
        QrLogin::run((), tg).await
    }

    fn on_done(view: &View, step: Step) -> Decided<Qr> {
        QrLogin::on_done(view, step)
    }
}

pub(crate) async fn export_login_token(tg: &Tg, fresh: bool) -> Result<Step, OpFailure> {
    let request = tl::functions::auth::ExportLoginToken {
        api_id: tg.app.api_id,
        api_hash: tg.app.api_hash.clone(),
        except_ids: Vec::new(),
    };
    match tg.call(&request).await {
        Ok(token) => login_token_result(tg, token, fresh).await,
        Err(e) if e.is("SESSION_PASSWORD_NEEDED") => login::password_needed(tg, None).await,
        Err(e) => Err(e.into()),
    }
}

async fn login_token_result(
    tg: &Tg,
    token: tl::enums::auth::LoginToken,
    fresh: bool,
) -> Result<Step, OpFailure> {
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
                return Ok(Step::QrPending);
            }
            Ok(Step::Qr { url, expires_at })
        }
        LoginToken::MigrateTo(m) => {
            // The scanning user lives in another DC: import the token there, which becomes home.
            login::migrate(tg, u32::try_from(m.dc_id).ok()).await?;
            let imported = match tg
                .call_in_dc(
                    m.dc_id,
                    &tl::functions::auth::ImportLoginToken { token: m.token },
                )
                .await
            {
                Ok(v) => v,
                Err(e) if e.is("SESSION_PASSWORD_NEEDED") => {
                    return login::password_needed(tg, None).await
                }
                Err(e) => return Err(e.into()),
            };
            match imported {
                LoginToken::Success(s) => login::authorization_result(tg, s.authorization).await,
                LoginToken::Token(_) => Ok(Step::QrPending),
                LoginToken::MigrateTo(_) => Err(OpFailure::user(AccountError::Internal(
                    "QR login migrated twice".into(),
                ))),
            }
        }
        LoginToken::Success(s) => login::authorization_result(tg, s.authorization).await,
    }
}
