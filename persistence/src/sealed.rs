//! Every column holding a blob sealed by the `SessionCipher`, and the passes over all of them:
//! sealing each again with another key or key version (`tgfleet keys rotate`, `tgfleet keys
//! rewrap`) and checking that each opens (`tgfleet restore`).
//!
//! A pass that must reach every sealed blob can only be as complete as this list, so a migration
//! that adds a sealed column adds its line to `SEALED_COLUMNS` too.

use crate::cipher::{
    CipherError, SessionCipher, AAD_DOMAIN, AAD_DOMAIN_API_HASH, AAD_DOMAIN_PROXY_URL,
    AAD_DOMAIN_TWO_FA,
};
use anyhow::Context as _;
use sqlx::{PgPool, SqlitePool};

/// One column of sealed blobs.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    /// The table's primary key, which also names what the blob is bound to (`bound_to`).
    pub key: &'static str,
    pub column: &'static str,
    /// The associated-data domain the blob was sealed under.
    pub domain: &'static [u8],
    pub bound_to: BoundTo,
}

/// How a row's key becomes the id sealed into its blob's associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundTo {
    /// An INTEGER key, sealed in as is (an account id).
    IntegerKey,
    /// A webhook's UUID, sealed in as `webhook_secret_aad(id)`.
    WebhookId,
}

impl SealedColumn {
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// Every sealed column of the schema; NULLs are skipped, so optional columns belong here too.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn {
        table: "account_sessions",
        key: "account_id",
        column: "sealed",
        domain: AAD_DOMAIN,
        bound_to: BoundTo::IntegerKey,
    },
    SealedColumn {
        table: "telegram_accounts",
        key: "id",
        column: "api_hash_sealed",
        domain: AAD_DOMAIN_API_HASH,
        bound_to: BoundTo::IntegerKey,
    },
    SealedColumn {
        table: "telegram_accounts",
        key: "id",
        column: "two_fa_sealed",
        domain: AAD_DOMAIN_TWO_FA,
        bound_to: BoundTo::IntegerKey,
    },
    SealedColumn {
        table: "proxies",
        key: "id",
        column: "url_sealed",
        domain: AAD_DOMAIN_PROXY_URL,
        bound_to: BoundTo::IntegerKey,
    },
    SealedColumn {
        table: "webhooks",
        key: "id",
        column: "secret",
        domain: AAD_DOMAIN,
        bound_to: BoundTo::WebhookId,
    },
    SealedColumn {
        table: "webhooks",
        key: "id",
        column: "previous_secret",
        domain: AAD_DOMAIN,
        bound_to: BoundTo::WebhookId,
    },
];

/// The id a webhook's signing secrets are sealed for: negative, so it can never be an account's.
pub fn webhook_secret_aad(webhook_id: &str) -> i64 {
    let id = uuid::Uuid::parse_str(webhook_id).map_or(0, |u| u.as_u64_pair().1);
    i64::MIN | (id & (i64::MAX as u64)) as i64
}

/// A row's primary key, as the column's `bound_to` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowKey {
    Integer(i64),
    Text(String),
}

impl std::fmt::Display for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowKey::Integer(i) => write!(f, "{i}"),
            RowKey::Text(s) => f.write_str(s),
        }
    }
}

impl RowKey {
    /// The id sealed into the blob's associated data (`page` reads text keys only for
    /// `BoundTo::WebhookId` columns).
    fn aad_id(&self) -> i64 {
        match self {
            RowKey::Integer(i) => *i,
            RowKey::Text(s) => webhook_secret_aad(s),
        }
    }
}

/// Rows read and written per transaction: large enough that a pass over 100k sessions is a few
/// hundred transactions, small enough that SQLite's one writer is never held for long while a
/// server runs beside an online `keys rewrap`.
const PAGE: i64 = 500;

/// The database a pass runs over, either backend.
pub enum SealedDb {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool: sqlx's types are per database, and the
/// SQL here is the same for both.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            SealedDb::Sqlite($pool) => $body,
            SealedDb::Postgres($pool) => $body,
        }
    };
}

impl SealedDb {
    /// Opens and migrates the database `url` names, as `Store` does — but never creates one: a
    /// pass over a new, empty database (a `database.url` that is not the server's) would find
    /// nothing to seal again and then retire the key every real session needs.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            use std::str::FromStr as _;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .with_context(|| format!("database.url {url:?}"))?;
            let file = options.get_filename();
            anyhow::ensure!(
                file.exists(),
                "there is no database at {} (database.url {url:?}): run this with the server's \
                 configuration",
                file.display()
            );
            let store = crate::store::SqliteStore::connect(url).await?;
            Ok(SealedDb::Sqlite(store.pool().clone()))
        } else {
            let store = crate::store::PgStore::connect(url).await?;
            Ok(SealedDb::Postgres(store.pool().clone()))
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    /// Puts every committed write on disk before a step that depends on it (a key file renamed
    /// or deleted). SQLite in WAL mode with `synchronous=NORMAL` may lose the last commits to a
    /// power cut until a checkpoint; a FULL checkpoint that every reader let finish writes them
    /// into the database file and syncs it. PostgreSQL's commits are durable already.
    pub async fn make_durable(&self) -> anyhow::Result<()> {
        if let SealedDb::Sqlite(pool) = self {
            let (busy, log, done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(FULL)")
                .fetch_one(pool)
                .await
                .context("checkpointing the database")?;
            anyhow::ensure!(
                busy == 0 && log == done,
                "the database's write-ahead log could not be checkpointed (another process has \
                 it open: a `tgfleet backup` or an sqlite3 shell?); nothing is lost, run this \
                 again once it is closed"
            );
        }
        Ok(())
    }

    async fn page(
        &self,
        col: &SealedColumn,
        after: Option<&RowKey>,
    ) -> anyhow::Result<Vec<(RowKey, Vec<u8>)>> {
        let filter = if after.is_some() {
            format!("AND {} > $1", col.key)
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL {filter} \
             ORDER BY {key} LIMIT {PAGE}",
            key = col.key,
            column = col.column,
            table = col.table,
        );
        let text_key = col.bound_to == BoundTo::WebhookId;
        with_pool!(self, pool => {
            use sqlx::Row as _;
            let mut query = sqlx::query(&sql);
            match after {
                Some(RowKey::Integer(i)) => query = query.bind(*i),
                Some(RowKey::Text(s)) => query = query.bind(s.clone()),
                None => {}
            }
            let rows = query
                .fetch_all(pool)
                .await
                .with_context(|| format!("reading {}", col.name()))?;
            rows.iter()
                .map(|row| {
                    let key = if text_key {
                        RowKey::Text(row.try_get(0)?)
                    } else {
                        RowKey::Integer(row.try_get(0)?)
                    };
                    Ok((key, row.try_get::<Vec<u8>, _>(1)?))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .with_context(|| format!("decoding {}", col.name()))
        })
    }

    /// Writes each `(key, old, new)`, one transaction for the lot; a row whose blob is no
    /// longer `old` (a running server sealed it again meanwhile) is left as it is. Returns how
    /// many rows changed.
    async fn replace(
        &self,
        col: &SealedColumn,
        updates: &[(RowKey, Vec<u8>, Vec<u8>)],
    ) -> anyhow::Result<u64> {
        let sql = format!(
            "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3",
            table = col.table,
            column = col.column,
            key = col.key,
        );
        with_pool!(self, pool => {
            let mut tx = pool
                .begin()
                .await
                .with_context(|| format!("writing {}", col.name()))?;
            let mut changed = 0;
            for (key, old, new) in updates {
                let query = sqlx::query(&sql).bind(new.as_slice());
                let query = match key {
                    RowKey::Integer(i) => query.bind(*i),
                    RowKey::Text(s) => query.bind(s.as_str()),
                };
                changed += query
                    .bind(old.as_slice())
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("writing {} row {key}", col.name()))?
                    .rows_affected();
            }
            tx.commit()
                .await
                .with_context(|| format!("committing {}", col.name()))?;
            Ok(changed)
        })
    }
}

/// What a pass re-seals.
pub enum Reseal<'a> {
    /// From the old local key to the new one. A blob that already opens with `to` is done (a
    /// pass cut short by a crash is run again).
    Rotate {
        from: &'a SessionCipher,
        to: &'a SessionCipher,
    },
    /// Vault: every blob wrapped by an older transit key version than the newest, sealed again
    /// with a data key of the newest.
    Rewrap(&'a SessionCipher),
}

/// Counts of one pass over one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnPass {
    pub column: String,
    /// Sealed again by this pass.
    pub resealed: u64,
    /// Already as the pass wants them.
    pub unchanged: u64,
    /// Sealed again by someone else between the read and the write; already current.
    pub raced: u64,
}

/// A blob that did not open: which row, and why.
#[derive(Debug, thiserror::Error)]
#[error("{column} row {key}: {cause}")]
pub struct BlobError {
    pub column: String,
    pub key: RowKey,
    pub cause: CipherError,
}

/// A column's blobs, page by page in key order (keyset paging, so rows written meanwhile
/// neither repeat nor shift the pages).
struct Pages<'a> {
    db: &'a SealedDb,
    col: &'a SealedColumn,
    after: Option<RowKey>,
}

impl<'a> Pages<'a> {
    fn of(db: &'a SealedDb, col: &'a SealedColumn) -> Self {
        Self {
            db,
            col,
            after: None,
        }
    }

    async fn next(&mut self) -> anyhow::Result<Option<Vec<(RowKey, Vec<u8>)>>> {
        let rows = self.db.page(self.col, self.after.as_ref()).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(None);
        };
        self.after = Some(last.clone());
        Ok(Some(rows))
    }
}

/// Seals every blob of every sealed column again as `mode` says, page by page. Stops at the
/// first blob that does not open, naming it: nothing is ever written that would lose one.
pub async fn reseal_all(db: &SealedDb, mode: &Reseal<'_>) -> anyhow::Result<Vec<ColumnPass>> {
    let mut passes = Vec::new();
    for col in SEALED_COLUMNS {
        let mut pass = ColumnPass {
            column: col.name(),
            ..ColumnPass::default()
        };
        let mut pages = Pages::of(db, col);
        while let Some(rows) = pages.next().await? {
            let mut updates = Vec::new();
            for (key, blob) in rows {
                let id = key.aad_id();
                let fail = |cause| BlobError {
                    column: col.name(),
                    key: key.clone(),
                    cause,
                };
                let resealed = match mode {
                    Reseal::Rotate { from, to } => match to.open_in(col.domain, id, &blob).await {
                        Ok(_) => None,
                        Err(CipherError::Tampered) => {
                            let plain = from.open_in(col.domain, id, &blob).await.map_err(fail)?;
                            Some(to.seal_in(col.domain, id, &plain).await.map_err(fail)?)
                        }
                        Err(e) => return Err(fail(e).into()),
                    },
                    Reseal::Rewrap(cipher) if cipher.needs_rewrap(&blob) => {
                        let plain = cipher.open_in(col.domain, id, &blob).await.map_err(fail)?;
                        Some(cipher.seal_in(col.domain, id, &plain).await.map_err(fail)?)
                    }
                    Reseal::Rewrap(_) => None,
                };
                match resealed {
                    Some(new) => updates.push((key, blob, new)),
                    None => pass.unchanged += 1,
                }
            }
            if !updates.is_empty() {
                let changed = db.replace(col, &updates).await?;
                pass.resealed += changed;
                pass.raced += updates.len() as u64 - changed;
            }
        }
        passes.push(pass);
    }
    Ok(passes)
}

/// How many blobs are still wrapped by an older transit key version than `cipher`'s newest
/// (Vault), after a `Reseal::Rewrap` pass: a running server seals with its current data key
/// until its next check of the transit key, so a pass can be followed by new old-version blobs.
pub async fn count_stale(db: &SealedDb, cipher: &SessionCipher) -> anyhow::Result<u64> {
    let mut stale = 0;
    for col in SEALED_COLUMNS {
        let mut pages = Pages::of(db, col);
        while let Some(rows) = pages.next().await? {
            stale += rows.iter().filter(|(_, b)| cipher.needs_rewrap(b)).count() as u64;
        }
    }
    Ok(stale)
}

/// Opens every sealed blob with `cipher`; the number opened, or the first that does not open.
pub async fn check_all(db: &SealedDb, cipher: &SessionCipher) -> anyhow::Result<u64> {
    let mut opened = 0;
    for col in SEALED_COLUMNS {
        let mut pages = Pages::of(db, col);
        while let Some(rows) = pages.next().await? {
            for (key, blob) in rows {
                let id = key.aad_id();
                if let Err(cause) = cipher.open_in(col.domain, id, &blob).await {
                    return Err(BlobError {
                        column: col.name(),
                        key,
                        cause,
                    }
                    .into());
                }
                opened += 1;
            }
        }
    }
    Ok(opened)
}

/// The files of a local key rotation beside the key file `current` (`session.key`): the new key
/// while blobs are being sealed with it (`session.key.next`), and the old key kept under its own
/// name until every blob opens with the new one (`session.key.rotation-old`: a name of the
/// rotation's own, so a copy an operator keeps as `session.key.old` is never taken for a step of
/// it, nor deleted).
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub current: std::path::PathBuf,
    pub next: std::path::PathBuf,
    pub old: std::path::PathBuf,
}

impl KeyFiles {
    pub fn beside(current: &std::path::Path) -> Self {
        let with = |suffix: &str| {
            let mut name = current.as_os_str().to_owned();
            name.push(suffix);
            std::path::PathBuf::from(name)
        };
        Self {
            current: current.to_owned(),
            next: with(".next"),
            old: with(".rotation-old"),
        }
    }

    /// The file that shows a rotation was cut short, if one was: until it is run again, some
    /// values may be sealed with one key and some with the other.
    pub fn unfinished(&self) -> Option<&std::path::Path> {
        [&self.next, &self.old]
            .into_iter()
            .find(|p| p.exists())
            .map(|p| p.as_path())
    }
}
