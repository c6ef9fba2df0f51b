-- Whether an account receives Telegram's updates into the event log: NULL follows its kind
-- (bots receive, user accounts do not), true or false is the owner's choice.
ALTER TABLE telegram_accounts ADD COLUMN receive_updates BOOLEAN;
