//! Measures testdc's own cost: resident memory per open connection and CPU time per request.
//!
//! ```text
//! cargo run --release -p tgfleet-testdc --example scale -- [connections] [requests]
//! ```
//!
//! testdc runs in a child process (this same binary with `server`), so its RSS and CPU are read
//! from /proc without the load generator's own cost mixed in. The load generator uses the small
//! `probe` client (not grammers, whose 2 MiB of buffers per connection would swamp the machine).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use grammers_tl_types::{self as tl, Serializable};
use tgfleet_testdc::probe::{Answer, Probe};
use tgfleet_testdc::{new_auth_key, TestDc, TestDcConfig};

fn raise_nofile() {
    // 10,000 sockets need more than the usual soft limit of 1024 descriptors.
    // SAFETY: plain libc calls on a local, fully initialised struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

fn init_connection() -> Vec<u8> {
    tl::functions::InvokeWithLayer {
        layer: tl::LAYER,
        query: tl::functions::InitConnection {
            api_id: 1,
            device_model: "scale".into(),
            system_version: "1".into(),
            app_version: "1".into(),
            system_lang_code: "en".into(),
            lang_pack: String::new(),
            lang_code: "en".into(),
            proxy: None,
            params: None,
            query: tl::functions::help::GetConfig {},
        },
    }
    .to_bytes()
}

async fn server(key_hex: &str) -> anyhow::Result<()> {
    let dc = TestDc::start(TestDcConfig::default()).await?;
    let key: [u8; 256] = hex::decode(key_hex)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("bad key"))?;
    dc.register_auth_key(key);
    let mut out = std::io::stdout().lock();
    for (id, addr) in dc.dc_addrs() {
        writeln!(out, "DC {id} {addr}")?;
    }
    writeln!(out, "READY")?;
    out.flush()?;
    drop(out);
    // Run until the parent closes our stdin.
    tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        while std::io::stdin()
            .read_line(&mut s)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
    })
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    raise_nofile();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        return server(args.get(2).map(String::as_str).unwrap_or("")).await;
    }
    let conns: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let requests: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50_000);

    let key = new_auth_key();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["server", &hex::encode(key)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        if line == "READY" {
            break;
        }
        if let Some(addr) = line.split_whitespace().nth(2) {
            addrs.push(addr.parse()?);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0 = rss_kib(pid);
    let cpu0 = cpu_secs(pid);

    // Open the connections in waves, each doing the client's first call (initConnection).
    let started = Instant::now();
    let mut probes = Vec::with_capacity(conns);
    let init = init_connection();
    while probes.len() < conns {
        let wave = (conns - probes.len()).min(500);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..wave {
            let addr = addrs[(probes.len() + i) % addrs.len()];
            let init = init.clone();
            set.spawn(async move {
                let mut p = Probe::connect(addr, key).await?;
                match p.invoke(&init).await? {
                    Answer::Result(_) => Ok::<_, std::io::Error>(p),
                    Answer::Error { name, .. } => Err(std::io::Error::other(name)),
                }
            });
        }
        while let Some(r) = set.join_next().await {
            probes.push(r??);
        }
    }
    let setup = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = rss_kib(pid);
    let cpu1 = cpu_secs(pid);

    // Request CPU: many clients in parallel, each doing sequential round trips.
    let workers = probes.len().clamp(1, 200);
    let per_worker = requests / workers;
    let body = tl::functions::help::GetNearestDc {}.to_bytes();
    let mut set = tokio::task::JoinSet::new();
    let started = Instant::now();
    for mut p in probes.drain(..workers) {
        let body = body.clone();
        set.spawn(async move {
            for _ in 0..per_worker {
                p.invoke(&body).await?;
            }
            Ok::<_, std::io::Error>(p)
        });
    }
    while let Some(r) = set.join_next().await {
        probes.push(r??);
    }
    let wall = started.elapsed();
    let cpu2 = cpu_secs(pid);
    let rss2 = rss_kib(pid);
    let done = per_worker * workers;

    println!("connections:                {conns}");
    println!("testdc RSS idle:            {rss0} KiB");
    println!(
        "testdc RSS with conns:      {rss1} KiB  => {:.1} KiB per connection",
        (rss1.saturating_sub(rss0)) as f64 / conns as f64
    );
    println!(
        "setup (connect + initConnection/getConfig): {:.2?}, testdc CPU {:.2} s => {:.0} µs per connection",
        setup,
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1e6 / conns as f64
    );
    println!(
        "requests: {done} help.getNearestDc from {workers} connections in {:.2?} ({:.0}/s)",
        wall,
        done as f64 / wall.as_secs_f64()
    );
    println!(
        "testdc CPU for requests:    {:.2} s => {:.1} µs per request",
        cpu2 - cpu1,
        (cpu2 - cpu1) * 1e6 / done as f64
    );
    println!("testdc RSS after requests:  {rss2} KiB");

    drop(probes);
    drop(child.stdin.take());
    let _ = child.wait();
    Ok(())
}
