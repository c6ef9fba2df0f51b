//! Whether a pending QR token was scanned (on updateLoginToken, after a reconnect or a restart);
//! completes the login if so. The actor's own operation: nobody waits for its answer.

use super::login::{self, Step};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;

pub(crate) struct QrPoll;

impl Handler for QrPoll {
    type Reply = ();
    type Op = ();
    type Done = Step;
    const NAME: &'static str = "qr_poll";
    const CLASS: Class = Class::Login;
    const IS_USE: bool = false;

    /// The executor queues a poll behind a running login step instead of asking here.
    fn admit(self, _view: &View) -> Admission<(), ()> {
        Admission::Run(())
    }

    async fn run((): (), tg: Tg) -> Result<Step, OpFailure> {
        super::qr_login::export_login_token(&tg, false).await
    }

    fn on_done(view: &View, step: Step) -> Decided<()> {
        Decided {
            effects: login::step_effects(view, &step, "QR code"),
            answer: Ok(()),
        }
    }
}
