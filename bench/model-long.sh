#!/usr/bin/env bash
# The model-based and two-instance tests of tests/model/, run long: 2000 cases per store and
# policy (TJS_MODEL_CASES), sequences of up to 60 steps (TJS_MODEL_STEPS), 1000 logout/refresh
# races and 5000 random operations per instance (TJS_RACE_ROUNDS, TJS_CONCURRENCY_OPS).
# Override any of them from the environment; CARGO_PROFILE=release for an optimised build
# (the default shares the debug build with `cargo test --all-features`).
#
# Redis: REDIS_URL (one node) and REDIS_CLUSTER_URLS (cluster nodes) point at running servers;
# without them the tests start their own from the redis-server binary, and fail if it is
# missing: they never skip.
#
#   bash bench/model-long.sh                          # everything
#   bash bench/model-long.sh sequences::model_redis   # a filter, as for cargo test
# Prints per store the cases run, the time taken and how often each answer came up; a
# failure prints the shrunk sequence with a step-by-step trace.
set -euo pipefail
cd "$(dirname "$0")/.."

export TJS_MODEL_CASES="${TJS_MODEL_CASES:-2000}"
export TJS_MODEL_STEPS="${TJS_MODEL_STEPS:-60}"
export TJS_RACE_ROUNDS="${TJS_RACE_ROUNDS:-1000}"
export TJS_CONCURRENCY_OPS="${TJS_CONCURRENCY_OPS:-5000}"

profile=()
[[ "${CARGO_PROFILE:-dev}" == release ]] && profile=(--release)

start=$(date +%s)
status=0
cargo test "${profile[@]}" --all-features --test it model:: -- --nocapture "$@" || status=$?
echo "model-long: ${TJS_MODEL_CASES} cases per store and policy of up to ${TJS_MODEL_STEPS} steps," \
  "$(( $(date +%s) - start )) s, exit ${status}"
exit "$status"
