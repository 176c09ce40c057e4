#!/usr/bin/python3
"""Pre-generate token requests for the token-endpoint benchmark (bench/as/run.sh).

Client assertions (private_key_jwt) and DPoP proofs are single use: each has
its own jti, and a server refuses a jti it has seen. So every request of a
run needs its own, made in advance so that the load generator only copies
bytes. This script writes them for bench/loadgen:

  --bodies FILE    one form body per line (--bodies-file, each line used once)
  --headers FILE   with --dpop-key: one header block per line
                   ("Content-Type: ...\\nDPoP: <proof>", --headers-file
                   --no-wrap); without: a single Content-Type line.

Timestamps (iat, exp) are taken when each item is made, so generate right
before the run that uses them: an assertion expires --exp-seconds (60) after
it was made. Make COUNT = expected rate x (warm-up + duration) x 1.5: the
load generator stops a run early, rather than replay, when lines run out.

Signing uses python3-cryptography's ECDSA directly (ES256: P-256, SHA-256,
r||s), about 30 us per JWS on one core; --jobs processes share the work.

  gen_requests.py keygen --key OUT.pem --jwks OUT.json
  gen_requests.py gen --count N --client-id bench-jwt --scope accounts \\
      --key jwt.pem --aud https://localhost:8443 \\
      [--dpop-key dpop.pem --htu https://localhost:8443/token] \\
      --bodies bodies.txt --headers headers.txt

Only Debian's /usr/bin/python3 with python3-cryptography is needed.
"""
import argparse
import base64
import hashlib
import json
import multiprocessing
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

CONTENT_TYPE = "Content-Type: application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def public_jwk(key):
    n = key.public_key().public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64u(n.x.to_bytes(32, "big")),
        "y": b64u(n.y.to_bytes(32, "big")),
    }


def thumbprint(jwk):
    # RFC 7638: the required members, lexicographic order, no white space
    canon = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return b64u(hashlib.sha256(canon.encode()).digest())


def load_key(path):
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        sys.exit("%s: not a P-256 private key" % path)
    return key


class Signer:
    """ES256 JWS with a fixed protected header."""

    def __init__(self, key, header):
        self.key = key
        self.algo = ec.ECDSA(hashes.SHA256())
        self.head = b64u_json(header) + "."

    def sign(self, claims_b64):
        signing_input = self.head + claims_b64
        der = self.key.sign(signing_input.encode("ascii"), self.algo)
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# ---- the work, split over processes -----------------------------------------

_cfg = None


def _init(cfg):
    global _cfg
    c = dict(cfg)
    c["jwt"] = None
    c["dpop"] = None
    if cfg["key"]:
        c["jwt"] = Signer(load_key(cfg["key"]), {"alg": "ES256", "kid": cfg["kid"], "typ": "JWT"})
    if cfg["dpop_key"]:
        dk = load_key(cfg["dpop_key"])
        c["dpop"] = Signer(dk, {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(dk)})
    _cfg = c


def _chunk(span):
    """Lines [lo, hi): (bodies, header lines)."""
    lo, hi = span
    c = _cfg
    run = c["run_id"]
    base = "grant_type=client_credentials"
    if c["scope"]:
        base += "&scope=" + c["scope"]
    if c["resource"]:
        base += "&resource=" + c["resource"]
    if not c["jwt"]:
        base += "&client_id=" + c["client_id"]
    bodies, headers = [], []
    iss = json.dumps(c["client_id"])
    aud = json.dumps(c["aud"])
    htu = json.dumps(c["htu"])
    for i in range(lo, hi):
        now = int(time.time())
        if c["jwt"]:
            claims = '{"iss":%s,"sub":%s,"aud":%s,"iat":%d,"exp":%d,"jti":"%s-a%x"}' % (
                iss, iss, aud, now, now + c["exp_seconds"], run, i)
            jws = c["jwt"].sign(b64u(claims.encode()))
            bodies.append("%s&client_assertion_type=%s&client_assertion=%s"
                          % (base, ASSERTION_TYPE, jws))
        else:
            bodies.append(base)
        if c["dpop"]:
            claims = '{"jti":"%s-d%x","htm":"POST","htu":%s,"iat":%d}' % (run, i, htu, now)
            headers.append("%s\\nDPoP: %s" % (CONTENT_TYPE, c["dpop"].sign(b64u(claims.encode()))))
    return bodies, headers


def cmd_gen(a):
    if a.count < 1:
        sys.exit("--count must be positive")
    if a.key and not a.aud:
        sys.exit("--key needs --aud (the issuer)")
    if a.dpop_key and not a.htu:
        sys.exit("--dpop-key needs --htu (the token endpoint URL)")
    kid = a.kid
    if a.key and not kid:
        kid = thumbprint(public_jwk(load_key(a.key)))
    cfg = {
        "key": a.key, "kid": kid, "dpop_key": a.dpop_key, "client_id": a.client_id,
        "scope": a.scope.replace(" ", "+") if a.scope else "", "resource": a.resource or "",
        "aud": a.aud or "", "htu": a.htu or "", "exp_seconds": a.exp_seconds,
        # jti prefix: unique per invocation, so runs never collide
        "run_id": b64u(os.urandom(9)),
    }
    jobs = max(1, min(a.jobs or os.cpu_count() or 1, a.count // 2000 + 1))
    step = max(1000, a.count // (jobs * 8) + 1)
    spans = [(lo, min(lo + step, a.count)) for lo in range(0, a.count, step)]
    t0 = time.monotonic()
    if jobs == 1:
        _init(cfg)
        parts = map(_chunk, spans)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs, _init, (cfg,))
        parts = pool.imap(_chunk, spans)  # in order: line i is the i-th made
    nb = nh = 0
    with open(a.bodies, "w") as fb, open(a.headers, "w") if a.headers else open(os.devnull, "w") as fh:
        for bodies, headers in parts:
            fb.write("\n".join(bodies))
            fb.write("\n")
            nb += len(bodies)
            if headers:
                fh.write("\n".join(headers))
                fh.write("\n")
                nh += len(headers)
        if not a.dpop_key and a.headers:
            fh.write(CONTENT_TYPE + "\n")
            nh = 1
    if pool:
        pool.close()
        pool.join()
    dt = time.monotonic() - t0
    sigs = nb * (1 if a.key else 0) + (nh if a.dpop_key else 0)
    print("gen_requests: %d bodies%s in %.2f s with %d process%s (%d signatures, %.1f us each of wall time)"
          % (nb, ", %d DPoP header lines" % nh if a.dpop_key else "", dt, jobs,
             "" if jobs == 1 else "es", sigs, dt * 1e6 / sigs if sigs else 0.0),
          file=sys.stderr)


def cmd_keygen(a):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(a.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    jwk = public_jwk(key)
    jwk["kid"] = a.kid or thumbprint(jwk)
    jwk["use"] = "sig"
    jwk["alg"] = "ES256"
    if a.jwks:
        with open(a.jwks, "w") as f:
            json.dump({"keys": [jwk]}, f)
            f.write("\n")
    print(jwk["kid"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="make a P-256 key (PEM) and its public JWKS")
    k.add_argument("--key", required=True, help="private key out (PKCS#8 PEM, mode 0600)")
    k.add_argument("--jwks", help='public JWKS out: {"keys":[{...,"kid":..}]}')
    k.add_argument("--kid", help="key id (default: the RFC 7638 thumbprint)")
    k.set_defaults(fn=cmd_keygen)
    g = sub.add_parser("gen", help="generate request bodies (and DPoP header lines)")
    g.add_argument("--count", type=int, required=True, help="requests to make (N)")
    g.add_argument("--client-id", required=True)
    g.add_argument("--scope", default="accounts", help="space-separated (default accounts)")
    g.add_argument("--resource", help="resource parameter, already form-encoded (default none)")
    g.add_argument("--key", help="private_key_jwt: the client's P-256 key (PEM); "
                   "without it the bodies carry client_id (tls_client_auth)")
    g.add_argument("--kid", help="kid of --key (default: its RFC 7638 thumbprint)")
    g.add_argument("--aud", help="assertion audience: the issuer identifier, exactly")
    g.add_argument("--exp-seconds", type=int, default=60, help="assertion lifetime (60)")
    g.add_argument("--dpop-key", help="add a DPoP proof per request, signed with this P-256 key")
    g.add_argument("--htu", help="DPoP htu: the token endpoint URL")
    g.add_argument("--bodies", required=True, help="bodies out, one per line")
    g.add_argument("--headers", help="header blocks out, one per line")
    g.add_argument("--jobs", type=int, default=0, help="processes (default: one per CPU)")
    g.set_defaults(fn=cmd_gen)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
