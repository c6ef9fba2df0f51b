//! auth.logOut, then the session is wiped. Best effort: if Telegram answers anything (even a
//! refusal) the key goes; if Telegram is not reached the key stays, since the authorization is
//! still alive there, and the caller may retry.

use grammers_tl_types as tl;
use tgfleet_persistence::{AccountUpdate, LogLevel};

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::{CallError, Tg};
use crate::effect::{Effect, Line};
use crate::state::State;
use crate::stop::StopReason;

#[derive(Debug, Clone)]
pub struct LogOut;

impl Handler for LogOut {
    type Reply = ();
    type Op = ();
    type Done = ();
    const NAME: &'static str = "log_out";
    const CLASS: Class = Class::Login;

    fn admit(self, view: &View) -> Admission<(), ()> {
        if view.login_busy {
            Admission::Answer(Err(view.wrong_state("the previous login step to finish")))
        } else {
            Admission::Run(())
        }
    }

    async fn run((): (), tg: Tg) -> Result<(), OpFailure> {
        log_out(&tg).await
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided {
            effects: vec![Effect::Become {
                to: State::Final(StopReason::LoggedOut),
                update: AccountUpdate {
                    tg_user_id: Some(None),
                    username: Some(None),
                    flood_wait_until: Some(None),
                    ..Default::default()
                },
                log: Line::new(
                    LogLevel::Info,
                    "logged_out",
                    "logged out of Telegram; session wiped",
                ),
            }],
            answer: Ok(()),
        }
    }
}

pub(crate) async fn log_out(tg: &Tg) -> Result<(), OpFailure> {
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
    Ok(())
}
