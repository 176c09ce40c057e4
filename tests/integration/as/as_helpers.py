"""Small clients and checks for the black-box tests of the authorization
server (the `as:` section of `portcullis serve`).

Everything talks to the real binary over loopback TLS. JWTs (client
assertions, DPoP proofs, forged tokens) are built by hand here with
python3-cryptography so that every header and claim can be bent; the
server's access tokens are checked with python3-jwcrypto, an independent
JOSE implementation.
"""

import base64
import json
import os
import time
import urllib.parse
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from jwcrypto import jwk as jwc_jwk
from jwcrypto import jws as jwc_jws

import portcullis_helpers as H

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = "application/x-www-form-urlencoded"
RESOURCE = "https://api.example"
OTHER_RESOURCE = "https://other.example"
NODE_DIR = Path(__file__).resolve().parents[1] / "node"


# --------------------------------------------------------------------------
# base64url, JWS by hand
# --------------------------------------------------------------------------

def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def decode_jwt(token):
    """(header, payload) of a compact JWS, without verifying anything."""
    h, p, _ = token.split(".")
    return json.loads(b64u_decode(h)), json.loads(b64u_decode(p))


def new_jti():
    return b64u(os.urandom(18))


def _int_b64(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


class Key:
    """A client signing key: ES256 (P-256), PS256 (RSA 2048) or EdDSA (Ed25519)."""

    def __init__(self, alg="ES256", kid=None, private=None):
        self.alg = alg
        self.kid = kid or f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        if private is not None:
            self.private = private
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        elif alg in ("PS256", "RS256"):
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "EdDSA":
            self.private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(alg)
        self.public = self.private.public_key()

    @classmethod
    def from_public(cls, public, kid):
        """A Key wrapper that only has a public key (a certificate's)."""
        k = cls.__new__(cls)
        k.private = None
        k.public = public
        k.kid = kid
        k.alg = ("ES256" if isinstance(public, ec.EllipticCurvePublicKey) else
                 "EdDSA" if isinstance(public, ed25519.Ed25519PublicKey) else "PS256")
        return k

    # -- JWK
    def public_jwk(self, kid=True, meta=True):
        pub = self.public
        if isinstance(pub, ec.EllipticCurvePublicKey):
            nums = pub.public_numbers()
            j = {"kty": "EC", "crv": "P-256", "x": _int_b64(nums.x, 32), "y": _int_b64(nums.y, 32)}
        elif isinstance(pub, rsa.RSAPublicKey):
            nums = pub.public_numbers()
            j = {"kty": "RSA", "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
        else:
            raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            j = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
        if kid:
            j["kid"] = self.kid
        if meta:
            j["use"] = "sig"
            j["alg"] = self.alg
        return j

    def private_jwk(self):
        j = self.public_jwk()
        priv = self.private
        if isinstance(priv, ec.EllipticCurvePrivateKey):
            j["d"] = _int_b64(priv.private_numbers().private_value, 32)
        elif isinstance(priv, ed25519.Ed25519PrivateKey):
            j["d"] = b64u(priv.private_bytes(serialization.Encoding.Raw,
                                             serialization.PrivateFormat.Raw,
                                             serialization.NoEncryption()))
        else:
            n = priv.private_numbers()
            j.update(d=_int_b64(n.d), p=_int_b64(n.p), q=_int_b64(n.q), dp=_int_b64(n.dmp1),
                     dq=_int_b64(n.dmq1), qi=_int_b64(n.iqmp))
        return j

    def thumbprint(self):
        """RFC 7638 SHA-256 thumbprint, computed by jwcrypto."""
        return jwc_jwk.JWK(**self.public_jwk(kid=False, meta=False)).thumbprint()

    def public_pem(self):
        return self.public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)

    # -- signing
    def sign(self, data, alg=None):
        alg = alg or self.alg
        priv = self.private
        if alg == "ES256":
            r, s = decode_dss_signature(priv.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if alg == "PS256":
            return priv.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                             hashes.SHA256())
        if alg == "RS256":
            return priv.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if alg == "EdDSA":
            return priv.sign(data)
        raise ValueError(alg)


def make_jws(header, payload, key=None, alg=None, hmac_key=None, signature=None):
    """Compact JWS. `key` signs with its own alg (or `alg`); `hmac_key` makes
    an HS256 MAC; `signature` (bytes) is used as is; no key at all gives an
    empty signature (alg none)."""
    si = (b64u_json(header) + "." + b64u_json(payload)).encode()
    if signature is not None:
        sig = signature
    elif hmac_key is not None:
        m = hmac.HMAC(hmac_key, hashes.SHA256())
        m.update(si)
        sig = m.finalize()
    elif key is not None:
        sig = key.sign(si, alg or header.get("alg"))
    else:
        sig = b""
    return si.decode() + "." + b64u(sig)


def client_assertion(client_id, key, aud, *, now=None, header=None, claims=None, alg=None,
                     lifetime=50):
    """A private_key_jwt assertion (RFC 7523 §3). `claims` overrides; a value
    of None removes the claim. `header` likewise."""
    now = int(time.time()) if now is None else now
    h = {"alg": alg or key.alg, "kid": key.kid, "typ": "JWT"}
    c = {"iss": client_id, "sub": client_id, "aud": aud, "jti": new_jti(),
         "iat": now, "exp": now + lifetime}
    for src, dst in ((header or {}, h), (claims or {}, c)):
        for k, v in src.items():
            if v is None:
                dst.pop(k, None)
            else:
                dst[k] = v
    return make_jws(h, c, key=key, alg=h.get("alg"))


def dpop_proof(key, htu, htm="POST", *, iat=None, jti=None, header=None, claims=None,
               signer=None):
    """An RFC 9449 DPoP proof by `key` (its public JWK in the header)."""
    h = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk(kid=False, meta=False)}
    c = {"jti": jti or new_jti(), "htm": htm, "htu": htu,
         "iat": int(time.time()) if iat is None else iat}
    for src, dst in ((header or {}, h), (claims or {}, c)):
        for k, v in src.items():
            if v is None:
                dst.pop(k, None)
            else:
                dst[k] = v
    signer = signer or key
    if h.get("alg") == "none":
        return make_jws(h, c)
    return make_jws(h, c, key=signer, alg=h.get("alg"))


# --------------------------------------------------------------------------
# keys and certificates for the whole session
# --------------------------------------------------------------------------

class Keys:
    pass


def cert_public_key(pem_path):
    cert = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    return cert.public_key()


# --------------------------------------------------------------------------
# AS configuration
# --------------------------------------------------------------------------

def write_jwks(path, *keys_):
    Path(path).write_text(json.dumps({"keys": [k.public_jwk() for k in keys_]}))
    return str(path)


def standard_clients(workdir, pki, keys):
    """The clients most tests use. Each private_key_jwt client has one key."""
    wd = Path(workdir)
    return [
        {"client_id": "mtls-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"], "scope": "accounts payments"},
        {"client_id": "bob-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["bob"], "scope": "accounts"},
        {"client_id": "short-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_dns": "alice.example", "scope": "accounts",
         "access_token_lifetime": 1},
        {"client_id": "jwt-client", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(wd / "jwt-es.jwks.json", keys.es), "scope": "accounts"},
        {"client_id": "jwt-ps", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(wd / "jwt-ps.jwks.json", keys.ps), "scope": "accounts payments"},
        {"client_id": "jwt-ed", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(wd / "jwt-ed.jwks.json", keys.ed), "scope": "accounts"},
        {"client_id": "ss-client", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks_file": write_jwks(wd / "ss.jwks.json", keys.selfie), "scope": "accounts"},
        {"client_id": "dpop-client", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(wd / "dpop-client.jwks.json", keys.dpop_client),
         "dpop_bound_access_tokens": True, "scope": "accounts"},
        {"client_id": "node-client", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(wd / "node-client.jwks.json", keys.node),
         "dpop_bound_access_tokens": True, "scope": "accounts payments"},
    ]


def as_config(srv, keys, *, client_cert="optional_no_ca", failures=1000000, clients=None,
              extra=None):
    """The `server`/`as` additions for srv (a not yet started H.Server)."""
    wd = srv.workdir
    kek = wd / "kek"
    if not kek.exists():
        fd = os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (os.urandom(32).hex() + "\n").encode())
        os.close(fd)
    cfg = {
        "server": {"state_dir": str(wd / "state"), "tls": {"client_cert": client_cert}},
        "as": {
            "issuer": f"https://localhost:{srv.port}",
            "kek_file": str(kek),
            "scopes": ["accounts", "payments", "admin"],
            "resources": [RESOURCE, OTHER_RESOURCE],
            "auth_failures_per_minute": failures,
            "auth_failures_per_minute_per_ip": failures,
            "clients": clients if clients is not None else standard_clients(wd, srv.pki, keys),
        },
    }
    if extra:
        cfg = H.deep_merge(cfg, extra)
    return cfg


class AS:
    """A started AS and a small client for it. Every request is one fresh
    TLS connection (so the client certificate is exactly the one given)."""

    def __init__(self, srv, keys):
        self.srv = srv
        self.keys = keys
        self.pki = srv.pki
        self.issuer = srv.config["as"]["issuer"]
        self.token_url = self.issuer + "/token"
        self.sent_secrets = []       # tokens, assertions, proofs we sent or got

    @property
    def port(self):
        return self.srv.port

    def post(self, path, form=None, *, client=None, headers=(), content_type=FORM, body=None,
             source=None, ctx=None):
        if body is None:
            if isinstance(form, (str, bytes)):
                body = form
            else:
                items = form.items() if isinstance(form, dict) else (form or [])
                body = urllib.parse.urlencode(list(items))
        hdrs = []
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        hdrs += list(headers.items()) if isinstance(headers, dict) else list(headers)
        with H.tls_connect(self.port, self.pki, client=client, ctx=ctx, host=self.srv.host,
                           source=source) as c:
            return c.request("POST", path, headers=hdrs, body=body)

    def get(self, path):
        return self.srv.get(path)

    def jwks(self):
        r = self.get("/jwks")
        assert r.status == 200, r
        return r.json()

    # -- client authentication forms
    def jwt_form(self, client_id, key, *, aud=None, **kw):
        a = client_assertion(client_id, key, self.issuer if aud is None else aud, **kw)
        self.sent_secrets.append(a)
        return [("client_assertion_type", JWT_BEARER), ("client_assertion", a)]

    def proof(self, key=None, htu=None, **kw):
        p = dpop_proof(key or self.keys.dpop, self.token_url if htu is None else htu, **kw)
        self.sent_secrets.append(p)
        return p

    # -- token requests
    def token_mtls(self, client_id="mtls-client", cert="alice", extra=(), headers=()):
        form = [("grant_type", "client_credentials"), ("client_id", client_id), *extra]
        return self.post("/token", form, client=cert, headers=headers)

    def token_jwt(self, client_id="jwt-client", key=None, cert="alice", extra=(), dpop=None,
                  headers=(), **kw):
        key = key or self.keys.es
        form = [("grant_type", "client_credentials"), *self.jwt_form(client_id, key, **kw),
                *extra]
        hdrs = list(headers)
        if dpop is not None:
            hdrs.append(("DPoP", dpop))
        return self.post("/token", form, client=cert, headers=hdrs)

    def token_dpop(self, client_id="dpop-client", key=None, dpop_key=None, extra=(), **kw):
        """private_key_jwt + DPoP, no client certificate."""
        key = key or self.keys.dpop_client
        return self.token_jwt(client_id, key=key, cert=None, extra=extra,
                              dpop=self.proof(dpop_key), **kw)

    def access_token(self, resp):
        assert resp.status == 200, resp
        tok = resp.json()["access_token"]
        self.sent_secrets.append(tok)
        return tok

    # -- checking what we got
    def verify_token(self, token, jwks=None):
        """Verify the signature with the /jwks key named by kid (jwcrypto);
        return (header, claims)."""
        header, _ = decode_jwt(token)
        jwks = jwks or self.jwks()
        match = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
        assert len(match) == 1, f"kid {header.get('kid')!r} not (uniquely) in /jwks: {jwks}"
        key = jwc_jwk.JWK(**match[0])
        obj = jwc_jws.JWS()
        obj.deserialize(token)
        obj.verify(key, alg=header["alg"])
        return header, json.loads(obj.payload)


def check_token_response(a, resp, *, client_id, scope, aud=RESOURCE, x5t=None, jkt=None,
                         lifetime=300):
    """The full happy-path check of a token response; returns the claims."""
    assert resp.status == 200, resp
    assert resp.header("cache-control") == "no-store", resp
    assert resp.header("content-type", "").startswith("application/json"), resp
    body = resp.json()
    token = a.access_token(resp)
    assert body["token_type"] == ("DPoP" if jkt else "Bearer"), body
    assert body["expires_in"] == lifetime, body
    assert body["scope"] == scope, body
    header, claims = a.verify_token(token)
    assert header["typ"] == "at+jwt", header
    assert header["alg"] in ("ES256", "PS256", "EdDSA"), header
    assert claims["iss"] == a.issuer, claims
    assert claims["sub"] == client_id and claims["client_id"] == client_id, claims
    assert claims["aud"] == aud, claims
    assert claims["scope"] == scope, claims
    now = time.time()
    assert isinstance(claims["iat"], int) and abs(claims["iat"] - now) < 30, claims
    assert claims["exp"] - claims["iat"] == lifetime, claims
    jti = claims["jti"]
    assert isinstance(jti, str) and len(jti) >= 22, claims
    assert len(b64u_decode(jti)) >= 16, claims         # >= 128 bits
    if x5t is not None:
        assert claims["cnf"] == {"x5t#S256": x5t}, claims
    if jkt is not None:
        assert claims["cnf"] == {"jkt": jkt}, claims
    return claims


def error_of(resp, status, error):
    """Assert an RFC 6749 §5.2 error response; return its description."""
    assert resp.status == status, resp
    body = resp.json()
    assert body.get("error") == error, resp
    assert resp.header("cache-control") == "no-store", resp
    assert resp.header("content-type", "").startswith("application/json"), resp
    return body.get("error_description", "")


def start_as(factory, keys, **kw):
    srv = factory(start=False)
    srv.config = H.deep_merge(srv.config, as_config(srv, keys, **kw))
    srv.start()
    return AS(srv, keys)


def has_subcommand(*words):
    """True if `portcullis WORDS --help` exists (exit 0, no 'unknown command')."""
    p = H.portcullis(*words, "--help")
    return p.returncode == 0 and "unknown command" not in (p.stdout + p.stderr)


def reload_and_wait(srv, timeout=5.0):
    before = len(srv.events("reloaded"))
    srv.hup()
    assert H.wait_until(lambda: len(srv.events("reloaded")) > before, timeout=timeout), \
        f"no new reloaded log line\n{srv.diagnostics()}"


# --------------------------------------------------------------------------
# node (oauth4webapi)
# --------------------------------------------------------------------------

NODE_PACKAGES = ("oauth4webapi", "oidc-provider")


def node_or_skip():
    """The node binary, with tests/integration/node's packages installed
    (npm install if one is missing). Skips only if node/npm are absent or
    the registry cannot be reached. Shared by the AS tests' node_client
    fixture and the gateway's opaque-token AS (gw/opaque_as.py)."""
    import shutil
    import subprocess

    import pytest

    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not installed (apt-get install nodejs npm)")
    if not all((NODE_DIR / "node_modules" / n / "package.json").exists() for n in NODE_PACKAGES):
        p = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
        if p.returncode != 0:
            out = p.stdout[-3000:]
            if any(s in out for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT",
                                      "ENETUNREACH", "network")):
                pytest.skip(f"npm cannot reach the registry:\n{out}")
            raise AssertionError(f"npm install failed:\n{out}")
    return node
