//! The media library's rows: items, and what Telegram gave each account for them.

use async_trait::async_trait;

use crate::model::{AccountId, Media, MediaFilter};
use crate::store::{StoreError, StoreResult};

/// Part of every [`crate::Store`]; its defaults answer "unsupported" so test doubles that do not
/// keep media compile unchanged.
#[async_trait]
pub trait MediaRecords: Send + Sync {
    /// Records `media`, unless its owner already has an item with the same sha256: then nothing
    /// is written and that item comes back with `false` (the caller drops the bytes it stored).
    async fn insert_media(&self, media: Media) -> StoreResult<(Media, bool)> {
        let _ = media;
        Err(unsupported())
    }
    async fn media(&self, id: &str) -> StoreResult<Media> {
        let _ = id;
        Err(unsupported())
    }
    async fn list_media(&self, filter: MediaFilter) -> StoreResult<Vec<Media>> {
        let _ = filter;
        Err(unsupported())
    }
    /// Deletes the item and every account's Telegram file for it; `NotFound` when it is gone.
    async fn delete_media(&self, id: &str) -> StoreResult<Media> {
        let _ = id;
        Err(unsupported())
    }
    /// What Telegram gave `account_id` for `media_id` (opaque to the store), if anything.
    async fn telegram_file(
        &self,
        account_id: AccountId,
        media_id: &str,
    ) -> StoreResult<Option<String>> {
        let _ = (account_id, media_id);
        Err(unsupported())
    }
    async fn put_telegram_file(
        &self,
        account_id: AccountId,
        media_id: &str,
        file: &str,
    ) -> StoreResult<()> {
        let _ = (account_id, media_id, file);
        Err(unsupported())
    }
}

fn unsupported() -> StoreError {
    StoreError::Other(anyhow::anyhow!("this store does not keep media"))
}

pub(super) const MEDIA_COLS: &str =
    "id, owner_id, sha256, size, mime, kind, file_name, storage_key, created_at";

macro_rules! impl_media_records {
    ($store:ty, $db:ty) => {
        impl $store {
            fn media_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Media> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: String = row.try_get("id").context("decoding media.id")?;
                let ctx = |col: &str| format!("decoding media.{col} of item {id}");
                let kind: String = row.try_get("kind").with_context(|| ctx("kind"))?;
                Ok(Media {
                    owner_id: row.try_get("owner_id").with_context(|| ctx("owner_id"))?,
                    sha256: row.try_get("sha256").with_context(|| ctx("sha256"))?,
                    size: row.try_get("size").with_context(|| ctx("size"))?,
                    mime: row.try_get("mime").with_context(|| ctx("mime"))?,
                    kind: MediaKind::parse(&kind)
                        .with_context(|| format!("unknown kind {kind:?} of media {id}"))?,
                    file_name: row.try_get("file_name").with_context(|| ctx("file_name"))?,
                    storage_key: row
                        .try_get("storage_key")
                        .with_context(|| ctx("storage_key"))?,
                    created_at: row.try_get("created_at").with_context(|| ctx("created_at"))?,
                    id,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::MediaRecords for $store {
            async fn insert_media(&self, media: Media) -> StoreResult<(Media, bool)> {
                let _op = self.metrics.op("insert_media");
                // DO NOTHING, then read back: two uploads of the same bytes racing each other
                // end with one row, and the loser learns which.
                let inserted = sqlx::query(
                    "INSERT INTO media \
                     (id, owner_id, sha256, size, mime, kind, file_name, storage_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (owner_id, sha256) DO NOTHING",
                )
                .bind(&media.id)
                .bind(media.owner_id)
                .bind(&media.sha256)
                .bind(media.size)
                .bind(&media.mime)
                .bind(media.kind.as_str())
                .bind(&media.file_name)
                .bind(&media.storage_key)
                .bind(media.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("recording a media item"))?
                .rows_affected()
                    == 1;
                if inserted {
                    return Ok((media, true));
                }
                let sql = format!(
                    "SELECT {} FROM media WHERE owner_id = $1 AND sha256 = $2",
                    $crate::store::media::MEDIA_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(media.owner_id)
                    .bind(&media.sha256)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading the media item with the same bytes"))?;
                Ok((Self::media_row(&row)?, false))
            }

            async fn media(&self, id: &str) -> StoreResult<Media> {
                let _op = self.metrics.op("media");
                let sql = format!(
                    "SELECT {} FROM media WHERE id = $1",
                    $crate::store::media::MEDIA_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading a media item"))?;
                Ok(Self::media_row(&row)?)
            }

            async fn list_media(&self, filter: MediaFilter) -> StoreResult<Vec<Media>> {
                let _op = self.metrics.op("list_media");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM media WHERE 1 = 1",
                    $crate::store::media::MEDIA_COLS
                ));
                if let Some(owner) = filter.owner_id {
                    q.push(" AND owner_id = ").push_bind(owner);
                }
                if let Some(before) = filter.before_id {
                    q.push(" AND id < ").push_bind(before);
                }
                q.push(" ORDER BY id DESC LIMIT ")
                    .push_bind($crate::store::page_limit(filter.limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing media"))?;
                rows.iter()
                    .map(|r| Self::media_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn delete_media(&self, id: &str) -> StoreResult<Media> {
                let _op = self.metrics.op("delete_media");
                // The Telegram files go with it (ON DELETE CASCADE).
                let sql = format!(
                    "DELETE FROM media WHERE id = $1 RETURNING {}",
                    $crate::store::media::MEDIA_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("deleting a media item"))?;
                Ok(Self::media_row(&row)?)
            }

            async fn telegram_file(
                &self,
                account_id: AccountId,
                media_id: &str,
            ) -> StoreResult<Option<String>> {
                let _op = self.metrics.op("telegram_file");
                sqlx::query_scalar(
                    "SELECT file FROM media_telegram_files WHERE account_id = $1 AND media_id = $2",
                )
                .bind(account_id)
                .bind(media_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("loading a Telegram file"))
            }

            async fn put_telegram_file(
                &self,
                account_id: AccountId,
                media_id: &str,
                file: &str,
            ) -> StoreResult<()> {
                let _op = self.metrics.op("put_telegram_file");
                sqlx::query(
                    "INSERT INTO media_telegram_files (account_id, media_id, file, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, media_id) \
                     DO UPDATE SET file = excluded.file, updated_at = excluded.updated_at",
                )
                .bind(account_id)
                .bind(media_id)
                .bind(file)
                .bind($crate::store::now())
                .execute(&self.pool)
                .await
                .map_err(db_err("recording a Telegram file"))?;
                Ok(())
            }
        }
    };
}
pub(super) use impl_media_records;
