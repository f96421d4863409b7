#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer): every target in fuzz/ for FUZZ_SECONDS each (default 20),
# starting from the committed seed corpus fuzz/corpus/<target>/. Fails on any crash, panic,
# leak, timeout or out-of-memory; libFuzzer leaves the failing input in fuzz/artifacts/<target>/
# (reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> <file>` in fuzz/).
#
# cargo-fuzz passes nightly-only compiler flags (-Zsanitizer=address, sanitizer coverage);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. Builds go to fuzz/target, apart from
# the crate's own target directory. Overflow checks and debug assertions are on (-a).
#
# FUZZ_TARGETS="verify_token config" limits the run to those targets. FUZZ_RUNS=N runs each
# target for N inputs instead of FUZZ_SECONDS (bench/fuzz-long.sh: the long pass).
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-20}"
runs="${FUZZ_RUNS:-}"
if [[ -n "$runs" ]]; then
  budget=(-runs="$runs")
  what="$runs inputs"
else
  budget=(-max_total_time="$seconds")
  what="${seconds}s"
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
cargo fuzz build -a

# New inputs libFuzzer finds go to a scratch directory (the first corpus directory it is
# given), so the committed seed corpus stays as it is.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $targets; do
  printf '\n==> fuzz %s for %s\n' "$target" "$what"
  mkdir -p "$scratch/$target"
  dict=()
  if [[ -f "dicts/$target.dict" ]]; then
    dict=("-dict=dicts/$target.dict")
  fi
  set +e
  cargo fuzz run -a "$target" "$scratch/$target" "corpus/$target" -- \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${dict[@]}" >"$scratch/$target.log" 2>&1
  status=$?
  set -e
  # The last coverage line and the final statistics.
  grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE)' "$scratch/$target.log" | tail -n 1 || true
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|Done [0-9]+ runs)' \
    "$scratch/$target.log" || true
  if [[ $status -ne 0 ]]; then
    echo "fuzz target $target FAILED (exit $status):" >&2
    grep -m 3 -A 3 'panicked at' "$scratch/$target.log" >&2 || true
    grep -E '^(SUMMARY|artifact_prefix|Base64):' "$scratch/$target.log" >&2 || true
    tail -n 20 "$scratch/$target.log" >&2
    failed+=("$target")
  fi
done

if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzzing found failures in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: all targets ran ${what} without a failure"
