-- An account's two-step verification password, when its owner left one with the fleet (an
-- imported session's .json "twoFA", or PATCH): tried once, in the account core, when a re-login
-- meets SESSION_PASSWORD_NEEDED, so the login does not stop for a password nobody at hand knows.
-- Sealed by the SessionCipher (domain "tgfleet-2fa-password-v1", bound to the account's id) and
-- listed in persistence/src/sealed.rs, so key rotation re-seals it; never shown by the API.
ALTER TABLE telegram_accounts ADD COLUMN two_fa_sealed BYTEA;
