//! messages.updatePinnedMessage: pin a message of a channel or supergroup, or unpin it.

use grammers_tl_types as tl;

use super::chat_calls::{channel_peer, refusal, resolve_channel};
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
        let channel = resolve_channel(&tg, &op.chat).await?;
        tg.call(&tl::functions::messages::UpdatePinnedMessage {
            silent: op.silent,
            unpin: !op.pin,
            pm_oneside: false,
            peer: channel_peer(&channel),
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
