//! A message's photo or document as a file to read: the message found in its chat
//! (`history::one_message`), with the location upload.getFile takes.

use grammers_tl_types as tl;

use super::chat_calls::resolve_peer;
use super::{Admission, Class, Decided, Handler, OpFailure, View};
use crate::client::Tg;
use crate::message::MediaInfo;
use crate::peer::Peer;
use crate::protocol::AccountError;

#[derive(Debug, Clone)]
pub struct MessageFile {
    pub chat: Peer,
    pub message_id: i32,
}

/// A file Telegram holds, and where to read it.
#[derive(Clone, PartialEq)]
pub struct FileToRead {
    pub info: MediaInfo,
    pub(crate) location: tl::enums::InputFileLocation,
    /// The DC that holds the file.
    pub(crate) dc_id: i32,
}

impl std::fmt::Debug for FileToRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The location holds an access hash and a file reference.
        f.debug_struct("FileToRead")
            .field("info", &self.info)
            .field("dc_id", &self.dc_id)
            .finish_non_exhaustive()
    }
}

impl Handler for MessageFile {
    type Reply = FileToRead;
    type Op = Self;
    type Done = FileToRead;
    const NAME: &'static str = "message_file";
    const CLASS: Class = Class::Call;

    fn admit(self, view: &View) -> Admission<Self, FileToRead> {
        view.call_allowed().map(|()| self).into()
    }

    async fn run(op: Self, tg: Tg) -> Result<FileToRead, OpFailure> {
        let peer = resolve_peer(&tg, &op.chat).await?;
        let found = match super::history::one_message(&tg, peer, op.message_id).await? {
            Some(tl::enums::Message::Message(m)) => Some(m),
            _ => None,
        };
        let Some(message) = found else {
            return Err(OpFailure::user(AccountError::ChatRefused(
                "MESSAGE_ID_INVALID",
            )));
        };
        message
            .media
            .as_ref()
            .and_then(file_of)
            .ok_or_else(|| OpFailure::user(AccountError::ChatRefused("MEDIA_EMPTY")))
    }

    fn on_done(_view: &View, file: FileToRead) -> Decided<FileToRead> {
        Decided::answer(Ok(file))
    }
}

/// A message's media as a file to read: a photo's largest size, or a document.
pub(crate) fn file_of(media: &tl::enums::MessageMedia) -> Option<FileToRead> {
    let info = crate::message::media_info(media)?;
    match media {
        tl::enums::MessageMedia::Photo(p) => {
            let tl::enums::Photo::Photo(photo) = p.photo.as_ref()? else {
                return None;
            };
            let largest = photo
                .sizes
                .iter()
                .filter_map(|s| match s {
                    tl::enums::PhotoSize::Size(s) => Some((s.size as i64, s.r#type.clone())),
                    tl::enums::PhotoSize::Progressive(s) => Some((
                        s.sizes.iter().copied().max().unwrap_or(0) as i64,
                        s.r#type.clone(),
                    )),
                    _ => None,
                })
                .max_by_key(|(size, _)| *size)?;
            Some(FileToRead {
                info: crate::message::MediaInfo {
                    size: Some(largest.0),
                    ..info
                },
                location: tl::types::InputPhotoFileLocation {
                    id: photo.id,
                    access_hash: photo.access_hash,
                    file_reference: photo.file_reference.clone(),
                    thumb_size: largest.1,
                }
                .into(),
                dc_id: photo.dc_id,
            })
        }
        tl::enums::MessageMedia::Document(d) => {
            let tl::enums::Document::Document(doc) = d.document.as_ref()? else {
                return None;
            };
            Some(FileToRead {
                info,
                location: tl::types::InputDocumentFileLocation {
                    id: doc.id,
                    access_hash: doc.access_hash,
                    file_reference: doc.file_reference.clone(),
                    thumb_size: String::new(),
                }
                .into(),
                dc_id: doc.dc_id,
            })
        }
        _ => None,
    }
}
