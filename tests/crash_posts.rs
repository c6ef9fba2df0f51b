//! Issue 13, item 4: a scheduled post survives `kill -9` of `tgfleet serve` between "sending" and
//! "sent" and arrives once. The fake Telegram is a standalone `tgfleet testdc` process, slowed so
//! that the delivery is on its way when the server dies; testdc still takes the message, as
//! Telegram would. After a restart over the same data dir the scheduler repeats the delivery with
//! the random_id fixed when the post was created, Telegram drops the repeat, and the channel
//! holds the post exactly once.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{call, logged_in_account, serve, wait_until_up};

async fn post(http: &reqwest::Client, api: &str, token: &str, id: &str) -> Value {
    call(
        http.get(format!("{api}/api/v1/posts/{id}"))
            .bearer_auth(token),
        200,
        "reading the post",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_cut_off_by_kill_9_mid_send_arrives_once() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;
    let (mut first, api) = serve(dir.path(), &control, "serve1", &[]);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;
    let phone = "+15550100211";
    let id = logged_in_account(&http, &api, &token, &control, phone).await;
    let chat = call(
        http.post(format!("{api}/api/v1/telegram/accounts/{id}/chats"))
            .bearer_auth(&token)
            .json(&json!({"type": "channel", "title": "Crash-proof"})),
        201,
        "creating a channel",
    )
    .await["chat_id"]
        .as_i64()
        .unwrap();

    // Telegram answers this phone's calls 5 s late, so the delivery is in flight long enough.
    call(
        http.post(format!("{control}/faults"))
            .json(&json!({"kind": "delay", "phone": phone, "seconds": 5})),
        200,
        "slowing testdc",
    )
    .await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(1);
    let created = call(
        http.post(format!("{api}/api/v1/posts"))
            .bearer_auth(&token)
            .json(
                &json!({"targets": [{"account_id": id, "chat": chat.to_string()}],
                          "text": "survives kill -9", "publish_at": at}),
            ),
        201,
        "creating the post",
    )
    .await;
    let post_id = created["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = post(&http, &api, &token, &post_id).await;
        if p["deliveries"][0]["state"] == "sending" {
            break;
        }
        assert_eq!(p["deliveries"][0]["state"], "pending", "{p}");
        assert!(Instant::now() < deadline, "the delivery never started: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Mid-send: tgfleet has recorded "sending" and the request is with Telegram.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    // Telegram finishes what it was sent: the message is in the channel, nobody heard the answer.
    let messages = |http: reqwest::Client, control: String| async move {
        call(
            http.get(format!("{control}/chats/{chat}/messages")),
            200,
            "reading the channel",
        )
        .await["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages(http.clone(), control.clone()).await.is_empty() {
        assert!(Instant::now() < deadline, "testdc never stored the message");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    call(
        http.post(format!("{control}/faults"))
            .json(&json!({"kind": "clear", "phone": phone})),
        200,
        "clearing the delay",
    )
    .await;

    let (_second, api) = serve(dir.path(), &control, "serve2", &[]);
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve again",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let p = post(&http, &api, &token, &post_id).await;
        if p["state"] != "publishing" && p["state"] != "scheduled" {
            break p;
        }
        assert!(Instant::now() < deadline, "the post never finished: {p}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done["state"], "published", "{done}");
    assert_eq!(
        done["deliveries"][0]["attempts"], 2,
        "repeated once after the crash: {done}"
    );
    assert_eq!(
        messages(http.clone(), control.clone()).await,
        ["survives kill -9"],
        "exactly once"
    );
}
