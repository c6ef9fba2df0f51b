//! Issue 13: a 200 MB upload streams with bounded memory — into the media library, then through
//! an account into the sandbox's Telegram — and arrives whole (its SHA-256 on both sides).
//! Alone in its binary, so the process's peak RSS is this test's.

mod common;

use common::{json_of, logged_in_account, sandbox};
use futures::StreamExt as _;
use serde_json::json;
use sha2::Digest as _;

const SIZE: usize = 200 * 1000 * 1000;
const CHUNK: usize = 64 * 1024;
/// What the upload may add to the process's peak RSS: the storage's parts in flight (3 × 5 MiB),
/// Telegram's parts in flight (4 × 512 KiB, with their encrypted copies) and the allocator's
/// slack — nowhere near the 200 MB it moves.
const BUDGET: u64 = 64 << 20;

fn chunk(i: usize) -> Vec<u8> {
    let mut c = vec![0u8; CHUNK.min(SIZE - i * CHUNK)];
    for (j, b) in c.iter_mut().enumerate() {
        *b = ((i * CHUNK + j) as u32)
            .wrapping_mul(2_654_435_761)
            .to_le_bytes()[3];
    }
    if i == 0 {
        c[..9].copy_from_slice(b"%PDF-1.7\n");
    }
    c
}

fn chunks() -> usize {
    SIZE.div_ceil(CHUNK)
}

/// The process's peak resident set so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_file_streams_through_with_bounded_memory() {
    let app = sandbox().await;
    let (_, token, _) = app.user("big@example.org").await;
    let id = logged_in_account(&app, &token, "+15550100181").await;
    let chat = json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/chats"),
            Some(&token),
            json!({"type": "channel", "title": "Big files"}),
        )
        .await,
        201,
    )
    .await["chat_id"]
        .as_i64()
        .unwrap();
    let mut expected = sha2::Sha256::new();
    for i in 0..chunks() {
        expected.update(chunk(i));
    }
    let expected = hex::encode(expected.finalize());
    let before = peak_rss();

    let body = futures::stream::iter(0..chunks()).map(|i| Ok::<_, std::io::Error>(chunk(i)));
    let uploaded = app
        .client
        .post(format!("{}/api/v1/media?file_name=big.pdf", app.base))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let item = json_of(uploaded, 201).await;
    assert_eq!(item["size"], SIZE);
    assert_eq!(item["sha256"], expected.as_str());
    let after_library = peak_rss();

    json_of(
        app.post(
            &format!("/api/v1/telegram/accounts/{id}/messages"),
            Some(&token),
            json!({"peer": chat.to_string(), "media": [item["id"]]}),
        )
        .await,
        201,
    )
    .await;
    let after_telegram = peak_rss();
    let held = app
        .state
        .sandbox
        .as_ref()
        .unwrap()
        .chat_messages(&chat.to_string())
        .unwrap();
    let media = held.last().unwrap().media.clone().unwrap();
    assert_eq!(media.sha256, expected);
    assert_eq!(media.size as usize, SIZE);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "peak RSS: {:.1} MiB before, +{:.1} MiB after the library upload, +{:.1} MiB after Telegram's",
        mib(before),
        mib(after_library - before),
        mib(after_telegram - before)
    );
    assert!(
        after_telegram - before < BUDGET,
        "moving 200 MB raised the peak RSS by {:.1} MiB (budget {:.0} MiB)",
        mib(after_telegram - before),
        mib(BUDGET)
    );
    app.shutdown().await;
}
