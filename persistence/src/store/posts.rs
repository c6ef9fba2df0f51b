//! Posts and their deliveries: what the scheduler claims, and what each attempt came to.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{AccountId, Delivery, DeliveryOutcome, Post, PostEdit, PostFilter, PostState};
use crate::store::{StoreError, StoreResult};

/// Part of every [`crate::Store`]; its defaults answer "unsupported" so test doubles that keep
/// no posts compile unchanged.
#[async_trait]
pub trait PostRecords: Send + Sync {
    /// The post and its deliveries, in one transaction: all of it or nothing.
    async fn create_post(&self, post: Post, deliveries: Vec<Delivery>) -> StoreResult<()> {
        let _ = (post, deliveries);
        Err(unsupported())
    }
    async fn post(&self, id: &str) -> StoreResult<(Post, Vec<Delivery>)> {
        let _ = id;
        Err(unsupported())
    }
    async fn list_posts(&self, filter: PostFilter) -> StoreResult<Vec<Post>> {
        let _ = filter;
        Err(unsupported())
    }
    async fn deliveries(&self, post_id: &str) -> StoreResult<Vec<Delivery>> {
        let _ = post_id;
        Err(unsupported())
    }
    /// Changes a post that is still `scheduled` (and moves its deliveries to a new
    /// `publish_at`); `None` when it is not scheduled any more (or gone).
    async fn edit_post(&self, id: &str, edit: PostEdit) -> StoreResult<Option<Post>> {
        let _ = (id, edit);
        Err(unsupported())
    }
    /// Cancels a post that is still `scheduled`; false when it is not.
    async fn cancel_post(&self, id: &str) -> StoreResult<bool> {
        let _ = id;
        Err(unsupported())
    }
    async fn set_post_state(&self, id: &str, state: PostState) -> StoreResult<()> {
        let _ = (id, state);
        Err(unsupported())
    }
    /// Deliveries to attempt now: pending, or `sending` when a crash cut an attempt short, of
    /// posts that are neither finished nor cancelled; soonest first. Deliveries of
    /// `skip_accounts` (accounts already at work) are left out, so they do not fill the page
    /// while other accounts' deliveries wait behind them.
    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        skip_accounts: &[AccountId],
    ) -> StoreResult<Vec<Delivery>> {
        let _ = (now, limit, skip_accounts);
        Err(unsupported())
    }
    /// Claims an attempt before anything is sent: the delivery `sending` (one more attempt) and
    /// the post `publishing`, answered with both as they are now — or `None` when the attempt
    /// is no longer due (the post was cancelled, rescheduled or finished, the delivery is done)
    /// since the scheduler read it. Serialized with edits, cancels and [`Self::finish_delivery`]
    /// on the post's row.
    async fn start_delivery(
        &self,
        post_id: &str,
        idx: i32,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Delivery, Post)>> {
        let _ = (post_id, idx, now);
        Err(unsupported())
    }
    /// Records what an attempt came to; the post's state follows from all its deliveries
    /// (unless it was cancelled meanwhile) and is returned. The post's row is locked first, so
    /// two deliveries finishing at once each count the other's outcome.
    async fn finish_delivery(
        &self,
        post_id: &str,
        idx: i32,
        outcome: DeliveryOutcome,
    ) -> StoreResult<PostState> {
        let _ = (post_id, idx, outcome);
        Err(unsupported())
    }
}

fn unsupported() -> StoreError {
    StoreError::Other(anyhow::anyhow!("this store does not keep posts"))
}

pub(super) const POST_COLS: &str = "id, owner_id, state, text, parse_mode, media, silent, \
     link_preview, publish_at, created_at, updated_at";
pub(super) const DELIVERY_COLS: &str = "post_id, idx, account_id, chat, state, random_id, \
     attempts, next_attempt_at, message_ids, error_code, error_message, updated_at";

/// A post's state from its deliveries' (`state`, count) pairs.
pub(super) fn post_state_of(counts: &[(String, i64)]) -> PostState {
    let count = |s: &str| {
        counts
            .iter()
            .filter(|(state, _)| state == s)
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    let (open, sent, failed) = (
        count("pending") + count("sending"),
        count("sent"),
        count("failed"),
    );
    match (open, sent, failed) {
        (o, _, _) if o > 0 => PostState::Publishing,
        (_, _, 0) => PostState::Published,
        (_, 0, _) => PostState::Failed,
        _ => PostState::PartiallyFailed,
    }
}

macro_rules! impl_post_records {
    ($store:ty, $db:ty) => {
        impl $store {
            fn post_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Post> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: String = row.try_get("id").context("decoding posts.id")?;
                let ctx = |col: &str| format!("decoding posts.{col} of post {id}");
                let state: String = row.try_get("state").with_context(|| ctx("state"))?;
                let media: String = row.try_get("media").with_context(|| ctx("media"))?;
                Ok(Post {
                    owner_id: row.try_get("owner_id").with_context(|| ctx("owner_id"))?,
                    state: PostState::parse(&state)
                        .with_context(|| format!("unknown state {state:?} of post {id}"))?,
                    text: row.try_get("text").with_context(|| ctx("text"))?,
                    parse_mode: row.try_get("parse_mode").with_context(|| ctx("parse_mode"))?,
                    media: serde_json::from_str(&media).with_context(|| ctx("media"))?,
                    silent: row.try_get("silent").with_context(|| ctx("silent"))?,
                    link_preview: row
                        .try_get("link_preview")
                        .with_context(|| ctx("link_preview"))?,
                    publish_at: row.try_get("publish_at").with_context(|| ctx("publish_at"))?,
                    created_at: row.try_get("created_at").with_context(|| ctx("created_at"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                    id,
                })
            }

            fn delivery_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Delivery> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let post_id: String = row.try_get("post_id").context("decoding post_deliveries")?;
                let ctx = |col: &str| format!("decoding post_deliveries.{col} of post {post_id}");
                let state: String = row.try_get("state").with_context(|| ctx("state"))?;
                let ids: Option<String> =
                    row.try_get("message_ids").with_context(|| ctx("message_ids"))?;
                Ok(Delivery {
                    idx: row.try_get("idx").with_context(|| ctx("idx"))?,
                    account_id: row.try_get("account_id").with_context(|| ctx("account_id"))?,
                    chat: row.try_get("chat").with_context(|| ctx("chat"))?,
                    state: DeliveryState::parse(&state)
                        .with_context(|| format!("unknown delivery state {state:?}"))?,
                    random_id: row.try_get("random_id").with_context(|| ctx("random_id"))?,
                    attempts: row.try_get("attempts").with_context(|| ctx("attempts"))?,
                    next_attempt_at: row
                        .try_get("next_attempt_at")
                        .with_context(|| ctx("next_attempt_at"))?,
                    message_ids: match ids {
                        Some(ids) => serde_json::from_str(&ids).with_context(|| ctx("message_ids"))?,
                        None => Vec::new(),
                    },
                    error_code: row.try_get("error_code").with_context(|| ctx("error_code"))?,
                    error_message: row
                        .try_get("error_message")
                        .with_context(|| ctx("error_message"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                    post_id,
                })
            }

            async fn deliveries_in(
                &self,
                conn: &mut <$db as sqlx::Database>::Connection,
                post_id: &str,
            ) -> StoreResult<Vec<Delivery>> {
                let sql = format!(
                    "SELECT {} FROM post_deliveries WHERE post_id = $1 ORDER BY idx",
                    $crate::store::posts::DELIVERY_COLS
                );
                let rows = sqlx::query(&sql)
                    .bind(post_id)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_err("loading a post's deliveries"))?;
                rows.iter()
                    .map(|r| Self::delivery_row(r).map_err(StoreError::Other))
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::PostRecords for $store {
            async fn create_post(&self, post: Post, deliveries: Vec<Delivery>) -> StoreResult<()> {
                let _op = self.metrics.op("create_post");
                let mut tx = self.pool.begin().await.map_err(db_err("starting a post"))?;
                let media = serde_json::to_string(&post.media)
                    .map_err(|e| StoreError::Other(e.into()))?;
                sqlx::query(
                    "INSERT INTO posts (id, owner_id, state, text, parse_mode, media, silent, \
                     link_preview, publish_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&post.id)
                .bind(post.owner_id)
                .bind(post.state.as_str())
                .bind(&post.text)
                .bind(&post.parse_mode)
                .bind(media)
                .bind(post.silent)
                .bind(post.link_preview)
                .bind(post.publish_at)
                .bind(post.created_at)
                .bind(post.updated_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err("recording a post"))?;
                for d in &deliveries {
                    sqlx::query(
                        "INSERT INTO post_deliveries (post_id, idx, account_id, chat, state, \
                         random_id, attempts, next_attempt_at, message_ids, error_code, \
                         error_message, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL, NULL, $9)",
                    )
                    .bind(&d.post_id)
                    .bind(d.idx)
                    .bind(d.account_id)
                    .bind(&d.chat)
                    .bind(d.state.as_str())
                    .bind(d.random_id)
                    .bind(d.attempts)
                    .bind(d.next_attempt_at)
                    .bind(d.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("recording a delivery"))?;
                }
                tx.commit().await.map_err(db_err("committing a post"))
            }

            async fn post(&self, id: &str) -> StoreResult<(Post, Vec<Delivery>)> {
                let _op = self.metrics.op("post");
                let mut conn = self.pool.acquire().await.map_err(db_err("loading a post"))?;
                let sql = format!(
                    "SELECT {} FROM posts WHERE id = $1",
                    $crate::store::posts::POST_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err("loading a post"))?;
                let post = Self::post_row(&row)?;
                let deliveries = self.deliveries_in(&mut conn, id).await?;
                Ok((post, deliveries))
            }

            async fn list_posts(&self, filter: PostFilter) -> StoreResult<Vec<Post>> {
                let _op = self.metrics.op("list_posts");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM posts WHERE 1 = 1",
                    $crate::store::posts::POST_COLS
                ));
                if let Some(owner) = filter.owner_id {
                    q.push(" AND owner_id = ").push_bind(owner);
                }
                if let Some(state) = filter.state {
                    q.push(" AND state = ").push_bind(state.as_str());
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
                    .map_err(db_err("listing posts"))?;
                rows.iter()
                    .map(|r| Self::post_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn deliveries(&self, post_id: &str) -> StoreResult<Vec<Delivery>> {
                let _op = self.metrics.op("deliveries");
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .map_err(db_err("loading a post's deliveries"))?;
                self.deliveries_in(&mut conn, post_id).await
            }

            async fn edit_post(&self, id: &str, edit: PostEdit) -> StoreResult<Option<Post>> {
                let _op = self.metrics.op("edit_post");
                let at = $crate::store::now();
                let mut tx = self.pool.begin().await.map_err(db_err("editing a post"))?;
                let media = edit
                    .media
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Other(e.into()))?;
                let sql = format!(
                    "UPDATE posts SET \
                     text = COALESCE($2, text), \
                     parse_mode = CASE WHEN $3 THEN $4 ELSE parse_mode END, \
                     media = COALESCE($5, media), \
                     silent = COALESCE($6, silent), \
                     link_preview = COALESCE($7, link_preview), \
                     publish_at = COALESCE($8, publish_at), \
                     updated_at = $9 \
                     WHERE id = $1 AND state = 'scheduled' RETURNING {}",
                    $crate::store::posts::POST_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(&edit.text)
                    .bind(edit.parse_mode.is_some())
                    .bind(edit.parse_mode.clone().flatten())
                    .bind(media)
                    .bind(edit.silent)
                    .bind(edit.link_preview)
                    .bind(edit.publish_at)
                    .bind(at)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("editing a post"))?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let post = Self::post_row(&row)?;
                if let Some(publish_at) = edit.publish_at {
                    sqlx::query(
                        "UPDATE post_deliveries SET next_attempt_at = $2, updated_at = $3 \
                         WHERE post_id = $1 AND state = 'pending'",
                    )
                    .bind(id)
                    .bind(publish_at)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("rescheduling a post's deliveries"))?;
                }
                tx.commit().await.map_err(db_err("committing a post edit"))?;
                Ok(Some(post))
            }

            async fn cancel_post(&self, id: &str) -> StoreResult<bool> {
                let _op = self.metrics.op("cancel_post");
                let done = sqlx::query(
                    "UPDATE posts SET state = 'cancelled', updated_at = $2 \
                     WHERE id = $1 AND state = 'scheduled'",
                )
                .bind(id)
                .bind($crate::store::now())
                .execute(&self.pool)
                .await
                .map_err(db_err("cancelling a post"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_post_state(&self, id: &str, state: PostState) -> StoreResult<()> {
                let _op = self.metrics.op("set_post_state");
                sqlx::query("UPDATE posts SET state = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(state.as_str())
                    .bind($crate::store::now())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("setting a post's state"))?;
                Ok(())
            }

            async fn due_deliveries(
                &self,
                now: DateTime<Utc>,
                limit: u32,
                skip_accounts: &[AccountId],
            ) -> StoreResult<Vec<Delivery>> {
                let _op = self.metrics.op("due_deliveries");
                let cols = $crate::store::posts::DELIVERY_COLS
                    .split(", ")
                    .map(|c| format!("d.{}", c.trim()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {cols} FROM post_deliveries d JOIN posts p ON p.id = d.post_id \
                     WHERE d.state IN ('pending', 'sending') \
                     AND p.state IN ('scheduled', 'publishing') AND d.next_attempt_at <= "
                ));
                q.push_bind(now);
                if !skip_accounts.is_empty() {
                    q.push(" AND d.account_id NOT IN (");
                    let mut list = q.separated(", ");
                    for id in skip_accounts {
                        list.push_bind(*id);
                    }
                    q.push(")");
                }
                q.push(" ORDER BY d.next_attempt_at, d.post_id, d.idx LIMIT ")
                    .push_bind($crate::store::page_limit(limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("finding due deliveries"))?;
                rows.iter()
                    .map(|r| Self::delivery_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn start_delivery(
                &self,
                post_id: &str,
                idx: i32,
                now: DateTime<Utc>,
            ) -> StoreResult<Option<(Delivery, Post)>> {
                let _op = self.metrics.op("start_delivery");
                let at = $crate::store::now();
                let mut tx = self.pool.begin().await.map_err(db_err("starting a delivery"))?;
                // A write to the post's row first: it locks the row (PostgreSQL) or the database
                // (SQLite) until commit, and reads the post as it is now.
                let sql = format!(
                    "UPDATE posts SET updated_at = updated_at WHERE id = $1 RETURNING {}",
                    $crate::store::posts::POST_COLS
                );
                let Some(row) = sqlx::query(&sql)
                    .bind(post_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("starting a delivery"))?
                else {
                    return Ok(None);
                };
                let mut post = Self::post_row(&row)?;
                if !matches!(
                    post.state,
                    $crate::model::PostState::Scheduled | $crate::model::PostState::Publishing
                ) {
                    return Ok(None);
                }
                let sql = format!(
                    "UPDATE post_deliveries SET state = 'sending', attempts = attempts + 1, \
                     updated_at = $3 WHERE post_id = $1 AND idx = $2 \
                     AND state IN ('pending', 'sending') AND next_attempt_at <= $4 RETURNING {}",
                    $crate::store::posts::DELIVERY_COLS
                );
                let Some(row) = sqlx::query(&sql)
                    .bind(post_id)
                    .bind(idx)
                    .bind(at)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("starting a delivery"))?
                else {
                    return Ok(None);
                };
                if post.state == $crate::model::PostState::Scheduled {
                    sqlx::query(
                        "UPDATE posts SET state = 'publishing', updated_at = $2 WHERE id = $1",
                    )
                    .bind(post_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("starting a post"))?;
                    post.state = $crate::model::PostState::Publishing;
                }
                tx.commit().await.map_err(db_err("committing a delivery start"))?;
                Ok(Some((Self::delivery_row(&row)?, post)))
            }

            async fn finish_delivery(
                &self,
                post_id: &str,
                idx: i32,
                outcome: DeliveryOutcome,
            ) -> StoreResult<PostState> {
                let _op = self.metrics.op("finish_delivery");
                let at = $crate::store::now();
                let ids = (!outcome.message_ids.is_empty())
                    .then(|| serde_json::to_string(&outcome.message_ids))
                    .transpose()
                    .map_err(|e| StoreError::Other(e.into()))?;
                let mut tx = self.pool.begin().await.map_err(db_err("finishing a delivery"))?;
                // The post's row first (see start_delivery): the count below then sees every
                // delivery that finished before this one.
                let (current, post_owner): (String, i64) = sqlx::query_as(
                    "UPDATE posts SET updated_at = updated_at WHERE id = $1 \
                     RETURNING state, owner_id",
                )
                .bind(post_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("loading a post's state"))?;
                let (account_id, chat, attempts): (i64, String, i32) = sqlx::query_as(
                    "UPDATE post_deliveries SET state = $3, next_attempt_at = $4, \
                     message_ids = $5, error_code = $6, error_message = $7, updated_at = $8 \
                     WHERE post_id = $1 AND idx = $2 RETURNING account_id, chat, attempts",
                )
                .bind(post_id)
                .bind(idx)
                .bind(outcome.state.as_str())
                .bind(outcome.next_attempt_at)
                .bind(ids)
                .bind(&outcome.error_code)
                .bind(&outcome.error_message)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("finishing a delivery"))?;
                let mut events = Vec::new();
                let done = match outcome.state {
                    DeliveryState::Sent => Some(EventType::PostDeliverySucceeded),
                    DeliveryState::Failed => Some(EventType::PostDeliveryFailed),
                    DeliveryState::Pending | DeliveryState::Sending => None,
                };
                if let Some(kind) = done {
                    // The account's owner sees its events; a deleted account's go to the post's.
                    let owner: Option<i64> =
                        sqlx::query_scalar("SELECT owner_id FROM telegram_accounts WHERE id = $1")
                            .bind(account_id)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(db_err("finding a delivery's owner"))?;
                    let error = outcome.error_code.as_ref().map(|code| {
                        serde_json::json!({ "code": code, "message": outcome.error_message })
                    });
                    events.push(NewEvent {
                        kind,
                        account_id: Some(account_id),
                        owner_id: owner.unwrap_or(post_owner),
                        occurred_at: at,
                        data: serde_json::json!({
                            "post_id": post_id,
                            "idx": idx,
                            "account_id": account_id,
                            "chat": chat,
                            "attempts": attempts,
                            "message_ids": outcome.message_ids,
                            "error": error,
                        }),
                        dedupe_key: None,
                    });
                }
                let counts: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM post_deliveries WHERE post_id = $1 GROUP BY state",
                )
                .bind(post_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err("counting a post's deliveries"))?;
                let state = $crate::store::posts::post_state_of(&counts);
                if current == "cancelled" {
                    let ids = Self::insert_events_in(&mut tx, &events).await?;
                    tx.commit().await.map_err(db_err("committing a delivery"))?;
                    self.announce(&ids);
                    return Ok(PostState::Cancelled);
                }
                sqlx::query("UPDATE posts SET state = $2, updated_at = $3 WHERE id = $1")
                    .bind(post_id)
                    .bind(state.as_str())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("setting a post's state"))?;
                let finished = !matches!(state, PostState::Publishing | PostState::Scheduled);
                if finished && current != state.as_str() {
                    let count = |s: &str| {
                        counts.iter().filter(|(c, _)| c == s).map(|(_, n)| *n).sum::<i64>()
                    };
                    events.push(NewEvent {
                        kind: EventType::PostPublished,
                        account_id: None,
                        owner_id: post_owner,
                        occurred_at: at,
                        data: serde_json::json!({
                            "post_id": post_id,
                            "state": state.as_str(),
                            "sent": count("sent"),
                            "failed": count("failed"),
                        }),
                        dedupe_key: None,
                    });
                }
                let ids = Self::insert_events_in(&mut tx, &events).await?;
                tx.commit().await.map_err(db_err("committing a delivery"))?;
                self.announce(&ids);
                Ok(state)
            }
        }
    };
}
pub(super) use impl_post_records;
