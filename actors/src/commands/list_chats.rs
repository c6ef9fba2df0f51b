//! messages.getDialogs: the account's chats, newest first, each addressable by its id afterwards
//! (the access hashes Telegram sent are cached in the session).

use grammers_session::Session;
use grammers_tl_types as tl;

use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::{self, Chat, ChatKind};
use crate::client::Tg;

#[derive(Debug, Clone)]
pub struct ListChats {
    /// Only chats of this kind.
    pub kind: Option<ChatKind>,
    /// Dialogs asked of Telegram (at most 100, as Telegram allows per page).
    pub limit: u32,
}

impl Handler for ListChats {
    type Reply = Vec<Chat>;
    type Op = Self;
    type Done = Vec<Chat>;
    const NAME: &'static str = "list_chats";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Vec<Chat>> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Vec<Chat>, OpFailure> {
        let dialogs = tg
            .call(&tl::functions::messages::GetDialogs {
                exclude_pinned: false,
                folder_id: None,
                offset_date: 0,
                offset_id: 0,
                offset_peer: tl::enums::InputPeer::Empty,
                limit: op.limit.clamp(1, 100) as i32,
                hash: 0,
            })
            .await?;
        let (dialogs, chats, users) = match dialogs {
            tl::enums::messages::Dialogs::Dialogs(d) => (d.dialogs, d.chats, d.users),
            tl::enums::messages::Dialogs::Slice(d) => (d.dialogs, d.chats, d.users),
            tl::enums::messages::Dialogs::NotModified(_) => Default::default(),
        };
        let known: Vec<_> = chats
            .iter()
            .filter_map(chat::from_tl_chat)
            .chain(users.iter().filter_map(chat::from_tl_user))
            .collect();
        Session::cache_peers(
            &*tg.session,
            known.iter().map(|(_, info)| info.clone()).collect(),
        )
        .await?;
        // In the dialogs' order (Telegram's: newest conversation first).
        let listed = dialogs
            .iter()
            .filter_map(|d| match d {
                tl::enums::Dialog::Dialog(d) => {
                    Some(grammers_session::types::PeerId::from(&d.peer))
                }
                _ => None,
            })
            .filter_map(|peer| {
                let id = peer.bot_api_dialog_id()?;
                known
                    .iter()
                    .find(|(c, _)| c.chat_id == id)
                    .map(|(c, _)| c.clone())
            })
            .filter(|c| c.kind == ChatKind::User || c.role.is_some())
            .filter(|c| op.kind.is_none_or(|k| c.kind == k))
            .collect();
        Ok(listed)
    }

    fn on_done(_view: &View, chats: Vec<Chat>) -> Decided<Vec<Chat>> {
        Decided::answer(Ok(chats))
    }
}
