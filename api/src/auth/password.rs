//! argon2id hashing, always off the async runtime: one hash costs tens of milliseconds of CPU and
//! would otherwise stall every other request on that worker. It runs on a few threads of its own
//! at a lower CPU priority (nice 10): during a login flood the cores go to request handling first,
//! so cheap requests (health, reads, sends) keep their latency and logins take longer instead.

use crate::error::ApiError;
use anyhow::Context;
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore, SemaphorePermit};

/// OWASP's argon2id minimum: 19 MiB of memory, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes at once are bounded by the cores: each takes 19 MiB and a core for tens of ms, so a
/// login flood from many addresses (the rate limit is per address) would otherwise start hundreds
/// of threads and gigabytes of memory. Past the bound, callers queue briefly, then get 503.
fn hashers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .max(2)
}

fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(hashers()))
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads, one per slot, started on first use.
fn pool() -> &'static mpsc::Sender<Job> {
    static POOL: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..hashers() {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "starting a password hashing thread");
            }
        }
        jobs
    })
}

/// Nice 10 for the calling thread (on Linux the nice value is per thread). Failing is harmless:
/// hashing then merely competes at normal priority.
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if rc != 0 {
        tracing::debug!("could not lower the hashing thread's priority");
    }
}

/// Hashes queued or running on the hashing threads, for `tgfleet_password_hashes_in_flight`: it
/// never exceeds the slots, because a job takes its slot with it.
fn in_flight() -> &'static prometheus::IntGauge {
    static IN_FLIGHT: OnceLock<prometheus::IntGauge> = OnceLock::new();
    IN_FLIGHT.get_or_init(|| {
        prometheus::IntGauge::new(
            "tgfleet_password_hashes_in_flight",
            "argon2 hashes queued or running (bounded by the hashing slots)",
        )
        .expect("static gauge options are valid")
    })
}

/// The gauge above, for each state's registry (tests build several states in one process, so the
/// gauge is shared and registered once per registry).
pub fn register_metrics(registry: &prometheus::Registry) -> anyhow::Result<()> {
    registry.register(Box::new(in_flight().clone()))?;
    Ok(())
}

/// How many hashes may be queued or running at once.
pub fn hash_slots() -> usize {
    hashers()
}

/// Counts a job from submission until it has run (or was dropped unrun).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        in_flight().inc();
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        in_flight().dec();
    }
}

/// Runs `work` on a hashing thread and waits for its result. The slot travels WITH the job and is
/// released when the hash has finished: if it stayed with the caller, a client hanging up would
/// free it while the hash still ran, and the next request would queue one more hash behind it —
/// hundreds of hang-ups would build a queue of minutes that every honest login waits behind.
async fn on_hasher<T: Send + 'static>(
    slot: SemaphorePermit<'static>,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = oneshot::channel();
    let span = tracing::Span::current();
    let counted = InFlight::enter();
    let job: Job = Box::new(move || {
        let _entered = span.enter();
        let answer = work();
        // Uncounted before the slot is free (the next hash is counted once it has the slot), and
        // both before the answer goes out, so a caller that sees it sees the slot free.
        drop(counted);
        drop(slot);
        let _ = done.send(answer);
    });
    pool()
        .send(job)
        .map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("a password hashing job ended without an answer"))
}

/// How long a request may queue for a hashing slot: a person notices 5 s; a flood gives up.
const SLOT_WAIT: Duration = Duration::from_secs(5);

async fn slot() -> Result<SemaphorePermit<'static>, ApiError> {
    match tokio::time::timeout(SLOT_WAIT, slots().acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(ApiError::Unavailable {
            code: "AUTH_BUSY",
            message: "too many logins at once; retry shortly".into(),
            retry_after_s: Some(1),
        }),
    }
}

pub async fn hash(password: String) -> Result<String, ApiError> {
    let slot = slot().await?;
    on_hasher(slot, move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .context("password hashing task")
    .and_then(|r| r)
    .map_err(ApiError::Internal)
}

/// False for a wrong password and for a hash that does not parse (never a panic).
pub async fn verify(password: String, phc: String) -> Result<bool, ApiError> {
    let slot = slot().await?;
    on_hasher(slot, move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return false;
        };
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .context("password verification task")
    .map_err(ApiError::Internal)
}

/// A hash to verify against when the email is unknown, so a failed login takes as long either way
/// and does not reveal which emails exist. Computed once at start-up (`warm_up`), off the runtime.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(b"decoy password nobody has", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Computes the decoy hash on a blocking thread before the first login needs it.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| {
        decoy_hash();
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of each live thread named `argon2-*`, from /proc.
    fn hasher_nice_values() -> Vec<i64> {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let dir = task.expect("task entry").path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with("argon2-") {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).expect("task stat");
            // Fields after the parenthesised name: state is field 3, nice is field 19.
            let after_name = &stat[stat.rfind(')').expect("comm end") + 2..];
            let field = after_name.split(' ').nth(19 - 3).expect("nice field");
            nice.push(field.parse().expect("nice value"));
        }
        nice
    }

    #[tokio::test]
    async fn hashing_runs_on_its_own_threads_below_normal_priority() {
        let phc = hash("correct horse battery".into()).await.expect("hash");
        assert!(verify("correct horse battery".into(), phc.clone())
            .await
            .expect("verify"));
        assert!(!verify("wrong horse".into(), phc).await.expect("verify"));
        let nice = hasher_nice_values();
        assert_eq!(nice.len(), hashers(), "{nice:?}");
        assert!(nice.iter().all(|n| *n == 10), "{nice:?}");
    }
}
