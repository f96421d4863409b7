-- Revoke every session of a user: delete every record of the index, and the index.
-- KEYS[1] the user's index. ARGV: now, record key prefix, channel (empty: publish nothing, the
-- caller publishes once replicas confirm the write), and optionally the id of one session to
-- keep (logout-others): it stays, with its record and its index entry.
-- Returns the ids of the sessions that were live.
local now, prefix, channel, keep = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local revoked = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if member ~= keep then
    local key = prefix .. member
    local f = redis.call('HMGET', key, 'v', 'e', 'p')
    if keep then redis.call('ZREM', KEYS[1], member) end
    if f[2] then
      redis.call('DEL', key)
      if not f[1] and now < tonumber(f[2]) and not (f[3] and now > tonumber(f[3])) then
        if channel ~= '' then redis.call('PUBLISH', channel, member) end
        revoked[#revoked + 1] = member
      end
    end
  end
end
if not keep then redis.call('DEL', KEYS[1]) end
return revoked
