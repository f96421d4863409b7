#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md in one go, then rewrites its tables and the plots in
# bench/plots/. From the repository root:
#
#   bash bench/run.sh             # everything
#   bash bench/run.sh postgres    # only the PostgreSQL part: rewrites only its section
#
# Needs: cargo, node/npm, python3, a Redis on $REDIS_URL (default redis://127.0.0.1:6379; a
# unique key prefix is used and deleted), redis-server (the scale run starts its own), and wrk,
# gnuplot-nox, jq from Debian (installed here when missing), valgrind and perf, and a PostgreSQL
# at $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres, a user that may create
# databases; the bench makes a database of its own and drops it). About 15 minutes on 2 cores,
# after the builds. Everything that is compared is measured in this one invocation; all traffic is to
# 127.0.0.1 and every run is bounded.
#
# Settings: TJS_DURATION, TJS_ROUNDS, TJS_CONNECTIONS, TJS_REFRESH_CONNECTIONS (bench/load.sh),
# TJS_MEMORY_SIZES, TJS_REDIS_SIZES (bench/scale.sh), TJS_INTERLEAVED_ROUNDS (criterion),
# TJS_POSTGRES_SIZES, TJS_POSTGRES_SAMPLES, TJS_POSTGRES_LAG_RUNS (bench/postgres.sh).
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
export TJS_RESULTS="${TJS_RESULTS:-$BENCH/target/results}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export TJS_DURATION="${TJS_DURATION:-3}" TJS_ROUNDS="${TJS_ROUNDS:-5}"
export TJS_CONNECTIONS="${TJS_CONNECTIONS:-16}" TJS_REFRESH_CONNECTIONS="${TJS_REFRESH_CONNECTIONS:-4}"
log() { printf '\n==> %s\n' "$*" >&2; }

postgres_up() {
  pg_isready -q -d "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}" ||
    { echo "no PostgreSQL at ${DATABASE_URL:-127.0.0.1:5432}" >&2; exit 1; }
}

case "${1:-}" in
  "") ;;
  postgres)
    # Only the PostgreSQL part: its results replace those of the last full run (if any) in
    # $TJS_RESULTS/postgres, and only its section of BENCHMARKS.md is rewritten.
    for tool in cargo jq python3 pg_isready; do
      command -v "$tool" >/dev/null || { echo "run.sh postgres needs $tool" >&2; exit 1; }
    done
    postgres_up
    bash "$BENCH/postgres.sh"
    python3 "$BENCH/report.py" "$TJS_RESULTS" --only postgres
    exit 0
    ;;
  *) echo "usage: bash bench/run.sh [postgres]" >&2; exit 2 ;;
esac

log "tools"
missing=()
for tool in wrk gnuplot jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=("${missing[@]/gnuplot/gnuplot-nox}")
  apt-get update -qq && apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
for tool in cargo node npm python3 redis-cli redis-server taskset valgrind perf pg_isready; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool" >&2; exit 1; }
done
redis-cli -u "$REDIS_URL" ping | grep -q PONG || { echo "no Redis at $REDIS_URL" >&2; exit 1; }
postgres_up
(cd "$BENCH/node" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; })

log "builds (release): bench crate, the example server, the crate's sessions and postgres benches"
(cd "$BENCH" && cargo build --release --bins && cargo bench --bench peers --no-run)
(cd "$ROOT" && cargo build --release --features redis --example server)
TJS_SESSIONS_BIN="$(cd "$ROOT" && cargo bench --features redis --bench sessions --no-run \
  --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "sessions") | .executable' |
  tail -1)"
TJS_POSTGRES_BIN="$(cd "$ROOT" && cargo bench --features postgres --bench postgres --no-run \
  --message-format=json |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "postgres") | .executable' |
  tail -1)"
export TJS_SESSIONS_BIN TJS_POSTGRES_BIN TJS_SKIP_BUILD=1

rm -rf "$TJS_RESULTS"
mkdir -p "$TJS_RESULTS/logs"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml || echo ' + uncommitted changes')"
  echo "nproc: $(nproc)"
  echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
  echo "kernel: $(uname -r)"
  echo "rustc: $(rustc -V)"
  echo "node: $(node -v)"
  echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
  echo "redis: $(redis-server --version | cut -d' ' -f3)"
  echo "duration: $TJS_DURATION"
  echo "rounds: $TJS_ROUNDS"
  echo "connections: $TJS_CONNECTIONS"
  echo "refresh_connections: $TJS_REFRESH_CONNECTIONS"
  echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$TJS_RESULTS/machine.txt"
cat "$TJS_RESULTS/machine.txt" >&2

log "1/5 criterion: the check through each layer, session operations, rate limiter"
(cd "$BENCH" && TJS_INTERLEAVED_ROUNDS="${TJS_INTERLEAVED_ROUNDS:-40}" cargo bench --bench peers) \
  2>&1 | tee "$TJS_RESULTS/logs/criterion.txt" | grep -E -B1 'time:|^interleaved|^  [a-z]|deleted' | grep -v '^--' >&2

log "2/5 load: wrk against each server, then refresh chains"
bash "$BENCH/load.sh"

log "3/5 scale: memory per session, refresh latency against live sessions"
bash "$BENCH/scale.sh"
(cd "$BENCH" && cargo build --release --bin token_flood)
"$BENCH/target/release/token_flood" "${TJS_FLOOD_TOKENS:-1000000}" >"$TJS_RESULTS/token_flood.tsv"

log "4/5 profiles: callgrind instruction counts, perf of the bare and session servers"
bash "$BENCH/profile.sh"

log "5/5 PostgreSQL: create and refresh at 10 k, 100 k, 1 M live sessions, revocation lag"
bash "$BENCH/postgres.sh"

echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$TJS_RESULTS/machine.txt"

log "report: BENCHMARKS.md and bench/plots/"
python3 "$BENCH/report.py" "$TJS_RESULTS"
