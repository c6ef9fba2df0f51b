-- Revoked families are purged by age (once every token of the family has expired), so the
-- housekeeping delete reads this index instead of the whole table.
CREATE INDEX revoked_refresh_families_revoked_at ON revoked_refresh_families (revoked_at);
