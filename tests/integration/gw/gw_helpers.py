"""Config and clients for the gateway tests."""

import base64
import hashlib
import json

import portcullis_helpers as H
from as_helpers import AS, RESOURCE, as_config, dpop_proof, write_jwks


def closed_port():
    """A loopback port nothing listens on."""
    return H.free_port()


def gateway_clients(workdir, pki, keys):
    return [
        {"client_id": "mtls-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"], "scope": "accounts payments"},
        {"client_id": "bob-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["bob"], "scope": "accounts"},
        {"client_id": "short-client", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_dns": "alice.example", "scope": "accounts",
         "access_token_lifetime": 1},
        {"client_id": "jwt-client", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(workdir / "jwt-es.jwks.json", keys.es), "scope": "accounts"},
        {"client_id": "dpop-client", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": write_jwks(workdir / "dpop-client.jwks.json", keys.dpop_client),
         "dpop_bound_access_tokens": True, "scope": "accounts"},
    ]


def gateway_routes(demo_port):
    auth_any = {"scopes": ["accounts"]}
    return [
        {"method": "GET", "path": "/customers/{tag}", "upstream": "demo", "auth": auth_any},
        {"method": "GET", "path": "/accounts/{id}", "upstream": "demo", "auth": auth_any},
        {"method": "*", "path": "/echo/any", "upstream": "demo", "auth": auth_any},
        {"method": "GET", "path": "/echo/mtls", "upstream": "demo",
         "auth": {"scopes": ["accounts"], "binding": "mtls"}},
        {"method": "GET", "path": "/echo/dpop", "upstream": "demo",
         "auth": {"scopes": ["accounts"], "binding": "dpop"}},
        {"method": "GET", "path": "/echo/pay", "upstream": "demo",
         "auth": {"scopes": ["accounts", "payments"]}},
        {"method": "GET", "path": "/echo/other-aud", "upstream": "demo",
         "auth": {"audience": "https://other.example"}},
        {"method": "*", "path": "/echo/open", "upstream": "demo"},
        {"method": "GET", "path": "/down", "upstream": "down"},
        {"method": "GET", "path": "/slow", "upstream": "slow", "timeout": "1s"},
        {"method": "GET", "path": "/slow-long", "upstream": "slow", "timeout": "20s"},
    ]


def start_gateway(factory, keys, demo, slow, extra=None, routes=None):
    srv = factory(start=False)
    cfg = as_config(srv, keys, clients=gateway_clients(srv.workdir, srv.pki, keys))
    cfg["upstreams"] = {
        "demo": {"url": f"http://127.0.0.1:{demo.port}"},
        "down": {"url": f"http://127.0.0.1:{closed_port()}", "connect_timeout": "1s"},
        "slow": {"url": f"http://127.0.0.1:{slow.port}"},
    }
    cfg["gateway"] = {"external_url": f"https://localhost:{srv.port}"}
    cfg["routes"] = srv.config["routes"] + (routes or gateway_routes(demo.port))
    if extra:
        cfg = H.deep_merge(cfg, extra)
    srv.config = H.deep_merge(srv.config, cfg)
    srv.start()
    return Gateway(srv, keys, demo)


def ath(token):
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


class Gateway(AS):
    def __init__(self, srv, keys, demo):
        super().__init__(srv, keys)
        self.demo = demo
        self.base = f"https://localhost:{srv.port}"

    def mtls_token(self, client_id="mtls-client", cert="alice"):
        return self.access_token(self.token_mtls(client_id, cert=cert))

    def dpop_token(self, dpop_key=None):
        return self.access_token(self.token_dpop(dpop_key=dpop_key))

    def call(self, path, *, token=None, scheme="Bearer", cert=None, headers=(), method="GET",
             body=None, conn=None, timeout=5.0):
        hdrs = []
        if token is not None:
            hdrs.append(("Authorization", f"{scheme} {token}"))
        hdrs += list(headers.items()) if isinstance(headers, dict) else list(headers)
        if conn is not None:
            return conn.request(method, path, headers=hdrs, body=body, timeout=timeout)
        with H.tls_connect(self.port, self.pki, client=cert, host=self.srv.host) as c:
            return c.request(method, path, headers=hdrs, body=body, timeout=timeout)

    def proof_for(self, path, token, key=None, method="GET", **kw):
        claims = dict(kw.pop("claims", None) or {})
        claims.setdefault("ath", ath(token))
        p = dpop_proof(key or self.keys.dpop, self.base + path.split("?")[0], htm=method,
                       claims=claims, **kw)
        self.sent_secrets.append(p)
        return p

    def dpop_call(self, path, token, *, proof=None, key=None, method="GET", headers=(), **kw):
        proof = proof if proof is not None else self.proof_for(path, token, key=key, method=method)
        hdrs = [("DPoP", proof)] + list(headers)
        return self.call(path, token=token, scheme="DPoP", headers=hdrs, method=method, **kw)


def seen(resp):
    return json.loads(resp.body)["seen_by_upstream"]


def challenge(resp, scheme):
    """The WWW-Authenticate challenge for scheme (case-insensitive), or None."""
    for v in resp.headers_named("WWW-Authenticate"):
        if v.split(" ", 1)[0].lower() == scheme.lower():
            return v
    return None


__all__ = ["RESOURCE", "start_gateway", "Gateway", "seen", "challenge", "ath"]
