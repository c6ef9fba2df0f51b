-- Imported and exported sessions are recognised by a fingerprint (hex SHA-256 of the auth key), so
-- importing the same session twice is idempotent and a session already live in this fleet is
-- refused: two clients on one auth key end in AUTH_KEY_DUPLICATED and a revoked session.
-- A separate table, not a column, so the accounts table and its row decoders stay as they are.
CREATE TABLE session_fingerprints (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    account_id  INTEGER NOT NULL REFERENCES telegram_accounts (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
);
CREATE INDEX session_fingerprints_account ON session_fingerprints (account_id);
