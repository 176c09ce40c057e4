"""Introspection (RFC 7662) and revocation (RFC 7009)."""

import time

import pytest

import portcullis_helpers as H
from as_helpers import (JWT_BEARER, Key, b64u_json, client_assertion, decode_jwt, error_of,
                        make_jws)

INACTIVE = {"active": False}


def introspect(a, token, client="alice", client_id="mtls-client", form=None):
    f = form if form is not None else [("client_id", client_id)]
    return a.post("/introspect", [("token", token), *f], client=client)


def revoke(a, token, client="alice", client_id="mtls-client", form=None):
    f = form if form is not None else [("client_id", client_id)]
    return a.post("/revoke", [("token", token), *f], client=client)


def jwt_auth(a, client_id="jwt-client", key=None):
    return [("client_assertion_type", JWT_BEARER),
            ("client_assertion", client_assertion(client_id, key or a.keys.es, a.issuer))]


def active(a, token):
    r = introspect(a, token)
    assert r.status == 200, r
    return r.json()


# ------------------------------------------------------------ introspection

def test_introspect_active_mtls_token(asrv, pki):
    tok = asrv.access_token(asrv.token_mtls())
    _, claims = decode_jwt(tok)
    r = introspect(asrv, tok)
    assert r.status == 200, r
    assert r.header("cache-control") == "no-store", r
    body = r.json()
    assert body["active"] is True, body
    assert body["scope"] == "accounts payments"
    assert body["client_id"] == "mtls-client"
    assert body["token_type"] == "Bearer"
    assert body["exp"] == claims["exp"] and body["iat"] == claims["iat"]
    assert body["cnf"] == {"x5t#S256": H.x5t_s256_of_pem(pki.cert("alice")[0])}
    assert body.get("iss", asrv.issuer) == asrv.issuer
    assert body.get("jti", claims["jti"]) == claims["jti"]


def test_introspect_active_dpop_token(asrv, keys):
    tok = asrv.access_token(asrv.token_dpop())
    # the caller authenticates with private_key_jwt this time
    r = asrv.post("/introspect", [("token", tok), *jwt_auth(asrv, "dpop-client", keys.dpop_client)])
    assert r.status == 200, r
    body = r.json()
    assert body["active"] is True and body["token_type"] == "DPoP", body
    assert body["cnf"] == {"jkt": keys.dpop.thumbprint()}
    assert body["client_id"] == "dpop-client" and body["scope"] == "accounts"


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x" * 9000,
                                   ""])
def test_introspect_garbage(asrv, token):
    r = introspect(asrv, token)
    assert r.status == 200, r
    assert r.json() == INACTIVE, r


def test_introspect_forged_tokens(asrv, keys):
    tok = asrv.access_token(asrv.token_mtls())
    h, p, s = tok.split(".")
    header, claims = decode_jwt(tok)
    # payload changed, signature kept
    more = dict(claims, scope="accounts payments admin")
    assert introspect(asrv, h + "." + b64u_json(more) + "." + s).json() == INACTIVE
    # re-signed by another key under the server's kid
    forged = make_jws(header, claims, key=Key(header["alg"]))
    assert introspect(asrv, forged).json() == INACTIVE
    # alg none under the server's kid
    assert introspect(asrv, make_jws(dict(header, alg="none"), claims)).json() == INACTIVE
    # a client assertion (a JWT signed by someone else) is not an access token
    assert introspect(asrv, client_assertion("jwt-client", keys.es, asrv.issuer)).json() == INACTIVE
    # and the genuine token is still fine
    assert active(asrv, tok)["active"] is True


def test_introspect_expired(asrv):
    tok = asrv.access_token(asrv.token_mtls("short-client"))     # lifetime 1 s
    exp = decode_jwt(tok)[1]["exp"]
    time.sleep(max(0.0, exp - time.time()) + 1.1)
    r = introspect(asrv, tok)
    assert r.status == 200 and r.json() == INACTIVE, r


def test_introspect_requires_client_auth(asrv):
    tok = asrv.access_token(asrv.token_mtls())
    error_of(asrv.post("/introspect", [("token", tok)]), 401, "invalid_client")
    error_of(asrv.post("/introspect", [("token", tok), ("client_id", "mtls-client")]), 401,
             "invalid_client")
    error_of(introspect(asrv, tok, client="bob"), 401, "invalid_client")
    error_of(asrv.post("/introspect", [("token", tok), ("client_id", "mtls-client"),
                                       ("client_secret", "x")], client="alice"),
             401, "invalid_client")


def test_introspect_missing_token(asrv):
    error_of(asrv.post("/introspect", [("client_id", "mtls-client")], client="alice"), 400,
             "invalid_request")


def test_introspect_query_string_refused(asrv):
    tok = asrv.access_token(asrv.token_mtls())
    r = asrv.post("/introspect?token=" + tok, [("client_id", "mtls-client")], client="alice")
    error_of(r, 400, "invalid_request")


# ------------------------------------------------------------ revocation

def test_revoke_by_owner(asrv):
    tok = asrv.access_token(asrv.token_mtls())
    other = asrv.access_token(asrv.token_mtls())
    assert active(asrv, tok)["active"] is True
    r = revoke(asrv, tok)
    assert r.status == 200, r
    assert r.header("cache-control") == "no-store", r
    assert introspect(asrv, tok).json() == INACTIVE
    assert active(asrv, other)["active"] is True    # only that token
    # revoking again is still 200
    assert revoke(asrv, tok).status == 200


def test_revoke_with_token_type_hint(asrv):
    tok = asrv.access_token(asrv.token_mtls())
    r = revoke(asrv, tok, form=[("client_id", "mtls-client"), ("token_type_hint", "access_token")])
    assert r.status == 200, r
    assert introspect(asrv, tok).json() == INACTIVE


def test_revoke_by_another_client_is_ignored(asrv, keys):
    tok = asrv.access_token(asrv.token_mtls())
    r = asrv.post("/revoke", [("token", tok), *jwt_auth(asrv)], client="alice")
    assert r.status == 200, r
    assert active(asrv, tok)["active"] is True
    # bob's certificate client too
    r = revoke(asrv, tok, client="bob", client_id="bob-client")
    assert r.status == 200, r
    assert active(asrv, tok)["active"] is True


def test_revoke_dpop_token_by_owner(asrv, keys):
    tok = asrv.access_token(asrv.token_dpop())
    r = asrv.post("/revoke", [("token", tok), *jwt_auth(asrv, "dpop-client", keys.dpop_client)])
    assert r.status == 200, r
    assert introspect(asrv, tok).json() == INACTIVE


@pytest.mark.parametrize("token", ["unknown-token", "a.b.c", "x" * 9000])
def test_revoke_unknown_token(asrv, token):
    r = revoke(asrv, token)
    assert r.status == 200, r


def test_revoke_requires_client_auth(asrv):
    tok = asrv.access_token(asrv.token_mtls())
    error_of(asrv.post("/revoke", [("token", tok)]), 401, "invalid_client")
    error_of(asrv.post("/revoke", [("token", tok), ("client_id", "mtls-client")]), 401,
             "invalid_client")
    assert active(asrv, tok)["active"] is True


def test_revoke_missing_token(asrv):
    error_of(asrv.post("/revoke", [("client_id", "mtls-client")], client="alice"), 400,
             "invalid_request")
