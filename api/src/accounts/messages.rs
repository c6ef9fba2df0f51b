use super::fleet;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath, IdempotencyKey};
use crate::logs::check_account_owner;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{AccountId, AccountKind, Media, MediaKind};
use tgfleet_supervision::account::PEER_FORMS;
use tgfleet_supervision::account::{
    formatting, FormattedText, ParseMode, Peer, SendMessage, SendOptions,
};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// `me`, `@username`, `+phone`, or a chat id (Bot API style: users > 0, `-100…` channels).
    pub peer: String,
    /// 1–4096 characters once formatting is read, as Telegram allows; with `media`, the caption
    /// (0–1024 characters, on an album's first item).
    pub text: Option<String>,
    /// Media library ids: one sends a photo, video, document…; 2–10 an album (photos and videos
    /// mix; documents go only with documents, audio only with audio). Text or media is required.
    pub media: Option<Vec<String>>,
    /// `html` (the Bot API's subset: b, i, u, s, tg-spoiler, a href incl. tg://user?id=, code,
    /// pre with a language, blockquote incl. expandable) or `markdown`; plain text without it.
    /// Bad markup is 422 `MARKUP_INVALID` naming the character where it goes wrong.
    pub parse_mode: Option<String>,
    /// The id of the message this one answers, in the same chat.
    pub reply_to: Option<i32>,
    /// Deliver without a notification sound.
    pub silent: Option<bool>,
    /// `false`: no preview of the first link (Telegram shows one by default).
    pub link_preview: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageSent {
    pub message_id: i32,
    /// An album's messages, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_ids: Option<Vec<i32>>,
}

/// Telegram's caption limit.
pub const CAPTION_MAX: usize = 1024;
/// Telegram's text limit.
pub const TEXT_MAX: usize = 4096;
/// The most a bot may send in one file.
const BOT_FILE_MAX: i64 = 50_000_000;
/// What an album may hold.
const ALBUM_MAX: usize = 10;

#[utoipa::path(post, path = "/api/v1/telegram/accounts/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("Idempotency-Key" = Option<String>, Header, description = "repeat a send safely: the same key answers the same message_id without sending twice")),
    request_body = SendMessageRequest,
    responses((status = 201, body = MessageSent), (status = 401, body = crate::openapi::ErrorBody),
              (status = 403, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 429, body = crate::openapi::ErrorBody),
              (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn send(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<AccountId>,
    IdempotencyKey(key): IdempotencyKey,
    ApiJson(req): ApiJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<MessageSent>), ApiError> {
    let kind = check_account_owner(&state, &user, id).await?;
    let peer = req.peer.parse::<Peer>().ok();
    let mut v = Validator::default();
    v.check(peer.is_some(), "peer", PEER_FORMS);
    v.check(
        req.reply_to.is_none_or(|id| id > 0),
        "reply_to",
        "must be a message id (> 0)",
    );
    let dedupe_key = match key {
        None => None,
        Some(Ok(k)) if (1..=128).contains(&k.len()) => Some(k),
        Some(_) => {
            v.check(
                false,
                "Idempotency-Key",
                "must be 1 to 128 visible ASCII characters",
            );
            None
        }
    };
    let media_ids = req.media.unwrap_or_default();
    check_content_shape(&mut v, req.text.is_some(), &media_ids);
    v.finish()?;
    let media = owned_media_items(&state, &user, &media_ids).await?;
    check_fits_account(kind, &media)?;
    let text = content_text(req.text, req.parse_mode.as_deref(), &media)?;
    let Some(peer) = peer else {
        return Err(ApiError::field("peer", PEER_FORMS));
    };
    let upload_time = upload_time(&media);
    let request = SendMessage {
        peer,
        text,
        media,
        random_id: None,
        dedupe_key,
        options: SendOptions {
            reply_to: req.reply_to,
            silent: req.silent == Some(true),
            no_link_preview: req.link_preview == Some(false),
        },
    };
    let sent = fleet(&state)?
        .call_with_extra_time(id, request, upload_time)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageSent {
            message_id: sent.message_id,
            message_ids: (!sent.message_ids.is_empty()).then_some(sent.message_ids),
        }),
    ))
}

/// Text or media, and no more media than an album holds.
pub(crate) fn check_content_shape(v: &mut Validator, has_text: bool, media_ids: &[String]) {
    v.check(
        media_ids.len() <= ALBUM_MAX,
        "media",
        "an album holds at most 10 items",
    );
    v.check(
        has_text || !media_ids.is_empty(),
        "text",
        "text or media is required",
    );
}

/// The caller's media items by id (someone else's is 404), as an album may hold them.
pub(crate) async fn owned_media_items(
    state: &AppState,
    user: &AuthUser,
    media_ids: &[String],
) -> Result<Vec<Media>, ApiError> {
    let mut media = Vec::with_capacity(media_ids.len());
    for media_id in media_ids {
        media.push(crate::media::owned_media(state, user, media_id).await?);
    }
    check_album(&media)?;
    Ok(media)
}

/// A bot may send files up to 50 MB.
pub(crate) fn check_fits_account(kind: AccountKind, media: &[Media]) -> Result<(), ApiError> {
    match media
        .iter()
        .find(|m| kind == AccountKind::Bot && m.size > BOT_FILE_MAX)
    {
        Some(m) => Err(ApiError::Unprocessable {
            code: "MEDIA_TOO_LARGE_FOR_BOT",
            message: format!("media {}: a bot may send files up to 50 MB", m.id),
        }),
        None => Ok(()),
    }
}

/// The text of a message, or the caption of its media (which may be empty).
pub(crate) fn content_text(
    text: Option<String>,
    parse_mode: Option<&str>,
    media: &[Media],
) -> Result<FormattedText, ApiError> {
    match (text, media.is_empty()) {
        (Some(text), true) => formatted(text, parse_mode, "text", TEXT_MAX),
        (Some(caption), false) if !caption.is_empty() => {
            formatted(caption, parse_mode, "text", CAPTION_MAX)
        }
        _ => Ok(FormattedText::plain(String::new())),
    }
}

/// How long an upload of `media` to Telegram may take: 1 s per MB on top of the usual bound.
pub(crate) fn upload_time(media: &[Media]) -> std::time::Duration {
    let bytes: i64 = media.iter().map(|m| m.size).sum();
    std::time::Duration::from_secs(u64::try_from(bytes / 1_000_000).unwrap_or(0))
}

/// Telegram's rules on what an album may mix: photos and videos together, documents only with
/// documents, audio only with audio; animations and voice notes not at all.
pub(crate) fn check_album(media: &[Media]) -> Result<(), ApiError> {
    if media.len() < 2 {
        return Ok(());
    }
    let group = |k: MediaKind| match k {
        MediaKind::Photo | MediaKind::Video => Some("photos and videos"),
        MediaKind::Document => Some("documents"),
        MediaKind::Audio => Some("audio"),
        MediaKind::Animation | MediaKind::Voice => None,
    };
    let first = group(media[0].kind);
    for item in media {
        let Some(this) = group(item.kind) else {
            return Err(ApiError::Unprocessable {
                code: "ALBUM_INVALID",
                message: format!(
                    "media {}: a {} cannot be part of an album",
                    item.id,
                    item.kind.as_str()
                ),
            });
        };
        if Some(this) != first {
            return Err(ApiError::Unprocessable {
                code: "ALBUM_INVALID",
                message: format!(
                    "media {}: an album holds only {} here, not a {}",
                    item.id,
                    first.unwrap_or_default(),
                    item.kind.as_str()
                ),
            });
        }
    }
    Ok(())
}

/// `text` as `parse_mode` says (plain without it), checked as Telegram will count it: 1 to `max`
/// characters once formatting is read.
pub(crate) fn formatted(
    text: String,
    parse_mode: Option<&str>,
    field: &'static str,
    max: usize,
) -> Result<FormattedText, ApiError> {
    let formatted = match parse_mode.map(str::parse::<ParseMode>) {
        None => FormattedText::plain(text),
        Some(Err(())) => return Err(ApiError::field("parse_mode", "must be html or markdown")),
        Some(Ok(mode)) => formatting::parse(mode, &text).map_err(|e| ApiError::Unprocessable {
            code: "MARKUP_INVALID",
            message: format!("{field}: {e}"),
        })?,
    };
    let chars = formatted.text.chars().count();
    if !(1..=max).contains(&chars) {
        return Err(ApiError::field(
            field,
            format!("must be 1 to {max} characters (formatting not counted)"),
        ));
    }
    Ok(formatted)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peers() {
        for ok in [
            "me",
            "@durov_bot",
            "+15550100199",
            "777000",
            "-1001234567890",
        ] {
            assert!(ok.parse::<super::Peer>().is_ok(), "{ok}");
        }
        for bad in ["", "@", "@ab", "@with space", "+1", "0", "you", "me2"] {
            assert!(bad.parse::<super::Peer>().is_err(), "{bad}");
        }
    }
}
