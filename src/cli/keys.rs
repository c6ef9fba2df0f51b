//! `tgfleet keys rotate` (a new local session key) and `tgfleet keys rewrap` (Vault envelopes to
//! the newest transit key version).
//!
//! Rotation needs the server stopped: it takes the single-process lock, so a running server
//! refuses it and a server cannot start during it. A server that reads only one key then never
//! meets a blob sealed with the other; the cost is a short stop (sealing again is local work, no
//! network). It is resumable from the files it leaves:
//!
//! ```text
//! session.key.next appears   new key, written before any blob is sealed with it
//! blobs sealed again         one page per transaction; a blob that opens with the new key is done
//! db checkpointed             the re-sealed rows on disk before any key file moves
//! .rotation-old = link       the old key under a name of its own, once every blob opens with the new
//! session.key.next → .key    one rename: the new key is in force
//! sealed again from .old     a no-op unless a crash took rows back; then checked, on disk
//! .rotation-old removed      after every blob is checked against the key in force
//! ```
//!
//! Run again after a crash, it picks up at the step the files show. While `session.key.next` or
//! `session.key.rotation-old` exists, `serve` and `restore` refuse and say to finish the
//! rotation.
//!
//! Re-wrapping runs beside a running server: each write replaces a blob only if it is still the
//! one read, so a session the server sealed meanwhile is never overwritten.

use anyhow::Context as _;
use std::path::Path;
use tgfleet_config::{SecretsBackend, Settings};
use tgfleet_persistence::sealed::{self, ColumnPass, KeyFiles, Reseal, SealedDb};
use tgfleet_persistence::{InstanceLock, LockError, SessionCipher};

/// Refusals with exit codes of their own, so scripts can tell them from other failures.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A server holds the database (exit code 4).
    #[error("{0}")]
    ServerRunning(String),
    /// The sealed data does not open with the current key, or there is no key (exit code 3).
    #[error("{0}")]
    WrongKey(String),
}

impl Refusal {
    pub const EXIT_WRONG_KEY: u8 = 3;
    pub const EXIT_SERVER_RUNNING: u8 = 4;

    pub fn exit_code(&self) -> u8 {
        match self {
            Refusal::ServerRunning(_) => Self::EXIT_SERVER_RUNNING,
            Refusal::WrongKey(_) => Self::EXIT_WRONG_KEY,
        }
    }
}

/// Takes the single-process lock, or refuses because a server holds it.
pub async fn lock_stopped(settings: &Settings, doing: &str) -> anyhow::Result<InstanceLock> {
    let url = settings.database_url();
    InstanceLock::acquire(url.expose())
        .await
        .map_err(|e| match e {
            LockError::Held { holder } => Refusal::ServerRunning(format!(
                "a tgfleet server is running on this database ({holder}); stop it before \
                 {doing}"
            ))
            .into(),
            LockError::Other(cause) => anyhow::anyhow!("{cause}"),
        })
}

/// The cipher the settings name, without ever creating a key: a new key would open nothing.
pub async fn current_cipher(settings: &Settings) -> anyhow::Result<SessionCipher> {
    match settings.secrets.backend {
        SecretsBackend::Local => {
            let path = settings.session_key_path();
            if !path.exists() {
                return Err(Refusal::WrongKey(format!(
                    "there is no session key at {}: sealed sessions open only with the key that \
                     sealed them; put that key back first",
                    path.display()
                ))
                .into());
            }
            SessionCipher::local(&path)
        }
        SecretsBackend::Vault => {
            let (params, approle) = tgfleet_api::startup::vault_params(settings).await?;
            Ok(tgfleet_api::startup::vault_cipher(params, approle).await?)
        }
    }
}

fn sync_dir_of(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

fn print_passes(passes: &[ColumnPass]) {
    let rows: Vec<Vec<String>> = passes
        .iter()
        .map(|p| {
            vec![
                p.column.clone(),
                p.resealed.to_string(),
                (p.unchanged + p.raced).to_string(),
            ]
        })
        .collect();
    eprint!(
        "{}",
        super::table(&["column", "sealed again", "already current"], &rows)
    );
}

pub async fn rotate(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.secrets.backend == SecretsBackend::Local,
        "secrets.backend is vault: rotate the transit key in Vault (`bao write -f \
         transit/keys/{}/rotate`), then run `tgfleet keys rewrap`",
        settings.vault.transit_key
    );
    let _lock = lock_stopped(
        settings,
        "rotating the session key (rotation needs it stopped)",
    )
    .await?;
    let files = KeyFiles::beside(&settings.session_key_path());
    anyhow::ensure!(
        files.current.exists(),
        "there is no session key at {}: nothing to rotate",
        files.current.display()
    );
    let db = SealedDb::connect(settings.database_url().expose()).await?;
    let resumed = files.next.exists() || files.old.exists();
    if resumed {
        eprintln!("finishing an interrupted key rotation");
    }
    if !files.old.exists() {
        let from = SessionCipher::local(&files.current)?;
        // Created on the first run, read on a resumed one: the key some blobs may already use.
        let to = SessionCipher::local(&files.next)?;
        sync_dir_of(&files.next)?;
        let passes = sealed::reseal_all(
            &db,
            &Reseal::Rotate {
                from: &from,
                to: &to,
            },
        )
        .await
        .with_context(|| {
            format!(
                "sealing again with the new key {} (nothing is lost: run `tgfleet keys \
                     rotate` again to continue)",
                files.next.display()
            )
        })?;
        print_passes(&passes);
        // On disk before any key file moves: a power cut must not take back re-sealed rows
        // once the key that opens their old form is on its way out.
        db.make_durable().await?;
        sealed::check_all(&db, &to)
            .await
            .context("checking that every sealed value opens with the new key")?;
        std::fs::hard_link(&files.current, &files.old)
            .with_context(|| format!("keeping the old key as {}", files.old.display()))?;
        sync_dir_of(&files.old)?;
    }
    if files.next.exists() {
        std::fs::rename(&files.next, &files.current).with_context(|| {
            format!(
                "moving {} to {}",
                files.next.display(),
                files.current.display()
            )
        })?;
        sync_dir_of(&files.current)?;
    }
    let key = SessionCipher::local(&files.current)?;
    // Sealed again from the old key once more: a no-op after an uninterrupted run, and what
    // makes every interrupted state converge (rows a crash took back open with the old key).
    let old = SessionCipher::local(&files.old)?;
    sealed::reseal_all(
        &db,
        &Reseal::Rotate {
            from: &old,
            to: &key,
        },
    )
    .await
    .with_context(|| {
        format!(
            "sealing again with {} (the old key is still in {}; run `tgfleet keys rotate` \
                 again)",
            files.current.display(),
            files.old.display()
        )
    })?;
    db.make_durable().await?;
    let opened = sealed::check_all(&db, &key).await.with_context(|| {
        format!(
            "checking every sealed value against {} (the old key is still in {})",
            files.current.display(),
            files.old.display()
        )
    })?;
    db.close().await;
    std::fs::remove_file(&files.old)
        .with_context(|| format!("removing the old key {}", files.old.display()))?;
    sync_dir_of(&files.old)?;
    eprintln!(
        "rotated the session key {}: all {opened} sealed values open with the new key; the old \
         key is gone, so backups made before now need the copy of it you kept with them",
        files.current.display()
    );
    Ok(())
}

pub async fn rewrap(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.secrets.backend == SecretsBackend::Vault,
        "secrets.backend is local: a local key has no versions to re-wrap to; `tgfleet keys \
         rotate` replaces it"
    );
    let cipher = current_cipher(settings).await?;
    // Picks up a rotation done moments ago, so every blob goes to the version just made.
    cipher
        .check()
        .await
        .map_err(|e| anyhow::anyhow!("vault: {e}"))?;
    let db = SealedDb::connect(settings.database_url().expose()).await?;
    let passes = sealed::reseal_all(&db, &Reseal::Rewrap(&cipher)).await?;
    print_passes(&passes);
    // What a running server sealed meanwhile with its previous data key (it moves to the new
    // version at its next transit-key check) is still on an old version: say so, and fail, so
    // nobody retires a version that still opens sessions.
    let stale = sealed::count_stale(&db, &cipher).await?;
    db.close().await;
    let resealed: u64 = passes.iter().map(|p| p.resealed).sum();
    anyhow::ensure!(
        stale == 0,
        "re-wrapped {resealed} sealed values, but {stale} are still wrapped by an older version \
         of transit key {}/{} (a running server seals with its previous data key until its next \
         check, within 5 minutes of the rotation): run `tgfleet keys rewrap` again after that, \
         and retire old versions only after a run that leaves none",
        settings.vault.transit_mount,
        settings.vault.transit_key,
    );
    eprintln!(
        "re-wrapped {resealed} sealed values to transit key {}/{} version {}; none is left on an \
         older version",
        settings.vault.transit_mount,
        settings.vault.transit_key,
        cipher.key_version()
    );
    Ok(())
}
