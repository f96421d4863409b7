#!/usr/bin/env bash
# The long fuzzing pass: every cargo-fuzz target for a million inputs (FUZZ_RUNS to change),
# from the committed seeds, with the same sanitizers and failure rules as CI's short pass.
# About 20 minutes on two cores; CI runs each target for 15 seconds only.
#
#   bash bench/fuzz-long.sh                       # all targets, 1,000,000 inputs each
#   FUZZ_RUNS=5000000 FUZZ_TARGETS=dpop_proof bash bench/fuzz-long.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_RUNS="${FUZZ_RUNS:-1000000}" exec bash .ci/fuzz.sh
