//! channels.editAdmin: promote a member of a channel or supergroup with named rights, or demote
//! one (no rights).

use grammers_tl_types as tl;

use super::chat_calls::{refusal, resolve_channel, resolve_peer};
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::chat::admin_rights;
use crate::client::Tg;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct SetAdmin {
    pub chat: Peer,
    pub user: Peer,
    /// Names from [`crate::chat::ADMIN_RIGHTS`]; empty demotes.
    pub rights: Vec<String>,
}

impl Handler for SetAdmin {
    type Reply = ();
    type Op = Self;
    type Done = ();
    const NAME: &'static str = "set_admin";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, ()> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<(), OpFailure> {
        let channel = resolve_channel(&tg, &op.chat).await?;
        let user_id = match resolve_peer(&tg, &op.user).await? {
            tl::enums::InputPeer::User(u) => tl::types::InputUser {
                user_id: u.user_id,
                access_hash: u.access_hash,
            }
            .into(),
            tl::enums::InputPeer::PeerSelf => tl::enums::InputUser::UserSelf,
            _ => {
                return Err(OpFailure::user(AccountError::PeerInvalid(
                    "an admin is a user".into(),
                )))
            }
        };
        tg.call(&tl::functions::channels::EditAdmin {
            channel,
            user_id,
            admin_rights: admin_rights(&op.rights),
            rank: None,
        })
        .await
        .map_err(refusal)?;
        Ok(())
    }

    fn on_done(_view: &View, (): ()) -> Decided<()> {
        Decided::answer(Ok(()))
    }
}
