-- Refresh chains against the example server. Each thread keeps a pool of refresh tokens: a
-- request takes one and sends POST /api/token/refresh; its response puts the successor back.
-- With the pool empty (the first request of each connection) it logs in instead. A token is
-- used exactly once, so no request trips reuse detection. Writes a JSON summary to $TJS_WRK_OUT.
local pool = {}
logins = 0
refreshes = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local login_body = '{"username":"alice","password":"alice-password"}'
local json = { ["Content-Type"] = "application/json" }

function request()
  local token = table.remove(pool)
  if token then
    refreshes = refreshes + 1
    return wrk.format("POST", "/api/token/refresh", json, '{"refreshToken":"' .. token .. '"}')
  end
  logins = logins + 1
  return wrk.format("POST", "/api/auth/login", json, login_body)
end

function response(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if token then
    table.insert(pool, token)
  end
end

function done(summary, latency, requests)
  local l, r = 0, 0
  for _, t in ipairs(threads) do
    l = l + t:get("logins")
    r = r + t:get("refreshes")
  end
  local e = summary.errors
  local f = assert(io.open(os.getenv("TJS_WRK_OUT"), "w"))
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"logins":%d,"refreshes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout, l, r,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
  f:close()
end
