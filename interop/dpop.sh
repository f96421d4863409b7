#!/usr/bin/env bash
# DPoP interop (issue 29), both ways, with implementations nobody here wrote:
#   1. proofs made by panva's `dpop` (npm) and by Python `cryptography` alone are checked by
#      token::dpop (the crate's verifier), each with the answer expected (accept, or which
#      refusal), and the key thumbprint jose / Python compute;
#   2. proofs made by our browser client (client/token-manager.js on node's WebCrypto) are
#      verified by jose (jwtVerify with the embedded jwk) and by Python `cryptography`, and by
#      token::dpop too.
#
#   bash interop/dpop.sh            # fresh proofs; the committed vectors are left as they are
#   bash interop/dpop.sh --update   # also rewrites tests/dpop/vectors-*.json (commit them)
#
# `cargo test --lib token::dpop` checks the committed vectors without node or Python; this
# script makes fresh ones (new keys, new signatures, today's clock) and passes them to the same
# test through TJS_DPOP_VECTORS. npm and pip installs are cached in interop/.cache/ (git-ignored).
# Exits non-zero on any unexpected verdict or set-up failure; nothing is ever skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cache="$here/.cache"
mkdir -p "$cache"
update=0
[[ "${1:-}" == "--update" ]] && update=1

die() { echo "interop/dpop.sh: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }
for tool in node npm python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

step "implementations: dpop and jose (npm), cryptography (pip)"
node_dir="$cache/dpop-node"
mkdir -p "$node_dir"
if ! cmp -s "$here/dpop/package-lock.json" "$node_dir/package-lock.json" \
   || [[ ! -f "$node_dir/node_modules/dpop/package.json" ]]; then
  cp "$here/dpop/package.json" "$here/dpop/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
cp "$here/dpop/"*.mjs "$node_dir/"
venv="$cache/dpop-venv"
if ! cmp -s "$here/dpop/requirements.txt" "$venv/.requirements.txt"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/dpop/requirements.txt"
  cp "$here/dpop/requirements.txt" "$venv/.requirements.txt"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=()

step "proofs by panva's dpop and by Python cryptography"
(cd "$node_dir" && node foreign-proofs.mjs "$work/vectors-panva.json") || failures+=("dpop (npm) could not make proofs")
"$venv/bin/python" "$here/dpop/vectors.py" make "$work/vectors-python.json" || failures+=("cryptography could not make proofs")

step "our client's proofs, verified by jose and by Python cryptography"
(cd "$node_dir" && node client-proofs.mjs "$root/client/token-manager.js" "$work/vectors-client.json") \
  || failures+=("jose refused proofs of our client")
"$venv/bin/python" "$here/dpop/vectors.py" check "$work/vectors-client.json" \
  || failures+=("cryptography refused proofs of our client")

step "token::dpop on every fresh vector (and the committed ones)"
(cd "$root" && TJS_DPOP_VECTORS="$work" cargo test --quiet --all-features --lib \
  token::dpop::tests::interop_vectors -- --nocapture) || failures+=("token::dpop disagreed with a vector")

if ((update)); then
  mkdir -p "$root/tests/dpop"
  cp "$work"/vectors-*.json "$root/tests/dpop/"
  echo "interop/dpop.sh: tests/dpop/vectors-*.json rewritten"
fi
echo
if ((${#failures[@]})); then
  echo "interop/dpop.sh: FAILED:" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi
echo "interop/dpop.sh: every proof verified as expected, both ways (panva dpop, Python cryptography, jose, token::dpop)"
