//! RSS per connected idle account, against testdc in a separate process.
//!
//! `cargo bench --bench idle_rss` (env `IDLE_RSS_ACCOUNTS`, default 10,000; 1,000 with
//! `IDLE_RSS_RECEIVE=1`). Three processes, all this binary:
//! 1. **testdc** (role `testdc`): the fake DC, plus a line-based control socket for key
//!    registration, connection counts and dropping every connection;
//! 2. **login** (role `login`): logs N accounts in by code through account actors, writing their
//!    sealed sessions to a SQLite file, then exits, so its garbage cannot flatter the figure;
//! 3. **measure** (the parent): opens the same database, records its RSS, starts the N account
//!    actors (each connects at start, as a fleet start does), waits until testdc counts N
//!    connections, and reports (RSS − baseline) / N; then three times: testdc drops every
//!    connection, each account sends one message (which reopens its connection: a logged-in
//!    account's client does not hear the drop, see `LiveClient::mute_updates`), and the figure is
//!    taken again.
//!
//! With `IDLE_RSS_COLD_START=1` the measuring process starts the accounts the way `tgfleet serve`
//! does instead — the supervisors start every persisted active account, paced at the default
//! `fleet.starts_per_second` (200) — and also reports the cold start: time until testdc counts
//! every connection, and the process's peak RSS.
//!
//! With `IDLE_RSS_RECEIVE=1` the accounts receive their updates (`receive_updates = true` on
//! their rows, written before the actors start): after the fresh figure, a testdc user sends
//! `IDLE_RSS_MESSAGES` (default 100) private messages to every account, one round of one message
//! per account every `IDLE_RSS_SEND_PAUSE_MS` (default 100 ms), so they arrive by push while the
//! accounts are connected; once the event log holds N × M `message.received` events and things
//! have settled, the figure is taken again, and once more `IDLE_RSS_DECAY_S` (default 12 s) later,
//! when jemalloc's decay has returned what receiving freed (then the reconnect rounds, as
//! without it). Each report also says how much of the growth is glibc's heap (SQLite's page
//! caches: SQLite allocates through glibc, not jemalloc), and the receive mode lists jemalloc's
//! large allocations that grew, by size class.
//!
//! The allocator is jemalloc, as in the `tgfleet` binary: with glibc malloc the 1 MiB connection
//! buffers freed by a reconnect raise glibc's mmap threshold and their successors land in the
//! heap, where they stay resident (see MTPROTO-NOTES.md).

#[path = "common/mod.rs"]
mod common;
use common::{
    bench_owner, knob, proc_status_kib, raise_fd_limit, request, rss_kib, spawn_actor, user_account,
};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tgfleet_actors::{
    AccountEnv, AccountLimits, SendCode, SendMessage, SignIn, TelegramParams, TelegramTarget,
};
use tgfleet_persistence::{AccountUpdate, EventFilter, EventType, SessionCipher};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const CODE: &str = "24680";
/// The testdc user that writes to every account in the receive mode (a sandbox phone: created
/// on its first message).
const SENDER_PHONE: &str = "+17779999990";
const BOUND: Duration = Duration::from_secs(600);

fn main() {
    raise_fd_limit();
    // `cargo bench` passes `--bench`; nothing else to parse.
    match std::env::var("IDLE_RSS_ROLE").as_deref() {
        Ok("testdc") => runtime().block_on(run_testdc()),
        Ok("login") => runtime().block_on(run_login()),
        _ => runtime().block_on(run_measure()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------- testdc process

async fn run_testdc() {
    let dc = tgfleet_testdc::TestDc::start(tgfleet_testdc::TestDcConfig {
        fixed_code: Some(CODE.into()),
        sandbox_directory: true,
        ..Default::default()
    })
    .await
    .expect("testdc starts");
    let control = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("control socket");
    let dcs: Vec<String> = dc
        .dc_addrs()
        .into_iter()
        .map(|(id, a)| format!("{id}={a}"))
        .collect();
    println!(
        "ready {} {}",
        control.local_addr().expect("addr"),
        dcs.join(",")
    );
    loop {
        let Ok((stream, _)) = control.accept().await else {
            continue;
        };
        let dc = dc.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let answer = match line.split_once(' ').unwrap_or((line.as_str(), "")) {
                    ("key", hex) => match decode_hex_key(hex) {
                        Some(key) => {
                            dc.register_auth_key(key);
                            "ok".to_owned()
                        }
                        None => "bad key".to_owned(),
                    },
                    ("drop", _) => format!("dropped {}", dc.faults().drop_connections(None)),
                    ("conns", _) => format!("conns {}", dc.connection_count()),
                    ("send", args) => match parse_send(args) {
                        Some((accounts, messages, pause)) => {
                            let dc = dc.clone();
                            tokio::task::spawn_blocking(move || {
                                send_rounds(&dc, accounts, messages, pause)
                            });
                            format!("sending {}", accounts * messages)
                        }
                        None => "bad send".to_owned(),
                    },
                    ("quit", _) => std::process::exit(0),
                    _ => "unknown".to_owned(),
                };
                if write
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
    }
}

/// `send <accounts> <messages> <pause_ms>`.
fn parse_send(args: &str) -> Option<(usize, usize, Duration)> {
    let mut words = args.split_whitespace().map(|w| w.parse::<u64>().ok());
    let accounts = words.next()??;
    let messages = words.next()??;
    let pause = words.next()??;
    Some((
        accounts as usize,
        messages as usize,
        Duration::from_millis(pause),
    ))
}

/// `messages` rounds; each sends one private message from [`SENDER_PHONE`] to every account
/// (testdc stores it and pushes it to the recipient's live connection), then pauses.
fn send_rounds(dc: &tgfleet_testdc::TestDc, accounts: usize, messages: usize, pause: Duration) {
    let started = Instant::now();
    let mut failed = 0;
    for round in 0..messages {
        for i in 0..accounts {
            let text = format!("message {round} to account {i}");
            if let Err(e) = dc.send_message(SENDER_PHONE, &phone(i), &text) {
                if failed == 0 {
                    eprintln!("testdc: sending to {}: {e}", phone(i));
                }
                failed += 1;
            }
        }
        std::thread::sleep(pause);
    }
    eprintln!(
        "testdc: sent {} messages ({failed} refused) in {:.1} s",
        accounts * messages - failed,
        started.elapsed().as_secs_f64()
    );
}

fn decode_hex_key(hex: &str) -> Option<[u8; 256]> {
    let hex = hex.trim();
    if hex.len() != 512 {
        return None;
    }
    let mut key = [0u8; 256];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

/// A blocking client of the testdc control socket (the key hook is synchronous).
#[derive(Clone)]
struct Control(Arc<Mutex<(TcpStream, BufReader<TcpStream>)>>);

impl Control {
    fn connect(addr: &str) -> Self {
        let stream = TcpStream::connect(addr).expect("testdc control");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Self(Arc::new(Mutex::new((stream, reader))))
    }

    fn cmd(&self, line: &str) -> String {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (stream, reader) = &mut *guard;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("control write");
        let mut answer = String::new();
        reader.read_line(&mut answer).expect("control read");
        answer.trim().to_owned()
    }

    fn connections(&self) -> usize {
        self.cmd("conns")
            .strip_prefix("conns ")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

// ---------------------------------------------------------------- shared setup

struct Setup {
    control: Control,
    dcs: Vec<(i32, SocketAddr)>,
    dir: std::path::PathBuf,
    accounts: usize,
}

impl Setup {
    fn from_env() -> Self {
        let control = std::env::var("IDLE_RSS_CONTROL").expect("IDLE_RSS_CONTROL");
        Self {
            control: Control::connect(&control),
            dcs: parse_dcs(&std::env::var("IDLE_RSS_DCS").expect("IDLE_RSS_DCS")),
            dir: std::env::var("IDLE_RSS_DIR").expect("IDLE_RSS_DIR").into(),
            accounts: accounts(),
        }
    }

    async fn env(&self) -> Arc<AccountEnv> {
        let url = format!("sqlite://{}/bench.db", self.dir.display());
        let store = tgfleet_persistence::connect(&url).await.expect("store");
        let cipher = SessionCipher::local(self.dir.join("session.key")).expect("key");
        let registry = prometheus::Registry::new();
        let control = self.control.clone();
        let mut dcs = self.dcs.clone();
        // Sandbox users live in DC 2: make it home so no account needs a migration.
        dcs.sort_by_key(|(id, _)| (*id != 2, *id));
        Arc::new(
            AccountEnv::new(
                store,
                cipher,
                TelegramParams {
                    api_id: 1,
                    api_hash: "bench".into(),
                    target: TelegramTarget::TestDc {
                        dcs,
                        register_key: Arc::new(move |key| {
                            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
                            let answer = control.cmd(&format!("key {hex}"));
                            assert_eq!(answer, "ok", "testdc refused a key");
                        }),
                    },
                },
                AccountLimits {
                    // Logging 1,000 accounts in at once is the bench's setup, not its subject.
                    pacing: governor::Quota::per_second(std::num::NonZeroU32::new(1000).unwrap()),
                    ..Default::default()
                },
                &registry,
            )
            .expect("account env"),
        )
    }
}

fn accounts() -> usize {
    knob(
        "IDLE_RSS_ACCOUNTS",
        if receive_mode() { 1_000 } else { 10_000 },
    )
}

fn receive_mode() -> bool {
    std::env::var("IDLE_RSS_RECEIVE").is_ok_and(|v| v == "1")
}

/// Account `i`'s phone (sandbox phones ending in 9 have 2FA; these all end in 1).
fn phone(i: usize) -> String {
    format!("+1777{i:06}1")
}

/// A jemalloc statistic or setting (`name` NUL-terminated, `T` its C type).
fn mallctl_read<T: Copy + Default>(name: &[u8]) -> T {
    assert_eq!(name.last(), Some(&0), "mallctl names are NUL-terminated");
    let mut value = T::default();
    let mut len = std::mem::size_of::<T>();
    // SAFETY: a NUL-terminated name read into a value of its own type and size.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr().cast(),
            (&mut value as *mut T).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        );
    }
    value
}

/// Statistics are a snapshot refreshed by writing the epoch.
fn jemalloc_refresh() {
    let mut epoch: u64 = 1;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: "epoch" takes and returns a u64.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            (&mut epoch as *mut u64).cast(),
            &mut len,
            (&mut epoch as *mut u64).cast(),
            std::mem::size_of::<u64>(),
        );
    }
}

/// jemalloc's own view: `allocated` is live heap bytes. It counts grammers' two 1 MiB connection
/// buffers whole (~2.7 MiB per connected account) although only their touched pages are resident,
/// so it cannot replace RSS; what it shows is whether live memory grows across reconnect rounds
/// (a leak) or only RSS does (pages touched and kept).
fn jemalloc_kib() -> (u64, u64) {
    jemalloc_refresh();
    let kib = |name: &[u8]| mallctl_read::<usize>(name) as u64 / 1024;
    (kib(b"stats.allocated\0"), kib(b"stats.resident\0"))
}

/// Live large allocations (≥ 16 KiB) by jemalloc size class, all arenas merged: (class size in
/// bytes, how many).
fn large_allocations() -> Vec<(usize, usize)> {
    jemalloc_refresh();
    let classes: u32 = mallctl_read(b"arenas.nlextents\0");
    (0..classes)
        .map(|j| {
            let size: usize = mallctl_read(format!("arenas.lextent.{j}.size\0").as_bytes());
            // 4096 is MALLCTL_ARENAS_ALL: every arena's statistics merged.
            let count: usize =
                mallctl_read(format!("stats.arenas.4096.lextents.{j}.curlextents\0").as_bytes());
            (size, count)
        })
        .collect()
}

/// Prints the large size classes whose live count changed since `before`, per account.
fn report_large_allocations(what: &str, before: &[(usize, usize)], n: usize) {
    let mut grown: Vec<(usize, i64)> = large_allocations()
        .into_iter()
        .zip(before)
        .map(|((size, now), (_, then))| (size, now as i64 - *then as i64))
        .filter(|(_, delta)| *delta != 0)
        .collect();
    // Largest change in bytes first.
    grown.sort_by_key(|(size, delta)| std::cmp::Reverse(delta.unsigned_abs() * *size as u64));
    let list: Vec<String> = grown
        .iter()
        .take(8)
        .map(|(size, delta)| {
            format!(
                "{} KiB class: {:+} ({:+.2}/account)",
                size / 1024,
                delta,
                *delta as f64 / n as f64
            )
        })
        .collect();
    println!(
        "idle_rss: {what}: live jemalloc large allocations since the baseline: {}",
        if list.is_empty() {
            "unchanged".to_owned()
        } else {
            list.join(", ")
        }
    );
}

/// glibc's heap in use, KiB (what SQLite allocates: its page caches; the bundled SQLite calls
/// glibc's malloc, not jemalloc's prefixed one).
fn glibc_heap_kib() -> u64 {
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let info = unsafe { libc::mallinfo2() };
    (info.uordblks + info.hblkhd) as u64 / 1024
}

fn parse_dcs(text: &str) -> Vec<(i32, SocketAddr)> {
    text.split(',')
        .filter_map(|part| {
            let (id, addr) = part.split_once('=')?;
            Some((id.parse().ok()?, addr.parse().ok()?))
        })
        .collect()
}

// ---------------------------------------------------------------- login process

async fn run_login() {
    let setup = Setup::from_env();
    let env = setup.env().await;
    let owner = bench_owner(env.store.as_ref()).await;
    // 64 logins at a time: enough to finish quickly, few enough for SQLite and 2 cores.
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..setup.accounts {
        let phone = phone(i);
        let env = Arc::clone(&env);
        let permit = Arc::clone(&limit).acquire_owned().await.expect("semaphore");
        tasks.spawn(async move {
            let id = user_account(env.store.as_ref(), owner, phone.clone()).await;
            let actor = spawn_actor(&env, id).await;
            request(
                &actor,
                SendCode {
                    phone: phone.parse().expect("a phone"),
                },
                BOUND,
            )
            .await;
            request(&actor, SignIn { code: CODE.into() }, BOUND).await;
            actor.stop(None);
            drop(permit);
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("login task");
    }
    println!("logged-in {}", setup.accounts);
}

// ---------------------------------------------------------------- measuring process

/// The process's peak resident set.
fn peak_rss_kib() -> u64 {
    proc_status_kib("VmHWM:")
}

fn wait_for_connections(control: &Control, n: usize) {
    let started = Instant::now();
    while control.connections() < n {
        assert!(
            started.elapsed() < BOUND,
            "only {} of {n} accounts connected",
            control.connections()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn settle() {
    // Let in-flight work (health checks, session writes) finish before reading RSS, and give
    // jemalloc's decay time to return freed pages (IDLE_RSS_SETTLE_S, default 3 s).
    let secs = std::env::var("IDLE_RSS_SETTLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

/// Process RSS, jemalloc's live / resident bytes and glibc's heap in use at one moment.
struct Snapshot {
    rss: u64,
    allocated: u64,
    resident: u64,
    glibc: u64,
}

impl Snapshot {
    fn take() -> Self {
        let (allocated, resident) = jemalloc_kib();
        Self {
            rss: rss_kib(),
            allocated,
            resident,
            glibc: glibc_heap_kib(),
        }
    }

    fn report(&self, what: &str, baseline: &Snapshot, n: usize) {
        let per = |now: u64, then: u64| (now as f64 - then as f64) / n as f64;
        println!(
            "idle_rss: {what}: {:.1} KiB/account RSS (RSS {} KiB, baseline {} KiB); \
             jemalloc per account: {:.1} KiB allocated, {:.1} KiB resident; \
             glibc heap (SQLite) per account: {:.1} KiB",
            per(self.rss, baseline.rss),
            self.rss,
            baseline.rss,
            per(self.allocated, baseline.allocated),
            per(self.resident, baseline.resident),
            per(self.glibc, baseline.glibc),
        );
    }
}

async fn run_measure() {
    let n = accounts();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("own path");

    let mut testdc = Command::new(&exe)
        .env("IDLE_RSS_ROLE", "testdc")
        .stdout(Stdio::piped())
        .spawn()
        .expect("testdc process");
    let mut ready = String::new();
    BufReader::new(testdc.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("testdc ready line");
    let mut words = ready.split_whitespace().skip(1);
    let control_addr = words.next().expect("control addr").to_owned();
    let dcs = words.next().expect("dcs").to_owned();

    let login = Command::new(&exe)
        .env("IDLE_RSS_ROLE", "login")
        .env("IDLE_RSS_CONTROL", &control_addr)
        .env("IDLE_RSS_DCS", &dcs)
        .env("IDLE_RSS_DIR", dir.path())
        .env("IDLE_RSS_ACCOUNTS", n.to_string())
        .status()
        .expect("login process");
    assert!(login.success(), "login process failed");

    std::env::set_var("IDLE_RSS_CONTROL", &control_addr);
    std::env::set_var("IDLE_RSS_DCS", &dcs);
    std::env::set_var("IDLE_RSS_DIR", dir.path());
    let setup = Setup::from_env();
    let env = setup.env().await;
    // The store caps a page; walk the keyset.
    let mut ids: Vec<i64> = Vec::with_capacity(n);
    loop {
        let page = env
            .store
            .list_accounts(tgfleet_persistence::AccountFilter {
                after_id: ids.last().copied(),
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("accounts");
        if page.is_empty() {
            break;
        }
        ids.extend(page.into_iter().map(|a| a.id));
    }
    assert_eq!(ids.len(), n);
    let receive = receive_mode();
    if receive {
        // What `PATCH /accounts/{id}` with `receive_updates: true` writes.
        for id in &ids {
            env.store
                .update_account(
                    *id,
                    AccountUpdate {
                        receive_updates: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .expect("receive_updates");
        }
    }
    wait_for_connections_zero(&setup.control);

    settle().await;
    let baseline = Snapshot::take();
    let large_at_baseline = large_allocations();
    let cold_start = std::env::var("IDLE_RSS_COLD_START").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let mut actors = Vec::with_capacity(n);
    let mut fleet = None;
    if cold_start {
        let settings = tgfleet_supervision::SupervisionSettings {
            // The product default (config `fleet.starts_per_second`), not the crate's.
            start_rate: std::num::NonZeroU32::new(200).expect("non-zero"),
            ..Default::default()
        };
        fleet = Some(
            tgfleet_supervision::Fleet::start_accounts(
                settings,
                env.clone(),
                &prometheus::Registry::new(),
            )
            .await
            .expect("fleet"),
        );
    } else {
        for id in &ids {
            actors.push(spawn_actor(&env, *id).await);
        }
    }
    wait_for_connections(&setup.control, n);
    if cold_start {
        println!(
            "idle_rss: cold start of {n} persisted active accounts through the supervisors: \
             all connected in {:.1} s, peak RSS {} KiB",
            started.elapsed().as_secs_f64(),
            peak_rss_kib()
        );
    }
    settle().await;
    let what = if receive { "receiving" } else { "idle" };
    Snapshot::take().report(
        &format!("{n} connected {what} accounts, fresh"),
        &baseline,
        n,
    );
    if receive {
        report_channel_item();
        report_large_allocations("fresh", &large_at_baseline, n);
        receive_messages(&env, &setup.control, n).await;
        settle().await;
        let m = knob("IDLE_RSS_MESSAGES", 100);
        Snapshot::take().report(&format!("after receiving {m} messages each"), &baseline, n);
        report_large_allocations(
            &format!("after receiving {m} messages each"),
            &large_at_baseline,
            n,
        );
        // What receiving freed goes back only after jemalloc's decay (10 s for dirty pages):
        // the figure again once it has passed tells memory held from garbage not yet returned.
        // IDLE_RSS_DECAY_S, default 12 s: longer than jemalloc's dirty-page decay.
        let decay = knob("IDLE_RSS_DECAY_S", 12);
        tokio::time::sleep(Duration::from_secs(decay as u64)).await;
        Snapshot::take().report(
            &format!("after receiving {m} messages each, {decay} s later"),
            &baseline,
            n,
        );
    }
    for round in 1..=3 {
        let dropped = setup.control.cmd("drop");
        // Wait for the drop to be seen, then reopen every connection by use: a logged-in
        // account's client no longer hears `ConnectionClosed` (its updates channel is closed to
        // save memory), so its next call reconnects it, as in production.
        let started = Instant::now();
        while setup.control.connections() >= n && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        reopen_by_use(&ids, &actors, fleet.as_ref()).await;
        wait_for_connections(&setup.control, n);
        settle().await;
        Snapshot::take().report(
            &format!("after reconnect round {round} ({dropped})"),
            &baseline,
            n,
        );
    }
    for actor in actors {
        actor.stop(None);
    }
    if let Some(fleet) = fleet {
        fleet.shutdown().await;
    }
    let _ = setup.control.cmd("quit");
    let _ = testdc.wait();
}

/// What one slot of grammers' updates channel holds: tokio's mpsc stores its items inline, in
/// blocks of 32 slots allocated as the channel advances and recycled once read.
fn report_channel_item() {
    use grammers_session::updates::UpdatesLike;
    use grammers_tl_types as tl;
    let item = std::mem::size_of::<UpdatesLike>();
    println!(
        "idle_rss: grammers' updates channel item: UpdatesLike {item} B (of it: tl Updates {} B, \
         messages.SendMessage {} B, UpdateShortSentMessage {} B); a tokio block of 32 slots: \
         {:.1} KiB",
        std::mem::size_of::<tl::enums::Updates>(),
        std::mem::size_of::<tl::functions::messages::SendMessage>(),
        std::mem::size_of::<tl::types::UpdateShortSentMessage>(),
        (32 * item) as f64 / 1024.0,
    );
}

/// Has testdc's user send `IDLE_RSS_MESSAGES` messages to each of the `n` accounts, and waits
/// until the event log holds a `message.received` event for every one of them.
async fn receive_messages(env: &AccountEnv, control: &Control, n: usize) {
    let m = knob("IDLE_RSS_MESSAGES", 100);
    let pause = knob("IDLE_RSS_SEND_PAUSE_MS", 100);
    let expected = n * m;
    let mut after = env.store.last_event_id().await.expect("last event id");
    let answer = control.cmd(&format!("send {n} {m} {pause}"));
    assert_eq!(answer, format!("sending {expected}"), "testdc send");
    let started = Instant::now();
    let mut received = 0;
    let mut reported = Instant::now();
    while received < expected {
        assert!(
            started.elapsed() < BOUND,
            "only {received} of {expected} messages received"
        );
        let page = env
            .store
            .events(EventFilter {
                after,
                limit: 1000,
                types: vec![EventType::MessageReceived],
                ..Default::default()
            })
            .await
            .expect("events");
        match page.last() {
            Some(last) => {
                after = last.id;
                received += page.len();
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        if reported.elapsed() >= Duration::from_secs(10) {
            reported = Instant::now();
            eprintln!("idle_rss: {received} of {expected} messages received");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "idle_rss: {expected} messages ({m} to each of {n} accounts, a round every {pause} ms) \
         in the event log as message.received after {secs:.1} s ({:.0}/s)",
        expected as f64 / secs
    );
}

/// One SendMessage per account, 64 in flight: the call that finds its connection gone reopens
/// it.
async fn reopen_by_use(
    ids: &[i64],
    actors: &[ractor::ActorRef<tgfleet_actors::AccountMsg>],
    fleet: Option<&tgfleet_supervision::Fleet>,
) {
    use futures::StreamExt;
    let send = || SendMessage {
        media: Vec::new(),
        random_id: None,
        peer: tgfleet_actors::Peer::Me,
        text: "reopen".into(),
        dedupe_key: None,
        options: Default::default(),
    };
    futures::stream::iter(ids.iter().enumerate())
        .for_each_concurrent(64, |(i, id)| async move {
            match fleet {
                Some(fleet) => {
                    let sent = fleet.call(*id, send()).await;
                    assert!(sent.is_ok(), "account {id}: {sent:?}");
                }
                None => {
                    request(&actors[i], send(), BOUND).await;
                }
            }
        })
        .await;
}

fn wait_for_connections_zero(control: &Control) {
    let started = Instant::now();
    while control.connections() > 0 && started.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(100));
    }
}
