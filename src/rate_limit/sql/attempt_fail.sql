-- One failure that was not reserved (as attempt_fail.lua in Redis and
-- MemoryAttemptBackend::record_failure_now), in one statement.
-- $1 the key, $2 now, $3 max failures (0: never locks), $4 the end of a window starting now,
-- $5 the end of a lock-out starting now. Returns the count in the window, this failure
-- included. The failure that brings it to the max starts a lock-out; a running one is not
-- extended.
INSERT INTO {table} AS r (key, window_end, attempts, locked_until, keep_until)
SELECT $1, $4, 1, l, GREATEST($4, l, $2 + 1)
FROM (SELECT CASE WHEN $3 = 1 THEN $5 ELSE 0 END AS l) f
ON CONFLICT (key) DO UPDATE SET (window_end, attempts, locked_until, keep_until) = (
    SELECT e, n, l, GREATEST(e, l, $2 + 1)
    -- The record as this failure finds it, as in attempt_reserve.sql.
    FROM (SELECT r.locked_until > $2 OR (r.locked_until = 0 AND $2 < r.window_end) AS stays) k,
    LATERAL (SELECT CASE WHEN k.stays THEN r.window_end ELSE $4 END AS e,
                    CASE WHEN k.stays THEN r.attempts ELSE 0 END AS n0,
                    CASE WHEN k.stays THEN r.locked_until ELSE 0 END AS l0) c,
    LATERAL (SELECT c.n0 + 1 AS n,
                    CASE WHEN $3 > 0 AND c.n0 + 1 = $3 AND c.l0 = 0 THEN $5 ELSE c.l0 END AS l) d
)
RETURNING attempts
