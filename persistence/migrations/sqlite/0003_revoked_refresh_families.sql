-- A revoked refresh-token family is remembered on its own, not only as revoked_at on the tokens
-- that existed at that moment: a rotation racing with the revocation could otherwise insert a
-- fresh, unrevoked token into a family that was just cut off.
CREATE TABLE revoked_refresh_families (
    family_id  TEXT PRIMARY KEY NOT NULL,
    revoked_at TEXT NOT NULL
);
