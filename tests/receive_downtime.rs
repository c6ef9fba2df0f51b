//! Issue 18: a receiving account loses nothing to downtime. 200 messages sent to a bot while
//! `tgfleet serve` is killed arrive in the event log after it starts again (getDifference from
//! the update state sealed with its session, in slices of 100), each once and in order; then 200
//! more sent while testdc drops every connection each second arrive the same way.

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{call, serve, wait_until_up};

const BOT_TOKEN: &str = "727272:AAdowntimebotdowntimebotdowntimebot00";
const SENDER: &str = "+15550007272";

/// Every `message.received` text of `account` in the log, in log order.
async fn received(http: &reqwest::Client, api: &str, token: &str, account: i64) -> Vec<String> {
    let mut texts = Vec::new();
    let mut after = 0i64;
    loop {
        let page = call(
            http.get(format!(
                "{api}/api/v1/events/log?types=message.received&account_id={account}&after={after}&limit=500"
            ))
            .bearer_auth(token),
            200,
            "reading the event log",
        )
        .await;
        let events = page["events"].as_array().unwrap().clone();
        for e in &events {
            texts.push(e["data"]["message"]["text"].as_str().unwrap().to_owned());
            after = e["id"].as_i64().unwrap();
        }
        if events.len() < 500 {
            return texts;
        }
    }
}

async fn wait_received(
    http: &reqwest::Client,
    api: &str,
    token: &str,
    account: i64,
    n: usize,
    what: &str,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let texts = received(http, api, token, account).await;
        if texts.len() >= n {
            // Anything more would be a repeat: give one to arrive before judging.
            tokio::time::sleep(Duration::from_secs(1)).await;
            return received(http, api, token, account).await;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} messages arrived",
            texts.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn inject(http: &reqwest::Client, control: &str, text: &str) {
    call(
        http.post(format!("{control}/messages"))
            .json(&json!({"from_phone": SENDER, "to": "@downtime_bot", "text": text})),
        200,
        "a testdc user sends to the bot",
    )
    .await;
}

async fn wait_active(http: &reqwest::Client, api: &str, token: &str, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a: Value = call(
            http.get(format!("{api}/api/v1/telegram/accounts/{id}"))
                .bearer_auth(token),
            200,
            "reading the bot",
        )
        .await;
        if a["state"] == "active" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the bot never became active: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_while_tgfleet_is_down_or_reconnecting_arrive_each_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (_testdc, control) = support::testdc(dir.path(), &[], &http).await;
    call(
        http.post(format!("{control}/bots"))
            .json(&json!({"token": BOT_TOKEN, "username": "downtime_bot"})),
        201,
        "adding the bot to testdc",
    )
    .await;
    let (mut first, api) = serve(dir.path(), &control, "serve1", &[]);
    wait_until_up(&http, &format!("{api}/api/v1/health"), "tgfleet serve").await;
    let token = support::user_token(&http, &api).await;
    let bot = call(
        http.post(format!("{api}/api/v1/telegram/accounts"))
            .bearer_auth(&token)
            .json(&json!({"kind": "bot", "bot_token": BOT_TOKEN})),
        201,
        "adding the bot",
    )
    .await["id"]
        .as_i64()
        .unwrap();
    wait_active(&http, &api, &token, bot).await;
    inject(&http, &control, "live").await;
    let live = wait_received(&http, &api, &token, bot, 1, "while up").await;
    assert_eq!(live, ["live"]);

    // Down: kill -9, so nothing is persisted on the way out beyond what already was.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let down: Vec<String> = (0..200).map(|i| format!("down {i}")).collect();
    for text in &down {
        inject(&http, &control, text).await;
    }
    let (_second, api) = serve(dir.path(), &control, "serve2", &[]);
    wait_until_up(
        &http,
        &format!("{api}/api/v1/health"),
        "tgfleet serve again",
    )
    .await;
    let got = wait_received(&http, &api, &token, bot, 201, "after the restart").await;
    let mut want = vec!["live".to_owned()];
    want.extend(down.iter().cloned());
    assert_eq!(got, want, "each once, in order");

    // Connections dropped every second while 200 more arrive.
    let dropping = {
        let (http, control) = (http.clone(), control.clone());
        tokio::spawn(async move {
            let mut dropped = 0;
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let answer = call(
                    http.post(format!("{control}/faults"))
                        .json(&json!({"kind": "drop_connections"})),
                    200,
                    "dropping every connection",
                )
                .await;
                dropped += answer["dropped"].as_u64().unwrap_or(0);
            }
            dropped
        })
    };
    let flaky: Vec<String> = (0..200).map(|i| format!("flaky {i}")).collect();
    for text in &flaky {
        inject(&http, &control, text).await;
        // Spread over the five drops.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dropped = dropping.await.unwrap();
    assert!(dropped >= 1, "testdc dropped no connection");
    let got = wait_received(&http, &api, &token, bot, 401, "across dropped connections").await;
    want.extend(flaky.iter().cloned());
    assert_eq!(got, want, "each once, in order, across the drops");
}
