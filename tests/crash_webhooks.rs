//! Issue 18: an event survives `kill -9` of `tgfleet serve` between being logged and being
//! delivered. The receiver takes the first request and never answers, so the attempt is on its
//! way when the server dies; after a restart over the same data dir the claim runs out, the
//! event is delivered again with the same `webhook-id`, and once answered it is not sent again.

mod support;

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{call, serve, wait_until_up};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A bare HTTP/1.1 receiver on loopback: records each request's `webhook-id`; answers 200,
/// except that while `hang` is set it keeps the connection open without answering.
struct Receiver {
    url: String,
    ids: Arc<Mutex<Vec<String>>>,
    hang: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let ids: Arc<Mutex<Vec<String>>> = Arc::default();
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (i, h) = (Arc::clone(&ids), Arc::clone(&hang));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (i, h) = (Arc::clone(&i), Arc::clone(&h));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // The head, then the body its content-length announces.
                    let (head_end, length) = loop {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buf.len() < head_end + length {
                        let n = conn.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                    let id = head
                        .lines()
                        .find_map(|l| l.strip_prefix("webhook-id:"))
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_default();
                    i.lock().unwrap().push(id);
                    if h.load(std::sync::atomic::Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let _ = conn
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        Self {
            url,
            ids,
            hang,
            task,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const ENV: &[(&str, &str)] = &[
    ("TGFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
    ("TGFLEET__WEBHOOKS__TIMEOUT_MS", "2000"),
    ("TGFLEET__WEBHOOKS__RETRY_INITIAL_MS", "200"),
    ("TGFLEET__WEBHOOKS__RETRY_MAX_MS", "500"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_cut_off_by_kill_9_mid_delivery_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;
    let (mut first, api) = serve(dir.path(), &control, "serve1", ENV);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;
    let receiver = Receiver::start().await;
    let hook = call(
        http.post(format!("{api}/api/v1/webhooks"))
            .bearer_auth(&token)
            .json(&json!({"url": receiver.url, "events": ["*"]})),
        201,
        "creating a webhook",
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let ping = call(
        http.post(format!("{api}/api/v1/webhooks/{hook_id}/test"))
            .bearer_auth(&token),
        202,
        "sending a ping",
    )
    .await["event_id"]
        .as_i64()
        .unwrap();
    // The attempt is with the receiver, unanswered: kill -9 now.
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.ids().is_empty() {
        assert!(Instant::now() < deadline, "no attempt reached the receiver");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    assert_eq!(receiver.ids(), [ping.to_string()]);

    receiver
        .hang
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (_second, api) = serve(dir.path(), &control, "serve2", ENV);
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve again",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let log: Value = loop {
        let log = call(
            http.get(format!(
                "{api}/api/v1/webhooks/{hook_id}/deliveries?state=succeeded"
            ))
            .bearer_auth(&token),
            200,
            "reading the delivery log",
        )
        .await;
        if !log["deliveries"].as_array().unwrap().is_empty() {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "never delivered after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let done = &log["deliveries"][0];
    assert_eq!(done["event_id"], ping);
    // The first attempt was cut short (it left no row); the repeat is attempt 2.
    assert_eq!(done["attempt"], 2);
    // Answered, it is not sent again: the receiver saw the cut attempt and the answered one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.ids(), [ping.to_string(), ping.to_string()]);
}
