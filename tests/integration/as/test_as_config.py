"""Behaviour selected by the `as:` config: the compat profile, DPoP nonces,
token lifetimes, signing algorithms, client subject fields, clients changed
on reload, state kept across reloads, and the retirement of rotated keys."""

import time

import pytest

import portcullis_helpers as H
from as_helpers import (JWT_BEARER, Key, check_token_response, client_assertion, decode_jwt,
                        dpop_proof, error_of, has_subcommand, new_jti, reload_and_wait)

CC = ("grant_type", "client_credentials")


def alice_x5t(a):
    return H.x5t_s256_of_pem(a.pki.cert("alice")[0])


# ------------------------------------------------------------ profile: compat

def test_compat_profile_loosens_only_aud_and_binding(fresh_as, keys):
    a = fresh_as(extra={"as": {"profile": "compat"}})
    x5t = alice_x5t(a)
    for aud in (a.issuer, a.token_url, [a.issuer, "https://x.example"], [a.token_url]):
        check_token_response(a, a.token_jwt(aud=aud), client_id="jwt-client", scope="accounts",
                             x5t=x5t)
    # an unbound Bearer token for private_key_jwt without certificate or DPoP
    r = a.token_jwt(cert=None)
    assert r.status == 200, r
    assert r.json()["token_type"] == "Bearer"
    # everything else stays strict
    error_of(a.token_jwt(aud="https://evil.example"), 401, "invalid_client")
    error_of(a.token_jwt(aud=["https://evil.example"]), 401, "invalid_client")
    error_of(a.token_jwt("jwt-ps", key=keys.ps, alg="RS256"), 401, "invalid_client")
    error_of(a.token_jwt(key=keys.attacker), 401, "invalid_client")
    error_of(a.post("/token", [CC, ("client_id", "mtls-client"), ("client_secret", "x")],
                    client="alice"), 401, "invalid_client")
    error_of(a.token_jwt("dpop-client", key=keys.dpop_client, cert=None), 400,
             "invalid_dpop_proof")


def test_compat_unbound_token_has_no_cnf(fresh_as):
    a = fresh_as(extra={"as": {"profile": "compat"}})
    tok = a.access_token(a.token_jwt(cert=None))
    claims = decode_jwt(tok)[1]
    intro = a.post("/introspect", [("token", tok), ("client_id", "mtls-client")],
                   client="alice").json()
    assert intro["active"] is True
    assert "cnf" not in claims, claims
    assert "cnf" not in intro, intro


# ------------------------------------------------------------ DPoP nonces

def test_dpop_nonce_required(fresh_as, keys):
    a = fresh_as(extra={"as": {"dpop": {"nonce": True}}})
    r = a.token_dpop()
    error_of(r, 400, "use_dpop_nonce")
    nonce = r.header("dpop-nonce")
    assert nonce and len(nonce) >= 16, r
    # a made-up nonce is no better
    r = a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                    dpop=a.proof(claims={"nonce": "A" * len(nonce)}))
    error_of(r, 400, "use_dpop_nonce")
    assert r.header("dpop-nonce"), r
    # with the server's nonce: a DPoP-bound token, and the next nonce
    r = a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                    dpop=a.proof(claims={"nonce": nonce}))
    check_token_response(a, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())
    nxt = r.header("dpop-nonce")
    assert nxt, r
    r = a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                    dpop=a.proof(claims={"nonce": nxt}))
    check_token_response(a, r, client_id="dpop-client", scope="accounts",
                         jkt=keys.dpop.thumbprint())
    # the nonce does not replace the other checks
    r = a.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                    dpop=a.proof(htm="GET", claims={"nonce": nxt}))
    assert r.status == 400 and r.json()["error"] in ("invalid_dpop_proof", "use_dpop_nonce"), r


def test_dpop_nonce_off_by_default(asrv):
    r = asrv.token_dpop()
    assert r.status == 200, r
    assert r.header("dpop-nonce") is None, r


# ------------------------------------------------------------ lifetimes, algorithms

def test_lifetimes(fresh_as, keys, pki):
    clients = [
        {"client_id": "default-life", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"], "scope": "accounts"},
        {"client_id": "long-life", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"], "scope": "accounts",
         "access_token_lifetime": 7200},
        {"client_id": "short-life", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": pki.subjects["alice"], "scope": "accounts",
         "access_token_lifetime": 30},
    ]
    a = fresh_as(clients=clients, extra={"as": {"access_token_lifetime": "2m",
                                                "max_access_token_lifetime": "10m"}})
    x5t = alice_x5t(a)
    check_token_response(a, a.token_mtls("default-life"), client_id="default-life",
                         scope="accounts", x5t=x5t, lifetime=120)
    check_token_response(a, a.token_mtls("long-life"), client_id="long-life",
                         scope="accounts", x5t=x5t, lifetime=600)
    check_token_response(a, a.token_mtls("short-life"), client_id="short-life",
                         scope="accounts", x5t=x5t, lifetime=30)


@pytest.mark.parametrize("alg,kty", [("PS256", "RSA"), ("EdDSA", "OKP"), ("ES256", "EC")])
def test_signing_alg(fresh_as, alg, kty):
    a = fresh_as(extra={"as": {"signing_alg": alg}})
    jwks = a.jwks()
    assert all(k["alg"] == alg and k["kty"] == kty for k in jwks["keys"]), jwks
    if kty == "RSA":
        import base64
        n = base64.urlsafe_b64decode(jwks["keys"][0]["n"] + "==")
        assert len(n) * 8 >= 2048
    r = a.token_mtls()
    claims = check_token_response(a, r, client_id="mtls-client", scope="accounts payments",
                                  x5t=alice_x5t(a))
    assert decode_jwt(a.sent_secrets[-1])[0]["alg"] == alg
    assert claims


# ------------------------------------------------------------ subject fields

def test_tls_client_auth_subject_fields(fresh_as, pki):
    clients = [
        {"client_id": "dn-case", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": "CN=ALICE,O=acme ltd,C=gb"},
        {"client_id": "dn-reversed", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": "C=GB,O=Acme Ltd,CN=alice"},
        {"client_id": "dn-partial", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_subject_dn": "CN=alice"},
        {"client_id": "san-dns", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_dns": "alice.example"},
        {"client_id": "san-uri", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_uri": "spiffe://acme/alice"},
        {"client_id": "san-ip", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_ip": "10.0.0.2"},
        {"client_id": "san-email", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_email": "bob@example.com"},
        {"client_id": "san-uri-prefix", "token_endpoint_auth_method": "tls_client_auth",
         "tls_client_auth_san_uri": "spiffe://acme/ali"},
    ]
    a = fresh_as(clients=clients)
    ok = {"dn-case": "alice", "san-dns": "alice", "san-uri": "alice", "san-ip": "bob",
          "san-email": "bob"}
    for cid, cert in ok.items():
        r = a.token_mtls(cid, cert=cert)
        assert r.status == 200, (cid, r)
        other = "bob" if cert == "alice" else "alice"
        error_of(a.token_mtls(cid, cert=other), 401, "invalid_client")
    # RDN order matters, a partial DN is not the DN, and SANs match exactly
    for cid in ("dn-reversed", "dn-partial", "san-uri-prefix"):
        error_of(a.token_mtls(cid, cert="alice"), 401, "invalid_client")


# ------------------------------------------------------------ reloads

def test_reload_removes_and_changes_config_clients(fresh_as):
    a = fresh_as()
    x5t = alice_x5t(a)
    assert a.token_mtls("bob-client", cert="bob").status == 200
    clients = [c for c in a.srv.config["as"]["clients"] if c["client_id"] != "bob-client"]
    for c in clients:
        if c["client_id"] == "mtls-client":
            c["scope"] = "payments"
    a.srv.config["as"]["clients"] = clients
    a.srv.write_config()
    reload_and_wait(a.srv)
    error_of(a.token_mtls("bob-client", cert="bob"), 401, "invalid_client")
    check_token_response(a, a.token_mtls(), client_id="mtls-client", scope="payments", x5t=x5t)
    # and after a restart too
    a.srv.stop()
    a.srv.start()
    error_of(a.token_mtls("bob-client", cert="bob"), 401, "invalid_client")


def test_cli_client_survives_reload_and_removal(fresh_as, tmp_path):
    if not has_subcommand("client", "add"):
        pytest.skip("`portcullis client add` does not exist in this build yet")
    import json
    a = fresh_as()
    k = Key("EdDSA", kid="cli-1")
    f = tmp_path / "cli.json"
    f.write_text(json.dumps({"client_id": "cli-client",
                             "token_endpoint_auth_method": "private_key_jwt",
                             "jwks": {"keys": [k.public_jwk()]}, "scope": "accounts"}))
    assert H.portcullis("client", "add", "-c", a.srv.config_path, "--metadata", f).returncode == 0
    reload_and_wait(a.srv)
    assert a.token_jwt("cli-client", key=k).status == 200
    reload_and_wait(a.srv)          # config-seeded clients are re-put; CLI ones stay
    assert a.token_jwt("cli-client", key=k).status == 200
    if has_subcommand("client", "remove"):
        p = H.portcullis("client", "remove", "-c", a.srv.config_path, "cli-client")
        assert p.returncode == 0, p
        reload_and_wait(a.srv)
        error_of(a.token_jwt("cli-client", key=k), 401, "invalid_client")


def test_replay_state_survives_reload(fresh_as, keys):
    """A SIGHUP must not reopen a replay window (assertion and DPoP jti)."""
    a = fresh_as()
    assertion = client_assertion("dpop-client", keys.dpop_client, a.issuer)
    proof = dpop_proof(keys.dpop, a.token_url)
    form = [CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", assertion)]
    assert a.post("/token", form, headers=[("DPoP", proof)]).status == 200
    reload_and_wait(a.srv)
    # the same assertion again (fresh proof): replayed assertion
    error_of(a.post("/token", form, headers=[("DPoP", dpop_proof(keys.dpop, a.token_url))]),
             401, "invalid_client")
    # the same proof again (fresh assertion): replayed proof
    r = a.token_jwt("dpop-client", key=keys.dpop_client, cert=None, dpop=proof)
    error_of(r, 400, "invalid_dpop_proof")


def test_throttle_survives_reload(fresh_as, keys):
    a = fresh_as(failures=3)
    s = time.time() % 60
    if s > 50:
        time.sleep(60 - s + 0.2)
    for _ in range(3):
        error_of(a.token_mtls("mtls-client", cert="bob"), 401, "invalid_client")
    error_of(a.token_mtls(), 429, "invalid_client")
    reload_and_wait(a.srv)
    error_of(a.token_mtls(), 429, "invalid_client")


def test_jti_namespaces(asrv, keys):
    """Assertion jti is per client, DPoP jti per key: one client cannot burn
    another's identifiers."""
    x5t = alice_x5t(asrv)
    jti = new_jti()
    check_token_response(asrv, asrv.token_jwt("jwt-client", key=keys.es, claims={"jti": jti}),
                         client_id="jwt-client", scope="accounts", x5t=x5t)
    check_token_response(asrv, asrv.token_jwt("jwt-ed", key=keys.ed, claims={"jti": jti}),
                         client_id="jwt-ed", scope="accounts", x5t=x5t)
    pj = new_jti()
    other = Key("ES256")
    for k in (keys.dpop, other):
        r = asrv.token_jwt("dpop-client", key=keys.dpop_client, cert=None,
                           dpop=asrv.proof(k, jti=pj))
        check_token_response(asrv, r, client_id="dpop-client", scope="accounts",
                             jkt=k.thumbprint())


# ------------------------------------------------------------ key retirement

def test_retired_key_leaves_jwks_after_token_lifetime(fresh_as):
    """A rotated-out key stays published for max_access_token_lifetime +
    clock_skew (3 s + 0 s here), then goes."""
    if not has_subcommand("keys", "rotate"):
        pytest.skip("`portcullis keys rotate` does not exist in this build yet")
    a = fresh_as(extra={"as": {"access_token_lifetime": "3s", "max_access_token_lifetime": "3s",
                               "clock_skew": "0s"}})
    old_tok = a.access_token(a.token_mtls())
    old_kid = decode_jwt(old_tok)[0]["kid"]
    t0 = time.time()
    assert H.portcullis("keys", "rotate", "-c", a.srv.config_path).returncode == 0
    reload_and_wait(a.srv)
    kids = {k["kid"] for k in a.jwks()["keys"]}
    if time.time() - t0 < 2.0:          # (a loaded machine may be slower than that)
        assert old_kid in kids, kids
        a.verify_token(old_tok)
    time.sleep(max(0.0, t0 + 4.2 - time.time()))
    reload_and_wait(a.srv)
    kids = {k["kid"] for k in a.jwks()["keys"]}
    assert old_kid not in kids, kids
    new_tok = a.access_token(a.token_mtls())
    assert decode_jwt(new_tok)[0]["kid"] in kids
    # a token signed by a purged key is not active (it had expired anyway)
    r = a.post("/introspect", [("token", old_tok), ("client_id", "mtls-client")], client="alice")
    assert r.json() == {"active": False}
