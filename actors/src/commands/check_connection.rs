//! A liveness check asked for from outside the account: its proxy's check failed, so the
//! account finds out now whether its connection still goes through, rather than at its next
//! call. A failure is any call's failure (`failure::decide`): a bound account becomes
//! `reconnecting` with cause `proxy_unreachable`.

use grammers_tl_types as tl;

use super::health::Health;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;

#[derive(Debug, Clone)]
pub struct CheckConnection;

impl Handler for CheckConnection {
    type Reply = ();
    type Op = ();
    type Done = ();
    const NAME: &'static str = "check_connection";
    const CLASS: Class = Class::Call;
    // A check is no use of the account: it does not keep a hibernating one awake.
    const IS_USE: bool = false;

    fn admit(self, view: &View) -> Admission<(), ()> {
        if view.authorized && view.state.is_live() {
            Admission::Run(())
        } else {
            // Not connected for calls (new, halfway through a login, ended): nothing to check.
            Admission::Answer(Ok(()))
        }
    }

    async fn run((): (), tg: Tg) -> Result<(), OpFailure> {
        tg.call(&tl::functions::updates::GetState {}).await?;
        Ok(())
    }

    fn on_done(view: &View, (): ()) -> Decided<()> {
        <Health as Handler>::on_done(view, ())
    }
}
