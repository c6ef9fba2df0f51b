//! Issue 18 item 7: the broker sink against the real RabbitMQ at 127.0.0.1:5672 (guest/guest).
//! Events reach a queue bound to the sink's exchange with their routing key, body and
//! properties, in id order; none is lost while RabbitMQ is stopped and started again, nor while
//! tgfleet itself is stopped. Without RabbitMQ these tests skip with a notice, unless
//! `TGFLEET_REQUIRE_SERVICES=1`; the broker-restart test also needs `rabbitmqctl` on this machine.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{json_of, TestApp};
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::{json, Value};
use tgfleet_persistence::{EventType, NewEvent};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The tests share one broker and one of them stops it: they take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `None` (after a notice) when RabbitMQ does not answer; a panic instead when services are
/// required.
async fn broker() -> Option<()> {
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(BROKER, ConnectionProperties::default()),
    )
    .await;
    match connected {
        Ok(Ok(conn)) => {
            let _ = conn.close(200, "probe".into()).await;
            Some(())
        }
        Ok(Err(e)) => tgfleet_persistence::testing::skip("RabbitMQ at 127.0.0.1:5672", &e),
        Err(_) => tgfleet_persistence::testing::skip(
            "RabbitMQ at 127.0.0.1:5672",
            &"no answer within 5 s",
        ),
    }
}

/// Exchange and queue names no other test (or earlier run) uses.
fn names(test: &str) -> (String, String) {
    let nonce = format!(
        "{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    (
        format!("tgfleet.test.{test}.{nonce}"),
        format!("tgfleet.test.{test}.{nonce}.q"),
    )
}

/// One message the test's consumer received.
#[derive(Clone, Debug)]
struct Got {
    routing_key: String,
    body: Value,
    message_id: Option<String>,
    delivery_mode: Option<u8>,
    content_type: Option<String>,
}

impl Got {
    fn id(&self) -> i64 {
        self.message_id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .expect("message_id is the event id")
    }
}

/// A consumer on a durable queue bound to `exchange` with `account.#`, reconnecting whenever its
/// connection drops, that records everything it gets (acking after recording: at least once).
struct Collector {
    exchange: String,
    queue: String,
    got: Arc<Mutex<Vec<Got>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    /// Returns once the queue is bound, so nothing published afterwards is unroutable.
    async fn start(exchange: &str, queue: &str) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn({
            let (exchange, queue, got, stop) = (
                exchange.to_owned(),
                queue.to_owned(),
                got.clone(),
                stop.clone(),
            );
            async move {
                let mut ready = Some(ready_tx);
                while !stop.is_cancelled() {
                    if let Err(e) = consume(&exchange, &queue, &got, &mut ready, &stop).await {
                        eprintln!("test consumer: {e}; reconnecting");
                    }
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .expect("the test queue is bound within 30 s")
            .expect("the consumer task runs");
        Self {
            exchange: exchange.to_owned(),
            queue: queue.to_owned(),
            got,
            stop,
            task,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until a message of every id in `ids` arrived; returns all received so far.
    async fn wait_for(&self, ids: &[i64], within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.got();
            let seen: HashSet<i64> = got.iter().map(Got::id).collect();
            let missing: Vec<i64> = ids.iter().copied().filter(|i| !seen.contains(i)).collect();
            if missing.is_empty() {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "events {missing:?} never reached the queue; got ids {:?}",
                got.iter().map(Got::id).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops consuming and deletes the queue and the exchange.
    async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Ok(conn) = Connection::connect(BROKER, ConnectionProperties::default()).await {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
                let _ = ch
                    .exchange_delete(
                        self.exchange.as_str().into(),
                        ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
            let _ = conn.close(200, "done".into()).await;
        }
    }
}

/// One connection's worth of consuming; returns when it fails or `stop`.
async fn consume(
    exchange: &str,
    queue: &str,
    got: &Mutex<Vec<Got>>,
    ready: &mut Option<tokio::sync::oneshot::Sender<()>>,
    stop: &CancellationToken,
) -> lapin::Result<()> {
    let conn = Connection::connect(BROKER, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    // The sink declares the same exchange: the options must match.
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    // Durable, so what was published survives the broker's restart; gone 10 minutes after its
    // last use should a failed test leave it behind.
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "account.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.basic_qos(500, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    if let Some(tx) = ready.take() {
        let _ = tx.send(());
    }
    loop {
        let delivery = tokio::select! {
            () = stop.cancelled() => {
                let _ = conn.close(200, "done".into()).await;
                return Ok(());
            }
            d = consumer.next() => d,
        };
        let delivery = match delivery {
            Some(d) => d?,
            None => return Ok(()),
        };
        let p = &delivery.properties;
        got.lock().unwrap().push(Got {
            routing_key: delivery.routing_key.to_string(),
            body: serde_json::from_slice(&delivery.data).expect("the body is JSON"),
            message_id: p.message_id().as_ref().map(|s| s.to_string()),
            delivery_mode: *p.delivery_mode(),
            content_type: p.content_type().as_ref().map(|s| s.to_string()),
        });
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

/// A tgfleet whose broker sink publishes to `exchange`; `data_dir` when given (for a restart).
async fn app(exchange: &str, data_dir: Option<&std::path::Path>) -> TestApp {
    warnings();
    let exchange = exchange.to_owned();
    let data_dir = data_dir.map(|d| d.to_owned());
    TestApp::spawn_with(move |s| {
        s.sandbox = true;
        s.webhooks.allow_private_targets = true;
        s.events.amqp_url = Some(tgfleet_config::Secret::new(BROKER));
        s.events.amqp_exchange = exchange;
        if let Some(dir) = data_dir {
            s.data_dir = dir;
        }
    })
    .await
}

/// `n` events appended straight to the log, alternating accounts 7 and 8 and none.
async fn append(store: &dyn tgfleet_persistence::Store, owner: i64, n: usize) -> Vec<i64> {
    let events = (0..n)
        .map(|i| NewEvent {
            kind: if i % 3 == 2 {
                EventType::PostPublished
            } else {
                EventType::MessageReceived
            },
            account_id: [Some(7), Some(8), None][i % 3],
            owner_id: owner,
            occurred_at: chrono::Utc::now(),
            data: json!({ "n": i }),
            dedupe_key: None,
        })
        .collect();
    store.append_events(events).await.expect("events appended")
}

/// The ids of `got` in the order they first arrived.
fn first_arrivals(got: &[Got]) -> Vec<i64> {
    let mut seen = HashSet::new();
    got.iter()
        .map(Got::id)
        .filter(|id| seen.insert(*id))
        .collect()
}

fn assert_increasing(ids: &[i64]) {
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "first arrivals out of id order: {ids:?}"
    );
}

async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(format!("{}/metrics", app.metrics))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until `/metrics` holds `line`.
async fn metric_line(app: &TestApp, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics_text(app).await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(Instant::now() < deadline, "no `{line}` in:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn events_arrive_with_their_routing_key_body_and_properties_in_id_order() {
    let _turn = SERIAL.lock().await;
    if broker().await.is_none() {
        return;
    }
    let (exchange, queue) = names("order");
    let collector = Collector::start(&exchange, &queue).await;
    let app = app(&exchange, None).await;
    let (user, token, _) = app.user("broker@example.com").await;

    // Pings through the API (events of no account), then events of accounts 7 and 8.
    let hook = json_of(
        app.post(
            "/api/v1/webhooks",
            Some(&token),
            json!({"url": "http://127.0.0.1:9/broker-test", "events": ["*"]}),
        )
        .await,
        201,
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let ping = json_of(
            app.post(
                &format!("/api/v1/webhooks/{hook_id}/test"),
                Some(&token),
                json!({}),
            )
            .await,
            202,
        )
        .await;
        ids.push(ping["event_id"].as_i64().unwrap());
    }
    ids.extend(append(app.state.store.as_ref(), user, 9).await);

    let got = collector.wait_for(&ids, Duration::from_secs(30)).await;
    // Nothing went wrong, so nothing was repeated.
    assert_eq!(first_arrivals(&got), ids, "every event once, in id order");
    assert_eq!(got.len(), ids.len(), "no repeats without a failure");

    // Each body is exactly the event JSON the log (and SSE, and webhooks) shows.
    let log = json_of(
        app.get("/api/v1/events/log?after=0&limit=1000", Some(&token))
            .await,
        200,
    )
    .await;
    let shown: Vec<Value> = log["events"].as_array().unwrap().clone();
    assert_eq!(shown.len(), ids.len());
    for (g, e) in got.iter().zip(&shown) {
        assert_eq!(&g.body, e);
        let account = match e["account_id"].as_i64() {
            Some(id) => id.to_string(),
            None => "none".to_owned(),
        };
        assert_eq!(
            g.routing_key,
            format!("account.{account}.{}", e["type"].as_str().unwrap())
        );
        assert_eq!(g.message_id.as_deref(), Some(e["id"].to_string().as_str()));
        assert_eq!(g.delivery_mode, Some(2), "persistent");
        assert_eq!(g.content_type.as_deref(), Some("application/json"));
    }
    assert!(got.iter().any(|g| g.routing_key == "account.none.ping"));
    assert!(got
        .iter()
        .any(|g| g.routing_key == "account.7.message.received"));
    assert!(got
        .iter()
        .any(|g| g.routing_key == "account.none.post.published"));

    metric_line(
        &app,
        &format!(
            "tgfleet_broker_events_total{{outcome=\"published\"}} {}",
            ids.len()
        ),
    )
    .await;
    metric_line(&app, "tgfleet_broker_lag_events 0").await;
    assert_eq!(cursor(&app, &exchange).await, ids.last().copied());

    app.shutdown().await;
    collector.finish().await;
}

/// Starts RabbitMQ's application again when dropped, so a failing test never leaves the
/// machine's broker stopped.
struct StartAgain;

impl Drop for StartAgain {
    fn drop(&mut self) {
        let _ = rabbitmqctl("start_app");
    }
}

fn rabbitmqctl(command: &str) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("rabbitmqctl")
        .arg(command)
        .stdout(std::process::Stdio::null())
        .status()
}

async fn wait_for_port(up: bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answers = tokio::net::TcpStream::connect("127.0.0.1:5672")
            .await
            .is_ok();
        if answers == up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "RabbitMQ's port did not go {}",
            if up { "up" } else { "down" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Warnings and errors logged by any test of this binary (those with a sink take turns).
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<(String, String)>>>);

/// The process's one subscriber, installed before any sink logs; a scoped one per test would
/// miss events whose callsites another thread registered first.
fn warnings() -> &'static Warnings {
    static W: std::sync::OnceLock<Warnings> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        let w = Warnings::default();
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(w.clone()))
            .expect("no other global subscriber in this test binary");
        w
    })
}

impl Warnings {
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    fn of(&self, target: &str) -> Vec<String> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(t, _)| t.starts_with(target))
            .map(|(_, m)| m.clone())
            .collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        Some(tracing_subscriber::filter::LevelFilter::WARN)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!("{}={value:?} ", field.name()));
            }
        }
        let meta = event.metadata();
        if *meta.level() <= tracing::Level::WARN {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0
                .lock()
                .unwrap()
                .push((meta.target().to_owned(), text.0));
        }
    }
}

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let _turn = SERIAL.lock().await;
    if broker().await.is_none() {
        return;
    }
    let warnings = warnings();
    if !rabbitmqctl("status").is_ok_and(|s| s.success()) {
        tgfleet_persistence::testing::skip::<()>(
            "rabbitmqctl (to stop and start RabbitMQ)",
            &"`rabbitmqctl status` did not succeed",
        );
        return;
    }
    let (exchange, queue) = names("restart");
    let collector = Collector::start(&exchange, &queue).await;
    let app = app(&exchange, None).await;
    let (user, _token, _) = app.user("restart@example.com").await;
    let store = app.state.store.clone();

    let mut ids = append(store.as_ref(), user, 10).await;
    collector.wait_for(&ids, Duration::from_secs(30)).await;

    // RabbitMQ goes away; events keep coming and wait in the log.
    warnings.clear();
    let guard = StartAgain;
    assert!(rabbitmqctl("stop_app").unwrap().success(), "stop_app");
    wait_for_port(false).await;
    for _ in 0..5 {
        ids.extend(append(store.as_ref(), user, 20).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let text = metrics_text(&app).await;
    let lag: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tgfleet_broker_lag_events "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(lag > 0, "the lag shows the events waiting:\n{text}");

    assert!(rabbitmqctl("start_app").unwrap().success(), "start_app");
    drop(guard);
    wait_for_port(true).await;
    // More while the sink catches up.
    ids.extend(append(store.as_ref(), user, 10).await);

    let got = collector.wait_for(&ids, Duration::from_secs(90)).await;
    let first = first_arrivals(&got);
    assert_increasing(&first);
    assert_eq!(
        first, ids,
        "every event arrived (repeats allowed), in id order"
    );
    metric_line(&app, "tgfleet_broker_lag_events 0").await;
    let failed = metrics_text(&app).await;
    assert!(
        failed.contains("tgfleet_broker_events_total{outcome=\"published\"}"),
        "{failed}"
    );

    // One outage, one warning, however many attempts and events it spanned; no password.
    let sink = warnings.of("tgfleet_api::events::amqp");
    assert_eq!(sink.len(), 1, "one warning per outage: {sink:#?}");
    assert!(sink[0].contains("RabbitMQ unavailable"), "{sink:?}");
    assert!(!sink[0].contains("guest:guest"), "{sink:?}");
    let everything = warnings.of("");
    assert!(
        everything.iter().all(|w| !w.contains("guest:guest")),
        "{everything:#?}"
    );
    eprintln!("warnings logged during the outage: {everything:#?}");

    app.shutdown().await;
    collector.finish().await;
}

#[tokio::test]
async fn a_tgfleet_restart_resumes_from_the_cursor() {
    let _turn = SERIAL.lock().await;
    if broker().await.is_none() {
        return;
    }
    let (exchange, queue) = names("resume");
    let collector = Collector::start(&exchange, &queue).await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    let first = app(&exchange, Some(&data_dir)).await;
    let (user, _token, _) = first.user("resume@example.com").await;
    let before = append(first.state.store.as_ref(), user, 15).await;
    collector.wait_for(&before, Duration::from_secs(30)).await;
    // Delivered to a consumer is not yet confirmed to the publisher: wait for the confirms.
    metric_line(&first, "tgfleet_broker_lag_events 0").await;
    let store = first.state.store.clone();
    first.shutdown().await;

    // tgfleet is down: what happens now is only in the log.
    let during = append(store.as_ref(), user, 25).await;
    assert_eq!(
        store
            .event_cursor(&tgfleet_api::events::amqp::cursor_name(&exchange))
            .await
            .unwrap(),
        before.last().copied(),
        "the cursor is where the confirms got to"
    );
    drop(store);

    let second = app(&exchange, Some(&data_dir)).await;
    let after = append(second.state.store.as_ref(), user, 5).await;
    let all: Vec<i64> = before
        .iter()
        .chain(&during)
        .chain(&after)
        .copied()
        .collect();
    let got = collector.wait_for(&all, Duration::from_secs(30)).await;
    let firsts = first_arrivals(&got);
    assert_eq!(
        firsts, all,
        "nothing skipped across the restart, in id order"
    );
    // A clean stop after every confirm: the second run starts past what the first published.
    assert_eq!(got.len(), all.len(), "nothing published twice: {firsts:?}");

    second.shutdown().await;
    collector.finish().await;
}

/// The `outcome` series of `tgfleet_broker_events_total` in `/metrics`.
async fn broker_events(app: &TestApp, outcome: &str) -> u64 {
    let prefix = format!("tgfleet_broker_events_total{{outcome=\"{outcome}\"}} ");
    metrics_text(app)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_nacked_event_is_published_again() {
    let _turn = SERIAL.lock().await;
    if broker().await.is_none() {
        return;
    }
    let (exchange, queue) = names("nack");
    let collector = Collector::start(&exchange, &queue).await;
    // A second queue on the exchange that holds two messages and refuses more: RabbitMQ nacks
    // every publish routed to it once it is full.
    let full = format!("{queue}.full");
    let conn = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(2));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    args.insert("x-expires".into(), AMQPValue::LongUInt(600_000));
    ch.queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    ch.queue_bind(
        full.as_str().into(),
        exchange.as_str().into(),
        "account.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    let app = app(&exchange, None).await;
    warnings().clear();
    let (user, _token, _) = app.user("nack@example.com").await;
    let ids = append(app.state.store.as_ref(), user, 6).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while broker_events(&app, "failed").await == 0 {
        assert!(Instant::now() < deadline, "no event was ever nacked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And refused again on the next try (a new connection after the backoff).
    let once = broker_events(&app, "failed").await;
    while broker_events(&app, "failed").await <= once {
        assert!(
            Instant::now() < deadline,
            "the refused events were not tried again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Refused events do not move the cursor past them.
    let kept = cursor(&app, &exchange).await.unwrap();
    assert!(
        kept < *ids.last().unwrap(),
        "the cursor stays before the nacked events: {kept}"
    );

    // Room again: the sink's next try gets every event through.
    ch.queue_delete(full.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
    let got = collector.wait_for(&ids, Duration::from_secs(60)).await;
    assert_eq!(first_arrivals(&got), ids);
    metric_line(&app, "tgfleet_broker_lag_events 0").await;
    // However many times the refusal was retried, it was one outage.
    let sink = warnings().of("tgfleet_api::events::amqp");
    assert_eq!(sink.len(), 1, "one warning for the refusals: {sink:#?}");
    assert!(sink[0].contains("nack"), "{sink:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let kept = cursor(&app, &exchange).await;
        if kept == ids.last().copied() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cursor never moved: {kept:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    app.shutdown().await;
    collector.finish().await;
}

#[tokio::test]
async fn a_sink_whose_broker_is_away_keeps_the_events_and_stops_promptly() {
    let _turn = SERIAL.lock().await;
    warnings();
    // Nothing listens on port 1: every connection is refused, no RabbitMQ needed.
    let app = TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.events.amqp_url = Some(tgfleet_config::Secret::new(
            "amqp://guest:guest@127.0.0.1:1/%2f",
        ));
    })
    .await;
    let (user, _token, _) = app.user("away@example.com").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while cursor(&app, "tgfleet.events").await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the start position is kept at once"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = append(app.state.store.as_ref(), user, 4).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics_text(&app).await;
        if text.lines().any(|l| l == "tgfleet_broker_lag_events 4") {
            break;
        }
        assert!(Instant::now() < deadline, "the lag never showed 4:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cursor(&app, "tgfleet.events").await,
        Some(ids[0] - 1),
        "nothing was handed over"
    );
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("the server stops while the sink backs off");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn without_a_broker_url_there_is_no_sink() {
    let app = TestApp::spawn_with(|s| s.sandbox = true).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cursor(&app, "tgfleet.events").await, None);
    assert!(!metrics_text(&app).await.contains("tgfleet_broker_"));
    app.shutdown().await;
}

/// Where the broker sink publishing to `exchange` got to, as the database keeps it.
async fn cursor(app: &TestApp, exchange: &str) -> Option<i64> {
    app.state
        .store
        .event_cursor(&tgfleet_api::events::amqp::cursor_name(exchange))
        .await
        .unwrap()
}
