#!/usr/bin/env bash
# Schemathesis (from PyPI) against the example server, driven by openapi.yaml: every response
# must conform to the spec (status code, content type, documented headers, body schema) and
# none may be a server error. Exits non-zero on any failure.
#
# TJS_SERVER_BIN             the example server binary (default target/debug/examples/server,
#                            built with all features when missing)
# SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 300)
# SCHEMATHESIS_SEED          generation seed (default 1, so CI runs are reproducible)
# SCHEMATHESIS_VENV          where the virtualenv lives (default target/schemathesis-venv)
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${TJS_SERVER_BIN:-target/debug/examples/server}"
examples="${SCHEMATHESIS_MAX_EXAMPLES:-300}"
seed="${SCHEMATHESIS_SEED:-1}"
venv="$(realpath -m "${SCHEMATHESIS_VENV:-target/schemathesis-venv}")"

if [[ ! -x "$bin" ]]; then
  if [[ -n "${TJS_SERVER_BIN:-}" ]]; then
    echo "TJS_SERVER_BIN=$bin is not an executable" >&2
    exit 1
  fi
  cargo build --all-features --example server
fi

if [[ ! -x "$venv/bin/schemathesis" ]]; then
  python="$(command -v python3.11 || command -v python3)"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4.32,<5'
fi
"$venv/bin/schemathesis" --version

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A fixed secret, a request budget schemathesis cannot exhaust, a free port, no metrics
# listener (METRICS_ADDR; /metrics is not part of the public API).
PORT=0 \
  METRICS_ADDR=off \
  JWT_SECRET="schemathesis-secret-schemathesis-secret-0123" \
  RATE_LIMIT_MAX_REQUESTS=10000000 \
  RUST_LOG=warn \
  "$bin" >"$work/stdout" 2>"$work/stderr" &
server_pid=$!
base=""
for _ in $(seq 300); do
  base="$(sed -n 's/^listening on //p' "$work/stdout" | head -n 1)"
  [[ -n "$base" ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "the example server exited:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
[[ -n "$base" ]] || { echo "the example server did not start" >&2; exit 1; }
echo "example server at $base"

# An admin's access token for the bearer routes (an admin may read any user's session stats).
login() {
  "$venv/bin/python" - "$base" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(
    sys.argv[1] + "/api/auth/login",
    data=json.dumps({"username": "admin", "password": "admin-password"}).encode(),
    headers={"content-type": "application/json"},
)
print(json.load(urllib.request.urlopen(req))["data"]["accessToken"])
PY
}

# Two runs, so that logging out does not take the token away from the other routes: first every
# route but logout, logout-all and logout-others (which would end the second token's session),
# then those three with a token of their own.
# Both tokens are taken before the first run: its failed logins lock the address out of login.
token_a="$(login)"
token_b="$(login)"
# Run from the scratch directory: schemathesis keeps its caches (.schemathesis/, .hypothesis/)
# in the working directory.
root="$PWD"
run() {
  local token="$1"
  shift
  (cd "$work" && "$venv/bin/schemathesis" run "$root/openapi.yaml" \
    --url "$base" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --request-timeout 10 \
    --header "Authorization: Bearer $token" \
    --generation-database none \
    --no-color \
    "$@")
}
status=0
run "$token_a" --exclude-operation-id logout --exclude-operation-id logoutAll \
  --exclude-operation-id logoutOthers || status=1
run "$token_b" --include-operation-id logout --include-operation-id logoutAll \
  --include-operation-id logoutOthers || status=1

if grep -q "panicked" "$work/stderr"; then
  echo "the example server panicked during the run:" >&2
  grep -A3 "panicked" "$work/stderr" >&2
  status=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the example server died during the run" >&2
  status=1
fi
exit "$status"
