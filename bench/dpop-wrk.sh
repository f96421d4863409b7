#!/usr/bin/env bash
# What a DPoP request costs on the wire, beside a Bearer one (issue 29): wrk on loopback
# against the example server (release, memory store, SESSION_DPOP=optional), GET /api/me with
# a Bearer token, then with bound tokens (24 clients, each its own key, taking turns) and a
# fresh proof for every request (made ahead by bench/dpop-proofs.py; wrk cannot sign). Same server, same route, one run each, back to back.
#
#   bash bench/dpop-wrk.sh
#
# Settings (environment): TJS_DURATION=5 (seconds per run), TJS_CONNECTIONS=16,
# TJS_PROOFS_COUNT=120000 (more than one run can send; a run that runs out is reported).
# The server is pinned to CPU 0 and wrk (one thread) to CPU 1 of the 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION="${TJS_DURATION:-5}"
CONNECTIONS="${TJS_CONNECTIONS:-16}"
COUNT="${TJS_PROOFS_COUNT:-120000}"
work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd "$ROOT" && cargo build --release --all-features --example server --quiet)
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
origin="http://127.0.0.1:$port"
env -u REDIS_URL -u DATABASE_URL PORT="$port" METRICS_ADDR=off RUST_LOG=warn \
  JWT_SECRET="dpop-wrk-secret-dpop-wrk-secret-dpop-wrk" RATE_LIMIT_MAX_REQUESTS=100000 \
  SESSION_DPOP=optional SESSION_PUBLIC_ORIGIN="$origin" \
  taskset -c 0 "$ROOT/target/release/examples/server" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/server.log" && break; sleep 0.1; done

python3 "$ROOT/bench/dpop-proofs.py" "$origin" "$COUNT" "$work/proofs" "$work/tokens"
bearer_token="$(sed -n 's/^bearer //p' "$work/tokens")"

run() { # name script token
  TJS_TOKEN="$3" TJS_PROOFS="$work/proofs" TJS_THREADS=1 TJS_WRK_OUT="$work/$1.json" \
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$ROOT/bench/wrk/$2" "$origin/api/me" >/dev/null
  python3 - "$1" "$work/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
rps = r["requests"] / (r["duration_us"] / 1e6)
print(f"| {sys.argv[1]} | {rps:,.0f} | {r['p50_us']} | {r['p99_us']} | {r['non2xx']} |")
PY
}
echo "| request | requests/s | p50 µs | p99 µs | non-2xx |"
echo "|---|---|---|---|---|"
run bearer me.lua "$bearer_token"
run dpop-es256 dpop.lua ""
