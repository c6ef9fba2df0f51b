//! One `serve` per database. Two processes running the same accounts put every auth key on two
//! connections at once, and both write the same session rows; until several nodes share a
//! database through leases, a second process must refuse to start instead.
//!
//! PostgreSQL: a session-level advisory lock, held by one connection kept for the life of the
//! process (the server releases it when that connection ends, also after a `kill -9`).
//! SQLite: an exclusive lock (flock) on a file beside the database, released by the kernel when
//! the process ends however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::{Connection as _, PgConnection};
use tokio::task::JoinHandle;

/// The advisory lock key every tgfleet uses ("tgfleet\0" read as a big-endian i64). Advisory
/// locks are per database, so two fleets on two databases of one server do not collide.
pub const PG_LOCK_KEY: i64 = i64::from_be_bytes(*b"tgfleet\0");
/// How often the connection holding the PostgreSQL lock is checked; a lost one is logged and
/// taken again.
const PG_KEEPALIVE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: the one line `serve` prints.
    #[error(
        "another tgfleet process is running on this database ({holder}); \
         stop it first — two processes on one database would run every account twice"
    )]
    Held { holder: String },
    #[error("taking the single-process lock: {0}")]
    Other(String),
}

/// Held for the life of the process; dropping it releases the lock.
pub struct InstanceLock {
    _inner: Inner,
}

enum Inner {
    /// An in-memory database is private to its process.
    None,
    File(#[allow(dead_code)] File),
    Postgres(JoinHandle<()>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Inner::Postgres(task) = self {
            // The task owns the connection: ending it closes the connection and frees the lock.
            task.abort();
        }
    }
}

impl std::fmt::Debug for InstanceLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self._inner {
            Inner::None => "none",
            Inner::File(_) => "file",
            Inner::Postgres(_) => "postgres",
        };
        f.debug_struct("InstanceLock").field("kind", &kind).finish()
    }
}

impl InstanceLock {
    /// Takes the lock for the database `url` names, or says who holds it.
    pub async fn acquire(url: &str) -> Result<Self, LockError> {
        let inner = if url.starts_with("sqlite:") {
            match sqlite_lock_path(url)? {
                None => Inner::None,
                Some(path) => Inner::File(lock_file(&path)?),
            }
        } else {
            Inner::Postgres(pg_lock(url).await?)
        };
        Ok(Self { _inner: inner })
    }
}

/// `tgfleet.db` → `tgfleet.db.lock`; `None` for an in-memory database.
pub fn sqlite_lock_path(url: &str) -> Result<Option<PathBuf>, LockError> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| LockError::Other(format!("parsing SQLite url: {e}")))?;
    let mut name = options.get_filename().as_os_str().to_owned();
    name.push(".lock");
    Ok(Some(PathBuf::from(name)))
}

fn lock_file(path: &Path) -> Result<File, LockError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::store::create_private_dir(dir)
            .map_err(|e| LockError::Other(format!("creating {}: {e}", dir.display())))?;
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| LockError::Other(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            let holder = if pid.is_empty() {
                format!("lock {} is held", path.display())
            } else {
                format!("pid {pid} holds {}", path.display())
            };
            return Err(LockError::Held { holder });
        }
        Err(TryLockError::Error(e)) => {
            return Err(LockError::Other(format!("locking {}: {e}", path.display())))
        }
    }
    // Who holds it, for the next process's message; the lock itself is the flock, not this text.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(file)
}

async fn pg_connect_locked(url: &str) -> Result<PgConnection, LockError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(|e| LockError::Other(format!("connecting to PostgreSQL: {e}")))?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(PG_LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| LockError::Other(format!("pg_try_advisory_lock: {e}")))?;
    if locked {
        return Ok(conn);
    }
    let holder: Option<(i32, Option<String>)> = sqlx::query_as(
        "SELECT a.pid, host(a.client_addr) FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.database = \
           (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 LIMIT 1",
    )
    .bind(PG_LOCK_KEY)
    .fetch_optional(&mut conn)
    .await
    .ok()
    .flatten();
    let _ = conn.close().await;
    let holder = match holder {
        Some((pid, Some(addr))) => {
            format!("PostgreSQL advisory lock held by backend {pid}, client {addr}")
        }
        Some((pid, None)) => format!("PostgreSQL advisory lock held by backend {pid}"),
        None => "PostgreSQL advisory lock is held".into(),
    };
    Err(LockError::Held { holder })
}

async fn pg_lock(url: &str) -> Result<JoinHandle<()>, LockError> {
    let conn = pg_connect_locked(url).await?;
    let url = url.to_owned();
    Ok(tokio::spawn(async move {
        let mut conn = Some(conn);
        loop {
            tokio::time::sleep(PG_KEEPALIVE).await;
            if let Some(c) = conn.as_mut() {
                if c.ping().await.is_ok() {
                    continue;
                }
                // The server ended the session (restart, failover): the lock went with it.
                tracing::error!("lost the connection holding the single-process database lock");
                conn = None;
            }
            match pg_connect_locked(&url).await {
                Ok(c) => {
                    tracing::warn!("took the single-process database lock again");
                    conn = Some(c);
                }
                Err(e @ LockError::Held { .. }) => {
                    // Another process took the database while our lock was gone: two processes
                    // would now run the same accounts. Every state change is already written, so
                    // leaving at once loses nothing; staying would fight the other process.
                    tracing::error!(error = %e, "lost the database to another process; exiting");
                    eprintln!("error: lost the single-process database lock: {e}");
                    std::process::exit(1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot take the single-process database lock back")
                }
            }
        }
    }))
}
