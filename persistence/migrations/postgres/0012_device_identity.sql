-- What each account's connections tell Telegram in initConnection, so the fleet is not one
-- fingerprint. New rows get an identity drawn from the table in persistence/src/device.rs. Rows
-- from before this migration are NULL here; read, a row with any NULL column shows and uses the
-- identity derived from its id (DeviceIdentity::pick), and the store's connect (SqliteStore /
-- PgStore::connect) writes that same identity into them once, since SQL cannot compute it.
ALTER TABLE telegram_accounts ADD COLUMN device_model TEXT;
ALTER TABLE telegram_accounts ADD COLUMN system_version TEXT;
ALTER TABLE telegram_accounts ADD COLUMN app_version TEXT;
ALTER TABLE telegram_accounts ADD COLUMN system_lang_code TEXT;
ALTER TABLE telegram_accounts ADD COLUMN lang_code TEXT;
-- An imported account's own Telegram app, when its session came with one: both or neither.
-- The api_hash is sealed by the SessionCipher (domain "tgfleet-api-hash-v1") and never leaves
-- the account core; NULL means the fleet's app (telegram.api_id / telegram.api_hash).
ALTER TABLE telegram_accounts ADD COLUMN api_id INTEGER;
ALTER TABLE telegram_accounts ADD COLUMN api_hash_sealed BYTEA;
