"""PyJWT (PyJWKClient) against the server's JWKS, fed the tokens interop/run.sh made.

    python verify.py JWKS_URL CASES_FILE

Each line of CASES_FILE is `NAME EXPECT TOKEN`, EXPECT `accept:SUB` or `reject`. Exits 1 when
any verdict differs from the expected one, 2 on a set-up error.
"""

import sys

import jwt


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python verify.py JWKS_URL CASES_FILE", file=sys.stderr)
        return 2
    jwks_url, cases_file = sys.argv[1:]
    client = jwt.PyJWKClient(jwks_url, cache_keys=True)
    with open(cases_file, encoding="utf-8") as f:
        cases = [line.split() for line in f if line.strip()]
    if not cases:
        print("PyJWT: no cases", file=sys.stderr)
        return 2
    failed = 0
    for name, expect, token in cases:
        sub = ""
        try:
            key = client.get_signing_key_from_jwt(token)
            # The algorithm the JWK names, never one the token picks.
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                options={"require": ["exp", "iat", "sub"]},
                leeway=0,
            )
            verdict = "accepted"
            sub = claims["sub"]
        except (jwt.PyJWTError, jwt.PyJWKClientError) as e:
            verdict = f"refused ({type(e).__name__})"
        if expect.startswith("accept:"):
            ok = verdict == "accepted" and sub == expect[len("accept:"):]
        else:
            ok = expect == "reject" and verdict != "accepted"
        print(f"PyJWT {name}: {verdict}{', sub ' + sub if sub else ''} {'ok' if ok else 'UNEXPECTED'}")
        failed += not ok
    if failed:
        print(f"PyJWT: {failed} unexpected", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
