//! Routing overhead: `messages.sendMessage` to self through tgfleet (REST → registry → account
//! actor → grammers → testdc) against bare grammers clients (→ testdc), in the same run.
//!
//! `cargo bench --bench routing_overhead` (env `ROUTING_ACCOUNTS`, default 1000;
//! `ROUTING_SECONDS` per measured arm, default 10; `ROUTING_CONCURRENCY`, default 64;
//! `ROUTING_ROUNDS`, default 2). Three processes:
//! 1. **testdc**: the real `tgfleet testdc` binary (fake DCs, HTTP control API);
//! 2. **server**: the real `tgfleet serve`, its Telegram that testdc (`telegram.testdc_control`),
//!    its own SQLite data dir;
//! 3. **load generator** (this process): registers an API user and logs N accounts in by code
//!    through the REST API, then drives both arms.
//!
//! - **REST arm**: `POST /api/v1/telegram/accounts/{id}/messages` `{"peer":"me","text":…}` with
//!   a bearer token over keep-alive HTTP/1.1 connections (reqwest); 201 is success.
//! - **bare arm**: N grammers `SenderPool`s in this process, built as the account actor builds
//!   its client (`NoRetries`, updates drained) on the *same* sessions — the server's sealed
//!   sessions are opened with its session key — each invoking `messages.sendMessage` to
//!   `inputPeerSelf` with the same text. testdc answers AUTH_KEY_DUPLICATED only when
//!   `strict_duplicate_keys` is on (off in `tgfleet testdc`), so a key live in the server and in
//!   a bare client at once is accepted; the bare clients still quit at the end of every bare
//!   phase, so the REST arm runs without them.
//!
//! Both arms keep the same number of requests in flight (workers each with one request
//! outstanding), spread round-robin over the N accounts, for a fixed duration, after a warm-up
//! pass that sends one message from every account (the bare clients connect there). Arms are
//! interleaved (bare, REST, bare, REST …) so drift on the shared machine hits both alike, and the
//! whole sequence runs at `ROUTING_CONCURRENCY` and again with 1 in flight, where the added
//! latency is least blurred by queueing. Reported per arm: throughput (msgs/s), p50/p99/max
//! latency, and the CPU time each process spent per message during the timed part (from
//! /proc/<pid>/stat: this process, the server, testdc), which says where the time goes without a
//! profiler; then the ratio REST/bare and the added p99 (REST p99 − bare p99). Any non-2xx answer
//! or error is counted and printed, and makes the figure invalid; every success must also be a
//! request testdc counted. Last, the store operations the REST arm ran, per message and by `op`
//! (the server's `tgfleet_store_queries_total`, scraped around each REST phase).
//!
//! Limits raised because they are not the subject: `auth.user_rate_per_second` (one API user
//! sends every message; the default 50/s would be the bottleneck), `fleet.calls_per_second` /
//! `fleet.calls_burst` (per-account pacing, default 5/s burst 10: at 64 in flight over 1,000
//! accounts each account sends several messages a second), `auth.access_ttl_s` (one token for
//! the whole run). Everything else is the product default (log level, shards, timeouts).

#[path = "common/mod.rs"]
mod common;
use common::cluster::{
    self, call, load_sessions, onboard, start_bare_clients, stop_bare_clients, Fleet, Processes,
};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tgfleet_actors::session::StoredKeys;

const TEXT: &str = "routing overhead bench: the same text on both arms";
/// A safety bound per request; a request that hits it is counted as an error.
const REQUEST_BOUND: Duration = Duration::from_secs(30);

fn main() {
    common::raise_fd_limit();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

// ---------------------------------------------------------------- processes

// ---------------------------------------------------------------- setup

// ---------------------------------------------------------------- bare grammers clients

// ---------------------------------------------------------------- REST

struct Rest {
    http: reqwest::Client,
    urls: Vec<String>,
    auth: String,
    body: &'static str,
}

impl Rest {
    fn new(fleet: &Fleet) -> Self {
        Self {
            // One keep-alive connection per worker, as an HTTP client of the service would hold.
            http: reqwest::Client::builder()
                .timeout(REQUEST_BOUND)
                .build()
                .expect("http client"),
            urls: fleet
                .ids
                .iter()
                .map(|id| format!("{}/api/v1/telegram/accounts/{id}/messages", fleet.api))
                .collect(),
            auth: format!("Bearer {}", fleet.token),
            // Serialized once: the load generator's own cost is not the subject.
            body: Box::leak(
                json!({"peer": "me", "text": TEXT})
                    .to_string()
                    .into_boxed_str(),
            ),
        }
    }

    async fn send(&self, i: usize) -> Result<(), String> {
        let response = self
            .http
            .post(&self.urls[i])
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body)
            .send()
            .await
            .map_err(|e| format!("http: {e}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("http: {e}"))?;
        if status.as_u16() == 201 {
            Ok(())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Outcome {
    /// Microseconds per successful request.
    latencies: Vec<u32>,
    errors: usize,
    first_errors: HashMap<String, usize>,
    elapsed: Duration,
    /// CPU ticks (user + system) during the timed part: this process, the server, testdc.
    cpu: [u64; 3],
}

/// The processes whose CPU time is read: "self" for this one, then the server and testdc.
type Pids = [String; 3];

fn cpu_snapshot(pids: &Pids) -> [u64; 3] {
    [
        common::cpu_ticks(&pids[0]),
        common::cpu_ticks(&pids[1]),
        common::cpu_ticks(&pids[2]),
    ]
}

/// Timed `drive`, with the CPU each process spent meanwhile.
async fn timed<F, Fut>(
    accounts: usize,
    workers: usize,
    seconds: Duration,
    pids: &Pids,
    send: F,
) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let before = cpu_snapshot(pids);
    let mut outcome = drive(accounts, workers, Some(seconds), send).await;
    let after = cpu_snapshot(pids);
    outcome.cpu = [0, 1, 2].map(|i| after[i].saturating_sub(before[i]));
    outcome
}

impl Outcome {
    /// CPU microseconds per successful message in each process.
    fn cpu_us_per_msg(&self) -> [f64; 3] {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let n = self.latencies.len().max(1) as f64;
        self.cpu.map(|t| t as f64 / hz * 1e6 / n)
    }

    fn record_error(&mut self, e: String) {
        self.errors += 1;
        let distinct = self.first_errors.len();
        match self.first_errors.get_mut(&e) {
            Some(n) => *n += 1,
            None if distinct < 5 => {
                self.first_errors.insert(e, 1);
            }
            None => {}
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        for (mine, theirs) in self.cpu.iter_mut().zip(other.cpu) {
            *mine += theirs;
        }
        self.errors += other.errors;
        for (e, n) in other.first_errors {
            *self.first_errors.entry(e).or_default() += n;
        }
    }

    fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        self.latencies.sort_unstable();
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        f64::from(self.latencies[rank.clamp(1, self.latencies.len()) - 1]) / 1000.0
    }
}

/// `workers` loops, each with one request outstanding, over accounts round-robin. With a
/// `duration`, until it has passed; without, every account once (the warm-up pass).
async fn drive<F, Fut>(
    accounts: usize,
    workers: usize,
    duration: Option<Duration>,
    send: F,
) -> Outcome
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let total = Arc::new(Mutex::new(Outcome::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (next, send, total) = (Arc::clone(&next), send.clone(), Arc::clone(&total));
        tasks.spawn(async move {
            let mut mine = Outcome::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match deadline {
                    Some(d) if Instant::now() >= d => break,
                    None if n >= accounts => break,
                    _ => {}
                }
                let t = Instant::now();
                match send(n % accounts).await {
                    Ok(()) => mine
                        .latencies
                        .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => mine.record_error(e),
                }
            }
            total.lock().unwrap_or_else(|e| e.into_inner()).merge(mine);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("load worker");
    }
    let mut outcome = std::mem::take(&mut *total.lock().unwrap_or_else(|e| e.into_inner()));
    outcome.elapsed = started.elapsed();
    outcome
}

#[derive(Clone, Copy, PartialEq)]
enum Arm {
    Bare,
    Rest,
}

impl Arm {
    fn name(self) -> &'static str {
        match self {
            Arm::Bare => "bare",
            Arm::Rest => "REST",
        }
    }
}

/// One measured phase of one arm: warm-up pass, then `seconds` of load.
async fn phase(
    arm: Arm,
    workers: usize,
    seconds: Duration,
    sessions: &Arc<Vec<StoredKeys>>,
    rest: &Arc<Rest>,
    pids: &Pids,
) -> Outcome {
    let accounts = sessions.len();
    match arm {
        Arm::Bare => {
            let clients = Arc::new(start_bare_clients(sessions));
            let send = {
                let clients = Arc::clone(&clients);
                move |i: usize| {
                    let clients = Arc::clone(&clients);
                    async move { cluster::bare_send(&clients[i], TEXT, REQUEST_BOUND).await }
                }
            };
            let warm = drive(accounts, workers.max(16), None, send.clone()).await;
            report_errors("bare warm-up", &warm);
            let outcome = timed(accounts, workers, seconds, pids, send).await;
            let clients = Arc::try_unwrap(clients)
                .unwrap_or_else(|_| panic!("bare clients still shared after the phase"));
            stop_bare_clients(clients).await;
            outcome
        }
        Arm::Rest => {
            let send = {
                let rest = Arc::clone(rest);
                move |i: usize| {
                    let rest = Arc::clone(&rest);
                    async move { rest.send(i).await }
                }
            };
            let warm = drive(accounts, workers.max(16), None, send.clone()).await;
            report_errors("REST warm-up", &warm);
            timed(accounts, workers, seconds, pids, send).await
        }
    }
}

fn report_errors(what: &str, outcome: &Outcome) {
    if outcome.errors > 0 {
        println!(
            "routing_overhead: {what}: {} ERRORS (figure invalid): {:?}",
            outcome.errors, outcome.first_errors
        );
    }
}

fn print_phase(round: usize, workers: usize, arm: Arm, o: &mut Outcome) {
    let [me, server, testdc] = o.cpu_us_per_msg();
    println!(
        "routing_overhead: {workers} in flight, round {round}, {:>4}: {:>8.0} msgs/s, \
         p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms ({} ok, {} errors); CPU µs/msg: \
         load generator {me:.1}, server {server:.1}, testdc {testdc:.1}",
        arm.name(),
        o.throughput(),
        o.percentile_ms(50.0),
        o.percentile_ms(99.0),
        o.percentile_ms(100.0),
        o.latencies.len(),
        o.errors
    );
    report_errors(arm.name(), o);
}

/// Operations the server runs on a clock whether or not it routes anything (the post scheduler,
/// the webhook dispatcher, the event metrics, the proxy checks): not the REST arm's cost.
const BACKGROUND_OPS: [&str; 5] = [
    "due_deliveries",
    "list_webhooks",
    "webhook_backlog",
    "event_types",
    "list_proxies",
];

/// Store operations the server has run, by `op`, from its `tgfleet_store_queries_total`.
async fn store_ops(http: &reqwest::Client, metrics: &str) -> HashMap<String, u64> {
    let text = http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("metrics scrape")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tgfleet_store_queries_total{op=\"")?;
            let (op, count) = rest.split_once("\"} ")?;
            Some((op.to_owned(), count.parse().ok()?))
        })
        .collect()
}

async fn testdc_requests(http: &reqwest::Client, control: &str) -> u64 {
    let stats = call(http.get(format!("{control}/stats")), 200, "testdc stats").await;
    stats["stats"]["requests"].as_u64().expect("stats.requests")
}

async fn run() {
    let n = common::knob("ROUTING_ACCOUNTS", 1000);
    let seconds = Duration::from_secs(common::knob("ROUTING_SECONDS", 10) as u64);
    let concurrency = common::knob("ROUTING_CONCURRENCY", 64);
    let rounds = common::knob("ROUTING_ROUNDS", 2);
    let dir = tempfile::tempdir().expect("temp dir");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client");

    let big = "1000000".to_owned();
    let Processes {
        testdc,
        server,
        api,
        control,
        metrics,
        data_dir,
    } = cluster::start(
        dir.path(),
        &http,
        &[
            ("TGFLEET__FLEET__CALLS_PER_SECOND", big.clone()),
            ("TGFLEET__FLEET__CALLS_BURST", big),
        ],
    )
    .await;

    let pids: Pids = [
        "self".to_owned(),
        server.child.id().to_string(),
        testdc.child.id().to_string(),
    ];
    let fleet = onboard(&http, &api, &control, n).await;
    let sessions = Arc::new(load_sessions(&data_dir, &fleet.ids).await);
    let rest = Arc::new(Rest::new(&fleet));
    println!(
        "routing_overhead: {n} accounts, {} s per arm per round, {rounds} rounds, arms interleaved",
        seconds.as_secs()
    );

    let mut invalid = false;
    for workers in [concurrency, 1] {
        let mut totals = [Outcome::default(), Outcome::default()];
        let mut rest_store_ops = std::collections::BTreeMap::<String, u64>::new();
        for round in 1..=rounds {
            for (slot, arm) in [Arm::Bare, Arm::Rest].into_iter().enumerate() {
                let before = testdc_requests(&http, &control).await;
                let ops_before = store_ops(&http, &metrics).await;
                let mut o = phase(arm, workers, seconds, &sessions, &rest, &pids).await;
                let reached = testdc_requests(&http, &control).await - before;
                if arm == Arm::Rest {
                    for (op, n) in store_ops(&http, &metrics).await {
                        let ran = n - ops_before.get(&op).copied().unwrap_or(0);
                        if ran > 0 && !BACKGROUND_OPS.contains(&op.as_str()) {
                            *rest_store_ops.entry(op).or_default() += ran;
                        }
                    }
                }
                print_phase(round, workers, arm, &mut o);
                // Every success must be a request testdc answered (warm-up and pings add more).
                assert!(
                    reached >= o.latencies.len() as u64,
                    "{} successes but testdc saw only {reached} requests",
                    o.latencies.len()
                );
                invalid |= o.errors > 0;
                let elapsed = totals[slot].elapsed + o.elapsed;
                totals[slot].merge(o);
                totals[slot].elapsed = elapsed;
            }
        }
        let [mut bare, mut rest_total] = totals;
        let cpu = |o: &Outcome| {
            let [me, server, testdc] = o.cpu_us_per_msg();
            format!(
                "{me:.1} + {server:.1} + {testdc:.1} = {:.1}",
                me + server + testdc
            )
        };
        println!(
            "routing_overhead: {workers} in flight, all rounds, CPU µs/msg (load generator + \
             server + testdc): bare {}; REST {}",
            cpu(&bare),
            cpu(&rest_total)
        );
        let (bare_p99, rest_p99) = (bare.percentile_ms(99.0), rest_total.percentile_ms(99.0));
        println!(
            "routing_overhead: {workers} in flight, all rounds: bare {:.0} msgs/s (p50 {:.3} ms, \
             p99 {bare_p99:.3} ms); REST {:.0} msgs/s (p50 {:.3} ms, p99 {rest_p99:.3} ms); \
             ratio REST/bare {:.2}; added p50 {:.3} ms, added p99 {:.3} ms",
            bare.throughput(),
            bare.percentile_ms(50.0),
            rest_total.throughput(),
            rest_total.percentile_ms(50.0),
            rest_total.throughput() / bare.throughput(),
            rest_total.percentile_ms(50.0) - bare.percentile_ms(50.0),
            rest_p99 - bare_p99,
        );
        // From the server's own metrics: what the REST arm cost the database (the first round's
        // first requests fill the auth and ownership caches; a warm send runs none).
        let sent = rest_total.latencies.len().max(1) as f64;
        println!(
            "routing_overhead: {workers} in flight, all rounds: {:.4} store operations per REST \
             message ({} in all: {rest_store_ops:?})",
            rest_store_ops.values().sum::<u64>() as f64 / sent,
            rest_store_ops.values().sum::<u64>(),
        );
    }
    if invalid {
        println!("routing_overhead: SOME REQUESTS FAILED: the figures above are not valid");
    }

    server.stop();
    testdc.stop();
    assert!(!invalid, "requests failed during the measurement");
}
