"""DPoP proofs with Python `cryptography` alone, and our client's proofs checked by it.

    python vectors.py make OUT.json        # proofs made here, as test vectors for token::dpop
    python vectors.py check CLIENT.json    # verify client-made proofs (signature and claims)

Nothing here comes from the crate: JWS, base64url, the RFC 7638 thumbprint and the server
nonce (src/token/dpop/nonce.rs's documented form) are written out with the standard library,
and the signatures are made and checked by `cryptography`. ES256 signatures are made with a
high `s` on purpose in one vector (as WebCrypto does half of the time).
"""

import base64
import hashlib
import hmac
import json
import secrets
import sys
import time

import cryptography
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ORIGIN = "https://api.example.com"
NONCE_KEY = b"interop-nonce-key-interop-nonce-key-!!"
NONCE_PERIOD_S = 300
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk: dict) -> str:
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("crv", "kty", "x")
    canonical = json.dumps({k: jwk[k] for k in required}, sort_keys=True, separators=(",", ":"))
    return b64u(hashlib.sha256(canonical.encode()).digest())


def server_nonce(now_ms: int) -> str:
    period = (now_ms // (NONCE_PERIOD_S * 1000)).to_bytes(8, "big")
    mac = hmac.new(NONCE_KEY, b"tjs-dpop-nonce-v1" + period, hashlib.sha256).digest()
    return b64u(period + mac[:16])


class Es256:
    alg = "ES256"

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        nums = self.key.public_key().public_numbers()
        # Members in another order than the thumbprint's, and extra public ones.
        self.jwk = {"y": b64u(nums.y.to_bytes(32, "big")), "x": b64u(nums.x.to_bytes(32, "big")),
                    "crv": "P-256", "kty": "EC", "kid": "python", "use": "sig"}

    def sign(self, data: bytes, high_s: bool = False) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        if high_s and s < P256_N // 2:
            s = P256_N - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class Ed25519:
    alg = "EdDSA"

    def __init__(self):
        self.key = ed25519.Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}

    def sign(self, data: bytes, high_s: bool = False) -> bytes:
        return self.key.sign(data)


def proof(key, claims: dict, header_extra=None, jwk=None, high_s=False) -> str:
    header = {"typ": "dpop+jwt", "alg": key.alg, "jwk": jwk or key.jwk, **(header_extra or {})}
    signing_input = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
    return signing_input + "." + b64u(key.sign(signing_input.encode(), high_s))


def make(out: str) -> int:
    vectors = []
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9." + b64u(secrets.token_bytes(32))
    ath = b64u(hashlib.sha256(token.encode()).digest())
    for key in (Es256(), Ed25519()):
        now = time.time()
        now_ms = int(now * 1000)

        def vector(name, p, path="/api/me", method="GET", access_token=token, expect="accept", nonce=False, at=now_ms):
            vectors.append({
                "name": f"python {key.alg} {name}", "proof": p, "method": method, "origin": ORIGIN,
                "path": path, "access_token": access_token, "now_ms": at,
                "nonce_key": NONCE_KEY.decode() if nonce else None,
                "nonce_period_s": NONCE_PERIOD_S if nonce else None,
                "expect": expect, "jkt": thumbprint(key.jwk),
            })

        def claims(**extra):
            return {"jti": b64u(secrets.token_bytes(16)), "htm": "GET", "htu": f"{ORIGIN}/api/me",
                    "iat": int(now), "ath": ath, **extra}

        vector("resource with ath", proof(key, claims()))
        vector("fractional iat", proof(key, claims(iat=now)))
        vector("login without ath", proof(key, {"jti": b64u(secrets.token_bytes(16)), "htm": "POST",
                                                 "htu": f"{ORIGIN}/api/auth/login", "iat": int(now)}),
               path="/api/auth/login", method="POST", access_token=None)
        vector("with a server nonce", proof(key, claims(nonce=server_nonce(now_ms))), nonce=True)
        vector("with a forged nonce", proof(key, claims(nonce=b64u(secrets.token_bytes(24)))), nonce=True,
               expect="NonceInvalid")
        vector("two minutes old", proof(key, claims()), at=now_ms + 120_000, expect="TooOld")
        vector("private key in the jwk", proof(key, claims(), jwk={**key.jwk, "d": b64u(b"\0" * 32)}),
               expect="PrivateKey")
        vector("typ JWT", proof(key, claims(), header_extra={"typ": "JWT"}), expect="InvalidType")
        if key.alg == "ES256":
            vector("high-s signature", proof(key, claims(), high_s=True))
            # The algorithm-confusion attack: HS256 keyed with the public jwk, padded to 64 bytes.
            header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk}
            si = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims()).encode())
            tag = hmac.new(json.dumps(key.jwk).encode(), si.encode(), hashlib.sha256).digest()
            vector("HS256 keyed with the public key", si + "." + b64u(tag + b"\0" * 32),
                   expect="UnsupportedAlgorithm")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"source": f"Python cryptography {cryptography.__version__}", "vectors": vectors}, f, indent=2)
        f.write("\n")
    print(f"python cryptography {cryptography.__version__}: {len(vectors)} vectors -> {out}")
    return 0


def check(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    if not vectors:
        print("cryptography: no client proofs", file=sys.stderr)
        return 2
    failed = 0
    for v in vectors:
        h, c, s = v["proof"].split(".")
        header, claims, sig = json.loads(b64u_decode(h)), json.loads(b64u_decode(c)), b64u_decode(s)
        jwk = header["jwk"]
        problems = []
        try:
            if header.get("typ") != "dpop+jwt":
                problems.append("typ")
            if header["alg"] == "ES256" and jwk["kty"] == "EC" and jwk["crv"] == "P-256":
                pub = ec.EllipticCurvePublicNumbers(int.from_bytes(b64u_decode(jwk["x"]), "big"),
                                                    int.from_bytes(b64u_decode(jwk["y"]), "big"),
                                                    ec.SECP256R1()).public_key()
                der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
                pub.verify(der, f"{h}.{c}".encode(), ec.ECDSA(hashes.SHA256()))
            elif header["alg"] in ("EdDSA", "Ed25519") and jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519":
                ed25519.Ed25519PublicKey.from_public_bytes(b64u_decode(jwk["x"])).verify(sig, f"{h}.{c}".encode())
            else:
                problems.append(f"alg {header['alg']} with kty {jwk.get('kty')}")
        except InvalidSignature:
            problems.append("signature")
        if any(m in jwk for m in ("d", "p", "q", "dp", "dq", "qi", "k")):
            problems.append("private jwk")
        if claims.get("htm") != v["method"] or claims.get("htu") != v["origin"] + v["path"]:
            problems.append("htm/htu")
        token = v["access_token"]
        if token and claims.get("ath") != b64u(hashlib.sha256(token.encode()).digest()):
            problems.append("ath")
        if thumbprint(jwk) != v["jkt"]:
            problems.append("thumbprint")
        verdict = "verified ok" if not problems else f"REFUSED ({', '.join(problems)}) UNEXPECTED"
        print(f"cryptography {v['name']}: {verdict}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        sys.exit(make(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
