-- Where each reader of the event log that is not a webhook (the broker sink) got to: in the
-- database beside the log, so it survives a lost data directory and, with several nodes, one
-- node's sink resumes where another's stopped. A new database starts with none.
CREATE TABLE event_cursors (
    name       TEXT PRIMARY KEY NOT NULL,
    position   BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
