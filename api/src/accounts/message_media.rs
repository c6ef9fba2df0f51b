//! A message's photo or document, downloaded through the account and streamed to the client a
//! piece at a time (each piece one `upload.getFile`), so a file of any size costs one piece of
//! memory. A file reference that expires halfway is looked up again and the download goes on.

use super::chats::chat_ref;
use super::fleet;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiPath;
use crate::logs::check_account_access;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use tgfleet_persistence::AccountId;
use tgfleet_supervision::account::{FileToRead, MessageFile, ReadFile, READ_PIECE};
use tgfleet_supervision::{Fleet, FleetError};

#[utoipa::path(get, path = "/api/v1/telegram/accounts/{id}/chats/{chat}/messages/{msg}/media", tag = "chats", security(("bearer" = [])),
    params(("id" = i64, Path, description = "account id"),
           ("chat" = String, Path, description = "chat id or @username"),
           ("msg" = i32, Path, description = "message id")),
    responses((status = 200, description = "the file's bytes, with its type and length", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, body = crate::openapi::ErrorBody), (status = 403, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 409, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath((id, chat, message_id)): ApiPath<(AccountId, String, i32)>,
) -> Result<Response, ApiError> {
    check_account_access(&state, &user, id).await?;
    let chat = chat_ref(&chat)?;
    let fleet = fleet(&state)?.clone();
    let locate = MessageFile { chat, message_id };
    let file = match fleet.call(id, locate.clone()).await {
        Ok(file) => file,
        Err(FleetError::Account(e)) if e.code() == "MEDIA_EMPTY" => {
            return Err(ApiError::NotFound("media of this message"))
        }
        Err(e) => return Err(e.into()),
    };
    let size = file.info.size;
    let mime = file.info.mime.clone();
    let name = file.info.file_name.clone();
    // The first piece before the answer: a refusal is still an error status, not a cut body.
    let first = read(&fleet, id, &locate, file, 0).await?;
    let body = futures::stream::unfold(Some((first, 0i64)), move |step| {
        let fleet = fleet.clone();
        let locate = locate.clone();
        async move {
            let ((file, bytes), offset) = step?;
            let len = bytes.len() as i64;
            // A short piece is the last.
            let next = if len == i64::from(READ_PIECE) {
                let at = offset + len;
                match read(&fleet, id, &locate, file, at).await {
                    Ok(next) if !next.1.is_empty() => Some((next, at)),
                    Ok(_) => None,
                    Err(e) => {
                        tracing::warn!(account_id = id, error = %e, "a download broke off");
                        return Some((Err(std::io::Error::other(e.to_string())), None));
                    }
                }
            } else {
                None
            };
            Some((Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)), next))
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    let content_type = mime.as_deref().unwrap_or("application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(size) = size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(name) = name {
        // Only a name that is a plain header value; anything else goes without.
        let safe: String = name
            .chars()
            .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

/// The piece at `offset`; an expired file reference is looked up again once.
async fn read(
    fleet: &Fleet,
    id: AccountId,
    locate: &MessageFile,
    file: FileToRead,
    offset: i64,
) -> Result<(FileToRead, Vec<u8>), ApiError> {
    let piece = |file: FileToRead| ReadFile { file, offset };
    match fleet.call(id, piece(file.clone())).await {
        Ok(bytes) => Ok((file, bytes)),
        Err(FleetError::Account(e)) if e.code().starts_with("FILE_REFERENCE_") => {
            let file = fleet.call(id, locate.clone()).await?;
            let bytes = fleet.call(id, piece(file.clone())).await?;
            Ok((file, bytes))
        }
        Err(e) => Err(e.into()),
    }
}
