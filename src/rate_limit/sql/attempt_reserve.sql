-- Reserves one attempt (as attempt_reserve.lua in Redis and MemoryAttemptBackend::reserve_now),
-- in one statement: a check and an increment under the row's lock, so concurrent reservations
-- on any instances never both take the last one.
-- $1 the key, $2 now, $3 max attempts (at least 1), $4 the end of a window starting now,
-- $5 the end of a lock-out starting now. Returns 0 when reserved, else the end of the lock-out
-- (running: nothing changes; or started by this call).
INSERT INTO {table} AS r (key, window_end, attempts, locked_until, keep_until)
VALUES ($1, $4, 1, 0, GREATEST($4, $2 + 1))
ON CONFLICT (key) DO UPDATE SET (window_end, attempts, locked_until, keep_until) = (
    SELECT e, n, l, GREATEST(e, l, $2 + 1)
    -- The record as this attempt finds it: a running lock-out, or a running window without
    -- one, as it is; otherwise a fresh window.
    FROM (SELECT r.locked_until > $2 OR (r.locked_until = 0 AND $2 < r.window_end) AS stays) k,
    LATERAL (SELECT CASE WHEN k.stays THEN r.window_end ELSE $4 END AS e,
                    CASE WHEN k.stays THEN r.attempts ELSE 0 END AS n0,
                    CASE WHEN k.stays THEN r.locked_until ELSE 0 END AS l0) c,
    -- Locked: unchanged. Exhausted: the lock-out starts. Otherwise one more attempt.
    LATERAL (SELECT CASE WHEN c.l0 > $2 OR c.n0 >= $3 THEN c.n0 ELSE c.n0 + 1 END AS n,
                    CASE WHEN c.l0 > $2 THEN c.l0 WHEN c.n0 >= $3 THEN $5 ELSE 0 END AS l) d
)
RETURNING locked_until
