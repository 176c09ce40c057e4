#!/usr/bin/python3
"""DPoP proofs for resource requests, one header line per request (bench/gw/run.sh).

A DPoP proof's jti may be used once (RFC 9449 §11.1; the gateway records
(jkt, jti) and refuses a replay), so every request of a run needs its own
proof, made in advance so that the load generator only copies bytes. Each
line written is one request's header block for bench/loadgen
(--headers-file, with --no-wrap for single use):

    Authorization: DPoP <token>\\nDPoP: <proof>

with the proof's claims htm (the method), htu (the gateway's external URL
plus the path), iat (when the line was made), a unique jti and
ath = base64url(SHA-256(token)) (RFC 9449 §4.2). Generate right before the
run: the gateway accepts a proof whose iat is at most
gateway.dpop.proof_lifetime (60 s) old.

Signing is python3-cryptography's ECDSA (ES256: P-256, SHA-256, r||s),
about 30 us per proof on one core; --jobs processes share the work.

  gen_proofs.py --dpop-key dpop.pem --token-file token.txt \\
      --htu https://localhost:8443/dpop/ok --count N --out headers.txt
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


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_cfg = None


def _init(cfg):
    global _cfg
    with open(cfg["key"], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        sys.exit("%s: not a P-256 private key" % cfg["key"])
    n = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
           "y": b64u(n.y.to_bytes(32, "big"))}
    head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
    c = dict(cfg)
    c["sk"] = key
    c["algo"] = ec.ECDSA(hashes.SHA256())
    c["head"] = b64u(json.dumps(head, separators=(",", ":")).encode()) + "."
    _cfg = c


def _chunk(span):
    lo, hi = span
    c = _cfg
    out = []
    prefix = "Authorization: DPoP %s\\nDPoP: " % c["token"]
    htu = json.dumps(c["htu"])
    htm = json.dumps(c["htm"])
    for i in range(lo, hi):
        claims = '{"jti":"%s-%x","htm":%s,"htu":%s,"iat":%d,"ath":"%s"}' % (
            c["run_id"], i, htm, htu, int(time.time()), c["ath"])
        signing_input = c["head"] + b64u(claims.encode())
        r, s = decode_dss_signature(c["sk"].sign(signing_input.encode("ascii"), c["algo"]))
        out.append(prefix + signing_input + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dpop-key", required=True, help="the P-256 key the token is bound to (PEM)")
    p.add_argument("--token-file", required=True, help="the DPoP-bound access token")
    p.add_argument("--htu", required=True, help="external URL + path, e.g. https://localhost:8443/dpop/ok")
    p.add_argument("--htm", default="GET")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True, help="header lines out, one per request")
    p.add_argument("--jobs", type=int, default=0, help="processes (default: one per CPU)")
    a = p.parse_args()
    if a.count < 1:
        sys.exit("--count must be positive")
    token = open(a.token_file).read().strip()
    if not token or any(ch.isspace() for ch in token):
        sys.exit("%s: no token, or white space in it" % a.token_file)
    cfg = {"key": a.dpop_key, "token": token, "htu": a.htu, "htm": a.htm,
           "ath": b64u(hashlib.sha256(token.encode("ascii")).digest()),
           "run_id": b64u(os.urandom(9))}  # jti prefix: unique per invocation
    jobs = max(1, min(a.jobs or os.cpu_count() or 1, a.count // 2000 + 1))
    step = max(1000, a.count // (jobs * 8) + 1)
    spans = [(lo, min(lo + step, a.count)) for lo in range(0, a.count, step)]
    t0 = time.monotonic()
    if jobs == 1:
        _init(cfg)
        parts, pool = map(_chunk, spans), None
    else:
        pool = multiprocessing.get_context("fork").Pool(jobs, _init, (cfg,))
        parts = pool.imap(_chunk, spans)  # in order: line i is the i-th made
    n = 0
    with open(a.out, "w") as f:
        for lines in parts:
            f.write("\n".join(lines))
            f.write("\n")
            n += len(lines)
    if pool:
        pool.close()
        pool.join()
    dt = time.monotonic() - t0
    print("gen_proofs: %d DPoP proofs in %.2f s with %d process%s (%.1f us each of wall time)"
          % (n, dt, jobs, "" if jobs == 1 else "es", dt * 1e6 / n), file=sys.stderr)


if __name__ == "__main__":
    main()
