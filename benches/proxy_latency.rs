//! What a SOCKS5 proxy adds to each Telegram call of an account bound to it: the same
//! `messages.sendMessage` to self on the same session, one call at a time, from a grammers
//! client that connects directly and from one whose every connection dials through a real
//! `microsocks` on loopback — the route `ConnectionParams::proxy_url` gives an account's client
//! (`actors/src/client.rs`).
//!
//! `cargo bench --bench proxy_latency` (env `PROXY_CALLS` per arm per round, default 2000;
//! `PROXY_ROUNDS`, default 3). Processes: the real `tgfleet testdc` and `tgfleet serve` (one
//! account logged in by code through the REST API, its sealed session opened with the server's
//! key, then the server stopped so only the two clients talk to testdc), `microsocks` (Debian's;
//! `apt-get install microsocks`), and this load generator. Rounds interleave the arms (direct,
//! proxied, direct, …) so drift on the shared machine hits both alike; each client is warmed up
//! (connected, first calls made) before timing. Reported: p50/p99/max per arm and the added
//! p50/p99 (proxied − direct). Every call must be a sent message; microsocks' log must show the
//! proxied client's connection to testdc's DC, or the figure is void.
//!
//! On loopback the proxy's cost is one more user-space hop each way (microsocks relays bytes
//! between two sockets); a real proxy adds its network distance on top, which no bench here can
//! stand for.

#[path = "common/mod.rs"]
mod common;
use common::cluster::{self, bare_send, start_bare_clients_through, BareClient};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::{Duration, Instant};
use tgfleet_persistence::testing::SocksServer;

const TEXT: &str = "proxy latency bench";
const REQUEST_BOUND: Duration = Duration::from_secs(30);
const WARM_UP_CALLS: usize = 50;

fn main() {
    common::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

/// `calls` sends one after another; the latency of each in µs.
async fn timed(client: &BareClient, calls: usize, into: &mut Vec<u64>) {
    for _ in 0..calls {
        let started = Instant::now();
        if let Err(e) = bare_send(client, TEXT, REQUEST_BOUND).await {
            panic!("a call failed, the figure is void: {e}");
        }
        into.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

async fn run() {
    let calls = common::knob("PROXY_CALLS", 2000);
    let rounds = common::knob("PROXY_ROUNDS", 3);
    let Some(proxy) = SocksServer::start(None).await else {
        panic!("microsocks is needed (apt-get install microsocks)");
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let http = reqwest::Client::new();
    let processes = cluster::start(dir.path(), &http, &[]).await;
    let fleet = cluster::onboard(&http, &processes.api, &processes.control, 1).await;
    let sessions = cluster::load_sessions(&processes.data_dir, &fleet.ids).await;
    processes.server.stop();

    let direct = start_bare_clients_through(&sessions, None).remove(0);
    let url = proxy.url(None);
    let proxied = start_bare_clients_through(&sessions, Some(&url)).remove(0);
    let mut scratch = Vec::new();
    timed(&direct, WARM_UP_CALLS, &mut scratch).await;
    timed(&proxied, WARM_UP_CALLS, &mut scratch).await;
    let log = proxy.log();
    assert!(
        log.contains("connected to"),
        "the proxied client did not go through microsocks: {log:?}"
    );

    let (mut direct_us, mut proxied_us) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        timed(&direct, calls, &mut direct_us).await;
        timed(&proxied, calls, &mut proxied_us).await;
        println!("round {round}/{rounds}: {calls} calls per arm");
    }
    direct_us.sort_unstable();
    proxied_us.sort_unstable();
    let report = |name: &str, v: &[u64]| {
        println!(
            "{name:>8}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} calls)",
            percentile_ms(v, 50.0),
            percentile_ms(v, 99.0),
            *v.last().expect("calls") as f64 / 1000.0,
            v.len()
        );
    };
    report("direct", &direct_us);
    report("proxied", &proxied_us);
    println!(
        "added by the loopback SOCKS5 proxy per call: p50 {:.3} ms, p99 {:.3} ms",
        percentile_ms(&proxied_us, 50.0) - percentile_ms(&direct_us, 50.0),
        percentile_ms(&proxied_us, 99.0) - percentile_ms(&direct_us, 99.0)
    );
    cluster::stop_bare_clients(vec![direct, proxied]).await;
    processes.testdc.stop();
}
