-- Version 1: one row per session, keyed by its id; the user index and the purge index.
-- `{p}` is the table prefix (DATABASE_TABLE_PREFIX). Times are milliseconds since the epoch.
CREATE TABLE IF NOT EXISTS {p}_sessions (
    session_id         bytea  PRIMARY KEY,
    -- SHA-256 of the user id, or a keyed hash of it when records are sealed.
    user_key           bytea  NOT NULL,
    created_at         bigint NOT NULL,
    last_active_at     bigint NOT NULL,
    expires_at         bigint NOT NULL,
    generation         bigint NOT NULL,
    refresh_expires_at bigint NOT NULL,
    purge_at           bigint NOT NULL,
    -- User id and roles: JSON, or sealed together with the times above.
    data               text   NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_sessions_user ON {p}_sessions (user_key, created_at, session_id);
CREATE INDEX IF NOT EXISTS {p}_sessions_purge ON {p}_sessions (purge_at);
