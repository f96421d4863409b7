-- Version 2: the counters of the rate limiter and of the attempt tracker
-- (rate_limit::PostgresRateLimitBackend, rate_limit::PostgresAttemptBackend), so the limits
-- hold across instances. `{p}` is the table prefix; times are milliseconds since the epoch.
--
-- UNLOGGED: these rows are written on every request to a limited route, and a transaction that
-- writes only unlogged tables commits without waiting for a WAL flush. The price: after a crash
-- of PostgreSQL (not a clean restart) the tables are empty, and standbys do not have them, so
-- counts and lock-outs start over, as in a Redis without persistence. Sessions stay logged.
-- fillfactor leaves room on each page for the updates to be HOT.
CREATE UNLOGGED TABLE IF NOT EXISTS {p}_rate_limits (
    -- The client (`203.0.113.7`, `2001:db8:1:2::/64`), or a keyed hash of it when records are
    -- sealed.
    key        text   PRIMARY KEY,
    window_end bigint NOT NULL,
    hits       bigint NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX IF NOT EXISTS {p}_rate_limits_end ON {p}_rate_limits (window_end);
CREATE UNLOGGED TABLE IF NOT EXISTS {p}_attempts (
    -- `login:uc:<user>|<client>`, `login:ip:<client>` and the like, or a keyed hash of it when
    -- records are sealed.
    key          text   PRIMARY KEY,
    window_end   bigint NOT NULL,
    attempts     bigint NOT NULL,
    -- Zero when the key has not been locked out in this window.
    locked_until bigint NOT NULL,
    -- When the row is no longer needed: the end of its window or of its lock-out.
    keep_until   bigint NOT NULL
) WITH (fillfactor = 70);
CREATE INDEX IF NOT EXISTS {p}_attempts_keep ON {p}_attempts (keep_until);
