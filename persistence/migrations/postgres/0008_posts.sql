-- Posts: one text or media post to many (account, chat) targets, now or at publish_at. Each
-- target is a delivery with its own state; its random_id is fixed here, before any send, so a
-- send repeated after a crash is the same message to Telegram, which drops the repeat.
CREATE TABLE posts (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state        TEXT NOT NULL CHECK (state IN (
                     'scheduled', 'publishing', 'published', 'partially_failed', 'failed',
                     'cancelled')),
    text         TEXT NOT NULL,
    parse_mode   TEXT,
    -- JSON array of media library ids.
    media        TEXT NOT NULL,
    silent       BOOLEAN NOT NULL,
    link_preview BOOLEAN NOT NULL,
    publish_at   TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX posts_owner ON posts (owner_id, id);

-- No foreign key to the account: a delivery outlives an account deleted after it was sent, and
-- one whose account is gone fails with that reason instead of vanishing.
CREATE TABLE post_deliveries (
    post_id         TEXT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    account_id      BIGINT NOT NULL,
    chat            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    random_id       BIGINT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- JSON array of the message ids Telegram gave (an album has several).
    message_ids     TEXT,
    error_code      TEXT,
    error_message   TEXT,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (post_id, idx)
);
CREATE INDEX post_deliveries_due ON post_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'sending');
