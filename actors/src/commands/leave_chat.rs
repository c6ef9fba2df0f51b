//! channels.leaveChannel, or channels.deleteChannel when asked (the creator only: Telegram
//! refuses anyone else with CHAT_ADMIN_REQUIRED).

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_channel};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;

#[derive(Debug, Clone)]
pub struct LeaveChat {
    pub chat: Peer,
    /// Delete the channel for everyone instead of leaving it.
    pub delete: bool,
}

impl Handler for LeaveChat {
    type Reply = ();
    type Op = Self;
    type Done = ();
    const NAME: &'static str = "leave_chat";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, ()> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<(), OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        if op.delete {
            tg.call(&tl::functions::channels::DeleteChannel { channel })
                .await
                .map_err(refusal)?;
        } else {
            tg.call(&tl::functions::channels::LeaveChannel { channel })
                .await
                .map_err(refusal)?;
        }
        Ok(())
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}
