"""private_key_jwt (RFC 7523 §2.2, OIDC Core §9, FAPI 2.0 §5.3.2.1-6/8) and
the refusal of every other way to authenticate."""

import base64
import time

import pytest

import portcullis_helpers as H
from as_helpers import (JWT_BEARER, b64u_json, check_token_response, client_assertion,
                        decode_jwt, error_of, make_jws, new_jti)

CC = ("grant_type", "client_credentials")


@pytest.fixture(scope="module")
def alice_x5t(pki):
    return H.x5t_s256_of_pem(pki.cert("alice")[0])


# ------------------------------------------------------------ happy paths

@pytest.mark.parametrize("client_id,keyname,scope", [
    ("jwt-client", "es", "accounts"),
    ("jwt-ps", "ps", "accounts payments"),
    ("jwt-ed", "ed", "accounts"),
])
def test_private_key_jwt_ok_mtls_bound(asrv, keys, alice_x5t, client_id, keyname, scope):
    r = asrv.token_jwt(client_id, key=getattr(keys, keyname), cert="alice")
    check_token_response(asrv, r, client_id=client_id, scope=scope, x5t=alice_x5t)


@pytest.mark.parametrize("keyname", ["dpop", "dpop_ps", "dpop_ed"])
def test_private_key_jwt_ok_dpop_bound(asrv, keys, keyname):
    dk = getattr(keys, keyname)
    r = asrv.token_jwt("jwt-client", key=keys.es, cert=None, dpop=asrv.proof(dk))
    check_token_response(asrv, r, client_id="jwt-client", scope="accounts", jkt=dk.thumbprint())


def test_client_id_in_form_matching_sub_ok(asrv, keys, alice_x5t):
    r = asrv.token_jwt("jwt-client", cert="alice", extra=[("client_id", "jwt-client")])
    check_token_response(asrv, r, client_id="jwt-client", scope="accounts", x5t=alice_x5t)


def test_client_id_in_form_not_matching_sub(asrv):
    r = asrv.token_jwt("jwt-client", cert="alice", extra=[("client_id", "jwt-ps")])
    error_of(r, 401, "invalid_client")


def test_typ_client_authentication_jwt_ok(asrv, alice_x5t):
    r = asrv.token_jwt(header={"typ": "client-authentication+jwt"})
    check_token_response(asrv, r, client_id="jwt-client", scope="accounts", x5t=alice_x5t)


def test_iat_8s_in_future_accepted(asrv, alice_x5t):
    now = int(time.time())
    r = asrv.token_jwt(claims={"iat": now + 8, "nbf": now + 8, "exp": now + 50})
    check_token_response(asrv, r, client_id="jwt-client", scope="accounts", x5t=alice_x5t)


def test_jti_unique_across_50_tokens(asrv):
    seen = set()
    for _ in range(50):
        r = asrv.token_mtls()
        claims = r.status == 200 and asrv.verify_token(asrv.access_token(r))[1]
        assert claims, r
        assert len(claims["jti"]) >= 22
        seen.add(claims["jti"])
    assert len(seen) == 50


# ------------------------------------------------------------ refusals

def now_():
    return int(time.time())


REFUSALS = {
    "aud_other_string": dict(aud="https://evil.example"),
    "aud_array_with_issuer": dict(aud="ARRAY"),
    "aud_token_endpoint": dict(aud="TOKEN_URL"),
    "aud_missing": dict(claims={"aud": None}),
    "expired": dict(claims={"exp": "NOW-30", "iat": "NOW-90"}),
    "exp_too_far_ahead": dict(claims={"exp": "NOW+120"}),
    "iat_70s_future": dict(claims={"iat": "NOW+70", "exp": "NOW+55"}),
    "nbf_70s_future": dict(claims={"nbf": "NOW+70"}),
    "exp_missing": dict(claims={"exp": None}),
    "jti_missing": dict(claims={"jti": None}),
    "iss_not_sub": dict(claims={"iss": "jwt-ps"}),
    "sub_missing": dict(claims={"sub": None}),
    "sub_unknown_client": dict(claims={"sub": "nobody", "iss": "nobody"}),
    "sub_mtls_client": dict(claims={"sub": "mtls-client", "iss": "mtls-client"}),
    "unknown_kid": dict(header={"kid": "no-such-kid"}),
    "typ_other": dict(header={"typ": "dpop+jwt"}),
}


def _subst(v):
    if isinstance(v, str) and v.startswith("NOW"):
        return now_() + int(v[3:] or 0)
    return v


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_assertion_refused(asrv, keys, case):
    spec = dict(REFUSALS[case])
    aud = spec.pop("aud", None)
    if aud == "ARRAY":
        aud = [asrv.issuer, "https://other.example"]
    elif aud == "TOKEN_URL":
        aud = asrv.token_url
    for part in ("claims", "header"):
        if part in spec:
            spec[part] = {k: _subst(v) for k, v in spec[part].items()}
    r = asrv.token_jwt("jwt-client", key=keys.es, cert="alice", aud=aud, **spec)
    error_of(r, 401, "invalid_client")


def test_aud_array_with_only_issuer_refused(asrv, keys):
    r = asrv.token_jwt(aud=[asrv.issuer])
    error_of(r, 401, "invalid_client")


def test_reused_jti_refused(asrv, keys, alice_x5t):
    a = client_assertion("jwt-client", keys.es, asrv.issuer)
    form = [CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", a)]
    check_token_response(asrv, asrv.post("/token", form, client="alice"),
                         client_id="jwt-client", scope="accounts", x5t=alice_x5t)
    error_of(asrv.post("/token", form, client="alice"), 401, "invalid_client")
    # same jti in a freshly signed assertion: still a replay
    jti = decode_jwt(a)[1]["jti"]
    r = asrv.token_jwt(claims={"jti": jti})
    error_of(r, 401, "invalid_client")


def test_refused_assertion_does_not_burn_its_jti(asrv, keys, alice_x5t):
    """A bad assertion (wrong aud) is refused before its jti is recorded: the
    client can retry with a correct assertion and the same jti."""
    jti = new_jti()
    error_of(asrv.token_jwt(aud="https://evil.example", claims={"jti": jti}), 401, "invalid_client")
    check_token_response(asrv, asrv.token_jwt(claims={"jti": jti}), client_id="jwt-client",
                         scope="accounts", x5t=alice_x5t)


def _form(a):
    return [CC, ("client_assertion_type", JWT_BEARER), ("client_assertion", a)]


def _claims(a, cid="jwt-client"):
    n = now_()
    return {"iss": cid, "sub": cid, "aud": a.issuer, "jti": new_jti(), "iat": n, "exp": n + 50}


def test_alg_none_refused(asrv):
    tok = make_jws({"alg": "none", "kid": "es-1", "typ": "JWT"}, _claims(asrv))
    error_of(asrv.post("/token", _form(tok), client="alice"), 401, "invalid_client")
    tok = make_jws({"alg": "none", "typ": "JWT"}, _claims(asrv))
    error_of(asrv.post("/token", _form(tok), client="alice"), 401, "invalid_client")


@pytest.mark.parametrize("keyname,kid", [("es", "es-1"), ("ps", "ps-1")])
def test_hs256_keyed_with_public_key_refused(asrv, keys, keyname, kid):
    """The classic confusion: HMAC with the registered public key as secret."""
    key = getattr(keys, keyname)
    cid = "jwt-client" if keyname == "es" else "jwt-ps"
    for secret in (key.public_pem(), key.public_pem().strip()):
        tok = make_jws({"alg": "HS256", "kid": kid, "typ": "JWT"}, _claims(asrv, cid),
                       hmac_key=secret)
        error_of(asrv.post("/token", _form(tok), client="alice"), 401, "invalid_client")


def test_signed_by_another_key_refused(asrv, keys):
    # the attacker's key carries the registered kid
    r = asrv.token_jwt("jwt-client", key=keys.attacker)
    error_of(r, 401, "invalid_client")


def test_signed_by_another_clients_key_refused(asrv, keys):
    r = asrv.token_jwt("jwt-client", key=keys.ps, header={"kid": "es-1"})
    error_of(r, 401, "invalid_client")


def test_rs256_refused(asrv, keys):
    """RS256 with the genuinely registered RSA key: refused (FAPI 2.0 §5.4)."""
    r = asrv.token_jwt("jwt-ps", key=keys.ps, alg="RS256")
    error_of(r, 401, "invalid_client")


def test_tampered_payload_refused(asrv, keys):
    a = client_assertion("jwt-client", keys.es, asrv.issuer)
    h, p, s = a.split(".")
    claims = decode_jwt(a)[1]
    claims["exp"] += 5
    forged = h + "." + b64u_json(claims) + "." + s
    error_of(asrv.post("/token", _form(forged), client="alice"), 401, "invalid_client")


@pytest.mark.parametrize("assertion", ["", "garbage", "a.b.c", "e30.e30.", "....",
                                       "x" * 9000])
def test_malformed_assertion_refused(asrv, assertion):
    error_of(asrv.post("/token", _form(assertion), client="alice"), 401, "invalid_client")


def test_wrong_assertion_type_refused(asrv, keys):
    a = client_assertion("jwt-client", keys.es, asrv.issuer)
    form = [CC, ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
            ("client_assertion", a)]
    error_of(asrv.post("/token", form, client="alice"), 401, "invalid_client")
    form = [CC, ("client_assertion", a)]
    error_of(asrv.post("/token", form, client="alice"), 401, "invalid_client")


def test_private_key_jwt_unbound_refused(asrv):
    """Neither a client certificate nor DPoP: FAPI 2.0 issues only
    sender-constrained tokens."""
    r = asrv.token_jwt(cert=None)
    error_of(r, 400, "invalid_request")


def test_private_key_jwt_with_unverified_cert_unbound(asrv, keys):
    """A self-signed certificate that is not the client's registered
    credential is not a binding the server can vouch for (optional_no_ca)."""
    r = asrv.token_jwt(cert=keys.stranger)
    assert r.status in (200, 400), r
    if r.status == 200:
        claims = asrv.verify_token(asrv.access_token(r))[1]
        assert claims["cnf"] == {"x5t#S256": H.x5t_s256_of_pem(keys.stranger[0])}, claims
    else:
        error_of(r, 400, "invalid_request")


# ------------------------------------------------------------ other methods

def test_client_secret_basic_refused(asrv):
    basic = base64.b64encode(b"jwt-client:secret").decode()
    r = asrv.post("/token", [CC], client="alice", headers=[("Authorization", f"Basic {basic}")])
    desc = error_of(r, 401, "invalid_client")
    for m in ("tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"):
        assert m in desc, desc


def test_client_secret_post_refused(asrv):
    r = asrv.post("/token", [CC, ("client_id", "mtls-client"), ("client_secret", "s3cret")],
                  client="alice")
    desc = error_of(r, 401, "invalid_client")
    for m in ("tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"):
        assert m in desc, desc


def test_bearer_authorization_header_refused(asrv):
    r = asrv.post("/token", [CC, ("client_id", "mtls-client")], client="alice",
                  headers=[("Authorization", "Bearer abc")])
    error_of(r, 401, "invalid_client")


def test_no_client_authentication(asrv):
    error_of(asrv.post("/token", [CC]), 401, "invalid_client")
    error_of(asrv.post("/token", [CC], client="alice"), 401, "invalid_client")


def test_private_key_jwt_client_without_assertion(asrv):
    r = asrv.post("/token", [CC, ("client_id", "jwt-client")], client="alice")
    error_of(r, 401, "invalid_client")
