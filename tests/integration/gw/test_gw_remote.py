"""A gateway in front of an AS in another process (gateway.remote_as): the
AS's JWKS is fetched over verified https, refetched on an unknown kid at
most once per min_refetch."""

import json
import time

import pytest

import portcullis_helpers as H
from as_helpers import RESOURCE, b64u, b64u_json, decode_jwt, reload_and_wait, start_as
from gw_helpers import Gateway, challenge, closed_port, gateway_clients, seen

MIN_REFETCH = 2.0


def start_remote_gateway(make_server, asrv, demo, **gw_extra):
    srv = make_server(start=False, name="gateway")
    remote = {"issuer": asrv.issuer, "jwks_url": asrv.issuer + "/jwks", "ca": str(asrv.pki.ca),
              "min_refetch": f"{int(MIN_REFETCH * 1000)}ms"}
    remote.update(gw_extra)
    auth = {"scopes": ["accounts"], "audience": RESOURCE}
    srv.config = H.deep_merge(srv.config, {
        "upstreams": {"demo": {"url": f"http://127.0.0.1:{demo.port}"}},
        "gateway": {"external_url": f"https://localhost:{srv.port}", "remote_as": remote},
    })
    srv.config["routes"] = srv.config["routes"] + [
        {"method": "GET", "path": "/accounts/{id}", "upstream": "demo", "auth": auth},
    ]
    if "introspection" in remote:
        srv.config["routes"].append({"method": "GET", "path": "/echo/always", "upstream": "demo",
                                     "auth": {**auth, "introspection": "always"}})
    srv.start()
    return srv


def start_plain_as(make_server, keys):
    srv = make_server(start=False, name="as")
    return start_as(lambda start=False: srv, keys,
                    clients=gateway_clients(srv.workdir, srv.pki, keys))


@pytest.fixture
def pair(make_server, keys, demo, pki):
    a = start_plain_as(make_server, keys)
    g = start_remote_gateway(make_server, a, demo)
    return a, g


def call(g, pki, path, token, cert="alice", scheme="Bearer", headers=()):
    with H.tls_connect(g.port, pki, client=cert) as c:
        return c.request("GET", path, headers=[("Authorization", f"{scheme} {token}"), *headers])


def wait_ok(g, pki, token, timeout=5.0):
    last = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = call(g, pki, "/accounts/a", token)
        if last.status == 200:
            return last
        time.sleep(0.1)
    raise AssertionError(f"gateway never accepted the token: {last!r}\n{g.diagnostics()}")


def jwks_fetches(asrv):
    time.sleep(1.3)   # the access log is flushed once a second
    return len([e for e in asrv.srv.events("access") if e.get("path") == "/jwks"])


def test_remote_token_accepted_and_bound(pair, pki):
    a, g = pair
    tok = a.access_token(a.token_mtls())
    r = wait_ok(g, pki, tok)
    assert seen(r)["x-portcullis-client-id"] == ["mtls-client"]
    assert call(g, pki, "/accounts/a", tok, cert="bob").status == 401
    assert call(g, pki, "/accounts/a", tok, cert=None).status == 401
    h, p, s = tok.split(".")
    bad = h + "." + p + "." + ("A" if s[0] != "A" else "B") + s[1:]
    assert call(g, pki, "/accounts/a", bad).status == 401


def test_wrong_issuer_refused(make_server, keys, demo, pki):
    a = start_plain_as(make_server, keys)
    g = start_remote_gateway(make_server, a, demo, issuer="https://someone-else.example")
    tok = a.access_token(a.token_mtls())
    time.sleep(1.0)
    r = call(g, pki, "/accounts/a", tok)
    assert r.status == 401, r


def test_unknown_kid_flood_bounded_fetches(pair, pki, keys):
    a, g = pair
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    before = jwks_fetches(a)
    header, claims = decode_jwt(tok)
    _, p, s = tok.split(".")
    for i in range(60):
        forged = b64u_json({**header, "kid": f"nope-{i}"}) + "." + p + "." + s
        r = call(g, pki, "/accounts/a", forged)
        assert r.status == 401, r
    after = jwks_fetches(a)
    print(f"jwks fetches before flood {before}, after {after}")
    # one refetch per min_refetch interval at most (the flood lasts a few seconds)
    assert after - before <= 3, (before, after)
    assert call(g, pki, "/accounts/a", tok).status == 200


def rotate_at_as(a):
    """Rotate the AS's signing key twice, then reload it so that new tokens
    carry a kid the gateway has not fetched yet."""
    for _ in range(2):
        H.portcullis("keys", "rotate", "-c", a.srv.config_path, check=True)
    reload_and_wait(a.srv)


def test_key_rotation_picked_up(pair, pki):
    a, g = pair
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    rotate_at_as(a)
    new = a.access_token(a.token_mtls())
    assert decode_jwt(new)[0]["kid"] != decode_jwt(tok)[0]["kid"]
    time.sleep(MIN_REFETCH)
    # the first sight of the new kid triggers a refetch; soon it is accepted
    wait_ok(g, pki, new, timeout=5.0)


def test_new_kid_waits_for_the_fetch(pair, pki):
    """After a rotation at the AS, the first token under the new kid is
    accepted at once: its request waits for the refetch it started rather
    than being refused (a spurious 401 on a valid token)."""
    a, g = pair
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    rotate_at_as(a)
    time.sleep(MIN_REFETCH)   # a refetch is allowed again
    fetched = len(g.events("jwks_fetched"))
    new = a.access_token(a.token_mtls())
    assert decode_jwt(new)[0]["kid"] != decode_jwt(tok)[0]["kid"]
    r = call(g, pki, "/accounts/a", new)
    assert r.status == 200, f"{r}\n{g.diagnostics()}"
    assert H.wait_until(lambda: len(g.events("jwks_fetched")) > fetched), g.diagnostics()
    # a made-up kid also waits for a running fetch (none now: refused at once)
    header, _ = decode_jwt(new)
    _, p, sig = new.split(".")
    forged = b64u_json({**header, "kid": "made-up"}) + "." + p + "." + sig
    assert call(g, pki, "/accounts/a", forged).status == 401


def test_remote_dpop(pair, pki):
    a, g = pair
    gw = Gateway.__new__(Gateway)   # a client of the gateway server (it has no as: section)
    gw.srv, gw.keys, gw.pki, gw.sent_secrets = g, a.keys, g.pki, []
    gw.base = f"https://localhost:{g.port}"
    tok = a.access_token(a.token_dpop())
    mt = a.access_token(a.token_mtls())
    wait_ok(g, pki, mt)
    r = gw.dpop_call("/accounts/x", tok)
    assert r.status == 200, r
    proof = gw.proof_for("/accounts/y", tok)
    assert gw.dpop_call("/accounts/y", tok, proof=proof).status == 200
    assert gw.dpop_call("/accounts/y", tok, proof=proof).status == 401


def test_reload_cannot_change_remote_as(pair, pki):
    a, g = pair
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    before = len(g.events("reload_failed"))
    g.config["gateway"]["remote_as"]["issuer"] = "https://elsewhere.example"
    g.write_config()
    g.hup()
    assert H.wait_until(lambda: len(g.events("reload_failed")) > before), g.diagnostics()
    # the running config still serves
    assert call(g, pki, "/accounts/a", tok).status == 200


@pytest.fixture
def pair_introspect(make_server, keys, demo, pki):
    a = start_plain_as(make_server, keys)
    bob_pem, bob_key = pki.cert("bob")
    g = start_remote_gateway(make_server, a, demo, introspection={
        "url": a.issuer + "/introspect", "client_id": "bob-client",
        "cert": str(bob_pem), "key": str(bob_key), "cache": "1s"})
    return a, g


def test_introspection_sees_revocation(pair_introspect, pki):
    a, g = pair_introspect
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    assert call(g, pki, "/accounts/b", tok).status == 200   # cached answer
    rv = a.post("/revoke", {"token": tok, "client_id": "mtls-client"}, client="alice")
    assert rv.status == 200, rv
    time.sleep(1.2)   # past the 1 s introspection cache
    r = call(g, pki, "/accounts/a", tok)
    assert r.status == 401, r
    assert "not active" in challenge(r, "Bearer"), r
    # introspection requests reached the AS, authenticated as bob-client
    time.sleep(1.2)
    assert [e for e in a.srv.events("access") if e.get("path") == "/introspect"
            and e.get("status") == 200]


def test_introspection_fails_closed(pair_introspect, pki):
    a, g = pair_introspect
    tok = a.access_token(a.token_mtls())
    other = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    a.srv.stop()
    r = call(g, pki, "/accounts/a", other)
    assert r.status == 503, r
    assert r.header("x-fapi-interaction-id")


def introspections(asrv):
    time.sleep(1.3)   # the access log is flushed once a second
    return len([e for e in asrv.srv.events("access") if e.get("path") == "/introspect"])


def test_always_route_takes_claims_from_introspection(pair_introspect, pki, keys):
    """auth.introspection: always: every token's claims are the AS's
    answer (cached 1 s), and the checks run on them as on a JWT's."""
    a, g = pair_introspect
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    before = introspections(a)
    fresh = a.access_token(a.token_mtls())
    r = call(g, pki, "/echo/always", fresh)
    assert r.status == 200, r
    assert seen(r)["x-portcullis-client-id"] == ["mtls-client"]
    assert call(g, pki, "/echo/always", fresh).status == 200      # cached answer
    assert call(g, pki, "/echo/always", fresh, cert="bob").status == 401   # cnf from the answer
    assert introspections(a) - before in (1, 2)   # one question per worker at most
    # a tampered JWT is not verified here on this route: the AS says inactive
    h, p, sig = fresh.split(".")
    bad = h + "." + p + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = call(g, pki, "/echo/always", bad)
    assert r.status == 401 and "not active" in challenge(r, "Bearer"), r
    # DPoP-bound: ath and the proof key are checked against the answer's cnf.jkt
    gw = Gateway.__new__(Gateway)
    gw.srv, gw.keys, gw.pki, gw.sent_secrets = g, keys, g.pki, []
    gw.base = f"https://localhost:{g.port}"
    dtok = a.access_token(a.token_dpop())
    assert gw.dpop_call("/echo/always", dtok).status == 200
    r = gw.dpop_call("/echo/always", dtok, key=keys.dpop2)
    assert r.status == 401 and 'error="invalid_token"' in challenge(r, "DPoP"), r


def test_always_route_sees_revocation(pair_introspect, pki):
    a, g = pair_introspect
    tok = a.access_token(a.token_mtls())
    wait_ok(g, pki, tok)
    assert call(g, pki, "/echo/always", tok).status == 200
    rv = a.post("/revoke", {"token": tok, "client_id": "mtls-client"}, client="alice")
    assert rv.status == 200, rv
    time.sleep(1.2)
    r = call(g, pki, "/echo/always", tok)
    assert r.status == 401, r
    assert "not active" in challenge(r, "Bearer"), r


def test_always_route_with_in_process_as(fresh_gw):
    """With the AS in the same process every request already consults it
    (revocation at once): `always` is accepted and changes nothing."""
    g = fresh_gw(routes=[{"method": "GET", "path": "/echo/always", "upstream": "demo",
                          "auth": {"scopes": ["accounts"], "introspection": "always"}}])
    tok = g.mtls_token()
    assert g.call("/echo/always", token=tok, cert="alice").status == 200
    assert g.post("/revoke", {"token": tok, "client_id": "mtls-client"}, client="alice").status == 200
    r = g.call("/echo/always", token=tok, cert="alice")
    assert r.status == 401 and "revoked" in challenge(r, "Bearer"), r
