//! The event log: appended by whoever sees something happen (an account's writes, a post's
//! deliveries, a received update), read after an id by SSE, webhooks and the broker sink.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::model::{Event, EventFilter, EventType, NewEvent};
use crate::store::{StoreError, StoreResult};

/// Part of every [`crate::Store`]; its defaults answer "unsupported" so test doubles that keep
/// no events compile unchanged.
#[async_trait]
pub trait EventRecords: Send + Sync {
    /// Appends `events` in one transaction, in order; an event whose `dedupe_key` the log holds
    /// already is left out. Returns the ids written.
    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<i64>> {
        let _ = events;
        Err(unsupported())
    }
    /// Events after `filter.after`, oldest first.
    async fn events(&self, filter: EventFilter) -> StoreResult<Vec<Event>> {
        let _ = filter;
        Err(unsupported())
    }
    /// Only the id and type of the events after `after`, oldest first: what counting by type
    /// needs, without decoding every event's data.
    async fn event_types(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, EventType)>> {
        let page = self
            .events(EventFilter {
                after,
                limit,
                ..Default::default()
            })
            .await?;
        Ok(page.into_iter().map(|e| (e.id, e.kind)).collect())
    }
    /// The events of these ids that the log still holds, by id.
    async fn events_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Event>> {
        let _ = ids;
        Err(unsupported())
    }
    /// The newest event's id (0 for none).
    async fn last_event_id(&self) -> StoreResult<i64> {
        Err(unsupported())
    }
    /// Deletes events that occurred before `before` (retention); returns how many.
    async fn purge_events_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let _ = before;
        Err(unsupported())
    }
    /// Where the log reader `name` (e.g. the broker sink) got to; `None` before its first
    /// [`EventRecords::set_event_cursor`].
    async fn event_cursor(&self, name: &str) -> StoreResult<Option<i64>> {
        let _ = name;
        Err(unsupported())
    }
    /// Moves the reader `name` to `position`.
    async fn set_event_cursor(&self, name: &str, position: i64) -> StoreResult<()> {
        let _ = (name, position);
        Err(unsupported())
    }
    /// The newest id this process has committed: readers wait on it instead of polling.
    /// Another process's appends (several nodes) are seen at the next poll.
    fn event_feed(&self) -> watch::Receiver<i64> {
        watch::channel(0).1
    }
}

fn unsupported() -> StoreError {
    StoreError::Other(anyhow::anyhow!("this store does not keep events"))
}

pub(super) const EVENT_COLS: &str = "id, type, account_id, owner_id, occurred_at, data";

/// Serializes appends on PostgreSQL until commit, so ids become visible in increasing order and
/// a reader that has seen id N never later finds a smaller one (a sequence alone gives ids in
/// the order they were drawn, not committed). SQLite has one writer at a time anyway.
pub(super) const PG_EVENT_ORDER_LOCK: &str = "SELECT pg_advisory_xact_lock(7350001)";

macro_rules! impl_event_records {
    ($store:ty, $db:ty, $order_lock:expr) => {
        impl $store {
            fn event_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Event> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: i64 = row.try_get("id").context("decoding events.id")?;
                let kind: String = row.try_get("type").context("decoding events.type")?;
                let data: sqlx::types::Json<serde_json::Value> =
                    row.try_get("data").context("decoding events.data")?;
                Ok(Event {
                    id,
                    kind: EventType::parse(&kind)
                        .with_context(|| format!("unknown type {kind:?} of event {id}"))?,
                    account_id: row
                        .try_get("account_id")
                        .context("decoding events.account_id")?,
                    owner_id: row
                        .try_get("owner_id")
                        .context("decoding events.owner_id")?,
                    occurred_at: row
                        .try_get("occurred_at")
                        .context("decoding events.occurred_at")?,
                    data: data.0,
                })
            }

            /// Appends inside the caller's transaction; the caller commits, then calls
            /// [`Self::announce`] with the largest id.
            pub(crate) async fn insert_events_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                events: &[NewEvent],
            ) -> StoreResult<Vec<i64>> {
                let mut ids = Vec::with_capacity(events.len());
                if events.is_empty() {
                    return Ok(ids);
                }
                let lock: &str = $order_lock;
                if !lock.is_empty() {
                    sqlx::query(lock)
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err("ordering event ids"))?;
                }
                // One statement per chunk, not per event: a burst of received messages was
                // one INSERT each, half the statements the server ran while receiving
                // (`benches/events_throughput.rs`, sqlx's statement log). 6 binds a row stay
                // far below either database's limit.
                for chunk in events.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO events (type, account_id, owner_id, occurred_at, dedupe_key, \
                         data) ",
                    );
                    q.push_values(chunk, |mut row, e| {
                        row.push_bind(e.kind.as_str())
                            .push_bind(e.account_id)
                            .push_bind(e.owner_id)
                            .push_bind(e.occurred_at)
                            .push_bind(&e.dedupe_key)
                            .push_bind(sqlx::types::Json(&e.data));
                    });
                    q.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id");
                    let mut written: Vec<i64> = q
                        .build_query_scalar()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err("appending events"))?;
                    // Ids follow the rows' order; RETURNING's own order is unspecified.
                    written.sort_unstable();
                    ids.extend(written);
                }
                Ok(ids)
            }

            /// Wakes the readers waiting on [`EventRecords::event_feed`].
            pub(crate) fn announce(&self, ids: &[i64]) {
                if let Some(&last) = ids.iter().max() {
                    self.feed.send_if_modified(|seen| {
                        let newer = last > *seen;
                        if newer {
                            *seen = last;
                        }
                        newer
                    });
                }
            }

            async fn load_event_feed(&self) -> anyhow::Result<()> {
                let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await?;
                self.feed.send_replace(last.unwrap_or(0));
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::EventRecords for $store {
            async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<Vec<i64>> {
                let _op = self.metrics.op("append_events");
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("appending events"))?;
                let ids = Self::insert_events_in(&mut tx, &events).await?;
                tx.commit().await.map_err(db_err("committing events"))?;
                self.announce(&ids);
                Ok(ids)
            }

            async fn events(&self, filter: EventFilter) -> StoreResult<Vec<Event>> {
                let _op = self.metrics.op("events");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM events WHERE id > ",
                    $crate::store::events::EVENT_COLS
                ));
                q.push_bind(filter.after);
                if let Some(owner) = filter.owner_id {
                    q.push(" AND owner_id = ").push_bind(owner);
                }
                if !filter.account_ids.is_empty() {
                    q.push(" AND account_id IN (");
                    let mut list = q.separated(", ");
                    for id in &filter.account_ids {
                        list.push_bind(*id);
                    }
                    q.push(")");
                }
                if !filter.types.is_empty() {
                    q.push(" AND type IN (");
                    let mut list = q.separated(", ");
                    for t in &filter.types {
                        list.push_bind(t.as_str());
                    }
                    q.push(")");
                }
                q.push(" ORDER BY id LIMIT ")
                    .push_bind($crate::store::page_limit(filter.limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("reading events"))?;
                rows.iter()
                    .map(|r| Self::event_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn event_types(
                &self,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<(i64, EventType)>> {
                let _op = self.metrics.op("event_types");
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, type FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind($crate::store::page_limit(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("reading event types"))?;
                rows.into_iter()
                    .map(|(id, kind)| {
                        EventType::parse(&kind).map(|k| (id, k)).ok_or_else(|| {
                            StoreError::Other(anyhow::anyhow!(
                                "unknown type {kind:?} of event {id}"
                            ))
                        })
                    })
                    .collect()
            }

            async fn events_by_id(&self, ids: &[i64]) -> StoreResult<Vec<Event>> {
                let _op = self.metrics.op("events_by_id");
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM events WHERE id IN (",
                        $crate::store::events::EVENT_COLS
                    ));
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    q.push(") ORDER BY id");
                    let rows = q
                        .build()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db_err("reading events"))?;
                    for r in &rows {
                        out.push(Self::event_row(r).map_err(StoreError::Other)?);
                    }
                }
                Ok(out)
            }

            async fn last_event_id(&self) -> StoreResult<i64> {
                let _op = self.metrics.op("last_event_id");
                let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("reading the last event id"))?;
                Ok(last.unwrap_or(0))
            }

            async fn purge_events_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let _op = self.metrics.op("purge_events_before");
                let done = sqlx::query("DELETE FROM events WHERE occurred_at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("purging events"))?;
                Ok(done.rows_affected())
            }

            async fn event_cursor(&self, name: &str) -> StoreResult<Option<i64>> {
                let _op = self.metrics.op("event_cursor");
                sqlx::query_scalar("SELECT position FROM event_cursors WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err("reading an event cursor"))
            }

            async fn set_event_cursor(&self, name: &str, position: i64) -> StoreResult<()> {
                let _op = self.metrics.op("set_event_cursor");
                sqlx::query(
                    "INSERT INTO event_cursors (name, position, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
                     updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(position)
                .bind(Utc::now())
                .execute(&self.pool)
                .await
                .map_err(db_err("writing an event cursor"))?;
                Ok(())
            }

            fn event_feed(&self) -> tokio::sync::watch::Receiver<i64> {
                self.feed.subscribe()
            }
        }
    };
}
pub(super) use impl_event_records;
