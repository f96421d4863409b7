#!/usr/bin/env python3
"""Logs in to the example server with a DPoP proof and writes proofs for the wrk run.

Usage: dpop-proofs.py ORIGIN COUNT PROOFS_FILE TOKENS_FILE

Makes an ES256 key (Python `cryptography`), logs `alice` in at ORIGIN/api/auth/login with a
proof (the session is bound to the key), logs `bob` in without one (a Bearer session), writes
COUNT proofs for `GET ORIGIN/api/me` with the bound token's `ath` to PROOFS_FILE (one per
line), and the two access tokens to TOKENS_FILE (`dpop <token>` and `bearer <token>`).
The proofs are dated 30 s ahead (the server accepts 60 s of skew), so they stay acceptable
for 90 s after they are made.
"""
import base64
import hashlib
import json
import os
import sys
import time
import urllib.request

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    origin, count, proofs_file, tokens_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
           "y": b64(numbers.y.to_bytes(32, "big"))}
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())

    def proof(method: str, url: str, claims: dict) -> str:
        body = {"jti": b64(os.urandom(16)), "htm": method, "htu": url, **claims}
        signing_input = header + "." + b64(json.dumps(body).encode())
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def login(user: str, dpop: bool) -> str:
        url = origin + "/api/auth/login"
        headers = {"Content-Type": "application/json"}
        if dpop:
            headers["DPoP"] = proof("POST", url, {"iat": int(time.time())})
        body = json.dumps({"username": user, "password": user + "-password"}).encode()
        with urllib.request.urlopen(urllib.request.Request(url, body, headers)) as res:
            return json.load(res)["data"]["accessToken"]

    bound, bearer = login("alice", True), login("bob", False)
    ath = b64(hashlib.sha256(bound.encode()).digest())
    iat = int(time.time()) + 30
    with open(proofs_file, "w") as f:
        for _ in range(count):
            f.write(proof("GET", origin + "/api/me", {"iat": iat, "ath": ath}) + "\n")
    with open(tokens_file, "w") as f:
        f.write(f"dpop {bound}\nbearer {bearer}\n")


if __name__ == "__main__":
    main()
