-- GET /api/me with the bearer token in $TJS_TOKEN; writes a JSON summary to $TJS_WRK_OUT.
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TJS_TOKEN")

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
