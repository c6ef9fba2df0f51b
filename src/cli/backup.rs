//! `tgfleet backup FILE` and `tgfleet restore FILE` for a SQLite install.
//!
//! A backup is one SQLite file written by `VACUUM INTO`: a consistent snapshot taken inside one
//! read transaction, so a running server keeps writing meanwhile. Sessions and webhook secrets stay
//! sealed in it; what opens them (the session key, or Vault's transit key) is kept apart from it.
//!
//! A restore never leaves a half-restored database: the backup is copied beside the database,
//! migrated and checked there (every sealed blob must open with the current key), and only then
//! renamed over the database in one step. PostgreSQL installs use `pg_dump`/`pg_restore` (README).

use super::keys::{current_cipher, lock_stopped, Refusal};
use anyhow::Context as _;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _};
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;
use tgfleet_config::Settings;
use tgfleet_persistence::sealed::{self, SealedDb};

/// A running server's writes are short; waiting this long for its lock means it is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite file the settings name; PostgreSQL and in-memory databases are refused with what to
/// do instead.
fn sqlite_file(settings: &Settings, doing: &str) -> anyhow::Result<PathBuf> {
    let url = settings.database_url();
    if !url.expose().starts_with("sqlite:") {
        anyhow::bail!(
            "`tgfleet {doing}` is for SQLite installs; database.url is PostgreSQL ({}): use \
             pg_dump / pg_restore as README's \"Keys and backups\" section says",
            url.redacted()
        );
    }
    if url.expose().contains(":memory:") || url.expose().contains("mode=memory") {
        anyhow::bail!("the database is in memory: there is nothing to {doing}");
    }
    let options = SqliteConnectOptions::from_str(url.expose()).context("parsing database.url")?;
    Ok(options.get_filename().to_owned())
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Makes renames and links in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

fn create_private_empty(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map(drop)
        .with_context(|| format!("creating {}", path.display()))
}

fn sidecars(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// What a backup holds, read back from the file itself.
struct Contents {
    accounts: i64,
    sessions: i64,
}

/// Checks that `file` (a copy of `shown`, the name messages use) is a whole tgfleet database.
/// Read-write, though it only reads: a database in WAL mode (a `pre-restore` file put back)
/// opens read-only only when its `-shm` file exists.
async fn inspect(file: &Path, shown: &Path) -> anyhow::Result<Contents> {
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .connect()
        .await
        .with_context(|| format!("opening {}", shown.display()))?;
    let not_ours = || format!("{} is not a tgfleet backup", shown.display());
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .with_context(not_ours)?;
    anyhow::ensure!(
        check == "ok",
        "{} is damaged (SQLite quick_check: {check})",
        shown.display()
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
         AND name IN ('_sqlx_migrations', 'telegram_accounts', 'account_sessions')",
    )
    .fetch_one(&mut conn)
    .await
    .with_context(not_ours)?;
    anyhow::ensure!(tables == 3, not_ours());
    let accounts = sqlx::query_scalar("SELECT count(*) FROM telegram_accounts")
        .fetch_one(&mut conn)
        .await?;
    let sessions = sqlx::query_scalar("SELECT count(*) FROM account_sessions")
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(Contents { accounts, sessions })
}

/// Refuses while a local key rotation is cut short: the database then holds values sealed
/// with two keys, and a backup or a restore of it would need both.
fn refuse_unfinished_rotation(settings: &Settings, doing: &str) -> anyhow::Result<()> {
    if settings.secrets.backend != tgfleet_config::SecretsBackend::Local {
        return Ok(());
    }
    let files = tgfleet_persistence::sealed::KeyFiles::beside(&settings.session_key_path());
    if let Some(file) = files.unfinished() {
        anyhow::bail!(
            "a key rotation is unfinished ({} exists): run `tgfleet keys rotate` again to \
             finish it before {doing}",
            file.display()
        );
    }
    Ok(())
}

/// Whether a failed check means the key does not open the data (exit 3), rather than a
/// database or Vault failure (exit 1).
fn wrong_key(e: &anyhow::Error) -> bool {
    e.downcast_ref::<sealed::BlobError>().is_some_and(|b| {
        matches!(
            b.cause,
            tgfleet_persistence::CipherError::Tampered
                | tgfleet_persistence::CipherError::Malformed(_)
        )
    })
}

pub async fn backup(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let db = sqlite_file(settings, "backup")?;
    anyhow::ensure!(db.is_file(), "there is no database at {}", db.display());
    refuse_unfinished_rotation(settings, "a backup")?;
    anyhow::ensure!(
        !file.exists(),
        "{} exists already; a backup never overwrites a file",
        file.display()
    );
    let dir = dir_of(file);
    let name = file
        .file_name()
        .context("the backup FILE needs a file name")?
        .to_string_lossy()
        .into_owned();
    // Written under a temporary name and linked into place only when whole and checked, so FILE
    // is never a partial backup; 0600 from the start, since it holds password hashes.
    let partial = dir.join(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()));
    create_private_empty(&partial)?;
    let result = async {
        let mut conn = SqliteConnectOptions::from_str(settings.database_url().expose())
            .context("parsing database.url")?
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("opening {}", db.display()))?;
        let target = partial
            .to_str()
            .context("the backup path is not valid UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&mut conn)
            .await
            .with_context(|| format!("writing a snapshot of {}", db.display()))?;
        let _ = conn.close().await;
        let contents = inspect(&partial, file).await?;
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", partial.display()))?;
        // A link, not a rename: it fails instead of replacing a FILE created meanwhile.
        std::fs::hard_link(&partial, file)
            .with_context(|| format!("creating {}", file.display()))?;
        sync_dir(&dir)?;
        Ok::<_, anyhow::Error>(contents)
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    let contents = result?;
    eprintln!(
        "backup of {} written to {}: {} accounts, {} sessions (still sealed)",
        db.display(),
        file.display(),
        contents.accounts,
        contents.sessions
    );
    eprintln!("{}", key_reminder(settings));
    Ok(())
}

fn key_reminder(settings: &Settings) -> String {
    match settings.secrets.backend {
        tgfleet_config::SecretsBackend::Local => format!(
            "restoring it needs the session key it was sealed with: keep a copy of {} apart \
             from the backup",
            settings.session_key_path().display()
        ),
        tgfleet_config::SecretsBackend::Vault => format!(
            "restoring it needs Vault transit key {}/{} (every version since the backup)",
            settings.vault.transit_mount, settings.vault.transit_key
        ),
    }
}

pub async fn restore(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let db = sqlite_file(settings, "restore")?;
    anyhow::ensure!(file.is_file(), "there is no backup at {}", file.display());
    let dir = dir_of(&db);
    tgfleet_persistence::create_private_dir(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let _lock = lock_stopped(settings, "restoring").await?;
    refuse_unfinished_rotation(settings, "restoring")?;
    let cipher = current_cipher(settings).await?;
    let name = db
        .file_name()
        .context("database.url names no file")?
        .to_string_lossy()
        .into_owned();
    let staged = dir.join(format!(".{name}.restore-{}", uuid::Uuid::new_v4().simple()));
    let result = async {
        create_private_empty(&staged)?;
        // `fs::copy` would carry the backup's mode over; the database stays 0600.
        let mut from =
            std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let mut to = std::fs::OpenOptions::new().write(true).open(&staged)?;
        std::io::copy(&mut from, &mut to)
            .with_context(|| format!("copying {} to {}", file.display(), staged.display()))?;
        to.sync_all()?;
        drop(to);
        let contents = inspect(&staged, file).await?;
        let staged_url = format!("sqlite://{}", staged.display());
        // Migrated here, so an older backup comes back in this build's schema; a newer one fails.
        let copy = SealedDb::connect(&staged_url).await.with_context(|| {
            format!(
                "bringing {} up to this build's schema (a backup made by a newer tgfleet does \
                 not restore into an older one)",
                file.display()
            )
        })?;
        let opened = match sealed::check_all(&copy, &cipher).await {
            Ok(n) => copy.make_durable().await.map(|()| n),
            Err(e) if wrong_key(&e) => Err(Refusal::WrongKey(format!(
                "restore refused: the backup's sealed data does not open with the current {} \
                 ({e:#}); restore with the key that sealed it, or nothing",
                describe_key(settings)
            ))
            .into()),
            Err(e) => Err(e.context("checking the backup's sealed data")),
        };
        copy.close().await;
        let opened = opened?;
        for sidecar in sidecars(&staged) {
            remove_if_present(&sidecar)?;
        }
        std::fs::File::open(&staged).and_then(|f| f.sync_all())?;

        let kept = if db.exists() {
            // Its WAL is folded in and removed first: left beside the restored file, SQLite
            // would replay the old database's pages into the new one.
            let mut conn = SqliteConnectOptions::new()
                .filename(&db)
                .busy_timeout(BUSY_TIMEOUT)
                .connect()
                .await
                .with_context(|| format!("opening {}", db.display()))?;
            let (busy, log, done): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&mut conn)
                    .await
                    .with_context(|| format!("checkpointing {}", db.display()))?;
            let _ = conn.close().await;
            // A reader holding a snapshot (a `tgfleet backup` running, an sqlite3 shell) keeps
            // frames in the log: removing it then would lose them from the kept copy.
            anyhow::ensure!(
                busy == 0 && log == done,
                "{} is open in another process (a `tgfleet backup`, an sqlite3 shell?), so its \
                 write-ahead log cannot be folded in; nothing was changed: close it and restore \
                 again",
                db.display()
            );
            let kept = dir.join(format!(
                "{name}.pre-restore-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ));
            std::fs::hard_link(&db, &kept)
                .with_context(|| format!("keeping the replaced database as {}", kept.display()))?;
            for sidecar in sidecars(&db) {
                remove_if_present(&sidecar)?;
            }
            Some(kept)
        } else {
            None
        };
        std::fs::rename(&staged, &db)
            .with_context(|| format!("moving the restored database to {}", db.display()))?;
        sync_dir(&dir)?;
        Ok::<_, anyhow::Error>((contents, opened, kept))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
        for sidecar in sidecars(&staged) {
            let _ = std::fs::remove_file(sidecar);
        }
    }
    let (contents, opened, kept) = result?;
    eprintln!(
        "restored {} from {}: {} accounts, {} sessions; all {opened} sealed values open with \
         the current key",
        db.display(),
        file.display(),
        contents.accounts,
        contents.sessions,
    );
    if let Some(kept) = kept {
        eprintln!(
            "the database it replaced is kept as {} (delete it once the restore is confirmed)",
            kept.display()
        );
    }
    Ok(())
}

fn describe_key(settings: &Settings) -> String {
    match settings.secrets.backend {
        tgfleet_config::SecretsBackend::Local => {
            format!("session key {}", settings.session_key_path().display())
        }
        tgfleet_config::SecretsBackend::Vault => format!(
            "Vault transit key {}/{}",
            settings.vault.transit_mount, settings.vault.transit_key
        ),
    }
}
