//! messages.editMessage: a sent message's new text and formatting (in any chat).

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_peer};
use super::send_message::input_entities;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::formatting::FormattedText;
use crate::peer::Peer;

#[derive(Debug, Clone)]
pub struct EditMessage {
    pub chat: Peer,
    pub message_id: i32,
    pub text: FormattedText,
    /// `true`: no preview of the first link (an edit sets it anew, like a send).
    pub no_link_preview: bool,
}

impl Handler for EditMessage {
    type Reply = ();
    type Op = Self;
    type Done = ();
    const NAME: &'static str = "edit_message";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, ()> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<(), OpFailure> {
        let peer = resolve_peer(&tg, &op.chat).await?;
        let edited = tg
            .call(&tl::functions::messages::EditMessage {
                no_webpage: op.no_link_preview,
                invert_media: false,
                peer,
                id: op.message_id,
                message: Some(op.text.text),
                media: None,
                reply_markup: None,
                entities: Some(input_entities(&tg, op.text.entities)),
                schedule_date: None,
                schedule_repeat_period: None,
                quick_reply_shortcut_id: None,
                rich_message: None,
            })
            .await
            .map_err(refusal);
        match edited {
            // The same text again: already as asked.
            Err(f)
                if f.cause
                    .as_ref()
                    .is_some_and(|c| c.is("MESSAGE_NOT_MODIFIED")) =>
            {
                Ok(())
            }
            Err(f) => Err(f),
            Ok(_) => Ok(()),
        }
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}
