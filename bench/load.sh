#!/usr/bin/env bash
# Load benchmark (issue 7): wrk on loopback against the same route, GET /api/me answering
# {"userId": ...}, behind each contender; then refresh chains against the example server on
# MemoryStore and on Redis. Everything compared runs in this one invocation.
#
#   bash bench/load.sh                   # called by bench/run.sh; results in $TJS_RESULTS
#
# Settings (environment):
#   TJS_DURATION=4          seconds per wrk run
#   TJS_ROUNDS=3            rounds; each round runs every contender once, in a rotated order,
#                           and the report takes the median round of each
#   TJS_CONNECTIONS=16      connections for the route
#   TJS_REFRESH_CONNECTIONS=4
#   REDIS_URL=redis://127.0.0.1:6379   (a unique key prefix is used and deleted afterwards)
#
# The servers are pinned to CPU 0 and wrk (one thread) to CPU 1 of the 2 cores. Every request is
# to 127.0.0.1, and every run is bounded by its duration.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
RESULTS="${TJS_RESULTS:-$BENCH/target/results}"
DURATION="${TJS_DURATION:-4}"
ROUNDS="${TJS_ROUNDS:-3}"
CONNECTIONS="${TJS_CONNECTIONS:-16}"
REFRESH_CONNECTIONS="${TJS_REFRESH_CONNECTIONS:-4}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
SERVER_CPU=0
CLIENT_CPU=1

log() { printf '[load] %s\n' "$*" >&2; }

# ------------------------------------------------------------------ tools and builds
if ! command -v wrk >/dev/null; then
  log "installing wrk (Debian)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
if [ ! -d "$BENCH/node/node_modules" ]; then
  log "installing the Node contender from npm"
  (cd "$BENCH/node" && npm ci --no-audit --no-fund --silent)
fi
if [ -z "${TJS_SKIP_BUILD:-}" ]; then
  log "building the bench servers and the example server (release)"
  (cd "$BENCH" && cargo build --release --bins --quiet)
  (cd "$ROOT" && cargo build --release --features redis --example server --quiet)
fi
SERVER_BIN="$BENCH/target/release/server"
EXAMPLE_BIN="$ROOT/target/release/examples/server"

rm -rf "$RESULTS/wrk" "$RESULTS/logs"
mkdir -p "$RESULTS/wrk" "$RESULTS/logs"

# ------------------------------------------------------------------ servers
PIDS=()
REDIS_PREFIX="tjsload$$"
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  # The Redis keys the example server wrote (SCAN, never KEYS: the server may be shared).
  redis-cli -u "$REDIS_URL" --scan --pattern "$REDIS_PREFIX:*" 2>/dev/null |
    xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start NAME CMD...: starts a server pinned to the server CPU, waits for "listening on", and
# sets URL (the example also prints a `metrics on` URL first: not that one).
start() {
  local name="$1"
  shift
  local logf="$RESULTS/logs/$name.log"
  taskset -c "$SERVER_CPU" "$@" >"$logf" 2>"$RESULTS/logs/$name.err" &
  PIDS+=("$!")
  PID_OF[$name]=$!
  echo "$name $!" >>"$RESULTS/logs/pids.txt"
  for _ in $(seq 200); do
    URL="$(grep -v '^metrics on ' "$logf" | grep -o 'http://127\.0\.0\.1:[0-9]*' | head -1 || true)"
    [ -n "$URL" ] && return 0
    sleep 0.05
  done
  log "$name did not start:"
  cat "$RESULTS/logs/$name.err" >&2
  exit 1
}

declare -A URLS PID_OF
start session "$SERVER_BIN" session 0
URLS[session]="$URL"
for _ in $(seq 50); do grep -q '^token ' "$RESULTS/logs/session.log" && break; sleep 0.05; done
TOKEN="$(sed -n 's/^token //p' "$RESULTS/logs/session.log")"
[ -n "$TOKEN" ] || { log "no token from the session server"; exit 1; }
for v in bare session-nocache tower-http jwt-authorizer bare07; do
  start "$v" "$SERVER_BIN" "$v" 0
  URLS[$v]="$URL"
done
# The cache-off server keeps its sessions in its own memory: it is sent a token of its own
# (the same claims, the same secret).
for _ in $(seq 50); do grep -q '^token ' "$RESULTS/logs/session-nocache.log" && break; sleep 0.05; done
declare -A TOKEN_OF
TOKEN_OF[session-nocache]="$(sed -n 's/^token //p' "$RESULTS/logs/session-nocache.log")"
start express node "$BENCH/node/server.js" 0
URLS[express]="$URL"
start express-keyobject node "$BENCH/node/server.js" 0 keyobject
URLS[express-keyobject]="$URL"

example_env=(
  JWT_SECRET="load-test-secret-load-test-secret-0123456789"
  JWT_MAX_CONCURRENT_SESSIONS=100000
  RATE_LIMIT_MAX_REQUESTS=1000000000
  RUST_LOG=warn
  PORT=0
  METRICS_ADDR=off
)
start refresh-memory env -u REDIS_URL "${example_env[@]}" "$EXAMPLE_BIN"
URLS[refresh-memory]="$URL"
start refresh-redis env "${example_env[@]}" REDIS_URL="$REDIS_URL" REDIS_KEY_PREFIX="$REDIS_PREFIX" \
  "$EXAMPLE_BIN"
URLS[refresh-redis]="$URL"

# ------------------------------------------------------------------ sanity: each check is on
ROUTE_CONTENDERS=(bare session session-nocache tower-http jwt-authorizer bare07 express express-keyobject)
for v in "${ROUTE_CONTENDERS[@]}"; do
  token="${TOKEN_OF[$v]:-$TOKEN}"
  body="$(curl -sf "${URLS[$v]}/api/me" -H "Authorization: Bearer $token")" ||
    { log "$v refused the token"; exit 1; }
  case "$body" in *'"userId":"alice"'*) ;; *) log "$v answered $body"; exit 1 ;; esac
  if [ "$v" != bare ] && [ "$v" != bare07 ]; then
    code="$(curl -s -o /dev/null -w '%{http_code}' "${URLS[$v]}/api/me" \
      -H "Authorization: Bearer ${token%?}x")"
    [ "$code" = 401 ] || { log "$v answered $code to a forged token"; exit 1; }
  fi
  log "$v on ${URLS[$v]}: ok"
done
for v in refresh-memory refresh-redis; do
  curl -sf -X POST "${URLS[$v]}/api/auth/login" -H 'content-type: application/json' \
    -d '{"username":"alice","password":"alice-password"}' | grep -q refreshToken ||
    { log "$v: login failed"; exit 1; }
  log "$v on ${URLS[$v]}: ok"
done

# ------------------------------------------------------------------ runs
# CPU time (ns, user + system) of every thread of process $1 so far: what the server spent on
# the requests, whatever else ran on its core meanwhile.
cpu_ns() {
  local total=0 on_cpu _rest f
  for f in /proc/"$1"/task/*/schedstat; do
    read -r on_cpu _rest <"$f" || continue
    total=$((total + on_cpu))
  done
  echo "$total"
}

# run SERVER SCRIPT CONNECTIONS SECONDS OUT: one wrk run; OUT gets wrk's summary plus the
# server's CPU time over the run (cpu_ns).
run() {
  local server="$1" script="$2" conns="$3" secs="$4" out="$5"
  local pid="${PID_OF[$server]}" before after
  before="$(cpu_ns "$pid")"
  TJS_TOKEN="${TOKEN_OF[$server]:-$TOKEN}" TJS_WRK_OUT="$out" taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s -s "$BENCH/wrk/$script" "${URLS[$server]}/api/me" \
    >"$out.txt" 2>&1
  after="$(cpu_ns "$pid")"
  jq -c --argjson cpu "$((after - before))" '. + {cpu_ns: $cpu}' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
  printf 'loadavg after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$out.txt"
}

log "warm-up: 1 s each"
for v in "${ROUTE_CONTENDERS[@]}"; do run "$v" me.lua "$CONNECTIONS" 1 "$RESULTS/wrk/warmup-$v.json"; done
for v in refresh-memory refresh-redis; do
  run "$v" refresh.lua "$REFRESH_CONNECTIONS" 1 "$RESULTS/wrk/warmup-$v.json"
done

n=${#ROUTE_CONTENDERS[@]}
for round in $(seq "$ROUNDS"); do
  for k in $(seq 0 $((n - 1))); do
    v="${ROUTE_CONTENDERS[$(((k + round) % n))]}"
    log "round $round/$ROUNDS: $v (${DURATION} s, $CONNECTIONS connections)"
    run "$v" me.lua "$CONNECTIONS" "$DURATION" "$RESULTS/wrk/$v-$round.json"
  done
  for v in refresh-memory refresh-redis; do
    log "round $round/$ROUNDS: $v (${DURATION} s, $REFRESH_CONNECTIONS connections, then 1)"
    run "$v" refresh.lua "$REFRESH_CONNECTIONS" "$DURATION" "$RESULTS/wrk/$v-$round.json"
    run "$v" refresh.lua 1 "$DURATION" "$RESULTS/wrk/$v-c1-$round.json"
  done
  # The yardstick for the 1-connection refresh latencies: the bare route, also one connection.
  log "round $round/$ROUNDS: bare, 1 connection"
  run bare me.lua 1 "$DURATION" "$RESULTS/wrk/bare-c1-$round.json"
done

# Peak resident memory of each server over the run (VmHWM, kB).
while read -r name pid; do
  printf '%s %s\n' "$name" "$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
done <"$RESULTS/logs/pids.txt" >"$RESULTS/vmhwm.txt"
log "done: $RESULTS/wrk"
