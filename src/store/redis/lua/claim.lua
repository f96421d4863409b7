-- Claim a key prefix for one application. Two applications on one prefix would evict, list and
-- revoke each other's sessions, so the prefix remembers the fingerprints of the keys that sign
-- for it, and refuses an application that shares none of them.
-- KEYS[1] the owners (sorted set: key fingerprint -> last start, ms).
-- ARGV: now, forget before (ms: no session outlives it), then this application's fingerprints,
-- its signing key's first and its previous keys' after (a key rotation is the same application).
-- Returns 1 when claimed, 0 when another application holds the prefix.
local owners = KEYS[1]
redis.call('ZREMRANGEBYSCORE', owners, '-inf', '(' .. ARGV[2])
if redis.call('ZCARD', owners) > 0 then
  local ours = false
  for i = 3, #ARGV do
    if redis.call('ZSCORE', owners, ARGV[i]) then ours = true end
  end
  if not ours then return 0 end
end
redis.call('ZADD', owners, ARGV[1], ARGV[3])
return 1
