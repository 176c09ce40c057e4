"""An independent authorization server that issues OPAQUE access tokens:
oidc-provider (tests/integration/node/opaque_as.mjs) in a node process.

The gateway cannot verify an opaque token by itself; it has to ask the AS
(RFC 7662 introspection). Testing that against portcullis' own AS would let
the two halves agree on a private dialect, so the peer here is a different,
widely used implementation.

    oas = OpaqueAS(workdir, pki, keys.dpop_client)   # started, "ready"
    tok = oas.token_mtls()                            # alice's cert, opaque-mtls
    oas.introspect(tok)                               # as "gateway" with bob's cert
    oas.stop()

Clients registered (the python side decides; opaque_as.mjs passes them on):
  opaque-mtls  tls_client_auth (alice's DN), certificate-bound tokens,
               scope "accounts payments"
  opaque-dpop  private_key_jwt (ES256, the given key), DPoP-bound tokens,
               scope "accounts"
  gateway      tls_client_auth (bob's DN): the resource server that calls
               the introspection endpoint; may introspect any token

Every request is one fresh TLS connection to 127.0.0.1 made with the
project's own client (portcullis_helpers.tls_connect), verifying the AS's
certificate with the session CA, so the client certificate is exactly the
one given.
"""

import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import portcullis_helpers as H
from as_helpers import (FORM, JWT_BEARER, NODE_DIR, RESOURCE, client_assertion, dpop_proof,
                        node_or_skip)  # noqa: F401 (node_or_skip: re-exported for the gw tests)

SCRIPT = NODE_DIR / "opaque_as.mjs"
DISCOVERY = "/.well-known/openid-configuration"


def opaque_clients(pki, dpop_client_key):
    """The three standard clients (see the module docstring)."""
    common = {"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": []}
    return [
        {**common, "client_id": "opaque-mtls",
         "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"],
         "tls_client_certificate_bound_access_tokens": True,
         "scope": "accounts payments"},
        {**common, "client_id": "opaque-dpop",
         "token_endpoint_auth_method": "private_key_jwt",
         "token_endpoint_auth_signing_alg": "ES256",
         "jwks": {"keys": [dpop_client_key.public_jwk()]},
         "dpop_bound_access_tokens": True,
         "scope": "accounts"},
        {"client_id": "gateway", "grant_types": [], "response_types": [], "redirect_uris": [],
         "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["bob"]},
    ]


class OpaqueAS:
    """oidc-provider in its own node process, started by the constructor."""

    def __init__(self, workdir, pki, dpop_client_key, *, node=None, resource=RESOURCE,
                 scope="accounts payments", token_ttl=300, clients=None, extra_clients=(),
                 introspectors=("gateway",), fapi=True, timeout=20.0):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki = pki
        self.node = node or shutil.which("node")
        self.port = H.free_port()
        self.host = "127.0.0.1"
        self.issuer = f"https://localhost:{self.port}"
        self.resource = resource
        self.clients = list(clients if clients is not None
                            else opaque_clients(pki, dpop_client_key)) + list(extra_clients)
        self.config = {
            "port": self.port, "host": self.host, "issuer": self.issuer,
            "cert": str(pki.server_cert), "key": str(pki.server_key), "ca": str(pki.ca),
            "resource": resource, "scope": scope, "token_ttl": token_ttl,
            "introspectors": list(introspectors), "fapi": fapi, "clients": self.clients,
        }
        self.config_path = self.workdir / "opaque-as.json"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.proc = None
        self._discovery = None
        self.start(timeout)

    # -- process
    def start(self, timeout=20.0):
        """Start node and wait for its "ready" line. Output goes to files in
        workdir, so a chatty process never blocks on a full pipe."""
        self.stdout_path = self.workdir / "opaque-as.stdout"
        self.stderr_path = self.workdir / "opaque-as.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([self.node, str(SCRIPT), str(self.config_path)],
                                     cwd=NODE_DIR, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f"ready {self.port}" in self.stdout_path.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"opaque_as.mjs did not become ready:\n{self.diagnostics()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """Stop our own process only: SIGTERM, then SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        for f in (self._out, self._err):
            f.close()
        return self.proc.returncode

    def served(self, path):
        """How many requests to path the AS has answered (its stdout)."""
        text = self.stdout_path.read_text(errors="replace") if self.proc else ""
        return sum(1 for l in text.splitlines() if l.startswith("served ") and
                   l.split(" ")[2:3] == [path])

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace") if self.proc else ""

    def diagnostics(self):
        out = self.stdout_path.read_text(errors="replace") if self.proc else ""
        rc = self.proc.poll() if self.proc else None
        return (f"opaque AS {self.issuer} rc={rc}\n--- stdout\n{out}\n"
                f"--- stderr\n{self.stderr_text()}")

    # -- HTTP
    def request(self, method, url_or_path, *, form=None, cert=None, headers=()):
        """One request on a fresh TLS connection (client certificate `cert`:
        a pki name, a (pem, key) pair, or None). The Host header is the
        issuer's, so oidc-provider builds the same endpoint URLs the
        discovery document shows."""
        path = url_or_path
        if "://" in url_or_path:
            u = urllib.parse.urlsplit(url_or_path)
            assert f"{u.scheme}://{u.netloc}" == self.issuer, (url_or_path, self.issuer)
            path = u.path + (f"?{u.query}" if u.query else "")
        hdrs = list(headers)
        body = None
        if form is not None:
            body = urllib.parse.urlencode(list(form.items() if isinstance(form, dict) else form))
            hdrs.append(("Content-Type", FORM))
        with H.tls_connect(self.port, self.pki, client=cert, host=self.host) as c:
            return c.request(method, path, headers=hdrs, body=body,
                             host=urllib.parse.urlsplit(self.issuer).netloc)

    def discovery(self):
        if self._discovery is None:
            r = self.request("GET", DISCOVERY)
            assert r.status == 200, f"{r}\n{self.diagnostics()}"
            self._discovery = r.json()
            assert self._discovery["issuer"] == self.issuer, self._discovery
        return self._discovery

    def endpoint(self, name):
        """An endpoint URL from the discovery document, e.g.
        endpoint("introspection") -> https://localhost:PORT/token/introspection."""
        return self.discovery()[f"{name}_endpoint"]

    @property
    def token_endpoint(self):
        return self.endpoint("token")

    # -- client authentication
    def client_auth(self, client_id, *, cert=None, client_key=None):
        """(form fields, cert) for tls_client_auth (client_key None) or
        private_key_jwt (aud = the issuer, as FAPI 2.0 wants)."""
        if client_key is None:
            return [("client_id", client_id)], cert
        a = client_assertion(client_id, client_key, self.issuer)
        return [("client_assertion_type", JWT_BEARER), ("client_assertion", a)], cert

    # -- tokens
    def token_response(self, client_id, *, cert=None, client_key=None, dpop_key=None,
                       scope=None, extra=()):
        """The raw token response (H.Response) of a client_credentials
        request. scope None asks for the client's registered scope (oidc-
        provider grants no scope at all when none is asked for); "" sends none."""
        if scope is None:
            scope = next((c.get("scope", "") for c in self.clients
                          if c["client_id"] == client_id), "")
        auth, cert = self.client_auth(client_id, cert=cert, client_key=client_key)
        form = [("grant_type", "client_credentials"), *auth]
        if scope:
            form.append(("scope", scope))
        form += list(extra)
        headers = []
        if dpop_key is not None:
            headers.append(("DPoP", dpop_proof(dpop_key, self.token_endpoint, htm="POST")))
        return self.request("POST", self.token_endpoint, form=form, cert=cert, headers=headers)

    def _access_token(self, r, token_type):
        assert r.status == 200, f"{r}\n{self.diagnostics()}"
        body = r.json()
        assert body["token_type"] == token_type, body
        return body["access_token"]

    def token_mtls(self, cert="alice", scope=None, client_id="opaque-mtls"):
        """An opaque access token bound to `cert` (tls_client_auth)."""
        return self._access_token(self.token_response(client_id, cert=cert, scope=scope),
                                  "Bearer")

    def token_dpop(self, dpop_key, client_key, scope=None, client_id="opaque-dpop"):
        """An opaque access token bound to dpop_key (private_key_jwt signed
        by client_key, no client certificate)."""
        r = self.token_response(client_id, client_key=client_key, dpop_key=dpop_key, scope=scope)
        return self._access_token(r, "DPoP")

    # -- introspection, revocation
    def introspect_response(self, token, *, cert="bob", client_id="gateway", client_key=None,
                            token_type_hint=None):
        auth, cert = self.client_auth(client_id, cert=cert, client_key=client_key)
        form = [("token", token), *auth]
        if token_type_hint:
            form.append(("token_type_hint", token_type_hint))
        return self.request("POST", self.endpoint("introspection"), form=form, cert=cert,
                            headers=[("Accept", "application/json")])

    def introspect(self, token, cert="bob", client_id="gateway", client_key=None):
        """The RFC 7662 introspection JSON, asked by the gateway client."""
        r = self.introspect_response(token, cert=cert, client_id=client_id,
                                     client_key=client_key)
        assert r.status == 200, f"{r}\n{self.diagnostics()}"
        return r.json()

    def revoke(self, token, *, client_id="opaque-mtls", cert=None, client_key=None):
        """Revoke (RFC 7009) as the owning client: private_key_jwt with
        client_key, else tls_client_auth with `cert` (alice's by default)."""
        if client_key is None and cert is None:
            cert = "alice"
        auth, cert = self.client_auth(client_id, cert=cert, client_key=client_key)
        form = [("token", token), ("token_type_hint", "access_token"), *auth]
        r = self.request("POST", self.endpoint("revocation"), form=form, cert=cert)
        assert r.status == 200, f"{r}\n{self.diagnostics()}"
        return r


def start_opaque_as(workdir, pki, dpop_client_key, **kw):
    """OpaqueAS(...) with node (and its packages) made available or the test
    skipped: for fixtures."""
    return OpaqueAS(workdir, pki, dpop_client_key, node=node_or_skip(), **kw)
