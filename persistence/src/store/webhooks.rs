//! Webhook endpoints, the events queued for each, and the log of every attempt.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    AttemptOutcome, NewEvent, UserId, Webhook, WebhookAttempt, WebhookDelivery, WebhookPatch,
};
use crate::store::{StoreError, StoreResult};

/// One pending delivery of an (endpoint, account) queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub webhook_id: String,
    pub account_key: i64,
    pub event_id: i64,
    pub next_attempt_at: DateTime<Utc>,
    /// The store holds more of this queue after this one than were asked for.
    pub more: bool,
}

/// Per endpoint among recorded attempts, since when it has been failing (`None`: it is not).
pub type WebhookFailing = Vec<(String, Option<DateTime<Utc>>)>;

/// An endpoint's queue, for the backlog metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBacklog {
    pub webhook_id: String,
    pub pending: i64,
    /// When the oldest pending event occurred (`None`: nothing pending).
    pub oldest: Option<DateTime<Utc>>,
}

/// Part of every [`crate::Store`]; its defaults answer "unsupported" so test doubles that keep
/// no webhooks compile unchanged.
#[async_trait]
pub trait WebhookRecords: Send + Sync {
    async fn create_webhook(&self, hook: Webhook) -> StoreResult<()> {
        let _ = hook;
        Err(unsupported())
    }
    async fn webhook(&self, id: &str) -> StoreResult<Webhook> {
        let _ = id;
        Err(unsupported())
    }
    /// Every endpoint, or one user's; oldest first.
    async fn list_webhooks(&self, owner_id: Option<UserId>) -> StoreResult<Vec<Webhook>> {
        let _ = owner_id;
        Err(unsupported())
    }
    async fn update_webhook(&self, id: &str, patch: WebhookPatch) -> StoreResult<Webhook> {
        let _ = (id, patch);
        Err(unsupported())
    }
    /// `secret` becomes the signing secret; the current one keeps signing until
    /// `previous_until`.
    async fn rotate_webhook_secret(
        &self,
        id: &str,
        secret: Vec<u8>,
        previous_until: DateTime<Utc>,
    ) -> StoreResult<Webhook> {
        let _ = (id, secret, previous_until);
        Err(unsupported())
    }
    /// The endpoint, its queue and its delivery log.
    async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
        let _ = id;
        Err(unsupported())
    }
    /// Queues `events` (event id, account key) and moves the endpoint's cursor from
    /// `expected_cursor` to `new_cursor`, in one transaction; false (nothing written) when the
    /// cursor moved meanwhile (a replay, another node).
    async fn enqueue_webhook_events(
        &self,
        id: &str,
        expected_cursor: i64,
        new_cursor: i64,
        events: &[(i64, i64)],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let _ = (id, expected_cursor, new_cursor, events, now);
        Err(unsupported())
    }
    /// Pending deliveries, oldest first per (endpoint, account) queue: at most `per_queue` of
    /// each queue, of one endpoint (or all) and one account key (or all); the dispatcher keeps
    /// them in memory and asks again when a queue's window runs dry.
    async fn pending_webhook_deliveries(
        &self,
        webhook_id: Option<&str>,
        account_key: Option<i64>,
        per_queue: u32,
    ) -> StoreResult<Vec<QueuedDelivery>> {
        let _ = (webhook_id, account_key, per_queue);
        Err(unsupported())
    }
    /// Claims attempts, in one statement: each of `deliveries` (endpoint, event id) still
    /// pending and due at `now` gets one more attempt and is not due again before
    /// `lease_until` (an attempt a crash cuts short is repeated then). Only the oldest pending
    /// event of its (endpoint, account) queue, of an enabled endpoint, is claimed. Returns those
    /// claimed; one missing was not due, not its queue's head, or its endpoint is disabled.
    async fn claim_webhook_deliveries(
        &self,
        deliveries: &[(String, i64)],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let (_, claimed) = self
            .finish_and_claim_webhook_deliveries(Vec::new(), deliveries, now, lease_until)
            .await?;
        Ok(claimed)
    }
    /// Logs attempts and what each left (the delivery done, retried at `next_attempt_at`, or
    /// dead), and each endpoint's failure record, in one transaction; returns, per endpoint
    /// among them, since when it has been failing (`None` after a success).
    async fn finish_webhook_attempts(
        &self,
        attempts: Vec<WebhookAttempt>,
    ) -> StoreResult<WebhookFailing> {
        let now = crate::store::now();
        let (failing, _) = self
            .finish_and_claim_webhook_deliveries(attempts, &[], now, now)
            .await?;
        Ok(failing)
    }
    /// [`Self::finish_webhook_attempts`] then [`Self::claim_webhook_deliveries`], in one
    /// transaction: the dispatcher records the attempts that ended and claims their queues'
    /// next heads in one round trip, so a queue's next attempt waits for one transaction, not
    /// two (`benches/events_throughput.rs`). Nothing is written when either part fails.
    async fn finish_and_claim_webhook_deliveries(
        &self,
        attempts: Vec<WebhookAttempt>,
        deliveries: &[(String, i64)],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<(WebhookFailing, Vec<WebhookDelivery>)> {
        let _ = (attempts, deliveries, now, lease_until);
        Err(unsupported())
    }
    /// Disables an enabled endpoint and appends `event` (its `webhook.disabled`) in one
    /// transaction; false when it was not enabled.
    async fn disable_webhook(&self, id: &str, reason: &str, event: NewEvent) -> StoreResult<bool> {
        let _ = (id, reason, event);
        Err(unsupported())
    }
    /// The delivery log, newest first: attempts with an id below `before_id`.
    async fn webhook_attempts(
        &self,
        id: &str,
        outcome: Option<AttemptOutcome>,
        before_id: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookAttempt>> {
        let _ = (id, outcome, before_id, limit);
        Err(unsupported())
    }
    /// Delivers again every event from `since_event_id` on: finished deliveries are forgotten
    /// and the cursor goes back. Returns how many finished deliveries were forgotten.
    async fn replay_webhook(&self, id: &str, since_event_id: i64) -> StoreResult<u64> {
        let _ = (id, since_event_id);
        Err(unsupported())
    }
    /// Each endpoint's pending count and its oldest pending event's time.
    async fn webhook_backlog(&self) -> StoreResult<Vec<WebhookBacklog>> {
        Err(unsupported())
    }
}

fn unsupported() -> StoreError {
    StoreError::Other(anyhow::anyhow!("this store does not keep webhooks"))
}

/// What a batch of attempts leaves of each endpoint's failure record, in the order endpoints
/// first appear: (endpoint, whether a success came, failing since). After a success that the
/// batch ends with, failing since `None`; after a success then failures, since the first of
/// those; with no success, since the first failure (or earlier, as the store has it).
pub(super) fn failure_records(
    attempts: &[WebhookAttempt],
) -> Vec<(String, bool, Option<DateTime<Utc>>)> {
    let mut out: Vec<(String, bool, Option<DateTime<Utc>>)> = Vec::new();
    for a in attempts {
        let i = match out.iter().position(|(id, _, _)| *id == a.webhook_id) {
            Some(i) => i,
            None => {
                out.push((a.webhook_id.clone(), false, None));
                out.len() - 1
            }
        };
        let record = &mut out[i];
        if a.outcome == AttemptOutcome::Succeeded {
            *record = (a.webhook_id.clone(), true, None);
        } else if record.2.is_none() {
            record.2 = Some(a.at);
        }
    }
    out
}

pub(super) const WEBHOOK_COLS: &str = "id, owner_id, url, events, account_ids, description, \
     secret, previous_secret, previous_until, enabled, disabled_reason, failing_since, cursor, \
     created_at, updated_at";
pub(super) const WH_DELIVERY_COLS: &str = "webhook_id, event_id, account_key, state, attempts, \
     next_attempt_at, first_attempt_at, last_status, last_error, updated_at";
pub(super) const ATTEMPT_COLS: &str =
    "id, webhook_id, event_id, attempt, at, status, latency_ms, error, outcome, next_attempt_at";

macro_rules! impl_webhook_records {
    ($store:ty, $db:ty) => {
        impl $store {
            fn webhook_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Webhook> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: String = row.try_get("id").context("decoding webhooks.id")?;
                let ctx = |col: &str| format!("decoding webhooks.{col} of webhook {id}");
                let events: String = row.try_get("events").with_context(|| ctx("events"))?;
                let accounts: Option<String> =
                    row.try_get("account_ids").with_context(|| ctx("account_ids"))?;
                Ok(Webhook {
                    owner_id: row.try_get("owner_id").with_context(|| ctx("owner_id"))?,
                    url: row.try_get("url").with_context(|| ctx("url"))?,
                    events: serde_json::from_str(&events).with_context(|| ctx("events"))?,
                    account_ids: accounts
                        .map(|a| serde_json::from_str(&a))
                        .transpose()
                        .with_context(|| ctx("account_ids"))?,
                    description: row.try_get("description").with_context(|| ctx("description"))?,
                    secret: row.try_get("secret").with_context(|| ctx("secret"))?,
                    previous_secret: row
                        .try_get("previous_secret")
                        .with_context(|| ctx("previous_secret"))?,
                    previous_until: row
                        .try_get("previous_until")
                        .with_context(|| ctx("previous_until"))?,
                    enabled: row.try_get("enabled").with_context(|| ctx("enabled"))?,
                    disabled_reason: row
                        .try_get("disabled_reason")
                        .with_context(|| ctx("disabled_reason"))?,
                    failing_since: row
                        .try_get("failing_since")
                        .with_context(|| ctx("failing_since"))?,
                    cursor: row.try_get("cursor").with_context(|| ctx("cursor"))?,
                    created_at: row.try_get("created_at").with_context(|| ctx("created_at"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                    id,
                })
            }

            async fn claim_webhook_deliveries_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                deliveries: &[(String, i64)],
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<Vec<WebhookDelivery>> {
                let mut claimed = Vec::with_capacity(deliveries.len());
                for chunk in deliveries.chunks(200) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ",
                    );
                    q.push_bind(lease_until)
                        .push(", first_attempt_at = COALESCE(first_attempt_at, ")
                        .push_bind(now)
                        .push("), updated_at = ")
                        .push_bind(now)
                        .push(" WHERE state = 'pending' AND next_attempt_at <= ")
                        .push_bind(now)
                        // The store keeps the order whatever the caller believes: only a
                        // queue's oldest pending event, of an enabled endpoint (an index probe
                        // each).
                        .push(
                            " AND webhook_id IN (SELECT id FROM webhooks WHERE enabled) \
                             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                             WHERE e.webhook_id = webhook_deliveries.webhook_id \
                             AND e.account_key = webhook_deliveries.account_key \
                             AND e.state = 'pending' AND e.event_id < webhook_deliveries.event_id)",
                        )
                        // ORed pairs, not a row-value IN list: SQLite then finds each row by
                        // its primary key, where the IN list had it scan a whole endpoint's
                        // pending rows (EXPLAIN QUERY PLAN, SQLite 3.40).
                        .push(" AND (");
                    let mut list = q.separated(" OR ");
                    for (webhook_id, event_id) in chunk {
                        list.push("(webhook_id = ")
                            .push_bind_unseparated(webhook_id.as_str())
                            .push_unseparated(" AND event_id = ")
                            .push_bind_unseparated(*event_id)
                            .push_unseparated(")");
                    }
                    q.push(") RETURNING ")
                        .push($crate::store::webhooks::WH_DELIVERY_COLS);
                    let rows = q
                        .build()
                        .fetch_all(&mut *conn)
                        .await
                        .map_err(db_err("claiming webhook deliveries"))?;
                    for r in &rows {
                        claimed.push(Self::wh_delivery_row(r).map_err(StoreError::Other)?);
                    }
                }
                Ok(claimed)
            }

            async fn finish_webhook_attempts_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                attempts: &[WebhookAttempt],
            ) -> StoreResult<$crate::store::webhooks::WebhookFailing> {
                let state_of = |a: &WebhookAttempt| match a.outcome {
                    AttemptOutcome::Succeeded => "succeeded",
                    AttemptOutcome::Retrying => "pending",
                    AttemptOutcome::Dead => "dead",
                };
                for chunk in attempts.chunks(100) {
                    // VALUES columns are column1… on both SQLite and PostgreSQL.
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE webhook_deliveries SET state = v.column3, \
                         next_attempt_at = v.column4, last_status = v.column5, \
                         last_error = v.column6, updated_at = v.column7 FROM (",
                    );
                    q.push_values(chunk, |mut row, a| {
                        row.push_bind(&a.webhook_id)
                            .push_bind(a.event_id)
                            .push_bind(state_of(a))
                            .push_bind(a.next_attempt_at.unwrap_or(a.at))
                            .push_bind(a.status)
                            .push_bind(&a.error)
                            .push_bind(a.at);
                    });
                    q.push(
                        ") AS v WHERE webhook_deliveries.webhook_id = v.column1 \
                         AND webhook_deliveries.event_id = v.column2",
                    );
                    q.build()
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err("finishing webhook deliveries"))?;
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO webhook_attempts (webhook_id, event_id, attempt, at, status, \
                         latency_ms, error, outcome, next_attempt_at) ",
                    );
                    q.push_values(chunk, |mut row, a| {
                        row.push_bind(&a.webhook_id)
                            .push_bind(a.event_id)
                            .push_bind(a.attempt)
                            .push_bind(a.at)
                            .push_bind(a.status)
                            .push_bind(a.latency_ms)
                            .push_bind(&a.error)
                            .push_bind(a.outcome.as_str())
                            .push_bind(a.next_attempt_at);
                    });
                    q.build()
                        .execute(&mut *conn)
                        .await
                        .map_err(db_err("logging attempts"))?;
                }
                let mut failing = Vec::new();
                for (webhook_id, reset, at) in $crate::store::webhooks::failure_records(attempts)
                {
                    // reset: a success came, and failing_since becomes `at` (None: failing no
                    // more); otherwise the failures go on from the first one, or from before.
                    let since: Option<DateTime<Utc>> = sqlx::query_scalar(
                        "UPDATE webhooks SET failing_since = CASE WHEN $2 THEN $3 \
                         ELSE COALESCE(failing_since, $3) END WHERE id = $1 RETURNING failing_since",
                    )
                    .bind(&webhook_id)
                    .bind(reset)
                    .bind(at)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_err("recording a webhook's failures"))?
                    .flatten();
                    failing.push((webhook_id, since));
                }
                Ok(failing)
            }

            fn wh_delivery_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> anyhow::Result<WebhookDelivery> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let ctx = |col: &str| format!("decoding webhook_deliveries.{col}");
                let state: String = row.try_get("state").with_context(|| ctx("state"))?;
                Ok(WebhookDelivery {
                    webhook_id: row.try_get("webhook_id").with_context(|| ctx("webhook_id"))?,
                    event_id: row.try_get("event_id").with_context(|| ctx("event_id"))?,
                    account_key: row.try_get("account_key").with_context(|| ctx("account_key"))?,
                    state: WebhookDeliveryState::parse(&state)
                        .with_context(|| format!("unknown webhook delivery state {state:?}"))?,
                    attempts: row.try_get("attempts").with_context(|| ctx("attempts"))?,
                    next_attempt_at: row
                        .try_get("next_attempt_at")
                        .with_context(|| ctx("next_attempt_at"))?,
                    first_attempt_at: row
                        .try_get("first_attempt_at")
                        .with_context(|| ctx("first_attempt_at"))?,
                    last_status: row.try_get("last_status").with_context(|| ctx("last_status"))?,
                    last_error: row.try_get("last_error").with_context(|| ctx("last_error"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                })
            }

            fn attempt_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<WebhookAttempt> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let ctx = |col: &str| format!("decoding webhook_attempts.{col}");
                let outcome: String = row.try_get("outcome").with_context(|| ctx("outcome"))?;
                Ok(WebhookAttempt {
                    id: row.try_get("id").with_context(|| ctx("id"))?,
                    webhook_id: row.try_get("webhook_id").with_context(|| ctx("webhook_id"))?,
                    event_id: row.try_get("event_id").with_context(|| ctx("event_id"))?,
                    attempt: row.try_get("attempt").with_context(|| ctx("attempt"))?,
                    at: row.try_get("at").with_context(|| ctx("at"))?,
                    status: row.try_get("status").with_context(|| ctx("status"))?,
                    latency_ms: row.try_get("latency_ms").with_context(|| ctx("latency_ms"))?,
                    error: row.try_get("error").with_context(|| ctx("error"))?,
                    outcome: AttemptOutcome::parse(&outcome)
                        .with_context(|| format!("unknown attempt outcome {outcome:?}"))?,
                    next_attempt_at: row
                        .try_get("next_attempt_at")
                        .with_context(|| ctx("next_attempt_at"))?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::WebhookRecords for $store {
            async fn create_webhook(&self, hook: Webhook) -> StoreResult<()> {
                let _op = self.metrics.op("create_webhook");
                let events =
                    serde_json::to_string(&hook.events).map_err(|e| StoreError::Other(e.into()))?;
                let accounts = hook
                    .account_ids
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Other(e.into()))?;
                sqlx::query(
                    "INSERT INTO webhooks (id, owner_id, url, events, account_ids, description, \
                     secret, previous_secret, previous_until, enabled, disabled_reason, \
                     failing_since, cursor, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&hook.id)
                .bind(hook.owner_id)
                .bind(&hook.url)
                .bind(events)
                .bind(accounts)
                .bind(&hook.description)
                .bind(&hook.secret)
                .bind(&hook.previous_secret)
                .bind(hook.previous_until)
                .bind(hook.enabled)
                .bind(&hook.disabled_reason)
                .bind(hook.failing_since)
                .bind(hook.cursor)
                .bind(hook.created_at)
                .bind(hook.updated_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("creating a webhook"))?;
                Ok(())
            }

            async fn webhook(&self, id: &str) -> StoreResult<Webhook> {
                let _op = self.metrics.op("webhook");
                let sql = format!(
                    "SELECT {} FROM webhooks WHERE id = $1",
                    $crate::store::webhooks::WEBHOOK_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading a webhook"))?;
                Ok(Self::webhook_row(&row)?)
            }

            async fn list_webhooks(&self, owner_id: Option<UserId>) -> StoreResult<Vec<Webhook>> {
                let _op = self.metrics.op("list_webhooks");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM webhooks WHERE 1 = 1",
                    $crate::store::webhooks::WEBHOOK_COLS
                ));
                if let Some(owner) = owner_id {
                    q.push(" AND owner_id = ").push_bind(owner);
                }
                q.push(" ORDER BY id");
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing webhooks"))?;
                rows.iter()
                    .map(|r| Self::webhook_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn update_webhook(&self, id: &str, patch: WebhookPatch) -> StoreResult<Webhook> {
                let _op = self.metrics.op("update_webhook");
                let events = patch
                    .events
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| StoreError::Other(e.into()))?;
                let accounts = patch
                    .account_ids
                    .as_ref()
                    .map(|a| a.as_ref().map(serde_json::to_string).transpose())
                    .transpose()
                    .map_err(|e| StoreError::Other(e.into()))?;
                let enable = patch.enabled == Some(true);
                let sql = format!(
                    "UPDATE webhooks SET \
                     url = COALESCE($2, url), \
                     events = COALESCE($3, events), \
                     account_ids = CASE WHEN $4 THEN $5 ELSE account_ids END, \
                     description = CASE WHEN $6 THEN $7 ELSE description END, \
                     enabled = COALESCE($8, enabled), \
                     disabled_reason = CASE WHEN $9 THEN NULL \
                         WHEN $8 = FALSE THEN 'disabled by its owner' ELSE disabled_reason END, \
                     failing_since = CASE WHEN $9 THEN NULL ELSE failing_since END, \
                     updated_at = $10 \
                     WHERE id = $1 RETURNING {}",
                    $crate::store::webhooks::WEBHOOK_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(&patch.url)
                    .bind(events)
                    .bind(accounts.is_some())
                    .bind(accounts.flatten())
                    .bind(patch.description.is_some())
                    .bind(patch.description.flatten())
                    .bind(patch.enabled)
                    .bind(enable)
                    .bind($crate::store::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("updating a webhook"))?;
                Ok(Self::webhook_row(&row)?)
            }

            async fn rotate_webhook_secret(
                &self,
                id: &str,
                secret: Vec<u8>,
                previous_until: DateTime<Utc>,
            ) -> StoreResult<Webhook> {
                let _op = self.metrics.op("rotate_webhook_secret");
                let sql = format!(
                    "UPDATE webhooks SET previous_secret = secret, secret = $2, \
                     previous_until = $3, updated_at = $4 WHERE id = $1 RETURNING {}",
                    $crate::store::webhooks::WEBHOOK_COLS
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(secret)
                    .bind(previous_until)
                    .bind($crate::store::now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("rotating a webhook secret"))?;
                Ok(Self::webhook_row(&row)?)
            }

            async fn delete_webhook(&self, id: &str) -> StoreResult<()> {
                let _op = self.metrics.op("delete_webhook");
                let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("deleting a webhook"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn enqueue_webhook_events(
                &self,
                id: &str,
                expected_cursor: i64,
                new_cursor: i64,
                events: &[(i64, i64)],
                now: DateTime<Utc>,
            ) -> StoreResult<bool> {
                let _op = self.metrics.op("enqueue_webhook_events");
                let mut tx = self.pool.begin().await.map_err(db_err("queueing webhook events"))?;
                let moved = sqlx::query(
                    "UPDATE webhooks SET cursor = $3 WHERE id = $1 AND cursor = $2",
                )
                .bind(id)
                .bind(expected_cursor)
                .bind(new_cursor)
                .execute(&mut *tx)
                .await
                .map_err(db_err("moving a webhook cursor"))?;
                if moved.rows_affected() == 0 {
                    return Ok(false);
                }
                for chunk in events.chunks(200) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO webhook_deliveries (webhook_id, event_id, account_key, \
                         state, attempts, next_attempt_at, updated_at) ",
                    );
                    q.push_values(chunk, |mut row, (event_id, account_key)| {
                        row.push_bind(id)
                            .push_bind(*event_id)
                            .push_bind(*account_key)
                            .push("'pending'")
                            .push("0")
                            .push_bind(now)
                            .push_bind(now);
                    });
                    q.push(" ON CONFLICT (webhook_id, event_id) DO NOTHING");
                    q.build()
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("queueing webhook events"))?;
                }
                tx.commit().await.map_err(db_err("committing webhook events"))?;
                Ok(true)
            }

            async fn pending_webhook_deliveries(
                &self,
                webhook_id: Option<&str>,
                account_key: Option<i64>,
                per_queue: u32,
            ) -> StoreResult<Vec<$crate::store::webhooks::QueuedDelivery>> {
                let _op = self.metrics.op("pending_webhook_deliveries");
                // One more than asked per queue tells whether the store holds more. One queue
                // is read along its index; several are numbered per queue.
                let mut q = if let (Some(id), Some(key)) = (webhook_id, account_key) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT webhook_id, account_key, event_id, next_attempt_at, CAST(0 AS BIGINT) AS n \
                         FROM webhook_deliveries WHERE state = 'pending' AND webhook_id = ",
                    );
                    q.push_bind(id)
                        .push(" AND account_key = ")
                        .push_bind(key)
                        .push(" ORDER BY event_id LIMIT ")
                        .push_bind(i64::from(per_queue) + 1);
                    q
                } else {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT webhook_id, account_key, event_id, next_attempt_at, n FROM (\
                     SELECT webhook_id, account_key, event_id, next_attempt_at, ROW_NUMBER() \
                     OVER (PARTITION BY webhook_id, account_key ORDER BY event_id) AS n \
                     FROM webhook_deliveries WHERE state = 'pending'",
                );
                if let Some(id) = webhook_id {
                    q.push(" AND webhook_id = ").push_bind(id);
                }
                if let Some(key) = account_key {
                    q.push(" AND account_key = ").push_bind(key);
                }
                    q.push(") AS queued WHERE n <= ")
                        .push_bind(i64::from(per_queue) + 1)
                        .push(" ORDER BY webhook_id, account_key, event_id");
                    q
                };
                let rows: Vec<(String, i64, i64, DateTime<Utc>, i64)> = q
                    .build_query_as()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("reading pending webhook deliveries"))?;
                let per_queue = i64::from(per_queue);
                let mut out: Vec<$crate::store::webhooks::QueuedDelivery> = Vec::new();
                let mut seen = 0;
                for (webhook_id, account_key, event_id, next_attempt_at, n) in rows {
                    // The single-queue read numbers nothing: count here.
                    seen += 1;
                    let n = if n == 0 { seen } else { n };
                    if n > per_queue {
                        if let Some(last) = out.last_mut() {
                            last.more = true;
                        }
                        continue;
                    }
                    out.push($crate::store::webhooks::QueuedDelivery {
                        webhook_id,
                        account_key,
                        event_id,
                        next_attempt_at,
                        more: false,
                    });
                }
                Ok(out)
            }

            async fn finish_and_claim_webhook_deliveries(
                &self,
                attempts: Vec<WebhookAttempt>,
                deliveries: &[(String, i64)],
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> StoreResult<($crate::store::webhooks::WebhookFailing, Vec<WebhookDelivery>)> {
                if attempts.is_empty() && deliveries.is_empty() {
                    return Ok((Vec::new(), Vec::new()));
                }
                let _op = self.metrics.op("finish_and_claim_webhook_deliveries");
                if attempts.is_empty() {
                    // One statement: no transaction needed.
                    let mut conn = self
                        .pool
                        .acquire()
                        .await
                        .map_err(db_err("claiming webhook deliveries"))?;
                    let claimed =
                        Self::claim_webhook_deliveries_in(&mut conn, deliveries, now, lease_until)
                            .await?;
                    return Ok((Vec::new(), claimed));
                }
                let mut tx = self.pool.begin().await.map_err(db_err("logging attempts"))?;
                // Finished first: a queue's next head is its oldest pending event only once
                // the attempt before it is recorded.
                let failing = Self::finish_webhook_attempts_in(&mut tx, &attempts).await?;
                let claimed =
                    Self::claim_webhook_deliveries_in(&mut tx, deliveries, now, lease_until)
                        .await?;
                tx.commit().await.map_err(db_err("committing attempts"))?;
                Ok((failing, claimed))
            }

            async fn disable_webhook(
                &self,
                id: &str,
                reason: &str,
                event: NewEvent,
            ) -> StoreResult<bool> {
                let _op = self.metrics.op("disable_webhook");
                let mut tx = self.pool.begin().await.map_err(db_err("disabling a webhook"))?;
                let done = sqlx::query(
                    "UPDATE webhooks SET enabled = FALSE, disabled_reason = $2, updated_at = $3 \
                     WHERE id = $1 AND enabled",
                )
                .bind(id)
                .bind(reason)
                .bind($crate::store::now())
                .execute(&mut *tx)
                .await
                .map_err(db_err("disabling a webhook"))?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                let ids = Self::insert_events_in(&mut tx, std::slice::from_ref(&event)).await?;
                tx.commit().await.map_err(db_err("committing a webhook disable"))?;
                self.announce(&ids);
                Ok(true)
            }

            async fn webhook_attempts(
                &self,
                id: &str,
                outcome: Option<AttemptOutcome>,
                before_id: Option<i64>,
                limit: u32,
            ) -> StoreResult<Vec<WebhookAttempt>> {
                let _op = self.metrics.op("webhook_attempts");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM webhook_attempts WHERE webhook_id = ",
                    $crate::store::webhooks::ATTEMPT_COLS
                ));
                q.push_bind(id);
                if let Some(outcome) = outcome {
                    q.push(" AND outcome = ").push_bind(outcome.as_str());
                }
                if let Some(before) = before_id {
                    q.push(" AND id < ").push_bind(before);
                }
                q.push(" ORDER BY id DESC LIMIT ")
                    .push_bind($crate::store::page_limit(limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("reading a delivery log"))?;
                rows.iter()
                    .map(|r| Self::attempt_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn replay_webhook(&self, id: &str, since_event_id: i64) -> StoreResult<u64> {
                let _op = self.metrics.op("replay_webhook");
                let mut tx = self.pool.begin().await.map_err(db_err("replaying a webhook"))?;
                let moved = sqlx::query(
                    "UPDATE webhooks SET cursor = CASE WHEN cursor > $2 THEN $2 ELSE cursor END, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(since_event_id.saturating_sub(1))
                .bind($crate::store::now())
                .execute(&mut *tx)
                .await
                .map_err(db_err("replaying a webhook"))?;
                if moved.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                let forgotten = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND event_id >= $2 \
                     AND state <> 'pending'",
                )
                .bind(id)
                .bind(since_event_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err("replaying a webhook"))?;
                tx.commit().await.map_err(db_err("committing a replay"))?;
                Ok(forgotten.rows_affected())
            }

            async fn webhook_backlog(
                &self,
            ) -> StoreResult<Vec<$crate::store::webhooks::WebhookBacklog>> {
                let _op = self.metrics.op("webhook_backlog");
                let rows: Vec<(String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "SELECT w.id, COUNT(d.event_id), MIN(e.occurred_at) FROM webhooks w \
                     LEFT JOIN webhook_deliveries d ON d.webhook_id = w.id AND d.state = 'pending' \
                     LEFT JOIN events e ON e.id = d.event_id \
                     GROUP BY w.id ORDER BY w.id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("reading the webhook backlog"))?;
                Ok(rows
                    .into_iter()
                    .map(|(webhook_id, pending, oldest)| {
                        $crate::store::webhooks::WebhookBacklog {
                            webhook_id,
                            pending,
                            oldest,
                        }
                    })
                    .collect())
            }
        }
    };
}
pub(super) use impl_webhook_records;
