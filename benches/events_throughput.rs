//! Incoming messages from testdc through the event log to a webhook receiver on loopback: how
//! many events per second the whole path carries, and the end-to-end latency at a steady rate.
//!
//! `cargo bench --bench events_throughput` (env `EVENTS_BOTS`, default 20; `EVENTS_N`, default
//! 20,000; `EVENTS_SENDERS`, default 8; `EVENTS_RATE`, default 100; `EVENTS_SECONDS`, default
//! 30; `EVENTS_PARALLEL`, default max(32, bots); `EVENTS_INJECT_RATE`, default 0 = unpaced;
//! `EVENTS_STALL_S`, default 20; `EVENTS_TIMEOUT_S`, default 600; `EVENTS_RUST_LOG`, the
//! server's `RUST_LOG`, default `info`).
//!
//! Processes: the real `tgfleet testdc` and `tgfleet serve` (SQLite) on the 2 cores, and this
//! one: the load generator and the webhook receiver. `EVENTS_BOTS` bot accounts are created
//! through the REST API (each a testdc bot first, `POST /bots`); they receive updates by
//! default. One webhook for `message.received` points at the receiver, a small HTTP/1.1 server
//! on 127.0.0.1 in this process (plain tokio: the root crate has no HTTP server among its
//! dependencies) that answers 200 at once and records each delivery's `webhook-id`, text and
//! arrival. Messages are injected with testdc's control API `POST /messages {from_phone, to:
//! "@bot", text}` (a testdc user writing to a bot), round-robin over the bots.
//!
//! Deliveries are ordered per (webhook, account): one account's events reach an endpoint one
//! at a time, so the figure over `EVENTS_BOTS` accounts measures the dispatcher with at most
//! that many attempts in flight (`webhooks.parallel` is raised to at least the bot count).
//!
//! 1. **Throughput**: `EVENTS_N` messages as fast as the control API takes them
//!    (`EVENTS_SENDERS` requests in flight; `EVENTS_INJECT_RATE` paces them instead). Events/s
//!    from the first injection to the last delivery; also the injection rate, the log-append
//!    rate (the server's `tgfleet_events_total{type="message.received"}`, scraped every
//!    100 ms), the delivery rate once the log holds everything, and each process's CPU time.
//!    Every text must be delivered exactly once (distinct `webhook-id`s, no duplicate, none
//!    missing), or the bench fails at its end (exit code ≠ 0, the processes' logs kept). When
//!    deliveries stop short (nothing new for `EVENTS_STALL_S`), one more message goes to every
//!    bot so that grammers sees the pts gap, and the bench reports how many then arrived.
//! 2. **Latency**: `EVENTS_RATE` messages per second for `EVENTS_SECONDS`, each timed from the
//!    start of its control API call to its webhook's arrival: p50, p90, p99, max; split at the
//!    event's `occurred_at` (when the server had the update, before appending it) into
//!    testdc → server and server → webhook (wall clocks of one machine).

#[path = "common/mod.rs"]
mod common;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::cluster::{self, call, Processes};
use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    common::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

// ---------------------------------------------------------------- the webhook receiver

/// One request the receiver got.
struct Arrival {
    webhook_id: String,
    text: String,
    occurred_at: Option<DateTime<Utc>>,
    at: Instant,
    wall: DateTime<Utc>,
    signed: bool,
}

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<Arrival>>,
    count: AtomicUsize,
    /// Requests that did not parse (answered 400).
    bad: AtomicUsize,
}

impl Sink {
    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// Listens on a free loopback port: the webhook's URL.
async fn start_receiver(sink: Arc<Sink>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver");
    let addr = listener.local_addr().expect("receiver address");
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(serve_connection(sock, Arc::clone(&sink)));
        }
    });
    format!("http://{addr}/hook")
}

/// HTTP/1.1 with keep-alive, as reqwest sends it: a head, a `content-length` body, repeat.
async fn serve_connection(mut sock: TcpStream, sink: Arc<Sink>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let (at, wall) = (Instant::now(), Utc::now());
        let body: Option<Value> = serde_json::from_slice(&buf[head_end..head_end + len]).ok();
        buf.drain(..head_end + len);
        let text = body
            .as_ref()
            .and_then(|b| b["data"]["message"]["text"].as_str())
            .map(str::to_owned);
        let webhook_id = header("webhook-id");
        let answer: &[u8] = match (webhook_id, text) {
            (Some(webhook_id), Some(text)) => {
                let occurred_at = body
                    .as_ref()
                    .and_then(|b| b["occurred_at"].as_str())
                    .and_then(|s| s.parse().ok());
                let signed = header("webhook-signature").is_some_and(|s| s.starts_with("v1,"))
                    && header("webhook-timestamp").is_some();
                sink.got.lock().unwrap().push(Arrival {
                    webhook_id,
                    text,
                    occurred_at,
                    at,
                    wall,
                    signed,
                });
                sink.count.fetch_add(1, Ordering::Relaxed);
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
            }
            _ => {
                sink.bad.fetch_add(1, Ordering::Relaxed);
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
            }
        };
        if sock.write_all(answer).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------- processes and figures

/// What the phase-1 sampler sees every 100 ms.
#[derive(Clone)]
struct Sample {
    at: Instant,
    injected: usize,
    /// `message.received` events in the log since the phase began.
    logged: u64,
    delivered: usize,
    /// The server's CPU seconds so far.
    server_cpu: f64,
}

/// utime + stime of a whole process (every thread), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let ticks = common::cpu_ticks(pid);
    // SAFETY: a plain sysconf query.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// CPU seconds so far of this process, the server and testdc.
fn cpu(pids: &[String; 3]) -> [f64; 3] {
    [
        cpu_seconds(&pids[0]),
        cpu_seconds(&pids[1]),
        cpu_seconds(&pids[2]),
    ]
}

/// The server's `tgfleet_events_total{type="message.received"}`.
async fn logged(http: &reqwest::Client, metrics: &str) -> Option<u64> {
    let text = http.get(metrics).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("tgfleet_events_total{type=\"message.received\"} ")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    })
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        quantile(&ms, 0.50),
        quantile(&ms, 0.90),
        quantile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// A testdc user writes `text` to `@bot`: the control API call's start and duration.
async fn inject(
    http: &reqwest::Client,
    control: &str,
    from: &str,
    bot: &str,
    text: String,
) -> (Instant, DateTime<Utc>, Duration) {
    let (started, wall) = (Instant::now(), Utc::now());
    let body = json!({"from_phone": from, "to": format!("@{bot}"), "text": text});
    call(
        http.post(format!("{control}/messages")).json(&body),
        200,
        "injecting a message",
    )
    .await;
    (started, wall, started.elapsed())
}

/// How many of the receiver's arrivals have a text starting with `prefix`.
fn arrived(sink: &Sink, prefix: &str) -> usize {
    sink.got
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.text.starts_with(prefix))
        .count()
}

/// Waits until `want` arrivals match `prefix`, or until none came for `stall` (or `bound`
/// passed); how many did.
async fn wait_delivered(
    sink: &Sink,
    prefix: &str,
    want: usize,
    stall: Duration,
    bound: Duration,
    what: &str,
) -> usize {
    let started = Instant::now();
    let (mut shown, mut moved, mut last) = (Instant::now(), Instant::now(), 0);
    loop {
        let have = arrived(sink, prefix);
        if have >= want {
            return have;
        }
        if have != last {
            (last, moved) = (have, Instant::now());
        }
        if moved.elapsed() >= stall || started.elapsed() >= bound {
            println!(
                "  … {what}: {have} of {want} delivered; nothing more for {:.0} s",
                moved.elapsed().as_secs_f64()
            );
            return have;
        }
        if shown.elapsed() > Duration::from_secs(10) {
            println!("  … {what}: {have} of {want} delivered");
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Lines of the server's log that say grammers dropped updates (its channel was full).
fn dropped_warnings(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("updates channel full"))
        .count()
}

/// Each delivered once: no `webhook-id` twice, every text of `prefix` 0..n there once.
fn exactly_once(sink: &Sink, prefix: &str, n: usize) -> Result<(), String> {
    let got = sink.got.lock().unwrap();
    let mine: Vec<&Arrival> = got.iter().filter(|a| a.text.starts_with(prefix)).collect();
    let ids: HashSet<&str> = mine.iter().map(|a| a.webhook_id.as_str()).collect();
    let texts: HashSet<&str> = mine.iter().map(|a| a.text.as_str()).collect();
    let missing: Vec<usize> = (0..n)
        .filter(|i| !texts.contains(format!("{prefix}{i}").as_str()))
        .collect();
    if mine.len() == n && ids.len() == n && texts.len() == n && missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{prefix:?} messages: {} deliveries, {} distinct webhook-ids, {} distinct texts for {n} \
         injected; {} missing (first: {:?})",
        mine.len(),
        ids.len(),
        texts.len(),
        missing.len(),
        &missing[..missing.len().min(10)]
    ))
}

/// One more message to every bot: grammers notices the pts gap that dropped updates left and
/// fetches them with getDifference (without one it would wait up to 15 minutes).
async fn nudge(http: &reqwest::Client, control: &str, from: &str, names: &[String], round: usize) {
    for name in names {
        inject(http, control, from, name, format!("nudge {round} {name}")).await;
    }
}

// ---------------------------------------------------------------- the bench

async fn run() {
    let bots = common::knob("EVENTS_BOTS", 20).max(1);
    let n = common::knob("EVENTS_N", 20_000).max(1);
    let senders = common::knob("EVENTS_SENDERS", 8).max(1);
    let rate = common::knob("EVENTS_RATE", 100).max(1);
    let seconds = common::knob("EVENTS_SECONDS", 30);
    let parallel = common::knob("EVENTS_PARALLEL", bots.max(32));
    // 0: as fast as the control API takes them.
    let inject_rate = common::knob("EVENTS_INJECT_RATE", 0);
    let bound = Duration::from_secs(common::knob("EVENTS_TIMEOUT_S", 600) as u64);
    let stall = Duration::from_secs(common::knob("EVENTS_STALL_S", 20) as u64);
    let mut failures: Vec<String> = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("http client");
    let metrics_port = cluster::free_port();
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
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
            // `EVENTS_RUST_LOG` sets the server's RUST_LOG (e.g. `info,grammers_session=debug`).
            (
                "RUST_LOG",
                std::env::var("EVENTS_RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
            ("TGFLEET__WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true".into()),
            ("TGFLEET__WEBHOOKS__PARALLEL", parallel.to_string()),
            // Set again after the helper's own choice, so this one is in force and known here.
            (
                "TGFLEET__METRICS__LISTEN",
                format!("127.0.0.1:{metrics_port}"),
            ),
        ],
    )
    .await;
    let pids = [
        std::process::id().to_string(),
        server.child.id().to_string(),
        testdc.child.id().to_string(),
    ];

    // The API user, the bots, the webhook.
    let (_, token) = cluster::api_user(&http, &api, "events@example.org").await;
    let token = token.as_str();
    let started = Instant::now();
    let names: Vec<String> = (0..bots).map(|i| format!("events_bench{i}_bot")).collect();
    let ids: Vec<i64> = futures::stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let (http, api, control) = (&http, &api, &control);
            async move {
                let bot_token = format!("{}:AA{:0>35}", 727_200 + i, i);
                call(
                    http.post(format!("{control}/bots"))
                        .json(&json!({"token": bot_token, "username": name})),
                    201,
                    "adding a testdc bot",
                )
                .await;
                let account = call(
                    http.post(format!("{api}/api/v1/telegram/accounts"))
                        .bearer_auth(token)
                        .json(&json!({"kind": "bot", "bot_token": bot_token})),
                    201,
                    "creating a bot account",
                )
                .await;
                let id = account["id"].as_i64().expect("account id");
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let a = call(
                        http.get(format!("{api}/api/v1/telegram/accounts/{id}"))
                            .bearer_auth(token),
                        200,
                        "reading a bot account",
                    )
                    .await;
                    if a["state"] == "active" {
                        break;
                    }
                    assert!(Instant::now() < deadline, "bot {id} never active: {a}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                id
            }
        })
        .buffered(4)
        .collect()
        .await;
    let sink = Arc::new(Sink::default());
    let url = start_receiver(Arc::clone(&sink)).await;
    call(
        http.post(format!("{api}/api/v1/webhooks"))
            .bearer_auth(token)
            .json(&json!({"url": url, "events": ["message.received"]})),
        201,
        "creating the webhook",
    )
    .await;
    // Testdc users that write to the bots (created on first use; none ends in 9, a 2FA phone).
    let phones: Vec<String> = (0..senders.clamp(1, 8))
        .map(|i| format!("+1555700000{i}"))
        .collect();
    // One message to every bot: each one's receiving is up and the whole path works.
    for (i, name) in names.iter().enumerate() {
        inject(&http, &control, &phones[0], name, format!("warm {i}")).await;
    }
    let warm = wait_delivered(&sink, "warm ", bots, stall, bound, "warm-up").await;
    assert_eq!(warm, bots, "the warm-up messages did not all arrive");
    println!(
        "events_throughput: {} bot accounts active and warm in {:.1} s; webhooks.parallel = {parallel}; \
         pids: server {}, testdc {}",
        ids.len(),
        started.elapsed().as_secs_f64(),
        pids[1],
        pids[2],
    );

    // ------------------------------------------------ phase 1: throughput
    let base_logged = logged(&http, &metrics).await.unwrap_or(0);
    let injected = Arc::new(AtomicUsize::new(0));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let delivered_before = sink.count();
    let sampling = {
        let (http, metrics, server_pid) = (http.clone(), metrics.clone(), pids[1].clone());
        let (injected, samples, sink) = (
            Arc::clone(&injected),
            Arc::clone(&samples),
            Arc::clone(&sink),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let log = logged(&http, &metrics).await.unwrap_or(0);
                samples.lock().unwrap().push(Sample {
                    at: Instant::now(),
                    injected: injected.load(Ordering::Relaxed),
                    logged: log.saturating_sub(base_logged),
                    delivered: sink.count() - delivered_before,
                    server_cpu: cpu_seconds(&server_pid),
                });
            }
        })
    };
    let cpu_before = cpu(&pids);
    let t0 = Instant::now();
    let progress = {
        let samples = Arc::clone(&samples);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                if let Some(s) = samples.lock().unwrap().last() {
                    println!(
                        "  t = {:5.1} s: injected {}, in the log {}, delivered {}",
                        s.at.duration_since(t0).as_secs_f64(),
                        s.injected,
                        s.logged,
                        s.delivered,
                    );
                }
            }
        })
    };
    let pace = (inject_rate > 0).then(|| {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / inject_rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        tokio::sync::Mutex::new(tick)
    });
    futures::stream::iter(0..n)
        .map(|i| {
            let (http, control, injected, pace) = (&http, &control, &injected, &pace);
            let (from, bot) = (&phones[i % phones.len()], &names[i % bots]);
            async move {
                if let Some(pace) = pace {
                    pace.lock().await.tick().await;
                }
                inject(http, control, from, bot, format!("tp {i}")).await;
                injected.fetch_add(1, Ordering::Relaxed);
            }
        })
        .buffer_unordered(senders)
        .collect::<Vec<()>>()
        .await;
    let injected_in = t0.elapsed();
    let got = wait_delivered(&sink, "tp ", n, stall, bound, "throughput phase").await;
    let cpu_after = cpu(&pids);
    // The sampler's last look at the log (it lags the appends by at most its 100 ms tick).
    tokio::time::sleep(Duration::from_millis(250)).await;
    sampling.abort();
    progress.abort();
    let mut times: Vec<Instant> = sink
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.text.starts_with("tp "))
        .map(|a| a.at)
        .collect();
    times.sort_unstable();
    let last = *times
        .last()
        .expect("no delivery at all in the throughput phase");
    let all_in = last.duration_since(t0);
    let samples = samples.lock().unwrap().clone();
    let logged_n = samples.last().map_or(0, |s| s.logged);
    // When the log first held what it holds at the end.
    let full = samples.iter().position(|s| s.logged >= logged_n);
    let logged_at = full.map(|i| samples[i].at.duration_since(t0));
    // From then on the server only dispatches: until the last delivery the sampler saw.
    let dispatch_only = full.and_then(|i| {
        let delivered = samples.last()?.delivered;
        let end = samples.iter().position(|s| s.delivered >= delivered)?;
        let (a, b) = (&samples[i], &samples[end]);
        let secs = b.at.duration_since(a.at).as_secs_f64();
        (secs >= 1.0).then(|| (b.delivered - a.delivered, secs, b.server_cpu - a.server_cpu))
    });
    // The steady part: from 10 % to 90 % of the deliveries.
    let (p10, p90) = (times[got / 10], times[(got * 9 / 10).min(got - 1)]);
    let steady = (got * 8 / 10) as f64 / p90.duration_since(p10).as_secs_f64().max(1e-9);
    let rate_of = |k: usize, d: Duration| k as f64 / d.as_secs_f64().max(1e-9);
    let paced = if inject_rate > 0 {
        format!("paced at {inject_rate}/s")
    } else {
        "as fast as testdc takes them".to_owned()
    };
    println!(
        "events_throughput: {n} messages to {bots} bots, {paced}, {senders} injections in flight"
    );
    println!(
        "events_throughput: injected in {:.2} s ({:.0} msgs/s); {logged_n} in the log after {} ; {got} delivered after {:.2} s",
        injected_in.as_secs_f64(),
        rate_of(n, injected_in),
        logged_at.map_or("?".to_owned(), |d| format!(
            "{:.2} s ({:.0} events/s)",
            d.as_secs_f64(),
            rate_of(logged_n as usize, d)
        )),
        all_in.as_secs_f64(),
    );
    println!(
        "events_throughput: **{:.0} events/s** end to end (first injection → last delivery; goal ≥ 5,000); \
         {steady:.0}/s between 10 % and 90 % delivered",
        rate_of(got, all_in)
    );
    let spent: Vec<f64> = (0..3).map(|i| cpu_after[i] - cpu_before[i]).collect();
    let per = |s: f64| s * 1e6 / got.max(1) as f64;
    println!(
        "events_throughput: CPU during the phase: bench (load + receiver) {:.1} s, server {:.1} s, testdc {:.1} s; \
         per event {:.0} / {:.0} / {:.0} µs",
        spent[0],
        spent[1],
        spent[2],
        per(spent[0]),
        per(spent[1]),
        per(spent[2]),
    );
    if let Some((k, secs, cpu_s)) = dispatch_only {
        println!(
            "events_throughput: once the log held them all: {k} deliveries in {secs:.1} s ({:.0}/s), \
             server CPU {:.0} µs per delivery ({:.0} % of a core)",
            k as f64 / secs,
            cpu_s * 1e6 / k.max(1) as f64,
            cpu_s * 100.0 / secs
        );
    }
    if got < n {
        let warnings = dropped_warnings(&server.log);
        let why = format!(
            "throughput phase: {} of {n} messages never reached the log while nothing else came \
             ({logged_n} logged; the server's log says \"updates channel full\" {warnings} times: \
             grammers logs a drop only 5 min after the previous warning or its start)",
            n - got
        );
        println!("events_throughput: FAILED {why}");
        failures.push(why);
        // Make the gaps visible to grammers and see whether getDifference brings them.
        nudge(&http, &control, &phones[0], &names, 1).await;
        let late = wait_delivered(&sink, "tp ", n, stall, bound, "after a nudge").await;
        println!(
            "events_throughput: after one more message to each bot, {} of the {} missing arrived",
            late - got,
            n - got
        );
    }
    if let Err(e) = exactly_once(&sink, "tp ", n) {
        println!("events_throughput: FAILED throughput phase: {e}");
        failures.push(e);
    } else {
        println!(
            "events_throughput: every message of the phase delivered exactly once (distinct webhook-ids, none missing)"
        );
    }

    // ------------------------------------------------ phase 2: latency at a steady rate
    let total = rate * seconds;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let t1 = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (http, control) = (http.clone(), control.clone());
        let (from, bot) = (phones[i % phones.len()].clone(), names[i % bots].clone());
        calls.spawn(async move {
            let (at, wall, took) = inject(&http, &control, &from, &bot, format!("lat {i}")).await;
            (i, at, wall, took)
        });
    }
    let mut sent = vec![None; total];
    while let Some(done) = calls.join_next().await {
        let (i, at, wall, took) = done.expect("an injection");
        sent[i] = Some((at, wall, took));
    }
    let offered = total as f64 / t1.elapsed().as_secs_f64().max(1e-9);
    let got = wait_delivered(&sink, "lat ", total, stall, bound, "latency phase").await;
    if got < total {
        let why = format!("latency phase: {} of {total} never arrived", total - got);
        println!("events_throughput: FAILED {why}");
        failures.push(why);
    }
    if let Err(e) = exactly_once(&sink, "lat ", total) {
        failures.push(e);
    }
    let arrivals = sink.got.lock().unwrap();
    let (mut e2e, mut to_server, mut to_hook, mut control_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for a in arrivals.iter().filter(|a| a.text.starts_with("lat ")) {
        let i: usize = a.text["lat ".len()..].parse().expect("a latency text");
        let Some((at, wall, took)) = sent[i] else {
            continue;
        };
        e2e.push(a.at.duration_since(at).as_secs_f64() * 1e3);
        control_ms.push(took.as_secs_f64() * 1e3);
        if let Some(occurred) = a.occurred_at {
            to_server.push((occurred - wall).num_microseconds().unwrap_or(0) as f64 / 1e3);
            to_hook.push((a.wall - occurred).num_microseconds().unwrap_or(0) as f64 / 1e3);
        }
    }
    println!(
        "events_throughput: {total} messages at {rate}/s for {seconds} s ({offered:.1}/s offered), {got} delivered"
    );
    println!(
        "events_throughput: **end to end {}** (control call start → webhook arrival; goal p99 ≤ 50 ms)",
        summary(e2e)
    );
    println!(
        "events_throughput:   testdc → server (the event's occurred_at): {}",
        summary(to_server)
    );
    println!(
        "events_throughput:   server → webhook (append, dispatch, POST): {}",
        summary(to_hook)
    );
    println!(
        "events_throughput:   the control API call alone: {}",
        summary(control_ms)
    );
    let unsigned = arrivals.iter().filter(|a| !a.signed).count();
    if unsigned > 0 {
        failures.push(format!("{unsigned} deliveries without a webhook signature"));
    }
    let all_ids: HashSet<&str> = arrivals.iter().map(|a| a.webhook_id.as_str()).collect();
    if all_ids.len() != arrivals.len() {
        failures.push(format!(
            "{} deliveries repeated a webhook-id",
            arrivals.len() - all_ids.len()
        ));
    }
    drop(arrivals);
    server.stop();
    testdc.stop();
    if !failures.is_empty() {
        // The processes' logs, for a look at what went wrong.
        let kept = dir.keep();
        panic!(
            "events_throughput failed (logs in {}):\n{}",
            kept.display(),
            failures.join("\n")
        );
    }
}
