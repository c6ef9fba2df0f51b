//! auth.importBotAuthorization: a bot logs in with its token in one step.

use grammers_tl_types as tl;

use super::login::{self, LoginStep, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::AccountError;

#[derive(Clone)]
pub struct BotSignIn {
    pub token: String,
}

impl std::fmt::Debug for BotSignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotSignIn")
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Handler for BotSignIn {
    type Reply = LoginStep;
    type Op = String;
    type Done = Step;
    const NAME: &'static str = "bot_sign_in";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<String, LoginStep> {
        view.login_step_allowed().map(|()| self.token).into()
    }

    async fn run(token: String, tg: Tg) -> Result<Step, OpFailure> {
        let tg = &tg;
        let request = tl::functions::auth::ImportBotAuthorization {
            flags: 0,
            api_id: tg.app.api_id,
            api_hash: tg.app.api_hash.clone(),
            bot_auth_token: token,
        };
        match login::call_migrating(tg, &request).await {
            Ok(auth) => login::authorization_result(tg, auth).await,
            Err(f) => Err(match &f.cause {
                Some(c) if c.is("ACCESS_TOKEN_INVALID") || c.is("ACCESS_TOKEN_EXPIRED") => {
                    OpFailure {
                        error: AccountError::BotTokenInvalid,
                        cause: f.cause,
                    }
                }
                _ => f,
            }),
        }
    }

    fn on_done(view: &View, step: Step) -> Decided<LoginStep> {
        Decided {
            effects: login::step_effects(view, &step, "bot token"),
            answer: login::login_step(view, &step),
        }
    }
}
