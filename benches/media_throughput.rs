//! Media throughput: one file sent as a document to Saved Messages through tgfleet (REST →
//! account actor → the file streamed from the media library to Telegram in parts → sendMedia)
//! against a bare grammers client (`Client::upload_stream`, then sendMedia) on the same session,
//! in the same run, and the server's peak RSS above idle while it sends.
//!
//! `cargo bench --bench media_throughput` (env `MEDIA_MB`, default 100; `MEDIA_ROUNDS`,
//! default 3). Processes: the real `tgfleet testdc` and `tgfleet serve` (its Telegram that
//! testdc); this process logs one account in through the API, then alternates the arms. Each
//! round sends bytes of its own (one byte differs), so neither arm can send by reference: the
//! REST arm's library upload happens first and is reported apart, the timed part is
//! `POST …/messages {media:[id]}` until its 201. The server's RSS is sampled every 10 ms from
//! /proc while the REST arm runs; the figure is the peak minus the RSS just before.

#[path = "common/mod.rs"]
mod common;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{self, call, connection_params, load_sessions, onboard, Processes};
use grammers_mtsender::{ConnectionParams, SenderPool};
use grammers_session::storages::MemorySession;
use grammers_session::SessionData;
use grammers_tl_types as tl;
use serde_json::json;
use sha2::Digest as _;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

/// The file of round `round`: a PDF header, then bytes that differ from round to round.
fn file(size: usize, round: usize) -> Vec<u8> {
    let mut b: Vec<u8> = (0..size)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    b[..9].copy_from_slice(b"%PDF-1.7\n");
    b[100] = round as u8;
    b
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn mb_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

async fn run() {
    let size = common::knob("MEDIA_MB", 100) * 1_000_000;
    let rounds = common::knob("MEDIA_ROUNDS", 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("http client");
    let Processes {
        testdc,
        server,
        api,
        control,
        data_dir,
        ..
    } = cluster::start(dir.path(), &http, &[]).await;
    let fleet = onboard(&http, &api, &control, 1).await;
    let id = fleet.ids[0];
    let token = fleet.token.clone();
    let server_pid = server.child.id();

    // The bare client: grammers' own upload on the server's session (testdc lets one key be
    // live on two connections), built as the account actor builds its sender.
    let keys = load_sessions(&data_dir, &[id]).await.remove(0);
    let session = Arc::new(MemorySession::from(SessionData {
        home_dc: keys.home_dc,
        dc_options: keys.dc_options.iter().map(|o| (o.id, o.clone())).collect(),
        ..Default::default()
    }));
    let pool = SenderPool::with_configuration(
        session,
        17349,
        connection_params(&ConnectionParams::default()),
    );
    let runner = tokio::spawn(pool.runner.run());
    let mut updates = pool.updates;
    let drain = tokio::spawn(async move { while updates.recv().await.is_some() {} });
    let bare = grammers_client::Client::new(pool.handle);

    println!(
        "media_throughput: {} MB per send, {rounds} rounds, arms alternating",
        size / 1_000_000
    );
    let (mut bare_total, mut rest_total) = (Duration::ZERO, Duration::ZERO);
    let mut worst_peak = 0u64;
    for round in 0..rounds {
        let bytes = file(size, round * 2);
        let started = Instant::now();
        let uploaded = bare
            .upload_stream(&mut std::io::Cursor::new(&bytes), size, "bare.pdf".into())
            .await
            .expect("bare upload");
        bare.invoke(&tl::functions::messages::SendMedia {
            silent: false,
            background: false,
            clear_draft: false,
            noforwards: false,
            update_stickersets_order: false,
            invert_media: false,
            allow_paid_floodskip: false,
            peer: tl::enums::InputPeer::PeerSelf,
            reply_to: None,
            media: tl::types::InputMediaUploadedDocument {
                nosound_video: false,
                force_file: true,
                spoiler: false,
                file: uploaded.raw,
                thumb: None,
                mime_type: "application/pdf".into(),
                attributes: vec![tl::types::DocumentAttributeFilename {
                    file_name: "bare.pdf".into(),
                }
                .into()],
                stickers: None,
                video_cover: None,
                video_timestamp: None,
                ttl_seconds: None,
            }
            .into(),
            message: String::new(),
            random_id: rand::random(),
            reply_markup: None,
            entities: None,
            schedule_date: None,
            schedule_repeat_period: None,
            send_as: None,
            quick_reply_shortcut: None,
            effect: None,
            allow_paid_stars: None,
            suggested_post: None,
        })
        .await
        .expect("bare sendMedia");
        let bare_took = started.elapsed();
        bare_total += bare_took;
        drop(bytes);

        let bytes = file(size, round * 2 + 1);
        let expected = hex::encode(sha2::Sha256::digest(&bytes));
        let started = Instant::now();
        let item = call(
            http.post(format!("{api}/api/v1/media?file_name=rest.pdf"))
                .bearer_auth(&token)
                .body(bytes),
            201,
            "library upload",
        )
        .await;
        let library_took = started.elapsed();
        assert_eq!(item["sha256"], expected.as_str());

        let idle = rss_kib(server_pid);
        let (peak, stop) = (
            Arc::new(AtomicU64::new(idle)),
            Arc::new(AtomicBool::new(false)),
        );
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_kib(server_pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let started = Instant::now();
        call(
            http.post(format!("{api}/api/v1/telegram/accounts/{id}/messages"))
                .bearer_auth(&token)
                .json(&json!({"peer": "me", "media": [item["id"]]})),
            201,
            "REST send",
        )
        .await;
        let rest_took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.await;
        rest_total += rest_took;
        let above = peak.load(Ordering::Relaxed).saturating_sub(idle);
        worst_peak = worst_peak.max(above);
        println!(
            "round {}: bare {:.1} MB/s, REST {:.1} MB/s (ratio {:.2}); library upload {:.1} MB/s; server peak RSS +{:.1} MiB above idle ({:.1} MiB)",
            round + 1,
            mb_per_s(size, bare_took),
            mb_per_s(size, rest_took),
            bare_took.as_secs_f64() / rest_took.as_secs_f64(),
            mb_per_s(size, library_took),
            above as f64 / 1024.0,
            idle as f64 / 1024.0,
        );
        // What Telegram holds is what was uploaded.
        let held = call(
            http.get(format!("{control}/chats/+16660000000/messages")),
            200,
            "reading Saved Messages",
        )
        .await;
        let last = held["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            last["media"]["sha256"],
            expected.as_str(),
            "testdc got other bytes"
        );
    }
    println!(
        "media_throughput: bare {:.1} MB/s, REST {:.1} MB/s over {rounds} rounds: ratio {:.2} (goal ≥ 0.8); worst server peak +{:.1} MiB above idle (goal < 64 MiB)",
        mb_per_s(size * rounds, bare_total),
        mb_per_s(size * rounds, rest_total),
        bare_total.as_secs_f64() / rest_total.as_secs_f64(),
        worst_peak as f64 / 1024.0
    );
    drain.abort();
    runner.abort();
    server.stop();
    testdc.stop();
}
