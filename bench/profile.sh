#!/usr/bin/env bash
# Profiles behind the figures (issue 7), written to $TJS_RESULTS/profiles/:
#
# - callgrind: instructions per request of each contender's check (bench/src/bin/profile.rs,
#   2 000 requests, only the measured loop collected). Deterministic, so its ratios do not
#   depend on what else the shared machine is doing. Caveat: valgrind's CPU has no SHA
#   extensions, so SHA-256 runs its portable code here (natively it uses SHA-NI).
# - perf (cpu-clock sampling; this machine has no hardware counters): where the CPU time of
#   the `bare` and `session` load-test servers goes under wrk, kernel included, with the
#   server's CPU time per request read from /proc/PID/task/*/schedstat.
#
#   bash bench/profile.sh          # called by bench/run.sh
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
RESULTS="${TJS_RESULTS:-$BENCH/target/results}"
OUT="$RESULTS/profiles"
mkdir -p "$OUT"
log() { printf '[profile] %s\n' "$*" >&2; }
if [ -z "${TJS_SKIP_BUILD:-}" ]; then
  (cd "$BENCH" && cargo build --release --bins --quiet)
fi
PROFILE_BIN="$BENCH/target/release/profile"
SERVER_BIN="$BENCH/target/release/server"
N=2000

# ------------------------------------------------------------------ callgrind
printf 'contender\tinstructions_per_request\n' >"$RESULTS/profile_ir.tsv"
for c in decode12 decode9 inner_only session_layer tower_http jwt_authorizer refresh_memory; do
  log "callgrind: $c ($N iterations)"
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measure_loop*' \
    --callgrind-out-file="$OUT/callgrind.$c.out" "$PROFILE_BIN" "$c" "$N" 2>"$OUT/callgrind.$c.log"
  callgrind_annotate --auto=no --threshold=100 "$OUT/callgrind.$c.out" >"$OUT/callgrind-$c.txt" 2>/dev/null
  total="$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$OUT/callgrind-$c.txt")"
  printf '%s\t%s\n' "$c" "$((total / N))" >>"$RESULTS/profile_ir.tsv"
done
cat "$RESULTS/profile_ir.tsv" >&2

# ------------------------------------------------------------------ perf on the servers
cpu_ns() {
  local total=0 on_cpu _rest f
  for f in /proc/"$1"/task/*/schedstat; do
    read -r on_cpu _rest <"$f" || continue
    total=$((total + on_cpu))
  done
  echo "$total"
}
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true' EXIT
TOKEN=""
printf 'server\trequests\tcpu_us_per_request\n' >"$RESULTS/profile_perf.tsv"
for v in session bare; do
  logf="$OUT/server-$v.log"
  taskset -c 0 "$SERVER_BIN" "$v" 0 >"$logf" 2>&1 &
  PID=$!
  for _ in $(seq 100); do grep -q 'listening on' "$logf" && break; sleep 0.05; done
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$logf" | head -1)"
  if [ "$v" = session ]; then
    for _ in $(seq 50); do grep -q '^token ' "$logf" && break; sleep 0.05; done
    TOKEN="$(sed -n 's/^token //p' "$logf")"
  fi
  log "perf: $v server under wrk (16 connections, 5 s; 3 s sampled)"
  taskset -c 1 wrk -t1 -c16 -d1s -H "Authorization: Bearer $TOKEN" "$url/api/me" >/dev/null
  before="$(cpu_ns "$PID")"
  taskset -c 1 wrk -t1 -c16 -d5s -H "Authorization: Bearer $TOKEN" "$url/api/me" >"$OUT/wrk-$v.txt" &
  wrk_pid=$!
  sleep 1
  perf record -q -e cpu-clock -F 4999 -p "$PID" -o "$OUT/perf-$v.data" -- sleep 3 2>/dev/null
  wait "$wrk_pid"
  after="$(cpu_ns "$PID")"
  reqs="$(awk '/requests in/ {print $1}' "$OUT/wrk-$v.txt")"
  printf '%s\t%s\t%s\n' "$v" "$reqs" \
    "$(awk -v c="$((after - before))" -v r="$reqs" 'BEGIN { printf "%.2f", c / r / 1000 }')" \
    >>"$RESULTS/profile_perf.tsv"
  perf report -i "$OUT/perf-$v.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
    grep '%' >"$OUT/perf-$v.txt" || true
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
done
cat "$RESULTS/profile_perf.tsv" >&2
