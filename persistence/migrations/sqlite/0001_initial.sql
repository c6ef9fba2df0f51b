CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL,
    username      TEXT,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX users_email_lower ON users (lower(email));

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

CREATE TABLE telegram_accounts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label            TEXT,
    kind             TEXT NOT NULL CHECK (kind IN ('user', 'bot')),
    phone            TEXT,
    state            TEXT NOT NULL CHECK (state IN (
                         'new', 'awaiting_code', 'awaiting_password', 'awaiting_qr', 'active',
                         'reconnecting', 'flood_wait', 'unauthorized', 'banned', 'quarantined',
                         'hibernated', 'logged_out', 'stopped')),
    tg_user_id       INTEGER,
    username         TEXT,
    dc_id            INTEGER,
    flood_wait_until TEXT,
    last_error       TEXT,
    restarts         INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX telegram_accounts_owner ON telegram_accounts (owner_id, id);
CREATE INDEX telegram_accounts_state ON telegram_accounts (state, id);
-- See migrations/README.md: one live account per phone.
CREATE UNIQUE INDEX telegram_accounts_live_phone ON telegram_accounts (phone)
    WHERE phone IS NOT NULL AND state <> 'logged_out';

CREATE TABLE account_sessions (
    account_id INTEGER PRIMARY KEY NOT NULL REFERENCES telegram_accounts (id) ON DELETE CASCADE,
    sealed     BLOB NOT NULL,
    updated_at TEXT NOT NULL
);

-- No foreign keys: the log outlives the accounts and users it mentions.
CREATE TABLE integration_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
    event      TEXT NOT NULL,
    account_id INTEGER,
    user_id    INTEGER,
    error_code TEXT,
    message    TEXT NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX integration_log_at ON integration_log (at);
CREATE INDEX integration_log_account ON integration_log (account_id, id);
CREATE INDEX integration_log_event ON integration_log (event, id);
CREATE INDEX integration_log_level ON integration_log (level, id);
