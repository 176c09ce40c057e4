"""Opaque access tokens through the gateway (RFC 7662): an independent AS
(oidc-provider, opaque_as.py) issues tokens the gateway cannot read, and
the gateway learns what they are from that AS's introspection endpoint,
authenticated with its own client certificate (bob's, client "gateway").

The answer's claims go through the same checks as a JWT's: the binding
against cnf (this connection's certificate, or a fresh DPoP proof whose
ath is the hash of the opaque token), aud, scope. Answers are reused for
introspection.cache; a revocation at the AS reaches the gateway within it;
the AS unreachable means 503, never a pass."""

import socket
import threading
import time

import pytest

import portcullis_helpers as H
from as_helpers import RESOURCE
from gw_helpers import Gateway, challenge, seen
from opaque_as import OpaqueAS, node_or_skip

CACHE_S = 1.0
INTROSPECTION = "/token/introspection"


@pytest.fixture(scope="session")
def node_client():
    return node_or_skip()


@pytest.fixture(scope="module")
def oas(node_client, tmp_path_factory, pki, keys):
    o = OpaqueAS(tmp_path_factory.mktemp("opaque-as"), pki, keys.dpop_client, node=node_client)
    yield o
    o.stop()


def start_gateway_for(make_server, oas, demo, pki, *, introspection=True, routes_auth=None,
                      jwks=True):
    srv = make_server(start=False, name="gateway")
    bob_pem, bob_key = pki.cert("bob")
    remote = {"issuer": oas.issuer, "ca": str(pki.ca)}
    if jwks:
        remote["jwks_url"] = oas.discovery()["jwks_uri"]
    if introspection:
        remote["introspection"] = {"url": oas.endpoint("introspection"), "client_id": "gateway",
                                   "cert": str(bob_pem), "key": str(bob_key),
                                   "cache": f"{int(CACHE_S * 1000)}ms"}
    auth = routes_auth or {}
    srv.config = H.deep_merge(srv.config, {
        "upstreams": {"demo": {"url": f"http://127.0.0.1:{demo.port}"}},
        "gateway": {"external_url": f"https://localhost:{srv.port}", "remote_as": remote},
    })
    srv.config["routes"] = srv.config["routes"] + [
        {"method": "GET", "path": "/accounts/{id}", "upstream": "demo",
         "auth": {"scopes": ["accounts"], "audience": RESOURCE, **auth}},
        {"method": "GET", "path": "/echo/pay", "upstream": "demo",
         "auth": {"scopes": ["accounts", "payments"], "audience": RESOURCE, **auth}},
        {"method": "GET", "path": "/echo/mtls", "upstream": "demo",
         "auth": {"scopes": ["accounts"], "audience": RESOURCE, "binding": "mtls", **auth}},
        {"method": "GET", "path": "/echo/other-aud", "upstream": "demo",
         "auth": {"audience": "https://other.example", **auth}},
    ]
    srv.start()
    return srv


def client_of(g, keys, pki):
    """A gateway client (DPoP proofs for the gateway's external URL)."""
    c = Gateway.__new__(Gateway)
    c.srv, c.keys, c.pki, c.sent_secrets = g, keys, pki, []
    c.base = f"https://localhost:{g.port}"
    return c


@pytest.fixture
def gw(make_server, oas, demo, pki, keys):
    return client_of(start_gateway_for(make_server, oas, demo, pki), keys, pki)


def test_opaque_mtls_token_accepted_over_its_certificate(gw, oas, pki):
    tok = oas.token_mtls()
    assert tok.count(".") != 2
    r = gw.call("/accounts/a1", token=tok, cert="alice")
    assert r.status == 200, f"{r}\n{gw.srv.diagnostics()}\n{oas.diagnostics()}"
    s = seen(r)
    # the identity headers come from the AS's answer
    assert s["x-portcullis-client-id"] == ["opaque-mtls"]
    assert s["x-portcullis-scope"] == ["accounts payments"]
    assert s["x-portcullis-cert-thumbprint"] == [H.x5t_s256_of_pem(pki.cert("alice")[0])]
    assert gw.call("/echo/pay", token=tok, cert="alice").status == 200
    assert gw.call("/echo/mtls", token=tok, cert="alice").status == 200


def test_opaque_mtls_token_refused_elsewhere(gw, oas):
    tok = oas.token_mtls()
    r = gw.call("/accounts/a1", token=tok, cert="bob")
    assert r.status == 401, r
    assert 'error="invalid_token"' in challenge(r, "Bearer")
    assert "another certificate" in challenge(r, "Bearer")
    r = gw.call("/accounts/a1", token=tok, cert=None)
    assert r.status == 401, r
    # presented as DPoP without a proof it is not a DPoP-bound token
    r = gw.call("/accounts/a1", token=tok, cert="alice", scheme="DPoP")
    assert r.status == 401, r
    # aud is https://api.example, not this route's audience
    r = gw.call("/echo/other-aud", token=tok, cert="alice")
    assert r.status == 401, r
    assert "(aud)" in challenge(r, "Bearer")


def test_opaque_dpop_token(gw, oas, keys):
    tok = oas.token_dpop(keys.dpop, keys.dpop_client)
    r = gw.dpop_call("/accounts/d1", tok)
    assert r.status == 200, f"{r}\n{gw.srv.diagnostics()}"
    assert seen(r)["x-portcullis-client-id"] == ["opaque-dpop"]
    # a replayed proof, a proof by another key, a wrong ath, as Bearer
    proof = gw.proof_for("/accounts/d2", tok)
    assert gw.dpop_call("/accounts/d2", tok, proof=proof).status == 200
    r = gw.dpop_call("/accounts/d2", tok, proof=proof)
    assert r.status == 401 and "invalid_dpop_proof" in challenge(r, "DPoP"), r
    r = gw.dpop_call("/accounts/d3", tok, key=keys.dpop2)
    assert r.status == 401 and 'error="invalid_token"' in challenge(r, "DPoP"), r
    bad_ath = gw.proof_for("/accounts/d4", tok, claims={"ath": "A" * 43})
    r = gw.dpop_call("/accounts/d4", tok, proof=bad_ath)
    assert r.status == 401 and "invalid_dpop_proof" in challenge(r, "DPoP"), r
    r = gw.call("/accounts/d5", token=tok, cert="alice")
    assert r.status == 401 and challenge(r, "DPoP"), r
    # its scope is only "accounts"
    r = gw.dpop_call("/echo/pay", tok)
    assert r.status == 403, r
    assert 'error="insufficient_scope"' in challenge(r, "DPoP")
    # a DPoP-bound token on an mTLS-only route
    r = gw.dpop_call("/echo/mtls", tok)
    assert r.status == 401, r


def test_answers_cached_then_asked_again(gw, oas):
    tok = oas.token_mtls()
    before = oas.served(INTROSPECTION)
    for i in range(5):
        assert gw.call(f"/accounts/c{i}", token=tok, cert="alice").status == 200
    # one worker thread per connection: at most one question per worker
    asked = oas.served(INTROSPECTION) - before
    assert 1 <= asked <= 2, asked
    time.sleep(CACHE_S + 0.2)
    assert gw.call("/accounts/c9", token=tok, cert="alice").status == 200
    assert oas.served(INTROSPECTION) - before > asked


def test_unknown_opaque_token_refused(gw, oas):
    r = gw.call("/accounts/u1", token="not-a-token-the-AS-made-0123456789", cert="alice")
    assert r.status == 401, r
    assert "not active" in challenge(r, "Bearer"), r
    # the refusal is cached too: asking again costs no second question
    before = oas.served(INTROSPECTION)
    gw.call("/accounts/u1", token="not-a-token-the-AS-made-0123456789", cert="alice")
    assert oas.served(INTROSPECTION) - before <= 1


def test_revocation_reaches_gateway_within_cache(gw, oas):
    tok = oas.token_mtls()
    assert gw.call("/accounts/r1", token=tok, cert="alice").status == 200
    oas.revoke(tok)
    time.sleep(CACHE_S + 0.2)
    r = gw.call("/accounts/r1", token=tok, cert="alice")
    assert r.status == 401, r
    assert "not active" in challenge(r, "Bearer"), r


def test_expired_opaque_token_refused(make_server, node_client, tmp_path, pki, keys, demo):
    short = OpaqueAS(tmp_path / "short-as", pki, keys.dpop_client, node=node_client, token_ttl=1)
    try:
        g = client_of(start_gateway_for(make_server, short, demo, pki), keys, pki)
        tok = short.token_mtls()
        assert g.call("/accounts/e1", token=tok, cert="alice").status == 200
        time.sleep(2.2)
        # the cached answer ends with the token's exp, and the AS says inactive
        r = g.call("/accounts/e1", token=tok, cert="alice")
        assert r.status == 401, r
    finally:
        short.stop()


def test_as_down_fails_closed(make_server, node_client, tmp_path, pki, keys, demo):
    doomed = OpaqueAS(tmp_path / "doomed-as", pki, keys.dpop_client, node=node_client)
    g = client_of(start_gateway_for(make_server, doomed, demo, pki), keys, pki)
    tok = doomed.token_mtls()
    assert g.call("/accounts/f1", token=tok, cert="alice").status == 200
    doomed.stop()
    time.sleep(CACHE_S + 0.2)
    r = g.call("/accounts/f1", token=tok, cert="alice")
    assert r.status == 503, r
    assert "authorization server" in r.json()["detail"], r.body
    assert r.header("x-fapi-interaction-id")


def test_opaque_token_without_introspection_refused(make_server, oas, demo, pki, keys):
    g = client_of(start_gateway_for(make_server, oas, demo, pki, introspection=False), keys, pki)
    before = oas.served(INTROSPECTION)
    r = g.call("/accounts/n1", token=oas.token_mtls(), cert="alice")
    assert r.status == 401, r
    assert 'error="invalid_token"' in challenge(r, "Bearer")
    assert oas.served(INTROSPECTION) == before


def test_always_route_needs_an_introspection_endpoint(make_server, oas, demo, pki):
    srv = make_server(start=False, name="gateway")
    srv.config = H.deep_merge(srv.config, {
        "upstreams": {"demo": {"url": f"http://127.0.0.1:{demo.port}"}},
        "gateway": {"remote_as": {"issuer": oas.issuer, "jwks_url": oas.discovery()["jwks_uri"],
                                  "ca": str(pki.ca)}},
    })
    srv.config["routes"] = srv.config["routes"] + [
        {"method": "GET", "path": "/x", "upstream": "demo",
         "auth": {"audience": RESOURCE, "introspection": "always"}}]
    srv.write_config()
    r = H.portcullis("serve", "-c", srv.config_path, timeout=20)
    assert r.returncode != 0, r
    assert "auth.introspection: always but gateway.remote_as has no introspection endpoint" \
        in r.stderr, r.stderr
    assert f"{srv.config_path}:" in r.stderr, r.stderr


def test_questions_in_flight_are_bounded(make_server, oas, demo, pki, keys):
    """A flood of made-up opaque tokens is a flood of questions (no answer
    can be reused): past max_in_flight per worker the gateway answers 503
    at once instead of queueing more at a slow AS."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)   # accepts, never answers (not even the TLS handshake)
    try:
        srv = make_server(start=False, name="gateway")
        bob_pem, bob_key = pki.cert("bob")
        port = silent.getsockname()[1]
        srv.config = H.deep_merge(srv.config, {
            "server": {"workers": 1},
            "upstreams": {"demo": {"url": f"http://127.0.0.1:{demo.port}"}},
            "gateway": {"external_url": f"https://localhost:{srv.port}", "remote_as": {
                "issuer": oas.issuer, "jwks_url": oas.discovery()["jwks_uri"], "ca": str(pki.ca),
                "timeout": "3s",
                "introspection": {"url": f"https://localhost:{port}/introspect",
                                  "client_id": "gateway", "cert": str(bob_pem),
                                  "key": str(bob_key), "max_in_flight": 2}}},
        })
        srv.config["routes"] = srv.config["routes"] + [
            {"method": "GET", "path": "/accounts/{id}", "upstream": "demo",
             "auth": {"audience": RESOURCE}}]
        srv.start()
        g = client_of(srv, keys, pki)
        results = {}

        def ask(i):
            results[i] = g.call(f"/accounts/q{i}", token=f"made-up-opaque-token-{i:04d}",
                                cert="alice", timeout=10.0)

        waiting = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in waiting:
            t.start()
        time.sleep(0.5)   # both questions are out, awaiting the silent AS
        t0 = time.monotonic()
        r = g.call("/accounts/q9", token="made-up-opaque-token-9999", cert="alice")
        assert r.status == 503, r
        assert time.monotonic() - t0 < 1.0, "refused at once, not queued"
        assert r.header("Retry-After") == "1", r
        assert "awaiting" in r.json()["detail"], r.body
        srv.wait_log("introspection_busy")
        for t in waiting:
            t.join(15)
        # the two that waited fail closed when the AS's time is up
        assert [results[i].status for i in range(2)] == [503, 503], results
    finally:
        silent.close()


def test_introspection_only_remote_as(make_server, oas, demo, pki, keys):
    """An AS that only issues opaque tokens needs no jwks_url: every token
    is then asked about (and the gateway fetches no keys)."""
    g = client_of(start_gateway_for(make_server, oas, demo, pki, jwks=False), keys, pki)
    before = oas.served("/jwks")
    tok = oas.token_mtls()
    r = g.call("/accounts/j1", token=tok, cert="alice")
    assert r.status == 200, f"{r}\n{g.srv.diagnostics()}"
    assert g.call("/accounts/j1", token=tok, cert="bob").status == 401
    dtok = oas.token_dpop(keys.dpop, keys.dpop_client)
    assert g.dpop_call("/accounts/j2", dtok).status == 200
    # something JWT-shaped is asked about too; oidc-provider refuses to
    # introspect structured tokens (400), which is no answer: 503, closed
    r = g.call("/accounts/j3", token="eyJhbGciOiJFUzI1NiJ9.e30.c2ln", cert="alice")
    assert r.status == 503, r
    assert oas.served("/jwks") == before
