#!/usr/bin/env bash
# Soak: a few minutes of steady load against the release example server holding thousands of
# live sessions, with the server's RSS sampled from /proc throughout. Writes bench/soak.md.
# Loopback only; not run in CI.
#
#   bash bench/soak.sh                   # 180 s, 3000 sessions
#   SOAK_SECONDS=600 SOAK_SESSIONS=6000 bash bench/soak.sh
#
# SOAK_SECONDS      load duration (default 180)
# SOAK_SESSIONS     live sessions logged in before the load, spread over the three demo users
#                   (default 3000)
# SOAK_THREADS      wrk threads (default 2)
# SOAK_CONNECTIONS  wrk connections (default 32)
# SOAK_ROTATIONS    refresh-token rotations per second done beside wrk (default 50)
# TJS_SERVER_BIN    the server binary (default target/release/examples/server, built if missing)
#
# The load (wrk, Lua): 70 % GET /api/me and 25 % POST /api/token/validate, each with the access
# token of one of the live sessions in turn (so the revocation cache holds them all), 4 %
# GET /api/token/health, 1 % GET /api/token/session-stats/alice as admin. Beside it, a rotator
# refreshes the sessions one after another at SOAK_ROTATIONS per second, always with the latest
# refresh token, and counts any refresh that does not answer 200. At the end every session is
# checked to be still live.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${SOAK_SECONDS:-180}"
sessions="${SOAK_SESSIONS:-3000}"
threads="${SOAK_THREADS:-2}"
connections="${SOAK_CONNECTIONS:-32}"
rotations="${SOAK_ROTATIONS:-50}"
bin="${TJS_SERVER_BIN:-target/release/examples/server}"
report="bench/soak.md"

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
if [[ ! -x "$bin" ]]; then
  cargo build --release --example server
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

PORT=0 \
  METRICS_ADDR=127.0.0.1:0 \
  JWT_SECRET="soak-secret-soak-secret-soak-secret-soak-secret" \
  JWT_MAX_CONCURRENT_SESSIONS=100000 \
  RATE_LIMIT_MAX_REQUESTS=1000000000 \
  RUST_LOG=warn \
  "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
base=""
for _ in $(seq 300); do
  base="$(sed -n 's/^listening on //p' "$work/stdout" | head -n 1)"
  [[ -n "$base" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$base" ]] || { echo "the server did not start" >&2; exit 1; }
case "$base" in
  http://127.*) ;;
  *) echo "refusing a non-loopback address: $base" >&2; exit 1 ;;
esac
echo "server pid $server_pid at $base"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status"; }
rss_idle=$(rss_kb)

# Log the sessions in; keep each session's latest tokens.
cat >"$work/soak.py" <<'PY'
import http.client, json, sys, time, urllib.parse

def connect(base):
    u = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=10)

def call(conn, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    res = conn.getresponse()
    return res.status, json.loads(res.read() or b"null")

def login(base, n, out):
    conn = connect(base)
    users = ["alice", "bob", "admin"]
    with open(out, "w") as f:
        for i in range(n):
            user = users[i % 3]
            status, body = call(conn, "POST", "/api/auth/login",
                                {"username": user, "password": user + "-password"})
            assert status == 200, (status, body)
            d = body["data"]
            f.write(f'{d["sessionId"]} {d["accessToken"]} {d["refreshToken"]} {user}\n')

def rotate(base, sessions_file, rate, seconds, out):
    rows = [l.split() for l in open(sessions_file)]
    conn = connect(base)
    done = failed = 0
    failures = {}
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        row = rows[i % len(rows)]
        status, body = call(conn, "POST", "/api/token/refresh", {"refreshToken": row[2]})
        if status == 200:
            row[1], row[2] = body["data"]["accessToken"], body["data"]["refreshToken"]
        else:
            failed += 1
            key = f'{status} {body.get("error") if body else None}'
            failures[key] = failures.get(key, 0) + 1
        done += 1
        i += 1
        behind = start + done / rate - time.monotonic()
        if behind > 0:
            time.sleep(behind)
    with open(sessions_file, "w") as f:
        for row in rows:
            f.write(" ".join(row) + "\n")
    json.dump({"rotations": done, "failed": failed, "failures": failures}, open(out, "w"))

def check(base, sessions_file, out):
    conn = connect(base)
    live = lost = 0
    for row in (l.split() for l in open(sessions_file)):
        status, body = call(conn, "GET", "/api/me", token=row[1])
        if status == 200 and body["data"]["sessionId"] == row[0]:
            live += 1
        else:
            lost += 1
    json.dump({"live": live, "lost": lost}, open(out, "w"))

if __name__ == "__main__":
    cmd, base = sys.argv[1], sys.argv[2]
    if cmd == "login":
        login(base, int(sys.argv[3]), sys.argv[4])
    elif cmd == "rotate":
        rotate(base, sys.argv[3], float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
    else:
        check(base, sys.argv[3], sys.argv[4])
PY

echo "logging in $sessions sessions"
login_start=$SECONDS
python3 "$work/soak.py" login "$base" "$sessions" "$work/sessions"
login_secs=$((SECONDS - login_start))
awk '{print $2}' "$work/sessions" >"$work/tokens"
admin_token="$(awk '$4 == "admin" {print $2; exit}' "$work/sessions")"
rss_sessions=$(rss_kb)

cat >"$work/soak.lua" <<'LUA'
local tokens = {}
local admin
local i = 0
statuses = {}

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  admin = args[2]
  i = math.random(#tokens)
end

function request()
  i = i + 1
  local token = tokens[(i % #tokens) + 1]
  local r = i % 100
  if r < 70 then
    return wrk.format("GET", "/api/me", { ["Authorization"] = "Bearer " .. token })
  elseif r < 95 then
    return wrk.format("POST", "/api/token/validate", { ["Content-Type"] = "application/json" },
      '{"accessToken":"' .. token .. '"}')
  elseif r < 99 then
    return wrk.format("GET", "/api/token/health")
  else
    return wrk.format("GET", "/api/token/session-stats/alice", { ["Authorization"] = "Bearer " .. admin })
  end
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, status .. ": " .. n) end
  table.sort(parts)
  io.write("statuses: " .. table.concat(parts, ", ") .. "\n")
  io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
LUA

# RSS every 10 s during the load.
: >"$work/rss"
(
  t=0
  while kill -0 "$server_pid" 2>/dev/null && [[ $t -le $seconds ]]; do
    echo "$t $(rss_kb)" >>"$work/rss"
    sleep 10
    t=$((t + 10))
  done
) &
sampler=$!

echo "load for ${seconds}s: wrk -t$threads -c$connections, $rotations rotations/s"
python3 "$work/soak.py" rotate "$base" "$work/sessions" "$rotations" "$seconds" "$work/rotations.json" &
rotator=$!
wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/soak.lua" "$base" \
  -- "$work/tokens" "$admin_token" | tee "$work/wrk"
wait "$rotator"
wait "$sampler" 2>/dev/null || true
rss_end=$(rss_kb)
rss_peak=$(hwm_kb)
python3 "$work/soak.py" check "$base" "$work/sessions" "$work/check.json"

rss_warm=$(awk '$1 == 10 {print $2}' "$work/rss")
rss_warm=${rss_warm:-$rss_sessions}
mib() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
growth=$(awk -v a="$rss_warm" -v b="$rss_end" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')
rotated=$(python3 -c "import json; d = json.load(open('$work/rotations.json')); print(d['rotations'], d['failed'], d['failures'])")
checked=$(python3 -c "import json; d = json.load(open('$work/check.json')); print(d['live'], d['lost'])")
read -r rot_done rot_failed rot_failures <<<"$rotated"
read -r live lost <<<"$checked"

{
  echo "# Soak: the example server under steady load"
  echo
  echo "Written by \`bash bench/soak.sh\` on $(date -u +%Y-%m-%dT%H:%MZ), commit \`$(git rev-parse --short HEAD 2>/dev/null || echo unknown)\`"
  echo "(plus uncommitted changes, if any), $(nproc) cores, release build, memory store, loopback."
  echo
  echo "## Setup"
  echo
  echo "- $sessions live sessions logged in first (alice, bob, admin in turn; \`JWT_MAX_CONCURRENT_SESSIONS=100000\`), in ${login_secs} s."
  echo "- ${seconds} s of \`wrk -t$threads -c$connections\`: 70 % \`GET /api/me\` and 25 % \`POST /api/token/validate\` with each session's access token in turn, 4 % \`GET /api/token/health\`, 1 % \`GET /api/token/session-stats/alice\` (alice has $((sessions / 3)) sessions) as admin."
  echo "- Beside it, refresh-token rotation of the sessions one after another at $rotations/s with the latest token."
  echo
  echo "## Result"
  echo
  echo "| server RSS | MiB |"
  echo "|---|---|"
  echo "| started, no session | $(mib "$rss_idle") |"
  echo "| $sessions sessions logged in, before the load | $(mib "$rss_sessions") |"
  echo "| after 10 s of load | $(mib "$rss_warm") |"
  echo "| at the end ($seconds s) | $(mib "$rss_end") |"
  echo "| peak (VmHWM) | $(mib "$rss_peak") |"
  echo
  echo "From 10 s to the end: ${growth} %."
  echo
  echo "- Refresh rotations: $rot_done, failed: $rot_failed (by status and code: ${rot_failures})."
  echo "- Sessions still live at the end (\`GET /api/me\` with each one's latest access token): $live of $sessions; lost: $lost."
  echo
  echo "RSS every 10 s (seconds, KiB):"
  echo
  echo '```'
  cat "$work/rss"
  echo '```'
  echo
  echo "wrk:"
  echo
  echo '```'
  cat "$work/wrk"
  echo '```'
} >"$report"
echo "wrote $report"

if [[ "$rot_failed" != 0 || "$lost" != 0 ]]; then
  echo "the soak lost sessions or refreshes: see $report" >&2
  exit 1
fi
