-- Apply a change decided in Rust to a sealed record, if the record is still the one that was
-- read: compare-and-set on its first sealed part (a fresh random nonce per seal, so it names
-- one sealed state) and its generation. Used where the rule needs the seal opened (rotation of a
-- sealed record, sealing a record again), which a script cannot do.
-- KEYS[1] the record. ARGV: expected `d` ('' for a record without a seal), expected `g`,
-- action ('write' or 'drop'), channel (empty: publish nothing, the caller publishes once
-- replicas confirm the write), sid, index key prefix, the caller's deadline (ms since the epoch,
-- 0 for none), then for 'write': the purge time and the fields to write as name, value pairs.
-- Returns 1 when applied, 0 when the record changed or went away since it was read, -1 when
-- this server reached the script after the caller's deadline by its own clock (nothing done).
local record = KEYS[1]
local deadline = tonumber(ARGV[7])
if deadline > 0 then
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return -1 end
end
if redis.call('EXISTS', record) == 0 then return 0 end
local f = redis.call('HMGET', record, 'd', 'g', 'i')
if (f[1] or '') ~= ARGV[1] or tonumber(f[2]) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == 'drop' then
  redis.call('DEL', record)
  if f[3] then redis.call('ZREM', ARGV[6] .. f[3], ARGV[5]) end
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
  return 1
end
-- The old seal's parts (a new seal may take fewer) and clear data of an unsealed record (user,
-- roles, device label `l` and address `ip`, custom claims `k`, `k1`, …, authentication context
-- `au`) go.
for _, name in ipairs(redis.call('HKEYS', record)) do
  if name == 'u' or name == 'r' or name == 'l' or name == 'ip' or name == 'au' or string.match(name, '^d%d*$') or string.match(name, '^k%d*$') then
    redis.call('HDEL', record, name)
  end
end
for i = 9, #ARGV, 2 do
  redis.call('HSET', record, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', record, tonumber(ARGV[8]) + 1)
return 1
