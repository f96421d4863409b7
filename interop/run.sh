#!/usr/bin/env bash
# Interop (issue 16): verifiers nobody here wrote check the example server's tokens through its
# /.well-known/jwks.json alone:
#   - jwt-authorizer 0.15 (its JWKS URL option) protecting a route, in the crate beside this
#     script (its own workspace, out of the main crate's dependency graph);
#   - Node `jose` (createRemoteJWKSet + jwtVerify), from npm;
#   - Python PyJWT (PyJWKClient), from PyPI.
# For an Ed25519 key (EdDSA) and an RSA key (RS256), made with openssl in a temporary
# directory, the server is restarted through the key-rotation runbook of docs/deployment.md §9:
#   1. A signs, B published as next;  2. B signs, A published as previous;  3. B alone.
# Every verifier must accept a fresh token, refuse a tampered one, an `alg: none` one and an
# expired one (from a second server with the same key and a 1 s lifetime), keep accepting A's
# tokens in phase 2 while new ones carry B's kid, and refuse A's tokens once A is retired.
#
#   TJS_SERVER_BIN=target/debug/examples/server bash interop/run.sh
#
# TJS_SERVER_BIN  the example server binary (default: built with `cargo build --all-features
#                 --example server`). npm and pip installs are cached in interop/.cache/
#                 (git-ignored), the jwt-authorizer crate builds in interop/target/.
# Exits non-zero on any unexpected verdict or set-up failure; nothing is ever skipped.
set -euo pipefail
if [[ -n "${TJS_SERVER_BIN:-}" ]]; then
  case "$TJS_SERVER_BIN" in /*) ;; *) TJS_SERVER_BIN="$PWD/$TJS_SERVER_BIN" ;; esac
fi
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cache="$here/.cache"
mkdir -p "$cache"

die() { echo "interop/run.sh: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

for tool in openssl node npm python3 curl cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

if [[ -z "${TJS_SERVER_BIN:-}" ]]; then
  (cd "$root" && cargo build --all-features --example server)
  TJS_SERVER_BIN="$root/target/debug/examples/server"
fi
[[ -x "$TJS_SERVER_BIN" ]] || die "TJS_SERVER_BIN=$TJS_SERVER_BIN is not an executable file"

step "verifiers: jwt-authorizer (cargo), jose (npm), PyJWT (pip)"
(cd "$here" && cargo build --locked --quiet)
authorizer="$here/target/debug/tjs-interop"

node_dir="$cache/node"
mkdir -p "$node_dir"
if ! cmp -s "$here/package-lock.json" "$node_dir/package-lock.json" \
   || [[ ! -f "$node_dir/node_modules/jose/package.json" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$here/verify.mjs" "$node_dir/verify.mjs"

venv="$cache/venv"
if ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements.txt"
fi
echo "jwt-authorizer 0.15 (Cargo.lock), jose $(node -p "require('$node_dir/node_modules/jose/package.json').version"), PyJWT $("$venv/bin/python" -c 'import jwt; print(jwt.__version__)')"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_server NAME VAR=VALUE...: starts the example with those variables; sets $base, $pid.
start_server() {
  local name="$1"
  shift
  env PORT=0 METRICS_ADDR=off RUST_LOG=warn \
    JWT_SECRET="interop-secret-interop-secret-interop-secret" \
    RATE_LIMIT_MAX_REQUESTS=100000 \
    "$@" "$TJS_SERVER_BIN" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  base=""
  for _ in $(seq 300); do
    base="$(sed -n 's/^listening on //p' "$work/$name.out" | head -n 1)"
    [[ -n "$base" ]] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "interop/run.sh: the server ($name) did not start; its stderr:" >&2
  cat "$work/$name.err" >&2
  exit 1
}

stop_server() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

login() {
  curl -fsS -H 'content-type: application/json' \
    -d '{"username":"alice","password":"alice-password"}' "$1/api/auth/login" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["accessToken"])'
}

# Token surgery and JWKS reading, with the standard library only.
helper() {
  python3 - "$@" <<'PY'
import base64, json, sys

def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

cmd, arg = sys.argv[1], sys.argv[2]
if cmd == "kid":
    print(json.loads(b64d(arg.split(".")[0]))["kid"])
elif cmd == "alg":
    print(json.loads(b64d(arg.split(".")[0]))["alg"])
elif cmd == "tamper":
    # Another user in the claims, the signature kept.
    h, p, s = arg.split(".")
    claims = json.loads(b64d(p))
    claims["sub"] = "admin"
    claims["roles"] = ["user", "admin"]
    print(".".join([h, b64e(json.dumps(claims).encode()), s]))
elif cmd == "none":
    h, p, _ = arg.split(".")
    header = json.loads(b64d(h))
    header["alg"] = "none"
    print(".".join([b64e(json.dumps(header).encode()), p, ""]))
elif cmd == "kids":
    print(" ".join(k["kid"] for k in json.load(open(arg))["keys"]))
PY
}

failures=()
# verify PHASE JWKS_URL CASES_FILE: every verifier on every case.
verify() {
  local phase="$1" url="$2" cases="$3"
  echo "-- $phase: $url"
  timeout 120 "$authorizer" "$url" "$cases" || failures+=("jwt-authorizer, $phase")
  timeout 120 node "$node_dir/verify.mjs" "$url" "$cases" || failures+=("jose, $phase")
  timeout 120 "$venv/bin/python" "$here/verify.py" "$url" "$cases" || failures+=("PyJWT, $phase")
}

expect_eq() {
  [[ "$1" == "$2" ]] || die "$3: expected '$2', got '$1'"
}

for pair in "EdDSA ed25519" "RS256 rsa"; do
  read -r alg kind <<<"$pair"
  step "$alg: keys A and B made with openssl ($kind)"
  keys="$work/$alg"
  mkdir -p "$keys"
  for k in a b; do
    if [[ "$kind" == ed25519 ]]; then
      openssl genpkey -algorithm ed25519 -out "$keys/$k.pem" 2>/dev/null
    else
      openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$keys/$k.pem" 2>/dev/null
    fi
    openssl pkey -in "$keys/$k.pem" -pubout -out "$keys/$k.pub"
    # An RSA public key says its algorithm on an `alg:` line before its PEM block (its PEM
    # cannot say RS256 from PS256); openssl and the verifiers skip the line.
    if [[ "$kind" == rsa ]]; then
      { echo "alg: $alg"; cat "$keys/$k.pub"; } >"$keys/$k.pub.tmp" && mv "$keys/$k.pub.tmp" "$keys/$k.pub"
    fi
  done

  step "$alg phase 1: A signs, B published as next"
  start_server "$alg-1" JWT_ALGORITHM="$alg" JWT_PRIVATE_KEY_FILE="$keys/a.pem" \
    JWT_NEXT_PUBLIC_KEYS_FILE="$keys/b.pub"
  p1=$pid
  url1="$base/.well-known/jwks.json"
  curl -fsS "$url1" >"$keys/jwks1.json"
  read -r kid_a kid_b <<<"$(helper kids "$keys/jwks1.json")"
  [[ -n "$kid_a" && -n "$kid_b" && "$kid_a" != "$kid_b" ]] || die "$alg: phase 1 should publish two keys: $(cat "$keys/jwks1.json")"
  token_a="$(login "$base")"
  expect_eq "$(helper kid "$token_a")" "$kid_a" "$alg: the kid of A's token"
  expect_eq "$(helper alg "$token_a")" "$alg" "$alg: the alg of A's token"

  # An expired token signed with A: a second server, same key, one-second tokens.
  start_server "$alg-short" JWT_ALGORITHM="$alg" JWT_PRIVATE_KEY_FILE="$keys/a.pem" \
    JWT_ACCESS_TOKEN_EXPIRY=1s JWT_LEEWAY=0s
  short=$pid
  expired="$(login "$base")"
  stop_server "$short"
  expect_eq "$(helper kid "$expired")" "$kid_a" "$alg: the kid of the short-lived token"
  sleep 3

  cases1="$keys/cases1"
  {
    echo "fresh accept:alice $token_a"
    echo "tampered reject $(helper tamper "$token_a")"
    echo "alg-none reject $(helper none "$token_a")"
    echo "expired reject $expired"
  } >"$cases1"
  verify "$alg phase 1" "$url1" "$cases1"
  stop_server "$p1"

  step "$alg phase 2: B signs, A published as previous (server restarted)"
  start_server "$alg-2" JWT_ALGORITHM="$alg" JWT_PRIVATE_KEY_FILE="$keys/b.pem" \
    JWT_PREVIOUS_PUBLIC_KEYS_FILE="$keys/a.pub"
  p2=$pid
  url2="$base/.well-known/jwks.json"
  curl -fsS "$url2" >"$keys/jwks2.json"
  expect_eq "$(helper kids "$keys/jwks2.json")" "$kid_b $kid_a" "$alg: phase 2 publishes B then A"
  token_b="$(login "$base")"
  expect_eq "$(helper kid "$token_b")" "$kid_b" "$alg: new tokens carry B's kid"
  cases2="$keys/cases2"
  {
    echo "previous-key accept:alice $token_a"
    echo "new-key accept:alice $token_b"
    echo "tampered-new reject $(helper tamper "$token_b")"
    echo "expired reject $expired"
  } >"$cases2"
  verify "$alg phase 2" "$url2" "$cases2"
  stop_server "$p2"

  step "$alg phase 3: A retired, B alone"
  start_server "$alg-3" JWT_ALGORITHM="$alg" JWT_PRIVATE_KEY_FILE="$keys/b.pem"
  p3=$pid
  url3="$base/.well-known/jwks.json"
  curl -fsS "$url3" >"$keys/jwks3.json"
  expect_eq "$(helper kids "$keys/jwks3.json")" "$kid_b" "$alg: phase 3 publishes B alone"
  cases3="$keys/cases3"
  {
    echo "new-key accept:alice $token_b"
    echo "retired-key reject $token_a"
  } >"$cases3"
  verify "$alg phase 3" "$url3" "$cases3"
  stop_server "$p3"
done

if grep -l "panicked" "$work"/*.err >/dev/null 2>&1; then
  grep -A3 "panicked" "$work"/*.err >&2
  failures+=("a server panicked")
fi
echo
if ((${#failures[@]})); then
  echo "interop/run.sh: FAILED:" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "interop/run.sh: every verifier agreed on every case (EdDSA and RS256, three rotation phases)"
