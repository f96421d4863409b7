#!/usr/bin/env bash
# The Redis Cluster failover suite (tests/failover.rs) at length: each fault
# TJS_FAILOVER_ROUNDS times (default 5) on one cluster, with TJS_FAILOVER_CLIENTS concurrent
# clients (default 30, as in `.ci/run`, which runs each fault once as part of
# `cargo test --all-features`; on a 2-core machine 60 clients already time out logging in to the
# debug build before any fault). Needs redis-server and redis-cli; starts its own nodes on free
# ports and stops them. Prints the table rows at the end; the full output is in the log file.
#
#   bash tests/failover.sh                          # 5 rounds of each fault
#   TJS_FAILOVER_ROUNDS=20 bash tests/failover.sh   # longer
#   TJS_FAILOVER_PAUSE_SECS=60 bash tests/failover.sh   # a longer SIGSTOP
set -euo pipefail
cd "$(dirname "$0")/.."

export TJS_FAILOVER_ROUNDS="${TJS_FAILOVER_ROUNDS:-5}"
export TJS_FAILOVER_CLIENTS="${TJS_FAILOVER_CLIENTS:-30}"
log="${TJS_FAILOVER_LOG:-target/failover.log}"
mkdir -p "$(dirname "$log")"

status=0
cargo test --all-features --test failover -- --nocapture --test-threads 1 >"$log" 2>&1 || status=$?
sed -E 's/^test [a-z_]+ \.\.\. //' "$log" | grep -E '^\| (fault|[a-zA-Z])' | awk '!(/^\| fault/ && seen++)'
echo "full output: $log"
exit "$status"
