//! Media from the library into Telegram: an item's bytes go up in parts (each read from the media
//! storage by range, `upload.saveBigFilePart` above 10 MB, a few parts in flight), `messages.uploadMedia`
//! turns them into a photo or document of this account, and what Telegram answers (id, access
//! hash, file reference) is kept per account and item, so the next send uploads nothing.

use base64::Engine as _;
use futures::StreamExt as _;
use grammers_tl_types as tl;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{Media, MediaKind};

use crate::client::{CallError, Tg};
use crate::commands::OpFailure;
use crate::protocol::AccountError;

/// Telegram's largest part (512 KiB); every part but the last must be this size.
pub const PART: usize = 512 << 10;
/// Above this a file must go up as a "big file".
pub const BIG_FILE: u64 = 10 << 20;
/// Parts on their way at once: enough to keep one connection busy, few enough that a file of
/// any size costs at most this many parts of memory.
const IN_FLIGHT: usize = 4;
/// Telegram's most parts per file (2 GiB at 512 KiB each... 4000 parts).
const MAX_PARTS: u64 = 4000;

/// What Telegram gave this account for an item: enough to send it again by reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TelegramFile {
    /// `photo` or `document`.
    pub kind: String,
    pub id: i64,
    pub access_hash: i64,
    /// Base64 of the file reference.
    pub file_reference: String,
}

impl TelegramFile {
    fn from_media(media: &tl::enums::MessageMedia) -> Option<Self> {
        let b64 = |r: &[u8]| base64::engine::general_purpose::STANDARD.encode(r);
        match media {
            tl::enums::MessageMedia::Photo(p) => match p.photo.as_ref()? {
                tl::enums::Photo::Photo(p) => Some(Self {
                    kind: "photo".into(),
                    id: p.id,
                    access_hash: p.access_hash,
                    file_reference: b64(&p.file_reference),
                }),
                tl::enums::Photo::Empty(_) => None,
            },
            tl::enums::MessageMedia::Document(d) => match d.document.as_ref()? {
                tl::enums::Document::Document(d) => Some(Self {
                    kind: "document".into(),
                    id: d.id,
                    access_hash: d.access_hash,
                    file_reference: b64(&d.file_reference),
                }),
                tl::enums::Document::Empty(_) => None,
            },
            _ => None,
        }
    }

    /// The item as a message's media, by reference.
    pub fn input_media(&self) -> tl::enums::InputMedia {
        let file_reference = base64::engine::general_purpose::STANDARD
            .decode(&self.file_reference)
            .unwrap_or_default();
        if self.kind == "photo" {
            tl::types::InputMediaPhoto {
                spoiler: false,
                live_photo: false,
                id: tl::types::InputPhoto {
                    id: self.id,
                    access_hash: self.access_hash,
                    file_reference,
                }
                .into(),
                ttl_seconds: None,
                video: None,
            }
            .into()
        } else {
            tl::types::InputMediaDocument {
                spoiler: false,
                id: tl::types::InputDocument {
                    id: self.id,
                    access_hash: self.access_hash,
                    file_reference,
                }
                .into(),
                video_cover: None,
                video_timestamp: None,
                ttl_seconds: None,
                query: None,
            }
            .into()
        }
    }
}

/// The item as this account can send it: what it was given before, or a fresh upload.
/// `fresh` forgets what it was given (its file reference expired).
pub(crate) async fn telegram_file(
    tg: &Tg,
    peer: &tl::enums::InputPeer,
    media: &Media,
    fresh: bool,
) -> Result<TelegramFile, OpFailure> {
    let store = &tg.env.store;
    if !fresh {
        let kept = store
            .telegram_file(tg.account_id, &media.id)
            .await
            .map_err(|e| internal(format!("reading a Telegram file: {e}")))?;
        if let Some(file) = kept.and_then(|json| serde_json::from_str(&json).ok()) {
            return Ok(file);
        }
    }
    let uploaded = upload(tg, media).await?;
    let request = tl::functions::messages::UploadMedia {
        business_connection_id: None,
        peer: peer.clone(),
        media: uploaded_media(media, uploaded),
    };
    let answer = tg
        .call(&request)
        .await
        .map_err(crate::commands::chat_calls::refusal)?;
    let file = TelegramFile::from_media(&answer)
        .ok_or_else(|| internal("Telegram's answer to uploadMedia held no photo or document"))?;
    let json = serde_json::to_string(&file).map_err(|e| internal(e.to_string()))?;
    // Not keeping it costs an upload next time, nothing more: the send goes on.
    if let Err(e) = store
        .put_telegram_file(tg.account_id, &media.id, &json)
        .await
    {
        tracing::warn!(media_id = %media.id, error = %e, "a Telegram file was not kept");
    }
    Ok(file)
}

/// Streams the item's bytes to Telegram in parts; the file Telegram then knows by its id.
async fn upload(tg: &Tg, media: &Media) -> Result<tl::enums::InputFile, OpFailure> {
    let storage = tg.env.media.as_ref().ok_or_else(|| {
        OpFailure::user(AccountError::Internal(
            "this fleet has no media storage".into(),
        ))
    })?;
    let size = u64::try_from(media.size).unwrap_or(0);
    let parts = size.div_ceil(PART as u64);
    if parts == 0 || parts > MAX_PARTS {
        return Err(OpFailure::user(AccountError::ChatRefused(
            "FILE_PARTS_INVALID",
        )));
    }
    let big = size > BIG_FILE;
    let file_id: i64 = rand::random();
    let total = parts as i32;
    // Each part is read from the storage by itself (a range read: one file read, or one GET
    // of S3) and sent, IN_FLIGHT at a time: reads and sends overlap, memory stays a few parts.
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut sent = 0u64;
    for index in 0..total {
        let start = index as u64 * PART as u64;
        let range = start..(start + PART as u64).min(size);
        in_flight.push(async move {
            let bytes = storage
                .read_range(&media.storage_key, range.clone())
                .await
                .map_err(|e| internal(format!("reading media {}: {e:#}", media.id)))?;
            if bytes.len() as u64 != range.end - range.start {
                return Err(internal("the stored file is shorter than recorded"));
            }
            save_part(tg, file_id, index, big.then_some(total), bytes.to_vec()).await
        });
        if in_flight.len() >= IN_FLIGHT {
            if let Some(done) = in_flight.next().await {
                sent += done?;
            }
        }
    }
    while let Some(done) = in_flight.next().await {
        sent += done?;
    }
    if sent != size {
        return Err(internal(format!(
            "the stored file has {sent} bytes, {size} were recorded"
        )));
    }
    let name = media.file_name.clone();
    Ok(if big {
        tl::types::InputFileBig {
            id: file_id,
            parts: total,
            name,
        }
        .into()
    } else {
        tl::types::InputFile {
            id: file_id,
            parts: total,
            name,
            md5_checksum: String::new(),
        }
        .into()
    })
}

/// One part; `big_total` is the part count of a big file (which each of its parts repeats).
async fn save_part(
    tg: &Tg,
    file_id: i64,
    index: i32,
    big_total: Option<i32>,
    bytes: Vec<u8>,
) -> Result<u64, OpFailure> {
    let len = bytes.len() as u64;
    let kept = match big_total {
        Some(file_total_parts) => {
            tg.call_upload(&tl::functions::upload::SaveBigFilePart {
                file_id,
                file_part: index,
                file_total_parts,
                bytes,
            })
            .await
        }
        None => {
            tg.call_upload(&tl::functions::upload::SaveFilePart {
                file_id,
                file_part: index,
                bytes,
            })
            .await
        }
    };
    match kept {
        Ok(true) => Ok(len),
        Ok(false) => Err(internal("Telegram did not keep a file part")),
        Err(e) => Err(crate::commands::chat_calls::refusal(e)),
    }
}

/// An uploaded file as the media Telegram should make of it.
fn uploaded_media(media: &Media, file: tl::enums::InputFile) -> tl::enums::InputMedia {
    if media.kind == MediaKind::Photo {
        return tl::types::InputMediaUploadedPhoto {
            spoiler: false,
            live_photo: false,
            file,
            stickers: None,
            ttl_seconds: None,
            video: None,
        }
        .into();
    }
    let mut attributes: Vec<tl::enums::DocumentAttribute> =
        vec![tl::types::DocumentAttributeFilename {
            file_name: media.file_name.clone(),
        }
        .into()];
    // Duration and dimensions are left for Telegram to find: tgfleet does not decode media.
    match media.kind {
        MediaKind::Video => attributes.push(
            tl::types::DocumentAttributeVideo {
                round_message: false,
                supports_streaming: true,
                nosound: false,
                duration: 0.0,
                w: 0,
                h: 0,
                preload_prefix_size: None,
                video_start_ts: None,
                video_codec: None,
            }
            .into(),
        ),
        MediaKind::Animation => attributes.push(tl::types::DocumentAttributeAnimated {}.into()),
        MediaKind::Audio | MediaKind::Voice => attributes.push(
            tl::types::DocumentAttributeAudio {
                voice: media.kind == MediaKind::Voice,
                duration: 0,
                title: None,
                performer: None,
                waveform: None,
            }
            .into(),
        ),
        MediaKind::Photo | MediaKind::Document => {}
    }
    tl::types::InputMediaUploadedDocument {
        nosound_video: false,
        // A document stays a document, whatever Telegram would otherwise make of its type.
        force_file: media.kind == MediaKind::Document,
        spoiler: false,
        file,
        thumb: None,
        mime_type: media.mime.clone(),
        attributes,
        stickers: None,
        video_cover: None,
        video_timestamp: None,
        ttl_seconds: None,
    }
    .into()
}

/// Telegram's refusal of a file reference that is no longer valid (`FILE_REFERENCE_EXPIRED`, or
/// `FILE_REFERENCE_3_EXPIRED` naming an album's fourth item).
pub(crate) fn is_stale_reference(cause: &CallError) -> bool {
    matches!(cause, CallError::Rpc(rpc)
        if rpc.name.starts_with("FILE_REFERENCE_")
            && (rpc.name.ends_with("_EXPIRED") || rpc.name.ends_with("_INVALID")))
}

fn internal(detail: impl Into<String>) -> OpFailure {
    OpFailure::user(AccountError::Internal(detail.into()))
}
