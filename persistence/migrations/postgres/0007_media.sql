-- The media library: one row per file a user uploaded, deduplicated per owner by content hash.
-- The bytes live in the media storage (a directory or an S3 bucket) under storage_key.
CREATE TABLE media (
    id          TEXT PRIMARY KEY NOT NULL,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    mime        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN (
                    'photo', 'video', 'animation', 'audio', 'voice', 'document')),
    file_name   TEXT NOT NULL,
    storage_key TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX media_owner_sha256 ON media (owner_id, sha256);
CREATE INDEX media_owner ON media (owner_id, id);

-- What Telegram gave an account for a media item it uploaded (photo or document id, access hash,
-- file reference, as JSON), so sending the item again through that account uploads nothing.
CREATE TABLE media_telegram_files (
    account_id BIGINT NOT NULL REFERENCES telegram_accounts (id) ON DELETE CASCADE,
    media_id   TEXT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    file       TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, media_id)
);
