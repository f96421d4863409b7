#!/usr/bin/env bash
# Browser tests of client/token-manager.js in headless Debian Chromium.
# Installs what is missing (Chromium via apt, playwright-core via npm), then runs
# the suite with node's test runner. Exits non-zero when a test fails.
#
#   tests/browser/run.sh                                      # against ./mock-server.mjs
#   TJS_BASE_URL=http://127.0.0.1:3000 tests/browser/run.sh   # against a running server
#   TJS_SERVER_BIN=target/debug/examples/server tests/browser/run.sh
#       starts that server binary on a free port with short lifetimes (access token 4s,
#       refresh hint at 2s, no leeway, step-up after 3s) and SESSION_DPOP=optional with server
#       nonces, runs the
#       suite against it, stops it on exit.
#       JWT_* / RATE_LIMIT_* variables already set in the environment are passed on
#       and override these defaults. TJS_SERVER_BIN wins over TJS_BASE_URL.
set -euo pipefail
if [ -n "${TJS_SERVER_BIN:-}" ]; then
  case "$TJS_SERVER_BIN" in /*) ;; *) TJS_SERVER_BIN="$PWD/$TJS_SERVER_BIN" ;; esac
fi
cd "$(dirname "$0")"

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  echo "run.sh: $chromium missing; installing Debian's chromium" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! command -v node >/dev/null 2>&1; then
  echo "run.sh: node (>= 20) is required" >&2
  exit 1
fi

want="$(node -p "require('./package.json').devDependencies['playwright-core']")"
have="$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$have" != "$want" ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
fi

server_pid=""
server_dir=""
node_pid=""
stop_server() {
  if [ -n "$node_pid" ]; then
    # node runs in its own process group (setsid): end it with the Chromium it started.
    kill -TERM -- "-$node_pid" 2>/dev/null || kill -TERM "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
    node_pid=""
  fi
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  if [ -n "$server_dir" ]; then rm -rf "$server_dir"; server_dir=""; fi
}
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${TJS_SERVER_BIN:-}" ]; then
  if [ ! -x "$TJS_SERVER_BIN" ]; then
    echo "run.sh: TJS_SERVER_BIN=$TJS_SERVER_BIN is not an executable file" >&2
    exit 1
  fi
  server_dir="$(mktemp -d)"
  # A free port chosen here, so the server knows its public origin (DPoP proofs name it).
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  PORT="$port" \
  SESSION_DPOP="${SESSION_DPOP:-optional}" \
  SESSION_PUBLIC_ORIGIN="${SESSION_PUBLIC_ORIGIN:-http://127.0.0.1:$port}" \
  SESSION_DPOP_NONCE_KEY="${SESSION_DPOP_NONCE_KEY:-browser-test-dpop-nonce-key-browser-test}" \
  METRICS_ADDR=off \
  JWT_SECRET="${JWT_SECRET:-browser-test-secret-browser-test-secret}" \
  JWT_ACCESS_TOKEN_EXPIRY="${JWT_ACCESS_TOKEN_EXPIRY:-4s}" \
  JWT_AUTO_REFRESH_THRESHOLD="${JWT_AUTO_REFRESH_THRESHOLD:-2s}" \
  JWT_LEEWAY="${JWT_LEEWAY:-0s}" \
  RATE_LIMIT_MAX_REQUESTS="${RATE_LIMIT_MAX_REQUESTS:-100000}" \
  SESSION_STEP_UP_MAX_AGE="${SESSION_STEP_UP_MAX_AGE:-3s}" \
    "$TJS_SERVER_BIN" >"$server_dir/stdout" 2>"$server_dir/stderr" &
  server_pid=$!
  # The server prints `listening on http://127.0.0.1:PORT` once it is up.
  url=""
  for _ in $(seq 1 150); do
    url="$(sed -n 's/^listening on //p' "$server_dir/stdout" | head -n 1)"
    if [ -n "$url" ]; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$url" ]; then
    echo "run.sh: $TJS_SERVER_BIN did not print its URL; stdout / stderr:" >&2
    cat "$server_dir/stdout" "$server_dir/stderr" >&2 || true
    exit 1
  fi
  export TJS_BASE_URL="$url"
  echo "run.sh: testing against $TJS_SERVER_BIN at $url" >&2
fi

# In the background, so that INT / TERM reach the traps at once and stop everything.
setsid=""
if command -v setsid >/dev/null 2>&1; then setsid="setsid"; fi
$setsid node --test --test-concurrency=1 token-manager.test.mjs &
node_pid=$!
rc=0
wait "$node_pid" || rc=$?
node_pid=""
if [ "$rc" -ne 0 ] && [ -n "$server_dir" ]; then
  echo "run.sh: last lines of the server's stderr:" >&2
  tail -n 40 "$server_dir/stderr" >&2 || true
fi
exit "$rc"
