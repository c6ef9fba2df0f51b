use super::fleet;
use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::{ApiJson, ApiPath};
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::AccountId;
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
    /// 1–4096 characters once formatting is read, as Telegram allows.
    pub text: String,
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
}

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
    headers: HeaderMap,
    ApiJson(req): ApiJson<SendMessageRequest>,
) -> Result<(StatusCode, Json<MessageSent>), ApiError> {
    check_account_access(&state, &user, id).await?;
    let peer = req.peer.parse::<Peer>().ok();
    let mut v = Validator::default();
    v.check(peer.is_some(), "peer", PEER_FORMS);
    v.check(
        req.reply_to.is_none_or(|id| id > 0),
        "reply_to",
        "must be a message id (> 0)",
    );
    let dedupe_key = match headers.get("idempotency-key").map(|h| h.to_str()) {
        None => None,
        Some(Ok(k)) if (1..=128).contains(&k.len()) => Some(k.to_owned()),
        Some(_) => {
            v.check(
                false,
                "Idempotency-Key",
                "must be 1 to 128 visible ASCII characters",
            );
            None
        }
    };
    v.finish()?;
    let text = formatted(req.text, req.parse_mode.as_deref())?;
    let Some(peer) = peer else {
        return Err(ApiError::field("peer", PEER_FORMS));
    };
    let request = SendMessage {
        peer,
        text,
        dedupe_key,
        options: SendOptions {
            reply_to: req.reply_to,
            silent: req.silent == Some(true),
            no_link_preview: req.link_preview == Some(false),
        },
    };
    let sent = fleet(&state)?.call(id, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageSent {
            message_id: sent.message_id,
        }),
    ))
}

/// `text` as `parse_mode` says (plain without it), checked as Telegram will count it.
pub(crate) fn formatted(text: String, parse_mode: Option<&str>) -> Result<FormattedText, ApiError> {
    let formatted = match parse_mode.map(str::parse::<ParseMode>) {
        None => FormattedText::plain(text),
        Some(Err(())) => return Err(ApiError::field("parse_mode", "must be html or markdown")),
        Some(Ok(mode)) => formatting::parse(mode, &text).map_err(|e| ApiError::Unprocessable {
            code: "MARKUP_INVALID",
            message: format!("text: {e}"),
        })?,
    };
    let chars = formatted.text.chars().count();
    if !(1..=4096).contains(&chars) {
        return Err(ApiError::field(
            "text",
            "must be 1 to 4096 characters (formatting not counted)",
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
