-- Version 3: the security activity trail (SessionStore::record_activity): each user's newest
-- events, trimmed to SESSION_ACTIVITY_MAX by every insert and swept once past their retention.
-- `{p}` is the table prefix; times are milliseconds since the epoch.
--
-- No serial column (a DML-only role would need USAGE on its sequence): the order is the
-- server's clock at insert, in microseconds.
CREATE TABLE IF NOT EXISTS {p}_activity (
    -- The user: SHA-256 of the user id, or its keyed hash when records are sealed (as the
    -- sessions' user_key).
    user_key   bytea  NOT NULL,
    seq        bigint NOT NULL DEFAULT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
    at         bigint NOT NULL,
    -- When the event may be forgotten: `at` plus the retention.
    keep_until bigint NOT NULL,
    -- The event as SecurityEvent::to_stored writes it, sealed when records are sealed.
    data       text   NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_activity_user ON {p}_activity (user_key, seq DESC);
CREATE INDEX IF NOT EXISTS {p}_activity_keep ON {p}_activity (keep_until);
