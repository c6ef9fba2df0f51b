//! upload.getFile: one piece of a file Telegram holds, at an offset, for a download streamed
//! piece by piece (each piece a command, so no file is ever held whole).

use grammers_tl_types as tl;

use super::chat_calls::refusal;
use super::message_file::FileToRead;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;

/// The piece a download reads at a time: Telegram's largest (1 MiB must be a multiple of it,
/// and a piece may not cross a 1 MiB boundary, which pieces of 512 KiB at multiples of 512 KiB
/// never do).
pub const PIECE: i32 = 512 << 10;

#[derive(Debug, Clone)]
pub struct ReadFile {
    pub file: FileToRead,
    /// A multiple of [`PIECE`].
    pub offset: i64,
}

impl Handler for ReadFile {
    type Reply = Vec<u8>;
    type Op = Self;
    type Done = Vec<u8>;
    const NAME: &'static str = "read_file";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, Vec<u8>> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<Vec<u8>, OpFailure> {
        let dc = op.file.dc_id;
        if !tg.session.authorized_in(dc) {
            // A file kept in another DC is read with this login copied there first, as
            // Telegram's clients do (auth.exportAuthorization, then importAuthorization there).
            let tl::enums::auth::ExportedAuthorization::Authorization(exported) = tg
                .call(&tl::functions::auth::ExportAuthorization { dc_id: dc })
                .await
                .map_err(refusal)?;
            tg.call_in_dc(
                dc,
                &tl::functions::auth::ImportAuthorization {
                    id: exported.id,
                    bytes: exported.bytes,
                },
            )
            .await
            .map_err(refusal)?;
            tg.session.mark_authorized_in(dc);
        }
        let request = tl::functions::upload::GetFile {
            precise: false,
            cdn_supported: false,
            location: op.file.location.clone(),
            offset: op.offset,
            limit: PIECE,
        };
        // Downloads, like uploads, are not held to the account's pacing of ordinary calls.
        let answer = tg.call_upload_in_dc(dc, &request).await.map_err(refusal)?;
        match answer {
            tl::enums::upload::File::File(f) => Ok(f.bytes),
            tl::enums::upload::File::CdnRedirect(_) => {
                Err(OpFailure::user(crate::protocol::AccountError::Internal(
                    "Telegram redirected a download to a CDN, which tgfleet does not ask for"
                        .into(),
                )))
            }
        }
    }

    fn on_done(_view: &View, bytes: Vec<u8>) -> Decided<Vec<u8>> {
        Decided::answer(Ok(bytes))
    }
}
