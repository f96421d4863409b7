-- GET /api/me with a DPoP-bound token and a fresh proof for every request, read from
-- $TJS_PROOFS (one `<token> <proof>` per line, made ahead by bench/dpop-proofs.py: wrk cannot
-- sign; the clients take turns).
-- Thread i of n takes every n-th line, so no proof is sent twice. Writes a JSON summary to
-- $TJS_WRK_OUT, as me.lua does.
local threads = {}
local counter = 1

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local step = tonumber(os.getenv("TJS_THREADS") or "1")
  proofs = {}
  local n = 0
  for line in io.lines(os.getenv("TJS_PROOFS")) do
    n = n + 1
    if (n - id) % step == 0 then
      proofs[#proofs + 1] = line
    end
  end
  next_proof = 1
end

function request()
  local line = proofs[next_proof]
  next_proof = next_proof + 1
  if line == nil then
    -- Out of proofs: no credentials, refused (counted as non-2xx, never a replay).
    return wrk.format("GET", "/api/me")
  end
  local token, proof = line:match("^(%S+) (%S+)$")
  return wrk.format("GET", "/api/me", { ["Authorization"] = "DPoP " .. token, ["DPoP"] = proof })
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(os.getenv("TJS_WRK_OUT"), "w"))
  f:write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
  f:close()
end
