-- The proxy pool. The URL (scheme, host, port and any credentials) is sealed by the
-- SessionCipher (domain "tgfleet-proxy-url-v1", bound to the proxy's id) and only the account
-- core opens it: neither its password nor its user name is readable from the rows (its host and port may be, in last_error).
CREATE TABLE proxies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label       TEXT,
    url_sealed  BLOB NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('unchecked', 'ok', 'unreachable')),
    latency_ms  INTEGER,
    last_error  TEXT,
    checked_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX proxies_owner ON proxies (owner_id, id);
-- An account's proxy: every connection of the account goes through it, and none without it.
-- No ON DELETE: deleting a proxy that accounts use is refused unless they are unbound first,
-- so an account never falls back to a direct connection because its proxy row vanished.
ALTER TABLE telegram_accounts ADD COLUMN proxy_id INTEGER REFERENCES proxies (id);
CREATE INDEX telegram_accounts_proxy ON telegram_accounts (proxy_id) WHERE proxy_id IS NOT NULL;
