//! auth.signIn with the code Telegram sent; PHONE_CODE_EXPIRED (a new code is needed) and
//! PHONE_CODE_INVALID (a retry will do) are told apart.

use grammers_tl_types as tl;

use super::login::{self, LoginStep, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::AccountError;
use crate::session::PendingLogin;

#[derive(Clone)]
pub struct SignIn {
    pub code: String,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn")
            .field("code", &"<redacted>")
            .finish()
    }
}

impl Handler for SignIn {
    type Reply = LoginStep;
    type Op = String;
    type Done = Step;
    const NAME: &'static str = "sign_in";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<String, LoginStep> {
        view.login_step_allowed()
            .and_then(|()| match view.pending {
                Some(PendingLogin::Code { .. }) => Ok(self.code),
                _ => Err(view.wrong_state("awaiting_code")),
            })
            .into()
    }

    async fn run(code: String, tg: Tg) -> Result<Step, OpFailure> {
        let tg = &tg;
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
            phone_number: phone.to_string(),
            phone_code_hash,
            phone_code: Some(code),
            email_verification: None,
        };
        match tg.call(&request).await {
            Ok(tl::enums::auth::Authorization::Authorization(auth)) => {
                login::complete_login(tg, auth).await
            }
            Ok(tl::enums::auth::Authorization::SignUpRequired(_)) => {
                Err(OpFailure::user(AccountError::PhoneNotRegistered))
            }
            Err(e) if e.is("SESSION_PASSWORD_NEEDED") => {
                login::password_needed(tg, Some(phone)).await
            }
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

    fn on_done(view: &View, step: Step) -> Decided<LoginStep> {
        Decided {
            effects: login::step_effects(view, &step, "code"),
            answer: login::login_step(view, &step),
        }
    }
}
