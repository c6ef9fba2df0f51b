//! A message goes, for everyone: channels.deleteMessages in a channel or supergroup,
//! messages.deleteMessages with `revoke` in a private chat or basic group (where the message is
//! first looked up in that chat, since those ids number the account's whole message box).

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_peer};
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
        let affected = match resolve_peer(&tg, &op.chat).await? {
            tl::enums::InputPeer::Channel(c) => tg
                .call(&tl::functions::channels::DeleteMessages {
                    channel: tl::types::InputChannel {
                        channel_id: c.channel_id,
                        access_hash: c.access_hash,
                    }
                    .into(),
                    id: vec![op.message_id],
                })
                .await
                .map_err(refusal)?,
            peer => {
                if super::history::one_message(&tg, peer, op.message_id)
                    .await?
                    .is_none()
                {
                    return Err(invalid_id());
                }
                tg.call(&tl::functions::messages::DeleteMessages {
                    revoke: true,
                    id: vec![op.message_id],
                })
                .await
                .map_err(refusal)?
            }
        };
        let tl::enums::messages::AffectedMessages::Messages(affected) = affected;
        // Telegram skips an id that is not there (any more): nothing was deleted, say so.
        if affected.pts_count == 0 {
            return Err(invalid_id());
        }
        Ok(())
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}

fn invalid_id() -> OpFailure {
    OpFailure::user(AccountError::ChatRefused("MESSAGE_ID_INVALID"))
}
