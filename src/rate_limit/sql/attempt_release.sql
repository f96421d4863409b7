-- Gives one reservation back (as attempt_release.lua in Redis): the count goes down by one,
-- never below zero; a running lock-out and the row's lifetime stay. A row past its lifetime
-- counts as gone, as an expired Redis key does. $1 the key, $2 now.
UPDATE {table} SET attempts = attempts - 1
WHERE key = $1 AND attempts > 0 AND keep_until > $2
