-- Version 3: the security activity trail (SessionStore::record_activity): each user's newest
-- events in a ring of SESSION_ACTIVITY_MAX slots, so a user never holds more rows than that
-- whatever the history; rows past their retention are swept. `{p}` is the table prefix; times
-- are milliseconds since the epoch.
--
-- A new event overwrites the user's oldest slot: an update of columns no index covers (a HOT
-- update, in the room fillfactor leaves), so a flood of one user's events leaves no trail of
-- dead index entries. No index on keep_until for the same reason: PostgresStore::purge sweeps
-- expired rows, and reads skip them. No serial column (a DML-only role would need USAGE on its sequence): the
-- order is the server's clock at the write, in microseconds.
CREATE TABLE IF NOT EXISTS {p}_activity (
    -- The user: SHA-256 of the user id, or its keyed hash when records are sealed (as the
    -- sessions' user_key).
    user_key   bytea  NOT NULL,
    slot       int    NOT NULL,
    seq        bigint NOT NULL,
    at         bigint NOT NULL,
    -- When the event may be forgotten: `at` plus the retention.
    keep_until bigint NOT NULL,
    -- The event as SecurityEvent::to_stored writes it, sealed when records are sealed.
    data       text   NOT NULL,
    PRIMARY KEY (user_key, slot)
) WITH (fillfactor = 70);
