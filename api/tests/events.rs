//! Issue 18: the event log over HTTP — what happens to an account reaches a real HTTP receiver,
//! signed per the Standard Webhooks specification, and an SSE client, in order, resumable; a
//! receiver that fails gets everything afterwards; a user never sees another user's events;
//! webhooks never call into tgfleet's own network unless allowed.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{error_code, json_of, logged_in_account, sandbox_bot, TestApp};
use futures::StreamExt as _;
use hmac::Mac as _;
use reqwest::Method;
use serde_json::{json, Value};

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A real HTTP server on loopback that records every request and answers `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let (g, s) = (Arc::clone(&got), Arc::clone(&status));
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                    async move {
                        let code = s.load(Ordering::SeqCst);
                        let headers = headers
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            })
                            .collect();
                        g.lock().unwrap().push(Received {
                            headers,
                            body: body.to_vec(),
                            status: code,
                        });
                        axum::http::StatusCode::from_u16(code).unwrap()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            got,
            status,
            task,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds for what was received (the bound only keeps a hang finite).
    async fn wait(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            assert!(Instant::now() < deadline, "{what}: got {got:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks `webhook-signature` the way a receiver's Standard Webhooks library does, written
/// here from the specification rather than with tgfleet's signer: one of the space-separated
/// `v1,` signatures is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
fn verifies(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            r.header("webhook-id"),
            r.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// The value of one sample (`name{labels}` exactly as exposed) in a metrics scrape.
fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Scrapes `/metrics` until `done` holds (the backlog gauges are read every few seconds).
async fn scrape_until(app: &TestApp, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.metrics))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "the metrics never got there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn app_with(configure: impl FnOnce(&mut tgfleet_config::Settings)) -> TestApp {
    TestApp::spawn_with(|s| {
        s.sandbox = true;
        s.webhooks.allow_private_targets = true;
        s.webhooks.retry_initial_ms = 100;
        s.webhooks.retry_max_ms = 300;
        configure(s);
    })
    .await
}

/// Sends the endpoint a test ping; returns the ping event's id.
async fn ping(app: &TestApp, token: &str, webhook_id: &str) -> i64 {
    json_of(
        app.post(
            &format!("/api/v1/webhooks/{webhook_id}/test"),
            Some(token),
            json!({}),
        )
        .await,
        202,
    )
    .await["event_id"]
        .as_i64()
        .unwrap()
}

async fn webhook(app: &TestApp, token: &str, body: Value) -> Value {
    json_of(app.post("/api/v1/webhooks", Some(token), body).await, 201).await
}

/// Reads SSE frames (`id`, `event`, `data`) from a streaming response until `n` events came.
async fn sse_events(resp: reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("the stream went quiet")
            .expect("the stream ended")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>().unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                }
            }
            if let (Some(id), Some(event), Some(data)) = (id, event, data) {
                out.push((id, event, data));
            }
        }
    }
    out
}

async fn open_stream(
    app: &TestApp,
    token: &str,
    query: &str,
    last: Option<i64>,
) -> reqwest::Response {
    let mut req = app
        .client
        .get(format!("{}/api/v1/events{query}", app.base))
        .bearer_auth(token);
    if let Some(id) = last {
        req = req.header("last-event-id", id.to_string());
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_login_reaches_a_signed_webhook_and_a_resumable_sse_stream_in_order() {
    let app = app_with(|_| {}).await;
    let (_, token, _) = app.user("events@test.dev").await;
    let receiver = Receiver::start().await;
    let hook = webhook(
        &app,
        &token,
        json!({"url": receiver.url, "events": ["account.state_changed"], "description": "frontend"}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{hook}");
    // The secret is shown once: not in the endpoint's own view afterwards.
    let shown = json_of(
        app.get(
            &format!("/api/v1/webhooks/{}", hook["id"].as_str().unwrap()),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert!(shown.get("secret").is_none(), "{shown}");
    assert_eq!(shown["events"], json!(["account.state_changed"]));

    let stream = open_stream(&app, &token, "?types=account.state_changed", None).await;
    let account = logged_in_account(&app, &token, "+15550001801").await;
    let live = sse_events(stream, 2).await;

    let got = receiver.wait("two state changes", |g| g.len() >= 2).await;
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    assert!(got.iter().all(|r| verifies(&secret, r)), "{got:?}");
    for (r, b) in got.iter().zip(&bodies) {
        assert_eq!(r.header("webhook-id"), b["id"].to_string());
        assert_eq!(r.header("content-type"), "application/json");
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!((ts - chrono::Utc::now().timestamp()).abs() < 120);
    }
    let moves: Vec<(String, String)> = bodies
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "account.state_changed");
            assert_eq!(b["account_id"], account);
            (
                b["data"]["from"].as_str().unwrap().into(),
                b["data"]["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        moves[..2],
        [
            ("new".to_owned(), "awaiting_code".to_owned()),
            ("awaiting_code".to_owned(), "active".to_owned())
        ]
    );
    // The stream carried the same events, as the log keeps them.
    assert_eq!(
        live.iter().map(|(id, _, _)| *id).collect::<Vec<_>>(),
        bodies[..2]
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect::<Vec<_>>()
    );
    assert!(
        live.iter()
            .all(|(_, event, data)| event == "account.state_changed"
                && data["data"]["to"].is_string())
    );
    assert_eq!(live[1].2, bodies[1]);

    // Resuming after the first event gives the second first.
    let resumed = sse_events(open_stream(&app, &token, "", Some(live[0].0)).await, 1).await;
    assert_eq!(resumed[0].0, live[1].0);
    // The JSON page has the same.
    let page = json_of(
        app.get(
            &format!(
                "/api/v1/events/log?after={}&types=account.state_changed",
                live[0].0 - 1
            ),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let ids: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids[..2], [live[0].0, live[1].0]);
    assert_eq!(page["next_after"], *ids.last().unwrap());

    // Bad input is a clear error.
    assert_eq!(
        error_code(
            app.get("/api/v1/events/log?types=message.nope", Some(&token))
                .await,
            422
        )
        .await,
        "VALIDATION_FAILED"
    );
    let r = app
        .client
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&token)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r, 422).await, "VALIDATION_FAILED");
    assert_eq!(
        error_code(app.get("/api/v1/events", None).await, 401).await,
        "UNAUTHORIZED"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_receiver_that_fails_gets_everything_afterwards_in_order_and_once_it_answers() {
    let app = app_with(|_| {}).await;
    let (_, token, _) = app.user("retry@test.dev").await;
    let receiver = Receiver::start().await;
    receiver.status.store(500, Ordering::SeqCst);
    let hook = webhook(&app, &token, json!({"url": receiver.url, "events": ["*"]})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let mut pings = Vec::new();
    for _ in 0..5 {
        pings.push(ping(&app, &token, &id).await);
    }
    // Failing, the first event is retried and the others wait behind it.
    let failing = receiver
        .wait("three failed attempts", |g| g.len() >= 3)
        .await;
    assert!(
        failing.iter().all(|r| r.json()["id"] == pings[0]),
        "{failing:?}"
    );
    let log = json_of(
        app.get(
            &format!("/api/v1/webhooks/{id}/deliveries?state=retrying"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    let first = &log["deliveries"].as_array().unwrap()[0];
    assert_eq!(first["status"], 500);
    assert_eq!(first["event_id"], pings[0]);
    assert!(first["next_attempt_at"].is_string(), "{log}");
    let view = json_of(
        app.get(&format!("/api/v1/webhooks/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert!(view["failing_since"].is_string(), "{view}");

    // The backlog and the age of the oldest undelivered event show while the receiver fails.
    let backlog = format!("tgfleet_webhook_backlog{{webhook_id=\"{id}\"}}");
    let oldest = format!("tgfleet_webhook_oldest_undelivered_seconds{{webhook_id=\"{id}\"}}");
    let scraped = scrape_until(&app, |m| metric(m, &backlog) == Some(5.0)).await;
    assert!(metric(&scraped, &oldest).is_some(), "{scraped}");

    receiver.status.store(200, Ordering::SeqCst);
    let got = receiver
        .wait("all five, answered", |g| {
            g.iter().filter(|r| r.status == 200).count() >= 5
        })
        .await;
    let answered: Vec<i64> = got
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(answered, pings, "in order, each once");
    // A repeat carries the same webhook-id (receivers dedupe by it).
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == r.json()["id"].as_i64().unwrap().to_string()));
    assert!(got.iter().all(|r| r.json()["type"] == "ping"));
    let view = json_of(
        app.get(&format!("/api/v1/webhooks/{id}"), Some(&token))
            .await,
        200,
    )
    .await;
    assert!(view["failing_since"].is_null(), "{view}");
    let m = scrape_until(&app, |m| {
        metric(m, &backlog) == Some(0.0) && metric(m, &oldest) == Some(0.0)
    })
    .await;
    assert_eq!(
        metric(&m, "tgfleet_events_total{type=\"ping\"}"),
        Some(5.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "tgfleet_webhook_deliveries_total{outcome=\"succeeded\"}"
        ),
        Some(5.0)
    );
    let retried = metric(&m, "tgfleet_webhook_deliveries_total{outcome=\"retrying\"}").unwrap();
    assert!(retried >= 3.0, "{m}");
    assert!(m.contains("tgfleet_webhook_delivery_seconds_bucket{outcome=\"succeeded\""));
    app.shutdown().await;
}

#[tokio::test]
async fn a_user_never_receives_another_users_events() {
    let app = app_with(|_| {}).await;
    let (_, alice, _) = app.user("alice@test.dev").await;
    let (_, bob, _) = app.user("bob@test.dev").await;
    let (alice_rx, bob_rx) = (Receiver::start().await, Receiver::start().await);
    webhook(&app, &alice, json!({"url": alice_rx.url, "events": ["*"]})).await;
    let bob_hook = webhook(&app, &bob, json!({"url": bob_rx.url, "events": ["*"]})).await;
    let bob_stream = open_stream(&app, &bob, "", None).await;
    let account = logged_in_account(&app, &alice, "+15550001802").await;
    alice_rx.wait("alice's login", |g| g.len() >= 2).await;
    // Bob's own ping follows Alice's events in the log: once it arrives, anything of Alice's
    // that would have reached Bob would have come first.
    let bob_id = bob_hook["id"].as_str().unwrap();
    let sent = ping(&app, &bob, bob_id).await;
    let got = bob_rx.wait("bob's ping", |g| !g.is_empty()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["id"], sent);
    let live = sse_events(bob_stream, 1).await;
    assert_eq!(live[0].1, "ping");
    let page = json_of(app.get("/api/v1/events/log", Some(&bob)).await, 200).await;
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["account_id"] != account && e["type"] == "ping"),
        "{page}"
    );
    // Naming Alice's account is "not found", as for any of her things.
    assert_eq!(
        error_code(
            app.get(
                &format!("/api/v1/events/log?account_id={account}"),
                Some(&bob)
            )
            .await,
            404
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        error_code(
            app.post(
                "/api/v1/webhooks",
                Some(&bob),
                json!({"url": bob_rx.url, "events": ["*"], "account_ids": [account]})
            )
            .await,
            404
        )
        .await,
        "NOT_FOUND"
    );
    let list = json_of(app.get("/api/v1/webhooks", Some(&alice)).await, 200).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(
        error_code(
            app.get(&format!("/api/v1/webhooks/{bob_id}"), Some(&alice))
                .await,
            404
        )
        .await,
        "NOT_FOUND"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn private_targets_are_refused_when_created_and_on_the_address_connected_to() {
    let app = TestApp::spawn_with(|s| {
        s.webhooks.retry_initial_ms = 100;
        s.webhooks.retry_max_ms = 200;
    })
    .await;
    let (_, token, _) = app.user("ssrf@test.dev").await;
    let receiver = Receiver::start().await;
    for url in [
        receiver.url.clone(),
        "http://localhost:9464/metrics".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::1]:8080/".into(),
        "http://10.0.0.7/".into(),
    ] {
        let r = app
            .post(
                "/api/v1/webhooks",
                Some(&token),
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(error_code(r, 422).await, "WEBHOOK_TARGET_INVALID", "{url}");
    }
    // A name is only resolved when connecting: this machine's own name resolves to loopback,
    // which the resolver refuses, so nothing reaches the receiver behind it.
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .unwrap()
        .collect();
    assert!(
        !resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback() || match a.ip() {
            std::net::IpAddr::V4(v4) => v4.is_private(),
            std::net::IpAddr::V6(_) => false,
        }),
        "this test needs the machine's name ({host}) to resolve to loopback or a private address: {resolved:?}"
    );
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let hook = webhook(
        &app,
        &token,
        json!({"url": format!("http://{host}:{port}/hook"), "events": ["*"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    ping(&app, &token, id).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let log = json_of(
            app.get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&token))
                .await,
            200,
        )
        .await;
        if let Some(first) = log["deliveries"].as_array().unwrap().last().cloned() {
            break first;
        }
        assert!(Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(first["status"].is_null(), "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("TARGET_FORBIDDEN"),
        "{first}"
    );
    assert!(receiver.got().is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_and_a_dead_endpoint_is_disabled_with_an_event() {
    let app = app_with(|s| {
        s.webhooks.give_up_after_s = 1;
        s.webhooks.disable_after_s = 2;
    })
    .await;
    let (_, token, _) = app.user("rotate@test.dev").await;
    let receiver = Receiver::start().await;
    let hook = webhook(&app, &token, json!({"url": receiver.url, "events": ["*"]})).await;
    let id = hook["id"].as_str().unwrap().to_owned();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let rotated = json_of(
        app.post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            Some(&token),
            json!({}),
        )
        .await,
        200,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    ping(&app, &token, &id).await;
    let got = receiver.wait("the ping", |g| !g.is_empty()).await;
    assert!(
        verifies(&new, &got[0]) && verifies(&old, &got[0]),
        "{got:?}"
    );
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);

    // Failing beyond give_up_after_s dead-letters; failing for disable_after_s disables.
    receiver.status.store(503, Ordering::SeqCst);
    for _ in 0..3 {
        ping(&app, &token, &id).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = json_of(
            app.get(&format!("/api/v1/webhooks/{id}"), Some(&token))
                .await,
            200,
        )
        .await;
        if view["enabled"] == false {
            assert!(
                view["disabled_reason"].as_str().unwrap().contains("failed"),
                "{view}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never disabled: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = json_of(
        app.get(
            &format!("/api/v1/webhooks/{id}/deliveries?state=dead"),
            Some(&token),
        )
        .await,
        200,
    )
    .await;
    assert!(!dead["deliveries"].as_array().unwrap().is_empty(), "{dead}");
    let page = json_of(
        app.get("/api/v1/events/log?types=webhook.disabled", Some(&token))
            .await,
        200,
    )
    .await;
    let disabled = &page["events"].as_array().unwrap()[0];
    assert_eq!(disabled["data"]["webhook_id"], id.as_str());

    // Re-enabled and replayed from the first ping, the receiver gets every ping again, in order.
    receiver.status.store(200, Ordering::SeqCst);
    let before = receiver.got().len();
    let first_ping = got[0].json()["id"].as_i64().unwrap();
    json_of(
        app.request(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&token),
            Some(json!({"enabled": true})),
        )
        .await,
        200,
    )
    .await;
    json_of(
        app.post(
            &format!("/api/v1/webhooks/{id}/replay"),
            Some(&token),
            json!({"since_event_id": first_ping}),
        )
        .await,
        202,
    )
    .await;
    let all = receiver
        .wait("the replay", |g| {
            g[before..].iter().filter(|r| r.status == 200).count() >= 4
        })
        .await;
    let replayed: Vec<i64> = all[before..]
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.json()["id"].as_i64().unwrap())
        .collect();
    assert_eq!(replayed[0], first_ping);
    assert!(replayed.windows(2).all(|w| w[0] < w[1]), "{replayed:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_message_to_a_receiving_bot_reaches_its_webhook_and_stream_once() {
    let app = app_with(|_| {}).await;
    let (_, token, _) = app.user("bot-events@test.dev").await;
    let t = Some(token.as_str());
    let sender = logged_in_account(&app, &token, "+15550001803").await;
    let bot_token = "818181:AAreceivingbotreceivingbotreceiving0";
    let bot = sandbox_bot(&app, &token, bot_token, "receiving_bot").await;
    let receiver = Receiver::start().await;
    let hook = webhook(
        &app,
        &token,
        json!({"url": receiver.url, "events": ["message.received"], "account_ids": [bot]}),
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let stream = open_stream(
        &app,
        &token,
        &format!("?types=message.received&account_id={bot}"),
        None,
    )
    .await;
    // Wait until the bot is logged in (it receives from then on, and catches up on the rest).
    wait_active(&app, &token, bot).await;
    for text in ["<b>hi</b> bot", "second"] {
        json_of(
            app.post(
                &format!("/api/v1/telegram/accounts/{sender}/messages"),
                t,
                json!({"peer": "@receiving_bot", "text": text, "parse_mode": "html"}),
            )
            .await,
            201,
        )
        .await;
    }
    let got = receiver.wait("two messages", |g| g.len() >= 2).await;
    // The bot's name was resolved once: the second send used the remembered peer.
    let resolves = format!(
        "tgfleet_rpc_total{{account_id=\"{sender}\",method=\"contacts.resolveUsername\",outcome=\"ok\"}}"
    );
    let metrics = scrape_until(&app, |m| m.contains(&resolves)).await;
    assert_eq!(metric(&metrics, &resolves), Some(1.0), "{metrics}");
    assert!(got.iter().all(|r| verifies(&secret, r)));
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    assert!(bodies
        .iter()
        .all(|b| b["type"] == "message.received" && b["account_id"] == bot));
    let first = &bodies[0]["data"];
    assert_eq!(first["message"]["text"], "hi bot");
    let bold = &first["message"]["entities"][0];
    assert_eq!(
        (&bold["type"], &bold["offset"], &bold["length"]),
        (&json!("bold"), &json!(0), &json!(2)),
        "{first}"
    );
    assert_eq!(first["message"]["out"], false);
    assert_eq!(bodies[1]["data"]["message"]["text"], "second");
    // The chat is the sender's private chat, named by its Telegram user id.
    let sender_user = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{sender}"), t)
            .await,
        200,
    )
    .await["tg_user_id"]
        .clone();
    assert_eq!(first["chat_id"], sender_user);
    assert_eq!(first["sender_id"], sender_user);
    let live = sse_events(stream, 2).await;
    assert_eq!(live[0].2, bodies[0]);
    assert_eq!(live[1].2, bodies[1]);
    // Each once: no event of the sender's own account (a user account does not receive).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = json_of(
        app.get("/api/v1/events/log?types=message.received", t)
            .await,
        200,
    )
    .await;
    let received = page["events"].as_array().unwrap();
    assert_eq!(received.len(), 2, "{page}");
    assert!(received.iter().all(|e| e["account_id"] == bot));

    // Switched off, the bot hears nothing; switched on again, it catches up on what came
    // meanwhile (getDifference from the update state it kept), once.
    let path = format!("/api/v1/telegram/accounts/{bot}");
    let patch = |on: bool| {
        app.request(
            Method::PATCH,
            &path,
            t,
            Some(json!({"receive_updates": on})),
        )
    };
    let off = json_of(patch(false).await, 200).await;
    assert_eq!(off["receive_updates"], false);
    wait_active(&app, &token, bot).await;
    send(&app, &token, sender, "while off").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        receiver.got().len(),
        2,
        "an account that does not receive got an event"
    );
    let on = json_of(patch(true).await, 200).await;
    assert_eq!(on["receive_updates"], true);
    let got = receiver
        .wait("the caught-up message", |g| g.len() >= 3)
        .await;
    assert_eq!(got[2].json()["data"]["message"]["text"], "while off");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got().len(), 3, "caught up more than once");
    let user_view = json_of(
        app.get(&format!("/api/v1/telegram/accounts/{sender}"), t)
            .await,
        200,
    )
    .await;
    assert_eq!(
        user_view["receive_updates"], false,
        "user accounts do not receive by default"
    );
    app.shutdown().await;
}

async fn wait_active(app: &TestApp, token: &str, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = json_of(
            app.get(&format!("/api/v1/telegram/accounts/{id}"), Some(token))
                .await,
            200,
        )
        .await;
        if a["state"] == "active" {
            return;
        }
        assert!(Instant::now() < deadline, "never active: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn send(app: &TestApp, token: &str, from: i64, text: &str) {
    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{from}/messages"),
            Some(token),
            json!({"peer": "@receiving_bot", "text": text, "parse_mode": "html"}),
        )
        .await,
        201,
    )
    .await;
}

#[tokio::test]
async fn the_sandbox_sends_to_ones_own_receiving_account_and_to_no_one_elses() {
    let app = app_with(|_| {}).await;
    let (_, token, _) = app.user("sandbox-send@test.dev").await;
    let (_, other, _) = app.user("sandbox-other@test.dev").await;
    let t = Some(token.as_str());
    let bot_token = "828282:AAsandboxsendbotsandboxsendbot000000";
    let bot = sandbox_bot(&app, &token, bot_token, "sandbox_send_bot").await;
    wait_active(&app, &token, bot).await;
    // A user account of this user's: its phone is the user's to write to, and no one else's
    // to speak as.
    let mine = logged_in_account(&app, &token, "+15550001904").await;
    let send = |who: &str, body: Value| {
        let who = who.to_owned();
        let app = &app;
        async move {
            app.post("/api/v1/sandbox/messages", Some(who.as_str()), body)
                .await
        }
    };
    let sent = json_of(
        send(
            &token,
            json!({"from_phone": "+15550001905", "to": "@sandbox_send_bot", "text": "from outside"}),
        )
        .await,
        200,
    )
    .await;
    assert!(sent["message_id"].as_i64().unwrap() > 0, "{sent}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let page = json_of(
            app.get(
                &format!("/api/v1/events/log?types=message.received&account_id={bot}"),
                t,
            )
            .await,
            200,
        )
        .await;
        if let Some(e) = page["events"].as_array().unwrap().first() {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "the message never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["data"]["message"]["text"], "from outside");
    assert_eq!(event["data"]["message"]["out"], false);

    // Another user may neither write to this user's bot nor speak as this user's account.
    let r = send(
        &other,
        json!({"from_phone": "+15550001906", "to": "@sandbox_send_bot", "text": "x"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = send(
        &other,
        json!({"from_phone": "+15550001904", "to": "@sandbox_send_bot", "text": "x"}),
    )
    .await;
    assert_eq!(error_code(r, 403).await, "SENDER_NOT_YOURS");
    // testdc reads a phone's digits only: no other spelling of that phone gets past the check.
    let r = send(
        &other,
        json!({"from_phone": "+1 555-000-1904", "to": "+15550001906", "text": "x"}),
    )
    .await;
    assert_eq!(error_code(r, 403).await, "SENDER_NOT_YOURS");
    let r = send(
        &other,
        json!({"from_phone": "15550001904", "to": "@sandbox_send_bot", "text": "x"}),
    )
    .await;
    assert_eq!(error_code(r, 422).await, "PHONE_NUMBER_INVALID");
    // Bad input: Telegram's own codes.
    let r = send(
        &token,
        json!({"from_phone": "+15550001905", "to": "@sandbox_send_bot", "text": "  "}),
    )
    .await;
    assert_eq!(error_code(r, 422).await, "MESSAGE_EMPTY");
    let r = send(
        &token,
        json!({"from_phone": "+15550001905", "to": "@sandbox_send_bot", "text": "x".repeat(4097)}),
    )
    .await;
    assert_eq!(error_code(r, 422).await, "MESSAGE_TOO_LONG");
    let r = send(
        &token,
        json!({"from_phone": "+15550001905", "to": {"id": 1}, "text": "x"}),
    )
    .await;
    assert_eq!(error_code(r, 422).await, "PEER_ID_INVALID");
    // A user account receives once switched on: a private message, and posts in its channel,
    // live and (switched off and on again) caught up with getChannelDifference.
    let path = format!("/api/v1/telegram/accounts/{mine}");
    let patch = |on: bool| {
        app.request(
            Method::PATCH,
            &path,
            t,
            Some(json!({"receive_updates": on})),
        )
    };
    json_of(patch(true).await, 200).await;
    wait_active(&app, &token, mine).await;
    let texts = |n: usize| {
        let app = &app;
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let page = json_of(
                    app.get(
                        &format!("/api/v1/events/log?types=message.received&account_id={mine}"),
                        t,
                    )
                    .await,
                    200,
                )
                .await;
                let got: Vec<(i64, String)> = page["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["data"]["chat_id"].as_i64().unwrap(),
                            e["data"]["message"]["text"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                if got.len() >= n {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return got;
                }
                assert!(
                    Instant::now() < deadline,
                    "{n} messages never arrived: {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let r = send(
        &token,
        json!({"from_phone": "+15550001905", "to": "+15550001904", "text": "to the user"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(texts(1).await[0].1, "to the user");
    let channel = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{mine}/chats"),
            t,
            json!({"type": "channel", "title": "Heard"}),
        )
        .await,
        201,
    )
    .await["chat_id"]
        .as_i64()
        .unwrap();
    let post = |text: &'static str| {
        send(
            &token,
            json!({"from_phone": "+15550001904", "to": channel, "text": text}),
        )
    };
    assert_eq!(post("live post").await.status(), 200);
    let got = texts(2).await;
    assert_eq!(got[1], (channel, "live post".to_owned()));
    // testdc dates to the second, and trusts a channel post pushed to a live connection as seen
    // unless it is dated after the client's saved state: the posts below come a second later,
    // as they would in any real gap.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    json_of(patch(false).await, 200).await;
    wait_active(&app, &token, mine).await;
    assert_eq!(post("while off 1").await.status(), 200);
    assert_eq!(post("while off 2").await.status(), 200);
    json_of(patch(true).await, 200).await;
    let got = texts(4).await;
    assert_eq!(
        got[2..],
        [
            (channel, "while off 1".to_owned()),
            (channel, "while off 2".to_owned())
        ],
        "{got:?}"
    );
    assert_eq!(got.len(), 4, "each once: {got:?}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_burst_to_one_receiving_account_arrives_whole_without_a_later_message() {
    let app = app_with(|_| {}).await;
    let (_, token, _) = app.user("burst@test.dev").await;
    let t = Some(token.as_str());
    let bot_token = "838383:AAburstbotburstbotburstbotburstbot00";
    let bot = sandbox_bot(&app, &token, bot_token, "burst_bot").await;
    let dc = app.state.sandbox.as_ref().unwrap();
    wait_active(&app, &token, bot).await;
    // Give the receiver its first getState before the burst.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Pushed as fast as testdc stores them: more than grammers used to buffer (100).
    const N: usize = 600;
    for i in 0..N {
        dc.send_message("+15550001999", "@burst_bot", &format!("burst {i}"))
            .unwrap();
    }
    // No later message reveals a gap: what grammers dropped would come back only after its
    // 15-minute idle deadline, far past this wait.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = json_of(
            app.get(
                &format!("/api/v1/events/log?types=message.received&account_id={bot}&limit=1000"),
                t,
            )
            .await,
            200,
        )
        .await;
        let texts: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["message"]["text"].as_str().unwrap())
            .collect();
        if texts.len() >= N {
            let want: Vec<String> = (0..N).map(|i| format!("burst {i}")).collect();
            assert_eq!(texts, want, "each once, in order");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {N} messages of the burst arrived",
            texts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.shutdown().await;
}
