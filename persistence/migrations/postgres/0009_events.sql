-- The event log: what happened to an account (a message arrived, its state changed, a post was
-- delivered), kept for a while so that SSE clients, webhooks and the broker sink read it from
-- here and lose nothing across restarts. Ids increase in commit order, so "everything after id
-- N" is a complete answer at any moment.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    type        TEXT NOT NULL,
    -- NULL for events of no single account (post.published, webhook.disabled, ping).
    account_id  BIGINT,
    -- Who may see it: the account's owner when it was written (admins see every event).
    owner_id    BIGINT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL,
    -- What makes a Telegram update the same one twice (account, chat, message, kind): a
    -- catch-up that replays it writes nothing.
    dedupe_key  TEXT UNIQUE,
    data        JSONB NOT NULL
);
CREATE INDEX events_owner ON events (owner_id, id);
CREATE INDEX events_occurred ON events (occurred_at);

-- Webhook endpoints. The signing secret is sealed like a session; after a rotation the previous
-- one keeps signing beside it until previous_until.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,
    owner_id        BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    -- JSON array of event types, or ["*"].
    events          TEXT NOT NULL,
    -- JSON array of account ids, NULL for all the owner's accounts.
    account_ids     TEXT,
    description     TEXT,
    secret          BYTEA NOT NULL,
    previous_secret BYTEA,
    previous_until  TIMESTAMPTZ,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- Since when every attempt failed (NULL once one succeeds): a day of it disables.
    failing_since   TIMESTAMPTZ,
    -- The last event id looked at for this endpoint: later ones are not queued yet.
    cursor          BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id);

-- One row per (endpoint, event) queued. Per endpoint and account only the oldest pending one is
-- sent (order kept), while other accounts' go on. A claimed attempt moves next_attempt_at past
-- its timeout, so one cut short by a crash is due again later with the same event id.
CREATE TABLE webhook_deliveries (
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         BIGINT NOT NULL,
    -- The event's account, 0 for none: the queue the delivery is ordered in.
    account_key      BIGINT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    first_attempt_at TIMESTAMPTZ,
    last_status      INTEGER,
    last_error       TEXT,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, account_key, event_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    id              BIGSERIAL PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id        BIGINT NOT NULL,
    attempt         INTEGER NOT NULL,
    at              TIMESTAMPTZ NOT NULL,
    -- The HTTP status, NULL when none came (refused, timed out, forbidden target).
    status          INTEGER,
    latency_ms      BIGINT NOT NULL,
    error           TEXT,
    -- What the attempt left: 'succeeded', 'retrying' (next_attempt_at) or 'dead'.
    outcome         TEXT NOT NULL CHECK (outcome IN ('succeeded', 'retrying', 'dead')),
    next_attempt_at TIMESTAMPTZ
);
CREATE INDEX webhook_attempts_by_hook ON webhook_attempts (webhook_id, id);
