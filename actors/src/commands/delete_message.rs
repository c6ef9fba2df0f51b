//! channels.deleteMessages: a message of a channel or supergroup goes, for everyone.

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_channel};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct DeleteMessage {
    pub chat: Peer,
    pub message_id: i32,
}

impl Handler for DeleteMessage {
    type Reply = ();
    type Op = Self;
    type Done = ();
    const NAME: &'static str = "delete_message";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, ()> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<(), OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        let tl::enums::messages::AffectedMessages::Messages(affected) = tg
            .call(&tl::functions::channels::DeleteMessages {
                channel,
                id: vec![op.message_id],
            })
            .await
            .map_err(refusal)?;
        // Telegram skips an id that is not there (any more): nothing was deleted, say so.
        if affected.pts_count == 0 {
            return Err(OpFailure::user(AccountError::ChatRefused(
                "MESSAGE_ID_INVALID",
            )));
        }
        Ok(())
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}
