//! The broker sink (`events.amqp_url`): the event log published to RabbitMQ, at least once and in
//! id order, to a durable topic exchange (`events.amqp_exchange`) with routing key
//! `account.<account_id>.<type>` (`account.none.<type>` for events of no account). Each message
//! is the event JSON that SSE and webhooks send, persistent, with `message_id` the event id, so a
//! consumer drops the repeats that at-least-once allows.
//!
//! The log is the buffer: events are read after a cursor in pages, published with publisher
//! confirms, and the cursor moves only past events the broker acknowledged. While RabbitMQ is
//! away nothing is dropped; the sink reconnects with backoff and catches up from the cursor.
//!
//! The cursor is kept in the database (`event_cursors`, named `amqp:<exchange>`) beside the log
//! it points into, so a lost data directory or a new node resumes where the sink stopped, and a
//! new database starts afresh.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tgfleet_config::Secret;
use tgfleet_persistence::{Event, EventFilter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Events published per page; the cursor moves once all of a page's confirms are in.
const PAGE: u32 = 200;
/// How often an idle sink looks at the log (another process's appends wake no one here) and
/// checks that its connection is still up.
const POLL: Duration = Duration::from_secs(1);
/// The first wait after a failure; each next one doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Connecting (TCP, AMQP handshake, declaring the exchange) longer than this is a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A page whose confirms have not all come in by then is published again on a new connection.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for the confirms of a page already published.
const STOP_GRACE: Duration = Duration::from_millis(500);
/// How long closing the connection at shutdown may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The cursor's name in `event_cursors` for the exchange `exchange`.
pub fn cursor_name(exchange: &str) -> String {
    format!("amqp:{exchange}")
}

/// The sink's Prometheus series: events by outcome, and how far it is behind the log.
#[derive(Clone)]
pub struct BrokerMetrics {
    events: IntCounterVec,
    lag: IntGauge,
}

impl BrokerMetrics {
    /// Registers the series; a registry that has them already (a second sink on one state) gets
    /// the new ones in their place, so `/metrics` shows the sink that runs.
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "tgfleet_broker_events_total",
                "Events handed to the broker sink's RabbitMQ, by outcome (published: confirmed; \
                 failed: nacked or unconfirmed, published again)",
            ),
            &["outcome"],
        )?;
        let lag = IntGauge::new(
            "tgfleet_broker_lag_events",
            "Events in the log the broker sink has not had confirmed yet (newest id − cursor)",
        )?;
        register_or_replace(registry, &events)?;
        register_or_replace(registry, &lag)?;
        events.with_label_values(&["published"]);
        events.with_label_values(&["failed"]);
        Ok(Self { events, lag })
    }

    fn published(&self, n: usize) {
        self.events
            .with_label_values(&["published"])
            .inc_by(n as u64);
    }

    fn failed(&self, n: usize) {
        self.events.with_label_values(&["failed"]).inc_by(n as u64);
    }
}

/// Registers `c`; one with the same series already there is unregistered first (unregistering
/// goes by the series' names and labels, which the new one shares).
fn register_or_replace<C>(registry: &Registry, c: &C) -> prometheus::Result<()>
where
    C: prometheus::core::Collector + Clone + 'static,
{
    match registry.register(Box::new(c.clone())) {
        Err(prometheus::Error::AlreadyReg) => {
            registry.unregister(Box::new(c.clone()))?;
            registry.register(Box::new(c.clone()))
        }
        other => other,
    }
}

/// Publishes the log to the broker until `stop`; returns at once when no broker is configured.
pub async fn run(state: AppState, stop: CancellationToken) {
    let Some(url) = state.settings.events.amqp_url.clone() else {
        return;
    };
    let metrics = match BrokerMetrics::register(&state.metrics_registry) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "broker sink: registering its metrics; not started");
            return;
        }
    };
    let sink = Sink {
        exchange: state.settings.events.amqp_exchange.clone(),
        target: Target::of(url.expose()),
        url,
        cursor_name: cursor_name(&state.settings.events.amqp_exchange),
        metrics,
        state,
        stop,
    };
    sink.run().await;
}

struct Sink {
    state: AppState,
    stop: CancellationToken,
    url: Secret,
    /// What may be logged of the URL: host, port and vhost.
    target: Target,
    exchange: String,
    cursor_name: String,
    metrics: BrokerMetrics,
}

/// Why a connection was given up.
enum Broken {
    /// `stop` was cancelled: the sink ends.
    Stopped,
    /// The broker, the connection or the channel failed: reconnect after a backoff.
    Broker(String),
}

impl Sink {
    async fn run(self) {
        // Subscribed before the start is read: nothing appended in between is missed.
        let mut feed = self.state.store.event_feed();
        let Some(mut cursor) = self.start().await else {
            return;
        };
        tracing::info!(broker = %self.target, exchange = %self.exchange, after = cursor,
            "broker sink: publishing events");
        let mut backoff = BACKOFF_MIN;
        // Since when the broker has been failing: one warning per outage, not per attempt.
        let mut outage: Option<Instant> = None;
        loop {
            let broken = match self.connect().await {
                Ok(link) => {
                    let mut health = Health {
                        outage: &mut outage,
                        backoff: &mut backoff,
                        opened: Instant::now(),
                    };
                    let broken = self.pump(&link, &mut cursor, &mut feed, &mut health).await;
                    if matches!(broken, Broken::Stopped) {
                        let closing = link.conn.close(200, "tgfleet stopping".into());
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
                    }
                    broken
                }
                Err(broken) => broken,
            };
            let why = match broken {
                Broken::Stopped => return,
                Broken::Broker(why) => why,
            };
            if outage.is_none() {
                outage = Some(Instant::now());
                tracing::warn!(broker = %self.target, after = cursor, error = %why,
                    "broker sink: RabbitMQ unavailable or refusing events; they wait in the log \
                     and are published again when it takes them");
            } else {
                tracing::debug!(broker = %self.target, error = %why,
                    "broker sink: still failing");
            }
            self.show_lag(cursor).await;
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// The cursor to start after: the file's, or (first start) the log's newest id, so the sink
    /// publishes from now on. `None` when stopped first.
    async fn start(&self) -> Option<i64> {
        let mut warned = false;
        loop {
            match self.first_cursor().await {
                Ok(cursor) => return Some(cursor),
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "broker sink: reading where it stopped");
                        warned = true;
                    }
                }
            }
            tokio::select! {
                () = self.stop.cancelled() => return None,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn first_cursor(&self) -> anyhow::Result<i64> {
        let newest = self.state.store.last_event_id().await?;
        let cursor = match self.state.store.event_cursor(&self.cursor_name).await? {
            Some(c) if c <= newest => {
                // Retention does not wait for the sink: a broker away longer than
                // `events.retention_h` loses what was purged meanwhile. Say so, loudly.
                let oldest = self
                    .state
                    .store
                    .events(EventFilter {
                        after: 0,
                        limit: 1,
                        ..Default::default()
                    })
                    .await?
                    .first()
                    .map(|e| e.id);
                if let Some(oldest) = oldest.filter(|o| *o > c + 1) {
                    tracing::error!(cursor = c, oldest,
                        "broker sink: events after the cursor were deleted by retention before                          they were published; they are lost to the broker");
                }
                return Ok(c);
            }
            Some(c) => {
                // The log is not the one the cursor was kept for (a new database): waiting for
                // ids past it would publish nothing for a long time.
                tracing::warn!(cursor = c, newest, name = %self.cursor_name,
                    "broker sink: the cursor is past the log's newest event; starting from \
                     the newest");
                newest
            }
            None => {
                tracing::info!(after = newest, name = %self.cursor_name,
                    "broker sink: no cursor yet; publishing events after the newest one");
                newest
            }
        };
        // Kept before anything is published: a restart before the first page resumes here
        // instead of skipping what was appended meanwhile.
        self.state
            .store
            .set_event_cursor(&self.cursor_name, cursor)
            .await?;
        Ok(cursor)
    }

    async fn connect(&self) -> Result<Link, Broken> {
        let open = async {
            let props =
                ConnectionProperties::default().with_connection_name("tgfleet broker sink".into());
            let conn = Connection::connect(self.url.expose(), props).await?;
            let channel = conn.create_channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            channel
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>(Link { conn, channel })
        };
        tokio::select! {
            () = self.stop.cancelled() => Err(Broken::Stopped),
            opened = tokio::time::timeout(CONNECT_TIMEOUT, open) => match opened {
                Ok(Ok(link)) => Ok(link),
                Ok(Err(e)) => Err(self.broker_error("connecting", &e)),
                Err(_) => Err(Broken::Broker(format!(
                    "connecting: no answer within {}s", CONNECT_TIMEOUT.as_secs()
                ))),
            },
        }
    }

    /// Publishes page after page on one connection until it fails or `stop`.
    async fn pump(
        &self,
        link: &Link,
        cursor: &mut i64,
        feed: &mut tokio::sync::watch::Receiver<i64>,
        health: &mut Health<'_>,
    ) -> Broken {
        let mut store_down = false;
        loop {
            if self.stop.is_cancelled() {
                return Broken::Stopped;
            }
            // Marked seen before the read: an append after it wakes the wait below.
            feed.borrow_and_update();
            let page = match self
                .state
                .store
                .events(EventFilter {
                    after: *cursor,
                    limit: PAGE,
                    ..Default::default()
                })
                .await
            {
                Ok(page) => {
                    if store_down {
                        tracing::info!("broker sink: reading the log again");
                        store_down = false;
                    }
                    page
                }
                Err(e) => {
                    // The database is away: the connection stays, the read is tried again.
                    if !store_down {
                        tracing::warn!(error = %e, "broker sink: reading the log");
                        store_down = true;
                    }
                    Vec::new()
                }
            };
            if !page.is_empty() {
                let full = page.len() == PAGE as usize;
                let before = *cursor;
                let published = self.publish(link, page, cursor).await;
                if *cursor > before {
                    health.working(self, *cursor);
                }
                if let Err(broken) = published {
                    return broken;
                }
                self.show_lag(*cursor).await;
                if full {
                    continue;
                }
            } else {
                if health.opened.elapsed() >= BACKOFF_MAX {
                    // Up this long with nothing to publish: as good as a confirm.
                    health.working(self, *cursor);
                }
                self.show_lag(*cursor).await;
            }
            if !link.conn.status().connected() || !link.channel.status().connected() {
                return Broken::Broker("the connection to RabbitMQ closed".to_owned());
            }
            tokio::select! {
                () = self.stop.cancelled() => return Broken::Stopped,
                Ok(()) = feed.changed() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Publishes one page and waits for its confirms; the cursor (and its file) moves past the
    /// events acknowledged without a gap before them.
    async fn publish(&self, link: &Link, page: Vec<Event>, cursor: &mut i64) -> Result<(), Broken> {
        // In id order: the confirm of each event published, `None` for one left out.
        let mut pending: Vec<(i64, Option<PublisherConfirm>)> = Vec::with_capacity(page.len());
        let mut failure: Option<Broken> = None;
        let mut stopped = false;
        for event in page {
            let id = event.id;
            let (routing_key, body, properties) = match message(event) {
                Ok(m) => m,
                Err(e) => {
                    // Cannot happen for a JSON value; were it to, one event must not stop the
                    // sink, so it counts as done.
                    tracing::error!(event_id = id, error = %e,
                        "broker sink: encoding an event; left out");
                    pending.push((id, None));
                    continue;
                }
            };
            let publishing = link.channel.basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            );
            // Waits for the socket: a broker that blocks publishers (a memory or disk alarm)
            // holds it here, and neither that nor a shutdown may hang the sink.
            let sent = tokio::select! {
                () = self.stop.cancelled() => {
                    stopped = true;
                    break;
                }
                sent = tokio::time::timeout(CONFIRM_TIMEOUT, publishing) => sent,
            };
            // On a failure this one and the rest of the page go out again on the next
            // connection.
            match sent {
                Ok(Ok(confirm)) => pending.push((id, Some(confirm))),
                Ok(Err(e)) => {
                    failure = Some(self.broker_error("publishing", &e));
                    break;
                }
                Err(_) => {
                    failure = Some(Broken::Broker(format!(
                        "publishing: RabbitMQ took no message within {}s (blocked?)",
                        CONFIRM_TIMEOUT.as_secs()
                    )));
                    break;
                }
            }
        }
        let published = pending.iter().filter(|(_, c)| c.is_some()).count();
        let deadline = tokio::time::sleep(CONFIRM_TIMEOUT);
        tokio::pin!(deadline);
        let mut confirmed = *cursor;
        let mut acked = 0usize;
        let mut grace: Option<Instant> = None;
        for (id, confirm) in pending {
            if stopped {
                break;
            }
            let Some(confirm) = confirm else {
                confirmed = id;
                continue;
            };
            tokio::pin!(confirm);
            let answer = tokio::select! {
                // A confirm already in wins over a stop: what the broker took is not sent again.
                biased;
                answer = &mut confirm => answer.map_err(|e| self.redact(&e.to_string())),
                () = &mut deadline => Err(format!(
                    "no confirm within {}s", CONFIRM_TIMEOUT.as_secs()
                )),
                () = self.stop.cancelled() => {
                    // Stopping: confirms on their way get one short grace for the whole page;
                    // the rest are published again after the restart (at least once).
                    let until = *grace.get_or_insert_with(|| Instant::now() + STOP_GRACE);
                    match tokio::time::timeout_at(until, &mut confirm).await {
                        Ok(answer) => answer.map_err(|e| self.redact(&e.to_string())),
                        Err(_) => {
                            stopped = true;
                            break;
                        }
                    }
                }
            };
            let why = match answer {
                Ok(Confirmation::Ack(_)) => {
                    confirmed = id;
                    acked += 1;
                    continue;
                }
                Ok(Confirmation::Nack(_)) => format!("RabbitMQ refused event {id} (nack)"),
                Ok(Confirmation::NotRequested) => "the channel is not in confirm mode".to_owned(),
                Err(why) => format!("waiting for confirms: {why}"),
            };
            // The cursor cannot pass this event: the rest of the page goes out again with it,
            // whatever their confirms say.
            failure.get_or_insert(Broken::Broker(why));
            break;
        }
        self.metrics.published(acked);
        if stopped {
            failure = Some(Broken::Stopped);
        } else if failure.is_some() {
            self.metrics.failed(published - acked);
        }
        if confirmed > *cursor {
            let kept = self
                .state
                .store
                .set_event_cursor(&self.cursor_name, confirmed)
                .await;
            if let Err(e) = kept {
                // Kept in memory all the same; a restart before the next write repeats a page.
                tracing::warn!(error = %e, name = %self.cursor_name,
                    "broker sink: writing the cursor");
            }
            *cursor = confirmed;
        }
        match failure {
            Some(broken) => Err(broken),
            None => Ok(()),
        }
    }

    /// Sets the lag gauge from the log's newest id.
    async fn show_lag(&self, cursor: i64) {
        let newest = match self.state.store.last_event_id().await {
            Ok(id) => id,
            Err(_) => *self.state.store.event_feed().borrow(),
        };
        self.metrics.lag.set((newest - cursor).max(0));
    }

    fn broker_error(&self, doing: &str, e: &lapin::Error) -> Broken {
        Broken::Broker(self.redact(&format!("{doing}: {e}")))
    }

    /// `text` with the URL's password replaced, should an error ever quote it.
    fn redact(&self, text: &str) -> String {
        match url::Url::parse(self.url.expose()) {
            Ok(u) => match u.password() {
                Some(p) if !p.is_empty() => text.replace(p, "***"),
                _ => text.to_owned(),
            },
            Err(_) => text.to_owned(),
        }
    }
}

/// Whether the broker works again: only a confirmed page, or a connection that stays up, ends an
/// outage and resets the backoff; a broker that accepts connections but refuses every event
/// (nacks) stays one outage, retried ever more slowly.
struct Health<'a> {
    outage: &'a mut Option<Instant>,
    backoff: &'a mut Duration,
    opened: Instant,
}

impl Health<'_> {
    fn working(&mut self, sink: &Sink, cursor: i64) {
        *self.backoff = BACKOFF_MIN;
        if let Some(since) = self.outage.take() {
            tracing::info!(broker = %sink.target, after = cursor,
                down_s = since.elapsed().as_secs(),
                "broker sink: RabbitMQ takes events again");
        }
    }
}

/// One connection and its confirm-mode channel.
struct Link {
    conn: Connection,
    channel: Channel,
}

/// The routing key, body and properties an event is published with.
fn message(event: Event) -> serde_json::Result<(String, Vec<u8>, BasicProperties)> {
    let routing_key = routing_key(&event);
    let id = event.id;
    let kind = event.kind.as_str();
    let timestamp = u64::try_from(event.occurred_at.timestamp()).unwrap_or(0);
    let body = serde_json::to_vec(&crate::events::view(event))?;
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(id.to_string().into())
        .with_type(kind.into())
        .with_timestamp(timestamp)
        .with_app_id("tgfleet".into());
    Ok((routing_key, body, properties))
}

/// `account.<account_id>.<type>`, or `account.none.<type>` for an event of no account.
pub fn routing_key(event: &Event) -> String {
    match event.account_id {
        Some(id) => format!("account.{id}.{}", event.kind.as_str()),
        None => format!("account.none.{}", event.kind.as_str()),
    }
}

/// The host, port and vhost of an AMQP URL: what the logs may show of it.
struct Target(String);

impl Target {
    fn of(raw: &str) -> Self {
        match url::Url::parse(raw) {
            Ok(u) => Self(format!(
                "{}:{}{}",
                u.host_str().unwrap_or("?"),
                u.port().unwrap_or(5672),
                u.path()
            )),
            Err(_) => Self("[unparsable AMQP URL]".to_owned()),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tgfleet_persistence::EventType;

    fn event(account_id: Option<i64>, kind: EventType) -> Event {
        Event {
            id: 42,
            kind,
            account_id,
            owner_id: 1,
            occurred_at: chrono::Utc::now(),
            data: serde_json::json!({"x": 1}),
        }
    }

    #[test]
    fn routing_keys_name_the_account_and_the_type() {
        assert_eq!(
            routing_key(&event(Some(7), EventType::MessageReceived)),
            "account.7.message.received"
        );
        assert_eq!(
            routing_key(&event(None, EventType::Ping)),
            "account.none.ping"
        );
    }

    #[test]
    fn a_message_is_the_event_json_persistent_with_its_id() {
        let (key, body, props) = message(event(Some(7), EventType::MessageReceived)).unwrap();
        assert_eq!(key, "account.7.message.received");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["id"], 42);
        assert_eq!(v["type"], "message.received");
        assert_eq!(v["account_id"], 7);
        assert_eq!(v["data"]["x"], 1);
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(props.message_id().as_ref().map(|s| s.as_str()), Some("42"));
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
    }

    #[test]
    fn logs_show_the_host_never_the_password() {
        let t = Target::of("amqp://tgfleet:hunter2@broker.internal:5673/prod");
        assert_eq!(t.to_string(), "broker.internal:5673/prod");
        assert_eq!(
            Target::of("amqp://guest:guest@127.0.0.1/%2f").to_string(),
            "127.0.0.1:5672/%2f"
        );
        assert!(!Target::of("amqp://u:s3cr3t@[bad")
            .to_string()
            .contains("s3cr3t"));
    }

    #[test]
    fn a_second_sink_on_one_registry_replaces_the_first_ones_series() {
        let registry = Registry::new();
        let first = BrokerMetrics::register(&registry).unwrap();
        first.published(5);
        let second = BrokerMetrics::register(&registry).unwrap();
        second.published(2);
        let families = registry.gather();
        let events: Vec<_> = families
            .iter()
            .filter(|f| f.name() == "tgfleet_broker_events_total")
            .collect();
        assert_eq!(events.len(), 1);
        let published = events[0]
            .get_metric()
            .iter()
            .find(|m| m.get_label().iter().any(|l| l.value() == "published"))
            .unwrap();
        assert_eq!(published.get_counter().value(), 2.0);
        assert!(families
            .iter()
            .any(|f| f.name() == "tgfleet_broker_lag_events"));
    }
}
