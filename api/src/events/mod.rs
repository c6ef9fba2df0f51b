//! Events (`/api/v1/events`): what happened to the caller's accounts, read from the durable log
//! — live as Server-Sent Events, resumable with `Last-Event-ID`, or as JSON pages for scripts.
//! Webhooks (`crate::webhooks`) and the broker sink read the same log.

pub mod amqp;
pub mod metrics;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tgfleet_persistence::{AccountId, Event, EventFilter, EventType};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, Validator};
use crate::extract::ApiQuery;
use crate::logs::check_account_access;
use crate::state::AppState;

/// Events read from the log at a time, for a page or a stream.
const PAGE: u32 = 200;
/// How often an idle stream looks at the log without being woken: appends of another process
/// (several nodes) wake no one here.
const POLL: Duration = Duration::from_secs(1);
/// A comment line this often keeps proxies from closing an idle stream.
const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Comma-separated event types (default: all).
    pub types: Option<String>,
    /// Comma-separated account ids (default: all the caller's).
    pub account_id: Option<String>,
    /// Start after this event id (as `Last-Event-ID` does); without either, only new events.
    pub after: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// Events after this id (default 0: the oldest kept).
    pub after: Option<i64>,
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub types: Option<String>,
    pub account_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    /// `message.received`, `account.state_changed`, `post.published`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub account_id: Option<AccountId>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page; the same as `after` when nothing is newer.
    pub next_after: i64,
}

pub(crate) fn view(e: Event) -> EventView {
    EventView {
        id: e.id,
        kind: e.kind.as_str().to_owned(),
        account_id: e.account_id,
        occurred_at: e.occurred_at,
        data: e.data,
    }
}

/// Parses `types` (comma-separated names, `*` for all).
pub(crate) fn parse_types(v: &mut Validator, raw: Option<&str>) -> Vec<EventType> {
    let mut types = Vec::new();
    for name in raw.unwrap_or_default().split(',').map(str::trim) {
        match name {
            "" | "*" => {}
            name => match EventType::parse(name) {
                Some(t) => types.push(t),
                None => v.check(
                    false,
                    "types",
                    format!("unknown event type {name:?}; known: {}", known_types()),
                ),
            },
        }
    }
    types
}

pub(crate) fn known_types() -> String {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_accounts(v: &mut Validator, raw: Option<&str>) -> Vec<AccountId> {
    let mut ids = Vec::new();
    for part in raw.unwrap_or_default().split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        match part.parse::<AccountId>() {
            Ok(id) => ids.push(id),
            Err(_) => v.check(false, "account_id", "comma-separated account ids"),
        }
    }
    ids
}

/// The filter a caller may read with: their own events (admins: all), of accounts they own.
async fn filter_for(
    state: &AppState,
    user: &AuthUser,
    types: Option<&str>,
    accounts: Option<&str>,
) -> Result<EventFilter, ApiError> {
    let mut v = Validator::default();
    let types = parse_types(&mut v, types);
    let account_ids = parse_accounts(&mut v, accounts);
    v.finish()?;
    for id in &account_ids {
        check_account_access(state, user, *id).await?;
    }
    Ok(EventFilter {
        owner_id: (!user.is_admin()).then_some(user.id),
        account_ids,
        types,
        ..Default::default()
    })
}

#[utoipa::path(get, path = "/api/v1/events/log", tag = "events", security(("bearer" = [])),
    params(LogQuery),
    responses((status = 200, body = EventPage), (status = 401, body = crate::openapi::ErrorBody),
              (status = 404, body = crate::openapi::ErrorBody), (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn log(
    State(state): State<AppState>,
    user: AuthUser,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    let after = q.after.unwrap_or(0);
    let mut v = Validator::default();
    v.check((1..=1000).contains(&limit), "limit", "must be 1–1000");
    v.check(after >= 0, "after", "must be an event id (0 or more)");
    v.finish()?;
    let mut filter = filter_for(&state, &user, q.types.as_deref(), q.account_id.as_deref()).await?;
    filter.after = after;
    filter.limit = limit;
    let events = state.store.events(filter).await?;
    let next_after = events.last().map_or(after, |e| e.id);
    Ok(Json(EventPage {
        events: events.into_iter().map(view).collect(),
        next_after,
    }))
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "resume after this event id")),
    responses((status = 200, description = "text/event-stream: `id:` the event id, `event:` its type, `data:` the event JSON", content_type = "text/event-stream"),
              (status = 401, body = crate::openapi::ErrorBody), (status = 404, body = crate::openapi::ErrorBody),
              (status = 422, body = crate::openapi::ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(raw) => Some(
            raw.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| {
                    ApiError::field("Last-Event-ID", "must be an event id this stream sent")
                })?,
        ),
    };
    let mut filter = filter_for(&state, &user, q.types.as_deref(), q.account_id.as_deref()).await?;
    // Subscribed before the starting point is read: nothing appended in between is missed.
    let feed = state.store.event_feed();
    filter.after = match resume.or(q.after) {
        Some(after) => after,
        None => state.store.last_event_id().await?,
    };
    filter.limit = PAGE;
    // The stream ends when the token does: the client reconnects with a fresh one and
    // `Last-Event-ID`, so a logout or a disabled user stops receiving within a token's life.
    let ends = tokio::time::Instant::now()
        + Duration::from_secs(
            u64::try_from(user.exp - chrono::Utc::now().timestamp()).unwrap_or(0),
        );
    let tail = Tail {
        store: state.store.clone(),
        filter,
        feed,
        buffered: std::collections::VecDeque::new(),
        ends,
    };
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        let frame = sse::Event::default()
            .id(event.id.to_string())
            .event(event.kind.as_str())
            .json_data(view(event))
            .unwrap_or_else(|_| sse::Event::default().comment("unencodable event skipped"));
        Some((Ok(frame), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}

/// A reader that follows the log from a point on.
struct Tail {
    store: std::sync::Arc<dyn tgfleet_persistence::Store>,
    filter: EventFilter,
    feed: tokio::sync::watch::Receiver<i64>,
    buffered: std::collections::VecDeque<Event>,
    ends: tokio::time::Instant,
}

impl Tail {
    /// The next event, waiting for one; `None` when the stream should end.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.buffered.pop_front() {
                return Some(e);
            }
            if tokio::time::Instant::now() >= self.ends {
                return None;
            }
            // Marked seen before the read: an append after it wakes the wait below.
            self.feed.borrow_and_update();
            match self.store.events(self.filter.clone()).await {
                Ok(page) if !page.is_empty() => {
                    if let Some(last) = page.last() {
                        self.filter.after = last.id;
                    }
                    self.buffered.extend(page);
                    continue;
                }
                Ok(_) => {}
                // The database is away: the stream waits and tries again, it does not end.
                Err(e) => tracing::warn!(error = %e, "reading events for a stream"),
            }
            tokio::select! {
                Ok(()) = self.feed.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = tokio::time::sleep_until(self.ends) => return None,
            }
        }
    }
}
