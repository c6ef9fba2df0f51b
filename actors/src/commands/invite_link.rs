//! messages.exportChatInvite: a link anyone can join a channel or supergroup by.

use grammers_tl_types as tl;

use super::chat_calls::{channel_peer, refusal, resolve_channel};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct InviteLink {
    pub chat: Peer,
}

impl Handler for InviteLink {
    type Reply = String;
    type Op = Self;
    type Done = String;
    const NAME: &'static str = "invite_link";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, String> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<String, OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        let exported = tg
            .call(&tl::functions::messages::ExportChatInvite {
                legacy_revoke_permanent: false,
                request_needed: false,
                peer: channel_peer(&channel),
                expire_date: None,
                usage_limit: None,
                title: None,
                subscription_pricing: None,
            })
            .await
            .map_err(refusal)?;
        match exported {
            tl::enums::ExportedChatInvite::ChatInviteExported(invite) => Ok(invite.link),
            tl::enums::ExportedChatInvite::ChatInvitePublicJoinRequests => Err(OpFailure::user(
                AccountError::Internal("Telegram answered join requests, not a link".into()),
            )),
        }
    }

    fn on_done(_view: &View, link: String) -> Decided<String> {
        Decided::answer(Ok(link))
    }
}
