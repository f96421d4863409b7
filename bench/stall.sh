#!/usr/bin/env bash
# The stall experiment of issue 26: clients refreshing in a loop against Redis and PostgreSQL
# while the store stalls (a proxy freezes the connection, as SIGSTOP or a VM pause would), and
# how many sessions reuse detection ended afterwards. CI runs a 3 s stall with 20 clients
# (tests/outage.rs); this runs the long ones. Expect 0 everywhere.
#
#   bash bench/stall.sh            # 12 s and 60 s, 20 clients on Redis, 60 on PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --all-features --test it --no-run >/dev/null
for secs in 12 60; do
  TJS_STALL_SECS=$secs TJS_STALL_CLIENTS=20 cargo test --release --all-features --test it \
    outage::a_redis_stall -- --nocapture 2>&1 | grep -E '^redis:|panicked' || true
  TJS_STALL_SECS=$secs TJS_STALL_CLIENTS=60 cargo test --release --all-features --test it \
    outage::a_postgres_stall -- --nocapture 2>&1 | grep -E '^postgres:|panicked' || true
done
