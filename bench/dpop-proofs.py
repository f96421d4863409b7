#!/usr/bin/env python3
"""Logs in to the example server with a DPoP proof and writes proofs for the wrk run.

Usage: dpop-proofs.py ORIGIN COUNT PROOFS_FILE TOKENS_FILE

Makes 24 ES256 keys (Python `cryptography`) and logs the example's users in at
ORIGIN/api/auth/login with a proof by each (8 bound sessions per user: the per-user limit is
10), logs `bob` in once more without one (a Bearer session), writes COUNT proofs for
`GET ORIGIN/api/me` to PROOFS_FILE, one `<bound token> <proof with its ath>` per line, the
clients taking turns (one key may hold only its share of the server's replay cache), and
the Bearer access token to TOKENS_FILE (`bearer <token>`).
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


class Client:
    """One DPoP key."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
               "y": b64(numbers.y.to_bytes(32, "big"))}
        self.header = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())

    def proof(self, method: str, url: str, claims: dict) -> str:
        body = {"jti": b64(os.urandom(16)), "htm": method, "htu": url, **claims}
        signing_input = self.header + "." + b64(json.dumps(body).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def login(origin: str, user: str, client) -> str:
    url = origin + "/api/auth/login"
    headers = {"Content-Type": "application/json"}
    if client is not None:
        headers["DPoP"] = client.proof("POST", url, {"iat": int(time.time())})
    body = json.dumps({"username": user, "password": user + "-password"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, body, headers)) as res:
        return json.load(res)["data"]["accessToken"]


def main() -> None:
    origin, count, proofs_file, tokens_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    clients = []
    for user in ["alice", "bob", "admin"]:
        for _ in range(8):
            client = Client()
            clients.append((client, login(origin, user, client)))
    bearer = login(origin, "bob", None)
    iat = int(time.time()) + 30
    with open(proofs_file, "w") as f:
        for i in range(count):
            client, token = clients[i % len(clients)]
            ath = b64(hashlib.sha256(token.encode()).digest())
            f.write(token + " " + client.proof("GET", origin + "/api/me", {"iat": iat, "ath": ath}) + "\n")
    with open(tokens_file, "w") as f:
        f.write(f"bearer {bearer}\n")


if __name__ == "__main__":
    main()
