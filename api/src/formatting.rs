//! `POST /api/v1/formatting/preview`: what a text with `parse_mode` becomes — the plain text and
//! entities Telegram will get — read by the same parser a send uses, so a compose form (the
//! console's, or any frontend's) previews exactly what will be posted and shows the same
//! `MARKUP_INVALID` a send would answer.

use crate::accounts::chat_messages::EntityView;
use crate::accounts::messages::formatted;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiJson;
use axum::Json;
use serde::{Deserialize, Serialize};
use tgfleet_supervision::account::entities_of;
use utoipa::ToSchema;

/// The longest a message text can be (Telegram's limit, formatting not counted); a caption's
/// 1024 is the sender's business.
const MAX_TEXT: usize = 4096;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    pub text: String,
    /// `html` or `markdown`; omitted, the text is plain.
    pub parse_mode: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Preview {
    /// The text as shown, formatting removed.
    pub text: String,
    /// Offsets and lengths in UTF-16 code units, as a chat's history gives them.
    pub entities: Vec<EntityView>,
    /// Characters of `text` (what the 4096 and 1024 limits count).
    pub length: usize,
}

#[utoipa::path(post, path = "/api/v1/formatting/preview", tag = "messages", security(("bearer" = [])),
    request_body = PreviewRequest,
    responses((status = 200, body = Preview), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, description = "MARKUP_INVALID naming the character where it goes wrong; VALIDATION_FAILED for an empty or too long text or an unknown parse_mode", body = crate::openapi::ErrorBody)))]
pub async fn preview(
    _user: AuthUser,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<Preview>, ApiError> {
    let text = formatted(req.text, req.parse_mode.as_deref(), "text", MAX_TEXT)?;
    let entities = entities_of(&text)
        .into_iter()
        .map(EntityView::from)
        .collect();
    Ok(Json(Preview {
        length: text.text.chars().count(),
        text: text.text,
        entities,
    }))
}
