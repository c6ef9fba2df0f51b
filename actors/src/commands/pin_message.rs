//! messages.updatePinnedMessage: pin a message in any chat, or unpin it.

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_peer};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;

#[derive(Debug, Clone)]
pub struct PinMessage {
    pub chat: Peer,
    pub message_id: i32,
    /// `false` unpins.
    pub pin: bool,
    /// Pin without notifying the members.
    pub silent: bool,
}

impl Handler for PinMessage {
    type Reply = ();
    type Op = Self;
    type Done = ();
    const NAME: &'static str = "pin_message";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, ()> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<(), OpFailure> {
        let peer = resolve_peer(&tg, &op.chat).await?;
        tg.call(&tl::functions::messages::UpdatePinnedMessage {
            silent: op.silent,
            unpin: !op.pin,
            pm_oneside: false,
            peer,
            id: op.message_id,
        })
        .await
        .map_err(refusal)?;
        Ok(())
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}
