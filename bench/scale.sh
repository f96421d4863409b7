#!/usr/bin/env bash
# Scale (issue 7): memory per session and refresh latency against the number of live sessions.
#
#   bash bench/scale.sh          # called by bench/run.sh; results in $TJS_RESULTS
#
# - MemoryStore: bench/src/bin/scale_memory.rs at each size (RSS growth / N, create and refresh
#   median and p99), one process per size so no size inherits another's freed memory; and the
#   crate's own `cargo bench --bench sessions -- N` at 10 k, 100 k, 1 M beside it.
# - Redis bytes per session: the same bench with `--features redis -- redis` (MEMORY USAGE of
#   the keys of 10 000 sessions) against $REDIS_URL.
# - Redis refresh latency against size: bench/src/bin/scale_redis.rs on a redis-server of its
#   own (started here on a free local port, stopped at the end), so 1 M sessions never land in a
#   shared Redis.
#
# Settings: TJS_MEMORY_SIZES="10000 30000 100000 300000 1000000", TJS_REDIS_SIZES (the same),
# TJS_CRATE_SIZES="10000 100000 1000000".
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
RESULTS="${TJS_RESULTS:-$BENCH/target/results}"
MEMORY_SIZES="${TJS_MEMORY_SIZES:-10000 30000 100000 300000 1000000}"
REDIS_SIZES="${TJS_REDIS_SIZES:-10000 30000 100000 300000 1000000}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
mkdir -p "$RESULTS/logs"
log() { printf '[scale] %s\n' "$*" >&2; }

SESSIONS_BIN="${TJS_SESSIONS_BIN:-}"
if [ -z "$SESSIONS_BIN" ]; then
  log "building the crate's sessions bench (release, --features redis)"
  SESSIONS_BIN="$(cd "$ROOT" && cargo bench --features redis --bench sessions --no-run \
    --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "sessions") | .executable' |
    tail -1)"
fi
[ -x "$SESSIONS_BIN" ] || { log "no sessions bench binary"; exit 1; }
if [ -z "${TJS_SKIP_BUILD:-}" ]; then
  (cd "$BENCH" && cargo build --release --bins --quiet)
fi

# ------------------------------------------------------------------ MemoryStore
# bench/src/bin/scale_memory.rs at each size (its latency sample kept outside the measured
# growth), then the crate's own bench at 10 k, 100 k and 1 M for comparison.
out="$RESULTS/scale_memory.tsv"
printf 'sessions\tbytes_per_session\tcreate_p50_us\tcreate_p99_us\trefresh_p50_us\trefresh_p99_us\n' >"$out"
for n in $MEMORY_SIZES; do
  log "MemoryStore, $n sessions (bench/)"
  taskset -c 0 "$BENCH/target/release/scale_memory" "$n" >>"$out"
done
cat "$out" >&2
out="$RESULTS/scale_memory_crate.tsv"
printf 'sessions\tbytes_per_session\tcreate_p50_us\tcreate_p99_us\trefresh_p50_us\trefresh_p99_us\n' >"$out"
for n in ${TJS_CRATE_SIZES:-10000 100000 1000000}; do
  log "MemoryStore, $n sessions (the crate's sessions bench)"
  taskset -c 0 "$SESSIONS_BIN" "$n" | tee "$RESULTS/logs/sessions-$n.txt" |
    awk -v n="$n" '$1 == n { print $1 "\t" $2 "\t" $4 "\t" $7 "\t" $10 "\t" $13 }' >>"$out"
done
cat "$out" >&2

# ------------------------------------------------------------------ Redis bytes per session
log "Redis at $REDIS_URL: the sessions bench (10 000 sessions)"
REDIS_URL="$REDIS_URL" "$SESSIONS_BIN" redis | tee "$RESULTS/redis_sessions.txt" >&2

# ------------------------------------------------------------------ Redis refresh vs size
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log "a redis-server of our own on 127.0.0.1:$port for the Redis scale run"
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  >"$RESULTS/logs/scale-redis-server.log" 2>&1 &
REDIS_PID=$!
trap 'kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
  sleep 0.05
done
out="$RESULTS/scale_redis.tsv"
printf 'sessions\trefresh_p50_us\trefresh_p99_us\tbytes_per_session\n' >"$out"
# shellcheck disable=SC2086
taskset -c 0 "$BENCH/target/release/scale_redis" "redis://127.0.0.1:$port" $REDIS_SIZES >>"$out"
cat "$out" >&2
