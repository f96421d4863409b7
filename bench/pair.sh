#!/usr/bin/env bash
# Paired throughput of bare axum and axum + SessionLayer (issue 14's ≥ 0.9× target), for a
# shared machine whose speed drifts between rounds: the two servers run alternately, and the
# ratio is taken within each adjacent pair, so a drift slower than one pair cancels out.
#
#   bash bench/pair.sh                 # after `cargo build --release --bins` in bench/
#
# Settings (environment): TJS_PAIRS=12 pairs, TJS_DURATION=4 seconds per wrk run,
# TJS_CONNECTIONS=16. Servers on CPU 0, wrk (one thread) on CPU 1, all on 127.0.0.1.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
BIN="$BENCH/target/release/server"
PAIRS="${TJS_PAIRS:-12}"
DURATION="${TJS_DURATION:-4}"
CONNECTIONS="${TJS_CONNECTIONS:-16}"
[ -x "$BIN" ] || { echo "build first: (cd bench && cargo build --release --bins)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk)" >&2; exit 1; }
OUT="$(mktemp -d)"
declare -A URL PID
cleanup() { for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
for v in bare session; do
  taskset -c 0 "$BIN" "$v" 0 >"$OUT/$v.log" 2>&1 &
  PID[$v]=$!
  for _ in $(seq 100); do grep -q 'listening on' "$OUT/$v.log" && break; sleep 0.05; done
  URL[$v]="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$OUT/$v.log" | head -1)"
done
for _ in $(seq 50); do grep -q '^token ' "$OUT/session.log" && break; sleep 0.05; done
TOKEN="$(sed -n 's/^token //p' "$OUT/session.log")"
[ -n "$TOKEN" ] || { echo "no token from the session server" >&2; exit 1; }

# CPU time (ns) of every thread of process $1 so far.
cpu_ns() {
  local total=0 on_cpu _rest f
  for f in /proc/"$1"/task/*/schedstat; do
    read -r on_cpu _rest <"$f" || continue
    total=$((total + on_cpu))
  done
  echo "$total"
}
# one SERVER: prints "req/s cpu_ns_per_request" of one wrk run.
one() {
  local v="$1" before after out requests rps
  before="$(cpu_ns "${PID[$v]}")"
  out="$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" \
    -H "Authorization: Bearer $TOKEN" "${URL[$v]}/api/me")"
  after="$(cpu_ns "${PID[$v]}")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  echo "$rps $(((after - before) / requests))"
}
echo "loadavg at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
one bare >/dev/null
one session >/dev/null
for p in $(seq "$PAIRS"); do
  # Which one goes first alternates too.
  if [ $((p % 2)) = 1 ]; then b="$(one bare)"; s="$(one session)"; else s="$(one session)"; b="$(one bare)"; fi
  echo "$p $b $s" | tee -a "$OUT/pairs"
done
echo "loadavg at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT/pairs" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
ratio = [float(r[3]) / float(r[1]) for r in rows]
capacity = [float(r[2]) / float(r[4]) for r in rows]
print(f"pairs: {len(rows)}; median req/s: bare {statistics.median(float(r[1]) for r in rows):,.0f}, "
      f"SessionLayer {statistics.median(float(r[3]) for r in rows):,.0f}")
print(f"SessionLayer / bare axum, within each pair: median {statistics.median(ratio):.3f} "
      f"(min {min(ratio):.3f}, max {max(ratio):.3f})")
print(f"capacity (bare CPU per request / SessionLayer's): median {statistics.median(capacity):.3f}")
PY
