-- What each Idempotency-Key of an account's sends came to: the random_id drawn before the first
-- attempt (Telegram keeps one message per random_id, so a repeat cannot duplicate it) and, once
-- Telegram answered, the message ids. Until now these lived in the sealed session, which every
-- keyed send rewrote whole, twice; here they are two small row writes. Not secret (no key, no
-- text). An account keeps its newest `dedupe_capacity` keys; `id` orders them.
CREATE TABLE sent_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES telegram_accounts (id) ON DELETE CASCADE,
    dedupe_key  TEXT NOT NULL,
    random_id   INTEGER NOT NULL,
    -- JSON array of the message ids (an album's in order); NULL before Telegram answered.
    message_ids TEXT
);
CREATE UNIQUE INDEX sent_messages_key ON sent_messages (account_id, dedupe_key);
CREATE INDEX sent_messages_account ON sent_messages (account_id, id);
