-- The event log: what happened to an account (a message arrived, its state changed, a post was
-- delivered), kept for a while so that SSE clients, webhooks and the broker sink read it from
-- here and lose nothing across restarts. Ids increase in commit order, so "everything after id
-- N" is a complete answer at any moment.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    type        TEXT NOT NULL,
    -- NULL for events of no single account (post.published, webhook.disabled, ping).
    account_id  INTEGER,
    -- Who may see it: the account's owner when it was written (admins see every event).
    owner_id    INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    -- What makes a Telegram update the same one twice (account, chat, message, kind): a
    -- catch-up that replays it writes nothing.
    dedupe_key  TEXT UNIQUE,
    data        TEXT NOT NULL
);
CREATE INDEX events_owner ON events (owner_id, id);
CREATE INDEX events_occurred ON events (occurred_at);

-- Webhook endpoints. The signing secret is sealed like a session; after a rotation the previous
-- one keeps signing beside it until previous_until.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,
    owner_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    -- JSON array of event types, or ["*"].
    events          TEXT NOT NULL,
    -- JSON array of account ids, NULL for all the owner's accounts.
    account_ids     TEXT,
    description     TEXT,
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  TEXT,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- Since when every attempt failed (NULL once one succeeds): a day of it disables.
    failing_since   TEXT,
    -- The last event id looked at for this endpoint: later ones are not queued yet.
    cursor          INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id);

-- One row per (endpoint, event) queued. Per endpoint and account only the oldest pending one is
-- sent (order kept), while other accounts' go on. A claimed attempt moves next_attempt_at past
-- its timeout, so one cut short by a crash is due again later with the same event id.
CREATE TABLE webhook_deliveries (
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL,
    -- The event's account, 0 for none: the queue the delivery is ordered in.
    account_key      INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TEXT NOT NULL,
    first_attempt_at TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, account_key, event_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TEXT NOT NULL,
    -- The HTTP status, NULL when none came (refused, timed out, forbidden target).
    status          INTEGER,
    latency_ms      INTEGER NOT NULL,
    error           TEXT,
    -- What the attempt left: 'succeeded', 'retrying' (next_attempt_at) or 'dead'.
    outcome         TEXT NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'dead')),
    next_attempt_at TEXT
);
CREATE INDEX webhook_attempts_by_hook ON webhook_attempts (webhook_id, id);
