-- Appends one event to a user's security activity and trims it, in one step: never more than
-- ARGV[2] events, and the whole list forgotten ARGV[3] ms after its last event.
-- KEYS[1] the user's activity list (in the user's hash slot); ARGV[1] the event (sealed when
-- records are sealed).
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
