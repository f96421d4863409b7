#!/usr/bin/env bash
# PostgreSQL (issue 15): create and refresh latency (p50, p99) and bytes per session at 10 k,
# 100 k and 1 M live sessions in one run, and the cross-instance revocation lag (LISTEN/NOTIFY
# between two managers). The crate's `benches/postgres.rs` does the work; its docs say how the
# background sessions are written and what is timed.
#
#   bash bench/postgres.sh       # called by bench/run.sh; results in $TJS_RESULTS/postgres
#
# Needs a PostgreSQL at $DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) as a
# user that may create databases: the bench makes a database of its own and drops it at the
# end. About a minute on 2 cores after the build, half of it writing the 1 M sessions.
#
# Settings: TJS_POSTGRES_SIZES="10000 100000 1000000", TJS_POSTGRES_SAMPLES=2000 (creates and
# refreshes timed per size), TJS_POSTGRES_LAG_RUNS=200, TJS_POSTGRES_ARGS (more arguments for the
# bench: `sealed`, `async`).
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$BENCH")"
RESULTS="${TJS_RESULTS:-$BENCH/target/results}"
OUT="$RESULTS/postgres"
SIZES="${TJS_POSTGRES_SIZES:-10000 100000 1000000}"
SAMPLES="${TJS_POSTGRES_SAMPLES:-2000}"
LAG_RUNS="${TJS_POSTGRES_LAG_RUNS:-200}"
log() { printf '[postgres] %s\n' "$*" >&2; }

POSTGRES_BIN="${TJS_POSTGRES_BIN:-}"
if [ -z "$POSTGRES_BIN" ]; then
  log "building the crate's postgres bench (release, --features postgres)"
  POSTGRES_BIN="$(cd "$ROOT" && cargo bench --features postgres --bench postgres --no-run \
    --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "postgres") | .executable' |
    tail -1)"
fi
[ -x "$POSTGRES_BIN" ] || { log "no postgres bench binary"; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml benches || echo ' + uncommitted changes')"
  echo "nproc: $(nproc)"
  echo "loadavg_start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/run.txt"
log "sizes $SIZES, $SAMPLES samples per size, $LAG_RUNS revocation-lag runs"
# shellcheck disable=SC2086
"$POSTGRES_BIN" $SIZES "samples=$SAMPLES" "lag=$LAG_RUNS" "out=$OUT" ${TJS_POSTGRES_ARGS:-} \
  2>&1 | tee "$OUT/postgres.log" >&2
echo "loadavg_end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/run.txt"
