//! The `Store` implementation shared by both backends.
//!
//! SQLite and PostgreSQL accept the same SQL for everything tgfleet does (`$N` placeholders,
//! `RETURNING`, `ON CONFLICT`, partial indexes), so one body of code serves both; a macro stamps it
//! out per backend because sqlx's row and argument types are concrete per database, and generic
//! bounds over `sqlx::Database` would drown the queries. Backend differences live in the
//! migrations and in each backend's `connect`.

/// Column lists, in the order the row decoders expect.
pub(super) const USER_COLS: &str = "id, email, username, password_hash, role, disabled, created_at";
pub(super) const TOKEN_COLS: &str =
    "token_hash, user_id, family_id, expires_at, revoked_at, created_at";
pub(super) const ACCOUNT_COLS: &str = "id, owner_id, label, kind, phone, state, tg_user_id, \
     username, dc_id, flood_wait_until, last_error, restarts, receive_updates, device_model, \
     system_version, app_version, system_lang_code, lang_code, api_id, proxy_id, \
     (two_fa_sealed IS NOT NULL) AS two_fa_stored, created_at, updated_at";
pub(super) const PROXY_COLS: &str =
    "id, owner_id, label, state, latency_ms, last_error, checked_at, created_at, updated_at";
pub(super) const LOG_COLS: &str =
    "id, at, level, event, account_id, user_id, error_code, message, details";

/// Error codes and accounts listed by `error_stats`, most frequent first.
pub(super) const STATS_TOP: i64 = 100;

pub(super) fn role_str(role: crate::model::Role) -> &'static str {
    match role {
        crate::model::Role::Admin => "admin",
        crate::model::Role::User => "user",
    }
}

pub(super) fn parse_role(s: &str) -> anyhow::Result<crate::model::Role> {
    match s {
        "admin" => Ok(crate::model::Role::Admin),
        "user" => Ok(crate::model::Role::User),
        other => anyhow::bail!("unknown role {other:?} in users row"),
    }
}

pub(super) fn kind_str(kind: crate::model::AccountKind) -> &'static str {
    match kind {
        crate::model::AccountKind::User => "user",
        crate::model::AccountKind::Bot => "bot",
    }
}

pub(super) fn parse_kind(s: &str) -> anyhow::Result<crate::model::AccountKind> {
    match s {
        "user" => Ok(crate::model::AccountKind::User),
        "bot" => Ok(crate::model::AccountKind::Bot),
        other => anyhow::bail!("unknown account kind {other:?} in telegram_accounts row"),
    }
}

/// Levels at or above `min`, for an `IN (…)` filter that can use the level index.
pub(super) fn levels_from(min: crate::model::LogLevel) -> Vec<&'static str> {
    use crate::model::LogLevel;
    [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ]
    .into_iter()
    .filter(|l| *l >= min)
    .map(LogLevel::as_str)
    .collect()
}

/// The identity a row's device columns hold. A row with any of them NULL (one from before
/// migration 0012 that `fill_missing_devices` has not reached yet, or one written by hand) shows
/// and uses the whole identity derived from its id — never a mix of stored and derived fields,
/// which could put one platform's app on another's device — and the fill writes that same
/// identity, so what the row says does not change when it is filled.
pub(super) fn device_or_derived(
    id: crate::model::AccountId,
    stored: [Option<String>; 5],
) -> crate::model::DeviceIdentity {
    match stored {
        [Some(device_model), Some(system_version), Some(app_version), Some(system_lang_code), Some(lang_code)] => {
            crate::model::DeviceIdentity {
                device_model,
                system_version,
                app_version,
                system_lang_code,
                lang_code,
            }
        }
        _ => crate::model::DeviceIdentity::pick(id as u64),
    }
}

/// The rows `fill_missing_devices` looks for.
pub(super) const DEVICE_MISSING: &str = "(device_model IS NULL OR system_version IS NULL OR \
     app_version IS NULL OR system_lang_code IS NULL OR lang_code IS NULL)";

/// Rows `fill_missing_devices` gives an identity per statement batch.
pub(super) const DEVICE_FILL_BATCH: i64 = 500;

macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            /// Writes the identity every account without a whole one (rows from before
            /// migration 0012) already shows — the one derived from its id — once: the next
            /// connect finds none. Rows that get one meanwhile (another process) keep theirs.
            async fn fill_missing_devices(&self) -> StoreResult<u64> {
                let mut filled = 0;
                loop {
                    let ids: Vec<AccountId> = sqlx::query_scalar(&format!(
                        "SELECT id FROM telegram_accounts WHERE {} ORDER BY id LIMIT $1",
                        $crate::store::sql::DEVICE_MISSING
                    ))
                    .bind($crate::store::sql::DEVICE_FILL_BATCH)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("finding accounts without a device identity"))?;
                    if ids.is_empty() {
                        return Ok(filled);
                    }
                    let mut tx = self
                        .pool
                        .begin()
                        .await
                        .map_err(db_err("filling device identities"))?;
                    let update = format!(
                        "UPDATE telegram_accounts SET device_model = $2, system_version = $3, \
                         app_version = $4, system_lang_code = $5, lang_code = $6 \
                         WHERE id = $1 AND {}",
                        $crate::store::sql::DEVICE_MISSING
                    );
                    for id in &ids {
                        let d = DeviceIdentity::pick(*id as u64);
                        filled += sqlx::query(&update)
                            .bind(id)
                            .bind(&d.device_model)
                            .bind(&d.system_version)
                            .bind(&d.app_version)
                            .bind(&d.system_lang_code)
                            .bind(&d.lang_code)
                            .execute(&mut *tx)
                            .await
                            .map_err(db_err("filling a device identity"))?
                            .rows_affected();
                    }
                    tx.commit()
                        .await
                        .map_err(db_err("committing device identities"))?;
                }
            }

            fn user_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<User> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let role: String = row.try_get("role").context("decoding users.role")?;
                Ok(User {
                    id: row.try_get("id").context("decoding users.id")?,
                    email: row.try_get("email").context("decoding users.email")?,
                    username: row.try_get("username").context("decoding users.username")?,
                    password_hash: row
                        .try_get("password_hash")
                        .context("decoding users.password_hash")?,
                    role: $crate::store::sql::parse_role(&role)?,
                    disabled: row.try_get("disabled").context("decoding users.disabled")?,
                    created_at: row
                        .try_get("created_at")
                        .context("decoding users.created_at")?,
                })
            }

            fn token_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<RefreshToken> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                Ok(RefreshToken {
                    token_hash: row.try_get("token_hash").context("decoding token_hash")?,
                    user_id: row.try_get("user_id").context("decoding user_id")?,
                    family_id: row.try_get("family_id").context("decoding family_id")?,
                    expires_at: row.try_get("expires_at").context("decoding expires_at")?,
                    revoked_at: row.try_get("revoked_at").context("decoding revoked_at")?,
                    created_at: row.try_get("created_at").context("decoding created_at")?,
                })
            }

            /// The account update as one statement: a `CASE WHEN $flag` per optional column
            /// keeps the query static (cacheable) and the update atomic, without a
            /// read-modify-write race.
            async fn update_account_in(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: AccountId,
                update: AccountUpdate,
            ) -> StoreResult<Account> {
                let sql = format!(
                    "UPDATE telegram_accounts SET \
                     state = COALESCE($2, state), \
                     phone = CASE WHEN $3 THEN $4 ELSE phone END, \
                     tg_user_id = CASE WHEN $5 THEN $6 ELSE tg_user_id END, \
                     username = CASE WHEN $7 THEN $8 ELSE username END, \
                     dc_id = CASE WHEN $9 THEN $10 ELSE dc_id END, \
                     flood_wait_until = CASE WHEN $11 THEN $12 ELSE flood_wait_until END, \
                     last_error = CASE WHEN $13 THEN $14 ELSE last_error END, \
                     restarts = restarts + $15, \
                     updated_at = $16, \
                     receive_updates = COALESCE($17, receive_updates), \
                     device_model = COALESCE($18, device_model), \
                     system_version = COALESCE($19, system_version), \
                     app_version = COALESCE($20, app_version), \
                     system_lang_code = COALESCE($21, system_lang_code), \
                     lang_code = COALESCE($22, lang_code), \
                     proxy_id = CASE WHEN $23 THEN $24 ELSE proxy_id END, \
                     two_fa_sealed = CASE WHEN $25 THEN $26 ELSE two_fa_sealed END \
                     WHERE id = $1 RETURNING {ACCOUNT_COLS}"
                );
                let device = update.device;
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(update.state.map(AccountState::as_str))
                    .bind(update.phone.is_some())
                    .bind(update.phone.flatten().map($crate::Phone::into_string))
                    .bind(update.tg_user_id.is_some())
                    .bind(update.tg_user_id.flatten())
                    .bind(update.username.is_some())
                    .bind(update.username.flatten())
                    .bind(update.dc_id.is_some())
                    .bind(update.dc_id.flatten())
                    .bind(update.flood_wait_until.is_some())
                    .bind(update.flood_wait_until.flatten())
                    .bind(update.last_error.is_some())
                    .bind(update.last_error.flatten())
                    .bind(update.add_restarts)
                    .bind(now())
                    .bind(update.receive_updates)
                    .bind(device.as_ref().and_then(|d| d.device_model.as_deref()))
                    .bind(device.as_ref().and_then(|d| d.system_version.as_deref()))
                    .bind(device.as_ref().and_then(|d| d.app_version.as_deref()))
                    .bind(device.as_ref().and_then(|d| d.system_lang_code.as_deref()))
                    .bind(device.as_ref().and_then(|d| d.lang_code.as_deref()))
                    .bind(update.proxy_id.is_some())
                    .bind(update.proxy_id.flatten())
                    .bind(update.two_fa_sealed.is_some())
                    .bind(update.two_fa_sealed.flatten())
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db_err("updating telegram account"))?;
                Ok(Self::account_row(&row)?)
            }

            /// The account holding the session with `fingerprint`; the uncounted body that
            /// `account_by_session_fingerprint` and the claims share, so one operation counts once.
            async fn fingerprint_holder(&self, fingerprint: &str) -> StoreResult<Option<AccountId>> {
                sqlx::query_scalar(
                    "SELECT account_id FROM session_fingerprints WHERE fingerprint = $1",
                )
                .bind(fingerprint)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("looking up session fingerprint"))
            }

            /// One sealed column of an account's row (`column` is one of this file's own
            /// literals, never input); `NotFound` without the row.
            async fn account_blob(
                &self,
                id: AccountId,
                column: &'static str,
                what: &'static str,
            ) -> StoreResult<Option<Vec<u8>>> {
                let sql = format!("SELECT {column} FROM telegram_accounts WHERE id = $1");
                let sealed: Option<Option<Vec<u8>>> = sqlx::query_scalar(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err(what))?;
                sealed.ok_or(StoreError::NotFound)
            }

            fn account_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<Account> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: AccountId = row.try_get("id").context("decoding telegram_accounts.id")?;
                let ctx = |col: &str| format!("decoding telegram_accounts.{col} of account {id}");
                let kind: String = row.try_get("kind").with_context(|| ctx("kind"))?;
                let state: String = row.try_get("state").with_context(|| ctx("state"))?;
                Ok(Account {
                    id,
                    owner_id: row.try_get("owner_id").with_context(|| ctx("owner_id"))?,
                    label: row.try_get("label").with_context(|| ctx("label"))?,
                    kind: $crate::store::sql::parse_kind(&kind)?,
                    // Every writer stores parsed phones; one that is not (a hand-edited row)
                    // must not make the whole page of accounts unreadable.
                    phone: row
                        .try_get::<Option<String>, _>("phone")
                        .with_context(|| ctx("phone"))?
                        .and_then(|p| match p.parse::<$crate::Phone>() {
                            Ok(phone) => Some(phone),
                            Err(why) => {
                                tracing::warn!(account_id = id, why, "stored phone ignored");
                                None
                            }
                        }),
                    state: AccountState::parse(&state).with_context(|| {
                        format!("unknown state {state:?} of account {id}")
                    })?,
                    tg_user_id: row.try_get("tg_user_id").with_context(|| ctx("tg_user_id"))?,
                    username: row.try_get("username").with_context(|| ctx("username"))?,
                    dc_id: row.try_get("dc_id").with_context(|| ctx("dc_id"))?,
                    flood_wait_until: row
                        .try_get("flood_wait_until")
                        .with_context(|| ctx("flood_wait_until"))?,
                    last_error: row.try_get("last_error").with_context(|| ctx("last_error"))?,
                    restarts: row.try_get("restarts").with_context(|| ctx("restarts"))?,
                    receive_updates: row
                        .try_get("receive_updates")
                        .with_context(|| ctx("receive_updates"))?,
                    device: {
                        let col = |name: &str| -> anyhow::Result<Option<String>> {
                            row.try_get(name).with_context(|| ctx(name))
                        };
                        let stored = [
                            col("device_model")?,
                            col("system_version")?,
                            col("app_version")?,
                            col("system_lang_code")?,
                            col("lang_code")?,
                        ];
                        $crate::store::sql::device_or_derived(id, stored)
                    },
                    api_id: row.try_get("api_id").with_context(|| ctx("api_id"))?,
                    proxy_id: row.try_get("proxy_id").with_context(|| ctx("proxy_id"))?,
                    two_fa_stored: row
                        .try_get("two_fa_stored")
                        .with_context(|| ctx("two_fa_stored"))?,
                    created_at: row.try_get("created_at").with_context(|| ctx("created_at"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                })
            }

            fn proxy_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<$crate::model::Proxy> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: i64 = row.try_get("id").context("decoding proxies.id")?;
                let ctx = |col: &str| format!("decoding proxies.{col} of proxy {id}");
                let state: String = row.try_get("state").with_context(|| ctx("state"))?;
                Ok($crate::model::Proxy {
                    id,
                    owner_id: row.try_get("owner_id").with_context(|| ctx("owner_id"))?,
                    label: row.try_get("label").with_context(|| ctx("label"))?,
                    state: $crate::model::ProxyState::parse(&state)
                        .with_context(|| format!("unknown state {state:?} of proxy {id}"))?,
                    latency_ms: row.try_get("latency_ms").with_context(|| ctx("latency_ms"))?,
                    last_error: row.try_get("last_error").with_context(|| ctx("last_error"))?,
                    checked_at: row.try_get("checked_at").with_context(|| ctx("checked_at"))?,
                    created_at: row.try_get("created_at").with_context(|| ctx("created_at"))?,
                    updated_at: row.try_get("updated_at").with_context(|| ctx("updated_at"))?,
                })
            }

            fn log_row(row: &<$db as sqlx::Database>::Row) -> anyhow::Result<LogEntry> {
                use anyhow::Context as _;
                use sqlx::Row as _;
                let id: i64 = row.try_get("id").context("decoding integration_log.id")?;
                let ctx = |col: &str| format!("decoding integration_log.{col} of entry {id}");
                let level: String = row.try_get("level").with_context(|| ctx("level"))?;
                let details: sqlx::types::Json<serde_json::Value> =
                    row.try_get("details").with_context(|| ctx("details"))?;
                Ok(LogEntry {
                    id,
                    at: row.try_get("at").with_context(|| ctx("at"))?,
                    level: LogLevel::parse(&level)
                        .with_context(|| format!("unknown level {level:?} of log entry {id}"))?,
                    event: row.try_get("event").with_context(|| ctx("event"))?,
                    account_id: row.try_get("account_id").with_context(|| ctx("account_id"))?,
                    user_id: row.try_get("user_id").with_context(|| ctx("user_id"))?,
                    error_code: row.try_get("error_code").with_context(|| ctx("error_code"))?,
                    message: row.try_get("message").with_context(|| ctx("message"))?,
                    details: details.0,
                })
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn metrics(&self) -> Option<&$crate::store::StoreMetrics> {
                Some(&self.metrics)
            }

            async fn ping(&self) -> StoreResult<()> {
                let _op = self.metrics.op("ping");
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("pinging the database"))?;
                Ok(())
            }

            async fn create_user(&self, new: NewUser) -> StoreResult<User> {
                let _op = self.metrics.op("create_user");
                let sql = format!(
                    "INSERT INTO users (email, username, password_hash, role, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING {USER_COLS}"
                );
                let row = sqlx::query(&sql)
                    .bind(&new.email)
                    .bind(&new.username)
                    .bind(&new.password_hash)
                    .bind($crate::store::sql::role_str(new.role))
                    .bind(now())
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("creating user"))?;
                Ok(Self::user_row(&row)?)
            }

            async fn user_by_id(&self, id: UserId) -> StoreResult<User> {
                let _op = self.metrics.op("user_by_id");
                let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading user by id"))?;
                Ok(Self::user_row(&row)?)
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<User> {
                let _op = self.metrics.op("user_by_email");
                let sql = format!("SELECT {USER_COLS} FROM users WHERE lower(email) = lower($1)");
                let row = sqlx::query(&sql)
                    .bind(email)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading user by email"))?;
                Ok(Self::user_row(&row)?)
            }

            async fn list_users(
                &self,
                after_id: Option<UserId>,
                limit: u32,
            ) -> StoreResult<Vec<User>> {
                let _op = self.metrics.op("list_users");
                let sql =
                    format!("SELECT {USER_COLS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
                let rows = sqlx::query(&sql)
                    .bind(after_id.unwrap_or(0))
                    .bind(page_limit(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing users"))?;
                rows.iter()
                    .map(|r| Self::user_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn update_user(&self, id: UserId, patch: UserPatch) -> StoreResult<User> {
                let _op = self.metrics.op("update_user");
                let sql = format!(
                    "UPDATE users SET role = COALESCE($2, role), disabled = COALESCE($3, disabled) \
                     WHERE id = $1 RETURNING {USER_COLS}"
                );
                let row = sqlx::query(&sql)
                    .bind(id)
                    .bind(patch.role.map($crate::store::sql::role_str))
                    .bind(patch.disabled)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("updating user"))?;
                Ok(Self::user_row(&row)?)
            }

            async fn count_users(&self) -> StoreResult<i64> {
                let _op = self.metrics.op("count_users");
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("counting users"))?;
                Ok(n)
            }

            async fn insert_refresh_token(&self, token: RefreshToken) -> StoreResult<()> {
                let _op = self.metrics.op("insert_refresh_token");
                // Refused (Conflict) when the family was revoked, in the same statement, so a
                // rotation cannot slip a live token into a family revoked a moment earlier.
                let done = sqlx::query(
                    "INSERT INTO refresh_tokens \
                     (token_hash, user_id, family_id, expires_at, revoked_at, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6 \
                     WHERE NOT EXISTS \
                       (SELECT 1 FROM revoked_refresh_families WHERE family_id = $3)",
                )
                .bind(&token.token_hash)
                .bind(token.user_id)
                .bind(&token.family_id)
                .bind(token.expires_at)
                .bind(token.revoked_at)
                .bind(token.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("inserting refresh token"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict("refresh token family revoked".into()));
                }
                Ok(())
            }

            async fn refresh_token(&self, token_hash: &str) -> StoreResult<RefreshToken> {
                let _op = self.metrics.op("refresh_token");
                let sql = format!("SELECT {TOKEN_COLS} FROM refresh_tokens WHERE token_hash = $1");
                let row = sqlx::query(&sql)
                    .bind(token_hash)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading refresh token"))?;
                let mut token = Self::token_row(&row)?;
                // A token of a revoked family is revoked, whatever its own row says (it may have
                // been inserted while the family was being revoked).
                if token.revoked_at.is_none() {
                    let family_revoked: Option<DateTime<Utc>> = sqlx::query_scalar(
                        "SELECT revoked_at FROM revoked_refresh_families WHERE family_id = $1",
                    )
                    .bind(&token.family_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err("checking refresh token family"))?;
                    token.revoked_at = family_revoked;
                }
                Ok(token)
            }

            async fn revoke_refresh_token(&self, token_hash: &str) -> StoreResult<bool> {
                let _op = self.metrics.op("revoke_refresh_token");
                // One conditional UPDATE, so two concurrent refreshes with the same token cannot
                // both see it unrevoked: exactly one of them gets `true`.
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2 \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db_err("revoking refresh token"))?;
                if done.rows_affected() > 0 {
                    return Ok(true);
                }
                let exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = $1)",
                )
                .bind(token_hash)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("checking refresh token"))?;
                if exists {
                    Ok(false)
                } else {
                    Err(StoreError::NotFound)
                }
            }

            async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64> {
                let _op = self.metrics.op("revoke_refresh_family");
                // The family first: from here on no new token can join it (see insert).
                sqlx::query(
                    "INSERT INTO revoked_refresh_families (family_id, revoked_at) VALUES ($1, $2) \
                     ON CONFLICT (family_id) DO NOTHING",
                )
                .bind(family_id)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db_err("revoking refresh token family"))?;
                let done = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $2 \
                     WHERE family_id = $1 AND revoked_at IS NULL",
                )
                .bind(family_id)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db_err("revoking refresh token family"))?;
                Ok(done.rows_affected())
            }

            async fn revoke_access_token(
                &self,
                jti: &str,
                expires_at: DateTime<Utc>,
            ) -> StoreResult<()> {
                let _op = self.metrics.op("revoke_access_token");
                sqlx::query(
                    "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("revoking access token"))?;
                Ok(())
            }

            async fn is_access_token_revoked(
                &self,
                jti: &str,
                family_id: Option<&str>,
            ) -> StoreResult<bool> {
                let _op = self.metrics.op("is_access_token_revoked");
                let revoked: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM revoked_access_tokens WHERE jti = $1) \
                     OR EXISTS (SELECT 1 FROM revoked_refresh_families WHERE family_id = $2)",
                )
                .bind(jti)
                .bind(family_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("checking revoked access token"))?;
                Ok(revoked)
            }

            async fn purge_revoked_families(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let _op = self.metrics.op("purge_revoked_families");
                let done =
                    sqlx::query("DELETE FROM revoked_refresh_families WHERE revoked_at < $1")
                        .bind(before)
                        .execute(&self.pool)
                        .await
                        .map_err(db_err("purging revoked refresh token families"))?;
                Ok(done.rows_affected())
            }

            async fn purge_expired_tokens(&self, now: DateTime<Utc>) -> StoreResult<u64> {
                let _op = self.metrics.op("purge_expired_tokens");
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("starting token purge"))?;
                let access = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("purging revoked access tokens"))?;
                let refresh = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("purging expired refresh tokens"))?;
                tx.commit().await.map_err(db_err("committing token purge"))?;
                Ok(access.rows_affected() + refresh.rows_affected())
            }

            async fn create_account(&self, new: NewAccount) -> StoreResult<Account> {
                let _op = self.metrics.op("create_account");
                let sql = format!(
                    "INSERT INTO telegram_accounts \
                     (owner_id, label, kind, phone, state, restarts, created_at, updated_at, \
                      device_model, system_version, app_version, system_lang_code, lang_code) \
                     VALUES ($1, $2, $3, $4, 'new', 0, $5, $5, $6, $7, $8, $9, $10) \
                     RETURNING {ACCOUNT_COLS}"
                );
                let device = DeviceIdentity::generate();
                let row = sqlx::query(&sql)
                    .bind(new.owner_id)
                    .bind(&new.label)
                    .bind($crate::store::sql::kind_str(new.kind))
                    .bind(new.phone.as_ref().map($crate::Phone::as_str))
                    .bind(now())
                    .bind(&device.device_model)
                    .bind(&device.system_version)
                    .bind(&device.app_version)
                    .bind(&device.system_lang_code)
                    .bind(&device.lang_code)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("creating telegram account"))?;
                Ok(Self::account_row(&row)?)
            }

            async fn count_owned_accounts(&self, owner_id: UserId) -> StoreResult<(i64, i64)> {
                let _op = self.metrics.op("count_owned_accounts");
                let (total, pending): (i64, Option<i64>) = sqlx::query_as(
                    "SELECT COUNT(*), SUM(CASE WHEN state IN \
                     ('awaiting_code', 'awaiting_password', 'awaiting_qr') THEN 1 ELSE 0 END) \
                     FROM telegram_accounts WHERE owner_id = $1",
                )
                .bind(owner_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("counting a user's accounts"))?;
                Ok((total, pending.unwrap_or(0)))
            }

            async fn account_holding_phone(&self, phone: &$crate::Phone) -> StoreResult<Option<AccountId>> {
                let _op = self.metrics.op("account_holding_phone");
                sqlx::query_scalar(
                    "SELECT id FROM telegram_accounts WHERE phone = $1 AND \
                     (state IN ('active', 'reconnecting', 'flood_wait', 'hibernated') \
                      OR (state IN ('quarantined', 'stopped') AND tg_user_id IS NOT NULL))",
                )
                .bind(phone.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("finding the account holding a phone"))
            }

            async fn account_api_hash(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>> {
                let _op = self.metrics.op("account_api_hash");
                self.account_blob(id, "api_hash_sealed", "loading an account's api_hash")
                    .await
            }

            async fn account_two_fa_password(&self, id: AccountId) -> StoreResult<Option<Vec<u8>>> {
                let _op = self.metrics.op("account_two_fa_password");
                self.account_blob(id, "two_fa_sealed", "loading an account's 2FA password")
                    .await
            }

            async fn account(&self, id: AccountId) -> StoreResult<Account> {
                let _op = self.metrics.op("account");
                let sql = format!("SELECT {ACCOUNT_COLS} FROM telegram_accounts WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading telegram account"))?;
                Ok(Self::account_row(&row)?)
            }

            async fn list_accounts(&self, filter: AccountFilter) -> StoreResult<Vec<Account>> {
                let _op = self.metrics.op("list_accounts");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ACCOUNT_COLS} FROM telegram_accounts WHERE id > "
                ));
                q.push_bind(filter.after_id.unwrap_or(0));
                if let Some(owner) = filter.owner_id {
                    q.push(" AND owner_id = ").push_bind(owner);
                }
                if let Some(state) = filter.state {
                    q.push(" AND state = ").push_bind(state.as_str());
                }
                q.push(" ORDER BY id LIMIT ").push_bind(page_limit(filter.limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing telegram accounts"))?;
                rows.iter()
                    .map(|r| Self::account_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn update_account(
                &self,
                id: AccountId,
                update: AccountUpdate,
            ) -> StoreResult<Account> {
                let _op = self.metrics.op("update_account");
                let flood = update.flood_wait_until.flatten();
                if update.state.is_none() && flood.is_none() {
                    let mut conn = self
                        .pool
                        .acquire()
                        .await
                        .map_err(db_err("updating telegram account"))?;
                    return Self::update_account_in(&mut conn, id, update).await;
                }
                // A change of state or a new flood wait is an event, written with the row.
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("updating telegram account"))?;
                // A write first: it locks the row (the database, on SQLite) and reads it before.
                let before: Option<(String, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "UPDATE telegram_accounts SET updated_at = updated_at WHERE id = $1 \
                     RETURNING state, flood_wait_until",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err("updating telegram account"))?;
                let Some((from, flood_before)) = before else {
                    return Err(StoreError::NotFound);
                };
                let cause = update.cause.clone();
                let row = Self::update_account_in(&mut tx, id, update).await?;
                let at = now();
                let mut events = Vec::new();
                if from != row.state.as_str() {
                    events.push(NewEvent {
                        kind: EventType::AccountStateChanged,
                        account_id: Some(id),
                        owner_id: row.owner_id,
                        occurred_at: at,
                        data: serde_json::json!({
                            "from": from,
                            "to": row.state.as_str(),
                            "cause": cause,
                        }),
                        dedupe_key: None,
                    });
                }
                if let Some(until) = flood.filter(|u| *u > at && flood_before != Some(*u)) {
                    events.push(NewEvent {
                        kind: EventType::AccountFloodWait,
                        account_id: Some(id),
                        owner_id: row.owner_id,
                        occurred_at: at,
                        data: serde_json::json!({
                            "until": until,
                            "seconds": (until - at).num_seconds(),
                            "cause": cause,
                        }),
                        dedupe_key: None,
                    });
                }
                let ids = Self::insert_events_in(&mut tx, &events).await?;
                tx.commit()
                    .await
                    .map_err(db_err("committing telegram account update"))?;
                self.announce(&ids);
                Ok(row)
            }

            async fn delete_account(&self, id: AccountId) -> StoreResult<()> {
                let _op = self.metrics.op("delete_account");
                // The cascade would remove the session anyway; deleting it explicitly first keeps
                // the erase visible in the code and makes the first statement a write, so SQLite
                // takes the write lock at once instead of failing to upgrade a read transaction.
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("starting account delete"))?;
                sqlx::query("DELETE FROM account_sessions WHERE account_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("deleting account session"))?;
                let done = sqlx::query("DELETE FROM telegram_accounts WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("deleting telegram account"))?;
                if done.rows_affected() == 0 {
                    // Dropping `tx` rolls back; nothing was deleted anyway.
                    return Err(StoreError::NotFound);
                }
                tx.commit().await.map_err(db_err("committing account delete"))?;
                Ok(())
            }

            async fn count_accounts_by_state(&self) -> StoreResult<Vec<(AccountState, i64)>> {
                let _op = self.metrics.op("count_accounts_by_state");
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM telegram_accounts GROUP BY state ORDER BY state",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("counting accounts by state"))?;
                rows.into_iter()
                    .map(|(state, n)| {
                        AccountState::parse(&state)
                            .map(|s| (s, n))
                            .ok_or_else(|| {
                                StoreError::Other(anyhow::anyhow!(
                                    "unknown account state {state:?} in telegram_accounts"
                                ))
                            })
                    })
                    .collect()
            }

            async fn put_session(&self, account_id: AccountId, sealed: &[u8]) -> StoreResult<()> {
                let _op = self.metrics.op("put_session");
                sqlx::query(
                    "INSERT INTO account_sessions (account_id, sealed, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (account_id) DO UPDATE \
                     SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                )
                .bind(account_id)
                .bind(sealed)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db_err("storing account session"))?;
                Ok(())
            }

            async fn session(&self, account_id: AccountId) -> StoreResult<Option<Vec<u8>>> {
                let _op = self.metrics.op("session");
                let sealed: Option<Vec<u8>> =
                    sqlx::query_scalar("SELECT sealed FROM account_sessions WHERE account_id = $1")
                        .bind(account_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db_err("loading account session"))?;
                Ok(sealed)
            }

            async fn count_sessions(&self) -> StoreResult<i64> {
                let _op = self.metrics.op("count_sessions");
                sqlx::query_scalar("SELECT COUNT(*) FROM account_sessions")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("counting account sessions"))
            }

            async fn delete_session(&self, account_id: AccountId) -> StoreResult<()> {
                let _op = self.metrics.op("delete_session");
                // Idempotent: erasing a session that is already gone is success.
                sqlx::query("DELETE FROM account_sessions WHERE account_id = $1")
                    .bind(account_id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("deleting account session"))?;
                Ok(())
            }

            async fn claim_session_fingerprint(
                &self,
                account_id: AccountId,
                fingerprint: &str,
            ) -> StoreResult<()> {
                let _op = self.metrics.op("claim_session_fingerprint");
                // DO NOTHING, then read back: one statement cannot both insert and tell a
                // re-claim by the same account (success) from a claim by another (conflict).
                sqlx::query(
                    "INSERT INTO session_fingerprints (fingerprint, account_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING",
                )
                .bind(fingerprint)
                .bind(account_id)
                .bind(now())
                .execute(&self.pool)
                .await
                .map_err(db_err("claiming session fingerprint"))?;
                match self.fingerprint_holder(fingerprint).await? {
                    Some(holder) if holder == account_id => Ok(()),
                    Some(holder) => Err(StoreError::Conflict(format!(
                        "session fingerprint held by account {holder}"
                    ))),
                    // Deleted between the two statements: its account is gone, so is the claim.
                    None => Err(StoreError::NotFound),
                }
            }

            async fn create_imported_account(
                &self,
                imported: ImportedAccount,
            ) -> StoreResult<Result<Account, ImportConflict>> {
                let _op = self.metrics.op("create_imported_account");
                let ImportedAccount {
                    new,
                    tg_user_id,
                    username,
                    dc_id,
                    fingerprint,
                    seal,
                    device,
                    app,
                    proxy_id,
                    seal_two_fa_password,
                } = imported;
                let device = device.unwrap_or_else(DeviceIdentity::generate);
                let at = now();
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("starting an import"))?;
                // A write first, so SQLite takes its write lock at once instead of failing to
                // upgrade a read transaction.
                let sql = format!(
                    "INSERT INTO telegram_accounts \
                     (owner_id, label, kind, phone, state, tg_user_id, username, dc_id, restarts, \
                      created_at, updated_at, device_model, system_version, app_version, \
                      system_lang_code, lang_code, api_id, proxy_id) \
                     VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, 0, $8, $8, $9, $10, $11, $12, \
                      $13, $14, $15) RETURNING {ACCOUNT_COLS}"
                );
                let row = match sqlx::query(&sql)
                    .bind(new.owner_id)
                    .bind(&new.label)
                    .bind($crate::store::sql::kind_str(new.kind))
                    .bind(new.phone.as_ref().map($crate::Phone::as_str))
                    .bind(tg_user_id)
                    .bind(&username)
                    .bind(dc_id)
                    .bind(at)
                    .bind(&device.device_model)
                    .bind(&device.system_version)
                    .bind(&device.app_version)
                    .bind(&device.system_lang_code)
                    .bind(&device.lang_code)
                    .bind(app.as_ref().map(|a| a.api_id))
                    .bind(proxy_id)
                    .fetch_one(&mut *tx)
                    .await
                {
                    Ok(row) => row,
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        drop(tx);
                        // The same session already imported also holds its phone: say that.
                        return Ok(Err(
                            match self.fingerprint_holder(&fingerprint).await? {
                                Some(holder) => ImportConflict::Session(holder),
                                None => ImportConflict::Phone,
                            },
                        ));
                    }
                    Err(e) => return Err(db_err("creating an imported account")(e)),
                };
                let account = Self::account_row(&row)?;
                let claimed = sqlx::query(
                    "INSERT INTO session_fingerprints (fingerprint, account_id, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (fingerprint) DO NOTHING",
                )
                .bind(&fingerprint)
                .bind(account.id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_err("claiming session fingerprint"))?;
                if claimed.rows_affected() == 0 {
                    // Claimed by a concurrent import since the read above; dropping `tx` rolls
                    // this account back.
                    drop(tx);
                    let holder = self.fingerprint_holder(&fingerprint).await?;
                    return match holder {
                        Some(h) => Ok(Err(ImportConflict::Session(h))),
                        None => Err(StoreError::Conflict("session fingerprint".into())),
                    };
                }
                let sealed = seal(account.id).await.map_err(StoreError::Other)?;
                sqlx::query(
                    "INSERT INTO account_sessions (account_id, sealed, updated_at) VALUES ($1, $2, $3)",
                )
                .bind(account.id)
                .bind(&sealed)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(db_err("storing the imported session"))?;
                if let Some(app) = app {
                    let sealed = (app.seal_api_hash)(account.id)
                        .await
                        .map_err(StoreError::Other)?;
                    sqlx::query("UPDATE telegram_accounts SET api_hash_sealed = $2 WHERE id = $1")
                        .bind(account.id)
                        .bind(&sealed)
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("storing the imported app's api_hash"))?;
                }
                let account = match seal_two_fa_password {
                    Some(seal_two_fa_password) => {
                        let sealed = seal_two_fa_password(account.id)
                            .await
                            .map_err(StoreError::Other)?;
                        let sql = format!(
                            "UPDATE telegram_accounts SET two_fa_sealed = $2 WHERE id = $1 \
                             RETURNING {ACCOUNT_COLS}"
                        );
                        let row = sqlx::query(&sql)
                            .bind(account.id)
                            .bind(&sealed)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(db_err("storing the imported 2FA password"))?;
                        Self::account_row(&row)?
                    }
                    None => account,
                };
                tx.commit().await.map_err(db_err("committing an import"))?;
                Ok(Ok(account))
            }

            async fn sent_message(
                &self,
                account_id: AccountId,
                dedupe_key: &str,
            ) -> StoreResult<Option<SentMessage>> {
                let _op = self.metrics.op("sent_message");
                let row: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT random_id, message_ids FROM sent_messages \
                     WHERE account_id = $1 AND dedupe_key = $2",
                )
                .bind(account_id)
                .bind(dedupe_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err("reading a sent message"))?;
                let Some((random_id, ids)) = row else {
                    return Ok(None);
                };
                let message_ids = match ids {
                    Some(ids) => serde_json::from_str(&ids)
                        .context("sent_messages.message_ids is not a JSON array of ids")?,
                    None => Vec::new(),
                };
                Ok(Some(SentMessage {
                    dedupe_key: dedupe_key.to_owned(),
                    random_id,
                    message_ids,
                }))
            }

            async fn record_sent_messages(
                &self,
                account_id: AccountId,
                sent: Vec<SentMessage>,
                keep: u32,
            ) -> StoreResult<()> {
                let _op = self.metrics.op("record_sent_messages");
                let mut tx = self.pool.begin().await.map_err(db_err("beginning a send record"))?;
                for sent in sent {
                    // Delete then insert, so a replaced key becomes the newest (a new id).
                    sqlx::query(
                        "DELETE FROM sent_messages WHERE account_id = $1 AND dedupe_key = $2",
                    )
                    .bind(account_id)
                    .bind(&sent.dedupe_key)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("replacing a send record"))?;
                    let ids = (!sent.message_ids.is_empty())
                        .then(|| serde_json::to_string(&sent.message_ids))
                        .transpose()
                        .context("encoding message ids")?;
                    sqlx::query(
                        "INSERT INTO sent_messages \
                         (account_id, dedupe_key, random_id, message_ids) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(account_id)
                    .bind(&sent.dedupe_key)
                    .bind(sent.random_id)
                    .bind(ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("recording a send"))?;
                }
                // The (keep + 1)-th newest and everything older go.
                sqlx::query(
                    "DELETE FROM sent_messages WHERE account_id = $1 AND id <= \
                     (SELECT id FROM sent_messages WHERE account_id = $1 \
                      ORDER BY id DESC LIMIT 1 OFFSET $2)",
                )
                .bind(account_id)
                .bind(i64::from(keep.max(1)))
                .execute(&mut *tx)
                .await
                .map_err(db_err("forgetting old send records"))?;
                tx.commit().await.map_err(db_err("committing a send record"))?;
                Ok(())
            }

            async fn complete_sent_message(
                &self,
                account_id: AccountId,
                dedupe_key: &str,
                message_ids: &[i32],
            ) -> StoreResult<()> {
                let _op = self.metrics.op("complete_sent_message");
                let ids = serde_json::to_string(message_ids).context("encoding message ids")?;
                sqlx::query(
                    "UPDATE sent_messages SET message_ids = $3 \
                     WHERE account_id = $1 AND dedupe_key = $2",
                )
                .bind(account_id)
                .bind(dedupe_key)
                .bind(ids)
                .execute(&self.pool)
                .await
                .map_err(db_err("completing a send record"))?;
                Ok(())
            }

            async fn create_proxy(
                &self,
                new: $crate::model::NewProxy,
            ) -> StoreResult<$crate::model::Proxy> {
                let _op = self.metrics.op("create_proxy");
                use $crate::store::sql::PROXY_COLS;
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("starting proxy insert"))?;
                let at = now();
                // The seal is bound to the id, which exists only once the row does: an empty
                // blob for the moment of the transaction, never committed.
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO proxies (owner_id, label, url_sealed, state, created_at, \
                     updated_at) VALUES ($1, $2, $3, 'unchecked', $4, $4) RETURNING id",
                )
                .bind(new.owner_id)
                .bind(&new.label)
                .bind(Vec::<u8>::new())
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("creating proxy"))?;
                let sealed = (new.seal_url)(id).await.map_err(StoreError::Other)?;
                let row = sqlx::query(&format!(
                    "UPDATE proxies SET url_sealed = $2 WHERE id = $1 RETURNING {PROXY_COLS}"
                ))
                .bind(id)
                .bind(&sealed)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err("storing the proxy's URL"))?;
                tx.commit().await.map_err(db_err("committing proxy insert"))?;
                Ok(Self::proxy_row(&row)?)
            }

            async fn proxy(&self, id: $crate::model::ProxyId) -> StoreResult<$crate::model::Proxy> {
                let _op = self.metrics.op("proxy");
                use $crate::store::sql::PROXY_COLS;
                let row = sqlx::query(&format!("SELECT {PROXY_COLS} FROM proxies WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading proxy"))?;
                Ok(Self::proxy_row(&row)?)
            }

            async fn list_proxies(
                &self,
                owner_id: Option<UserId>,
            ) -> StoreResult<Vec<$crate::model::Proxy>> {
                let _op = self.metrics.op("list_proxies");
                use $crate::store::sql::PROXY_COLS;
                let rows = sqlx::query(&format!(
                    "SELECT {PROXY_COLS} FROM proxies WHERE ($1 IS NULL OR owner_id = $1) \
                     ORDER BY id"
                ))
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("listing proxies"))?;
                Ok(rows
                    .iter()
                    .map(Self::proxy_row)
                    .collect::<anyhow::Result<Vec<_>>>()?)
            }

            async fn proxy_url(&self, id: $crate::model::ProxyId) -> StoreResult<Vec<u8>> {
                let _op = self.metrics.op("proxy_url");
                sqlx::query_scalar("SELECT url_sealed FROM proxies WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("loading a proxy's URL"))
            }

            async fn update_proxy(
                &self,
                id: $crate::model::ProxyId,
                label: Option<Option<String>>,
                health: Option<$crate::model::ProxyHealth>,
            ) -> StoreResult<$crate::model::Proxy> {
                let _op = self.metrics.op("update_proxy");
                use $crate::store::sql::PROXY_COLS;
                let row = sqlx::query(&format!(
                    "UPDATE proxies SET \
                     label = CASE WHEN $2 THEN $3 ELSE label END, \
                     state = CASE WHEN $4 THEN $5 ELSE state END, \
                     latency_ms = CASE WHEN $4 THEN $6 ELSE latency_ms END, \
                     last_error = CASE WHEN $4 THEN $7 ELSE last_error END, \
                     checked_at = CASE WHEN $4 THEN $8 ELSE checked_at END, \
                     updated_at = $9 \
                     WHERE id = $1 RETURNING {PROXY_COLS}"
                ))
                .bind(id)
                .bind(label.is_some())
                .bind(label.flatten())
                .bind(health.is_some())
                .bind(health.as_ref().map(|h| h.state.as_str()).unwrap_or("unchecked"))
                .bind(health.as_ref().and_then(|h| h.latency_ms))
                .bind(health.as_ref().and_then(|h| h.error.clone()))
                .bind(health.as_ref().map(|h| h.checked_at))
                .bind(now())
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("updating proxy"))?;
                Ok(Self::proxy_row(&row)?)
            }

            async fn accounts_on_proxy(
                &self,
                id: $crate::model::ProxyId,
            ) -> StoreResult<Vec<AccountId>> {
                let _op = self.metrics.op("accounts_on_proxy");
                sqlx::query_scalar("SELECT id FROM telegram_accounts WHERE proxy_id = $1 ORDER BY id")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing a proxy's accounts"))
            }

            async fn delete_proxy(
                &self,
                id: $crate::model::ProxyId,
                unbind: bool,
            ) -> StoreResult<Vec<AccountId>> {
                let _op = self.metrics.op("delete_proxy");
                let mut tx = self
                    .pool
                    .begin()
                    .await
                    .map_err(db_err("starting proxy delete"))?;
                // A write first, so SQLite takes the write lock at once (see delete_account).
                let bound: Vec<AccountId> = sqlx::query_scalar(
                    "UPDATE telegram_accounts SET proxy_id = NULL, updated_at = $2 \
                     WHERE proxy_id = $1 RETURNING id",
                )
                .bind(id)
                .bind(now())
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err("unbinding a proxy's accounts"))?;
                if !bound.is_empty() && !unbind {
                    return Err(StoreError::Conflict(format!(
                        "{} account(s) use this proxy",
                        bound.len()
                    )));
                }
                let done = sqlx::query("DELETE FROM proxies WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("deleting proxy"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                tx.commit().await.map_err(db_err("committing proxy delete"))?;
                Ok(bound)
            }

            async fn account_by_session_fingerprint(
                &self,
                fingerprint: &str,
            ) -> StoreResult<Option<AccountId>> {
                let _op = self.metrics.op("account_by_session_fingerprint");
                self.fingerprint_holder(fingerprint).await
            }

            async fn append_log(&self, entry: NewLogEntry) -> StoreResult<i64> {
                let _op = self.metrics.op("append_log");
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO integration_log \
                     (at, level, event, account_id, user_id, error_code, message, details) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(now())
                .bind(entry.level.as_str())
                .bind(&entry.event)
                .bind(entry.account_id)
                .bind(entry.user_id)
                .bind(&entry.error_code)
                .bind(&entry.message)
                .bind(sqlx::types::Json(&entry.details))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("appending to the integration log"))?;
                Ok(id)
            }

            async fn list_logs(&self, filter: LogFilter) -> StoreResult<Vec<LogEntry>> {
                let _op = self.metrics.op("list_logs");
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {LOG_COLS} FROM integration_log WHERE TRUE"
                ));
                if let Some(account) = filter.account_id {
                    q.push(" AND account_id = ").push_bind(account);
                }
                if let Some(owner) = filter.owner_id {
                    q.push(" AND (user_id = ")
                        .push_bind(owner)
                        .push(" OR account_id IN (SELECT id FROM telegram_accounts WHERE owner_id = ")
                        .push_bind(owner)
                        .push("))");
                }
                if let Some(min) = filter.min_level {
                    q.push(" AND level IN (");
                    let mut levels = q.separated(", ");
                    for level in $crate::store::sql::levels_from(min) {
                        levels.push_bind(level);
                    }
                    q.push(")");
                }
                if let Some(event) = &filter.event {
                    q.push(" AND event = ").push_bind(event.clone());
                }
                if let Some(since) = filter.since {
                    q.push(" AND at >= ").push_bind(since);
                }
                if let Some(before) = filter.before_id {
                    q.push(" AND id < ").push_bind(before);
                }
                q.push(" ORDER BY id DESC LIMIT ").push_bind(page_limit(filter.limit));
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("listing the integration log"))?;
                rows.iter()
                    .map(|r| Self::log_row(r).map_err(StoreError::Other))
                    .collect()
            }

            async fn purge_logs_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
                let _op = self.metrics.op("purge_logs_before");
                let done = sqlx::query("DELETE FROM integration_log WHERE at < $1")
                    .bind(before)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("purging old integration log rows"))?;
                Ok(done.rows_affected())
            }

            async fn error_stats(
                &self,
                since: DateTime<Utc>,
                owner_id: Option<UserId>,
            ) -> StoreResult<ErrorStats> {
                let _op = self.metrics.op("error_stats");
                // An "error" here is any entry carrying an error code, warnings included: a flood
                // wait is logged as a warning but is exactly what an operator counts.
                let by_code: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT error_code, COUNT(*) AS n FROM integration_log \
                     WHERE error_code IS NOT NULL AND at >= $1 \
                     AND ($3 IS NULL OR account_id IN \
                          (SELECT id FROM telegram_accounts WHERE owner_id = $3)) \
                     GROUP BY error_code ORDER BY n DESC, error_code LIMIT $2",
                )
                .bind(since)
                .bind($crate::store::sql::STATS_TOP)
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("counting errors by code"))?;
                let by_account: Vec<(AccountId, i64)> = sqlx::query_as(
                    "SELECT account_id, COUNT(*) AS n FROM integration_log \
                     WHERE error_code IS NOT NULL AND account_id IS NOT NULL AND at >= $1 \
                     AND ($3 IS NULL OR account_id IN \
                          (SELECT id FROM telegram_accounts WHERE owner_id = $3)) \
                     GROUP BY account_id ORDER BY n DESC, account_id LIMIT $2",
                )
                .bind(since)
                .bind($crate::store::sql::STATS_TOP)
                .bind(owner_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("counting errors by account"))?;
                Ok(ErrorStats {
                    by_code,
                    by_account,
                })
            }
        }
    };
}

pub(crate) use impl_sql_store;
