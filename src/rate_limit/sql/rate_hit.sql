-- One request against a fixed window that starts at the client's first request (as
-- rate_hit.lua in Redis), in one statement: the row is inserted or updated under its lock, so
-- concurrent hits on any instances count one by one.
-- $1 the client, $2 now, $3 the end of a window starting now. Returns the count and the end of
-- the window; a window that has ended starts over.
INSERT INTO {table} AS r (key, window_end, hits) VALUES ($1, $3, 1)
ON CONFLICT (key) DO UPDATE SET (window_end, hits) = (
    CASE WHEN $2 < r.window_end THEN r.window_end ELSE $3 END,
    CASE WHEN $2 < r.window_end THEN r.hits + 1 ELSE 1 END
)
RETURNING hits, window_end
