//! One post fanned out to 1,000 channels on 100 accounts: the wall time from `POST /posts` until
//! the post is `published`, against the least the accounts' pacing allows.
//!
//! `cargo bench --bench post_fanout` (env `FANOUT_ACCOUNTS`, default 100; `FANOUT_CHANNELS`
//! per account, default 10; `FANOUT_RATE` calls per second per account, default 2).
//! Processes: the real `tgfleet testdc` and `tgfleet serve` (its Telegram that testdc, its
//! per-account pacing set to `FANOUT_RATE`/s with a burst as large (the least the
//! configuration allows), `posts.parallel_accounts` at
//! least the number of accounts). Each account sends its channels' deliveries one after another
//! at its pacing, the accounts in parallel, so the least possible wall time is
//! `(channels − rate) / rate` seconds; the figure is the measured time and its ratio to that.
//! Every channel must then hold the post exactly once (read from testdc's control API).

#[path = "common/mod.rs"]
mod common;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::{Duration, Instant};

use common::cluster::{self, call, onboard, Processes};
use futures::StreamExt as _;
use serde_json::json;

fn main() {
    common::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

async fn run() {
    let accounts = common::knob("FANOUT_ACCOUNTS", 100);
    let per_account = common::knob("FANOUT_CHANNELS", 10);
    let rate = common::knob("FANOUT_RATE", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    let Processes {
        testdc,
        server,
        api,
        control,
        ..
    } = cluster::start(
        dir.path(),
        &http,
        &[
            ("TGFLEET__FLEET__CALLS_PER_SECOND", rate.to_string()),
            ("TGFLEET__FLEET__CALLS_BURST", rate.to_string()),
            (
                "TGFLEET__POSTS__PARALLEL_ACCOUNTS",
                accounts.max(1).to_string(),
            ),
        ],
    )
    .await;
    let fleet = onboard(&http, &api, &control, accounts).await;
    let token = &fleet.token;

    let started = Instant::now();
    let targets: Vec<(i64, i64)> = futures::stream::iter(fleet.ids.iter().copied())
        .map(|id| {
            let (http, api) = (http.clone(), api.clone());
            async move {
                let mut chats = Vec::new();
                for c in 0..per_account {
                    let chat = call(
                        http.post(format!("{api}/api/v1/telegram/accounts/{id}/chats"))
                            .bearer_auth(token)
                            .json(
                                &json!({"type": "channel", "title": format!("fan-out {id}.{c}")}),
                            ),
                        201,
                        "creating a channel",
                    )
                    .await["chat_id"]
                        .as_i64()
                        .expect("chat_id");
                    chats.push((id, chat));
                }
                chats
            }
        })
        .buffer_unordered(accounts.max(1))
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    println!(
        "post_fanout: {} channels created on {accounts} accounts in {:.1} s (setup)",
        targets.len(),
        started.elapsed().as_secs_f64()
    );
    // Let every account's pacing fill up again, as it would be before a real post.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let body = json!({
        "targets": targets.iter().map(|(id, chat)| json!({"account_id": id, "chat": chat.to_string()})).collect::<Vec<_>>(),
        "text": "fan-out bench",
    });
    let started = Instant::now();
    let post = call(
        http.post(format!("{api}/api/v1/posts"))
            .bearer_auth(token)
            .json(&body),
        201,
        "creating the post",
    )
    .await;
    let id = post["id"].as_str().expect("post id").to_owned();
    let done = loop {
        let p = call(
            http.get(format!("{api}/api/v1/posts/{id}"))
                .bearer_auth(token),
            200,
            "reading the post",
        )
        .await;
        if p["state"] != "scheduled" && p["state"] != "publishing" {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the post never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = started.elapsed();
    assert_eq!(done["state"], "published", "{done}");
    // The first `rate` go at once (the burst), the rest at `rate` per second.
    let least = per_account.saturating_sub(rate) as f64 / rate as f64;
    println!(
        "post_fanout: {} deliveries on {accounts} accounts published in {:.2} s; pacing allows {:.2} s at best: ratio {:.2} (goal ≤ 1.10)",
        targets.len(),
        took.as_secs_f64(),
        least,
        took.as_secs_f64() / least.max(f64::EPSILON)
    );
    // Exactly once in every channel.
    for (_, chat) in &targets {
        let held = call(
            http.get(format!("{control}/chats/{chat}/messages")),
            200,
            "reading a channel",
        )
        .await;
        let texts: Vec<&str> = held["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["fan-out bench"], "channel {chat}");
    }
    server.stop();
    testdc.stop();
}
