//! The media library (`/api/v1/media`): files uploaded once, streamed to the media storage with
//! their hash, size and sniffed type, owned by the uploader and deduplicated per owner by hash.
//! Accounts send them by id (`POST …/messages {media: [id]}`); each account uploads an item to
//! Telegram the first time only.

pub mod sniff;

use axum::extract::{FromRequest as _, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{Media, MediaFilter, StoreError};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// The route the request timeout leaves alone: an upload takes as long as its bytes take, and
/// [`UPLOAD_IDLE`] bounds a stalled one instead.
pub const UPLOAD_ROUTE: &str = "/api/v1/media";
/// An upload that sends no byte for this long is given up (and leaves nothing behind).
const UPLOAD_IDLE: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest file name kept; Telegram shows names up to about this.
const NAME_MAX: usize = 255;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    pub id: String,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: i64,
    /// Sniffed from the bytes, not taken from the client.
    pub mime: String,
    /// `photo`, `video`, `animation`, `audio`, `voice` or `document`.
    pub kind: String,
    pub file_name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Media> for MediaView {
    fn from(m: Media) -> Self {
        Self {
            id: m.id,
            sha256: m.sha256,
            size: m.size,
            mime: m.mime,
            kind: m.kind.as_str().to_owned(),
            file_name: m.file_name,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MediaList {
    pub media: Vec<MediaView>,
    /// Pass as `cursor` for the next (older) page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The file's name, for a raw body (a multipart part carries its own).
    pub file_name: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One upload: a multipart form's `file` part, or the raw body. Either way the bytes go to the
/// storage as they arrive.
#[utoipa::path(post, path = "/api/v1/media", tag = "media", security(("bearer" = [])),
    params(UploadQuery),
    request_body(content = Vec<u8>, description = "multipart/form-data with a `file` part, or the file itself", content_type = "application/octet-stream"),
    responses((status = 201, body = MediaView, description = "stored"),
              (status = 200, body = MediaView, description = "the caller already had these bytes: that item"),
              (status = 401, body = crate::openapi::ErrorBody), (status = 413, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody), (status = 503, body = crate::openapi::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<UploadQuery>,
    request: Request,
) -> Result<(StatusCode, Json<MediaView>), ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut name = query.file_name;
    let mut form;
    let mut body = if multipart {
        form = axum::extract::Multipart::from_request(request, &state)
            .await
            .map_err(|e| bad_body(e.body_text()))?;
        let field = loop {
            match form
                .next_field()
                .await
                .map_err(|e| bad_body(e.body_text()))?
            {
                Some(field) if field.name() == Some("file") => break field,
                Some(_) => continue,
                None => return Err(ApiError::field("file", "the form has no `file` part")),
            }
        };
        if let Some(n) = field.file_name() {
            name = Some(n.to_owned());
        }
        // The rest of the form is not read: the file is the only part that matters.
        Body::Part(Box::new(field))
    } else {
        Body::Raw(request.into_body().into_data_stream())
    };
    let name = match name.map(|n| clean_name(&n)) {
        Some(Ok(n)) => Some(n),
        Some(Err(why)) => return Err(ApiError::field("file_name", why)),
        None => None,
    };

    let limit = state.settings.media.max_size_bytes;
    let id = uuid::Uuid::now_v7().to_string();
    let key = format!("{}/{id}", user.id);
    let mut writer = state.media.create(&key).await.map_err(storage_down)?;
    loop {
        let chunk = match tokio::time::timeout(UPLOAD_IDLE, body.next()).await {
            Ok(Some(chunk)) => chunk?,
            Ok(None) => break,
            Err(_) => {
                return Err(ApiError::BadRequest {
                    code: "UPLOAD_STALLED",
                    message: format!("no bytes arrived for {} s", UPLOAD_IDLE.as_secs()),
                })
            }
        };
        if writer.size() + chunk.len() as u64 > limit {
            // Dropping the writer aborts the stored part.
            return Err(ApiError::TooLarge {
                code: "MEDIA_TOO_LARGE",
                message: format!("files may be at most {limit} bytes (media.max_size_bytes)"),
            });
        }
        writer.write(&chunk).await.map_err(storage_down)?;
    }
    if writer.size() == 0 {
        return Err(ApiError::field("file", "the file is empty"));
    }
    // The bytes are all here: completing the object and recording it must not be cut in half
    // by the client hanging up now.
    let media = state.media.clone();
    let store = state.store.clone();
    let owner = user.id;
    let (item, created) = tokio::spawn(async move {
        let blob = writer.finish().await.map_err(storage_down)?;
        let sniffed = sniff::sniff(&blob.head, blob.size);
        let item = Media {
            id,
            owner_id: owner,
            sha256: blob.sha256,
            size: blob.size as i64,
            file_name: name.unwrap_or_else(|| format!("file.{}", sniffed.extension)),
            mime: sniffed.mime,
            kind: sniffed.kind,
            storage_key: blob.key,
            created_at: chrono::Utc::now(),
        };
        let (item, created) = match store.insert_media(item).await {
            Ok(done) => done,
            Err(e) => {
                let _ = media.delete(&key).await;
                return Err(ApiError::from(e));
            }
        };
        if !created {
            // The owner already had these bytes: keep one copy.
            if let Err(e) = media.delete(&key).await {
                tracing::warn!(%key, error = %e, "a duplicate upload's bytes stay behind");
            }
        }
        Ok::<_, ApiError>((item, created))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("recording an upload failed: {e}")))??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(item.into())))
}

#[utoipa::path(get, path = "/api/v1/media", tag = "media", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = MediaList), (status = 401, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<MediaList>, ApiError> {
    let limit = match query.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => return Err(ApiError::field("limit", "must be 1–1000")),
    };
    let items = state
        .store
        .list_media(MediaFilter {
            owner_id: (!user.is_admin()).then_some(user.id),
            before_id: query.cursor,
            limit,
        })
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|m| m.id.clone()))
        .flatten();
    Ok(Json(MediaList {
        media: items.into_iter().map(MediaView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media id")),
    responses((status = 200, body = MediaView), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<MediaView>, ApiError> {
    Ok(Json(owned_media(&state, &user, &id).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "media id")),
    responses((status = 204), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    owned_media(&state, &user, &id).await?;
    let (store, media) = (state.store.clone(), state.media.clone());
    // The row, then the bytes, whether or not the client waits for the answer.
    tokio::spawn(async move {
        let item = store.delete_media(&id).await?;
        if let Err(e) = media.delete(&item.storage_key).await {
            tracing::warn!(key = %item.storage_key, error = %e, "a deleted item's bytes stay behind");
        }
        Ok::<_, ApiError>(())
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("deleting media failed: {e}")))??;
    Ok(StatusCode::NO_CONTENT)
}

/// The item, when the caller owns it or is an admin; someone else's is "not found".
pub async fn owned_media(state: &AppState, user: &AuthUser, id: &str) -> Result<Media, ApiError> {
    match state.store.media(id).await {
        Ok(m) if user.is_admin() || m.owner_id == user.id => Ok(m),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::NotFound("media")),
        Err(e) => Err(e.into()),
    }
}

/// Where an upload's bytes come from.
enum Body<'a> {
    Raw(axum::body::BodyDataStream),
    Part(Box<axum::extract::multipart::Field<'a>>),
}

impl Body<'_> {
    async fn next(&mut self) -> Option<Result<Bytes, ApiError>> {
        match self {
            Body::Raw(stream) => stream
                .next()
                .await
                .map(|r| r.map_err(|e| bad_body(e.to_string()))),
            Body::Part(field) => field
                .chunk()
                .await
                .map_err(|e| bad_body(e.body_text()))
                .transpose(),
        }
    }
}

/// A file name as Telegram will show it: no path, no control characters, not empty.
fn clean_name(name: &str) -> Result<String, &'static str> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if base.is_empty() || base == "." || base == ".." {
        return Err("must name a file");
    }
    if base.chars().any(char::is_control) {
        return Err("must not hold control characters");
    }
    Ok(base.chars().take(NAME_MAX).collect())
}

fn bad_body(detail: String) -> ApiError {
    ApiError::BadRequest {
        code: "BAD_UPLOAD",
        message: format!("the upload could not be read: {detail}"),
    }
}

fn storage_down(e: anyhow::Error) -> ApiError {
    tracing::error!(error = %format!("{e:#}"), "media storage failed");
    ApiError::Unavailable {
        code: "MEDIA_STORAGE_UNAVAILABLE",
        message: "the media storage did not answer".into(),
        retry_after_s: Some(5),
    }
}
