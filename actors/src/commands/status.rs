//! The actor's live view: state, identity, flood waits. Answered from memory; it does not
//! count as use, so reading a hibernated account's status does not wake it.

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::protocol::{AccountError, AccountStatus};

#[derive(Debug, Clone)]
pub struct Status;

impl Handler for Status {
    type Reply = AccountStatus;
    type Op = ();
    type Done = ();
    const NAME: &'static str = "status";
    const CLASS: Class = Class::Read;
    const IS_USE: bool = false;

    fn admit(self, view: &View) -> Admission<(), AccountStatus> {
        let row = view.row;
        Admission::Answer(Ok(AccountStatus {
            account_id: row.id,
            state: view.state.account_state(),
            tg_user_id: row.tg_user_id,
            username: row.username.clone(),
            dc_id: row.dc_id,
            flood_wait_until: row.flood_wait_until,
            last_error: row.last_error.clone(),
        }))
    }

    async fn run((): (), _tg: Tg) -> Result<(), OpFailure> {
        Ok(())
    }

    /// Never reached: admission always answers.
    fn on_done(_view: &View, (): ()) -> Decided<AccountStatus> {
        Decided::answer(Err(AccountError::Internal(
            "status runs no operation".into(),
        )))
    }
}
