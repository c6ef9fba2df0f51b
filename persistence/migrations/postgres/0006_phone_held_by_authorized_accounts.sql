-- Only an account that holds a Telegram authorization holds its phone (see migrations/README.md):
-- a new row, a login halfway, a logged-out, unauthorized or banned account does not, so creating
-- an account or a refused login step never reserves a phone. A quarantined or stopped account
-- holds it only when it was logged in (it keeps its session; tg_user_id says it has one).
DROP INDEX telegram_accounts_live_phone;
CREATE UNIQUE INDEX telegram_accounts_authorized_phone ON telegram_accounts (phone)
    WHERE phone IS NOT NULL
      AND (state IN ('active', 'reconnecting', 'flood_wait', 'hibernated')
           OR (state IN ('quarantined', 'stopped') AND tg_user_id IS NOT NULL));
