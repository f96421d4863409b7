-- One record and its remaining lifetime. KEYS[1] the record. Returns { { field, value, ... }, pttl }.
return { redis.call('HGETALL', KEYS[1]), redis.call('PTTL', KEYS[1]) }
